import ZabbixProtocol

/// What a passive agent reads from its config to listen (`zbx_load_config` in zabbix_agentd.c):
/// the peers it answers, where it listens, how long it waits, which connections it accepts.
extension AgentConfig {
    /// zabbix_agentd's `ListenPort` default.
    public static let defaultListenPort: UInt16 = 10050
    /// zabbix_agentd's `Timeout` default, in seconds.
    public static let defaultTimeoutSeconds = 3

    /// `Server`, validated as zabbix_agentd validates it; nil when the files do not set it.
    public func server() throws(AgentConfigError) -> PeerAllowList? {
        guard let setting = setting("Server") else { return nil }
        do {
            return try PeerAllowList(parsing: setting.value)
        } catch {
            throw AgentConfigError(file: setting.location.file, line: setting.location.line, reason: .peerList(error))
        }
    }

    /// `ListenIP`: the addresses to listen on; empty when unset (the agent then listens on all).
    public func listenIPs() throws(AgentConfigError) -> [String] {
        guard let setting = setting("ListenIP") else { return [] }
        do {
            return try parseListenIPs(setting.value)
        } catch {
            throw AgentConfigError(file: setting.location.file, line: setting.location.line, reason: .listenIP(error))
        }
    }

    /// `ListenPort` (1024-32767, checked when the file was read), else 10050.
    public var listenPort: UInt16 {
        setting("ListenPort").flatMap { UInt16($0.value) } ?? Self.defaultListenPort
    }

    /// `Timeout` in seconds (1-30, checked when the file was read), else 3.
    public var timeoutSeconds: Int {
        setting("Timeout").flatMap { Int($0.value) } ?? Self.defaultTimeoutSeconds
    }

    /// The listener's TLS parameters (`TLSAccept`, `TLSPSKIdentity`, `TLSPSKFile`) as written.
    public var listenerTLSParameters: ListenerTLSParameters {
        ListenerTLSParameters(
            accept: setting("TLSAccept")?.value, pskIdentity: setting("TLSPSKIdentity")?.value,
            pskFile: setting("TLSPSKFile")?.value)
    }
}

/// A `ListenIP` entry that is not an address: zabbix_agentd's `invalid "ListenIP" ...` complaint.
public struct ListenIPError: Error, Equatable, Sendable, CustomStringConvertible {
    public var entry: String
    public var description: String { "invalid entry in \"ListenIP\" configuration parameter: \"\(entry)\"" }
}

/// A comma-separated list of IPv4 or IPv6 addresses (`ListenIP`, `--listen-ip`).
public func parseListenIPs(_ value: String) throws(ListenIPError) -> [String] {
    var addresses: [String] = []
    for piece in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
        let entry = Substring(piece)
        guard parseIPAddress(entry) != nil else { throw ListenIPError(entry: String(entry)) }
        addresses.append(String(entry))
    }
    return addresses
}

/// `TLSAccept` with its PSK settings, each from a flag or else the config, checked the way
/// zabbix_agentd's `zbx_tls_validate_config` checks them.
public struct ListenerTLSParameters: Equatable, Sendable {
    public var accept: String?
    public var pskIdentity: String?
    public var pskFile: String?

    public init(accept: String? = nil, pskIdentity: String? = nil, pskFile: String? = nil) {
        self.accept = accept
        self.pskIdentity = pskIdentity
        self.pskFile = pskFile
    }

    /// What the listener accepts once the parameters passed.
    public struct Mode: Equatable, Sendable {
        public var acceptsUnencrypted: Bool
        /// The identity and the key file (not read yet) when TLS-PSK is accepted.
        public var psk: PSKSetting?
    }

    public struct PSKSetting: Equatable, Sendable {
        public var identity: String
        public var file: String
    }

    /// These parameters where set, the others from `configFile`.
    public func filled(from configFile: ListenerTLSParameters) -> ListenerTLSParameters {
        ListenerTLSParameters(
            accept: accept ?? configFile.accept, pskIdentity: pskIdentity ?? configFile.pskIdentity,
            pskFile: pskFile ?? configFile.pskFile)
    }

    public func mode() throws(ListenerTLSError) -> Mode {
        var unencrypted = false
        var psk = false
        for item in (accept ?? "unencrypted").utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            switch String(Substring(item)) {
            case "unencrypted": unencrypted = true
            case "psk": psk = true
            case "cert": throw .certificatesUnsupported
            default: throw .invalidAccept(accept ?? "")
            }
        }
        if pskFile != nil, pskIdentity == nil { throw .dependency(defined: "TLSPSKFile", missing: "TLSPSKIdentity") }
        if pskIdentity != nil, pskFile == nil { throw .dependency(defined: "TLSPSKIdentity", missing: "TLSPSKFile") }
        guard psk else { return Mode(acceptsUnencrypted: unencrypted, psk: nil) }
        guard let pskIdentity, let pskFile else { throw .pskMissing }
        return Mode(acceptsUnencrypted: unencrypted, psk: PSKSetting(identity: pskIdentity, file: pskFile))
    }
}

/// A refused TLS setting of the listener, in zabbix_agentd's words where it has them.
public enum ListenerTLSError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidAccept(String)
    case certificatesUnsupported
    case dependency(defined: String, missing: String)
    case pskMissing

    public var description: String {
        switch self {
        case .invalidAccept(let value):
            return "invalid value of \"TLSAccept\" or \"--tls-accept\" parameter: \"\(value)\" (use unencrypted, psk or unencrypted,psk)"
        case .certificatesUnsupported:
            return "TLS with certificates (\"TLSAccept\" or \"--tls-accept\" cert) is not supported by zabbix-sockets; use psk"
        case .dependency(let defined, let missing):
            return "parameter \"\(defined)\" is defined, but \"\(missing)\" is not defined"
        case .pskMissing:
            return "parameter \"TLSAccept\" value psk requires \"TLSPSKIdentity\" and \"TLSPSKFile\" (or --tls-psk-identity and --tls-psk-file)"
        }
    }
}
