import ZabbixProtocol
extension AgentConfig {
    /// Zabbix's `MAX_ZBX_HOSTNAME_LEN`.
    public static let maximumHostnameLength = 128

    /// `ServerActive`: one cluster per comma-separated entry; empty when unset or empty.
    public func serverActive() throws(AgentConfigError) -> [ServerCluster] {
        guard let setting = setting("ServerActive"), !setting.value.isEmpty else { return [] }
        do {
            return try ServerCluster.parseList(setting.value)
        } catch {
            throw AgentConfigError(file: setting.location.file, line: setting.location.line, reason: .addressList(error))
        }
    }

    /// `Hostname`: the comma-separated, case-sensitive, unique host names; empty when unset
    /// (the agent then runs `HostnameItem`).
    public func hostnames() throws(AgentConfigError) -> [String] {
        guard let setting = setting("Hostname") else { return [] }
        var names: [String] = []
        for entry in setting.value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let name = String(Substring(entry))
            if let problem = Self.hostnameProblem(name) {
                throw error(.invalidHostname(name, reason: problem), at: setting)
            }
            guard !names.contains(name) else { throw error(.duplicateHostname(name), at: setting) }
            names.append(name)
        }
        return names
    }

    /// `zbx_check_hostname`'s complaint about `name`, or nil when it is acceptable: Zabbix takes
    /// 1-128 characters of `0-9A-Za-z`, space, `.`, `_` and `-` as a host name.
    public static func hostnameProblem(_ name: String) -> String? {
        for character in name {
            let isAllowed =
                character.isASCII
                && (character.isLetter || character.isNumber || " ._-".contains(character))
            if !isAllowed { return "name contains invalid character '\(character)'" }
        }
        if name.isEmpty { return "name is empty" }
        if name.utf8.count > maximumHostnameLength {
            return "name is too long (max \(maximumHostnameLength) characters)"
        }
        return nil
    }

    private func error(_ reason: AgentConfigError.Reason, at setting: Setting) -> AgentConfigError {
        AgentConfigError(file: setting.location.file, line: setting.location.line, reason: reason)
    }
}
