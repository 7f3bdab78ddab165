import Glibc

/// What the queue keeps besides the records.
struct PersistedState: Equatable {
    var nextSequence: UInt64 = 1
    /// Every record up to here was dropped by a bound (or is gone with its segment).
    var discardedThrough: UInt64 = 0
    var droppedRecords: UInt64 = 0
    /// Consumer name to the last sequence it acknowledged.
    var positions: [String: UInt64] = [:]
    var values: [String: String] = [:]
}

/// The state file, integers little-endian:
///
///     magic E2 44 51 53 | u32 body length | u32 CRC-32 of body | body
///     body: u64 next sequence | u64 discarded through | u64 dropped records
///           | u32 consumer count | per consumer: u32 name length, name (UTF-8), u64 acknowledged through
///           | u32 entry count    | per entry: u32 key length, key, u32 value length, value
///
/// It is replaced, never edited: written to `state.tmp`, fsynced, renamed over `state`, and the
/// directory fsynced, so a crash leaves either the old or the new file whole.
enum StateFile {
    static let name = "state"
    static let temporaryName = "state.tmp"
    /// Refuses to believe (or write) anything bigger, so a damaged size never drives an allocation.
    static let maxBytes = 16 << 20
    private static let magic: [UInt8] = [0xE2, 0x44, 0x51, 0x53]
    private static let prefixSize = 12

    enum Loaded: Equatable {
        case present(PersistedState)
        case missing
        case corrupt(String)
    }

    static func load(directory: String) throws -> Loaded {
        let path = directory + "/" + name
        let descriptor: Int32
        do {
            descriptor = try Posix.open(path, O_RDONLY)
        } catch DurableQueueError.system(_, _, let code) where code == ENOENT {
            return .missing
        }
        defer { Posix.close(descriptor) }
        let size = try Posix.size(of: descriptor, path: path)
        guard size <= maxBytes else { return .corrupt("\(size) bytes, over the \(maxBytes)-byte limit") }
        let bytes = try Posix.read(descriptor, count: size, at: 0, path: path)
        return decode(bytes)
    }

    static func save(_ state: PersistedState, directory: String) throws {
        let bytes = encode(state)
        let path = directory + "/" + name
        guard bytes.count <= maxBytes else {
            throw DurableQueueError.stateTooLarge(path: path, bytes: bytes.count, limit: maxBytes)
        }
        let temporaryPath = directory + "/" + temporaryName
        let descriptor = try Posix.open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            try Posix.write(descriptor, bytes, at: 0, path: temporaryPath)
            try Posix.syncFile(descriptor, path: temporaryPath)
        } catch {
            Posix.close(descriptor)
            throw error
        }
        Posix.close(descriptor)
        try Posix.rename(temporaryPath, to: path)
        try Posix.syncDirectory(directory)
    }

    static func encode(_ state: PersistedState) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLittleEndian(state.nextSequence)
        body.appendLittleEndian(state.discardedThrough)
        body.appendLittleEndian(state.droppedRecords)
        body.appendLittleEndian(UInt32(state.positions.count))
        for (consumer, position) in state.positions.sorted(by: { $0.key < $1.key }) {
            appendString(consumer, to: &body)
            body.appendLittleEndian(position)
        }
        body.appendLittleEndian(UInt32(state.values.count))
        for (key, value) in state.values.sorted(by: { $0.key < $1.key }) {
            appendString(key, to: &body)
            appendString(value, to: &body)
        }
        var file = magic
        file.appendLittleEndian(UInt32(body.count))
        file.appendLittleEndian(CRC32.checksum(body))
        file.append(contentsOf: body)
        return file
    }

    static func decode(_ bytes: [UInt8]) -> Loaded {
        let file = bytes[...]
        guard file.count >= prefixSize, file.starts(with: magic) else { return .corrupt("bad header") }
        let bodyLength = Int(file.loadLittleEndian(UInt32.self, at: 4))
        guard bodyLength == file.count - prefixSize else {
            return .corrupt("body length \(bodyLength) but \(file.count - prefixSize) bytes follow the header")
        }
        let body = file.dropFirst(prefixSize)
        guard CRC32.checksum(body) == file.loadLittleEndian(UInt32.self, at: 8) else {
            return .corrupt("checksum mismatch")
        }
        var cursor = ByteCursor(bytes: body)
        var state = PersistedState()
        guard let nextSequence = cursor.read(UInt64.self),
            let discardedThrough = cursor.read(UInt64.self),
            let droppedRecords = cursor.read(UInt64.self),
            let consumerCount = cursor.readCount(minimumEntryBytes: 12)
        else { return .corrupt("bad counters") }
        state.nextSequence = nextSequence
        state.discardedThrough = discardedThrough
        state.droppedRecords = droppedRecords
        for _ in 0..<consumerCount {
            guard let consumer = cursor.readString(), let position = cursor.read(UInt64.self) else {
                return .corrupt("bad consumer entry")
            }
            state.positions[consumer] = position
        }
        guard let entryCount = cursor.readCount(minimumEntryBytes: 8) else { return .corrupt("bad key-value count") }
        for _ in 0..<entryCount {
            guard let key = cursor.readString(), let value = cursor.readString() else {
                return .corrupt("bad key-value entry")
            }
            state.values[key] = value
        }
        guard cursor.isAtEnd else { return .corrupt("trailing bytes") }
        return .present(state)
    }

    private static func appendString(_ string: String, to body: inout [UInt8]) {
        let utf8 = Array(string.utf8)
        body.appendLittleEndian(UInt32(utf8.count))
        body.append(contentsOf: utf8)
    }
}

/// Reads fields off the front of a byte slice; every read checks what is left first.
private struct ByteCursor {
    var bytes: ArraySlice<UInt8>

    var isAtEnd: Bool { bytes.isEmpty }

    mutating func read<Integer: FixedWidthInteger>(_ type: Integer.Type) -> Integer? {
        let size = MemoryLayout<Integer>.size
        guard bytes.count >= size else { return nil }
        defer { bytes = bytes.dropFirst(size) }
        return bytes.loadLittleEndian(type, at: 0)
    }

    /// A count whose entries (each at least `minimumEntryBytes`) could fit in what is left.
    mutating func readCount(minimumEntryBytes: Int) -> Int? {
        guard let count = read(UInt32.self).map(Int.init), count <= bytes.count / minimumEntryBytes else {
            return nil
        }
        return count
    }

    mutating func readString() -> String? {
        guard let length = read(UInt32.self).map(Int.init), length <= bytes.count else { return nil }
        defer { bytes = bytes.dropFirst(length) }
        return String(validating: bytes.prefix(length), as: UTF8.self)
    }
}
