import Glibc
import Posix

/// Every network namespace on the host, each once: the caller's, the names of `ip netns`
/// (/run/netns), bind mounts such as Docker's (/run/docker/netns), and those of every process
/// (/proc/PID/ns/net), told apart by the device and inode of their nsfs file.
public struct NamespaceDiscovery: Sendable {
    /// One namespace found, with the file to enter it through.
    public struct Found: Sendable, Equatable {
        public var name: String
        /// /run/netns/NAME, a bind mount, or /proc/PID/ns/net.
        public var path: String
        public var inode: UInt64
        /// The caller's own namespace (the top-level counts).
        public var isCallers: Bool
    }

    public var found: [Found] = []
    /// What could not be looked at, for the admin: processes whose namespace is hidden from us.
    public var problems: [String] = []

    public var procRoot = "/proc"
    public var namedDirectory = "/run/netns"
    /// Directories of namespace bind mounts that name no namespace a person knows; each file's
    /// namespace is named from its first process, else "<directory's last component>:<file>".
    public var bindMountDirectories = ["/run/docker/netns"]

    /// pid_max is at most 4,194,304; /proc lists a few dozen more names than pids.
    static let maximumProcEntries = 4_194_304 + 1024
    static let maximumNamedNamespaces = 100_000

    public init() {}

    private struct Key: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    /// Looks for namespaces; never throws: what it cannot see goes into `problems`.
    public mutating func discover() {
        found = []
        problems = []
        var index: [Key: Int] = [:]
        var unnamed: Set<Int> = []
        var namer = CgroupNamer()

        func add(_ name: String, path: String, status: stat, isCallers: Bool = false) -> Int? {
            let key = Key(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
            if index[key] != nil { return nil }
            index[key] = found.count
            found.append(Found(name: name, path: path, inode: key.inode, isCallers: isCallers))
            return found.count - 1
        }

        var own = stat()
        guard stat(procRoot + "/thread-self/ns/net", &own) == 0 else {
            problems.append("cannot stat \(procRoot)/thread-self/ns/net: \(describeErrno(errno))")
            return
        }
        var first = stat()
        let isHost = stat(procRoot + "/1/ns/net", &first) == 0 && first.st_ino == own.st_ino && first.st_dev == own.st_dev
        _ = add(isHost ? "host" : "self", path: procRoot + "/thread-self/ns/net", status: own, isCallers: true)
        let callersName = found.count - 1

        // A bind-mounted namespace file is on nsfs, the device of our own namespace file; a
        // leftover plain file (a failed `ip netns add`) or a planted link is not.
        func mountedNamespace(_ path: String) -> stat? {
            var status = stat()
            guard lstat(path, &status) == 0, status.st_dev == own.st_dev else { return nil }
            return status
        }
        for entry in (try? readDirectory(namedDirectory, limit: Self.maximumNamedNamespaces)) ?? [] {
            let path = namedDirectory + "/" + entry.name
            guard let status = mountedNamespace(path) else { continue }
            if let existing = index[Key(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))] {
                // `ip netns` names the caller's namespace: use that name.
                if existing == callersName { found[existing].name = entry.name }
                continue
            }
            _ = add(entry.name, path: path, status: status)
        }
        for directory in bindMountDirectories {
            let label = directory.split(separator: "/").last.map(String.init) ?? directory
            for entry in (try? readDirectory(directory, limit: Self.maximumNamedNamespaces)) ?? [] {
                let path = directory + "/" + entry.name
                guard let status = mountedNamespace(path), let added = add(label + ":" + entry.name, path: path, status: status) else { continue }
                unnamed.insert(added)
            }
        }

        var hidden = 0
        var hiddenReason: Int32 = 0
        let entries: [String]
        do {
            entries = try directoryEntries(procRoot, limit: Self.maximumProcEntries)
        } catch {
            problems.append("cannot list processes: \(error)")
            entries = []
        }
        for name in entries {
            guard let pid = Int(name), pid > 0 else { continue }
            let path = "\(procRoot)/\(pid)/ns/net"
            var status = stat()
            guard stat(path, &status) == 0 else {
                // ENOENT: the process ended (or is a kernel thread's zombie); not a problem.
                if errno != ENOENT && errno != ESRCH {
                    hidden += 1
                    hiddenReason = errno
                }
                continue
            }
            let key = Key(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
            if let existing = index[key] {
                if unnamed.remove(existing) != nil, let owner = processName(pid, namer: &namer) { found[existing].name = owner }
                continue
            }
            _ = add(processName(pid, namer: &namer) ?? "pid:\(pid)", path: path, status: status)
        }
        if hidden > 0 {
            let processes = hidden == 1 ? "1 process" : "\(hidden) processes"
            // Root is refused only by a security module or a process's own protection: no hint then.
            let hint = geteuid() == 0 ? "" : " (other users' processes need CAP_SYS_PTRACE)"
            problems.append("the network namespace of \(processes) could not be inspected: \(describeErrno(hiddenReason))" + hint)
        }
        // Two namespaces of one service keep apart by their inode.
        var seen: [String: Int] = [:]
        for position in found.indices { seen[found[position].name, default: 0] += 1 }
        for position in found.indices where seen[found[position].name]! > 1 {
            found[position].name += "@\(found[position].inode)"
        }
    }

    /// The unit, container or pod of a process's cgroup (cgroup v2 line "0::/path"); nil when
    /// it is only a path.
    private func processName(_ pid: Int, namer: inout CgroupNamer) -> String? {
        guard let path = cgroupPath(ofProcess: pid, procRoot: procRoot) else { return nil }
        let (name, kind) = namer.name(of: path)
        return kind == .cgroup ? nil : name
    }
}

/// The sockets of every network namespace, counted one after the other.
public struct NamespaceSurvey: Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var inode: UInt64
        /// nil when the namespace could not be counted; `problem` says why.
        public var snapshot: Snapshot?
        public var problem: String?
    }

    public var entries: [Entry]
    /// Discovery problems and namespaces that could not be entered, for stderr and the JSON.
    public var problems: [String]

    public var counted: Int { entries.count { $0.snapshot != nil } }
}
