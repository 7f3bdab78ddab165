/// A record handed back by `DurableQueue.read`.
public struct QueuedRecord: Equatable, Sendable {
    public var sequence: UInt64
    /// Seconds since the Unix epoch, as given to `append`.
    public var timestamp: Int64
    public var payload: [UInt8]

    public init(sequence: UInt64, timestamp: Int64, payload: [UInt8]) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.payload = payload
    }
}
