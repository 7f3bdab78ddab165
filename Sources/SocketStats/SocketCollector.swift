/// Where counts come from.
public enum Source: String, Sendable {
    case netlink
    case proc
}

/// Which source to use: netlink, or /proc when netlink is refused (`auto`), or one of them only.
public enum SourcePreference: String, CaseIterable, Sendable {
    case auto
    case netlink
    case proc
}

/// Chooses a source, enters a namespace if asked, and fills one model.
public enum SocketCollector {
    public static func collect<Visitor: SocketVisitor>(
        _: Visitor.Type = Visitor.self,
        from preference: SourcePreference = .auto,
        procDirectory: String = ProcNetCollector.liveDirectory,
        in namespace: NetworkNamespace? = nil
    ) throws(CollectorError) -> (result: Visitor, source: Source) {
        func collectHere() throws(CollectorError) -> (result: Visitor, source: Source) {
            switch preference {
            case .netlink:
                return (try NetlinkCollector.collect(), .netlink)
            case .proc:
                return (try ProcNetCollector.collect(directory: procDirectory), .proc)
            case .auto:
                do {
                    return (try NetlinkCollector.collect(), .netlink)
                } catch .netlinkRefused, .malformedNetlink {
                    return (try ProcNetCollector.collect(directory: procDirectory), .proc)
                }
            }
        }
        guard let namespace else { return try collectHere() }
        return try namespace.run(collectHere)
    }
}
