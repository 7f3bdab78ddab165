import ArgumentParser
import Posix
import ZabbixConfig
import ZabbixProtocol
import ZabbixSender

import Glibc

/// zabbix_sender's flags, with its names and meanings: where values go and for which host.
struct SenderFlags: ParsableArguments, Sendable {
    @Option(name: [.customShort("c"), .long], help: ArgumentHelp(
        "Zabbix agent config file: ServerActive (every entry gets the data, `;` clusters fail over), Hostname, TLS settings.",
        valueName: "file"
    ))
    var config: String?

    @Option(name: [.customShort("z"), .customLong("zabbix-server")], help: ArgumentHelp(
        "Zabbix servers or proxies in ServerActive's syntax (`a,b` both get the data, `a;b` fail over); replaces the config's first ServerActive entry.",
        valueName: "servers"
    ))
    var zabbixServer: String?

    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Port of --zabbix-server (default 10051).", valueName: "port"))
    var port: UInt16?

    @Option(name: [.customShort("s"), .long], help: ArgumentHelp(
        "Host name as registered in Zabbix (default: the config's Hostname, else this machine's host name).", valueName: "host"
    ))
    var host: String?

    @Option(name: [.customShort("t"), .long], help: ArgumentHelp("Seconds to wait for each server, 1-300.", valueName: "seconds"))
    var timeout: Int = 60

    @Option(name: .customLong("tls-connect"), help: ArgumentHelp(
        "How to connect: unencrypted or psk (TLS 1.2 with a pre-shared key). Default: the config's TLSConnect, else unencrypted.",
        valueName: "unencrypted|psk"
    ))
    var tlsConnect: String?

    @Option(name: .customLong("tls-psk-identity"), help: ArgumentHelp(
        "PSK identity, as on the host's Encryption tab (default: the config's TLSPSKIdentity).", valueName: "identity"
    ))
    var tlsPSKIdentity: String?

    @Option(name: .customLong("tls-psk-file"), help: ArgumentHelp(
        "File whose first line is the PSK in hex, 32-512 digits (default: the config's TLSPSKFile).", valueName: "file"
    ))
    var tlsPSKFile: String?

    func validate() throws {
        guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be 1-300 seconds, not \(timeout)") }
        if port == 0 { throw ValidationError("--port must be 1-65535") }
    }

    /// A setting that cannot be used, worded for the admin; `send` prints it and exits 1, the
    /// daemon logs it (and keeps its previous settings on SIGHUP).
    struct SettingsError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Where to send and as which host, after reading the config file if one was given.
    struct Resolved {
        var destinations: [ServerCluster]
        var host: String
        var timeoutSeconds: Int
        /// Nil: unencrypted.
        var psk: PreSharedKey?
    }

    func resolve() throws -> Resolved {
        var destinations: [ServerCluster] = []
        var configHost: String?
        var configTLS = SenderTLSParameters()
        if let config {
            let agentConfig: AgentConfig
            do {
                agentConfig = try AgentConfig.load(path: config)
                destinations = try agentConfig.serverActive()
                configHost = try agentConfig.hostnames().first
                configTLS = agentConfig.senderTLSParameters
            } catch {
                // Every call above throws AgentConfigError only.
                throw SettingsError("\(error)")
            }
        }
        let psk = try resolvePSK(configFile: configTLS)
        if let zabbixServer {
            let parsed = Result { () throws(AddressListError) in try ServerCluster.parseList(zabbixServer) }
            guard case .success(var given) = parsed else {
                if case .failure(let error) = parsed { throw SettingsError("--zabbix-server \"\(zabbixServer)\": \(error)") }
                throw SettingsError("--zabbix-server is empty")
            }
            guard !given.isEmpty else { throw SettingsError("--zabbix-server is empty") }
            if let port {
                for index in given.indices {
                    given[index].nodes = given[index].nodes.map { ZabbixAddress(host: $0.host, port: port) }
                }
            }
            destinations.replaceSubrange(0..<min(1, destinations.count), with: given)
        } else if let port, !destinations.isEmpty {
            destinations[0].nodes = destinations[0].nodes.map { ZabbixAddress(host: $0.host, port: port) }
        }
        guard !destinations.isEmpty else {
            throw SettingsError("no Zabbix server: give --zabbix-server, or --config with a ServerActive line")
        }
        guard let host = host ?? configHost ?? Self.systemHostname() else {
            throw SettingsError("no host name: give --host, or --config with a Hostname line")
        }
        if let problem = AgentConfig.hostnameProblem(host) {
            throw SettingsError("host name \"\(host)\" cannot be a Zabbix host: \(problem)")
        }
        return Resolved(destinations: destinations, host: host, timeoutSeconds: timeout, psk: psk)
    }

    /// As zabbix_sender: each TLS flag, else the config's parameter; then the key file is read.
    /// Nil for unencrypted; certificates are refused rather than sending in the clear.
    private func resolvePSK(configFile: SenderTLSParameters) throws -> PreSharedKey? {
        var flags = SenderTLSParameters()
        flags[.connect] = tlsConnect
        flags[.pskIdentity] = tlsPSKIdentity
        flags[.pskFile] = tlsPSKFile
        let mode: SenderTLSParameters.Mode
        do {
            mode = try flags.filled(from: configFile).mode()
        } catch {
            throw SettingsError("\(error)")
        }
        switch mode {
        case .unencrypted:
            return nil
        case .certificate:
            throw SettingsError("""
                TLS with certificates ("TLSConnect" or "--tls-connect" cert) is not supported by zabbix-sockets; \
                use psk. Nothing was sent (not unencrypted either)
                """)
        case .psk(let identity, let file):
            let psk: PreSharedKey
            do {
                psk = try PreSharedKey.load(identity: identity, file: file)
            } catch {
                throw SettingsError("\(error)")
            }
            if let problem = ZabbixSenderClient.pskProblem(psk) { throw SettingsError(problem) }
            return psk
        }
    }

    /// The agent's default HostnameItem, system.hostname.
    static func systemHostname() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // As the agent does with HostnameItem's result: cut to Zabbix's 128 characters.
        return name.isEmpty ? nil : String(name.prefix(AgentConfig.maximumHostnameLength))
    }
}
