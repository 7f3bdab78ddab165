// Shared by the integration tests: the base class that checks for root and cleans up whatever
// a test made (namespaces, sockpop populations, sockctl helpers, scratch folders) in tearDown,
// even when the test failed or threw; running commands with bounded waits; `ss` parsing.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Tests that make network namespaces and run `zabbix-sockets stats` in them. Needs root and `ip`;
/// skips only without them, and never in CI (CI runs as root), where that is a failure.
class NamespaceTestCase: XCTestCase {
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
    private var controls: [SocketControl] = []
    private var scratchDirectories: [URL] = []

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
        // Runs even when a test failed or threw: stop helpers and populations, then remove the namespaces.
        for control in controls {
            control.stop()
        }
        controls = []
        for population in populations {
            population.stop()
        }
        populations = []
        for ns in namespaces {
            Namespace.destroy(ns)
        }
        namespaces = []
        for directory in scratchDirectories {
            try? FileManager.default.removeItem(at: directory)
        }
        scratchDirectories = []
        super.tearDown()
    }

    // MARK: - Helpers

    func makeNamespace() throws -> String {
        let ns = try Namespace.create()
        namespaces.append(ns)
        return ns
    }

    func startPopulation(in ns: String, _ args: [String]) throws -> Population {
        let pop = try Population(namespace: ns, arguments: args)
        populations.append(pop)
        try pop.waitReady(timeout: 60)
        // The TIME_WAIT window must outlast the test by far (it is ~58 s after READY).
        if let steady = pop.steadyFor {
            XCTAssertGreaterThan(steady, 20, "sockpop's TIME_WAIT window is too short to test in")
        }
        return pop
    }

    func statsBinary() throws -> String {
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

    func runStats(_ argv: [String]) throws -> [String: Any] {
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
    func ssCounts(_ ns: String) throws -> [String: [String: Int]] {
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

    func sum(_ a: [String: Int], _ b: [String: Int]) -> [String: Int] {
        a.merging(b, uniquingKeysWith: +)
    }

    /// Every state of every family (and the tcp/udp sums and totals) equals `want`.
    func assertCounts(_ doc: [String: Any], equal want: [String: [String: Int]], _ what: String,
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

    // MARK: - Helpers for the port, kernel and flag tests

    /// The repository's root (tools/ lives there).
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// tools/sockctl.py started in `ns` and ready for commands; stopped in tearDown. With
    /// `cgroup` (a cgroup v2 directory), it runs in that cgroup from its first instruction on.
    func startControl(in ns: String, cgroup: String? = nil) throws -> SocketControl {
        // A helper that died must fail its test, not kill the test process on the next write.
        signal(SIGPIPE, SIG_IGN)
        let control = try SocketControl(namespace: ns, cgroup: cgroup)
        controls.append(control)
        try control.waitReady(timeout: 30)
        return control
    }

    /// An empty folder, removed in tearDown.
    func makeScratchDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("zs-it-\(getpid())-dir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false)
        scratchDirectories.append(url)
        return url
    }

    /// `sysctl -w NAME=VALUE` inside the namespace, done by writing /proc/sys (procps need not be
    /// installed) and checked by reading it back.
    func sysctl(_ ns: String, _ settings: KeyValuePairs<String, String>) throws {
        for (name, value) in settings {
            let path = "/proc/sys/" + name.replacingOccurrences(of: ".", with: "/")
            let r = try Tool.run(["ip", "netns", "exec", ns, "sh", "-c", #"printf '%s\n' "$2" > "$1""#, "sh", path, value])
            guard r.status == 0 else { throw Failure("sysctl \(name)=\(value) in \(ns): \(r.stderr)") }
            let now = try readInNamespace(ns, path).split(whereSeparator: \.isWhitespace).joined(separator: " ")
            guard now == value else { throw Failure("sysctl \(name) in \(ns) is \"\(now)\" after writing \"\(value)\"") }
        }
    }

    /// A file as a process inside the namespace reads it (`ip netns exec NS cat FILE`).
    func readInNamespace(_ ns: String, _ path: String) throws -> String {
        let r = try Tool.run(["ip", "netns", "exec", ns, "cat", path])
        guard r.status == 0 else { throw Failure("cat \(path) in \(ns) exited \(r.status): \(r.stderr)") }
        return r.stdout
    }

    /// `ss -Htan` inside the namespace (with `filter`, e.g. ["sport", "=", ":80"]), parsed.
    func ssTCP(_ ns: String, options: String = "-Htan", filter: [String] = []) throws -> [SSSocket] {
        let r = try Tool.run(["ip", "netns", "exec", ns, "ss", options] + filter)
        guard r.status == 0 else { throw Failure("ss \(options) \(filter.joined(separator: " ")): \(r.stderr)") }
        return try r.stdout.split(separator: "\n").map { try SSSocket(line: $0) }
    }

    /// Observes (`ss`, a kernel file) before and after `measure` (a `stats` run) and returns the
    /// observation with what was measured, once both observations agree: what `measure` saw is
    /// then what the kernel showed at that moment. At most `attempts` tries.
    func measureSteady<Observed: Equatable, Measured>(
        attempts: Int = 3, observe: () throws -> Observed, measure: () throws -> Measured
    ) throws -> (observed: Observed, measured: Measured) {
        var difference = ""
        for _ in 0..<attempts {
            let before = try observe()
            let measured = try measure()
            let after = try observe()
            if before == after { return (before, measured) }
            difference = "before: \(before)\nafter: \(after)"
            FileHandle.standardError.write(Data("measureSteady: the namespace moved during a measurement, again; \(difference)\n".utf8))
        }
        throw Failure("the namespace did not hold still during \(attempts) measurements; last time \(difference)")
    }

    /// Polls `condition` every 50 ms until it holds; throws after `timeout`.
    func waitUntil(_ what: String, timeout: TimeInterval = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if try condition() { return }
            if Date() >= deadline { throw Failure("\(what): not reached within \(timeout) s") }
            usleep(50_000)
        }
    }

    /// `doc[key]` as a JSON object, or a failure naming what is missing.
    func object(_ doc: [String: Any]?, _ key: String, _ what: String) throws -> [String: Any] {
        guard let value = doc?[key] as? [String: Any] else {
            throw Failure("\(what): no \"\(key)\" object in \(String(describing: doc))")
        }
        return value
    }

    func number(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

    /// A per-state object (a listen or remote entry): exactly the 11 TCP states, `total` and
    /// `extraKeys`; each state equal to `want` (absent = 0), `total` to their sum.
    func assertStates(_ got: [String: Any]?, equal want: [String: Int], extraKeys: Set<String> = [], _ what: String,
                      file: StaticString = #filePath, line: UInt = #line) {
        guard let got else {
            XCTFail("\(what): missing", file: file, line: line)
            return
        }
        XCTAssertEqual(Set(got.keys), Set(Self.tcpStates + ["total"]).union(extraKeys), "\(what): keys", file: file, line: line)
        for state in Self.tcpStates {
            XCTAssertEqual(number(got[state]), want[state] ?? 0, "\(what): \(state)", file: file, line: line)
        }
        XCTAssertEqual(number(got["total"]), Self.tcpStates.reduce(0) { $0 + (want[$1] ?? 0) }, "\(what): total",
                       file: file, line: line)
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
    /// The whole READY object (its "unix" and "unix_listen" when UNIX sockets were asked for).
    private(set) var ready: [String: Any] = [:]
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
        ready = doc
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

/// One line of `ss -Htan`: State, Recv-Q, Send-Q, local address:port, peer address:port.
struct SSSocket: Equatable, CustomStringConvertible {
    /// The stats contract's name: "established", "listen", ...
    var state: String
    var recvQ: Int
    var sendQ: Int
    /// Without brackets; ss's "*" (an IPv6 wildcard that also takes IPv4) as "::".
    var localAddress: String
    var localPort: Int
    /// As ss prints it: "127.0.0.1:2001", "[::1]:2002", "[::ffff:127.0.0.1]:40000".
    var peer: String
    /// nil for a listener's "*".
    var peerPort: Int?

    var description: String { "\(state) \(recvQ) \(sendQ) \(localAddress):\(localPort) \(peer)" }

    init(line: Substring) throws {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 5, let recvQ = Int(fields[1]), let sendQ = Int(fields[2]),
              let state = NamespaceTestCase.ssTCP[String(fields[0])]
        else { throw Failure("unexpected ss line: \(line)") }
        let local = Self.split(fields[3])
        guard let localPort = local.port else { throw Failure("no local port in ss line: \(line)") }
        (self.state, self.recvQ, self.sendQ) = (state, recvQ, sendQ)
        (localAddress, self.localPort) = (local.address == "*" ? "::" : local.address, localPort)
        peer = String(fields[4])
        peerPort = Self.split(fields[4]).port
    }

    /// "[::1]:80" -> ("::1", 80); "0.0.0.0:*" -> ("0.0.0.0", nil). An interface ("%lo") is dropped.
    static func split(_ endpoint: Substring) -> (address: String, port: Int?) {
        guard let colon = endpoint.lastIndex(of: ":") else { return (String(endpoint), nil) }
        var address = endpoint[..<colon]
        if address.hasPrefix("["), address.hasSuffix("]") { address = address.dropFirst().dropLast() }
        if let percent = address.firstIndex(of: "%") { address = address[..<percent] }
        return (String(address), Int(endpoint[endpoint.index(after: colon)...]))
    }
}

extension Array where Element == SSSocket {
    /// How many sockets per state, in the contract's names (only states present).
    var stateCounts: [String: Int] {
        reduce(into: [:]) { $0[$1.state, default: 0] += 1 }
    }
}

/// The kernel's text tables, parsed independently of the product's parsers.
enum KernelFiles {
    /// /proc/net/snmp and /proc/net/netstat: header and value lines in pairs, both led by
    /// "Proto:"; gives "Proto_Name" -> value.
    static func snmp(_ text: String) throws -> [String: Int64] {
        let lines = text.split(separator: "\n")
        guard lines.count % 2 == 0 else { throw Failure("odd number of lines in an snmp-style table") }
        var out: [String: Int64] = [:]
        for index in stride(from: 0, to: lines.count, by: 2) {
            let names = lines[index].split(separator: " "), values = lines[index + 1].split(separator: " ")
            guard names.count == values.count, let label = names.first, label == values.first else {
                throw Failure("mismatched snmp lines: \(lines[index]) / \(lines[index + 1])")
            }
            for (name, value) in zip(names.dropFirst(), values.dropFirst()) {
                guard let number = Int64(value) else { throw Failure("\(name) = \(value)") }
                out["\(label.dropLast())_\(name)"] = number
            }
        }
        return out
    }

    /// /proc/net/sockstat(6): "TCP: inuse 3 orphan 0 ..." -> "TCP_inuse"; "sockets: used 5" -> "sockets_used".
    static func sockstat(_ text: String) throws -> [String: Int64] {
        var out: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let label = words.first, label.hasSuffix(":"), words.count % 2 == 1 else {
                throw Failure("unexpected sockstat line: \(line)")
            }
            for index in stride(from: 1, to: words.count, by: 2) {
                guard let number = Int64(words[index + 1]) else { throw Failure("sockstat: \(line)") }
                out["\(label.dropLast())_\(words[index])"] = number
            }
        }
        return out
    }

    /// A /proc/sys file's numbers ("32768\t60999\n" -> [32768, 60999]).
    static func numbers(_ text: String) throws -> [Int64] {
        let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map { Int64($0) }
        guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil }) else { throw Failure("not numbers: \(text)") }
        return numbers.map { $0! }
    }
}

/// tools/sockctl.py running in a namespace: takes one JSON command per line, answers each with
/// "OK {...}" or "ERR ...", holds its sockets until stop().
final class SocketControl {
    static let script = NamespaceTestCase.repositoryRoot.appendingPathComponent("tools/sockctl.py").path

    let namespace: String
    let process: Process
    let stdin = Pipe()
    let out = Tool.tempFile("ctl-out")
    let err = Tool.tempFile("ctl-err")
    /// Lines of `out` already read.
    private var consumed = 0

    init(namespace: String, cgroup: String? = nil) throws {
        self.namespace = namespace
        var argv = ["ip", "netns", "exec", namespace, "python3", Self.script, "--max-hold", "900"]
        if let cgroup {
            // The shell moves itself into the cgroup, then becomes the helper: every socket it makes is the cgroup's.
            argv = ["sh", "-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, cgroup] + argv
        }
        process = try Tool.process(argv, stdout: out, stderr: err)
        process.standardInput = stdin
        try process.run()
    }

    var stderrText: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }

    func waitReady(timeout: TimeInterval) throws {
        let line = try nextLine(timeout: timeout, after: "start")
        guard line == "READY" else { throw Failure("sockctl: expected READY, got \(line); stderr: \(stderrText)") }
    }

    /// Sends one command (a JSON object's text) and returns its OK reply; an ERR reply throws.
    @discardableResult
    func send(_ command: String, timeout: TimeInterval = 60) throws -> [String: Any] {
        do {
            try stdin.fileHandleForWriting.write(contentsOf: Data((command + "\n").utf8))
        } catch {
            throw Failure("sockctl: cannot send \(command): \(error); stderr: \(stderrText)")
        }
        let line = try nextLine(timeout: timeout, after: command)
        guard line.hasPrefix("OK "),
              let reply = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(3).utf8)) as? [String: Any]
        else { throw Failure("sockctl: \(command) -> \(line); stderr: \(stderrText)") }
        return reply
    }

    func listen(_ address: String, _ port: Int, backlog: Int = 128, v6only: Bool = true, reuseport: Bool = false) throws {
        try send(#"{"op":"listen","addr":"\#(address)","port":\#(port),"backlog":\#(backlog),"v6only":\#(v6only),"reuseport":\#(reuseport)}"#)
    }

    /// `n` connections to address:port left in `mode` (see tools/sockctl.py).
    func connect(_ address: String, _ port: Int, _ n: Int, _ mode: String, sport: Int? = nil) throws {
        let from = sport.map { #","sport":\#($0)"# } ?? ""
        let reply = try send(#"{"op":"connect","addr":"\#(address)","port":\#(port),"n":\#(n),"mode":"\#(mode)"\#(from)}"#)
        guard (reply["made"] as? NSNumber)?.intValue == n else { throw Failure("sockctl: made \(reply), not \(n)") }
    }

    /// A child process holding copies of every socket held now; it ends with sockctl.
    func fork() throws -> Int {
        let reply = try send(#"{"op":"fork"}"#)
        guard let pid = (reply["pid"] as? NSNumber)?.intValue else { throw Failure("sockctl fork: \(reply)") }
        return pid
    }

    func udp(_ address: String, _ n: Int, connected: Bool) throws {
        try send(#"{"op":"udp","addr":"\#(address)","n":\#(n),"connected":\#(connected)}"#)
    }

    private func nextLine(timeout: TimeInterval, after what: String) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
            // Only whole lines: the last piece is complete only when the text ends with "\n".
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            if lines.count > consumed {
                consumed += 1
                return String(lines[lines.startIndex + consumed - 1])
            }
            if !process.isRunning {
                throw Failure("sockctl exited \(process.terminationStatus) after \(what): \(stderrText)")
            }
            if Date() >= deadline { throw Failure("sockctl: no answer to \(what) within \(timeout) s: \(stderrText)") }
            usleep(10_000)
        }
    }

    /// End-of-file on stdin makes sockctl close its sockets and exit; bounded, then SIGTERM / SIGKILL.
    func stop() {
        try? stdin.fileHandleForWriting.close()
        Tool.wait(process, timeout: 30)
        try? FileManager.default.removeItem(at: out)
        try? FileManager.default.removeItem(at: err)
    }
}
