// End-to-end checks of `zabbix-sockets stats` against real sockets: each test builds a known
// population with tools/sockpop.py in a network namespace of its own, then compares the built
// binary's JSON with that population and with `ss` at the same moment. Needs root and `ip`.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class StatsIntegrationTests: XCTestCase {
    // Counts differ per state and per family, so a swapped state or family cannot pass.
    // tcp4: LISTEN 3 (1 + 2 helpers), ESTAB 9 (2 pairs + 5 SYN_RECV clients), SYN_RECV 5,
    //       TIME_WAIT 6, CLOSE_WAIT 8 (7 paired + 1 lone), FIN_WAIT2 7, SYN_SENT 10; udp4 11 / 12.
    // tcp6: LISTEN 4, ESTAB 19, SYN_RECV 13, TIME_WAIT 14, CLOSE_WAIT 17, FIN_WAIT2 15,
    //       SYN_SENT 16; udp6 18 / 20.
    static let population = [
        "--listen4", "1", "--established4", "2", "--syn-recv4", "5", "--time-wait4", "6",
        "--close-wait4", "7", "--lone-close-wait4", "1", "--syn-sent4", "10",
        "--udp-bound4", "11", "--udp-connected4", "12",
        "--listen6", "2", "--established6", "3", "--syn-recv6", "13", "--time-wait6", "14",
        "--close-wait6", "15", "--lone-close-wait6", "2", "--syn-sent6", "16",
        "--udp-bound6", "18", "--udp-connected6", "20",
    ]
    // A different, smaller population for the "own namespace" of the namespace-switch test.
    static let otherPopulation = ["--listen4", "4", "--established6", "1", "--udp-bound4", "3"]

    static let tcpStates = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
                            "close", "close_wait", "last_ack", "listen", "closing"]
    static let udpStates = ["established", "unconn"]
    static let ssTCP = ["ESTAB": "established", "SYN-SENT": "syn_sent", "SYN-RECV": "syn_recv",
                        "FIN-WAIT-1": "fin_wait1", "FIN-WAIT-2": "fin_wait2", "TIME-WAIT": "time_wait",
                        "UNCONN": "close", "CLOSE-WAIT": "close_wait", "LAST-ACK": "last_ack",
                        "LISTEN": "listen", "CLOSING": "closing"]
    static let ssUDP = ["ESTAB": "established", "UNCONN": "unconn"]

    private var namespaces: [String] = []
    private var populations: [Population] = []

    override func setUpWithError() throws {
        try super.setUpWithError()
        // Skip only for these two reasons, and never quietly in CI (CI runs as root).
        var reason: String?
        if getuid() != 0 {
            reason = "integration tests need root (they create network namespaces)"
        } else if Tool.find("ip") == nil {
            reason = "`ip` (iproute2) is not installed"
        }
        if let reason {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                XCTFail("CI must run the integration tests, but: \(reason)")
            }
            throw XCTSkip(reason)
        }
        for tool in ["ss", "python3", "nft"] where Tool.find(tool) == nil {
            XCTFail("`\(tool)` not found: apt-get install iproute2 python3 nftables (scripts/install-test-deps)")
        }
    }

    override func tearDown() {
        // Runs even when a test failed or threw: stop populations, then remove the namespaces.
        for population in populations {
            population.stop()
        }
        populations = []
        for ns in namespaces {
            Namespace.destroy(ns)
        }
        namespaces = []
        super.tearDown()
    }

    // MARK: - Tests

    func testNetlinkCountsEqualPopulationAndSS() throws {
        try checkSource("netlink")
    }

    func testProcCountsEqualPopulationAndSS() throws {
        try checkSource("proc")
    }

    func testUnknownNamespaceExitsOneNamingIt() throws {
        let name = "does-not-exist-\(getpid())"
        let r = try Tool.run([try statsBinary(), "stats", "--netns", name, "--format", "json"])
        XCTAssertEqual(r.status, 1, "stdout: \(r.stdout) stderr: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("zabbix-sockets: error:"), "stderr: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains(name), "the error must name the namespace; stderr: \(r.stderr)")
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "no document on error")
    }

    /// `--netns` reads another namespace without moving the caller: from inside namespace B,
    /// two runs with --netns A (by name and by /proc path) see A; a run without it sees B.
    func testNetnsDoesNotChangeOwnNamespace() throws {
        let a = try makeNamespace()
        let b = try makeNamespace()
        let popA = try startPopulation(in: a, Self.population)
        let popB = try startPopulation(in: b, Self.otherPopulation)
        let stats = try statsBinary()
        let inB = ["ip", "netns", "exec", b]

        let first = try runStats(inB + [stats, "stats", "--netns", a, "--format", "json"])
        let second = try runStats(inB + [stats, "stats", "--netns", "/proc/\(popA.pid)/ns/net", "--format", "json"])
        let own = try runStats(inB + [stats, "stats", "--format", "json"])
        try popA.assertStillSteady()
        try popB.assertStillSteady()

        assertCounts(first, equal: popA.expected, "first --netns \(a)")
        assertCounts(second, equal: popA.expected, "second --netns /proc/PID/ns/net")
        assertCounts(own, equal: popB.expected, "no --netns, run inside \(b)")
    }

    // MARK: - Helpers

    private func checkSource(_ source: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ns = try makeNamespace()
        let pop = try startPopulation(in: ns, Self.population)
        let stats = try statsBinary()

        let doc = try runStats([stats, "stats", "--netns", ns, "--format", "json", "--source", source])
        let ss = try ssCounts(ns)
        try pop.assertStillSteady()

        XCTAssertEqual(doc["source"] as? String, source, "source field", file: file, line: line)
        assertCounts(doc, equal: pop.expected, "\(source) vs sockpop READY", file: file, line: line)
        assertCounts(doc, equal: ss, "\(source) vs ss", file: file, line: line)
        XCTAssertEqual(ss, pop.expected, "ss vs sockpop READY (population itself)", file: file, line: line)
    }

    private func makeNamespace() throws -> String {
        let ns = try Namespace.create()
        namespaces.append(ns)
        return ns
    }

    private func startPopulation(in ns: String, _ args: [String]) throws -> Population {
        let pop = try Population(namespace: ns, arguments: args)
        populations.append(pop)
        try pop.waitReady(timeout: 60)
        // The TIME_WAIT window must outlast the test by far (it is ~58 s after READY).
        if let steady = pop.steadyFor {
            XCTAssertGreaterThan(steady, 20, "sockpop's TIME_WAIT window is too short to test in")
        }
        return pop
    }

    private func statsBinary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["ZABBIX_SOCKETS_BIN"] {
            return path
        }
        // The test bundle lives in the products directory (e.g. .build/debug), next to the binary.
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        dirs.append(Bundle.main.bundleURL)
        dirs.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for dir in dirs {
            let candidate = dir.appendingPathComponent("zabbix-sockets").path
            if FileManager.default.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        XCTFail("zabbix-sockets not found next to the tests in \(dirs.map(\.path)); "
            + "build it first (swift build --product zabbix-sockets) or set ZABBIX_SOCKETS_BIN")
        throw Failure("zabbix-sockets binary not found")
    }

    private func runStats(_ argv: [String]) throws -> [String: Any] {
        let r = try Tool.run(argv)
        guard r.status == 0 else {
            throw Failure("\(argv.joined(separator: " ")) exited \(r.status): \(r.stderr)")
        }
        guard let data = r.stdout.data(using: .utf8),
              let doc = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw Failure("not a JSON object: \(r.stdout)")
        }
        return doc
    }

    /// `ss -Htan -4/-6` and `ss -Huan -4/-6` inside the namespace, counted per state.
    private func ssCounts(_ ns: String) throws -> [String: [String: Int]] {
        var out: [String: [String: Int]] = [:]
        for (key, proto, fam) in [("tcp4", "t", "4"), ("tcp6", "t", "6"), ("udp4", "u", "4"), ("udp6", "u", "6")] {
            let r = try Tool.run(["ip", "netns", "exec", ns, "ss", "-H\(proto)an", "-\(fam)"])
            guard r.status == 0 else { throw Failure("ss failed: \(r.stderr)") }
            let names = proto == "t" ? Self.ssTCP : Self.ssUDP
            var counts = Dictionary(uniqueKeysWithValues: names.values.map { ($0, 0) })
            var total = 0
            for line in r.stdout.split(separator: "\n") {
                guard let state = line.split(separator: " ", omittingEmptySubsequences: true).first else { continue }
                let name = names[String(state)] ?? "unknown \(state)"
                counts[name, default: 0] += 1
                total += 1
            }
            counts["total"] = total
            out[key] = counts
        }
        out["tcp"] = sum(out["tcp4"]!, out["tcp6"]!)
        out["udp"] = sum(out["udp4"]!, out["udp6"]!)
        return out
    }

    private func sum(_ a: [String: Int], _ b: [String: Int]) -> [String: Int] {
        a.merging(b, uniquingKeysWith: +)
    }

    /// Every state of every family (and the tcp/udp sums and totals) equals `want`.
    private func assertCounts(_ doc: [String: Any], equal want: [String: [String: Int]], _ what: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        for key in ["tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"] {
            guard let section = doc[key] as? [String: Any], let expected = want[key] else {
                XCTFail("\(what): no \"\(key)\" object", file: file, line: line)
                continue
            }
            let states = (key.hasPrefix("tcp") ? Self.tcpStates : Self.udpStates) + ["total"]
            XCTAssertEqual(Set(section.keys), Set(states), "\(what): keys of \(key)", file: file, line: line)
            for state in states {
                let got = (section[state] as? NSNumber)?.intValue
                XCTAssertEqual(got, expected[state] ?? 0, "\(what): \(key).\(state)", file: file, line: line)
            }
        }
    }
}

