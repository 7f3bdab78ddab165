#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX file calls the config loader needs, with errno turned into `strerror` text
/// as Zabbix prints it.
enum LocalFiles {
    struct Failure: Error {
        var reason: String
    }

    enum Kind: Equatable {
        case regularFile
        case directory
        case other
    }

    /// Like `zbx_stat`: follows symbolic links.
    static func kind(of path: String) throws(Failure) -> Kind {
        var status = stat()
        guard stat(path, &status) == 0 else { throw lastFailure() }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// The whole file, or its first `limit` bytes (a PSK file is read no further than its first line).
    static func read(_ path: String, upTo limit: Int = .max) throws(Failure) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw lastFailure() }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: min(64 * 1024, limit))
        while contents.count < limit {
            let wanted = min(chunk.count, limit - contents.count)
            let count = chunk.withUnsafeMutableBytes { readBytes(descriptor, $0.baseAddress, wanted) }
            if count == 0 { return contents }
            if count < 0 {
                if errno == EINTR { continue }
                throw lastFailure()
            }
            contents.append(contentsOf: chunk[..<count])
        }
        return contents
    }

    /// Entry names without "." and "..", in `readdir` order.
    static func entries(of directory: String) throws(Failure) -> [String] {
        guard let stream = opendir(directory) else { throw lastFailure() }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static func lastFailure() -> Failure {
        Failure(reason: String(cString: strerror(errno)))
    }
}

/// At file scope `read` is the C call, not `LocalFiles.read`.
private func readBytes(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}
