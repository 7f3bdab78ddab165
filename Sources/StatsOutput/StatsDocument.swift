import ByteCoding
import SocketStats

/// The `stats` output. The JSON is the contract that the Zabbix templates' JSONPath
/// preprocessing reads (written down in the README, `zabbix-sockets stats` > JSON): every key
/// of a section always present, in a fixed order.
public enum StatsDocument {
    /// The templates' master item: the agent's UserParameter key and the trapper item's key.
    public static let itemKey = "sockets.stats"

    public static func json(_ snapshot: Snapshot) -> String {
        let counts = snapshot.counts
        var out = "{\"source\":\"\(snapshot.source.rawValue)\""
        for (name, tcp) in [("tcp", counts.tcp), ("tcp4", counts.tcp4), ("tcp6", counts.tcp6)] {
            out += ",\"\(name)\":" + stateObject(tcp)
        }
        for (name, udp) in [("udp", counts.udp), ("udp4", counts.udp4), ("udp6", counts.udp6)] {
            out += ",\"\(name)\":" + udpObject(udp)
        }
        if let ports = snapshot.ports {
            let listeners = ports.listeners
            out += ",\"listen_discovery\":["
            out += listeners.map { "{\"{#PORT}\":\"\($0.port)\",\"{#ADDRESSES}\":\(jsonString(addresses($0)))}" }.joined(separator: ",")
            out += "],\"listen\":{"
            out += listeners.map { listener in
                "\"\(listener.port)\":{\"addresses\":\(jsonString(addresses(listener))),\"listeners\":\(listener.sockets)"
                    + ",\"accept_queue\":\(listener.acceptQueue),\"backlog\":\(listener.backlog)"
                    + ",\"accept_queue_pct\":\(percent(listener.acceptQueue, of: listener.backlog)),"
                    + stateObject(listener.inbound).dropFirst()
            }.joined(separator: ",")
            out += "},\"remote_discovery\":["
            out += ports.remotePorts.map { "{\"{#PORT}\":\"\($0)\"}" }.joined(separator: ",")
            out += "],\"remote\":{"
            out += zip(ports.remotePorts, ports.outbound).map { "\"\($0)\":" + stateObject($1) }.joined(separator: ",")
            out += "},\"ephemeral\":{"
            out += "\"range_size\":\(ports.ephemeralRangeSize)"
            if let busiest = ports.busiestEphemeral {
                out += ",\"busiest_sockets\":\(busiest.sockets),\"busiest_remote\":\(jsonString(endpoint(busiest)))"
                out += ",\"pressure_pct\":\(percent(busiest.sockets, of: UInt64(ports.ephemeralRangeSize)))"
            } else {
                out += ",\"busiest_sockets\":0,\"busiest_remote\":\"\",\"pressure_pct\":0"
            }
            out += "}"
        }
        if let cgroups = snapshot.cgroups {
            out += ",\"cgroup_discovery\":["
            out += cgroups.entries.map {
                "{\"{#CGROUP}\":\(jsonString($0.path)),\"{#NAME}\":\(jsonString($0.name)),\"{#KIND}\":\"\($0.kind.rawValue)\"}"
            }.joined(separator: ",")
            out += "],\"cgroups\":{"
            out += cgroups.entries.map {
                jsonString($0.path) + ":{\"name\":\(jsonString($0.name)),\"kind\":\"\($0.kind.rawValue)\"," + countsMembers($0.counts) + "}"
            }.joined(separator: ",")
            out += "},\"cgroup_status\":{\"available\":\(cgroups.unavailableReason == nil ? 1 : 0)"
            out += ",\"reason\":\(jsonString(cgroups.unavailableReason ?? "")),\"mount\":\(jsonString(cgroups.mountPoint))"
            out += ",\"unattributed\":{" + countsMembers(cgroups.unattributed) + "}"
            out += ",\"unresolved\":{" + countsMembers(cgroups.unresolved) + "}}"
        }
        if let kernel = snapshot.kernel {
            out += ",\"kernel\":{" + kernel.values.map { "\"\($0.name)\":\($0.value)" }.joined(separator: ",") + "}"
        }
        if let unix = snapshot.unix {
            out += ",\"unix\":{\"source\":\"\(unix.source.rawValue)\""
            for type in unixTypes {
                out += ",\"\(type.name)\":{" + unixStates.map { "\"\(unixStateName($0))\":\(unix[type][$0])," }.joined()
                    + "\"total\":\(unix[type].total)}"
            }
            out += "},\"unix_listen_discovery\":["
            out += unix.listeners.map { "{\"{#PATH}\":\(jsonString($0.path))}" }.joined(separator: ",")
            out += "],\"unix_listen\":{"
            out += unix.listeners.map { listener in
                let figures = listener.figures
                return "\(jsonString(listener.path)):{\"listeners\":\(figures.listeners),\"accept_queue\":\(figures.acceptQueue)"
                    + ",\"backlog\":\(figures.backlog),\"accept_queue_pct\":\(percent(figures.acceptQueue, of: figures.backlog))"
                    + ",\"connections\":\(figures.connections)}"
            }.joined(separator: ",")
            out += "}"
        }
        if let survey = snapshot.namespaces {
            let counted = survey.entries.compactMap { entry in entry.snapshot.map { (entry, $0) } }
            out += ",\"netns_discovery\":["
            out += counted.map { "{\"{#NETNS}\":\(jsonString($0.0.name)),\"{#INODE}\":\"\($0.0.inode)\"}" }.joined(separator: ",")
            // Each namespace's document has the top level's keys, after its inode.
            out += "],\"netns\":{"
            out += counted.map { jsonString($0.0.name) + ":{\"inode\":\($0.0.inode)," + json($0.1).dropFirst() }.joined(separator: ",")
            out += "},\"netns_status\":{\"found\":\(survey.entries.count),\"counted\":\(counted.count),\"problems\":["
            out += survey.problems.map(jsonString).joined(separator: ",") + "]}"
        }
        return out + "}"
    }

