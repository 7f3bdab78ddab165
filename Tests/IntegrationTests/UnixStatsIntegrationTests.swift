// The `unix` section against real UNIX sockets: tools/sockpop.py builds listeners (a full
// stream queue, a seqpacket listener with accepted connections, an abstract name), pairs and
// datagram sockets in a namespace of the test's own; `ss -xa` / `ss -xl` in that namespace,
// taken just before and just after `zabbix-sockets stats --netns`, is the oracle.
import Foundation
import XCTest

final class UnixStatsIntegrationTests: NamespaceTestCase {
    static let ssStates = ["ESTAB": "established", "SYN-SENT": "syn_sent", "LISTEN": "listen", "UNCONN": "unconn"]
    static let ssTypes = ["u_str": "stream", "u_seq": "seqpacket", "u_dgr": "dgram"]

    /// One line of `ss -Hxa`: type, state, Recv-Q, Send-Q, local name ("*" when unnamed).
    struct SSUnixSocket: Equatable {
        var type: String, state: String, recvQ: Int, sendQ: Int, name: String
    }

    func ssUnix(_ ns: String, _ options: String) throws -> [SSUnixSocket] {
        let r = try Tool.run(["ip", "netns", "exec", ns, "ss", options])
        guard r.status == 0 else { throw Failure("ss \(options): \(r.stderr)") }
        return try r.stdout.split(separator: "\n").map { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 8, let type = Self.ssTypes[f[0]], let state = Self.ssStates[f[1]],
                  let recvQ = Int(f[2]), let sendQ = Int(f[3]) else { throw Failure("ss line not understood: \(line)") }
            return SSUnixSocket(type: type, state: state, recvQ: recvQ, sendQ: sendQ, name: f[4])
        }
    }

    func testUnixSocketsAndListeningPathsEqualSS() throws {
        let ns = try makeNamespace()
        let dir = try makeScratchDirectory().path
        let stats = try statsBinary()
        let app = dir + "/app.sock", seq = dir + "/seq.sock", abstract = "@zbx-sockets-test-\(ns)"
        let population = try startPopulation(in: ns, [
            "--unix-listen", "stream:\(app):4:10",        // backlog 4, 10 clients never accepted
            "--unix-listen", "seqpacket:\(seq):8:1:2",    // 1 waiting, 2 accepted
            "--unix-listen", "stream:\(abstract):16:0:1",
            "--unix-pairs", "stream:3", "--unix-pairs", "seqpacket:1", "--unix-pairs", "dgram:2",
            "--unix-dgram", "4",
        ])
        let (ss, docs) = try measureSteady(
            observe: { [try ssUnix(ns, "-Hxa"), try ssUnix(ns, "-Hxl")] },
            measure: { () throws -> [[String: Any]] in
                [try runStats([stats, "stats", "--netns", ns, "--sections", "unix"]),
                 try runStats([stats, "stats", "--netns", ns, "--sections", "counts,unix", "--source", "proc"])]
            }
        )
        // ss -l also lists unconnected datagram sockets (UNCONN); the listeners are its LISTEN lines.
        let all = ss[0], listening = ss[1].filter { $0.state == "listen" }
        XCTAssertEqual(listening, all.filter { $0.state == "listen" }, "ss -xl and ss -xa agree on the listeners")
        // The population itself: the kernel queued backlog + 1 and refused the rest.
        let appListener = try XCTUnwrap(listening.first { $0.name == app })
        XCTAssertEqual([appListener.recvQ, appListener.sendQ], [5, 4], "ss -xl for \(app)")
        XCTAssertEqual((population.ready["unix_listen"] as? [String: Any])?.count, 3)

        for (doc, source) in [(docs[0], "netlink"), (docs[1], "proc")] {
            let unix = try object(doc, "unix", source)
            XCTAssertEqual(unix["source"] as? String, source)
            for type in ["stream", "seqpacket", "dgram"] {
                let sockets = all.filter { $0.type == type }
                var want = Dictionary(grouping: sockets, by: \.state).mapValues(\.count)
                for state in Self.ssStates.values where want[state] == nil { want[state] = 0 }
                want["total"] = sockets.count
                let got = try object(unix, type, "\(source) unix").compactMapValues(number)
                XCTAssertEqual(got, want, "\(source): unix.\(type) vs ss -xa")
            }

            let listen = try object(doc, "unix_listen", source)
            let names = Set(listening.map(\.name)).subtracting(["*"])
            XCTAssertEqual(Set(listen.keys), names, "\(source): unix_listen keys vs ss -xl names")
            XCTAssertTrue(names.isSuperset(of: [app, seq, abstract]), "\(names)")
            let discovery = try XCTUnwrap(doc["unix_listen_discovery"] as? [[String: String]])
            XCTAssertEqual(discovery.compactMap { $0["{#PATH}"] }, listen.keys.sorted(), "\(source): discovery rows, sorted")
            for name in names {
                let entry = try object(listen, name, "\(source) unix_listen")
                let listeners = listening.filter { $0.name == name }
                let queue = listeners.map(\.recvQ).reduce(0, +), backlog = listeners.map(\.sendQ).reduce(0, +)
                XCTAssertEqual(number(entry["listeners"]), listeners.count, "\(source) \(name) listeners")
                XCTAssertEqual(number(entry["accept_queue"]), queue, "\(source) \(name) accept_queue vs ss Recv-Q")
                // /proc/net/unix has no backlog: 0 there, as documented.
                let wantBacklog = source == "proc" ? 0 : backlog
                XCTAssertEqual(number(entry["backlog"]), wantBacklog, "\(source) \(name) backlog vs ss Send-Q")
                XCTAssertEqual(number(entry["accept_queue_pct"]), wantBacklog == 0 ? 0 : queue * 100 / wantBacklog, "\(source) \(name) pct")
                let connections = all.filter { $0.name == name && $0.state != "listen" }.count
                XCTAssertEqual(number(entry["connections"]), connections, "\(source) \(name) connections vs ss -xa")
            }
            XCTAssertEqual(number(try object(listen, app, source)["accept_queue_pct"]), source == "netlink" ? 125 : 0, "5 of 4")
            XCTAssertEqual(number(try object(listen, seq, source)["connections"]), 2)
        }

        // The abstract name lives in the namespace's own table: the host's does not list it.
        let host = try runStats([stats, "stats", "--sections", "unix"])
        XCTAssertNil(try object(host, "unix_listen", "host")[abstract], "an abstract name is per network namespace")
    }

    /// The dump of an empty namespace: every key there, every count 0.
    func testEmptyNamespaceReportsZerosAndNoPaths() throws {
        let ns = try makeNamespace()
        let doc = try runStats([try statsBinary(), "stats", "--netns", ns, "--sections", "unix"])
        XCTAssertEqual(try ssUnix(ns, "-Hxa"), [])
        for type in ["stream", "seqpacket", "dgram"] {
            XCTAssertEqual(try object(try object(doc, "unix", "unix"), type, type).compactMapValues(number),
                           ["established": 0, "syn_sent": 0, "listen": 0, "unconn": 0, "total": 0])
        }
        XCTAssertEqual((doc["unix_listen_discovery"] as? [Any])?.count, 0)
    }
}
