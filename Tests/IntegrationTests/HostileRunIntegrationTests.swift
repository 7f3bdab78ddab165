import Foundation
import Glibc
import XCTest

/// `run` and `send` the way an unlucky host or an attacker would try them: servers that never
/// answer or whose SYNs vanish, signals at awkward moments, absurd numbers, endless inputs, and
/// zabbix_sender's behaviour with several servers. The servers here are a real listener that
/// never answers, a namespace dropping SYNs, and tools/trapper-stub.py where several answering
/// servers are needed at once (a real Zabbix server listens on one port; e2e covers the real one).
final class HostileRunIntegrationTests: NamespaceTestCase {
    // MARK: - Shutdown against silent servers

    func testShutdownDeadlineBoundsASendToAServerThatNeverAnswers() throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let (daemon, log) = try startDaemon(["-z", "127.0.0.1:\(silent.port)", "-t", "60", "--shutdown-seconds", "2"])
        try waitUntil("a send in flight", timeout: 10) { silent.acceptedConnections() > 0 }
        let stopped = Date()
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8), "SIGTERM with --shutdown-seconds 2 against a silent server")
        let took = Date().timeIntervalSince(stopped)
        XCTAssertLessThan(took, 4.5, "exit took \(took) s; -t 60 must not hold it")
        XCTAssertEqual(daemon.terminationStatus, 0)
        XCTAssertTrue(contents(log).contains("the shutdown deadline came during a send"), contents(log))
    }

    func testShutdownDeadlineBoundsAConnectWhoseSYNsAreDropped() throws {
        let ns = try makeNamespace()
        for rule in [["add", "table", "inet", "zs"],
                     ["add", "chain", "inet", "zs", "input", "{ type filter hook input priority 0; }"],
                     ["add", "rule", "inet", "zs", "input", "tcp", "dport", "10051", "drop"]] {
            let added = try Tool.run(["ip", "netns", "exec", ns, "nft"] + rule)
            XCTAssertEqual(added.status, 0, added.stderr)
        }
        let (daemon, log) = try startDaemon(
            ["-z", "127.0.0.1:10051", "-t", "60", "--shutdown-seconds", "2"], inNamespace: ns)
        try waitUntil("the daemon to start", timeout: 10) { contents(log).contains("started:") }
        usleep(1_500_000)  // the first tick's connect is now waiting for a SYN-ACK that never comes
        let stopped = Date()
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8))
        XCTAssertLessThan(Date().timeIntervalSince(stopped), 4.5, contents(log))
        XCTAssertEqual(daemon.terminationStatus, 0)
        XCTAssertTrue(contents(log).contains("values stay buffered for the next start"), contents(log))
    }

    // MARK: - Full disk

    func testFullDiskKeepsDeliveringAndRecoversWhenSpaceReturns() throws {
        let mount = try makeScratchDirectory().path
        XCTAssertEqual(try Tool.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mount]).status, 0)
        defer { _ = try? Tool.run(["umount", "-l", mount]) }
        let stub = try TrapperStub(ports: [freePort()])
        defer { stub.stop() }
        let port = stub.ports[0]
        let (daemon, log) = try startDaemon(
            ["-z", "127.0.0.1:\(port)", "--interval", "0.1"], buffer: mount + "/buffer")
        try waitUntil("values arriving", timeout: 10) { stub.requests(on: port) >= 3 }

        // Fill the disk: every later collection fails to be stored.
        _ = try Tool.run(["dd", "if=/dev/zero", "of=\(mount)/filler", "bs=4k", "count=1000"])
        try waitUntil("the full disk logged", timeout: 10) { contents(log).contains("cannot store the values") }
        usleep(1_000_000)
        let duringOutage = stub.requests(on: port)
        // Once per episode: delivered values free space, so a store may succeed between two full
        // spells (a new episode), but never two complaints without a recovery between them.
        var complaining = false
        for line in contents(log).split(separator: "\n") {
            if line.contains("cannot store the values") {
                XCTAssertFalse(complaining, "logged twice in one episode")
                complaining = true
            } else if line.contains("storing values works again") {
                complaining = false
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: mount + "/buffer")
        XCTAssertLessThanOrEqual(files.filter { $0.hasSuffix(".seg") }.count, 2, "no empty segment per failed tick: \(files)")

        // Space comes back: the daemon stores and delivers again by itself.
        try FileManager.default.removeItem(atPath: mount + "/filler")
        try waitUntil("storing works again", timeout: 10) { contents(log).contains("storing values works again") }
        try waitUntil("values arriving again", timeout: 10) { stub.requests(on: port) >= duringOutage + 5 }
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8))
        XCTAssertEqual(daemon.terminationStatus, 0, contents(log))
    }

    // MARK: - Signals

    func testClosedStderrPipeDoesNotKillTheDaemon() throws {
        let pipe = Pipe()
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: try statsBinary())
        daemon.arguments = ["run", "-z", "127.0.0.1:1", "-s", "h", "--interval", "0.1", "--sections", "counts",
                            "--buffer-dir", try makeScratchDirectory().appendingPathComponent("buffer").path]
        daemon.standardError = pipe
        daemon.standardOutput = FileHandle.nullDevice
        try daemon.run()
        defer { if daemon.isRunning { Tool.wait(daemon, timeout: 0) } }
        // As `run ... 2>&1 | head -1`: the reader goes away after the first line.
        _ = pipe.fileHandleForReading.availableData
        try pipe.fileHandleForReading.close()
        usleep(1_500_000)  // a dozen log lines (every failed delivery) hit the closed pipe meanwhile
        XCTAssertTrue(daemon.isRunning, "the daemon died of SIGPIPE")
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8))
        XCTAssertEqual(daemon.terminationReason, .exit)
        XCTAssertEqual(daemon.terminationStatus, 0)
    }

    func testSIGHUPFloodSkipsNoCollectionAndReloadsCoalesce() throws {
        // In a namespace of its own the count is small, so collections keep to the interval on a
        // busy machine too, and a missed tick can only be the flood's doing.
        let ns = try makeNamespace()
        let interval = 0.5
        let launched = Date()
        let (daemon, log) = try startDaemon(["-z", "127.0.0.1:1", "--interval", "\(interval)"], inNamespace: ns)
        try waitUntil("the daemon to start", timeout: 10) { contents(log).contains("started:") }
        for _ in 0..<200 {
            kill(daemon.processIdentifier, SIGHUP)
            usleep(20_000)
        }
        let stopped = Date()
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8))
        let text = contents(log)
        guard let line = text.split(separator: "\n").first(where: { $0.contains("stopped:") }),
              let stored = Int(line.components(separatedBy: "stopped: ")[1].prefix { $0.isNumber })
        else { return XCTFail(text) }
        // Ticks fall on multiples of the interval: the span from launch to SIGTERM holds this many,
        // less one for the start-up before the first.
        let span = stopped.timeIntervalSince(launched)
        let ticks = Int(span / interval)
        XCTAssertGreaterThanOrEqual(stored, ticks - 1, "collections skipped under 200 SIGHUPs in \(span) s: \(stored) of \(ticks)")
        let reloads = text.components(separatedBy: "configuration reloaded").count - 1
        XCTAssertGreaterThan(reloads, 0, text)
        XCTAssertLessThanOrEqual(reloads, Int(span) + 1, "reloads coalesce to one a second")
    }

    // MARK: - Numbers and inputs

    func testEveryNumericOptionHasARangeAndExits64Outside() throws {
        let binary = try statsBinary()
        let base = [binary, "run", "-z", "127.0.0.1:1", "-s", "h", "--buffer-dir", "/nonexistent/never-created"]
        for (flag, value, range) in [
            ("--shutdown-seconds", "9223372036854775807", "0-3600"), ("--shutdown-seconds", "-1", "0-3600"),
            ("--buffer-max-age-hours", "9223372036854775807", "1-87600"), ("--buffer-max-age-hours", "2562047788015216", "1-87600"),
            ("--buffer-max-mib", "1", "2-1048576"), ("--buffer-max-mib", "9223372036854775807", "2-1048576"),
            ("--interval", "0", "0.01-86400"), ("--timeout", "301", "1-300"),
        ] {
            let result = try Tool.run(base + [flag, value], timeout: 10)
            XCTAssertEqual(result.status, 64, "\(flag) \(value): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(range), "\(flag) \(value) names its range: \(result.stderr)")
        }
        let tooMany = (1...256).map(String.init).joined(separator: ",")
        let ports = try Tool.run([binary, "stats", "--remote-ports", tooMany], timeout: 10)
        XCTAssertEqual(ports.status, 64, ports.stderr)
        XCTAssertTrue(ports.stderr.contains("at most 255"), ports.stderr)
    }

    func testTheSmallestBufferTheHelpNamesIsAccepted() throws {
        let (daemon, log) = try startDaemon(["-z", "127.0.0.1:1", "--buffer-max-mib", "2"])
        try waitUntil("the daemon to start", timeout: 10) { contents(log).contains("started:") || !daemon.isRunning }
        XCTAssertTrue(daemon.isRunning, contents(log))
        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 8))
        XCTAssertEqual(daemon.terminationStatus, 0)
    }

    func testEndlessOrHugeInputsAreRefusedNamingTheFile() throws {
        let binary = try statsBinary()
        let scratch = try makeScratchDirectory()
        let including = scratch.appendingPathComponent("include.conf")
        try "ServerActive=127.0.0.1\nInclude=/dev/zero\n".write(to: including, atomically: true, encoding: .utf8)
        let huge = scratch.appendingPathComponent("huge.conf")
        try Data(repeating: UInt8(ascii: "#"), count: 2 << 20).write(to: huge)
        for (argv, expected) in [
            (["send", "-c", "/dev/zero", "-s", "h"], "\"/dev/zero\": not a regular file"),
            (["send", "-c", including.path, "-s", "h"], "\"/dev/zero\": not a regular file"),
            (["send", "-c", huge.path, "-s", "h"], "larger than 1048576 bytes"),
            (["send", "-z", "127.0.0.1:1", "-s", "h", "--tls-connect", "psk", "--tls-psk-identity", "i",
              "--tls-psk-file", "/dev/zero"], "/dev/zero"),
        ] {
            let result = try Tool.run([binary] + argv, timeout: 10)
            XCTAssertEqual(result.status, 1, "\(argv): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(expected), "\(argv): \(result.stderr)")
            XCTAssertLessThan(result.stderr.utf8.count, 400, "a short message, not the file")
        }
    }

    func testProcRootRefusesFIFOsAndQuotesOnlyAnExcerptOfBadFiles() throws {
        let binary = try statsBinary()
        let root = try makeScratchDirectory()
        let net = root.appendingPathComponent("net")
        try FileManager.default.createDirectory(at: net, withIntermediateDirectories: true)
        let fixtures = NamespaceTestCase.repositoryRoot.appendingPathComponent("Tests/SocketStatsTests/Fixtures/mixed")
        for table in ["tcp6", "udp", "udp6"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(table), to: net.appendingPathComponent(table))
        }
        // A FIFO nobody writes to: reading it would block forever.
        XCTAssertEqual(mkfifo(net.appendingPathComponent("tcp").path, 0o600), 0)
        let started = Date()
        let fifo = try Tool.run([binary, "stats", "--proc-root", root.path, "--sections", "counts"], timeout: 10)
        XCTAssertEqual(fifo.status, 1, fifo.stderr)
        XCTAssertTrue(fifo.stderr.contains("is not a regular file"), fifo.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)

        // A 2 MB binary file where a one-number /proc/sys file belongs: a short, escaped excerpt.
        try FileManager.default.removeItem(at: net.appendingPathComponent("tcp"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tcp"), to: net.appendingPathComponent("tcp"))
        let sys = root.appendingPathComponent("sys/net/core")
        try FileManager.default.createDirectory(at: sys, withIntermediateDirectories: true)
        var garbage = Data((0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 131) })
        garbage[0] = UInt8(ascii: "x")
        try garbage.prefix(900_000).write(to: sys.appendingPathComponent("somaxconn"))
        let bad = try Tool.run([binary, "stats", "--proc-root", root.path, "--sections", "counts,ports"], timeout: 10)
        XCTAssertEqual(bad.status, 1, String(bad.stderr.prefix(500)))
        XCTAssertTrue(bad.stderr.contains("somaxconn"), String(bad.stderr.prefix(500)))
        XCTAssertLessThan(bad.stderr.utf8.count, 400, "an excerpt, not the file")
        XCTAssertTrue(bad.stderr.contains("\\x"), "non-printable bytes escaped: \(bad.stderr.prefix(300))")
    }

    // MARK: - Host names

    func testHostNamesAreValidatedAndNeverDuplicated() throws {
        let binary = try statsBinary()
        let longName = String(repeating: "a", count: 129)
        for name in [longName, "web01;rm", "bad/name"] {
            let result = try Tool.run([binary, "send", "-z", "127.0.0.1:1", "-s", name], timeout: 10)
            XCTAssertEqual(result.status, 1, name)
            XCTAssertTrue(result.stderr.contains("cannot be a Zabbix host"), result.stderr)
        }
        let sameAsMain = try Tool.run(
            [binary, "run", "-z", "127.0.0.1:1", "-s", "web01", "--netns-host", "/proc/1/ns/net=web01",
             "--buffer-dir", try makeScratchDirectory().path + "/b"], timeout: 10)
        XCTAssertEqual(sameAsMain.status, 1, sameAsMain.stderr)
        XCTAssertTrue(sameAsMain.stderr.contains("also the main host name"), sameAsMain.stderr)
        let twice = try Tool.run(
            [binary, "run", "-z", "127.0.0.1:1", "-s", "web01", "--netns-host", "a=x", "--netns-host", "b=x"], timeout: 10)
        XCTAssertEqual(twice.status, 64, twice.stderr)
        XCTAssertTrue(twice.stderr.contains("\"x\" is given more than once"), twice.stderr)
        let badNamespaceHost = try Tool.run(
            [binary, "run", "-z", "127.0.0.1:1", "-s", "web01", "--netns-host", "a=\(longName)"], timeout: 10)
        XCTAssertEqual(badNamespaceHost.status, 64, badNamespaceHost.stderr)
    }

    // MARK: - Parity with zabbix_sender

    func testServerListSendsToEveryEntryAndASilentOneMakesItPartial() throws {
        let binary = try statsBinary()
        let answering = try TrapperStub(ports: [freePort(), freePort()])
        defer { answering.stop() }
        let silent = try SilentListener()
        defer { silent.close() }
        let (a, b) = (answering.ports[0], answering.ports[1])

        let both = try Tool.run([binary, "send", "-z", "127.0.0.1:\(a),127.0.0.1:\(b)", "-s", "h", "--sections", "counts"], timeout: 20)
        XCTAssertEqual(both.status, 0, both.stdout + both.stderr)
        XCTAssertTrue(both.stdout.contains("sent: 1; skipped: 0; total: 1"), both.stdout)
        try waitUntil("both servers to get the value", timeout: 5) { answering.requests(on: a) == 1 && answering.requests(on: b) == 1 }

        let partial = try Tool.run(
            [binary, "send", "-z", "127.0.0.1:\(silent.port),127.0.0.1:\(a)", "-s", "h", "-t", "2", "--sections", "counts"],
            timeout: 20)
        XCTAssertEqual(partial.status, 2, "one of two destinations silent: partial, as zabbix_sender: \(partial.stdout) \(partial.stderr)")
        XCTAssertTrue(partial.stdout.contains("sent: 1; skipped: 0; total: 1"), partial.stdout)

        let started = Date()
        let classic = try Tool.run([binary, "send", "--classic", "-z", "127.0.0.1:\(silent.port)", "-s", "h", "-t", "2"], timeout: 20)
        XCTAssertEqual(classic.status, 1, classic.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 3.5, "--classic against a silent server waits one -t, not two")
    }

    // MARK: - Helpers

    private func startDaemon(_ arguments: [String], inNamespace ns: String? = nil, buffer: String? = nil) throws -> (Process, URL) {
        let log = Tool.tempFile("hostile-run-log")
        addTeardownBlock { try? FileManager.default.removeItem(at: log) }
        let buffer = try buffer ?? makeScratchDirectory().appendingPathComponent("buffer").path
        var argv = [try statsBinary(), "run", "-s", "h", "--interval", "0.2", "--sections", "counts", "--buffer-dir", buffer]
            + arguments
        if let ns { argv = ["nsenter", "--net=/run/netns/\(ns)"] + argv }
        let daemon = try Tool.process(argv, stdout: log, stderr: log)
        try daemon.run()
        addTeardownBlock { if daemon.isRunning { Tool.wait(daemon, timeout: 0) } }
        return (daemon, log)
    }

    private func contents(_ url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    private func freePort() throws -> Int {
        let listener = try SilentListener()
        defer { listener.close() }
        return listener.port
    }
}

/// A TCP listener on 127.0.0.1 that accepts (the kernel completes the handshake) and never
/// answers: the silent server of issue reports.
final class SilentListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            port = 0
            throw Failure("cannot listen on 127.0.0.1")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Connections the kernel completed and holds in the accept queue (ss's Recv-Q of a listener).
    func acceptedConnections() -> Int {
        var info = tcp_info()
        var length = socklen_t(MemoryLayout<tcp_info>.size)
        guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 else { return 0 }
        return Int(info.tcpi_unacked)
    }

    func close() { _ = Glibc.close(fd) }
}

/// tools/trapper-stub.py answering on the given ports; stopped by `stop()`.
final class TrapperStub {
    let ports: [Int]
    private let process: Process
    private let output: URL

    init(ports: [Int]) throws {
        self.ports = ports
        output = Tool.tempFile("trapper-stub")
        let script = NamespaceTestCase.repositoryRoot.appendingPathComponent("tools/trapper-stub.py").path
        process = try Tool.process(["python3", script] + ports.map(String.init), stdout: output, stderr: output)
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while !((try? String(contentsOf: output, encoding: .utf8)) ?? "").contains("ready") {
            guard Date() < deadline, process.isRunning else { throw Failure("trapper-stub.py did not start") }
            usleep(20_000)
        }
    }

    func requests(on port: Int) -> Int {
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("\(port) ") }.count
    }

    func stop() {
        Tool.wait(process, timeout: 0)
        try? FileManager.default.removeItem(at: output)
    }
}
