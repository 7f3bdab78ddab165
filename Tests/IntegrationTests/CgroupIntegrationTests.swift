// The cgroups section against `ss --cgroup`: the test mounts cgroup2 itself, makes cgroups named
// like a systemd service, a socket unit, a Docker scope and a Kubernetes pod, starts one
// tools/sockctl.py per cgroup in one namespace, and compares per-cgroup counts.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A cgroup2 mount and cgroups below one test-owned directory; `remove()` undoes both.
final class TestCgroups {
    let mountPoint: String
    /// Relative to the cgroup2 root, as the tool and `ss` print paths: "/zs-it-PID-UUID".
    let base: String
    private var made: [String] = []

    init(scratch: URL) throws {
        mountPoint = scratch.path
        let r = try Tool.run(["mount", "-t", "cgroup2", "none", mountPoint])
        guard r.status == 0 else { throw Failure("mount -t cgroup2 none \(mountPoint): \(r.stderr)") }
        base = "/zs-it-\(getpid())-\(UUID().uuidString.prefix(8))"
        try make("")
    }

    /// Creates base + relative (and its parents); returns its path relative to the root.
    @discardableResult
    func make(_ relative: String) throws -> String {
        var path = base
        for component in relative.split(separator: "/") {
            path += "/" + component
            if made.contains(path) { continue }
            try FileManager.default.createDirectory(atPath: mountPoint + path, withIntermediateDirectories: false)
            made.append(path)
        }
        if relative.isEmpty {
            try FileManager.default.createDirectory(atPath: mountPoint + base, withIntermediateDirectories: false)
            made.append(base)
        }
        return path
    }

    func directory(_ path: String) -> String { mountPoint + path }

    /// Moves any process left behind to the root, removes the cgroups deepest first, unmounts.
    func remove() {
        for path in made.reversed() {
            let procs = (try? String(contentsOfFile: mountPoint + path + "/cgroup.procs", encoding: .utf8)) ?? ""
            for pid in procs.split(separator: "\n") {
                try? (pid + "\n").write(toFile: mountPoint + "/cgroup.procs", atomically: false, encoding: .utf8)
            }
            rmdir(mountPoint + path)
        }
        _ = try? Tool.run(["umount", mountPoint])
    }
}

final class CgroupIntegrationTests: NamespaceTestCase {
    static let dockerID = String(repeating: "0123456789abcdef", count: 4)
    static let podUID = "8a3c1e52-6f0b-4d7e-9c21-5b4f3a2e1d0c"

    /// One cgroup's population: distinct numbers per cgroup, so a swapped cgroup cannot pass.
    struct Plan {
        var relative: String
        var port: Int
        var listeners: Int
        var pairs: Int
        var closeWait: Int
        var udpBound: Int
        var udpConnected: Int
        var timeWait = 0
    }

    static let plans = [
        Plan(relative: "system.slice/nginx.service", port: 18001, listeners: 1, pairs: 3, closeWait: 2, udpBound: 1, udpConnected: 0),
        Plan(relative: "system.slice/ssh.socket", port: 18002, listeners: 2, pairs: 1, closeWait: 4, udpBound: 0, udpConnected: 2),
        Plan(relative: "system.slice/docker-\(dockerID).scope", port: 18003, listeners: 3, pairs: 5, closeWait: 1, udpBound: 3, udpConnected: 1),
        Plan(relative: "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(podUID.replacingOccurrences(of: "-", with: "_")).slice",
             port: 18004, listeners: 4, pairs: 2, closeWait: 3, udpBound: 2, udpConnected: 3, timeWait: 5),
    ]

    /// The sockctls started by `start` and the cgroups they run in; teardown stops the sockctls
    /// first (a cgroup that holds a process cannot be removed).
    final class CgroupFixture {
        let cgroups: TestCgroups
        var controls: [SocketControl] = []

        init(cgroups: TestCgroups) {
            self.cgroups = cgroups
        }
    }

    /// A cgroup2 mount of the test, removed with its sockctls at teardown.
    func makeCgroupFixture() throws -> CgroupFixture {
        let fixture = CgroupFixture(cgroups: try TestCgroups(scratch: try makeScratchDirectory()))
        addTeardownBlock {
            for control in fixture.controls { control.stop() }
            fixture.cgroups.remove()
        }
        return fixture
    }

    /// A sockctl in `ns`, moved into a new cgroup at `relative` before it makes any socket;
    /// returns it and the cgroup's path relative to the hierarchy's root.
    func startControl(in ns: String, cgroup relative: String, of fixture: CgroupFixture) throws -> (SocketControl, String) {
        let path = try fixture.cgroups.make(relative)
        let control = try startControl(in: ns, cgroup: fixture.cgroups.directory(path))
        fixture.controls.append(control)
        return (control, path)
    }

