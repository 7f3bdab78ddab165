// The `ports` section against real sockets: each test places listeners and connections with
// tools/sockctl.py in a namespace of its own, then compares `zabbix-sockets stats --netns` with
// `ss` taken just before and just after it (and with the kernel's counters where they apply).
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class PortStatsIntegrationTests: NamespaceTestCase {
    /// The keys of a `listen` entry besides the states and total.
    static let listenKeys: Set<String> = ["addresses", "listeners", "accept_queue", "backlog", "accept_queue_pct"]

    // MARK: - Accept queue

    /// listen(4), never accepted from, then 12 clients: the accept queue holds backlog + 1 = 5
    /// (the kernel calls it full when it holds more than the backlog), the 7 others stay SYN_SENT,
    /// their SYNs (and every retransmission) dropped and counted in TcpExt ListenOverflows.
    func testAcceptQueueOverflowMatchesSSAndListenOverflows() throws {
        let ns = try makeNamespace()
        let control = try startControl(in: ns)
        let stats = try statsBinary()
        let port = 2100, backlog = 4, clients = 12
        try control.listen("127.0.0.1", port, backlog: backlog)
        let overflowsBeforeClients = try listenOverflows(ns)

        try control.connect("127.0.0.1", port, clients, "pending")
        let listenerFilter = ["sport", "=", ":\(port)"]
        // Usually the clients beyond the queue stay SYN_SENT; under load one may get its SYN in
        // before the queue filled and have its final ACK dropped instead (client ESTABLISHED,
        // server SYN_RECV). Either way every client socket exists and the queue is full.
        try waitUntil("accept queue of :\(port) full, every client connected or SYN_SENT") {
            let listener = try ssTCP(ns, options: "-Hlnt", filter: listenerFilter)
            let outbound = try ssTCP(ns).filter { $0.peerPort == port }.stateCounts
            return listener.first?.recvQ == backlog + 1
                && Set(outbound.keys).isSubset(of: ["established", "syn_sent"])
                && outbound.values.reduce(0, +) == clients
        }

        var overflowsBeforeStats: Int64 = 0, overflowsAfterStats: Int64 = 0
        let (ss, docs) = try measureSteady(
            observe: { [try ssTCP(ns, options: "-Hlnt", filter: listenerFilter), try ssTCP(ns)] },
            measure: { () throws -> (netlink: [String: Any], proc: [String: Any]) in
                overflowsBeforeStats = try listenOverflows(ns)
                let netlink = try runStats([stats, "stats", "--netns", ns, "--remote-ports", "\(port)"])
                overflowsAfterStats = try listenOverflows(ns)
                let proc = try runStats([stats, "stats", "--netns", ns, "--remote-ports", "\(port)", "--source", "proc"])
                return (netlink, proc)
            }
        )
        let listenerSS = ss[0], all = ss[1]
        XCTAssertEqual(listenerSS.count, 1, "ss -Hlnt sport = :\(port): \(listenerSS)")
        let ssListener = try XCTUnwrap(listenerSS.first)
        // The population itself: the queue overflowed as the kernel documents it.
        XCTAssertEqual(ssListener.recvQ, backlog + 1, "ss Recv-Q (accept queue)")
        XCTAssertEqual(ssListener.sendQ, backlog, "ss Send-Q (backlog)")

        let doc = docs.netlink
        XCTAssertEqual(doc["source"] as? String, "netlink")
        let entry = try object(object(doc, "listen", "netlink"), "\(port)", "listen")
        XCTAssertEqual(number(entry["accept_queue"]), ssListener.recvQ, "accept_queue vs ss Recv-Q")
        XCTAssertEqual(number(entry["backlog"]), ssListener.sendQ, "backlog vs ss Send-Q")
        XCTAssertEqual(number(entry["accept_queue_pct"]), ssListener.recvQ * 100 / ssListener.sendQ, "accept_queue_pct")
        XCTAssertEqual(number(entry["accept_queue_pct"]), 125, "5 of 4: 125 %")
        XCTAssertEqual(number(entry["listeners"]), 1)
        XCTAssertEqual(entry["addresses"] as? String, "127.0.0.1")
        // Inbound: the queued connections are ESTABLISHED on the server side (a SYN_RECV only
        // under the race above).
        let inbound = all.filter { $0.state != "listen" && $0.localPort == port }.stateCounts
        XCTAssertEqual(inbound["established"], backlog + 1, "ss inbound: \(inbound)")
        XCTAssertEqual(Set(inbound.keys).subtracting(["established", "syn_recv"]), [], "ss inbound: \(inbound)")
        assertStates(entry, equal: inbound, extraKeys: Self.listenKeys, "listen[\(port)] vs ss")
        // Outbound, towards the watched port: queued clients ESTABLISHED, the rest SYN_SENT.
        let outbound = all.filter { $0.peerPort == port }.stateCounts
        XCTAssertEqual(outbound.values.reduce(0, +), clients, "ss outbound: \(outbound)")
        assertStates(try object(doc, "remote", "netlink")["\(port)"] as? [String: Any], equal: outbound,
                     "remote[\(port)] vs ss")

        // The overflow counter rose by at least one dropped SYN (or final ACK) per client left
        // out, and stats's reading lies between the readings just before and just after it.
        XCTAssertGreaterThanOrEqual(overflowsBeforeStats - overflowsBeforeClients, Int64(clients - backlog - 1),
                                    "TcpExt ListenOverflows before: \(overflowsBeforeClients), after the clients: \(overflowsBeforeStats)")
        let reported = try XCTUnwrap(number(object(doc, "kernel", "netlink")["TcpExt_ListenOverflows"]),
                                     "kernel.TcpExt_ListenOverflows")
        XCTAssertTrue((overflowsBeforeStats...overflowsAfterStats).contains(Int64(reported)),
                      "TcpExt_ListenOverflows \(reported) not within \(overflowsBeforeStats)...\(overflowsAfterStats)")

        // /proc shows the queue's length but not its limit: backlog and percent 0 (README).
        let procEntry = try object(object(docs.proc, "listen", "proc"), "\(port)", "listen")
        XCTAssertEqual(docs.proc["source"] as? String, "proc")
        XCTAssertEqual(number(procEntry["accept_queue"]), ssListener.recvQ, "proc accept_queue vs ss Recv-Q")
        XCTAssertEqual(number(procEntry["backlog"]), 0, "proc backlog")
        XCTAssertEqual(number(procEntry["accept_queue_pct"]), 0, "proc accept_queue_pct")
        assertStates(procEntry, equal: inbound, extraKeys: Self.listenKeys, "proc listen[\(port)] vs ss")
    }

    // MARK: - Per-port states

    /// Listeners: 2001 IPv4, 2002 IPv6, 2003 dual-stack "::" with IPv4 and IPv6 clients, 2004 two
    /// SO_REUSEPORT listeners, 2005 0.0.0.0 + [::] (one port, two families), 2006 idle. Inbound
    /// connections in ESTABLISHED (accepted and still queued), CLOSE_WAIT, FIN_WAIT2, TIME_WAIT and
    /// SYN_RECV; outbound towards watched ports 2001, 2003 and 2007 (no listener, SYNs dropped).
    func testPerPortStatesMatchSS() throws {
        let ns = try makeNamespace()
        // No TIME_WAIT recycling; request sockets (SYN_RECV) kept far longer than the test.
        try sysctl(ns, ["net.ipv4.tcp_tw_reuse": "0", "net.ipv4.tcp_synack_retries": "20"])
        let control = try startControl(in: ns)
        let stats = try statsBinary()
        try control.send(#"{"op":"drop_final_ack","sports":"7000-7099"}"#)
        try control.send(#"{"op":"drop_syn","port":2007}"#)

        try control.listen("127.0.0.1", 2001)
        try control.listen("::1", 2002)
        try control.listen("::", 2003, v6only: false)
        try control.listen("127.0.0.1", 2004, reuseport: true)
        try control.listen("127.0.0.1", 2004, reuseport: true)
        try control.listen("0.0.0.0", 2005)
        try control.listen("::", 2005)
        try control.listen("127.0.0.1", 2006)

        try control.connect("127.0.0.1", 2001, 3, "established")
        try control.connect("127.0.0.1", 2001, 2, "close_wait")
        try control.connect("127.0.0.1", 2001, 1, "fin_wait2")
        try control.connect("127.0.0.1", 2001, 2, "handshake", sport: 7000)  // SYN_RECV
        try control.connect("::1", 2002, 2, "established")
        try control.connect("::1", 2002, 3, "close_wait")
        try control.connect("::1", 2002, 3, "handshake", sport: 7010)        // SYN_RECV
        try control.connect("127.0.0.1", 2003, 4, "established")             // IPv4 on a dual-stack listener
        try control.connect("127.0.0.1", 2003, 2, "handshake", sport: 7020) // SYN_RECV, IPv4-mapped
        try control.connect("::1", 2003, 1, "established")
        try control.connect("127.0.0.1", 2004, 5, "established")
        try control.connect("127.0.0.1", 2004, 3, "handshake")              // left in the accept queues
        try control.connect("127.0.0.1", 2005, 2, "established")
        try control.connect("::1", 2005, 3, "established")
        try control.connect("127.0.0.1", 2007, 3, "pending")                // SYN_SENT
        // TIME_WAIT last: nothing connects after them, so none is recycled.
        try control.connect("127.0.0.1", 2001, 4, "time_wait")
        try control.connect("127.0.0.1", 2001, 2, "client_time_wait")
        try control.connect("::1", 2002, 1, "time_wait")
        try control.connect("127.0.0.1", 2003, 2, "time_wait")
        try control.connect("::1", 2003, 1, "client_time_wait")

        let plannedInbound: [Int: [String: Int]] = [
            2001: ["established": 3, "close_wait": 2, "fin_wait2": 1, "syn_recv": 2, "time_wait": 4],
            2002: ["established": 2, "close_wait": 3, "syn_recv": 3, "time_wait": 1],
            2003: ["established": 5, "syn_recv": 2, "time_wait": 2],
            2004: ["established": 8],
            2005: ["established": 5],
            2006: [:],
        ]
        let plannedListeners: [Int: (count: Int, addresses: Set<String>)] = [
            2001: (1, ["127.0.0.1"]), 2002: (1, ["::1"]), 2003: (1, ["::"]),
            2004: (2, ["127.0.0.1"]), 2005: (2, ["0.0.0.0", "::"]), 2006: (1, ["127.0.0.1"]),
        ]
        let remotePorts = [2001, 2003, 2007]
        let plannedOutbound: [Int: [String: Int]] = [
            2001: ["established": 5, "fin_wait2": 2, "close_wait": 1, "time_wait": 2],
            2003: ["established": 7, "time_wait": 1],
            2007: ["syn_sent": 3],
        ]
        // Loopback transitions end within microseconds; wait (bounded) for ss to show the plan.
        try waitUntil("ss shows the planned population") {
            let ss = try ssTCP(ns)
            return Self.inbound(ss) == plannedInbound && Self.outbound(ss, remotePorts) == plannedOutbound
        }

        let ports = remotePorts.map(String.init).joined(separator: ",")
        let (ss, docs) = try measureSteady(
            observe: { try ssTCP(ns) },
            measure: { () throws -> [[String: Any]] in
                try ["netlink", "proc"].map {
                    try runStats([stats, "stats", "--netns", ns, "--remote-ports", ports, "--source", $0])
                }
            }
        )
        let ssInbound = Self.inbound(ss), ssOutbound = Self.outbound(ss, remotePorts)
        XCTAssertEqual(ssInbound, plannedInbound, "ss inbound vs the plan")
        XCTAssertEqual(ssOutbound, plannedOutbound, "ss outbound vs the plan")
        let listeners = ss.filter { $0.state == "listen" }
        for (port, planned) in plannedListeners {
            let lines = listeners.filter { $0.localPort == port }
            XCTAssertEqual(lines.count, planned.count, "ss LISTEN sockets on \(port)")
            XCTAssertEqual(Set(lines.map(\.localAddress)), planned.addresses, "ss listen addresses on \(port)")
        }
        let ssCounts = try ssCounts(ns)

        for (source, doc) in zip(["netlink", "proc"], docs) {
            XCTAssertEqual(doc["source"] as? String, source)
            assertCounts(doc, equal: ssCounts, "\(source): counts vs ss")
            let listen = try object(doc, "listen", source)
            XCTAssertEqual(Set(listen.keys), Set(plannedListeners.keys.map(String.init)), "\(source): listening ports")
            for port in plannedListeners.keys.sorted() {
                let what = "\(source): listen[\(port)]"
                let entry = try object(listen, "\(port)", source)
                let lines = listeners.filter { $0.localPort == port }
                assertStates(entry, equal: ssInbound[port] ?? [:], extraKeys: Self.listenKeys, "\(what) vs ss")
                XCTAssertEqual(number(entry["listeners"]), lines.count, "\(what).listeners vs ss LISTEN sockets")
                let addresses = (entry["addresses"] as? String ?? "").split(separator: ",").map(String.init)
                XCTAssertEqual(addresses.count, Set(addresses).count, "\(what).addresses repeats one: \(addresses)")
                XCTAssertEqual(Set(addresses), Set(lines.map(\.localAddress)), "\(what).addresses vs ss")
                let queue = lines.reduce(0) { $0 + $1.recvQ }, limit = lines.reduce(0) { $0 + $1.sendQ }
                XCTAssertEqual(number(entry["accept_queue"]), queue, "\(what).accept_queue vs ss Recv-Q summed")
                if source == "netlink" {
                    XCTAssertEqual(number(entry["backlog"]), limit, "\(what).backlog vs ss Send-Q summed")
                    XCTAssertEqual(number(entry["accept_queue_pct"]), queue * 100 / limit, "\(what).accept_queue_pct")
                } else {
                    XCTAssertEqual(number(entry["backlog"]), 0, "\(what).backlog (unknown from /proc)")
                    XCTAssertEqual(number(entry["accept_queue_pct"]), 0, "\(what).accept_queue_pct")
                }
            }
            XCTAssertEqual(number(try object(listen, "2004", source)["accept_queue"]), 3,
                           "\(source): the queued connections of the SO_REUSEPORT pair, summed")
            let discovery = doc["listen_discovery"] as? [[String: String]] ?? []
            XCTAssertEqual(discovery.map { $0["{#PORT}"] ?? "" }, plannedListeners.keys.sorted().map(String.init),
                           "\(source): listen_discovery, one row per port, lowest first")
            for row in discovery {
                XCTAssertEqual(row["{#ADDRESSES}"], (listen[row["{#PORT}"] ?? ""] as? [String: Any])?["addresses"] as? String,
                               "\(source): listen_discovery addresses of \(row)")
            }

            let remote = try object(doc, "remote", source)
            XCTAssertEqual(Set(remote.keys), Set(remotePorts.map(String.init)), "\(source): remote ports")
            for port in remotePorts {
                assertStates(remote["\(port)"] as? [String: Any], equal: ssOutbound[port] ?? [:],
                             "\(source): remote[\(port)] vs ss dport")
            }
            XCTAssertEqual((doc["remote_discovery"] as? [[String: String]] ?? []).map { $0["{#PORT}"] ?? "" },
                           remotePorts.map(String.init), "\(source): remote_discovery")
        }
    }

    // MARK: - Ephemeral ports

    /// ip_local_port_range 40000-40099: 20 ESTABLISHED and 10 client-side TIME_WAIT towards
    /// 127.0.0.1:2001, 12 towards [::1]:2002; then 25 more towards [::1]:2002, which becomes the busiest.
    func testEphemeralPressureMatchesSS() throws {
        let ns = try makeNamespace()
        try sysctl(ns, ["net.ipv4.ip_local_port_range": "40000 40099", "net.ipv4.tcp_tw_reuse": "0"])
        let control = try startControl(in: ns)
        try control.listen("127.0.0.1", 2001)
        try control.listen("::1", 2002)
        try control.connect("127.0.0.1", 2001, 20, "established")
        try control.connect("::1", 2002, 12, "established")
        try control.connect("127.0.0.1", 2001, 10, "client_time_wait")
        try checkEphemeral(ns, busiest: 30, towards: "127.0.0.1:2001", inRange: 42)

        try control.connect("::1", 2002, 25, "established")
        try checkEphemeral(ns, busiest: 37, towards: "[::1]:2002", inRange: 67)
    }

    // MARK: - Helpers

    private func checkEphemeral(_ ns: String, busiest: Int, towards remote: String, inRange: Int,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let range = 40000...40099
        let stats = try statsBinary()
        try waitUntil("ss shows \(busiest) ephemeral ports towards \(remote)") {
            let top = Self.busiestEphemeral(try ssTCP(ns), range)
            return top.sockets == busiest && top.remote == remote
        }
        let (ss, doc) = try measureSteady(observe: { try ssTCP(ns) },
                                          measure: { try runStats([stats, "stats", "--netns", ns]) })
        // Counted independently from ss: sockets whose local port is in the range, by peer.
        let top = Self.busiestEphemeral(ss, range)
        XCTAssertEqual(ss.filter { $0.state != "listen" && range.contains($0.localPort) }.count, inRange,
                       "ss: client sockets on ports of the narrowed range", file: file, line: line)
        let ephemeral = try object(doc, "ephemeral", "stats")
        XCTAssertEqual(Set(ephemeral.keys), ["range_size", "busiest_sockets", "busiest_remote", "pressure_pct"],
                       file: file, line: line)
        XCTAssertEqual(number(ephemeral["range_size"]), range.count, "range_size", file: file, line: line)
        XCTAssertEqual(number(ephemeral["busiest_sockets"]), top.sockets, "busiest_sockets vs ss", file: file, line: line)
        XCTAssertEqual(top.sockets, busiest, "ss busiest vs the plan", file: file, line: line)
        XCTAssertEqual(ephemeral["busiest_remote"] as? String, top.remote, "busiest_remote vs ss", file: file, line: line)
        XCTAssertEqual(number(ephemeral["pressure_pct"]), top.sockets * 100 / range.count, "pressure_pct",
                       file: file, line: line)
        let kernel = try object(doc, "kernel", "stats")
        XCTAssertEqual(number(kernel["ip_local_port_range_low"]), range.lowerBound, file: file, line: line)
        XCTAssertEqual(number(kernel["ip_local_port_range_high"]), range.upperBound, file: file, line: line)
    }

    /// TcpExt ListenOverflows as a process inside the namespace reads /proc/net/netstat.
    private func listenOverflows(_ ns: String) throws -> Int64 {
        let table = try KernelFiles.snmp(readInNamespace(ns, "/proc/net/netstat"))
        guard let value = table["TcpExt_ListenOverflows"] else { throw Failure("no TcpExt ListenOverflows in \(ns)") }
        return value
    }

    /// Per listening port: its connections (local port = the port, LISTEN itself left out) by state.
    static func inbound(_ ss: [SSSocket]) -> [Int: [String: Int]] {
        let ports = Set(ss.filter { $0.state == "listen" }.map(\.localPort))
        var out = Dictionary(uniqueKeysWithValues: ports.map { ($0, [String: Int]()) })
        for socket in ss where socket.state != "listen" && ports.contains(socket.localPort) {
            out[socket.localPort, default: [:]][socket.state, default: 0] += 1
        }
        return out
    }

    /// Per watched remote port: connections towards it (its local end not a listening port) by state.
    static func outbound(_ ss: [SSSocket], _ remotePorts: [Int]) -> [Int: [String: Int]] {
        let listening = Set(ss.filter { $0.state == "listen" }.map(\.localPort))
        var out = Dictionary(uniqueKeysWithValues: remotePorts.map { ($0, [String: Int]()) })
        for socket in ss where socket.state != "listen" && !listening.contains(socket.localPort) {
            if let port = socket.peerPort, remotePorts.contains(port) {
                out[port, default: [:]][socket.state, default: 0] += 1
            }
        }
        return out
    }

    /// The peer (as ss prints it) holding the most local ports in `range`, and how many.
    static func busiestEphemeral(_ ss: [SSSocket], _ range: ClosedRange<Int>) -> (sockets: Int, remote: String) {
        var byPeer: [String: Int] = [:]
        for socket in ss where socket.state != "listen" && range.contains(socket.localPort) {
            byPeer[socket.peer, default: 0] += 1
        }
        let top = byPeer.max { $0.value < $1.value }
        return (top?.value ?? 0, top?.key ?? "")
    }
}
