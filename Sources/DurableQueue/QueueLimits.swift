/// Size and age bounds of a queue.
public struct QueueLimits: Equatable, Sendable {
    /// A segment takes no further appends once it holds this many bytes; the batch that crosses the
    /// mark still lands whole, so one append costs one fdatasync.
    public var segmentBytes: Int
    /// Bound on all segment bytes. Whole oldest segments are deleted to stay under it, dropping
    /// their records even if unacknowledged; the segment being appended to is never deleted.
    public var maxTotalBytes: Int
    /// Largest payload `append` accepts and largest declared length a reader believes.
    public var maxRecordBytes: Int
    /// Records whose timestamp is older than this many seconds are dropped; nil keeps them forever.
    public var maxAgeSeconds: Int64?

    public init(
        segmentBytes: Int = 1 << 20,
        maxTotalBytes: Int = 64 << 20,
        maxRecordBytes: Int = 1 << 20,
        maxAgeSeconds: Int64? = 7 * 24 * 3600
    ) {
        self.segmentBytes = segmentBytes
        self.maxTotalBytes = maxTotalBytes
        self.maxRecordBytes = maxRecordBytes
        self.maxAgeSeconds = maxAgeSeconds
    }

    /// Largest framed batch one append may write. The segment being appended to is never deleted
    /// (its name keeps the sequence counter), so it must fit under the total on its own.
    public var maxBatchBytes: Int { maxTotalBytes - segmentBytes }

    func validate() throws {
        guard segmentBytes >= RecordFrame.headerSize else {
            throw DurableQueueError.invalidLimits("segmentBytes \(segmentBytes) is below one record header")
        }
        guard maxTotalBytes / 2 >= segmentBytes else {
            throw DurableQueueError.invalidLimits(
                "maxTotalBytes \(maxTotalBytes) must be at least twice segmentBytes \(segmentBytes)")
        }
        guard maxRecordBytes >= 0, maxRecordBytes <= Int(UInt32.max),
            maxRecordBytes <= maxBatchBytes - RecordFrame.headerSize
        else {
            throw DurableQueueError.invalidLimits(
                "maxRecordBytes \(maxRecordBytes) must fit a framed record in maxTotalBytes - segmentBytes")
        }
        if let maxAgeSeconds, maxAgeSeconds <= 0 {
            throw DurableQueueError.invalidLimits("maxAgeSeconds \(maxAgeSeconds) must be positive")
        }
    }
}
