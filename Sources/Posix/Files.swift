import Glibc

/// Why a file could not be read whole.
public enum FileReadError: Error, Equatable, Sendable, CustomStringConvertible {
    case system(SystemCallError)
    /// A FIFO, device or socket: reading it could block forever or never end.
    case notRegularFile(path: String)
    case tooLarge(path: String, limit: Int)

    public var errnoCode: Int32? {
        if case .system(let error) = self { return error.code }
        return nil
    }

    public var description: String {
        switch self {
        case .system(let error): "cannot \(error.operation) \(error.path): \(describeErrno(error.code))"
        case .notRegularFile(let path): "\(path) is not a regular file"
        case .tooLarge(let path, let limit): "\(path) is larger than \(limit) bytes"
        }
    }
}

/// Opens `path` for reading without blocking on a FIFO, and checks that it is a regular file.
/// The caller closes the descriptor.
public func openRegularFile(_ path: String) throws(FileReadError) -> Int32 {
    let descriptor: Int32
    do {
        descriptor = try retryingInterrupts("open", path) { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
    } catch {
        throw .system(error)
    }
    var status = stat()
    guard fstat(descriptor, &status) == 0 else {
        let code = errno
        close(descriptor)
        throw .system(SystemCallError("fstat", path, code: code))
    }
    guard status.st_mode & S_IFMT == S_IFREG else {
        close(descriptor)
        throw .notRegularFile(path: path)
    }
    return descriptor
}

/// The whole of a regular file of at most `limit` bytes. Refuses FIFOs, devices and sockets
/// (`/dev/zero` never ends) and anything larger than the limit, so no input drives memory.
/// With `prefixOnly`, a longer file is not an error: its first `limit` bytes are returned.
public func readRegularFile(_ path: String, limit: Int, prefixOnly: Bool = false) throws(FileReadError) -> [UInt8] {
    let descriptor = try openRegularFile(path)
    defer { close(descriptor) }
    var contents: [UInt8] = []
    // Uninitialised: zeroing 64 KiB for each of a poll's dozen small /proc files cost more
    // than reading them.
    let chunk = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: min(64 * 1024, limit + 1))
    defer { chunk.deallocate() }
    // Every pass reads at least one byte or ends; one byte past the limit proves it too large.
    while contents.count <= limit {
        let wanted = min(chunk.count, limit + 1 - contents.count)
        let count: Int
        do {
            count = try retryingInterrupts("read", path) { read(descriptor, chunk.baseAddress, wanted) }
        } catch {
            throw .system(error)
        }
        if count == 0 { return contents }
        contents += UnsafeBufferPointer(rebasing: chunk[..<count])
    }
    if prefixOnly { return Array(contents.prefix(limit)) }
    throw .tooLarge(path: path, limit: limit)
}

/// The names in a directory, without "." and "..", in `readdir` order; at most `limit` of them
/// (a directory with more throws `tooLarge`).
public func directoryEntries(_ path: String, limit: Int) throws(FileReadError) -> [String] {
    try readDirectory(path, limit: limit).map(\.name)
}

/// One entry of a directory as `readdir` reports it, without following anything.
public struct DirectoryEntry: Sendable, Equatable {
    public var name: String
    /// d_ino: on cgroupfs and other kernfs file systems, the node's id.
    public var inode: UInt64
    /// d_type: DT_DIR, DT_LNK, DT_REG... or DT_UNKNOWN when the file system does not say.
    public var type: UInt8

    public var isDirectory: Bool { type == UInt8(DT_DIR) }
}

/// The entries of a directory, without "." and "..", in `readdir` order; at most `limit` of
/// them (a directory with more throws `tooLarge`).
public func readDirectory(_ path: String, limit: Int) throws(FileReadError) -> [DirectoryEntry] {
    guard let handle = opendir(path) else { throw .system(SystemCallError("opendir", path, code: errno)) }
    defer { closedir(handle) }
    var entries: [DirectoryEntry] = []
    for _ in 0...limit + 2 {
        errno = 0
        guard let entry = readdir(handle) else {
            if errno != 0 { throw .system(SystemCallError("readdir", path, code: errno)) }
            return entries
        }
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." {
            entries.append(DirectoryEntry(name: name, inode: UInt64(entry.pointee.d_ino), type: entry.pointee.d_type))
        }
    }
    throw .tooLarge(path: path, limit: limit)
}
