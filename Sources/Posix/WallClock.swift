import Glibc

/// A moment of the system clock as seconds and nanoseconds since the epoch (what Zabbix's `clock`
/// and `ns` fields carry).
public struct WallClock: Sendable, Equatable {
    public var seconds: Int
    public var nanoseconds: Int

    public init(seconds: Int, nanoseconds: Int) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func now() -> WallClock {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return WallClock(seconds: time.tv_sec, nanoseconds: time.tv_nsec)
    }

    public var totalNanoseconds: Int64 { Int64(seconds) * 1_000_000_000 + Int64(nanoseconds) }
}
