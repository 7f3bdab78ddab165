/// Something the owner should log: the queue recovered from it on its own.
public enum QueueEvent: Equatable, Sendable {
    /// Bytes in a segment that hold no valid record were skipped. A corrupt tail of the newest
    /// segment (an append that never finished) is also cut off the file when the queue opens.
    case corruptionSkipped(CorruptRegion)
    /// Both copies of the state were missing or unreadable: consumer positions restart at the oldest record,
    /// the key-value state is empty and the dropped counter restarts at zero.
    case stateRecovered(path: String, StateRecovery)
    /// One copy of the state was missing or unreadable; the other was whole and is used, so
    /// nothing is lost, and the damaged copy is rewritten.
    case stateCopyRepaired(path: String, StateRecovery)
    /// Records not yet acknowledged by every consumer were dropped to honour a bound.
    case recordsDropped(count: UInt64, reason: DropReason)
}

public struct CorruptRegion: Equatable, Sendable {
    /// Path of the segment file.
    public var file: String
    /// Byte offset where the skipped region starts.
    public var offset: Int
    /// Bytes skipped.
    public var length: Int
    /// Why the first candidate record in the region was refused.
    public var reason: CorruptionReason

    public init(file: String, offset: Int, length: Int, reason: CorruptionReason) {
        self.file = file
        self.offset = offset
        self.length = length
        self.reason = reason
    }
}

public enum CorruptionReason: Equatable, Sendable {
    case badMagic
    /// The declared length exceeds `QueueLimits.maxRecordBytes`.
    case lengthOverLimit
    /// The file ends inside the record.
    case truncated
    case checksumMismatch
    /// A checksummed record whose sequence number cannot be at this place (a duplicated block, or a
    /// stale frame inside a damaged payload).
    case sequenceOutOfOrder
}

public enum StateRecovery: Equatable, Sendable {
    /// Segments exist but the state file does not.
    case missing
    /// The state file failed its checks; the reason says which.
    case corrupt(String)
}

public enum DropReason: Equatable, Sendable {
    case byteLimit
    case ageLimit
}
