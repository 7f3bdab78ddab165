/// An entry of the agent's `Server=` list: who may poll it.
public enum ServerPeer: Equatable, Sendable {
    case address(String)
    case network(address: String, prefixLength: Int)
    /// Resolved by Zabbix at each connection.
    case hostname(String)
}

/// The TLS parameters a sender or agent reads from the config file (`zbx_tls_validate_config`).
public struct TLSSettings: Equatable, Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case unencrypted
        case psk
        case cert
    }

    public var connect: Mode = .unencrypted
    public var accept: Set<Mode> = [.unencrypted]
    public var caFile: String?
    public var crlFile: String?
    public var serverCertIssuer: String?
    public var serverCertSubject: String?
    public var certFile: String?
    public var keyFile: String?
    public var pskIdentity: String?
    public var pskFile: String?
    public var cipherCert13: String?
    public var cipherCert: String?
    public var cipherPSK13: String?
    public var cipherPSK: String?
    public var cipherAll13: String?
    public var cipherAll: String?

    public init() {}
}

extension AgentConfig {
    /// Zabbix's `MAX_ZBX_HOSTNAME_LEN`.
    public static let maximumHostnameLength = 128
    public static let defaultTimeout = 3

    /// `ServerActive`: one cluster per comma-separated entry; empty when unset or empty.
    public func serverActive() throws(AgentConfigError) -> [ServerCluster] {
        guard let setting = setting("ServerActive"), !setting.value.isEmpty else { return [] }
        do {
            return try ServerCluster.parseList(setting.value)
        } catch {
            throw AgentConfigError(file: setting.location.file, line: setting.location.line, reason: error)
        }
    }

    /// `Server`: IP addresses, CIDR networks or DNS names; empty when unset or empty.
    public func servers() throws(AgentConfigError) -> [ServerPeer] {
        guard let setting = setting("Server"), !setting.value.isEmpty else { return [] }
        var peers: [ServerPeer] = []
        for entry in setting.value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let text = Substring(entry)
            guard let peer = Self.serverPeer(text) else {
                throw error(.invalidServerEntry(String(text)), at: setting)
            }
            peers.append(peer)
        }
        return peers
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

    /// `Timeout` in seconds (1-30, checked while loading), 3 when unset.
    public var timeout: Int {
        setting("Timeout").flatMap { parseConfigInteger($0.value) }.map { Int($0) } ?? Self.defaultTimeout
    }

    /// `SourceIP`, which must be an IPv4 or IPv6 address.
    public func sourceIP() throws(AgentConfigError) -> String? {
        guard let setting = setting("SourceIP") else { return nil }
        guard isIPv4(Substring(setting.value)) || isIPv6(Substring(setting.value)) else {
            throw error(.invalidSourceIP(setting.value), at: setting)
        }
        return setting.value
    }