    func testPerCgroupCountsEqualSSGroupedByPath() throws {
        let ns = try makeNamespace()
        let fixture = try makeCgroupFixture()
        let cgroups = fixture.cgroups
        for plan in Self.plans {
            let (control, _) = try startControl(in: ns, cgroup: plan.relative, of: fixture)
            // SO_REUSEPORT: several LISTEN sockets on one port.
            for _ in 0..<plan.listeners { try control.listen("127.0.0.1", plan.port, reuseport: true) }
            try control.connect("127.0.0.1", plan.port, plan.pairs, "established")
            try control.connect("127.0.0.1", plan.port, plan.closeWait, "close_wait")
            if plan.timeWait > 0 { try control.connect("127.0.0.1", plan.port, plan.timeWait, "time_wait") }
            if plan.udpBound > 0 { try control.udp("127.0.0.1", plan.udpBound, connected: false) }
            if plan.udpConnected > 0 { try control.udp("127.0.0.1", plan.udpConnected, connected: true) }
        }
        let stats = try statsBinary()
        let (ss, doc) = try measureSteady(observe: { try ssByCgroup(ns) }, measure: {
            try runStats([stats, "stats", "--netns", ns, "--sections", "counts,cgroups"])
        })

        let status = try object(doc, "cgroup_status", "stats")
        XCTAssertEqual(number(status["available"]), 1, "\(status)")
        let byPath = try object(doc, "cgroups", "stats")
        let discovery = try XCTUnwrap(doc["cgroup_discovery"] as? [[String: String]])
        for plan in Self.plans {
            let path = cgroups.base + "/" + plan.relative
            let entry = try object(byPath, path, "cgroups")
            let want = ["listen": plan.listeners, "established": 2 * plan.pairs,
                        "close_wait": plan.closeWait, "fin_wait2": plan.closeWait]
            assertStates(entry["tcp"] as? [String: Any], equal: want, "\(plan.relative) vs plan")
            assertStates(entry["tcp"] as? [String: Any], equal: ss[path]?.tcp ?? [:], "\(plan.relative) vs ss --cgroup")
            let udp = try object(entry, "udp", plan.relative)
            XCTAssertEqual(number(udp["unconn"]), plan.udpBound, "\(plan.relative) udp unconn")
            XCTAssertEqual(number(udp["established"]), plan.udpConnected, "\(plan.relative) udp established")
            XCTAssertEqual(number(udp["unconn"]), ss[path]?.udp["unconn"] ?? 0, "\(plan.relative) udp vs ss")
            XCTAssertEqual(number(udp["established"]), ss[path]?.udp["established"] ?? 0, "\(plan.relative) udp vs ss")
            XCTAssertEqual(discovery.filter { $0["{#CGROUP}"] == path }.count, 1, "one discovery row for \(path)")
        }
        XCTAssertEqual(Set(byPath.keys), Set(ss.keys.filter { $0 != "" }), "the same cgroups as ss, no more")

        func named(_ relative: String) -> (name: String?, kind: String?) {
            let entry = byPath[cgroups.base + "/" + relative] as? [String: Any]
            return (entry?["name"] as? String, entry?["kind"] as? String)
        }
        XCTAssertTrue(named(Self.plans[0].relative) == ("nginx.service", "service"))
        XCTAssertTrue(named(Self.plans[1].relative) == ("ssh.socket", "socket"))
        XCTAssertTrue(named(Self.plans[2].relative) == (String(Self.dockerID.prefix(12)), "container"))
        XCTAssertTrue(named(Self.plans[3].relative) == ("pod " + Self.podUID, "pod"))

        // TIME_WAIT: never attributed to a cgroup, reported apart, equal to ss.
        let unattributed = try object(try object(status, "unattributed", "cgroup_status"), "tcp", "unattributed")
        XCTAssertEqual(number(unattributed["time_wait"]), 5)
        XCTAssertEqual(number(unattributed["time_wait"]), ss[""]?.tcp["time_wait"])
        for (path, entry) in byPath {
            XCTAssertEqual(number(((entry as? [String: Any])?["tcp"] as? [String: Any])?["time_wait"]), 0, path)
        }
    }

