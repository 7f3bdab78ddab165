import ByteCoding
import Posix

/// What a cgroup is, as a person would say it.
public enum CgroupKind: String, Sendable {
    /// A systemd unit: nginx.service, ssh.socket (socket-activated services' connections count
    /// under the .socket unit: the listener was made there), session-3.scope...
    case service
    case socketUnit = "socket"
    /// A Docker container (docker-<id>.scope with the systemd driver, docker/<id> with cgroupfs).
    case container
    /// A Kubernetes pod (kubepods…pod<uid>… with either driver) or a container inside one.
    case pod
    /// Anything else: named by its path.
    case cgroup
}

/// The cgroup v2 path of process `pid` (its "0::/path" line in /proc/PID/cgroup, read as a bounded
/// prefix), or nil when it is gone or unreadable.
func cgroupPath(ofProcess pid: Int, procRoot: String) -> String? {
    guard let bytes = try? readRegularFile("\(procRoot)/\(pid)/cgroup", limit: 64 * 1024, prefixOnly: true) else { return nil }
    for line in splitBytes(bytes[...], at: UInt8(ascii: "\n")) where line.starts(with: "0::/".utf8) {
        return String(decoding: line.dropFirst(3), as: UTF8.self)
    }
    return nil
}

/// Names cgroups from their paths, and from the host's Docker and Kubernetes state where it can
/// be read as files (never through the Docker API).
public struct CgroupNamer: Sendable {
    /// Docker's data root: containers/<id>/config.v2.json holds the name.
    public var dockerRoot: String
    /// The kubelet's pod log directory: one <namespace>_<pod>_<uid> directory per pod.
    public var podLogRoot: String

    public static let defaultDockerRoot = "/var/lib/docker"
    public static let defaultPodLogRoot = "/var/log/pods"
    /// config.v2.json names the container near its start; the rest (the whole config) is not needed.
    static let dockerConfigPrefix = 256 * 1024
    static let maximumPods = 10_000

    private var podNames: [String: String]?

    public init(dockerRoot: String = CgroupNamer.defaultDockerRoot, podLogRoot: String = CgroupNamer.defaultPodLogRoot) {
        self.dockerRoot = dockerRoot
        self.podLogRoot = podLogRoot
    }

    /// A name and kind for the cgroup at `path` (relative to the hierarchy's root).
    public mutating func name(of path: String) -> (name: String, kind: CgroupKind) {
        let components = path.split(separator: "/").map(String.init)
        guard let last = components.last else { return (path, .cgroup) }
        if let pod = components.lazy.compactMap(Self.podUID).first {
            let podName = podName(uid: pod) ?? "pod " + pod
            if Self.podUID(last) == pod { return (podName, .pod) }
            let container = Self.containerID(last, parent: nil).map { String($0.prefix(12)) } ?? last
            return (podName + "/" + container, .pod)
        }
        if let id = Self.containerID(last, parent: components.dropLast().last) {
            return (dockerName(id: id) ?? String(id.prefix(12)), .container)
        }
        if last.hasSuffix(".service") { return (last, .service) }
        if last.hasSuffix(".socket") { return (last, .socketUnit) }
        return (path, .cgroup)
    }

    /// "docker-<64 hex>.scope" (systemd driver), "<runtime>-<64 hex>.scope" inside a pod, or a
    /// bare 64-hex directory under "docker" (cgroupfs driver).
    static func containerID(_ component: String, parent: String?) -> String? {
        var id = Substring(component)
        if id.hasSuffix(".scope"), let dash = id.lastIndex(of: "-") {
            id = id[id.index(after: dash)..<id.index(id.endIndex, offsetBy: -6)]
        } else if parent != nil && parent != "docker" {
            return nil
        }
        guard id.count == 64, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return String(id)
    }

    /// The pod uid in "kubepods-besteffort-pod<uid with _>.slice" or "pod<uid>" (cgroupfs).
    static func podUID(_ component: String) -> String? {
        let bytes = Array(component.utf8)
        guard let at = lastIndex(of: Array("pod".utf8), in: bytes) else { return nil }
        var uid = bytes[(at + 3)...]
        if uid.count > 6 && uid.suffix(6).elementsEqual(".slice".utf8) { uid = uid.dropLast(6) }
        guard uid.count == 36 || uid.count == 32,
              uid.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x2D || $0 == 0x5F })
        else { return nil }
        return String(decoding: uid.map { $0 == 0x5F ? 0x2D : $0 }, as: UTF8.self)
    }

    /// The container's name from config.v2.json ("Name":"/web"), read as a bounded prefix.
    func dockerName(id: String) -> String? {
        let path = dockerRoot + "/containers/" + id + "/config.v2.json"
        guard let bytes = try? readRegularFile(path, limit: Self.dockerConfigPrefix, prefixOnly: true) else { return nil }
        let key = Array("\"Name\":\"/".utf8)
        guard let at = Self.firstIndex(of: key, in: bytes) else { return nil }
        let name = bytes[(at + key.count)...].prefix { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        return name.isEmpty || name.count > 255 ? nil : String(decoding: name, as: UTF8.self)
    }

    static func firstIndex(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    static func lastIndex(of needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        return (0...(bytes.count - needle.count)).reversed().first { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    /// "namespace/pod" from /var/log/pods/<namespace>_<pod>_<uid>, listed once per namer.
    mutating func podName(uid: String) -> String? {
        if podNames == nil {
            var names: [String: String] = [:]
            for entry in (try? directoryEntries(podLogRoot, limit: Self.maximumPods)) ?? [] {
                let parts = entry.split(separator: "_", maxSplits: 2)
                if parts.count == 3 { names[String(parts[2])] = String(parts[0]) + "/" + String(parts[1]) }
            }
            podNames = names
        }
        return podNames?[uid]
    }
}
