import SocketStats

/// The `stats` output. The JSON is the contract that the Zabbix templates' JSONPath
/// preprocessing reads (written down in the README, `zabbix-sockets stats` > JSON): every key
/// of a section always present, in a fixed order.
public enum StatsDocument {
    /// The templates' master item: the agent's UserParameter key and the trapper item's key.
    public static let itemKey = "sockets.stats"

    public static func json(_ snapshot: Snapshot) -> String {
        var out = JSONWriter()
        out.object { out in members(of: snapshot, to: &out) }
        return out.text
    }

    /// The top level's members; each network namespace's object has them too, after its inode.
    private static func members(of snapshot: Snapshot, to out: inout JSONWriter) {
        let counts = snapshot.counts
        out.member("source", snapshot.source.rawValue)
        for (name, tcp) in [("tcp", counts.tcp), ("tcp4", counts.tcp4), ("tcp6", counts.tcp6)] {
            out.object(name) { out in stateMembers(tcp, to: &out) }
        }
        for (name, udp) in [("udp", counts.udp), ("udp4", counts.udp4), ("udp6", counts.udp6)] {
            out.object(name) { out in udpMembers(udp, to: &out) }
        }
        if let ports = snapshot.ports {
            // Both the discovery and the listener's object show its addresses.
            let listeners = zip(ports.listeners, ports.listeners.map(addresses))
            out.array("listen_discovery") { out in
                for (listener, addresses) in listeners {
                    out.object { out in
                        out.member("{#PORT}", String(listener.port))
                        out.member("{#ADDRESSES}", addresses)
                    }
                }
            }
            out.object("listen") { out in
                for (listener, addresses) in listeners {
                    out.object(String(listener.port)) { out in
                        out.member("addresses", addresses)
                        out.member("listeners", listener.sockets)
                        out.member("accept_queue", listener.acceptQueue)
                        out.member("backlog", listener.backlog)
                        out.member("accept_queue_pct", percent(listener.acceptQueue, of: listener.backlog))
                        stateMembers(listener.inbound, to: &out)
                    }
                }
            }
            out.array("remote_discovery") { out in
                for port in ports.remotePorts {
                    out.object { out in out.member("{#PORT}", String(port)) }
                }
            }
            out.object("remote") { out in
                for (port, states) in zip(ports.remotePorts, ports.outbound) {
                    out.object(String(port)) { out in stateMembers(states, to: &out) }
                }
            }
            out.object("ephemeral") { out in
                out.member("range_size", UInt64(ports.ephemeralRangeSize))
                if let busiest = ports.busiestEphemeral {
                    out.member("busiest_sockets", busiest.sockets)
                    out.member("busiest_remote", endpoint(busiest))
                    out.member("pressure_pct", percent(busiest.sockets, of: UInt64(ports.ephemeralRangeSize)))
                } else {
                    out.member("busiest_sockets", UInt64(0))
                    out.member("busiest_remote", "")
                    out.member("pressure_pct", UInt64(0))
                }
            }
        }
        if let cgroups = snapshot.cgroups {
            out.array("cgroup_discovery") { out in
                for entry in cgroups.entries {
                    out.object { out in
                        out.member("{#CGROUP}", entry.path)
                        out.member("{#NAME}", entry.name)
                        out.member("{#KIND}", entry.kind.rawValue)
                    }
                }
            }
            out.object("cgroups") { out in
                for entry in cgroups.entries {
                    out.object(entry.path) { out in
                        out.member("name", entry.name)
                        out.member("kind", entry.kind.rawValue)
                        countsMembers(entry.counts, to: &out)
                    }
                }
            }
            out.object("cgroup_status") { out in
                out.member("available", UInt64(cgroups.unavailableReason == nil ? 1 : 0))
                out.member("reason", cgroups.unavailableReason ?? "")
                out.member("mount", cgroups.mountPoint)
                out.object("unattributed") { out in countsMembers(cgroups.unattributed, to: &out) }
                out.object("unresolved") { out in countsMembers(cgroups.unresolved, to: &out) }
            }
        }
        if let kernel = snapshot.kernel {
            out.object("kernel") { out in
                for counter in kernel.values { out.member(counter.name, counter.value) }
            }
        }
        if let unix = snapshot.unix {
            out.object("unix") { out in
                out.member("source", unix.source.rawValue)
                for type in unixTypes {
                    out.object(type.name) { out in
                        for state in unixStates { out.member(unixStateName(state), unix[type][state]) }
                        out.member("total", unix[type].total)
                    }
                }
            }
            out.array("unix_listen_discovery") { out in
                for listener in unix.listeners {
                    out.object { out in out.member("{#PATH}", listener.path) }
                }
            }
            out.object("unix_listen") { out in
                for listener in unix.listeners {
                    let figures = listener.figures
                    out.object(listener.path) { out in
                        out.member("listeners", figures.listeners)
                        out.member("accept_queue", figures.acceptQueue)
                        out.member("backlog", figures.backlog)
                        out.member("accept_queue_pct", percent(figures.acceptQueue, of: figures.backlog))
                        out.member("connections", figures.connections)
                    }
                }
            }
        }
        if let survey = snapshot.namespaces {
            let counted = survey.entries.compactMap { entry in entry.snapshot.map { (entry, $0) } }
            out.array("netns_discovery") { out in
                for (entry, _) in counted {
                    out.object { out in
                        out.member("{#NETNS}", entry.name)
                        out.member("{#INODE}", String(entry.inode))
                    }
                }
            }
            out.object("netns") { out in
                for (entry, snapshot) in counted {
                    out.object(entry.name) { out in
                        out.member("inode", entry.inode)
                        members(of: snapshot, to: &out)
                    }
                }
            }
            out.object("netns_status") { out in
                out.member("found", UInt64(survey.entries.count))
                out.member("counted", UInt64(counted.count))
                out.array("problems") { out in
                    for problem in survey.problems { out.value(problem) }
                }
            }
        }
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

    private static func udpMembers(_ udp: UDPCounts, to out: inout JSONWriter) {
        out.member("established", udp.established)
        out.member("unconn", udp.unconn)
        out.member("total", udp.total)
    }

    /// `"tcp":{...},"udp":{...}` of one cgroup or bucket.
    private static func countsMembers(_ counts: CgroupCounts, to out: inout JSONWriter) {
        out.object("tcp") { out in stateMembers(counts.tcp, to: &out) }
        out.object("udp") { out in udpMembers(counts.udp, to: &out) }
    }

    /// Every TCP state's count, then the total.
    private static func stateMembers(_ states: TCPStateCounts, to out: inout JSONWriter) {
        for state in TCPState.allCases { out.member(state.zabbixName, states[state]) }
        out.member("total", states.total)
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
