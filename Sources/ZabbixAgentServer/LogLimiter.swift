import Logging
import NIOCore
import Synchronization

/// Logs a kind of event at most once per interval: the first at once, later ones folded into
/// the next line as "(N more since)". A flood of refused connections costs one line per interval.
final class LogLimiter: Sendable {
    private struct Window {
        var lastLogged: NIODeadline
        var suppressed: Int
    }

    private let interval: TimeAmount
    private let windows = Mutex<[String: Window]>([:])

    init(interval: TimeAmount = .seconds(10)) {
        self.interval = interval
    }

    /// The text to log for an event of `kind` now, or nil when it is folded into a later line.
    func admit(_ kind: String, _ message: @autoclosure () -> String, now: NIODeadline = .now()) -> String? {
        let suppressed: Int? = windows.withLock { windows in
            if let window = windows[kind], now - window.lastLogged < interval {
                windows[kind]!.suppressed += 1
                return nil
            }
            let count = windows[kind]?.suppressed ?? 0
            windows[kind] = Window(lastLogged: now, suppressed: 0)
            return count
        }
        guard let suppressed else { return nil }
        return suppressed == 0 ? message() : "\(message()) (and \(suppressed) more like it since the last such line)"
    }

    func log(_ logger: Logger, _ level: Logger.Level, _ kind: String, _ message: @autoclosure () -> String) {
        if let text = admit(kind, message()) { logger.log(level: level, "\(text)") }
    }
}
