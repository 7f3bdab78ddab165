import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// `zabbix-sockets serve` against the real `zabbix_get` (Debian's zabbix-server-pgsql ships it),
/// in namespaces the tests make: the same JSON as `stats`, TLS-PSK, the allow-list seen from a
/// second namespace with its own address, SIGHUP and SIGTERM, and 200 slow clients.
final class ServeIntegrationTests: NamespaceTestCase {
    static let port = "10050"
    private var servers: [ServeProcess] = []
    private var helpers: [SlowClients] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        guard Tool.find("zabbix_get") != nil else {
            throw Failure("zabbix_get not found: apt-get install zabbix-server-pgsql (scripts/install-test-deps)")
        }
    }

    override func tearDown() {
        for helper in helpers { helper.stop() }
        helpers = []
        for server in servers { server.stop() }
        servers = []
        super.tearDown()
    }

    // MARK: - Tests

    func testZabbixGetReturnsWhatStatsPrintsForTheSameNamespace() throws {
        // serve and zabbix_get talk in one namespace; the counted one (--netns) holds a population
        // and nothing else, so neither the poll's own connection nor host traffic is in the counts.
        let talk = try makeLoopbackNamespace()
        let counted = try makeNamespace()
        let population = try startPopulation(in: counted, ["--listen4", "2", "--established4", "3", "--close-wait6", "2",
                                                           "--udp-bound4", "2", "--udp-connected6", "1"])
        let server = try startServe(in: talk, ["--server", "127.0.0.1", "--listen-ip", "127.0.0.1", "-p", Self.port, "--netns", counted])
        // `stats` runs where serve runs: kernel-wide limits (tcp_mem, tcp_max_orphans) are visible
        // only from the host's namespace, so both must look from the same place.
        let stats = try statsBinary()
        let statsHere = ["ip", "netns", "exec", talk, stats, "stats", "--netns", counted]
        let cases: [(key: String, stats: [String])] = [
            ("sockets.stats[counts]", ["--sections", "counts"]),
            (#"sockets.stats["counts,ports","5432,22"]"#, ["--sections", "counts,ports", "--remote-ports", "5432,22"]),
            ("sockets.stats[ports]", ["--sections", "ports"]),
        ]
        for (key, options) in cases {
            let (printed, answered) = try measureSteady(
                observe: { try self.output(statsHere + options) },
                measure: { try self.zabbixGet(in: talk, key: key) })
            XCTAssertEqual(answered.status, 0, "\(key): \(answered.stderr)")
            XCTAssertEqual(answered.stdout.trimmingCharacters(in: .newlines), printed, key)
        }
        try population.assertStillSteady()
        XCTAssertTrue(try output([stats, "stats", "--netns", counted, "--sections", "counts"]).contains(#""established":6"#),
                      "the population is what was counted")

        // Without parameters: every section, as `stats` prints with no options. The kernel section
        // holds kernel-wide values that other processes move, so only its keys are compared.
        let full = try zabbixGet(in: talk, key: "sockets.stats")
        XCTAssertEqual(full.status, 0, full.stderr)
        let served = try jsonObject(full.stdout)
        let printed = try jsonObject(try output(statsHere))
        XCTAssertEqual(Set(served.keys), Set(printed.keys))
        XCTAssertEqual(Set(try object(served, "kernel", "served").keys), Set(try object(printed, "kernel", "printed").keys))
        assertCounts(served, equal: population.expected, "sockets.stats via zabbix_get")

        for (key, expected) in [
            ("agent.ping", "1"), ("agent.hostname", try output(["hostname"]).prefix(128).description),
            ("agent.ping[]", "ZBX_NOTSUPPORTED: Item does not allow parameters."),
            ("system.cpu.load", "ZBX_NOTSUPPORTED: Unsupported item key."),
            ("sockets.stats[counts", "ZBX_NOTSUPPORTED: Invalid item key format."),
            ("sockets.stats[a,b,c]", "ZBX_NOTSUPPORTED: Too many parameters."),
        ] {
            let answer = try zabbixGet(in: talk, key: key)
            XCTAssertEqual(answer.stdout.trimmingCharacters(in: .newlines), expected, key)
        }
        XCTAssertFalse(try zabbixGet(in: talk, key: "agent.version").stdout.isEmpty)
        XCTAssertTrue(try zabbixGet(in: talk, key: "sockets.stats[nosuch]").stdout.hasPrefix("ZBX_NOTSUPPORTED: Invalid parameter: unknown section \"nosuch\""))
        XCTAssertTrue(server.isRunning)
    }

    func testPSKWorksAndAWrongKeyOrPlainTextGetsNothing() throws {
        let ns = try makeLoopbackNamespace()
        let scratch = try makeScratchDirectory()
        let key = scratch.appendingPathComponent("agent.psk"), wrong = scratch.appendingPathComponent("wrong.psk")
        try "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n".write(to: key, atomically: true, encoding: .utf8)
        try "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210\n".write(to: wrong, atomically: true, encoding: .utf8)
        let config = scratch.appendingPathComponent("agent.conf")
        try """
            Server=127.0.0.1
            ListenIP=127.0.0.1
            ListenPort=\(Self.port)
            TLSAccept=psk
            TLSPSKIdentity=PSK serve 1
            TLSPSKFile=\(key.path)
            """.write(to: config, atomically: true, encoding: .utf8)
        let server = try startServe(in: ns, ["-c", config.path, "--sections", "counts"])
        let tls = ["--tls-connect", "psk", "--tls-psk-identity", "PSK serve 1"]

        let ping = try zabbixGet(in: ns, key: "agent.ping", extra: tls + ["--tls-psk-file", key.path])
        XCTAssertEqual(ping.status, 0, ping.stderr)
        XCTAssertEqual(ping.stdout, "1\n")
        let stats = try zabbixGet(in: ns, key: "sockets.stats", extra: tls + ["--tls-psk-file", key.path])
        XCTAssertEqual(try jsonObject(stats.stdout)["source"] as? String, "netlink")

        let wrongKey = try zabbixGet(in: ns, key: "agent.ping", extra: tls + ["--tls-psk-file", wrong.path])
        XCTAssertNotEqual(wrongKey.status, 0)
        XCTAssertEqual(wrongKey.stdout, "")
        XCTAssertTrue(wrongKey.stderr.contains("cannot establish TLS"), wrongKey.stderr)
        try waitUntil("the log names the failed handshake", timeout: 5) { server.logged("TLS handshake failed") }

        let wrongIdentity = try zabbixGet(in: ns, key: "agent.ping", extra: ["--tls-connect", "psk", "--tls-psk-identity", "PSK other", "--tls-psk-file", key.path])
        XCTAssertNotEqual(wrongIdentity.status, 0)
        XCTAssertEqual(wrongIdentity.stdout, "")

        let plain = try zabbixGet(in: ns, key: "agent.ping")
        XCTAssertNotEqual(plain.status, 0)
        XCTAssertEqual(plain.stdout, "")
        try waitUntil("the log says why plain text was refused", timeout: 5) { server.logged("unencrypted connections are not allowed") }
    }

    func testAPeerOutsideServerGetsNothingUntilSIGHUPAllowsIt() throws {
        // Two namespaces joined by a veth pair: the endpoint at 10.213.45.1, a client at .2.
        let agent = try makeLoopbackNamespace()
        let client = try makeNamespace()
        let suffix = String(UUID().uuidString.prefix(6)).lowercased()
        try ip(["link", "add", "zsa\(suffix)", "netns", agent, "type", "veth", "peer", "name", "zsc\(suffix)", "netns", client])
        try ip(["-n", agent, "addr", "add", "10.213.45.1/30", "dev", "zsa\(suffix)"])
        try ip(["-n", client, "addr", "add", "10.213.45.2/30", "dev", "zsc\(suffix)"])
        try ip(["-n", agent, "link", "set", "zsa\(suffix)", "up"])
        try ip(["-n", client, "link", "set", "zsc\(suffix)", "up"])
        let scratch = try makeScratchDirectory()
        let config = scratch.appendingPathComponent("agent.conf")
        try "Server=127.0.0.1,::1\nHostname=first\nListenPort=\(Self.port)\n".write(to: config, atomically: true, encoding: .utf8)
        let server = try startServe(in: agent, ["-c", config.path, "--sections", "counts"])

        let refused = try zabbixGet(in: client, host: "10.213.45.1", key: "agent.ping")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertEqual(refused.stdout, "", "a refused peer gets no reply at all")
        XCTAssertTrue(refused.stderr.contains("Check access restrictions"), refused.stderr)
        try waitUntil("the log says why", timeout: 5) {
            server.logged(#"connection from "10.213.45.2" rejected, allowed hosts: "127.0.0.1,::1""#)
        }
        XCTAssertEqual(try zabbixGet(in: agent, key: "agent.hostname").stdout, "first\n", "loopback is allowed")

        // A flood of refused connections is logged rate-limited, not line by line.
        for _ in 0..<20 { _ = try zabbixGet(in: client, host: "10.213.45.1", key: "agent.ping") }
        XCTAssertLessThanOrEqual(server.count("rejected, allowed hosts"), 3, server.logText)

        try "Server=127.0.0.1,10.213.45.0/30\nHostname=second\nListenPort=\(Self.port)\n".write(to: config, atomically: true, encoding: .utf8)
        let reloadsBefore = server.count("configuration reloaded")
        for _ in 0..<20 { kill(server.pid, SIGHUP) }
        try waitUntil("the reload", timeout: 10) { server.count("configuration reloaded") > reloadsBefore }
        let allowed = try zabbixGet(in: client, host: "10.213.45.1", key: "agent.hostname")
        XCTAssertEqual(allowed.stdout, "second\n", allowed.stderr)
        usleep(1_500_000)
        XCTAssertLessThanOrEqual(server.count("configuration reloaded") - reloadsBefore, 2, "a burst of 20 SIGHUPs is one or two reloads")

        try "Server=not a valid entry!\n".write(to: config, atomically: true, encoding: .utf8)
        kill(server.pid, SIGHUP)
        try waitUntil("the refused reload", timeout: 10) { server.logged("configuration reload failed, keeping the previous settings") }
        XCTAssertEqual(try zabbixGet(in: client, host: "10.213.45.1", key: "agent.ping").stdout, "1\n")

        let started = Date()
        kill(server.pid, SIGTERM)
        XCTAssertTrue(Tool.wait(server.process, timeout: 5))
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "SIGTERM exits within a second")
        XCTAssertEqual(server.process.terminationStatus, 0)
    }

    func testTwoHundredSlowClientsDoNotStopAPollAndResourcesReturnToIdle() throws {
        let ns = try makeLoopbackNamespace()
        // Timeout 30: the slow clients stay connected for the whole test instead of being cut off.
        // TLS accepted too, so that the clients that start a handshake and stall are held as well.
        let key = try makeScratchDirectory().appendingPathComponent("agent.psk")
        try "0123456789abcdef0123456789abcdef\n".write(to: key, atomically: true, encoding: .utf8)
        let server = try startServe(in: ns, ["--server", "127.0.0.1", "--listen-ip", "127.0.0.1", "-p", Self.port,
                                             "-t", "30", "--sections", "counts", "--tls-accept", "unencrypted,psk",
                                             "--tls-psk-identity", "load", "--tls-psk-file", key.path])
        for key in ["sockets.stats", "agent.ping", "sockets.stats", "sockets.stats"] {
            XCTAssertEqual(try zabbixGet(in: ns, key: key).status, 0)
        }
        usleep(300_000)
        let cold = try server.resources()

        // Three rounds of 200, each followed by a return to the idle number of open files.
        var rounds: [(loaded: (fds: Int, rssKiB: Int), after: (fds: Int, rssKiB: Int), stats: [Double], pings: [Double])] = []
        for _ in 0..<3 {
            let clients = try startSlowClients(in: ns, count: 200)
            try waitUntil("serve holds the 200 slow connections", timeout: 15) { try server.resources().fds >= cold.fds + 200 }
            var stats: [Double] = [], pings: [Double] = []
            for _ in 0..<5 {
                var started = Date()
                let answer = try zabbixGet(in: ns, key: "sockets.stats", timeout: 3)
                stats.append(Date().timeIntervalSince(started))
                XCTAssertEqual(answer.status, 0, answer.stderr)
                // The poll saw the slow clients: 200 connections, both ends in this namespace.
                let established = (try object(try jsonObject(answer.stdout), "tcp", "poll")["established"] as? NSNumber)?.intValue ?? 0
                XCTAssertGreaterThanOrEqual(established, 400)
                started = Date()
                XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping", timeout: 3).stdout, "1\n")
                pings.append(Date().timeIntervalSince(started))
            }
            let loaded = try server.resources()
            XCTAssertLessThan(stats.max()!, 3.0, "every poll answered within zabbix_get's 3 s timeout")
            clients.stop()
            try waitUntil("open files back to idle", timeout: 10) { try server.resources().fds == cold.fds }
            XCTAssertEqual(try zabbixGet(in: ns, key: "sockets.stats").status, 0)
            usleep(300_000)
            rounds.append((loaded, try server.resources(), stats.sorted(), pings.sorted()))
        }
        for (index, round) in rounds.enumerated() {
            print(String(format: "serve, round %d of 200 slow clients: sockets.stats median %.0f ms max %.0f ms, agent.ping median %.0f ms max %.0f ms; fds idle %d, loaded %d, after %d; RSS idle %d KiB, loaded %d KiB, after %d KiB",
                         index + 1, round.stats[2] * 1000, round.stats[4] * 1000, round.pings[2] * 1000, round.pings[4] * 1000,
                         cold.fds, round.loaded.fds, round.after.fds, cold.rssKiB, round.loaded.rssKiB, round.after.rssKiB))
            XCTAssertEqual(round.after.fds, cold.fds)
        }
        // glibc keeps freed pages in its arenas, so RSS settles a few MiB above the cold start
        // over the first rounds (seen: +2.5 to +5 MiB, flattening out). 600 connections leaking even
        // 14 KiB each would pass 8 MiB.
        XCTAssertLessThanOrEqual(rounds[2].after.rssKiB, cold.rssKiB + 8192, "RSS back near idle after 600 slow connections")

        // SIGTERM with 200 connections open: still out within a second.
        let again = try startSlowClients(in: ns, count: 200)
        try waitUntil("200 slow connections again", timeout: 15) { try server.resources().fds >= cold.fds + 200 }
        let started = Date()
        kill(server.pid, SIGTERM)
        XCTAssertTrue(Tool.wait(server.process, timeout: 5))
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "SIGTERM exits within a second")
        again.stop()
    }

    func testConnectionsBeyondTheBoundAreClosedAtOnce() throws {
        let ns = try makeLoopbackNamespace()
        let server = try startServe(in: ns, ["--server", "127.0.0.1", "--listen-ip", "127.0.0.1", "-p", Self.port,
                                             "-t", "30", "--max-connections", "20", "--sections", "counts"])
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n")
        usleep(200_000)
        let idle = try server.resources()
        let clients = try startSlowClients(in: ns, count: 60)
        try waitUntil("the bound is logged", timeout: 10) { server.logged("20 connections are open already") }
        usleep(500_000)
        XCTAssertLessThanOrEqual(try server.resources().fds, idle.fds + 20, "at most 20 connections held")
        clients.stop()
        try waitUntil("open files back to idle", timeout: 10) { try server.resources().fds == idle.fds }
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n", "answers again once they are gone")
    }

    func testJSONAndCompressedRequestsAndBadFramesOnTheWire() throws {
        let ns = try makeLoopbackNamespace()
        let server = try startServe(in: ns, ["--server", "127.0.0.1", "--listen-ip", "127.0.0.1", "-p", Self.port, "--sections", "counts"])
        // One request per connection, as a server would send it; prints the reply (flags, payload).
        let client = #"""
            import json, socket, struct, sys, zlib
            payload, flags = sys.argv[1].encode(), int(sys.argv[2])
            body = zlib.compress(payload) if flags & 2 else payload
            header = b"ZBXD" + bytes([flags]) + struct.pack("<II", len(body), len(payload) if flags & 2 else 0)
            frame = header + body if sys.argv[3] == "whole" else bytes.fromhex(sys.argv[3])
            s = socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=10)
            s.sendall(frame)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            if not reply:
                print("NOTHING")
            else:
                rflags, length, raw = reply[4], struct.unpack("<I", reply[5:9])[0], struct.unpack("<I", reply[9:13])[0]
                data = reply[13:13 + length]
                print(rflags, json.dumps((zlib.decompress(data) if rflags & 2 else data).decode()))
            """#
        func exchange(_ payload: String, flags: Int = 1, frame: String = "whole") throws -> String {
            try output(["ip", "netns", "exec", ns, "python3", "-c", client, payload, "\(flags)", frame, Self.port])
        }
        XCTAssertEqual(try exchange(#"{"request":"passive checks","data":[{"key":"agent.ping","timeout":3},{"key":"nosuch"}]}"#),
                       #"1 "{\"version\":\"7.0.0\",\"variant\":1,\"data\":[{\"value\":\"1\"},{\"error\":\"Unsupported item key.\"}]}""#)
        XCTAssertEqual(try exchange(#"{"request":"active checks"}"#),
                       #"1 "{\"version\":\"7.0.0\",\"variant\":1,\"error\":\"unsupported request \\\"active checks\\\"\"}""#)
        XCTAssertEqual(try exchange("agent.ping", flags: 3), #"3 "1""#, "a compressed request gets a compressed reply")
        XCTAssertEqual(try exchange("agent.ping\r\n"), #"1 "1""#)
        XCTAssertEqual(try exchange("", frame: "474554202f20485454502f312e300d0a0d0a"), "NOTHING", "not ZBXD: closed without a reply")
        XCTAssertEqual(try exchange("", frame: "5a42584401" + "01400000" + "00000000"), "NOTHING", "16 KiB + 1 announced: refused")
        XCTAssertEqual(try exchange("", frame: "5a42584405" + "0a00000000000000" + "0000000000000000"), "NOTHING", "large frames are refused, as by the agent")
        try waitUntil("the log names the bad frame", timeout: 5) { server.logged("message from 127.0.0.1 ignored: message is missing header") }
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n")
    }

    func testSilentAndSlowClientsAreCutOffAfterTimeout() throws {
        let ns = try makeLoopbackNamespace()
        let server = try startServe(in: ns, ["--server", "127.0.0.1", "--listen-ip", "127.0.0.1", "-p", Self.port,
                                             "-t", "1", "--sections", "counts"])
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n")
        usleep(200_000)
        let idle = try server.resources()
        let clients = try startSlowClients(in: ns, count: 40)
        let started = Date()
        // The clients hold their ends (they never close before stop()); serve drops its own.
        try waitUntil("serve closes the stalled connections", timeout: 10) { try server.resources().fds == idle.fds }
        XCTAssertTrue(clients.process.isRunning)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.9, "not before Timeout")
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n")
    }

    func testDNSNamesInServerAreResolved() throws {
        let ns = try makeLoopbackNamespace()
        // "localhost" comes from /etc/hosts; the .invalid name never resolves (RFC 6761).
        _ = try startServe(in: ns, ["--server", "nothing.invalid,localhost", "--listen-ip", "127.0.0.1", "-p", Self.port])
        XCTAssertEqual(try zabbixGet(in: ns, key: "agent.ping").stdout, "1\n")
        let other = try makeLoopbackNamespace()
        let refusing = try startServe(in: other, ["--server", "nothing.invalid", "--listen-ip", "127.0.0.1", "-p", Self.port])
        XCTAssertEqual(try zabbixGet(in: other, key: "agent.ping").stdout, "")
        try waitUntil("the refusal is logged", timeout: 5) { refusing.logged(#"rejected, allowed hosts: "nothing.invalid""#) }
    }

    // MARK: - Helpers

    private func makeLoopbackNamespace() throws -> String {
        let ns = try makeNamespace()
        try ip(["-n", ns, "link", "set", "lo", "up"])
        return ns
    }

    private func ip(_ arguments: [String]) throws {
        let r = try Tool.run(["ip"] + arguments)
        guard r.status == 0 else { throw Failure("ip \(arguments.joined(separator: " ")): \(r.stderr)") }
    }

    private func output(_ argv: [String]) throws -> String {
        let r = try Tool.run(argv)
        guard r.status == 0 else { throw Failure("\(argv.joined(separator: " ")) exited \(r.status): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .newlines)
    }

    private func jsonObject(_ text: String) throws -> [String: Any] {
        guard let doc = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw Failure("not a JSON object: \(text.prefix(200))")
        }
        return doc
    }

    private func zabbixGet(in ns: String, host: String = "127.0.0.1", key: String, extra: [String] = [], timeout: Int = 5) throws -> Tool.Result {
        try Tool.run(["ip", "netns", "exec", ns, "zabbix_get", "-s", host, "-p", Self.port, "-t", "\(timeout)", "-k", key] + extra,
                     timeout: TimeInterval(timeout + 10))
    }

    private func startServe(in ns: String, _ arguments: [String]) throws -> ServeProcess {
        let server = try ServeProcess(namespace: ns, argv: [try statsBinary(), "serve"] + arguments)
        servers.append(server)
        try waitUntil("serve listens", timeout: 15) { server.logged("listening on") || !server.isRunning }
        guard server.isRunning else { throw Failure("serve exited \(server.process.terminationStatus): \(server.logText)") }
        return server
    }

    private func startSlowClients(in ns: String, count: Int) throws -> SlowClients {
        let clients = try SlowClients(namespace: ns, port: Self.port, count: count)
        helpers.append(clients)
        try clients.waitReady(timeout: 30)
        return clients
    }
}

/// `zabbix-sockets serve` in a namespace (`ip netns exec` execs it in place: the pid is serve's).
final class ServeProcess {
    let process: Process
    let log = Tool.tempFile("serve-log")

    init(namespace: String, argv: [String]) throws {
        process = try Tool.process(["ip", "netns", "exec", namespace] + argv, stdout: log, stderr: log)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
    func logged(_ text: String) -> Bool { logText.contains(text) }
    func count(_ text: String) -> Int { logText.components(separatedBy: text).count - 1 }

    /// Open descriptors (/proc/PID/fd) and resident memory (VmRSS in /proc/PID/status).
    func resources() throws -> (fds: Int, rssKiB: Int) {
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw Failure("no VmRSS in /proc/\(pid)/status") }
        return (fds, kib)
    }

    func stop() {
        if process.isRunning { kill(pid, SIGTERM) }
        Tool.wait(process, timeout: 5)
        try? FileManager.default.removeItem(at: log)
    }
}

/// tools/slowclients.py in a namespace: connections that never finish a request, held until stop().
final class SlowClients {
    static let script = NamespaceTestCase.repositoryRoot.appendingPathComponent("tools/slowclients.py").path

    let process: Process
    let stdin = Pipe()
    let out = Tool.tempFile("slow-out")
    let err = Tool.tempFile("slow-err")

    init(namespace: String, port: String, count: Int) throws {
        signal(SIGPIPE, SIG_IGN)
        process = try Tool.process(["ip", "netns", "exec", namespace, "python3", Self.script, "--host", "127.0.0.1",
                                    "--port", port, "--count", "\(count)"], stdout: out, stderr: err)
        process.standardInput = stdin
        try process.run()
    }

    func waitReady(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if ((try? String(contentsOf: out, encoding: .utf8)) ?? "").hasPrefix("READY") { return }
            if !process.isRunning { throw Failure("slowclients exited: \((try? String(contentsOf: err, encoding: .utf8)) ?? "")") }
            usleep(20_000)
        }
        throw Failure("slowclients not READY within \(timeout) s")
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        Tool.wait(process, timeout: 10)
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
}
