import ByteCoding
import Glibc
import Posix
import Synchronization

/// The cgroup v2 hierarchy as seen through one of its mounts: where it is, and which directory
/// each cgroup id names. The kernel's cgroup id is the kernfs node id, which readdir reports as
/// d_ino and stat as st_ino on 64-bit hosts; `ss --cgroup` maps ids the same way.
public struct CgroupHierarchy: Sendable {
    /// The mount point, as /proc/self/mountinfo lists it.
    public let mountPoint: String

    public init(mountPoint: String) {
        self.mountPoint = mountPoint
    }

    /// mountinfo is a few KiB; a host with thousands of mounts stays well under this.
    static let mountinfoLimit = 4 * 1024 * 1024
    /// Bounds on one walk of the hierarchy: a node with more cgroups is reported as unresolved
    /// beyond them, never walked forever.
    static let maximumCgroups = 200_000
    static let maximumDepth = 64
    static let maximumEntriesPerDirectory = 100_000

    /// Finds the cgroup v2 mount of the calling process's mount namespace (the first cgroup2
    /// mount of the hierarchy's root). Never assumes /sys/fs/cgroup: hybrid hosts mount v1 there.
    public static func find(mountinfoPath: String = "/proc/self/mountinfo") throws(CgroupUnavailable) -> CgroupHierarchy {
        let text: [UInt8]
        do {
            text = try readRegularFile(mountinfoPath, limit: mountinfoLimit)
        } catch {
            throw CgroupUnavailable("cannot read \(mountinfoPath) (\(error))")
        }
        guard let mountPoint = cgroup2MountPoint(mountinfo: text) else {
            throw CgroupUnavailable("no cgroup v2 hierarchy is mounted (none in \(mountinfoPath))")
        }
        return CgroupHierarchy(mountPoint: mountPoint)
    }

    /// The mount point of the first cgroup2 mount whose root is the hierarchy's root, from the
    /// text of a mountinfo file: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER".
    public static func cgroup2MountPoint(mountinfo: [UInt8]) -> String? {
        for line in splitBytes(mountinfo[...], at: UInt8(ascii: "\n")) {
            let fields = splitBytes(line, at: UInt8(ascii: " "))
            guard let dash = fields.firstIndex(where: { $0.elementsEqual("-".utf8) }),
                  dash >= 6, dash + 1 < fields.count,
                  fields[dash + 1].elementsEqual("cgroup2".utf8),
                  fields[3].elementsEqual("/".utf8)
            else { continue }
            return unescapeMountField(fields[4])
        }
        return nil
    }

    /// mountinfo writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
    static func unescapeMountField(_ field: ArraySlice<UInt8>) -> String {
        var bytes: [UInt8] = []
        var index = field.startIndex
        while index < field.endIndex {
            if field[index] == UInt8(ascii: "\\"), field.endIndex - index >= 4,
               let value = UInt8(String(decoding: field[(index + 1)..<(index + 4)], as: UTF8.self), radix: 8) {
                bytes.append(value)
                index += 4
            } else {
                bytes.append(field[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Every cgroup's id and path relative to the root ("/" for the root itself,
    /// "/system.slice/nginx.service" below it). Reads directories only, through readdir's d_ino
    /// and d_type: no link is followed and no file is opened.
    public func walk() throws(CgroupUnavailable) -> [UInt64: String] {
        var status = stat()
        guard lstat(mountPoint, &status) == 0 else {
            throw CgroupUnavailable("cannot stat the cgroup v2 mount \(mountPoint): \(describeErrno(errno))")
        }
        var paths: [UInt64: String] = [UInt64(status.st_ino): "/"]
        var pending: [(relative: String, depth: Int)] = [("", 0)]
        while let (relative, depth) = pending.popLast(), paths.count < Self.maximumCgroups {
            // A cgroup removed while we walk is simply not there any more.
            guard let entries = try? readDirectory(mountPoint + relative, limit: Self.maximumEntriesPerDirectory) else { continue }
            for entry in entries {
                let path = relative + "/" + entry.name
                var inode = entry.inode
                if !entry.isDirectory {
                    // cgroupfs always says; a file system that does not (DT_UNKNOWN) is asked, without following links.
                    var status = stat()
                    guard entry.type == UInt8(DT_UNKNOWN), lstat(mountPoint + path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { continue }
                    inode = UInt64(status.st_ino)
                }
                paths[inode] = path
                if depth + 1 < Self.maximumDepth { pending.append((path, depth + 1)) }
            }
        }
        return paths
    }

    /// The id of the cgroup at `path` (relative to the root) now, or nil when it is gone.
    func currentID(of path: String) -> UInt64? {
        var status = stat()
        guard lstat(mountPoint + (path == "/" ? "" : path), &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return nil }
        return UInt64(status.st_ino)
    }
}

/// Why the cgroups section has nothing to say.
public struct CgroupUnavailable: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// Cgroup id -> path, kept between polls: the hierarchy is walked again only when an id is new
/// (neither found nor missing at the last walk) or a cached path now names another cgroup, at
/// most once per poll. Sockets outliving their cgroup keep its id: those ids stay "missing" and
/// do not make every poll walk the whole hierarchy.
public final class CgroupPathCache: Sendable {
    public static let shared = CgroupPathCache()

    private struct State {
        var mountPoint = ""
        var paths: [UInt64: String] = [:]
        var missing: Set<UInt64> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The path of each id in `ids` that names a live cgroup; the others are absent.
    public func resolve(_ ids: [UInt64], in hierarchy: CgroupHierarchy) throws(CgroupUnavailable) -> [UInt64: String] {
        let known = state.withLock { $0.mountPoint == hierarchy.mountPoint ? $0 : State() }
        var resolved: [UInt64: String] = [:]
        var stale = false
        for id in ids where !known.missing.contains(id) {
            if let path = known.paths[id], hierarchy.currentID(of: path) == id { resolved[id] = path } else { stale = true }
        }
        guard stale else { return resolved }
        let paths = try hierarchy.walk()
        resolved = [:]
        var missing: Set<UInt64> = []
        for id in ids {
            if let path = paths[id] { resolved[id] = path } else { missing.insert(id) }
        }
        state.withLock { $0 = State(mountPoint: hierarchy.mountPoint, paths: paths, missing: missing) }
        return resolved
    }
}