    public static func text(_ snapshot: Snapshot) -> String {
        let counts = snapshot.counts
        var out = "source: \(snapshot.source.rawValue)\n"
        out += row("TCP", ["all", "IPv4", "IPv6"])
        for state in TCPState.allCases {
            out += row(state.ssName, [counts.tcp[state], counts.tcp4[state], counts.tcp6[state]].map(String.init))
        }
        out += row("total", [counts.tcp.total, counts.tcp4.total, counts.tcp6.total].map(String.init))
        out += "UDP\n"
        out += row("ESTAB", [counts.udp.established, counts.udp4.established, counts.udp6.established].map(String.init))
        out += row("UNCONN", [counts.udp.unconn, counts.udp4.unconn, counts.udp6.unconn].map(String.init))
        out += row("total", [counts.udp.total, counts.udp4.total, counts.udp6.total].map(String.init))
        if let ports = snapshot.ports {
            out += "\nLISTEN port".padding(12) + ["queue", "backlog", "ESTAB", "SYN-RECV", "CLOSE-WAIT", "TIME-WAIT"].map { $0.leftPadding(11) }.joined()
                + "  addresses\n"
            for listener in ports.listeners {
                let values = [listener.acceptQueue, listener.backlog, listener.inbound[.established],
                              listener.inbound[.synRecv], listener.inbound[.closeWait], listener.inbound[.timeWait]]
                out += String(listener.port).padding(12) + values.map { String($0).leftPadding(11) }.joined() + "  \(addresses(listener))\n"
            }
            out += "\nremote port".padding(12) + ["ESTAB", "SYN-SENT", "CLOSE-WAIT", "TIME-WAIT", "total"].map { $0.leftPadding(11) }.joined() + "\n"
            for (port, states) in zip(ports.remotePorts, ports.outbound) {
                let values = [states[.established], states[.synSent], states[.closeWait], states[.timeWait], states.total]
                out += String(port).padding(12) + values.map { String($0).leftPadding(11) }.joined() + "\n"
            }
            if let busiest = ports.busiestEphemeral {
                out += "\nephemeral ports: \(busiest.sockets) of \(ports.ephemeralRangeSize) towards \(endpoint(busiest))\n"
            }
        }
        if let cgroups = snapshot.cgroups {
            if let reason = cgroups.unavailableReason {
                out += "\ncgroups: unavailable: \(reason)\n"
            } else {
                out += "\n" + ["ESTAB", "LISTEN", "CLOSE-WAIT", "other", "UDP"].map { $0.leftPadding(11) }.joined() + "  cgroup\n"
                let rows = cgroups.entries.map { ($0.name + "  (" + $0.path + ")", $0.counts) }
                    + [("unattributed (TIME-WAIT, SYN-RECV)", cgroups.unattributed), ("unresolved", cgroups.unresolved)]
                for (label, counts) in rows {
                    let tcp = counts.tcp
                    let other = tcp.total - tcp[.established] - tcp[.listen] - tcp[.closeWait]
                    out += [tcp[.established], tcp[.listen], tcp[.closeWait], other, counts.udp.total]
                        .map { String($0).leftPadding(11) }.joined() + "  \(label)\n"
                }
            }
        }
        if let kernel = snapshot.kernel {
            out += "\n" + kernel.values.map { "\($0.name) \($0.value)" }.joined(separator: "\n") + "\n"
        }
        if let unix = snapshot.unix {
            out += "\n" + row("UNIX (\(unix.source.rawValue))", unixTypes.map(\.name))
            for state in unixStates {
                out += row(state.ssName, unixTypes.map { String(unix[$0][state]) })
            }
            out += row("total", unixTypes.map { String(unix[$0].total) })
            out += "\n" + ["listeners", "queue", "backlog", "conns"].map { $0.leftPadding(11) }.joined() + "  UNIX listening path\n"
            for listener in unix.listeners {
                let figures = listener.figures
                out += [figures.listeners, figures.acceptQueue, figures.backlog, figures.connections].map { String($0).leftPadding(11) }.joined()
                    + "  \(listener.path)\n"
            }
        }
        if let survey = snapshot.namespaces {
            out += "\n" + ["inode", "ESTAB", "LISTEN", "CLOSE-WAIT", "TIME-WAIT", "TCP", "UDP"].map { $0.leftPadding(11) }.joined() + "  network namespace\n"
            for entry in survey.entries {
                guard let counts = entry.snapshot?.counts else {
                    out += String(entry.inode).leftPadding(11) + "not counted".leftPadding(66) + "  \(entry.name)\n"
                    continue
                }
                let tcp = counts.tcp
                out += ([entry.inode] + [tcp[.established], tcp[.listen], tcp[.closeWait], tcp[.timeWait], tcp.total, counts.udp.total])
                    .map { String($0).leftPadding(11) }.joined() + "  \(entry.name)\n"
            }
            out += survey.problems.map { "note: \($0)\n" }.joined()
        }
        return out
    }

