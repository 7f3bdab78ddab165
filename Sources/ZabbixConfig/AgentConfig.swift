import ZabbixProtocol
/// A parsed `zabbix_agentd.conf` (6.0 rules, `__parse_cfg_file` in Zabbix's cfg.c), includes resolved.
public struct AgentConfig: Equatable, Sendable {
    /// Where a setting came from.
    public struct Location: Equatable, Sendable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var description: String { "config file \"\(file)\", line \(line)" }
    }

    public struct Setting: Equatable, Sendable {
        public var name: String
        public var value: String
        public var location: Location
    }

    /// What to do with a parameter the agent does not know. `zabbix_agentd` rejects it;
    /// `zabbix_sender -c` reads the same file non-strictly, which is the default here.
    public enum UnknownParameters: Sendable {
        case keep
        case reject
    }

    /// Zabbix's `MAX_STRING_LEN`.
    public static let maximumLineLength = 2048
    /// Zabbix's `ZBX_MAX_INCLUDE_LEVEL`: the main file counts as the first level.
    public static let maximumIncludeLevel = 10

    /// Single-valued parameters hold their last setting; multi-valued ones (UserParameter, ...) all.
    private var settingsByName: [String: [Setting]] = [:]

    /// The last setting of `name`, or nil when the files never set it.
    public func setting(_ name: String) -> Setting? {
        settingsByName[name]?.last
    }

    /// Every setting of `name` in file order; more than one only for multi-valued parameters.
    public func settings(_ name: String) -> [Setting] {
        settingsByName[name] ?? []
    }

    /// All parameter names that were set, sorted.
    public var parameterNames: [String] {
        settingsByName.keys.sorted()
    }

    /// Reads `path` and everything it includes. Directory and glob includes are read in
    /// byte-wise sorted file name order so results are reproducible (Zabbix uses `readdir` order).
    public static func load(path: String, unknownParameters: UnknownParameters = .keep) throws(AgentConfigError)
        -> AgentConfig
    {
        var loader = Loader(unknownParameters: unknownParameters)
        try loader.parse(try loader.read(path), file: path, level: 1)
        return loader.config
    }

    /// Zabbix's own configs are a few KiB; these bounds keep a wrong `-c` or `Include`
    /// (`/dev/zero`, a log file, a huge directory) from driving memory.
    public static let maximumFileBytes = 1 << 20
    public static let maximumTotalBytes = 16 << 20
    public static let maximumDirectoryEntries = 10_000

    private struct Loader {
        let unknownParameters: UnknownParameters
        var config = AgentConfig()
        var bytesRead = 0

        /// A config file, within the per-file and the total bound.
        mutating func read(_ file: String) throws(AgentConfigError) -> [UInt8] {
            let limit = min(AgentConfig.maximumFileBytes, AgentConfig.maximumTotalBytes - bytesRead)
            do {
                let contents = try LocalFiles.read(file, limit: limit)
                bytesRead += contents.count
                return contents
            } catch {
                throw AgentConfigError(file: file, line: nil, reason: .cannotOpen(reason: error.reason))
            }
        }

        mutating func parse(_ contents: [UInt8], file: String, level: Int) throws(AgentConfigError) {
            var lineNumber = 0
            for rawLine in contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                lineNumber += 1
                let location = Location(file: file, line: lineNumber)
                guard let (name, value) = try splitLine(rawLine, at: location) else { continue }
                if name == "Include" {
                    try include(value, from: location, level: level)
                } else {
                    try store(name: name, value: value, at: location)
                }
            }
        }

        /// Trims, skips blanks and comments, checks length and UTF-8, splits at the first `=`.
        private func splitLine(_ rawLine: ArraySlice<UInt8>, at location: Location) throws(AgentConfigError)
            -> (name: String, value: String)?
        {
            // fgets keeps a "\r\n" line of exactly the limit whole, so a final CR does not count.
            let content = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if content.count > AgentConfig.maximumLineLength {
                throw error(.lineTooLong(limit: AgentConfig.maximumLineLength), at: location)
            }
            let line = trimmingBytes(rawLine, leading: configBlanks, trailing: configLineEndBlanks)
            if line.isEmpty || line.first == UInt8(ascii: "#") { return nil }
            // C stops a string at NUL; reject it rather than silently cutting the line.
            guard !line.contains(0), let text = String(validating: line, as: UTF8.self) else {
                throw error(.nonUTF8(String(decoding: line, as: UTF8.self)), at: location)
            }
            guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
                throw error(.invalidEntry(text), at: location)
            }
            let name = trimmingBytes(line[..<equals], leading: [], trailing: configLineEndBlanks)
            let value = trimmingBytes(line[(equals + 1)...], leading: configBlanks, trailing: [])
            return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
        }

        private mutating func store(name: String, value: String, at location: Location) throws(AgentConfigError) {
            let kind = agentParameterKinds[name]
            var setting = Setting(name: name, value: value, location: location)
            switch kind {
            case .multiple:
                config.settingsByName[name, default: []].append(setting)
                return
            case .integer(let range):
                guard let number = parseConfigInteger(value), range.contains(number) else {
                    throw error(.wrongValue(parameter: name), at: location)
                }
            case .stringList:
                setting.value = trimmedConfigList(value)
            case .string:
                break
            case nil:
                if unknownParameters == .reject { throw error(.unknownParameter(name), at: location) }
            }
            config.settingsByName[name] = [setting]
        }

        /// `parse_cfg_object`: a file, a directory (every regular file) or `/dir/pattern*`.
        private mutating func include(_ target: String, from location: Location, level: Int)
            throws(AgentConfigError)
        {
            let (path, pattern) = try splitGlob(target, at: location)
            let kind: LocalFiles.Kind
            do {
                kind = try LocalFiles.kind(of: path)
            } catch {
                throw self.error(.includePath(path, reason: error.reason), at: location)
            }
            switch kind {
            case .directory:
                let names: [String]
                do {
                    names = try LocalFiles.entries(of: path, limit: AgentConfig.maximumDirectoryEntries)
                } catch {
                    throw self.error(.includePath(path, reason: error.reason), at: location)
                }
                for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                    let file = path == "/" ? "/\(name)" : "\(path)/\(name)"
                    guard (try? LocalFiles.kind(of: file)) == .regularFile else { continue }
                    if let pattern, !globMatches(Array(name.utf8), pattern: Array(pattern.utf8)) { continue }
                    try includeFile(file, from: location, level: level)
                }
            case .regularFile, .other:
                guard pattern == nil else { throw error(.globBaseNotDirectory(target), at: location) }
                try includeFile(path, from: location, level: level)
            }
        }

        private mutating func includeFile(_ file: String, from location: Location, level: Int)
            throws(AgentConfigError)
        {
            guard level < AgentConfig.maximumIncludeLevel else {
                throw error(.recursion(path: file), at: location)
            }
            try parse(try read(file), file: file, level: level + 1)
        }

        /// `parse_glob`: the only wildcard is `*`, in the last component of an absolute path.
        /// A trailing `/` on a plain path means "this must be a directory".
        private func splitGlob(_ target: String, at location: Location) throws(AgentConfigError)
            -> (path: String, pattern: String?)
        {
            let bytes = Array(target.utf8)
            guard let star = bytes.firstIndex(of: UInt8(ascii: "*")) else {
                let trimmed = trimmingBytes(bytes[...], leading: [], trailing: [UInt8(ascii: "/")])
                if trimmed.count == bytes.count { return (target, nil) }
                return (trimmed.isEmpty ? "/" : String(decoding: trimmed, as: UTF8.self), "*")
            }
            if bytes[(star + 1)...].contains(UInt8(ascii: "/")) {
                throw error(.globNotLastComponent(target), at: location)
            }
            guard bytes.first == UInt8(ascii: "/"), let slash = bytes[..<star].lastIndex(of: UInt8(ascii: "/")) else {
                throw error(.globPathNotAbsolute(target), at: location)
            }
            let directory = trimmingBytes(bytes[..<slash], leading: [], trailing: [UInt8(ascii: "/")])
            return (
                directory.isEmpty ? "/" : String(decoding: directory, as: UTF8.self),
                String(decoding: bytes[(slash + 1)...], as: UTF8.self)
            )
        }

        private func error(_ reason: AgentConfigError.Reason, at location: Location) -> AgentConfigError {
            AgentConfigError(file: location.file, line: location.line, reason: reason)
        }
    }
}

/// Zabbix's `match_glob`: `*` matches any run of bytes (a leading dot too), every other byte itself.
/// Backtracks only to the last `*`, so it stays linear-ish whatever the pattern.
func globMatches(_ name: [UInt8], pattern: [UInt8]) -> Bool {
    var nameIndex = 0
    var patternIndex = 0
    var lastStar: (pattern: Int, name: Int)?
    while nameIndex < name.count {
        if patternIndex < pattern.count, pattern[patternIndex] == UInt8(ascii: "*") {
            lastStar = (patternIndex, nameIndex)
            patternIndex += 1
        } else if patternIndex < pattern.count, pattern[patternIndex] == name[nameIndex] {
            patternIndex += 1
            nameIndex += 1
        } else if let star = lastStar {
            lastStar = (star.pattern, star.name + 1)
            patternIndex = star.pattern + 1
            nameIndex = star.name + 1
        } else {
            return false
        }
    }
    return pattern[patternIndex...].allSatisfy { $0 == UInt8(ascii: "*") }
}