// MARK: - Support

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Running commands with bounded waits; output goes through files, so no pipe can fill up.
enum Tool {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func find(_ name: String) -> String? {
        if name.hasPrefix("/") { return name }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func tempFile(_ tag: String) -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("zs-it-\(getpid())-\(tag)-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        return url
    }

    static func process(_ argv: [String], stdout: URL, stderr: URL) throws -> Process {
        guard let exe = find(argv[0]) else { throw Failure("\(argv[0]) not found") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = Array(argv.dropFirst())
        p.standardOutput = try FileHandle(forWritingTo: stdout)
        p.standardError = try FileHandle(forWritingTo: stderr)
        return p
    }

    static func run(_ argv: [String], timeout: TimeInterval = 60) throws -> Result {
        let out = tempFile("out"), err = tempFile("err")
        defer {
            try? FileManager.default.removeItem(at: out)
            try? FileManager.default.removeItem(at: err)
        }
        let p = try process(argv, stdout: out, stderr: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        if !wait(p, timeout: timeout) {
            throw Failure("\(argv.joined(separator: " ")) did not finish within \(timeout) s")
        }
        return Result(status: p.terminationStatus,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Waits at most `timeout`; then SIGTERM, 5 s grace, SIGKILL. True when it ended by itself.
    @discardableResult
    static func wait(_ p: Process, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if !p.isRunning {
            p.waitUntilExit()
            return true
        }
        p.terminate()
        let grace = Date().addingTimeInterval(5)
        while p.isRunning && Date() < grace { usleep(10_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return false
    }
}

/// Uniquely named namespaces, removed with everything still running inside them.
enum Namespace {
    static func create() throws -> String {
        let name = "zs-it-\(getpid())-\(UUID().uuidString.prefix(8).lowercased())"
        let r = try Tool.run(["ip", "netns", "add", name])
        guard r.status == 0 else { throw Failure("ip netns add \(name): \(r.stderr)") }
        return name
    }

    static func destroy(_ name: String) {
        guard FileManager.default.fileExists(atPath: "/run/netns/\(name)") else { return }
        // Only processes inside this test's own namespace are killed.
        for _ in 0..<50 {
            let pids = ((try? Tool.run(["ip", "netns", "pids", name]))?.stdout ?? "")
                .split(separator: "\n").compactMap { pid_t($0) }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(100_000)
        }
        _ = try? Tool.run(["ip", "netns", "delete", name])
    }
}

/// tools/sockpop.py running in a namespace: READY's counts, held until stop().
final class Population {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tools/sockpop.py").path

    let namespace: String
    let process: Process
    let stdin = Pipe()
    let out = Tool.tempFile("pop-out")
    let err = Tool.tempFile("pop-err")
    private(set) var expected: [String: [String: Int]] = [:]
    private(set) var steadyFor: Double?
    private var readyAt = Date()
    var pid: pid_t { process.processIdentifier }

    init(namespace: String, arguments: [String]) throws {
        self.namespace = namespace
        // `ip netns exec` execs python in place: the pid we hold is sockpop's.
        process = try Tool.process(["ip", "netns", "exec", namespace, "python3", Self.script] + arguments,
                                   stdout: out, stderr: err)
        process.standardInput = stdin
        try process.run()
    }

    func waitReady(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("READY ") }) {
                readyAt = Date()
                try parse(String(line.dropFirst(6)))
                return
            }
            if !process.isRunning {
                throw Failure("sockpop exited \(process.terminationStatus) before READY: \(stderrText)")
            }
            usleep(20_000)
        }
        throw Failure("sockpop gave no READY within \(timeout) s: \(stderrText)")
    }

    var stderrText: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }

    private func parse(_ json: String) throws {
        guard let doc = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw Failure("READY is not a JSON object: \(json)")
        }
        for key in ["tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"] {
            guard let section = doc[key] as? [String: Any] else { throw Failure("READY lacks \(key): \(json)") }
            expected[key] = section.compactMapValues { ($0 as? NSNumber)?.intValue }
        }
        steadyFor = (doc["steady_for_s"] as? NSNumber)?.doubleValue
    }

    /// The counts were taken inside the window in which sockpop's population is exact.
    func assertStillSteady() throws {
        guard process.isRunning else { throw Failure("sockpop died: \(stderrText)") }
        if let steadyFor, Date().timeIntervalSince(readyAt) >= steadyFor {
            throw Failure("counts taken after the TIME_WAIT window (\(steadyFor) s after READY) closed")
        }
    }

    /// End-of-file on stdin makes sockpop clean up; bounded, then SIGTERM / SIGKILL.
    func stop() {
        try? stdin.fileHandleForWriting.close()
        Tool.wait(process, timeout: 30)
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
}
