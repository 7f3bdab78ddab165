import ByteCoding
import Glibc

/// What the queue keeps besides the records.
struct PersistedState: Equatable {
    /// Rises with every save: tells the newer of the two copies.
    var generation: UInt64 = 0
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
///     magic E2 44 51 54 | u32 body length | u32 CRC-32 of body | body
///     body: u64 generation | u64 next sequence | u64 discarded through | u64 dropped records
///           | u32 consumer count | per consumer: u32 name length, name (UTF-8), u64 acknowledged through
///           | u32 entry count    | per entry: u32 key length, key, u32 value length, value
///
/// (Magic E2 44 51 53 is the first version, without the generation; it is still read.)
///
/// Kept twice, as `state` and `state.copy`, each replaced, never edited: written to a new
/// temporary file, fsynced, renamed over its name, then the directory fsynced. A crash leaves each
/// copy old or new and whole; the copy with the higher generation wins. `state` is written at
/// every save; `state.copy` whenever the owner's values change and at least every
/// `DurableQueue.copyInterval` saves, so it keeps the owner's values (the sender session) exactly
/// and the positions a little behind. Losing one file therefore loses nothing: at worst some
/// delivered records are read again, under the same session, and the server drops them. Without
/// any copy the session would be gone and those records would go out again under a new one.
enum StateFile {
    static let names = ["state", "state.copy"]
    static let temporaryName = "state.tmp"
    /// Refuses to believe (or write) anything bigger, so a damaged size never drives an allocation.
    static let maxBytes = 16 << 20
    private static let magic: [UInt8] = [0xE2, 0x44, 0x51, 0x54]
    private static let firstVersionMagic: [UInt8] = [0xE2, 0x44, 0x51, 0x53]
    private static let prefixSize = 12

    enum Loaded: Equatable {
        case present(PersistedState)
        case missing
        case corrupt(String)
    }

    /// The newest whole copy, and what was wrong with each copy that was not used (name, problem).
    static func load(_ directory: QueueDirectory) throws -> (Loaded, damaged: [(name: String, problem: Loaded)]) {
        var copies: [(name: String, loaded: Loaded)] = []
        for name in names {
            copies.append((name, try load(name, in: directory)))
        }
        let whole = copies.compactMap { copy -> (name: String, state: PersistedState)? in
            if case .present(let state) = copy.loaded { return (copy.name, state) }
            return nil
        }
        guard let best = whole.max(by: { $0.state.generation < $1.state.generation }) else {
            // Nothing whole: report the first copy's problem.
            let problem = copies.first { $0.loaded != .missing }?.loaded ?? .missing
            return (problem, [])
        }
        // A whole but older copy is expected (state.copy lags), not damage.
        let damaged = copies.filter { copy in
            if case .present = copy.loaded { return false }
            return true
        }.map { (name: $0.name, problem: $0.loaded) }
        return (.present(best.state), damaged)
    }

    private static func load(_ name: String, in directory: QueueDirectory) throws -> Loaded {
        let path = directory.filePath(name)
        let descriptor: Int32
        do {
            descriptor = try directory.openFile(name, O_RDONLY)
        } catch DurableQueueError.system(_, _, let code) where code == ENOENT {
            return .missing
        } catch DurableQueueError.system(_, _, let code) where code == ELOOP {
            return .corrupt("a symbolic link, not the queue's own file; ignored")
        }
        defer { FileIO.close(descriptor) }
        let size = try FileIO.size(of: descriptor, path: path)
        guard size <= maxBytes else { return .corrupt("\(size) bytes, over the \(maxBytes)-byte limit") }
        let bytes = try FileIO.read(descriptor, count: size, at: 0, path: path)
        return decode(bytes)
    }

    /// Writes `state`, and `state.copy` too when `withCopy`, one after the other, so one of them
    /// is whole at every moment; one directory fsync makes both renames durable (until then each
    /// name still points at its whole old file).
    static func save(_ state: PersistedState, in directory: QueueDirectory, withCopy: Bool) throws {
        let bytes = encode(state)
        guard bytes.count <= maxBytes else {
            throw DurableQueueError.stateTooLarge(path: directory.filePath(names[0]), bytes: bytes.count, limit: maxBytes)
        }
        for name in withCopy ? names : [names[0]] {
            try directory.remove(temporaryName)
            let temporaryPath = directory.filePath(temporaryName)
            let descriptor = try directory.createFile(temporaryName)
            do {
                try FileIO.write(descriptor, bytes, at: 0, path: temporaryPath)
                try FileIO.syncFile(descriptor, path: temporaryPath)
            } catch {
                FileIO.close(descriptor)
                try? directory.remove(temporaryName)
                throw error
            }
            FileIO.close(descriptor)
            try directory.rename(temporaryName, to: name)
        }
        try directory.sync()
    }

    static func encode(_ state: PersistedState) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLittleEndian(state.generation)
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
        let hasGeneration = file.starts(with: magic)
        guard file.count >= prefixSize, hasGeneration || file.starts(with: firstVersionMagic) else {
            return .corrupt("bad header")
        }
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
        if hasGeneration {
            guard let generation = cursor.read(UInt64.self) else { return .corrupt("bad counters") }
            state.generation = generation
        }
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