    /// The order of the `unix` section's types and of the states of each (the states af_unix uses).
    private static let unixTypes: [UnixSocketType] = [.stream, .seqpacket, .dgram]
    private static let unixStates: [TCPState] = [.established, .synSent, .listen, .close]

    /// TCP_CLOSE is what `ss` shows as UNCONN for a UNIX socket.
    private static func unixStateName(_ state: TCPState) -> String {
        state == .close ? "unconn" : state.zabbixName
    }

    private static func udpObject(_ udp: UDPCounts) -> String {
        "{\"established\":\(udp.established),\"unconn\":\(udp.unconn),\"total\":\(udp.total)}"
    }

    /// `"tcp":{...},"udp":{...}` of one cgroup or bucket.
    private static func countsMembers(_ counts: CgroupCounts) -> String {
        "\"tcp\":" + stateObject(counts.tcp) + ",\"udp\":" + udpObject(counts.udp)
    }

    private static func stateObject(_ states: TCPStateCounts) -> String {
        "{" + TCPState.allCases.map { "\"\($0.zabbixName)\":\(states[$0])," }.joined() + "\"total\":\(states.total)}"
    }

    private static func addresses(_ listener: PortBreakdown.Listener) -> String {
        listener.addresses.map { $0.address.formatted(isIPv6: $0.isIPv6) }.joined(separator: ",")
    }

    private static func endpoint(_ use: PortBreakdown.EphemeralUse) -> String {
        let address = use.remoteAddress.formatted(isIPv6: use.isIPv6)
        return use.isIPv6 ? "[\(address)]:\(use.remotePort)" : "\(address):\(use.remotePort)"
    }

    /// Whole percent, rounded down; 0 when the limit is unknown.
    private static func percent(_ part: UInt64, of whole: UInt64) -> UInt64 {
        whole == 0 ? 0 : part * 100 / whole
    }

    /// A table row: the label, then the values right-aligned.
    private static func row(_ label: String, _ values: [String]) -> String {
        label.padding(12) + values.map { $0.leftPadding(10) }.joined() + "\n"
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
