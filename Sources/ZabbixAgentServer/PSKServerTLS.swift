import NIOSSL
import ZabbixProtocol
import ZabbixSender

/// The server side of TLS with a pre-shared key, as zabbix_agentd with `TLSAccept=psk`: TLS 1.2,
/// the PSK suites that both BoringSSL and Debian's GnuTLS-built Zabbix have, no certificates,
/// and only the configured identity.
public struct PSKServerTLS: Sendable {
    let context: NIOSSLContext

    public init(psk: PreSharedKey) throws {
        if let problem = ZabbixSenderClient.pskProblem(psk) { throw PSKServerTLSError(reason: problem) }
        var configuration = ZabbixSenderClient.pskTLSConfiguration()
        let identity = psk.identity
        let key = NIOSSLSecureBytes(psk.key)
        // Another identity fails the handshake, as zabbix_agentd refuses it.
        configuration.pskServerProvider = { offered in
            guard offered.clientIdentity == identity else { throw PSKServerTLSError(reason: "unknown PSK identity") }
            return PSKServerIdentityResponse(key: key)
        }
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw PSKServerTLSError(reason: "\(error)")
        }
    }
}

public struct PSKServerTLSError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "cannot use TLS: \(reason)" }
}
