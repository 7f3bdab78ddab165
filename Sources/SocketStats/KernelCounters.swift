import ByteCoding
import Glibc
import Posix

/// Named numbers the kernel keeps about its network stack, in the order they were read.
/// Names follow node_exporter's: `TcpExt_ListenOverflows`, `Udp_NoPorts`, `TCP_orphan`.
public struct KernelCounters: Equatable, Sendable {
    public var values: [(name: String, value: Int64)] = []

    public init(_ values: [(name: String, value: Int64)] = []) { self.values = values }

    public subscript(name: String) -> Int64? { values.first { $0.name == name }?.value }

    /// These values, then those of `other` whose names are not here yet.
    public func merging(_ other: KernelCounters) -> KernelCounters {
        var merged = self
        for value in other.values where self[value.name] == nil { merged.values.append(value) }
        return merged
    }

    public static func == (a: KernelCounters, b: KernelCounters) -> Bool {
        a.values.elementsEqual(b.values) { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Why a kernel table could not be read.
public struct KernelTableError: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// /proc/net/snmp and /proc/net/netstat: pairs of lines, a header of names then a line of
/// values, both led by the same "Proto:" label. Per network namespace.
public enum SNMPCounters {
    /// The counters that tell a socket story (accept-queue overflows, SYN floods, resets,
    /// retransmits, UDP drops), by the label of their lines; the files hold about 150 more.
    public static let watched: [(label: String, names: Set<String>)] = [
        ("TcpExt", ["ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
                    "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "TCPTimeouts",
                    "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnMemory", "TCPAbortOnTimeout",
                    "TCPAbortOnLinger", "TCPAbortFailed", "TW"]),
        ("Tcp", ["ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab",
                 "OutRsts", "RetransSegs", "InErrs", "InSegs", "OutSegs"]),
        ("Udp", ["InDatagrams", "OutDatagrams", "NoPorts", "InErrors", "RcvbufErrors", "SndbufErrors"]),
    ]

    /// Parses one file's text, keeping the watched counters as `Label_Name`. Works on the UTF-8
    /// bytes (splitting ~6 KiB of text by Characters cost as much as counting 100k sockets),
    /// and only the names of a watched line become Strings: making each of the ~300 names a
    /// key to look up cost a third of the parse.
    public static func parse(_ text: String) throws(KernelTableError) -> KernelCounters {
        var counters = KernelCounters()
        let lines = splitBytes(Array(text.utf8)[...], at: UInt8(ascii: "\n"))
        guard lines.count % 2 == 0 else {
            throw KernelTableError(path: "", reason: "\(lines.count) lines: expected header and value lines in pairs")
        }
        for pair in stride(from: 0, to: lines.count, by: 2) {
            let names = splitBytes(lines[pair], at: UInt8(ascii: " "))
            let values = splitBytes(lines[pair + 1], at: UInt8(ascii: " "))
            guard let label = names.first, label.last == UInt8(ascii: ":"), let valueLabel = values.first,
                  label.elementsEqual(valueLabel), names.count == values.count else {
                throw KernelTableError(path: "", reason: "line \(pair + 1): header and values do not match")
            }
            let prefix = String(decoding: label.dropLast(), as: UTF8.self)
            guard let kept = watched.first(where: { $0.label == prefix })?.names else { continue }
            for (name, value) in zip(names.dropFirst(), values.dropFirst()) {
                let field = String(decoding: name, as: UTF8.self)
                guard kept.contains(field) else { continue }
                guard let number = Int64(String(decoding: value, as: UTF8.self)) else {
                    throw KernelTableError(path: "", reason: "line \(pair + 2): \(excerpt(name)) is \"\(excerpt(value))\", not a number")
                }
                counters.values.append((prefix + "_" + field, number))
            }
        }
        return counters
    }
}

/// /proc/net/sockstat and sockstat6: "TCP: inuse 5 orphan 0 tw 1 alloc 7 mem 2" lines.
/// `inuse` is per network namespace; `orphan`, `alloc` and `mem` (pages) are kernel-wide.
public enum Sockstat {
    /// Works on the UTF-8 bytes, as `SNMPCounters.parse` does.
    public static func parse(_ text: String) throws(KernelTableError) -> KernelCounters {
        var counters = KernelCounters()
        for (index, line) in splitBytes(Array(text.utf8)[...], at: UInt8(ascii: "\n")).enumerated() {
            let words = splitBytes(line, at: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard let label = words.first, label.hasSuffix(":"), words.count % 2 == 1 else {
                throw KernelTableError(path: "", reason: "line \(index + 1): expected \"LABEL: name value ...\"")
            }
            for pair in stride(from: 1, to: words.count, by: 2) {
                guard let number = Int64(words[pair + 1]) else {
                    throw KernelTableError(path: "", reason: "line \(index + 1): \(excerpt(words[pair].utf8)) is \"\(excerpt(words[pair + 1].utf8))\", not a number")
                }
                counters.values.append((String(label.dropLast()) + "_" + words[pair], number))
            }
        }
        return counters
    }
}

/// The limits that socket counts run into, from /proc/sys.
public enum SocketLimits {
    /// Per network namespace. Paths are relative to the proc root.
    public static let perNamespace: [(name: String, path: String)] = [
        ("tcp_max_tw_buckets", "sys/net/ipv4/tcp_max_tw_buckets"),
        ("somaxconn", "sys/net/core/somaxconn"),
        ("ip_local_port_range", "sys/net/ipv4/ip_local_port_range"),
        ("nf_conntrack_count", "sys/net/netfilter/nf_conntrack_count"),
        ("nf_conntrack_max", "sys/net/netfilter/nf_conntrack_max"),
    ]
    /// Kernel-wide: only the host's (initial) namespace shows them.
    public static let kernelWide: [(name: String, path: String)] = [
        ("tcp_max_orphans", "sys/net/ipv4/tcp_max_orphans"),
        ("tcp_mem", "sys/net/ipv4/tcp_mem"),
        ("nf_conntrack_max", "sys/net/netfilter/nf_conntrack_max"),
    ]

    /// Reads `files`; a file that does not exist (module not loaded, not the host namespace)
    /// is left out. Several numbers in one file become name_min/_pressure/_max (tcp_mem) or
    /// name_low/_high (ip_local_port_range).
    public static func read(_ files: [(name: String, path: String)], procRoot: String = "/proc") throws(CollectorError) -> KernelCounters {
        var counters = KernelCounters()
        for file in files {
            let path = procRoot + "/" + file.path
            guard let text = try readSmallFile(path, missingIsNil: true).get() else { continue }
            let numbers = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map { Int64($0) }
            guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil }) else {
                throw .kernelTable(KernelTableError(path: path, reason: "expected numbers, read \"\(excerpt(text.utf8))\""))
            }
            let suffixes: [String] = switch numbers.count {
            case 1: [""]
            case 2: ["_low", "_high"]
            case 3: ["_min", "_pressure", "_max"]
            default: numbers.indices.map { "_\($0)" }
            }
            for (suffix, number) in zip(suffixes, numbers) { counters.values.append((file.name + suffix, number!)) }
        }
        return counters
    }

    /// The kernel's ip_local_port_range, or Linux's default when it cannot be read.
    public static func ephemeralRange(from counters: KernelCounters) -> ClosedRange<UInt16> {
        guard let low = counters["ip_local_port_range_low"], let high = counters["ip_local_port_range_high"],
              let lowPort = UInt16(exactly: low), let highPort = UInt16(exactly: high), lowPort <= highPort
        else { return 32768...60999 }
        return lowPort...highPort
    }
}

/// The kernel's counter tables of the calling thread's network namespace.
public enum KernelTables {
    /// /proc/net/snmp, netstat, sockstat and sockstat6 (absent when IPv6 is off) in `netDirectory`.
    public static func read(netDirectory: String) throws(CollectorError) -> KernelCounters {
        var counters = KernelCounters()
        let tables: [(file: String, optional: Bool, parse: (String) throws(KernelTableError) -> KernelCounters)] = [
            ("snmp", false, { text throws(KernelTableError) in try SNMPCounters.parse(text) }),
            ("netstat", false, { text throws(KernelTableError) in try SNMPCounters.parse(text) }),
            ("sockstat", false, Sockstat.parse),
            ("sockstat6", true, Sockstat.parse),
        ]
        for table in tables {
            let path = netDirectory + "/" + table.file
            guard let text = try readSmallFile(path, missingIsNil: table.optional).get() else { continue }
            do {
                counters.values += try table.parse(text).values
            } catch {
                throw .kernelTable(KernelTableError(path: path, reason: error.reason))
            }
        }
        return counters
    }
}

/// Reads a /proc or /proc/sys file whole (they are small and generated at open); nil when it
/// does not exist and `missingIsNil`.
func readSmallFile(_ path: String, missingIsNil: Bool) -> Result<String?, CollectorError> {
    // Regular files only, 1 MiB at most (/proc/net/netstat is about 4 KiB): a FIFO or device
    // under --proc-root must neither block nor flood.
    do {
        return .success(String(decoding: try readRegularFile(path, limit: 1 << 20), as: UTF8.self))
    } catch {
        if missingIsNil && error.errnoCode == ENOENT { return .success(nil) }
        return .failure(.kernelTable(KernelTableError(path: path, reason: error.errnoCode.map(describeErrno) ?? "\(error)")))
    }
}
