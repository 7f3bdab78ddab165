import Posix

/// Why a queue operation failed. Corruption found in files is not an error: it is skipped and
/// reported through `QueueEvent`.
public enum DurableQueueError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed; `errno` is its raw code.
    case system(operation: String, path: String, errno: Int32)
    /// Another queue (in this or another process) holds the directory's lock.
    case directoryInUse(path: String)
    /// The directory belongs to another user or others may write to it: they could plant links
    /// or files in it.
    case unsafeDirectory(path: String, reason: String)
    case recordTooLarge(bytes: Int, limit: Int)
    /// One append call may not write more than `QueueLimits.maxBatchBytes` framed bytes.
    case batchTooLarge(bytes: Int, limit: Int)
    case invalidLimits(String)
    /// Acknowledging a sequence number the queue has not handed out yet.
    case acknowledgementBeyondEnd(consumer: String, sequence: UInt64, lastAppended: UInt64)
    case stateTooLarge(path: String, bytes: Int, limit: Int)
    case tooManyDirectoryEntries(path: String, limit: Int)
    /// The queue was closed with `close()`.
    case closed(path: String)

    public var description: String {
        switch self {
        case .system(let operation, let path, let code):
            return "\(operation) \(path): \(describeErrno(code))"
        case .directoryInUse(let path):
            return "queue directory \(path) is in use by another queue (lock held)"
        case .unsafeDirectory(let path, let reason):
            return "refusing buffer directory \(path): \(reason)"
        case .recordTooLarge(let bytes, let limit):
            return "record of \(bytes) bytes exceeds the \(limit)-byte record limit"
        case .batchTooLarge(let bytes, let limit):
            return "batch of \(bytes) framed bytes exceeds the \(limit)-byte batch limit"
        case .invalidLimits(let reason):
            return "invalid queue limits: \(reason)"
        case .acknowledgementBeyondEnd(let consumer, let sequence, let lastAppended):
            return "consumer \(consumer) acknowledged sequence \(sequence), beyond the last appended \(lastAppended)"
        case .stateTooLarge(let path, let bytes, let limit):
            return "state for \(path) would take \(bytes) bytes, over the \(limit)-byte limit"
        case .tooManyDirectoryEntries(let path, let limit):
            return "queue directory \(path) holds more than \(limit) entries"
        case .closed(let path):
            return "queue \(path) is closed"
        }
    }
}

