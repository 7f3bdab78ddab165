/// When the daemon collects: every `interval`, on the wall clock's multiples of it (a 60 s
/// interval collects at :00 of each minute), so that hosts line up in graphs and a restart
/// does not shift the series.
public struct PushSchedule: Sendable, Equatable {
    public let intervalNanoseconds: Int64

    public init(intervalNanoseconds: Int64) {
        precondition(intervalNanoseconds > 0, "a positive interval")
        self.intervalNanoseconds = intervalNanoseconds
    }

    /// The first multiple of the interval strictly after `now` (nanoseconds since the epoch).
    public func nextTick(after now: Int64) -> Int64 {
        (now / intervalNanoseconds + 1) * intervalNanoseconds
    }
}

/// How long to wait before retrying a server that failed: doubling from `base` up to `cap`,
/// with "equal jitter" (a random wait between half the bound and the bound) so that many hosts
/// coming back after one outage do not retry in step, yet none retries at once.
public struct RetryBackoff: Sendable {
    public let baseNanoseconds: Int64
    public let capNanoseconds: Int64
    public private(set) var failures = 0

    public init(baseNanoseconds: Int64 = 1_000_000_000, capNanoseconds: Int64 = 60_000_000_000) {
        self.baseNanoseconds = baseNanoseconds
        self.capNanoseconds = capNanoseconds
    }

    /// Records a failure and returns the wait before the next try.
    public mutating func nextDelay<Random: RandomNumberGenerator>(using random: inout Random) -> Int64 {
        failures += 1
        let bound = min(capNanoseconds, baseNanoseconds << min(failures - 1, 30))
        return Int64.random(in: bound / 2...bound, using: &random)
    }

    public mutating func reset() { failures = 0 }
}

/// Remembers which refusals were already logged, so each distinct cause is logged once until
/// it goes away (a host that starts accepting again, then is refused again, is logged again).
public struct RefusalLog: Sendable {
    private var active: Set<String> = []

    public init() {}

    /// True when `cause` is new and should be logged.
    public mutating func refused(_ cause: String) -> Bool { active.insert(cause).inserted }

    /// The cause is over: true when it had been logged (so its recovery is worth a line).
    public mutating func accepted(_ cause: String) -> Bool { active.remove(cause) != nil }
}
