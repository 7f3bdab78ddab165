import ByteCoding
import SocketStats

/// The `owners` output: which processes hold the sockets asked for, per network namespace.
public enum OwnersDocument {
    public static func json(_ results: [(netns: String, owners: SocketOwners)], problems: [String]) -> String {
        var out = "{\"netns\":{"
        out += results.map { jsonString($0.netns) + ":" + object($0.owners) }.joined(separator: ",")
        return out + "},\"problems\":[" + problems.map(jsonString).joined(separator: ",") + "]}"
    }

    static func object(_ found: SocketOwners) -> String {
        var out = "{\"matched\":\(found.matched),\"orphaned\":\(found.orphaned),\"unowned\":\(found.unowned)"
        out += ",\"not_found\":\(found.notFound),\"processes_scanned\":\(found.processesScanned),\"full_scan\":\(found.fullScan)"
        out += ",\"owners\":[" + found.owners.map { owner in
            "{\"pid\":\(owner.pid),\"command\":\(jsonString(owner.command)),\"cgroup\":\(jsonString(owner.cgroup)),\"sockets\":\(owner.sockets)}"
        }.joined(separator: ",")
        return out + "],\"problems\":[" + found.problems.map(jsonString).joined(separator: ",") + "]}"
    }

    public static func text(_ results: [(netns: String, owners: SocketOwners)], problems: [String]) -> String {
        var out = ""
        for (netns, found) in results {
            out += "network namespace \(netns): \(found.matched) sockets\n"
            out += "  " + "sockets".leftAligned(9) + "pid".leftAligned(9) + "command".leftAligned(17) + "cgroup\n"
            for owner in found.owners {
                out += "  " + String(owner.sockets).leftAligned(9) + String(owner.pid).leftAligned(9) + owner.command.leftAligned(17) + owner.cgroup + "\n"
            }
            let held = found.matched - found.orphaned - found.unowned - found.notFound
            if found.owners.reduce(0, { $0 + $1.sockets }) > held {
                out += "  (a socket shared by several processes, e.g. across fork, counts for each)\n"
            }
            if found.orphaned > 0 { out += "  \(found.orphaned) orphaned (closed by their process, no owner)\n" }
            if found.unowned > 0 { out += "  \(found.unowned) TIME_WAIT or SYN_RECV (no process holds them)\n" }
            if found.notFound > 0 { out += "  \(found.notFound) held by no process we could read\n" }
            out += found.problems.map { "  note: \($0)\n" }.joined()
        }
        return out + problems.map { "note: \($0)\n" }.joined()
    }
}

extension String {
    fileprivate func leftAligned(_ width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
