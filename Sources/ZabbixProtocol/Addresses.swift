import ByteCoding
/// A host (DNS name, IPv4 or IPv6 text) and TCP port of a Zabbix server or proxy.
public struct ZabbixAddress: Hashable, Sendable, CustomStringConvertible {
    public static let defaultServerPort: UInt16 = 10051

    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16 = ZabbixAddress.defaultServerPort) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with brackets around IPv6 so the text parses back.
    public var description: String {
        isIPv6(Substring(host)) ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// Why a `ServerActive`-style list was refused, in Zabbix's words.
public enum AddressListError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidAddress(parameter: String, address: String)
    case duplicateAddress(parameter: String, address: String)

    public var description: String {
        switch self {
        case .invalidAddress(let parameter, let address):
            "error parsing the \"\(parameter)\" parameter: address \"\(address)\" is invalid"
        case .duplicateAddress(let parameter, let address):
            "error parsing the \"\(parameter)\" parameter: address \"\(address)\" specified more than once"
        }
    }
}

/// One comma-separated `ServerActive` entry: nodes of an HA cluster, tried in order.
public struct ServerCluster: Equatable, Sendable {
    public var nodes: [ZabbixAddress]

    public init(nodes: [ZabbixAddress]) {
        self.nodes = nodes
    }

    /// What `zbx_tcp_connect_failover` does after a node failed: it goes to the end,
    /// so the node that answered last stays first next time.
    public mutating func demote(_ node: ZabbixAddress) {
        guard let index = nodes.firstIndex(of: node) else { return }
        nodes.append(nodes.remove(at: index))
    }

    /// Parses a `ServerActive` value (already trimmed around commas): entries split at `,`,
    /// nodes at `;`. Mirrors `zbx_set_data_destination_hosts`: an address may appear only once
    /// across all entries.
    public static func parseList(
        _ value: String, parameter: String = "ServerActive", defaultPort: UInt16 = ZabbixAddress.defaultServerPort
    ) throws(AddressListError) -> [ServerCluster] {
        var clusters: [ServerCluster] = []
        var seen: Set<ZabbixAddress> = []
        // Split on bytes like Zabbix: a Character split would miss a comma followed by a combining mark.
        for entry in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            var cluster = ServerCluster(nodes: [])
            for elementBytes in entry.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false) {
                let element = Substring(elementBytes)
                guard let address = parseElement(element, defaultPort: defaultPort),
                    isIPv4(Substring(address.host)) || isIPv6(Substring(address.host))
                        || isValidDNSName(Substring(address.host))
                else { throw .invalidAddress(parameter: parameter, address: String(element)) }
                guard seen.insert(address).inserted else {
                    throw .duplicateAddress(parameter: parameter, address: String(element))
                }
                cluster.nodes.append(address)
            }
            clusters.append(cluster)
        }
        return clusters
    }

    /// `host`, `host:port`, `[IPv6]`, `[IPv6]:port` or a bare IPv6 address (`zbx_parse_serveractive_element`).
    static func parseElement(_ text: Substring, defaultPort: UInt16) -> ZabbixAddress? {
        if text.first == "[" {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard isIPv6(host) else { return nil }
            if rest.isEmpty { return ZabbixAddress(host: String(host), port: defaultPort) }
            guard rest.first == ":", let port = parsePort(rest.dropFirst()) else { return nil }
            return ZabbixAddress(host: String(host), port: port)
        }
        if isIPv6(text) { return ZabbixAddress(host: String(text), port: defaultPort) }
        guard let colon = text.firstIndex(of: ":") else { return ZabbixAddress(host: String(text), port: defaultPort) }
        guard let port = parsePort(text[text.index(after: colon)...]) else { return nil }
        return ZabbixAddress(host: String(text[..<colon]), port: port)
    }
}

/// A decimal port like Zabbix's `is_ushort`: digits only, at most 65535.
func parsePort(_ text: Substring) -> UInt16? {
    guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
        return nil
    }
    return UInt16(text)
}

/// Dotted quad, four decimal octets of 1-3 digits, each at most 255.
func isIPv4(_ text: Substring) -> Bool {
    let octets = text.split(separator: ".", omittingEmptySubsequences: false)
    return octets.count == 4
        && octets.allSatisfy { octet in
            (1...3).contains(octet.count)
                && octet.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
                && Int(octet)! <= 255
        }
}

/// RFC 4291 text form: up to 8 groups of 1-4 hex digits, at most one `::`, optionally ending
/// in a dotted quad that counts as two groups. No zone index (Zabbix's `is_ip6` has none either).
func isIPv6(_ text: Substring) -> Bool {
    guard text.contains(":") else { return false }
    let halves = text.split(separator: "::", omittingEmptySubsequences: false)
    guard halves.count <= 2 else { return false }
    var groupCount = 0
    for (halfIndex, half) in halves.enumerated() {
        if half.isEmpty { continue }
        let groups = half.split(separator: ":", omittingEmptySubsequences: false)
        for (groupIndex, group) in groups.enumerated() {
            let isLastGroup = halfIndex == halves.count - 1 && groupIndex == groups.count - 1
            if isLastGroup && group.contains(".") {
                guard isIPv4(group) else { return false }
                groupCount += 2
            } else {
                guard (1...4).contains(group.count), group.utf8.allSatisfy({ hexDigitValue($0) != nil }) else {
                    return false
                }
                groupCount += 1
            }
        }
    }
    return halves.count == 2 ? groupCount <= 7 : groupCount == 8
}

/// `zbx_validate_hostname`: starts alphanumeric, then alphanumerics, `-`, `_`, `.`, no empty
/// dot-separated component, shorter than 255 characters.
func isValidDNSName(_ text: Substring) -> Bool {
    let bytes = Array(text.utf8)
    guard let first = bytes.first, isASCIIAlphanumeric(first), bytes.count < 255 else { return false }
    var previousWasDot = false
    for byte in bytes.dropFirst() {
        if byte == UInt8(ascii: ".") {
            if previousWasDot { return false }
            previousWasDot = true
        } else if isASCIIAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") {
            previousWasDot = false
        } else {
            return false
        }
    }
    return true
}

func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
        || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
}
