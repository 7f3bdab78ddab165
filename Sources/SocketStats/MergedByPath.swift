/// `entries` sorted by `path`, each run of equal paths merged into its first entry by `merge`.
/// Names that are not UTF-8 print with U+FFFD, so two cgroups or two UNIX socket paths can
/// print alike (and any local user can make such a name); merged, they never make the document
/// hold one key twice, which Zabbix's discovery would refuse.
func mergedByPath<Entry>(_ entries: [Entry], path: (Entry) -> String, merge: (inout Entry, Entry) -> Void) -> [Entry] {
    var merged: [Entry] = []
    for entry in entries.sorted(by: { path($0) < path($1) }) {
        if let last = merged.last, path(last) == path(entry) {
            merge(&merged[merged.count - 1], entry)
        } else {
            merged.append(entry)
        }
    }
    return merged
}
