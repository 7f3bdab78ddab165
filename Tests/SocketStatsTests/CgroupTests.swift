import Foundation
import XCTest
@testable import SocketStats

final class CgroupTests: XCTestCase {
    private func socket(_ transport: TransportProtocol, _ state: TCPState, cgroup: UInt64) -> SocketRecord {
        SocketRecord(transport: transport, isIPv6: false, state: state.rawValue, cgroupID: cgroup)
    }

    func testTallyCountsPerCgroupAndGrowsPastItsFirstTable() {
        var tally = CgroupTally()
        // 1,000 cgroups: the table starts with 64 slots and must grow without losing a count.
        for id in UInt64(1)...1000 {
            for _ in 0..<(id % 3 + 1) { tally.visit(socket(.tcp, .established, cgroup: id * 7919)) }
            tally.visit(socket(.udp, .close, cgroup: id * 7919))
        }
        tally.visit(socket(.tcp, .timeWait, cgroup: 0))
        tally.visit(socket(.tcp, .synRecv, cgroup: 0))
        let counted = tally.byID
        XCTAssertEqual(counted.count, 1000)
        for (index, entry) in counted.enumerated() {
            let id = UInt64(index + 1)
            XCTAssertEqual(entry.id, id * 7919)
            XCTAssertEqual(entry.counts.tcp[.established], id % 3 + 1)
            XCTAssertEqual(entry.counts.udp.unconn, 1)
        }
        XCTAssertEqual(tally.unattributed.tcp.total, 2)
        XCTAssertEqual(tally.fullSocketsWithoutID, 0, "TIME_WAIT and SYN_RECV never carry an id")
        tally.visit(socket(.tcp, .established, cgroup: 0))
        XCTAssertEqual(tally.fullSocketsWithoutID, 1)
        tally.startOver()
        XCTAssertTrue(tally.byID.isEmpty)
        XCTAssertEqual(tally.unattributed, CgroupCounts())
    }

    func testLastCgroupMemoFollowsAlternationAndStartOver() {
        var tally = CgroupTally()
        for id: UInt64 in [5, 9, 5, 5, 9] { tally.visit(socket(.tcp, .established, cgroup: id)) }
        XCTAssertEqual(tally.byID.map(\.id), [5, 9])
        XCTAssertEqual(tally.byID.map { $0.counts.tcp[.established] }, [3, 2])
        // The memo still names 9's slot, which startOver empties: the next 9 must claim it anew.
        tally.startOver()
        tally.visit(socket(.tcp, .closeWait, cgroup: 9))
        tally.visit(socket(.tcp, .closeWait, cgroup: 9))
        XCTAssertEqual(tally.byID.map(\.id), [9])
        XCTAssertEqual(tally.byID.first?.counts.tcp[.closeWait], 2)
        XCTAssertTrue(tally.sawCgroupIDs)
    }

    func testMountinfoFindsTheCgroup2RootMountNotV1() {
        let text = """
            25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
            26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
            30 25 0:28 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory
            90 1 0:24 /system.slice /srv/sub rw - cgroup2 none rw
            91 1 0:24 / /tmp/with\\040space rw - cgroup2 none rw
            """
        XCTAssertEqual(CgroupHierarchy.cgroup2MountPoint(mountinfo: Array(text.utf8)), "/sys/fs/cgroup/unified")
        let onlyBindAndEscaped = text.split(separator: "\n").filter { !$0.contains("unified") }.joined(separator: "\n")
        XCTAssertEqual(CgroupHierarchy.cgroup2MountPoint(mountinfo: Array(onlyBindAndEscaped.utf8)), "/tmp/with space",
                       "a mount of a sub-cgroup is skipped; \\040 is a space")
        XCTAssertNil(CgroupHierarchy.cgroup2MountPoint(mountinfo: Array("25 1 0:23 / /sys/fs/cgroup rw - cgroup cgroup rw".utf8)))
        XCTAssertNil(CgroupHierarchy.cgroup2MountPoint(mountinfo: [0xFF, 0x20, 0x2D, 0x0A]))
    }

    func testMissingMountinfoSaysWhy() {
        XCTAssertThrowsError(try CgroupHierarchy.find(mountinfoPath: "/nonexistent/mountinfo")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/mountinfo"), "\(error)")
        }
    }

