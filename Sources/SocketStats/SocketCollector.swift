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
    /// Fills `visitor` and says which source did.
    public static func collect<Visitor: SocketVisitor>(
        into visitor: inout Visitor,
        from preference: SourcePreference = .auto,
        procDirectory: String = ProcNetCollector.liveDirectory,
        in namespace: NetworkNamespace? = nil
    ) throws(CollectorError) -> Source {
        func collectHere() throws(CollectorError) -> Source {
            switch preference {
            case .netlink:
                try NetlinkCollector.collect(into: &visitor)
                return .netlink
            case .proc:
                try ProcNetCollector.collect(into: &visitor, directory: procDirectory)
                return .proc
            case .auto:
                do {
                    try NetlinkCollector.collect(into: &visitor)
                    return .netlink
                } catch .netlinkRefused, .malformedNetlink {
                    try ProcNetCollector.collect(into: &visitor, directory: procDirectory)
                    return .proc
                }
            }
        }
        guard let namespace else { return try collectHere() }
        return try namespace.run(collectHere)
    }
}
