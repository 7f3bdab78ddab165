// The `kernel` section against the kernel's own files: in an idle namespace holding a few
// sockets, every per-namespace value stats reports equals /proc/net/snmp, netstat, sockstat(6)
// and /proc/sys as a process inside the namespace reads them just before and just after; the
// kernel-wide limits equal the host's files even with --netns.
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class KernelCountersIntegrationTests: NamespaceTestCase {
    /// Per-namespace /proc/sys files stats reads (nf_conntrack only when loaded).
    static let namespaceLimits: [(name: String, path: String)] = [
        ("tcp_max_tw_buckets", "/proc/sys/net/ipv4/tcp_max_tw_buckets"),
        ("somaxconn", "/proc/sys/net/core/somaxconn"),
        ("ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"),
        ("nf_conntrack_count", "/proc/sys/net/netfilter/nf_conntrack_count"),
        ("nf_conntrack_max", "/proc/sys/net/netfilter/nf_conntrack_max"),
    ]
    /// Kernel-wide values: the host's /proc/sys, and sockstat fields that count the whole kernel.
    static let hostLimits: [(name: String, path: String)] = [
        ("tcp_max_orphans", "/proc/sys/net/ipv4/tcp_max_orphans"),
        ("tcp_mem", "/proc/sys/net/ipv4/tcp_mem"),
    ]
    static let kernelWideSockstat: Set<String> = ["TCP_orphan", "TCP_alloc", "TCP_mem", "UDP_mem"]

    func testKernelCountersEqualTheKernelFiles() throws {
        let ns = try makeNamespace()
        // Limits unlike the host's defaults, so reading the wrong namespace cannot pass.
        try sysctl(ns, ["net.core.somaxconn": "1234", "net.ipv4.tcp_max_tw_buckets": "4321",
                        "net.ipv4.ip_local_port_range": "41000 42999"])
        let control = try startControl(in: ns)
        try control.listen("127.0.0.1", 2001)
        try control.connect("127.0.0.1", 2001, 3, "established")
        try control.listen("::1", 2002)
        try control.connect("::1", 2002, 1, "established")
        try control.udp("127.0.0.1", 2, connected: false)
        try control.udp("::1", 1, connected: true)
        let stats = try statsBinary()

        // The tool's own netlink socket is freed by the kernel an RCU grace period after it closes
        // (~20 ms); the reading after stats waits that out so it sees the namespace at rest.
        let (files, doc) = try measureSteady(
            observe: { try namespaceKernel(ns) },
            measure: { () throws -> [String: Any] in
                let doc = try runStats([stats, "stats", "--netns", ns])
                usleep(300_000)
                return doc
            }
        )
        let kernel = try object(doc, "kernel", "stats").mapValues { number($0) }

        // The files show the population made above (sockctl holds exactly these sockets).
        XCTAssertEqual(files["TCP_inuse"], 7, "a listener and 3 pairs on IPv4")
        XCTAssertEqual(files["TCP6_inuse"], 3, "a listener and 1 pair on IPv6")
        XCTAssertEqual(files["UDP_inuse"], 2)
        XCTAssertEqual(files["UDP6_inuse"], 1)
        XCTAssertEqual(files["sockets_used"], 13, "every socket of the namespace")
        XCTAssertEqual(files["Tcp_PassiveOpens"], 4)
        XCTAssertEqual(files["Tcp_ActiveOpens"], 4)
        XCTAssertEqual(files["Tcp_CurrEstab"], 8)
        XCTAssertEqual(files["somaxconn"], 1234)
        XCTAssertEqual(files["tcp_max_tw_buckets"], 4321)
        XCTAssertEqual(files["ip_local_port_range_low"], 41000)
        XCTAssertEqual(files["ip_local_port_range_high"], 42999)

        for name in ["TCP_inuse", "TCP6_inuse", "UDP_inuse", "UDP6_inuse", "TCP_tw", "sockets_used",
                     "Tcp_PassiveOpens", "Tcp_ActiveOpens", "Tcp_CurrEstab", "TcpExt_ListenOverflows", "Udp_NoPorts",
                     "tcp_max_tw_buckets", "somaxconn", "ip_local_port_range_low", "ip_local_port_range_high"] {
            XCTAssertNotNil(kernel[name] ?? nil, "kernel.\(name) missing")
        }
        // Every per-namespace value stats reports equals the namespace's files, before and after.
        for (name, value) in kernel.sorted(by: { $0.key < $1.key }) {
            if Self.kernelWideSockstat.contains(name) || name.hasPrefix("tcp_max_orphans") || name.hasPrefix("tcp_mem_") {
                continue
            }
            guard let expected = files[name] else {
                XCTFail("kernel.\(name) = \(String(describing: value)) is in no file of the namespace")
                continue
            }
            XCTAssertEqual(value.map(Int64.init), expected, "kernel.\(name) vs the namespace's file")
        }

        // Kernel-wide limits: the host's files (a namespace has no tcp_mem, tcp_max_orphans), read
        // by this test process from its own (the host's) namespace.
        var host: [String: Int64] = [:]
        for file in Self.hostLimits {
            let text = try String(contentsOfFile: file.path, encoding: .utf8)
            host.merge(try Self.limitValues(file.name, text)) { $1 }
        }
        XCTAssertEqual(Set(host.keys), ["tcp_max_orphans", "tcp_mem_min", "tcp_mem_pressure", "tcp_mem_max"])
        for (name, value) in host {
            XCTAssertEqual(kernel[name]?.map(Int64.init), value, "kernel.\(name) vs the host's /proc/sys")
        }
        // Kernel-wide sockstat fields are present; their values move with the whole host.
        for name in Self.kernelWideSockstat.subtracting(["UDP_mem"]) {
            XCTAssertNotNil(kernel[name] ?? nil, "kernel.\(name) missing")
        }
    }

    // MARK: - Helpers

    /// snmp, netstat, sockstat, sockstat6 and the per-namespace limits, read by one process
    /// inside the namespace, with stats's names.
    private func namespaceKernel(_ ns: String) throws -> [String: Int64] {
        let files = ["/proc/net/snmp", "/proc/net/netstat", "/proc/net/sockstat", "/proc/net/sockstat6"]
            + Self.namespaceLimits.map(\.path)
        // One process reads them all, one after another; a missing file (conntrack) is skipped.
        let script = #"for f in "$@"; do [ -e "$f" ] || continue; echo "==> $f"; cat "$f" || exit 1; done"#
        let r = try Tool.run(["ip", "netns", "exec", ns, "sh", "-c", script, "sh"] + files)
        guard r.status == 0 else { throw Failure("reading the kernel files in \(ns): \(r.stderr)") }
        var sections: [String: String] = [:]
        var current: String?
        for line in r.stdout.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("==> ") {
                current = String(line.dropFirst(4))
                sections[current!] = ""
            } else if let current {
                sections[current]! += line + "\n"
            }
        }
        var out: [String: Int64] = [:]
        for path in ["/proc/net/snmp", "/proc/net/netstat"] {
            out.merge(try KernelFiles.snmp(try XCTUnwrap(sections[path], path))) { $1 }
        }
        for path in ["/proc/net/sockstat", "/proc/net/sockstat6"] {
            out.merge(try KernelFiles.sockstat(try XCTUnwrap(sections[path], path))) { $1 }
        }
        for file in Self.namespaceLimits {
            guard let text = sections[file.path] else { continue }
            out.merge(try Self.limitValues(file.name, text)) { $1 }
        }
        return out
    }

    /// A /proc/sys file's numbers under stats's names: one number as is, two as _low/_high, three as _min/_pressure/_max.
    static func limitValues(_ name: String, _ text: String) throws -> [String: Int64] {
        let numbers = try KernelFiles.numbers(text)
        let suffixes: [String] = switch numbers.count {
        case 1: [""]
        case 2: ["_low", "_high"]
        case 3: ["_min", "_pressure", "_max"]
        default: throw Failure("\(name): \(numbers.count) numbers")
        }
        return Dictionary(uniqueKeysWithValues: zip(suffixes.map { name + $0 }, numbers))
    }
}
