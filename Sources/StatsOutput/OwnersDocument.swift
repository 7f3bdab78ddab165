import SocketStats

/// The `owners` output: which processes hold the sockets asked for, per network namespace.
public enum OwnersDocument {
    public static func json(_ results: [(netns: String, owners: SocketOwners)], problems: [String]) -> String {
        var out = JSONWriter()
        out.object { out in
            out.object("netns") { out in
                for (netns, found) in results {
                    out.object(netns) { out in members(of: found, to: &out) }
                }
            }
            out.array("problems") { out in
                for problem in problems { out.value(problem) }
            }
        }
        return out.text
    }

    private static func members(of found: SocketOwners, to out: inout JSONWriter) {
        out.member("matched", Int64(found.matched))
        out.member("orphaned", Int64(found.orphaned))
        out.member("unowned", Int64(found.unowned))
        out.member("not_found", Int64(found.notFound))
        out.member("processes_scanned", Int64(found.processesScanned))
        out.member("full_scan", found.fullScan)
        out.array("owners") { out in
            for owner in found.owners {
                out.object { out in
                    out.member("pid", Int64(owner.pid))
                    out.member("command", owner.command)
                    out.member("cgroup", owner.cgroup)
                    out.member("sockets", Int64(owner.sockets))
                }
            }
        }
        out.array("problems") { out in
            for problem in found.problems { out.value(problem) }
        }
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
