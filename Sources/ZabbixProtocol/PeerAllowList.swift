/// The agent's `Server=` list: who may ask for values. Entries are IPv4 or IPv6 addresses,
/// networks in CIDR form (`192.168.1.0/24`, `2001:db8::/32`) or DNS names, which the caller
/// resolves at each connection as `zbx_tcp_check_allowed_peers` does.
public struct PeerAllowList: Equatable, Sendable, CustomStringConvertible {
    public enum Entry: Equatable, Sendable {
        /// An address or network, as 16 bytes (IPv4 as `::ffff:a.b.c.d`) and a prefix length.
        case network(address: [UInt8], prefixBits: Int)
        case name(String)
    }

    public let entries: [Entry]
    /// The list as configured, for messages ("allowed hosts: ...").
    public let text: String

    /// Validates `value` as `zbx_validate_peer_list` does (after `zbx_trim_str_list`).
    public init(parsing value: String, parameter: String = "Server") throws(PeerAllowListError) {
        var entries: [Entry] = []
        for piece in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let entry = Substring(piece)
            guard let parsed = Self.parseEntry(entry) else {
                throw PeerAllowListError(parameter: parameter, entry: String(entry))
            }
            entries.append(parsed)
        }
        self.entries = entries
        text = value
    }

    public var description: String { text }

    /// The DNS names of the list, which need resolving before `allows` can match them.
    public var names: [String] {
        entries.compactMap { if case .name(let name) = $0 { name } else { nil } }
    }

    /// Whether a peer at `address` (4 or 16 bytes) may connect. `resolved` holds the addresses
    /// the list's names resolved to just now. An IPv4 entry also matches the IPv4-mapped and
    /// IPv4-compatible IPv6 forms of its address, as `zbx_ip_cmp` does.
    public func allows(_ address: [UInt8], resolved: [[UInt8]] = []) -> Bool {
        guard let peer = Self.canonical(address) else { return false }
        for entry in entries {
            if case .network(let network, let bits) = entry, Self.prefix(of: peer, equals: network, bits: bits) {
                return true
            }
        }
        return resolved.contains { Self.canonical($0) == peer }
    }

    /// An entry: `address`, `address/bits` or a DNS name (`zbx_validate_hostname`).
    static func parseEntry(_ entry: Substring) -> Entry? {
        if let slash = entry.firstIndex(of: "/") {
            let bitsText = entry[entry.index(after: slash)...]
            guard let address = parseIPAddress(entry[..<slash]), !bitsText.isEmpty, bitsText.count <= 3,
                bitsText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                let bits = Int(bitsText), bits <= address.count * 8
            else { return nil }
            // IPv4 networks live in ::ffff:0:0/96.
            return .network(address: canonical(address)!, prefixBits: address.count == 4 ? 96 + bits : bits)
        }
        if let address = parseIPAddress(entry) {
            return .network(address: canonical(address)!, prefixBits: 128)
        }
        return isValidDNSName(entry) ? .name(String(entry)) : nil
    }

    /// 16 bytes: IPv4 and IPv4-compatible IPv6 (`::a.b.c.d`, not `::` or `::1`) become IPv4-mapped.
    static func canonical(_ address: [UInt8]) -> [UInt8]? {
        switch address.count {
        case 4:
            return [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + address
        case 16:
            let compatible = address[..<12].allSatisfy { $0 == 0 } && (address[12] != 0 || address[13] != 0 || address[14] != 0 || address[15] > 1)
            return compatible ? [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + address[12...] : address
        default:
            return nil
        }
    }

    static func prefix(of peer: [UInt8], equals network: [UInt8], bits: Int) -> Bool {
        var remaining = bits
        for index in 0..<16 where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if peer[index] & mask != network[index] & mask { return false }
            remaining -= 8
        }
        return true
    }
}

/// A refused `Server=` entry, in zabbix_agentd's words.
public struct PeerAllowListError: Error, Equatable, Sendable, CustomStringConvertible {
    public var parameter: String
    public var entry: String

    public var description: String { "invalid entry in \"\(parameter)\" configuration parameter: \"\(entry)\"" }
}

/// The bytes of an IPv4 (4) or IPv6 (16) address in text form, or nil.
public func parseIPAddress(_ text: Substring) -> [UInt8]? {
    if isIPv4(text) { return text.split(separator: ".").map { UInt8($0)! } }
    guard isIPv6(text) else { return nil }
    var head: [UInt8] = []
    var tail: [UInt8] = []
    let halves = text.split(separator: "::", omittingEmptySubsequences: false)
    for (halfIndex, half) in halves.enumerated() where !half.isEmpty {
        var bytes: [UInt8] = []
        for group in half.split(separator: ":") {
            if group.contains(".") {
                bytes += group.split(separator: ".").map { UInt8($0)! }
            } else {
                let value = UInt16(group, radix: 16)!
                bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
        }
        if halfIndex == 0 { head = bytes } else { tail = bytes }
    }
    return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
}
