import SocketStats

/// The `stats` output. The JSON is the contract that the Zabbix templates' JSONPath
/// preprocessing reads (docs/stats-contract.md): every key always present, fixed order.
enum StatsDocument {
    static func json(_ counts: SocketCounts, source: Source) -> String {
        var out = "{\"source\":\"\(source.rawValue)\""
        for (name, tcp) in [("tcp", counts.tcp), ("tcp4", counts.tcp4), ("tcp6", counts.tcp6)] {
            out += ",\"\(name)\":{"
            for state in TCPState.allCases {
                out += "\"\(state.zabbixName)\":\(tcp[state]),"
            }
            out += "\"total\":\(tcp.total)}"
        }
        for (name, udp) in [("udp", counts.udp), ("udp4", counts.udp4), ("udp6", counts.udp6)] {
            out += ",\"\(name)\":{\"established\":\(udp.established),\"unconn\":\(udp.unconn),\"total\":\(udp.total)}"
        }
        return out + "}"
    }

    static func text(_ counts: SocketCounts, source: Source) -> String {
        func row(_ label: String, _ values: [UInt64]) -> String {
            label.padding(12) + values.map { String($0).leftPadding(10) }.joined() + "\n"
        }
        var out = "source: \(source.rawValue)\n"
        out += "TCP".padding(12) + ["all", "IPv4", "IPv6"].map { $0.leftPadding(10) }.joined() + "\n"
        for state in TCPState.allCases {
            out += row(state.ssName, [counts.tcp[state], counts.tcp4[state], counts.tcp6[state]])
        }
        out += row("total", [counts.tcp.total, counts.tcp4.total, counts.tcp6.total])
        out += "UDP\n"
        out += row("ESTAB", [counts.udp.established, counts.udp4.established, counts.udp6.established])
        out += row("UNCONN", [counts.udp.unconn, counts.udp4.unconn, counts.udp6.unconn])
        out += row("total", [counts.udp.total, counts.udp4.total, counts.udp6.total])
        return out
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    fileprivate func leftPadding(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
