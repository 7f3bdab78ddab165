#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// "EPERM (Operation not permitted)": the symbolic name tells admins what to search for.
func describeErrno(_ code: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", EACCES: "EACCES", EINVAL: "EINVAL", ENOTDIR: "ENOTDIR",
        EPROTONOSUPPORT: "EPROTONOSUPPORT", EAFNOSUPPORT: "EAFNOSUPPORT", ENOBUFS: "ENOBUFS",
        EAGAIN: "EAGAIN", EMFILE: "EMFILE", ENOMEM: "ENOMEM", EBADF: "EBADF", EOPNOTSUPP: "EOPNOTSUPP",
    ]
    let text = strerror(code).map { String(cString: $0) } ?? "error \(code)"
    if let name = names[code] { return "\(name) (\(text))" }
    return text
}

/// An errno value as a thrown error.
struct Errno: Error {
    var code: Int32
}
