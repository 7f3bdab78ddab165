/// Why a collection failed, worded for the admin who reads it in Zabbix or a terminal.
public enum CollectorError: Error, Sendable, CustomStringConvertible {
    /// Netlink sock_diag is forbidden or unavailable here (sandbox, seccomp, old kernel).
    case netlinkRefused(reason: String, errno: Int32)
    /// The kernel's netlink reply did not parse.
    case malformedNetlink(NetlinkError)
    case procUnreadable(path: String, reason: String)
    case procMalformed(path: String, error: ProcNetParseError)
    case namespaceNotFound(String, path: String)
    case namespaceDenied(String, reason: String)
    /// setns refused: this process lacks CAP_SYS_ADMIN, so no other namespace can be entered either.
    case namespaceNeedsPrivilege(String)
    case namespaceFailed(String, reason: String)
    case kernelTable(KernelTableError)

    static let privilegeNeeded = "entering a namespace needs CAP_SYS_ADMIN (run as root)"

    public var description: String {
        switch self {
        case .netlinkRefused(let reason, _): "netlink sock_diag unavailable: \(reason)"
        case .malformedNetlink(let error): "netlink sock_diag: \(error)"
        case .procUnreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .procMalformed(let path, let error): "\(path): \(error)"
        case .namespaceNotFound(let name, let path):
            name == path ? "network namespace \"\(name)\" does not exist" : "network namespace \"\(name)\" does not exist (no \(path))"
        case .namespaceDenied(let name, let reason): "cannot enter network namespace \"\(name)\": \(reason)"
        case .namespaceNeedsPrivilege(let name): "cannot enter network namespace \"\(name)\": \(Self.privilegeNeeded)"
        case .namespaceFailed(let name, let reason): "network namespace \"\(name)\": \(reason)"
        case .kernelTable(let error): "cannot read \(error)"
        }
    }
}