    func testNamesUnitsContainersAndPods() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-names-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        let id = String(repeating: "ab12", count: 16)
        let other = String(repeating: "cd34", count: 16)
        let containers = root.appendingPathComponent("docker/containers/\(id)")
        try FileManager.default.createDirectory(at: containers, withIntermediateDirectories: true)
        try Data(#"{"StreamConfig":{},"State":{"Running":true},"ID":"\#(id)","Name":"/web-1","Driver":"overlay2"}"#.utf8)
            .write(to: containers.appendingPathComponent("config.v2.json"))
        let uid = "5f0c3c6e-1b2a-4c3d-9e8f-0123456789ab"
        try FileManager.default.createDirectory(at: root.appendingPathComponent("pods/shop_cart-7d9f_\(uid)"), withIntermediateDirectories: true)

        var namer = CgroupNamer(dockerRoot: root.appendingPathComponent("docker").path, podLogRoot: root.appendingPathComponent("pods").path)
        func name(_ path: String) -> String { let n = namer.name(of: path); return "\(n.kind.rawValue) \(n.name)" }
        let podSlice = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice"
        XCTAssertEqual(name("/system.slice/nginx.service"), "service nginx.service")
        XCTAssertEqual(name("/system.slice/ssh.socket"), "socket ssh.socket")
        XCTAssertEqual(name("/system.slice/docker-\(id).scope"), "container web-1", "name from config.v2.json")
        XCTAssertEqual(name("/docker/\(id)"), "container web-1", "cgroupfs driver")
        XCTAssertEqual(name("/system.slice/docker-\(other).scope"), "container cd34cd34cd34", "no state: the short id")
        XCTAssertEqual(name(podSlice), "pod shop/cart-7d9f")
        XCTAssertEqual(name(podSlice + "/cri-containerd-\(other).scope"), "pod shop/cart-7d9f/cd34cd34cd34")
        XCTAssertEqual(name("/kubepods/burstable/pod0123abcd-0000-1111-2222-333344445555"), "pod pod 0123abcd-0000-1111-2222-333344445555")
        XCTAssertEqual(name("/user.slice/user-1000.slice/session-3.scope"), "cgroup /user.slice/user-1000.slice/session-3.scope")
        XCTAssertEqual(name("/"), "cgroup /")
        XCTAssertEqual(name("/podcast.service"), "service podcast.service", "\"pod\" inside a unit name is not a pod")
    }
}

final class CgroupPathCacheTests: XCTestCase {
    /// A directory tree stands in for a cgroup2 mount: ids are inodes, as on cgroupfs.
    func testResolvesByInodeAndForgetsRemovedDirectories() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-cache-\(getpid())")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("system.slice/nginx.service"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: root.appendingPathComponent("gone"), withIntermediateDirectories: true)
        func inode(_ path: String) throws -> UInt64 {
            try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: root.path + path))[.systemFileNumber] as? NSNumber).uint64Value
        }
        let nginx = try inode("/system.slice/nginx.service")
        let gone = try inode("/gone")
        let hierarchy = CgroupHierarchy(mountPoint: root.path)
        let cache = CgroupPathCache()
        XCTAssertEqual(try cache.resolve([nginx, gone], in: hierarchy), [nginx: "/system.slice/nginx.service", gone: "/gone"])
        try FileManager.default.removeItem(at: root.appendingPathComponent("gone"))
        XCTAssertEqual(try cache.resolve([nginx, gone], in: hierarchy), [nginx: "/system.slice/nginx.service"],
                       "a removed cgroup's id no longer resolves")
        XCTAssertEqual(try cache.resolve([nginx, gone, 1], in: hierarchy), [nginx: "/system.slice/nginx.service"])
    }

    /// Two cgroups whose names are not UTF-8 print alike ("/a" and U+FFFD): one entry, counts summed.
    func testCgroupsPrintingAlikeAreOneEntry() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-names-\(getpid())").path
        XCTAssertEqual(mkdir(root, 0o755), 0)
        let names: [[UInt8]] = [[0x80], [0x81]].map { Array(root.utf8) + Array("/a".utf8) + $0 + [0] }
        func withPath<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
            bytes.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        }
        defer {
            for name in names { _ = withPath(name) { rmdir($0) } }
            rmdir(root)
        }
        var tally = CgroupTally()
        for name in names {
            XCTAssertEqual(withPath(name) { mkdir($0, 0o755) }, 0)
            var status = stat()
            XCTAssertEqual(withPath(name) { lstat($0, &status) }, 0)
            tally.visit(SocketRecord(transport: .tcp, isIPv6: false, state: TCPState.closeWait.rawValue, cgroupID: UInt64(status.st_ino)))
        }
        let breakdown = CgroupBreakdown.resolve(
            tally, source: .netlink, mount: .success(CgroupHierarchy(mountPoint: root)), cache: CgroupPathCache())
        XCTAssertEqual(breakdown.entries.map(\.path), ["/a\u{FFFD}"])
        XCTAssertEqual(breakdown.entries.first?.counts.tcp[.closeWait], 2)
        XCTAssertEqual(breakdown.unresolved.tcp.total, 0)
    }
}
