/// A snapshot of the queue for monitoring.
public struct QueueStats: Equatable, Sendable {
    /// Records each known consumer has not acknowledged yet.
    public var pendingByConsumer: [String: Int]
    /// Readable records held, acknowledged or not.
    public var storedRecords: Int
    /// Bytes of all segment files.
    public var totalBytes: Int
    public var segmentCount: Int
    /// Records dropped by the byte and age bounds, over the queue's whole life (kept in the state file).
    public var droppedRecords: UInt64
    /// Corrupt regions skipped since this queue was opened (a region still on disk is counted again
    /// by the next open).
    public var corruptRegions: Int
    public var corruptBytes: Int
    /// The sequence number the next appended record will get.
    public var nextSequence: UInt64
}
