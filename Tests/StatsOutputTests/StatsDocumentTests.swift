import Foundation
import SocketStats
import StatsOutput
import XCTest
@testable import ZabbixProtocol

/// Pins the `stats` JSON that the templates' JSONPath preprocessing reads: key names, their
/// order, and that every key is present even when its figure is 0.
final class StatsDocumentTests: XCTestCase {
    static let tcpKeys = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
                          "close", "close_wait", "last_ack", "listen", "closing", "total"]
    static let udpKeys = ["established", "unconn", "total"]
    static let countsKeys = ["source", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"]
    static let portsKeys = ["listen_discovery", "listen", "remote_discovery", "remote", "ephemeral"]
    static let unixKeys = ["unix", "unix_listen_discovery", "unix_listen"]
    static let unixStateKeys = ["established", "syn_sent", "listen", "unconn", "total"]
    static let unixListenKeys = ["listeners", "accept_queue", "backlog", "accept_queue_pct", "connections"]
    static let cgroupKeys = ["cgroup_discovery", "cgroups", "cgroup_status"]

    let loopback = AddressWords(0x0100_007F, 0, 0, 0)  // 127.0.0.1 as the kernel stores it
    let server = AddressWords(0x0A00_000A, 0, 0, 0)  // 10.0.0.10
    let ipv6Loopback = AddressWords(0, 0, 0, 0x0100_0000)  // ::1

    private func tcp(_ state: TCPState, local: UInt16, remote: UInt16 = 0, remoteAddress: AddressWords? = nil,
                     isIPv6: Bool = false, receiveQueue: UInt32 = 0, sendQueue: UInt32 = 0) -> SocketRecord {
        SocketRecord(transport: .tcp, isIPv6: isIPv6, state: state.rawValue, localPort: local, remotePort: remote,
                     localAddress: isIPv6 ? ipv6Loopback : loopback,
                     remoteAddress: remoteAddress ?? (isIPv6 ? ipv6Loopback : loopback),
                     receiveQueue: receiveQueue, sendQueue: sendQueue)
    }

    private func document(_ snapshot: Snapshot, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        let json = StatsDocument.json(snapshot)
        XCTAssertFalse(json.contains("\n"), "one line, as a UserParameter value", file: file, line: line)
        // Foundation's parser as an independent judge that the text is JSON at all.
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(json.utf8)), file: file, line: line)
        return try XCTUnwrap(JSONValue.reading(json), "not JSON: \(json)", file: file, line: line)
    }

    /// A population touching every section: two listening ports (one dual-stack, one with a
    /// queue), inbound connections, outbound ones to watched ports, ephemeral ports, UDP.
    private func busySnapshot() -> Snapshot {
        var ports = PortTally(remotePorts: [5432, 443], ephemeralRange: 40000...40999)
        ports.visit(tcp(.listen, local: 8080, receiveQueue: 3, sendQueue: 128))
        ports.visit(tcp(.listen, local: 8080, isIPv6: true, receiveQueue: 2, sendQueue: 72))
        ports.visit(tcp(.listen, local: 22, sendQueue: 128))
        for client in UInt16(50000)..<50004 { ports.visit(tcp(.established, local: 8080, remote: client)) }
        ports.visit(tcp(.closeWait, local: 8080, remote: 50010, isIPv6: true))
        ports.visit(tcp(.timeWait, local: 22, remote: 50011))
        for local in UInt16(40000)..<40006 { ports.visit(tcp(.established, local: local, remote: 5432, remoteAddress: server)) }
        for local in UInt16(40006)..<40008 { ports.visit(tcp(.timeWait, local: local, remote: 443, remoteAddress: server)) }
        ports.visit(tcp(.synSent, local: 40008, remote: 443, remoteAddress: server))
        ports.visit(SocketRecord(transport: .udp, isIPv6: false, state: TCPState.close.rawValue, localPort: 53))
        ports.visit(SocketRecord(transport: .udp, isIPv6: true, state: TCPState.established.rawValue, localPort: 40500))
        let kernel = KernelCounters([("Tcp_ActiveOpens", 12), ("TcpExt_ListenOverflows", 0), ("TCP_inuse", 19), ("somaxconn", 4096)])
        return Snapshot(source: .netlink, counts: ports.breakdown.counts, ports: ports.breakdown, kernel: kernel, unix: unixBreakdown())
    }

    /// UNIX sockets: a full php-fpm-like queue, an abstract listener with a quote in its name, a
    /// seqpacket listener and its accepted end, unnamed pairs and datagram sockets.
    private func unixBreakdown() -> UnixBreakdown {
        func name(_ text: String) -> UnixName { UnixName(Array(text.utf8))! }
        func abstract(_ text: String) -> UnixName { UnixName([0] + Array(text.utf8))! }
        var tally = UnixTally()
        let listen = TCPState.listen.rawValue, established = TCPState.established.rawValue
        tally.visit(UnixSocketRecord(type: 1, state: listen, name: name("/run/php/fpm.sock"), receiveQueue: 5, sendQueue: 4))
        tally.visit(UnixSocketRecord(type: 1, state: listen, name: abstract("bus\"x"), receiveQueue: 0, sendQueue: 128))
        tally.visit(UnixSocketRecord(type: 5, state: listen, name: name("/run/seq"), receiveQueue: 1, sendQueue: 3))
        tally.visit(UnixSocketRecord(type: 5, state: established, name: name("/run/seq")))
        for _ in 0..<4 { tally.visit(UnixSocketRecord(type: 1, state: established, name: UnixName([UInt8]())!)) }
        tally.visit(UnixSocketRecord(type: 2, state: TCPState.close.rawValue, name: name("/dev/log")))
        tally.visit(UnixSocketRecord(type: 2, state: established, name: UnixName([UInt8]())!))
        return tally.breakdown(source: .netlink)
    }

    func testCountsSectionKeysAndOrder() throws {
        var counts = SocketCounts()
        counts.visit(tcp(.established, local: 1, remote: 2))
        counts.visit(tcp(.timeWait, local: 1, remote: 3, isIPv6: true))
        counts.visit(SocketRecord(transport: .udp, isIPv6: false, state: TCPState.close.rawValue))
        let doc = try document(Snapshot(source: .proc, counts: counts))
        XCTAssertEqual(doc.keys, Self.countsKeys, "no ports or kernel keys when those sections were not collected")
        XCTAssertEqual(doc["source"]?.text, "proc")
        for family in ["tcp", "tcp4", "tcp6"] {
            XCTAssertEqual(doc[family]?.keys, Self.tcpKeys, family)
        }
        for family in ["udp", "udp4", "udp6"] {
            XCTAssertEqual(doc[family]?.keys, Self.udpKeys, family)
        }
        XCTAssertEqual(doc["tcp4"]?["established"]?.uint, 1)
        XCTAssertEqual(doc["tcp6"]?["time_wait"]?.uint, 1)
        XCTAssertEqual(doc["tcp"]?["total"]?.uint, 2, "tcp = tcp4 + tcp6")
        XCTAssertEqual(doc["tcp"]?["listen"]?.uint, 0, "a state with no socket is present as 0")
        XCTAssertEqual(doc["udp"]?["unconn"]?.uint, 1)
        XCTAssertEqual(doc["udp6"]?["total"]?.uint, 0)
    }

    func testAllSectionsKeysAndOrder() throws {
        let doc = try document(busySnapshot())
        XCTAssertEqual(doc.keys, Self.countsKeys + Self.portsKeys + ["kernel"] + Self.unixKeys)
        XCTAssertEqual(doc["source"]?.text, "netlink")

        let discovery = try XCTUnwrap(doc["listen_discovery"]).elements
        XCTAssertEqual(discovery.map(\.keys), [["{#PORT}", "{#ADDRESSES}"], ["{#PORT}", "{#ADDRESSES}"]])
        XCTAssertEqual(discovery.map { $0["{#PORT}"]?.text }, ["22", "8080"], "ports lowest first, as strings for LLD")
        XCTAssertEqual(discovery[1]["{#ADDRESSES}"]?.text, "127.0.0.1,::1", "addresses in the order first seen")

        let listen = try XCTUnwrap(doc["listen"])
        XCTAssertEqual(listen.keys, ["22", "8080"])
        for port in listen.keys {
            XCTAssertEqual(listen[port]?.keys, ["addresses", "listeners", "accept_queue", "backlog", "accept_queue_pct"] + Self.tcpKeys, port)
        }
        let web = try XCTUnwrap(listen["8080"])
        XCTAssertEqual(web["listeners"]?.uint, 2)
        XCTAssertEqual(web["accept_queue"]?.uint, 5)
        XCTAssertEqual(web["backlog"]?.uint, 200)
        XCTAssertEqual(web["accept_queue_pct"]?.uint, 2, "5 of 200, rounded down")
        XCTAssertEqual(web["established"]?.uint, 4)
        XCTAssertEqual(web["close_wait"]?.uint, 1)
        XCTAssertEqual(web["listen"]?.uint, 0, "LISTEN sockets are `listeners`, not inbound connections")
        XCTAssertEqual(web["total"]?.uint, 5)
        XCTAssertEqual(listen["22"]?["time_wait"]?.uint, 1)

        XCTAssertEqual(doc["remote_discovery"]?.elements.map(\.keys), [["{#PORT}"], ["{#PORT}"]])
        XCTAssertEqual(doc["remote_discovery"]?.elements.map { $0["{#PORT}"]?.text }, ["5432", "443"],
                       "watched ports in the order given")
        let remote = try XCTUnwrap(doc["remote"])
        XCTAssertEqual(remote.keys, ["5432", "443"])
        XCTAssertEqual(remote["5432"]?.keys, Self.tcpKeys)
        XCTAssertEqual(remote["5432"]?["established"]?.uint, 6)
        XCTAssertEqual(remote["443"]?["time_wait"]?.uint, 2)
        XCTAssertEqual(remote["443"]?["syn_sent"]?.uint, 1)
        XCTAssertEqual(remote["443"]?["total"]?.uint, 3)

        let ephemeral = try XCTUnwrap(doc["ephemeral"])
        XCTAssertEqual(ephemeral.keys, ["range_size", "busiest_sockets", "busiest_remote", "pressure_pct"])
        XCTAssertEqual(ephemeral["range_size"]?.uint, 1000)
        XCTAssertEqual(ephemeral["busiest_sockets"]?.uint, 6)
        XCTAssertEqual(ephemeral["busiest_remote"]?.text, "10.0.0.10:5432")
        XCTAssertEqual(ephemeral["pressure_pct"]?.uint, 0, "6 of 1000, rounded down")

        let kernel = try XCTUnwrap(doc["kernel"])
        XCTAssertEqual(kernel.keys, ["Tcp_ActiveOpens", "TcpExt_ListenOverflows", "TCP_inuse", "somaxconn"],
                       "kernel counters in the order they were read")
        XCTAssertEqual(kernel["somaxconn"]?.uint, 4096)

        XCTAssertEqual(doc["tcp"]?["listen"]?.uint, 3)
        XCTAssertEqual(doc["udp"]?["established"]?.uint, 1)
        XCTAssertEqual(doc["udp"]?["total"]?.uint, 2)
    }

    func testPortsSectionWithNothingToReportKeepsEveryKey() throws {
        let ports = PortTally(remotePorts: [5432], ephemeralRange: 32768...60999)
        let doc = try document(Snapshot(source: .netlink, counts: ports.breakdown.counts, ports: ports.breakdown))
        XCTAssertEqual(doc.keys, Self.countsKeys + Self.portsKeys)
        XCTAssertEqual(doc["listen_discovery"], .array([]))
        XCTAssertEqual(doc["listen"], .object([]))
        XCTAssertEqual(doc["remote"]?["5432"]?.keys, Self.tcpKeys)
        XCTAssertEqual(doc["ephemeral"]?.keys, ["range_size", "busiest_sockets", "busiest_remote", "pressure_pct"])
        XCTAssertEqual(doc["ephemeral"]?["range_size"]?.uint, 28232)
        XCTAssertEqual(doc["ephemeral"]?["busiest_sockets"]?.uint, 0)
        XCTAssertEqual(doc["ephemeral"]?["busiest_remote"]?.text, "")
        XCTAssertEqual(doc["ephemeral"]?["pressure_pct"]?.uint, 0)
    }

    func testIPv6BusiestRemoteIsBracketed() throws {
        var ports = PortTally(remotePorts: [], ephemeralRange: 40000...40001)
        ports.visit(tcp(.established, local: 40000, remote: 6379, isIPv6: true))
        ports.visit(tcp(.established, local: 40001, remote: 6379, isIPv6: true))
        let doc = try document(Snapshot(source: .netlink, counts: ports.breakdown.counts, ports: ports.breakdown))
        XCTAssertEqual(doc["ephemeral"]?["busiest_remote"]?.text, "[::1]:6379")
        XCTAssertEqual(doc["ephemeral"]?["pressure_pct"]?.uint, 100)
    }

    func testKernelSectionAloneFollowsTheCounts() throws {
        let kernel = KernelCounters([("Udp_NoPorts", 7), ("TCP_mem_max", 0), ("odd", -12), ("big", Int64.max)])
        let snapshot = Snapshot(source: .netlink, counts: SocketCounts(), kernel: kernel)
        let doc = try document(snapshot)
        XCTAssertEqual(doc.keys, Self.countsKeys + ["kernel"])
        XCTAssertEqual(doc["kernel"]?.keys, ["Udp_NoPorts", "TCP_mem_max", "odd", "big"])
        XCTAssertEqual(doc["kernel"]?["Udp_NoPorts"]?.uint, 7)
        XCTAssertTrue(StatsDocument.json(snapshot).hasSuffix(
            "\"kernel\":{\"Udp_NoPorts\":7,\"TCP_mem_max\":0,\"odd\":-12,\"big\":9223372036854775807}}"))
    }

    func testUnixSectionKeysAndOrder() throws {
        let doc = try document(busySnapshot())
        let unix = try XCTUnwrap(doc["unix"])
        XCTAssertEqual(unix.keys, ["source", "stream", "seqpacket", "dgram"])
        XCTAssertEqual(unix["source"]?.text, "netlink")
        for type in ["stream", "seqpacket", "dgram"] {
            XCTAssertEqual(unix[type]?.keys, Self.unixStateKeys, type)
        }
        XCTAssertEqual(unix["stream"]?["listen"]?.uint, 2)
        XCTAssertEqual(unix["stream"]?["established"]?.uint, 4)
        XCTAssertEqual(unix["stream"]?["total"]?.uint, 6)
        XCTAssertEqual(unix["seqpacket"]?["total"]?.uint, 2)
        XCTAssertEqual(unix["dgram"]?["unconn"]?.uint, 1, "TCP_CLOSE is ss's UNCONN")
        XCTAssertEqual(unix["dgram"]?["syn_sent"]?.uint, 0, "a state with no socket is present as 0")

        let paths = ["/run/php/fpm.sock", "/run/seq", "@bus\"x"]
        let discovery = try XCTUnwrap(doc["unix_listen_discovery"]).elements
        XCTAssertEqual(discovery.map(\.keys), Array(repeating: ["{#PATH}"], count: 3))
        XCTAssertEqual(discovery.map { $0["{#PATH}"]?.text }, paths, "sorted; abstract names as ss shows them; never an unnamed socket or a datagram path")
        let listen = try XCTUnwrap(doc["unix_listen"])
        XCTAssertEqual(listen.keys, paths)
        for path in paths { XCTAssertEqual(listen[path]?.keys, Self.unixListenKeys, path) }
        let fpm = try XCTUnwrap(listen["/run/php/fpm.sock"])
        XCTAssertEqual([fpm["listeners"], fpm["accept_queue"], fpm["backlog"], fpm["accept_queue_pct"], fpm["connections"]].map { $0?.uint },
                       [1, 5, 4, 125, 0], "a UNIX queue holds one more than its backlog: 125 %")
        XCTAssertEqual(listen["/run/seq"]?["connections"]?.uint, 1)
        XCTAssertEqual(listen["/run/seq"]?["accept_queue_pct"]?.uint, 33)
    }

    func testUnixSectionWithNothingToReportKeepsEveryKey() throws {
        let doc = try document(Snapshot(source: .proc, counts: SocketCounts(), unix: UnixTally().breakdown(source: .proc)))
        XCTAssertEqual(doc.keys, Self.countsKeys + Self.unixKeys)
        XCTAssertEqual(doc["unix"]?["source"]?.text, "proc")
        XCTAssertEqual(doc["unix"]?["stream"]?.keys, Self.unixStateKeys)
        XCTAssertEqual(doc["unix_listen_discovery"], .array([]))
        XCTAssertEqual(doc["unix_listen"], .object([]))
    }

    func testCgroupsSectionKeysAndOrder() throws {
        var web = CgroupCounts()
        web.tcp[.established] = 4
        web.tcp[.closeWait] = 2
        web.udp = UDPCounts(established: 1, unconn: 0, total: 1)
        var waits = CgroupCounts()
        waits.tcp[.timeWait] = 9
        let cgroups = CgroupBreakdown(
            mountPoint: "/sys/fs/cgroup/unified",
            entries: [.init(path: "/system.slice/nginx.service", name: "nginx.service", kind: .service, counts: web),
                      .init(path: "/odd\"path", name: "/odd\"path", kind: .cgroup, counts: CgroupCounts())],
            unattributed: waits)
        let doc = try document(Snapshot(source: .netlink, counts: SocketCounts(), cgroups: cgroups, kernel: KernelCounters([("somaxconn", 1)])))
        XCTAssertEqual(doc.keys, Self.countsKeys + Self.cgroupKeys + ["kernel"], "cgroups after ports, before kernel")
        let rows = try XCTUnwrap(doc["cgroup_discovery"]).elements
        XCTAssertEqual(rows.map(\.keys), [["{#CGROUP}", "{#NAME}", "{#KIND}"], ["{#CGROUP}", "{#NAME}", "{#KIND}"]])
        XCTAssertEqual(rows.map { $0["{#NAME}"]?.text }, ["nginx.service", "/odd\"path"])
        XCTAssertEqual(rows.first?["{#KIND}"]?.text, "service")
        let byPath = try XCTUnwrap(doc["cgroups"])
        XCTAssertEqual(byPath.keys, ["/system.slice/nginx.service", "/odd\"path"])
        let nginx = try XCTUnwrap(byPath["/system.slice/nginx.service"])
        XCTAssertEqual(nginx.keys, ["name", "kind", "tcp", "udp"])
        XCTAssertEqual(nginx["tcp"]?.keys, Self.tcpKeys)
        XCTAssertEqual(nginx["udp"]?.keys, Self.udpKeys)
        XCTAssertEqual(nginx["tcp"]?["close_wait"]?.uint, 2)
        XCTAssertEqual(nginx["tcp"]?["total"]?.uint, 6)
        XCTAssertEqual(nginx["udp"]?["established"]?.uint, 1)
        let status = try XCTUnwrap(doc["cgroup_status"])
        XCTAssertEqual(status.keys, ["available", "reason", "mount", "unattributed", "unresolved"])
        XCTAssertEqual(status["available"]?.uint, 1)
        XCTAssertEqual(status["mount"]?.text, "/sys/fs/cgroup/unified")
        XCTAssertEqual(status["unattributed"]?["tcp"]?["time_wait"]?.uint, 9)
        XCTAssertEqual(status["unresolved"]?["udp"]?.keys, Self.udpKeys)
    }

    func testUnavailableCgroupsSectionSaysWhyAndKeepsEveryKey() throws {
        let cgroups = CgroupBreakdown(unavailableReason: "no cgroup v2 hierarchy is mounted")
        let doc = try document(Snapshot(source: .netlink, counts: SocketCounts(), cgroups: cgroups))
        XCTAssertEqual(doc.keys, Self.countsKeys + Self.cgroupKeys)
        XCTAssertEqual(doc["cgroup_discovery"], .array([]))
        XCTAssertEqual(doc["cgroups"], .object([]))
        XCTAssertEqual(doc["cgroup_status"]?["available"]?.uint, 0)
        XCTAssertEqual(doc["cgroup_status"]?["reason"]?.text, "no cgroup v2 hierarchy is mounted")
        XCTAssertTrue(StatsDocument.text(Snapshot(source: .netlink, counts: SocketCounts(), cgroups: cgroups))
            .contains("cgroups: unavailable: no cgroup v2 hierarchy is mounted"))
    }

    func testTextTableNamesEveryStateAsSsDoes() {
        let text = StatsDocument.text(busySnapshot())
        for state in TCPState.allCases {
            XCTAssertTrue(text.contains("\n" + state.ssName + " "), state.ssName)
        }
        XCTAssertTrue(text.hasPrefix("source: netlink\n"))
        XCTAssertTrue(text.contains("ephemeral ports: 6 of 1000 towards 10.0.0.10:5432"))
        XCTAssertTrue(text.contains("  /run/php/fpm.sock\n"), text)
        XCTAssertTrue(text.contains("\nUNCONN "), text)
    }
}
