// End-to-end checks of `zabbix-sockets stats` against real sockets: each test builds a known
// population with tools/sockpop.py in a network namespace of its own, then compares the built
// binary's JSON with that population and with `ss` at the same moment. Needs root and `ip`.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class StatsIntegrationTests: NamespaceTestCase {
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
}
