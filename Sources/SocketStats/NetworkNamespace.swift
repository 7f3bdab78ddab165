import Glibc
import Posix
import CSockDiag

/// A network namespace to collect in: a name as `ip netns add` makes (/run/netns/NAME) or a
/// path such as /proc/PID/ns/net (a container's).
public struct NetworkNamespace: Sendable {
    /// What the user gave, for messages.
    public let name: String
    public let path: String

    public init(_ nameOrPath: String) {
        name = nameOrPath
        path = nameOrPath.contains("/") ? nameOrPath : "/run/netns/" + nameOrPath
    }

    /// Runs `body` with the calling thread in this namespace and puts the thread back in its own
    /// namespace before returning, whatever `body` does. Sockets and files opened inside keep
    /// the namespace they were opened in.
    public func run<Result>(_ body: () throws(CollectorError) -> Result) throws(CollectorError) -> Result {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else {
            throw .namespaceFailed(name, reason: "cannot open this thread's own namespace: \(describeErrno(errno))")
        }
        defer { close(original) }

        let target = open(path, O_RDONLY | O_CLOEXEC)
        guard target >= 0 else {
            let error = errno
            switch error {
            case ENOENT, ENOTDIR: throw .namespaceNotFound(name, path: path)
            case EACCES, EPERM: throw .namespaceDenied(name, reason: "\(path): \(describeErrno(error))")
            default: throw .namespaceFailed(name, reason: "\(path): \(describeErrno(error))")
            }
        }
        defer { close(target) }

        if csd_setns(target, csd_clone_newnet()) != 0 {
            let error = errno
            switch error {
            case EINVAL: throw .namespaceFailed(name, reason: "\(path) is not a network namespace")
            case EPERM: throw .namespaceNeedsPrivilege(name)
            default: throw .namespaceFailed(name, reason: "setns: \(describeErrno(error))")
            }
        }
        defer {
            // We left this namespace a moment ago with the same privileges; failing to return
            // would leave every later step of the process measuring the wrong host.
            if csd_setns(original, csd_clone_newnet()) != 0 {
                fatalError("cannot return to the original network namespace: \(describeErrno(errno))")
            }
        }
        return try body()
    }
}
