// `--all-netns` against `ss` run inside each namespace: eleven namespaces the test makes, ten with
// populations that differ in every family and state, one empty. Other namespaces on the host
// (other tests, containers) may come and go; only the test's own are compared.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class AllNamespacesIntegrationTests: NamespaceTestCase {
    /// Namespace i holds i IPv4 listeners (plus sockpop's helper), i established IPv6 pairs,
    /// 11 - i bound UDP sockets and i % 3 connected ones.
    static func population(_ i: Int) -> [String] {
        ["--listen4", "\(i)", "--established6", "\(i)", "--udp-bound4", "\(11 - i)", "--udp-connected6", "\(i % 3)"]
    }

    func testEveryNamespaceEqualsSSInsideIt() throws {
        let empty = try makeNamespace()
        var populated: [(ns: String, population: Population)] = []
        for i in 1...10 {
            let ns = try makeNamespace()
            populated.append((ns, try startPopulation(in: ns, Self.population(i))))
        }
        let doc = try runStats([try statsBinary(), "stats", "--all-netns"])
        for (_, population) in populated { try population.assertStillSteady() }

        let netns = try object(doc, "netns", "stats --all-netns")
        let discovery = try XCTUnwrap(doc["netns_discovery"] as? [[String: String]])
        for (ns, population) in populated {
            let inner = try object(netns, ns, "netns")
            assertCounts(inner, equal: population.expected, "\(ns) vs sockpop")
            assertCounts(inner, equal: try ssCounts(ns), "\(ns) vs ip netns exec \(ns) ss")
            XCTAssertNotNil(inner["listen"], "\(ns): the ports section is collected inside too")
            XCTAssertNotNil(inner["cgroups"], "\(ns): the cgroups section is collected inside too")
            XCTAssertNotNil(inner["kernel"], "\(ns): kernel counters are per namespace")
            XCTAssertNil(inner["netns"], "\(ns): no namespaces inside a namespace")
        }
        let emptyDoc = try object(netns, empty, "netns")
        assertCounts(emptyDoc, equal: try ssCounts(empty), "empty namespace vs ss")
        XCTAssertEqual(number((emptyDoc["tcp"] as? [String: Any])?["total"]), 0)
        XCTAssertEqual(number((emptyDoc["udp"] as? [String: Any])?["total"]), 0)

        for ns in [empty] + populated.map(\.ns) {
            let inode = try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: "/run/netns/\(ns)"))[.systemFileNumber] as? NSNumber)
            XCTAssertEqual(number((netns[ns] as? [String: Any])?["inode"]), inode.intValue, "\(ns) inode")
            XCTAssertEqual(discovery.filter { $0["{#NETNS}"] == ns }.map { $0["{#INODE}"] }, [inode.stringValue], "\(ns) discovery row")
        }
        XCTAssertEqual(Set(discovery.compactMap { $0["{#INODE}"] }).count, discovery.count, "each namespace once")
        let status = try object(doc, "netns_status", "stats")
        XCTAssertEqual(number(status["counted"]), discovery.count)
    }

    /// Without privileges (the agent's user): the caller's namespace is counted as always, the
    /// others are named as not entered, in the JSON and on stderr, and the exit status is 0.
    func testUnprivilegedReportsOwnNamespaceAndSaysWhatItCouldNotEnter() throws {
        let own = try makeNamespace()
        let other = try makeNamespace()
        let population = try startPopulation(in: own, Self.population(4))
        _ = try startPopulation(in: other, Self.population(7))
        let r = try Tool.run(["ip", "netns", "exec", own, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              try statsBinary(), "stats", "--all-netns"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        try population.assertStillSteady()
        assertCounts(doc, equal: population.expected, "the caller's namespace, unprivileged")
        let status = try object(doc, "netns_status", "stats")
        let problems = status["problems"] as? [String] ?? []
        XCTAssertTrue(problems.contains { $0.contains("CAP_SYS_ADMIN") }, "\(problems)")
        XCTAssertTrue(r.stderr.contains("zabbix-sockets: warning:") && r.stderr.contains("CAP_SYS_ADMIN"), r.stderr)
        XCTAssertEqual(number(status["counted"]), 1)
        XCTAssertGreaterThanOrEqual(number(status["found"]) ?? 0, 2, "\(other) is found, though not entered")
        XCTAssertEqual((doc["netns_discovery"] as? [Any])?.count, 1)
        XCTAssertNotNil((try object(doc, "netns", "stats"))[own], "the caller's namespace under its ip netns name")
    }

    func testAllNetnsWithNetnsIsRefused() throws {
        let r = try Tool.run([try statsBinary(), "stats", "--all-netns", "--netns", "x"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--all-netns"), r.stderr)
    }
}
