import ZabbixProtocol
import Glibc
import Posix

/// The few file calls the config loader needs, with errors worded as Zabbix prints them.
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
        guard stat(path, &status) == 0 else { throw Failure(reason: describeErrno(errno)) }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// The whole regular file, at most `limit` bytes; with `prefixOnly` its first `limit` bytes
    /// (a PSK file is read no further than its first line).
    static func read(_ path: String, limit: Int, prefixOnly: Bool = false) throws(Failure) -> [UInt8] {
        do {
            return try readRegularFile(path, limit: limit, prefixOnly: prefixOnly)
        } catch {
            switch error {
            case .system(let failure): throw Failure(reason: describeErrno(failure.code))
            case .notRegularFile: throw Failure(reason: "not a regular file")
            case .tooLarge(_, let limit): throw Failure(reason: "larger than \(limit) bytes")
            }
        }
    }

    /// Entry names without "." and "..", in `readdir` order; at most `limit`.
    static func entries(of directory: String, limit: Int) throws(Failure) -> [String] {
        do {
            return try directoryEntries(directory, limit: limit)
        } catch .tooLarge(_, let limit) {
            throw Failure(reason: "more than \(limit) entries")
        } catch {
            throw Failure(reason: error.errnoCode.map(describeErrno) ?? "\(error)")
        }
    }
}
