import Glibc
import Posix

/// The queue's directory, held open: every file in it is opened relative to this descriptor and
/// never through a symbolic link, so a link planted in the directory cannot redirect a write.
/// The descriptor also carries the queue's lock (flock on the directory itself, which no one can
/// delete from under it).
struct QueueDirectory {
    let path: String
    let descriptor: Int32

    /// Opens `path` (creating it with mode 0700 if missing), refuses a directory this process does
    /// not own or that group or others may write, as OpenSSH refuses such key directories, and
    /// locks it.
    static func open(_ path: String) throws -> QueueDirectory {
        do {
            try call("mkdir", path) { mkdir(path, 0o700) }
            try syncDirectory(parentDirectory(of: path))
        } catch DurableQueueError.system(_, _, let code) where code == EEXIST {
        }
        let descriptor = try call("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        let directory = QueueDirectory(path: path, descriptor: descriptor)
        do {
            try directory.checkOwnership()
            try directory.lock()
        } catch {
            directory.close()
            throw error
        }
        return directory
    }

    private func checkOwnership() throws {
        let status = try FileIO.status(of: descriptor, path: path)
        guard status.st_uid == geteuid() else {
            throw DurableQueueError.unsafeDirectory(
                path: path, reason: "owned by uid \(status.st_uid), not by this process (uid \(geteuid()))")
        }
        guard status.st_mode & 0o022 == 0 else {
            let mode = String(status.st_mode & 0o7777, radix: 8)
            throw DurableQueueError.unsafeDirectory(
                path: path, reason: "writable by group or others (mode \(mode)); run chmod go-w \(path)")
        }
    }

    private func lock() throws {
        let result = flock(descriptor, LOCK_EX | LOCK_NB)
        if result == 0 { return }
        if errno == EWOULDBLOCK { throw DurableQueueError.directoryInUse(path: path) }
        // With LOCK_NB flock does not wait, so no signal interrupts it.
        throw DurableQueueError.system(operation: "flock", path: path, errno: errno)
    }

    func close() { _ = Glibc.close(descriptor) }

    func filePath(_ name: String) -> String { path + "/" + name }

    /// Opens an existing file of the directory; a symbolic link fails with ELOOP.
    func openFile(_ name: String, _ flags: Int32) throws -> Int32 {
        try call("open", filePath(name)) { openat(descriptor, name, flags | O_NOFOLLOW | O_CLOEXEC) }
    }

    /// Creates a new file; anything already there under that name, a link included, fails with EEXIST.
    func createFile(_ name: String) throws -> Int32 {
        try call("create", filePath(name)) {
            openat(descriptor, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
    }

    /// Deletes a directory entry (a link itself, never its target); one already gone is not an error.
    func remove(_ name: String) throws {
        do {
            try call("unlink", filePath(name)) { unlinkat(descriptor, name, 0) }
        } catch DurableQueueError.system(_, _, let code) where code == ENOENT {
        }
    }

    func rename(_ source: String, to destination: String) throws {
        try call("rename", "\(filePath(source)) -> \(filePath(destination))") {
            renameat(descriptor, source, descriptor, destination)
        }
    }

    /// Makes creations, renames and deletions in the directory durable.
    func sync() throws {
        try call("fsync", path) { fsync(descriptor) }
    }

    func list(limit: Int) throws -> [String] {
        do {
            return try directoryEntries(path, limit: limit)
        } catch .tooLarge {
            throw DurableQueueError.tooManyDirectoryEntries(path: path, limit: limit)
        } catch {
            throw DurableQueueError.system(operation: "list", path: path, errno: error.errnoCode ?? EIO)
        }
    }

    private static func syncDirectory(_ path: String) throws {
        let descriptor = try call("open", path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { _ = Glibc.close(descriptor) }
        try call("fsync", path) { fsync(descriptor) }
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// A system call through the project's EINTR loop, its failure as `DurableQueueError.system`.
@discardableResult
func call<Result: BinaryInteger>(_ operation: String, _ path: String, _ body: () -> Result) throws -> Result {
    do {
        return try retryingInterrupts(operation, path, body)
    } catch {
        throw DurableQueueError.system(operation: error.operation, path: error.path, errno: error.code)
    }
}

/// Reads and writes on open descriptors, whole or failing.
enum FileIO {
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

    static func truncate(_ descriptor: Int32, to size: Int, path: String) throws {
        try call("ftruncate", path) { ftruncate(descriptor, off_t(size)) }
    }

    static func size(of descriptor: Int32, path: String) throws -> Int {
        Int(try status(of: descriptor, path: path).st_size)
    }

    static func status(of descriptor: Int32, path: String) throws -> stat {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            throw DurableQueueError.system(operation: "fstat", path: path, errno: errno)
        }
        return info
    }
}
