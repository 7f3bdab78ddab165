// The /proc fallback when netlink is forbidden (tools/deny-netlink.c, compiled here), failures
// that must exit 1 with a message, and the flags that choose what `stats` prints.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class FallbackAndFlagsIntegrationTests: NamespaceTestCase {
    /// No TIME_WAIT and no SYN states: the population holds until stopped.
    static let smallPopulation = ["--listen4", "2", "--established4", "3", "--close-wait6", "2",
                                  "--udp-bound4", "2", "--udp-connected6", "1"]
    static let countsKeys: Set<String> = ["source", "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6"]
    static let portsKeys: Set<String> = ["listen_discovery", "listen", "remote_discovery", "remote", "ephemeral"]
    static let unixKeys: Set<String> = ["unix", "unix_listen_discovery", "unix_listen"]
    static let cgroupKeys: Set<String> = ["cgroup_discovery", "cgroups", "cgroup_status"]

    // MARK: - netlink forbidden

    func testNetlinkForbiddenFallsBackToProc() throws {
        let denyNetlink = try compileDenyNetlink()
        let ns = try makeNamespace()
        let pop = try startPopulation(in: ns, Self.smallPopulation)
        let stats = try statsBinary()

        let doc = try runStats([denyNetlink, stats, "stats", "--netns", ns, "--sections", "counts"])
        let ss = try ssCounts(ns)
        try pop.assertStillSteady()
        XCTAssertEqual(doc["source"] as? String, "proc", "auto must fall back to /proc when netlink is refused")
        XCTAssertEqual(Set(doc.keys), Self.countsKeys, "--sections counts")
        assertCounts(doc, equal: pop.expected, "deny-netlink vs sockpop READY")
        assertCounts(doc, equal: ss, "deny-netlink vs ss")
        XCTAssertEqual(ss, pop.expected, "ss vs sockpop READY (population itself)")
        // The unix section falls back on its own to /proc/net/unix, and says so.
        let unix = try runStats([denyNetlink, stats, "stats", "--netns", ns, "--sections", "unix"])
        XCTAssertEqual(try object(unix, "unix", "deny-netlink")["source"] as? String, "proc")

        // Without the filter the same command uses netlink: the run above really fell back.
        let free = try runStats([stats, "stats", "--netns", ns, "--sections", "counts"])
        XCTAssertEqual(free["source"] as? String, "netlink")
        assertCounts(free, equal: pop.expected, "netlink vs sockpop READY")

        // Forcing netlink where it is forbidden is an error naming netlink and the errno.
        let r = try Tool.run([denyNetlink, stats, "stats", "--netns", ns, "--sections", "counts", "--source", "netlink"])
        XCTAssertEqual(r.status, 1, "stdout: \(r.stdout) stderr: \(r.stderr)")
        XCTAssertTrue(r.stderr.hasPrefix("zabbix-sockets: error:"), "stderr: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("netlink"), "the error must name netlink; stderr: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("EPERM"), "the error must name EPERM; stderr: \(r.stderr)")
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "no document on error")
        try pop.assertStillSteady()
    }

    func testMissingProcRootExitsOneNamingIt() throws {
        let stats = try statsBinary()
        let missing = try makeScratchDirectory().appendingPathComponent("no-such-proc").path
        for sections in ["counts,ports,kernel,unix", "counts", "kernel", "unix"] {
            let r = try Tool.run([stats, "stats", "--proc-root", missing, "--sections", sections])
            XCTAssertEqual(r.status, 1, "--sections \(sections): stdout: \(r.stdout) stderr: \(r.stderr)")
            XCTAssertTrue(r.stderr.hasPrefix("zabbix-sockets: error:"), "stderr: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(missing), "the error must name the path; stderr: \(r.stderr)")
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "no document on error")
        }
    }

    // MARK: - Flags

    func testSectionsChooseTheKeys() throws {
        let ns = try makeNamespace()
        let stats = try statsBinary()
        let cases: [(sections: String?, keys: Set<String>)] = [
            ("counts", Self.countsKeys),
            ("counts,kernel", Self.countsKeys.union(["kernel"])),
            ("counts,ports", Self.countsKeys.union(Self.portsKeys)),
            ("counts,cgroups", Self.countsKeys.union(Self.cgroupKeys)),
            ("unix", Self.countsKeys.union(Self.unixKeys)),
            (nil, Self.countsKeys.union(Self.portsKeys).union(Self.cgroupKeys).union(["kernel"]).union(Self.unixKeys)),
        ]
        for (sections, keys) in cases {
            let doc = try runStats([stats, "stats", "--netns", ns] + (sections.map { ["--sections", $0] } ?? []))
            XCTAssertEqual(Set(doc.keys), keys, "--sections \(sections ?? "(default)")")
        }
    }

    func testUnknownSectionIsRefusedNamingIt() throws {
        let ns = try makeNamespace()
        let stats = try statsBinary()
        for list in ["bogus", "counts,bogus"] {
            let r = try Tool.run([stats, "stats", "--netns", ns, "--sections", list])
            XCTAssertNotEqual(r.status, 0, "--sections \(list): stdout: \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("\"bogus\""), "the error must name the section; stderr: \(r.stderr)")
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "no document on error")
        }
    }

    func testBadRemotePortIsRefused() throws {
        let ns = try makeNamespace()
        let stats = try statsBinary()
        for (list, bad) in [("0", "0"), ("5432,0", "0"), ("65536", "65536"), ("http", "http")] {
            let r = try Tool.run([stats, "stats", "--netns", ns, "--remote-ports", list])
            XCTAssertNotEqual(r.status, 0, "--remote-ports \(list): stdout: \(r.stdout)")
            XCTAssertTrue(r.stderr.contains("--remote-ports") && r.stderr.contains("\"\(bad)\""),
                          "the error must name the flag and \(bad); stderr: \(r.stderr)")
            XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "", "no document on error")
        }
    }

    // MARK: - Helpers

    /// tools/deny-netlink.c built with `cc` into a scratch folder, checked to refuse netlink.
    private func compileDenyNetlink() throws -> String {
        guard let cc = Tool.find("cc") else {
            XCTFail("`cc` not found: apt-get install gcc (needed to build tools/deny-netlink.c)")
            throw Failure("cc not found")
        }
        let output = try makeScratchDirectory().appendingPathComponent("deny-netlink").path
        let source = Self.repositoryRoot.appendingPathComponent("tools/deny-netlink.c").path
        let build = try Tool.run([cc, "-O2", "-Wall", "-o", output, source], timeout: 120)
        guard build.status == 0 else { throw Failure("cc \(source) exited \(build.status): \(build.stderr)") }
        // The filter itself: a netlink socket is refused with EPERM, and only that.
        let probe = try Tool.run([output, "python3", "-c", """
            import socket
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            try:
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
            except PermissionError:
                print("EPERM")
            """])
        XCTAssertEqual(probe.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "EPERM",
                       "deny-netlink must refuse AF_NETLINK with EPERM; stderr: \(probe.stderr)")
        return output
    }
}
