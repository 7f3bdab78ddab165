import Glibc

/// "ENOSPC (No space left on device)": the symbolic name tells admins what to search for, the
/// text what it means. The one errno describer of the project.
public func describeErrno(_ code: Int32) -> String {
    let text = strerror(code).map { String(cString: $0) } ?? "error \(code)"
    guard let name = errnoNames[code] else { return text }
    return "\(name) (\(text))"
}

private let errnoNames: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EINTR: "EINTR", EIO: "EIO", EBADF: "EBADF", EAGAIN: "EAGAIN",
    ENOMEM: "ENOMEM", EACCES: "EACCES", EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV",
    ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", ENFILE: "ENFILE", EMFILE: "EMFILE",
    EFBIG: "EFBIG", ENOSPC: "ENOSPC", EROFS: "EROFS", ENAMETOOLONG: "ENAMETOOLONG",
    ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", EDQUOT: "EDQUOT", ESTALE: "ESTALE", ENXIO: "ENXIO",
    EPROTONOSUPPORT: "EPROTONOSUPPORT", EAFNOSUPPORT: "EAFNOSUPPORT", ENOBUFS: "ENOBUFS",
    EOPNOTSUPP: "EOPNOTSUPP", EPIPE: "EPIPE", ECONNREFUSED: "ECONNREFUSED",
]

/// A failed system call: what was attempted, on which file, and errno.
public struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var code: Int32

    public init(_ operation: String, _ path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "\(operation) \(path): \(describeErrno(code))" }
}

/// EINTR only follows a signal handler run; this many retries covers any realistic burst.
private let interruptRetries = 100

/// Runs a system call until it returns something other than -1 with EINTR (a bounded number of
/// times), turning -1 into `SystemCallError`. The one EINTR loop of the project.
@discardableResult
public func retryingInterrupts<Result: BinaryInteger>(
    _ operation: String, _ path: String, _ body: () -> Result
) throws(SystemCallError) -> Result {
    for _ in 0..<interruptRetries {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code != EINTR { throw SystemCallError(operation, path, code: code) }
    }
    throw SystemCallError(operation, path, code: EINTR)
}
