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

/// Chooses a source and fills one model, in the calling thread's network namespace
/// (`CollectionOptions.collect()` enters the namespace around the whole poll).
public enum SocketCollector {
    /// Fills `visitor` and says which source did.
    public static func collect<Visitor: SocketVisitor & ~Copyable>(
        into visitor: inout Visitor,
        from preference: SourcePreference = .auto,
        procDirectory: String = ProcNetCollector.liveDirectory
    ) throws(CollectorError) -> Source {
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
}