    /// The TLS parameters, checked as `zbx_tls_validate_config` does: valid modes, no empty
    /// values, certificate and PSK parameters complete, and the modes backed by their material.
    public func tls() throws(AgentConfigError) -> TLSSettings {
        var settings = TLSSettings()
        func value(_ name: String) throws(AgentConfigError) -> String? {
            guard let found = setting(name) else { return nil }
            guard found.value.utf8.contains(where: { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\t") }) else {
                throw error(.tlsParameterEmpty(name), at: found)
            }
            return found.value
        }
        if let connect = try value("TLSConnect") {
            guard let mode = TLSSettings.Mode(rawValue: connect) else {
                throw error(.tlsInvalidValue("TLSConnect"), at: setting("TLSConnect")!)
            }
            settings.connect = mode
        }
        if let accept = try value("TLSAccept") {
            var modes: Set<TLSSettings.Mode> = []
            for item in accept.split(separator: ",", omittingEmptySubsequences: false) {
                guard let mode = TLSSettings.Mode(rawValue: String(item)) else {
                    throw error(.tlsInvalidValue("TLSAccept"), at: setting("TLSAccept")!)
                }
                modes.insert(mode)
            }
            settings.accept = modes
        }
        settings.caFile = try value("TLSCAFile")
        settings.crlFile = try value("TLSCRLFile")
        settings.serverCertIssuer = try value("TLSServerCertIssuer")
        settings.serverCertSubject = try value("TLSServerCertSubject")
        settings.certFile = try value("TLSCertFile")
        settings.keyFile = try value("TLSKeyFile")
        settings.pskIdentity = try value("TLSPSKIdentity")
        settings.pskFile = try value("TLSPSKFile")
        settings.cipherCert13 = try value("TLSCipherCert13")
        settings.cipherCert = try value("TLSCipherCert")
        settings.cipherPSK13 = try value("TLSCipherPSK13")
        settings.cipherPSK = try value("TLSCipherPSK")
        settings.cipherAll13 = try value("TLSCipherAll13")
        settings.cipherAll = try value("TLSCipherAll")
        try checkTLSCompleteness(settings)
        return settings
    }

    private func checkTLSCompleteness(_ tls: TLSSettings) throws(AgentConfigError) {
        let pairs: [(defined: String, missing: String, present: Bool, partner: Bool)] = [
            ("TLSCertFile", "TLSKeyFile", tls.certFile != nil, tls.keyFile != nil),
            ("TLSKeyFile", "TLSCertFile", tls.keyFile != nil, tls.certFile != nil),
            ("TLSCertFile", "TLSCAFile", tls.certFile != nil, tls.caFile != nil),
        ]
        for pair in pairs where pair.present && !pair.partner {
            throw error(.tlsMissingCompanion(defined: pair.defined, missing: pair.missing), at: setting(pair.defined)!)
        }
        if tls.certFile == nil {
            for name in ["TLSCAFile", "TLSCRLFile", "TLSServerCertIssuer", "TLSServerCertSubject"] {
                if let found = setting(name) { throw error(.tlsMissingCertificate(defined: name), at: found) }
            }
        }
        if let found = setting("TLSPSKFile"), tls.pskIdentity == nil {
            throw error(.tlsMissingCompanion(defined: "TLSPSKFile", missing: "TLSPSKIdentity"), at: found)
        }
        if let found = setting("TLSPSKIdentity"), tls.pskFile == nil {
            throw error(.tlsMissingCompanion(defined: "TLSPSKIdentity", missing: "TLSPSKFile"), at: found)
        }
        for (name, modes) in [("TLSConnect", [tls.connect]), ("TLSAccept", Array(tls.accept))] {
            guard let found = setting(name) else { continue }
            if modes.contains(.cert), tls.certFile == nil { throw error(.tlsValueRequiresCertificate(name), at: found) }
            if modes.contains(.psk), tls.pskFile == nil { throw error(.tlsValueRequiresPSK(name), at: found) }
        }
    }

    /// `zbx_check_hostname`'s complaint about `name`, or nil when it is acceptable: Zabbix takes
    /// 1-128 characters of `0-9A-Za-z`, space, `.`, `_` and `-` as a host name.
    public static func hostnameProblem(_ name: String) -> String? {
        for character in name {
            let isAllowed =
                character.isASCII
                && (isASCIIAlphanumeric(character.asciiValue!) || " ._-".contains(character))
            if !isAllowed { return "name contains invalid character '\(character)'" }
        }
        if name.isEmpty { return "name is empty" }
        if name.utf8.count > maximumHostnameLength {
            return "name is too long (max \(maximumHostnameLength) characters)"
        }
        return nil
    }

    /// `zbx_validate_peer_list`: `address/prefix`, an IP address or a DNS name.
    static func serverPeer(_ text: Substring) -> ServerPeer? {
        guard let slash = text.firstIndex(of: "/") else {
            if isIPv4(text) || isIPv6(text) { return .address(String(text)) }
            return isValidDNSName(text) ? .hostname(String(text)) : nil
        }
        let address = text[..<slash]
        let prefix = text[text.index(after: slash)...]
        guard !prefix.isEmpty, prefix.count <= 3,
            prefix.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let length = Int(prefix)
        else { return nil }
        if isIPv4(address), length <= 32 { return .network(address: String(address), prefixLength: length) }
        if isIPv6(address), length <= 128 { return .network(address: String(address), prefixLength: length) }
        return nil
    }

    private func error(_ reason: AgentConfigError.Reason, at setting: Setting) -> AgentConfigError {
        AgentConfigError(file: setting.location.file, line: setting.location.line, reason: reason)
    }
}