    /// Two processes in two cgroups hold 3 and 5 CLOSE_WAIT sockets (and other states):
    /// `owners --state close_wait` names each pid, its cgroup and its count, as `ss -p` does.
    func testOwnersNamesThePidAndCountPerProcess() throws {
        let ns = try makeNamespace()
        let fixture = try makeCgroupFixture()
        let cgroups = fixture.cgroups
        var pids: [String: Int] = [:]
        for (unit, port, closeWait) in [("billing.service", 18021, 3), ("search.service", 18022, 5)] {
            let (control, path) = try startControl(in: ns, cgroup: "system.slice/" + unit, of: fixture)
            try control.listen("127.0.0.1", port)
            try control.connect("127.0.0.1", port, 2, "established")
            try control.connect("127.0.0.1", port, closeWait, "close_wait")
            let procs = try String(contentsOfFile: cgroups.directory(path) + "/cgroup.procs", encoding: .utf8)
            pids[unit] = try XCTUnwrap(Int(procs.trimmingCharacters(in: .whitespacesAndNewlines)), "one process in \(unit): \(procs)")
        }
        // billing.service forks a worker after making its sockets: both hold the 3 (a pre-fork
        // server), and each is named with them, as `ss -p` names both.
        let worker = try fixture.controls[0].fork()
        let r = try Tool.run([try statsBinary(), "owners", "--state", "close_wait", "--netns", ns, "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let found = try object(try object(doc, "netns", "owners"), ns, "owners")
        let owners = try XCTUnwrap(found["owners"] as? [[String: Any]])
        let billing = try XCTUnwrap(pids["billing.service"])
        XCTAssertEqual(owners.map { number($0["pid"]) }, [pids["search.service"]] + [billing, worker].sorted(),
                       "heaviest first, then by pid: \(owners)")
        XCTAssertEqual(owners.map { number($0["sockets"]) }, [5, 3, 3])
        XCTAssertEqual(owners.map { $0["cgroup"] as? String }, ["search.service", "billing.service", "billing.service"])
        XCTAssertEqual(owners.map { $0["command"] as? String }, ["python3", "python3", "python3"])
        XCTAssertEqual(number(found["matched"]), 8, "sockets, each once")
        XCTAssertEqual(found["full_scan"] as? Bool, false, "found in the sockets' own cgroups")
        XCTAssertEqual(number(found["processes_scanned"]), 3, "only the two cgroups' three processes were read")

        // ss -p as the oracle: pid -> CLOSE-WAIT sockets, every holder of a shared one.
        let ss = try Tool.run(["nsenter", "--net=/run/netns/\(ns)", "ss", "-Htanp", "state", "close-wait"])
        var bySS: [Int: Int] = [:]
        for line in ss.stdout.split(separator: "\n") {
            for holder in line.components(separatedBy: "pid=").dropFirst() {
                guard let pid = Int(holder.prefix { $0.isNumber }) else { continue }
                bySS[pid, default: 0] += 1
            }
        }
        XCTAssertEqual(bySS, Dictionary(uniqueKeysWithValues: owners.map { (number($0["pid"])!, number($0["sockets"])!) }), ss.stdout)
    }

    /// With no cgroup v2 mounted (a private mount namespace with every cgroup2 mount removed),
    /// the section says so and the counts are still there.
    func testNoCgroup2MountIsReportedNotFatal() throws {
        let ns = try makeNamespace()
        let control = try startControl(in: ns)
        try control.listen("127.0.0.1", 18010)
        let script = #"for m in $(findmnt -rn -t cgroup2 -o TARGET); do umount -l "$m"; done; exec "$@""#
        let doc = try runStats(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                                try statsBinary(), "stats", "--netns", ns, "--sections", "counts,cgroups"])
        let status = try object(doc, "cgroup_status", "stats")
        XCTAssertEqual(number(status["available"]), 0)
        XCTAssertTrue((status["reason"] as? String ?? "").contains("no cgroup v2"), "\(status)")
        XCTAssertEqual((doc["cgroup_discovery"] as? [Any])?.count, 0)
        XCTAssertEqual(number((doc["tcp"] as? [String: Any])?["listen"]), 1)
    }

    /// `--source proc` has no cgroup ids: said, not guessed.
    func testProcSourceSaysItHasNoCgroupIDs() throws {
        let ns = try makeNamespace()
        let doc = try runStats([try statsBinary(), "stats", "--netns", ns, "--source", "proc", "--sections", "counts,cgroups"])
        let status = try object(doc, "cgroup_status", "stats")
        XCTAssertEqual(number(status["available"]), 0)
        XCTAssertTrue((status["reason"] as? String ?? "").contains("/proc"), "\(status)")
    }

    struct SSCounts: Equatable {
        var tcp: [String: Int] = [:]
        var udp: [String: Int] = [:]
    }

    /// `ss -tan --cgroup` and `ss -uan --cgroup` in the namespace, counted per cgroup path and
    /// state; sockets without a cgroup (TIME_WAIT, SYN_RECV) under "".
    private func ssByCgroup(_ ns: String) throws -> [String: SSCounts] {
        var out: [String: SSCounts] = [:]
        for (option, names) in [("-Htan", Self.ssTCP), ("-Huan", Self.ssUDP)] {
            // nsenter, not `ip netns exec`: that one remounts /sys, and ss then finds no cgroup2 mount.
            let r = try Tool.run(["nsenter", "--net=/run/netns/\(ns)", "ss", option, "--cgroup"])
            guard r.status == 0 else { throw Failure("ss \(option) --cgroup: \(r.stderr)") }
            for line in r.stdout.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard let first = fields.first, let state = names[String(first)] else { throw Failure("ss: \(line)") }
                let path = fields.first { $0.hasPrefix("cgroup:") }.map { String($0.dropFirst(7)) } ?? ""
                var entry = out[path] ?? SSCounts()
                if option == "-Htan" { entry.tcp[state, default: 0] += 1 } else { entry.udp[state, default: 0] += 1 }
                out[path] = entry
            }
        }
        return out
    }
}
