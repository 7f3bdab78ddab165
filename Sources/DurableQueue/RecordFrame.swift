import ByteCoding
import Glibc

/// Where a valid record sits in its segment file.
struct RecordLocation: Equatable {
    var offset: Int
    /// Payload bytes (the frame is `RecordFrame.headerSize` longer).
    var length: Int
    var sequence: UInt64
    var timestamp: Int64
}

/// One record on disk, integers little-endian:
///
///     offset  size  field
///          0     4  magic E2 44 51 52
///          4     4  payload length
///          8     8  sequence number
///         16     8  timestamp, seconds since the Unix epoch, signed
///         24     4  CRC-32 of bytes 0..<24 followed by the payload
///         28     n  payload
enum RecordFrame {
    /// Starts with a non-ASCII byte so text payloads rarely contain it, which keeps resynchronisation
    /// from trying many false candidates; the checksum decides anyway.
    static let magic: [UInt8] = [0xE2, 0x44, 0x51, 0x52]
    static let headerSize = 28
    private static let checksummedHeaderSize = 24

    static func encode(_ payload: [UInt8], sequence: UInt64, timestamp: Int64, into buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: magic)
        buffer.appendLittleEndian(UInt32(payload.count))
        buffer.appendLittleEndian(sequence)
        buffer.appendLittleEndian(timestamp)
        var crc = CRC32()
        crc.update(buffer[start...])
        crc.update(payload)
        buffer.appendLittleEndian(crc.value)
        buffer.append(contentsOf: payload)
    }

    enum Validation {
        case valid(RecordLocation, payload: ArraySlice<UInt8>)
        case invalid(CorruptionReason)
    }

    /// Checks the frame at `offset`: magic, declared length (before reading that many bytes),
    /// checksum, and a sequence number in `minimumSequence..<sequenceCeiling`.
    static func validate(
        at offset: Int,
        in window: inout FileWindow,
        maxRecordBytes: Int,
        minimumSequence: UInt64,
        sequenceCeiling: UInt64
    ) throws -> Validation {
        guard let header = try window.bytes(at: offset, count: headerSize) else {
            return .invalid(.truncated)
        }
        guard header.starts(with: magic) else { return .invalid(.badMagic) }
        let length = Int(header.loadLittleEndian(UInt32.self, at: 4))
        guard length <= maxRecordBytes else { return .invalid(.lengthOverLimit) }
        guard let payload = try window.bytes(at: offset + headerSize, count: length) else {
            return .invalid(.truncated)
        }
        var crc = CRC32()
        crc.update(header.prefix(checksummedHeaderSize))
        crc.update(payload)
        guard crc.value == header.loadLittleEndian(UInt32.self, at: 24) else {
            return .invalid(.checksumMismatch)
        }
        let sequence = header.loadLittleEndian(UInt64.self, at: 8)
        guard sequence >= minimumSequence, sequence < sequenceCeiling else {
            return .invalid(.sequenceOutOfOrder)
        }
        let timestamp = Int64(bitPattern: header.loadLittleEndian(UInt64.self, at: 16))
        let location = RecordLocation(offset: offset, length: length, sequence: sequence, timestamp: timestamp)
        return .valid(location, payload: payload)
    }
}

/// Reads a file through a sliding buffer, so scanning record by record costs one pread per chunk
/// rather than two per record.
struct FileWindow {
    private static let chunkBytes = 64 * 1024

    let descriptor: Int32
    let path: String
    /// Bytes beyond this are never read, even if the file has grown.
    let fileSize: Int
    private var start = 0
    private var buffer: [UInt8] = []

    init(descriptor: Int32, path: String, fileSize: Int) {
        self.descriptor = descriptor
        self.path = path
        self.fileSize = fileSize
    }

    /// The `count` bytes at `offset`, or nil when they run past the end of the file.
    mutating func bytes(at offset: Int, count: Int) throws -> ArraySlice<UInt8>? {
        guard offset >= 0, count >= 0, count <= fileSize - offset else { return nil }
        if offset < start || offset + count > start + buffer.count {
            let length = min(max(count, Self.chunkBytes), fileSize - offset)
            buffer = try FileIO.read(descriptor, count: length, at: offset, path: path)
            start = offset
            // The file shrank under us: treat it like any other end of file.
            guard count <= buffer.count else { return nil }
        }
        let from = offset - start
        return buffer[from..<from + count]
    }

    /// The offset of the next occurrence of the record magic after `offset`, or nil.
    mutating func nextMagic(after offset: Int) throws -> Int? {
        let magic = RecordFrame.magic
        var position = offset + 1
        // Each pass moves past a whole chunk less the few bytes a magic could straddle.
        while position + magic.count <= fileSize {
            let length = min(Self.chunkBytes, fileSize - position)
            guard let chunk = try bytes(at: position, count: length) else { return nil }
            var index = chunk.startIndex
            while index + magic.count <= chunk.endIndex {
                if chunk[index] == magic[0], chunk[index + 1] == magic[1],
                    chunk[index + 2] == magic[2], chunk[index + 3] == magic[3]
                {
                    return position + (index - chunk.startIndex)
                }
                index += 1
            }
            position += length - (magic.count - 1)
        }
        return nil
    }
}

/// What a segment file holds: its valid records in order and the regions that were skipped.
struct SegmentScan {
    var records: [RecordLocation] = []
    var corruptRegions: [CorruptRegion] = []
    /// End of the last valid record; anything after it is corrupt.
    var validEnd = 0
    var fileSize = 0

    /// Reads a whole segment. A region that fails validation is skipped by looking for the next
    /// magic and checking the record there, so one damaged record never hides the ones after it.
    /// Sequence numbers must rise and stay in `firstSequence..<sequenceCeiling` (the next segment's
    /// first), which rejects stale frames that resynchronisation may find inside damaged payloads.
    init(descriptor: Int32, path: String, firstSequence: UInt64, sequenceCeiling: UInt64, maxRecordBytes: Int) throws {
        fileSize = try FileIO.size(of: descriptor, path: path)
        var window = FileWindow(descriptor: descriptor, path: path, fileSize: fileSize)
        var offset = 0
        var skipped: (start: Int, reason: CorruptionReason)?
        // The offset only grows (past a record, or to the next magic candidate), so this ends.
        while offset < fileSize {
            let minimumSequence = records.last.map { $0.sequence + 1 } ?? firstSequence
            switch try RecordFrame.validate(
                at: offset, in: &window, maxRecordBytes: maxRecordBytes,
                minimumSequence: minimumSequence, sequenceCeiling: sequenceCeiling)
            {
            case .valid(let location, _):
                if let skipped {
                    corruptRegions.append(
                        CorruptRegion(
                            file: path, offset: skipped.start, length: offset - skipped.start, reason: skipped.reason))
                }
                skipped = nil
                records.append(location)
                offset += RecordFrame.headerSize + location.length
                validEnd = offset
            case .invalid(let reason):
                if skipped == nil { skipped = (offset, reason) }
                offset = try window.nextMagic(after: offset) ?? fileSize
            }
        }
        if let skipped {
            corruptRegions.append(
                CorruptRegion(file: path, offset: skipped.start, length: fileSize - skipped.start, reason: skipped.reason))
        }
    }
}
