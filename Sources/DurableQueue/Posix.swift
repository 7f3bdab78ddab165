import Glibc

/// The system calls the queue uses, each turning failure into `DurableQueueError.system` with the
/// operation, the path and errno, and retrying EINTR a bounded number of times.
enum Posix {
    /// EINTR only follows a signal handler run; this many retries covers any realistic burst.
    private static let interruptRetries = 100

    @discardableResult
    static func call<Result: BinaryInteger>(
        _ operation: String, _ path: String, _ body: () -> Result
    ) throws -> Result {
        for _ in 0..<interruptRetries {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code != EINTR {
                throw DurableQueueError.system(operation: operation, path: path, errno: code)
            }
        }
        throw DurableQueueError.system(operation: operation, path: path, errno: EINTR)
    }

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws -> Int32 {
        try call("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// Errors from close are ignored: everything the queue relies on was synced before.
    static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    /// Up to `count` bytes at `offset`; fewer only when the file ends first.
    static func read(_ descriptor: Int32, count: Int, at offset: Int, path: String) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        var filled = 0
        // Every pass reads at least one byte or stops at end of file.
        while filled < count {
            let got = try buffer.withUnsafeMutableBytes { raw in
                try call("pread", path) {
                    pread(descriptor, raw.baseAddress! + filled, count - filled, off_t(offset + filled))
                }
            }
            if got == 0 { break }
            filled += got
        }
        return filled == count ? buffer : Array(buffer[..<filled])
    }

    static func write(_ descriptor: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws {
        var written = 0
        // Every pass writes at least one byte or throws.
        while written < bytes.count {
            let put = try bytes.withUnsafeBytes { raw in
                try call("pwrite", path) {
                    pwrite(descriptor, raw.baseAddress! + written, raw.count - written, off_t(offset + written))
                }
            }
            // A regular file never takes zero bytes of a non-empty write; fail rather than spin.
            guard put > 0 else {
                throw DurableQueueError.system(operation: "pwrite", path: path, errno: EIO)
            }
            written += put
        }
    }

    static func syncData(_ descriptor: Int32, path: String) throws {
        try call("fdatasync", path) { fdatasync(descriptor) }
    }

    static func syncFile(_ descriptor: Int32, path: String) throws {
        try call("fsync", path) { fsync(descriptor) }
    }

    /// Makes creations, renames and deletions inside `path` durable.
    static func syncDirectory(_ path: String) throws {
        let descriptor = try open(path, O_RDONLY | O_DIRECTORY)
        defer { close(descriptor) }
        try call("fsync", path) { fsync(descriptor) }
    }

    static func truncate(_ descriptor: Int32, to size: Int, path: String) throws {
        try call("ftruncate", path) { ftruncate(descriptor, off_t(size)) }
    }

    static func size(of descriptor: Int32, path: String) throws -> Int {
        var info = stat()
        try call("fstat", path) { fstat(descriptor, &info) }
        return Int(info.st_size)
    }

    static func rename(_ source: String, to destination: String) throws {
        try call("rename", "\(source) -> \(destination)") { Glibc.rename(source, destination) }
    }

    /// Deletes `path`; a file that is already gone is not an error.
    static func removeFile(_ path: String) throws {
        do {
            try call("unlink", path) { unlink(path) }
        } catch DurableQueueError.system(_, _, let code) where code == ENOENT {
            return
        }
    }

    /// Creates `path` with `mode` unless it exists, and makes the new entry durable in its parent.
    static func makeDirectory(_ path: String, mode: mode_t) throws {
        do {
            try call("mkdir", path) { mkdir(path, mode) }
        } catch DurableQueueError.system(_, _, let code) where code == EEXIST {
            return
        }
        try syncDirectory(parentDirectory(of: path))
    }

    static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The names in a directory, without "." and "..".
    static func listDirectory(_ path: String, limit: Int) throws -> [String] {
        guard let handle = opendir(path) else {
            throw DurableQueueError.system(operation: "opendir", path: path, errno: errno)
        }
        defer { closedir(handle) }
        var names: [String] = []
        for _ in 0...limit + 2 {
            errno = 0
            guard let entry = readdir(handle) else {
                if errno != 0 {
                    throw DurableQueueError.system(operation: "readdir", path: path, errno: errno)
                }
                return names
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        throw DurableQueueError.tooManyDirectoryEntries(path: path, limit: limit)
    }

    /// Opens (creating) `path` and takes an exclusive flock on it; the kernel releases it when the
    /// process dies, so a crashed owner never leaves the directory locked.
    static func lockExclusively(_ path: String, directory: String) throws -> Int32 {
        let descriptor = try open(path, O_RDWR | O_CREAT)
        do {
            try call("flock", path) { flock(descriptor, LOCK_EX | LOCK_NB) }
        } catch DurableQueueError.system(_, _, let code) where code == EWOULDBLOCK {
            close(descriptor)
            throw DurableQueueError.directoryInUse(path: directory)
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }
}
