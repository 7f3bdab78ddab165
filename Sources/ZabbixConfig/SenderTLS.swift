import ZabbixProtocol
/// zabbix_sender's TLS parameters: each one from its `--tls-*` flag, else from the config file
/// (`zbx_fill_from_config_file`), then checked by `zbx_tls_validate_config` in the sender's words.
/// Values are as given; nothing here reads a file.
public struct SenderTLSParameters: Equatable, Sendable {
    /// A TLS parameter by its config file name and its zabbix_sender flag.
    public enum Name: String, Sendable, CaseIterable {
        case connect = "TLSConnect"
        case caFile = "TLSCAFile"
        case crlFile = "TLSCRLFile"
        case serverCertIssuer = "TLSServerCertIssuer"
        case serverCertSubject = "TLSServerCertSubject"
        case certFile = "TLSCertFile"
        case keyFile = "TLSKeyFile"
        case pskIdentity = "TLSPSKIdentity"
        case pskFile = "TLSPSKFile"

        public var configName: String { rawValue }

        public var flag: String {
            switch self {
            case .connect: return "--tls-connect"
            case .caFile: return "--tls-ca-file"
            case .crlFile: return "--tls-crl-file"
            case .serverCertIssuer: return "--tls-server-cert-issuer"
            case .serverCertSubject: return "--tls-server-cert-subject"
            case .certFile: return "--tls-cert-file"
            case .keyFile: return "--tls-key-file"
            case .pskIdentity: return "--tls-psk-identity"
            case .pskFile: return "--tls-psk-file"
            }
        }

        /// How zabbix_sender names it in a message: `"TLSPSKFile" or "--tls-psk-file"`.
        var quoted: String { "\"\(configName)\" or \"\(flag)\"" }
    }

    /// What the sender does once the parameters passed: the connection every server gets.
    public enum Mode: Equatable, Sendable {
        case unencrypted
        /// The identity and the file that holds the key (not read yet).
        case psk(identity: String, file: String)
        case certificate
    }

    public private(set) var values: [Name: String] = [:]

    public init(_ values: [Name: String] = [:]) {
        self.values = values
    }

    public subscript(name: Name) -> String? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// These parameters where set, the others from `configFile` (the command line wins, one by one).
    public func filled(from configFile: SenderTLSParameters) -> SenderTLSParameters {
        SenderTLSParameters(values.merging(configFile.values) { commandLine, _ in commandLine })
    }

    /// `zbx_tls_validate_config` as zabbix_sender runs it, first complaint first.
    public func mode() throws(SenderTLSError) -> Mode {
        for name in Name.allCases {
            if let value = values[name], value.utf8.allSatisfy(isCSpace) { throw .empty(name) }
        }
        var mode = Mode.unencrypted
        switch values[.connect] {
        case nil, "unencrypted": break
        case "cert": mode = .certificate
        case "psk": mode = .psk(identity: values[.pskIdentity] ?? "", file: values[.pskFile] ?? "")
        default: throw .invalidValue(.connect)
        }
        // (defined, needed) in the order zbx_tls_validate_config checks them.
        let dependencies: [(Name, Name)] = [
            (.certFile, .keyFile), (.keyFile, .certFile), (.certFile, .caFile), (.caFile, .certFile),
            (.crlFile, .certFile), (.serverCertIssuer, .certFile), (.serverCertSubject, .certFile),
            (.pskFile, .pskIdentity), (.pskIdentity, .pskFile),
            (.certFile, .connect), (.pskFile, .connect),
        ]
        for (defined, needed) in dependencies where values[defined] != nil && values[needed] == nil {
            throw .dependency(defined: defined, missing: needed)
        }
        if mode == .certificate, values[.certFile] == nil { throw .requirement(.connect, needs: .certFile) }
        if case .psk = mode, values[.pskFile] == nil { throw .requirement(.connect, needs: .pskFile) }
        return mode
    }

    private func isCSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}

/// A refused combination of TLS parameters, in zabbix_sender's words.
public enum SenderTLSError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty(SenderTLSParameters.Name)
    case invalidValue(SenderTLSParameters.Name)
    case dependency(defined: SenderTLSParameters.Name, missing: SenderTLSParameters.Name)
    case requirement(SenderTLSParameters.Name, needs: SenderTLSParameters.Name)

    public var description: String {
        switch self {
        case .empty(let name): return "configuration parameter \(name.quoted) is defined but empty"
        case .invalidValue(let name): return "invalid value of \(name.quoted) parameter"
        case .dependency(let defined, let missing):
            return "parameter \(defined.quoted) is defined, but neither \"\(missing.configName)\" nor \"\(missing.flag)\" is defined"
        case .requirement(let name, let needed):
            return "parameter \(name.quoted) value requires \(needed.quoted), but neither of them is defined"
        }
    }
}

extension AgentConfig {
    /// The TLS parameters zabbix_sender reads from an agent config (`zbx_load_config` in
    /// zabbix_sender.c), as written: unlike `tls()`, nothing is checked here, because flags may
    /// still complete or replace them.
    public var senderTLSParameters: SenderTLSParameters {
        var parameters = SenderTLSParameters()
        for name in SenderTLSParameters.Name.allCases {
            parameters[name] = setting(name.configName)?.value
        }
        return parameters
    }
}
