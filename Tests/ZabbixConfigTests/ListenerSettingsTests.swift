import TestSupport
import XCTest

@testable import ZabbixConfig
import ZabbixProtocol

/// What `serve` reads from the agent config: Server, ListenIP, ListenPort, Timeout, TLSAccept.
final class ListenerSettingsTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    override func tearDown() {
        directory = nil
    }

    private func load(_ text: String) throws -> AgentConfig {
        try AgentConfig.load(path: try directory.write("agentd.conf", text))
    }

    func testDefaultsWhenUnset() throws {
        let config = try load("Hostname=h\n")
        XCTAssertNil(try config.server())
        XCTAssertEqual(try config.listenIPs(), [])
        XCTAssertEqual(config.listenPort, 10050)
        XCTAssertEqual(config.timeoutSeconds, 3)
        XCTAssertEqual(try config.listenerTLSParameters.mode(), .init(acceptsUnencrypted: true, psk: nil))
    }

    func testValuesAsWritten() throws {
        let config = try load("""
            Server=127.0.0.1 , 10.0.0.0/8,::1,zabbix.example.com
            ListenIP=127.0.0.1, ::1
            ListenPort=10077
            Timeout=7
            TLSAccept=unencrypted, psk
            TLSPSKIdentity=PSK 001
            TLSPSKFile=/etc/zabbix/agent.psk
            """)
        let server = try XCTUnwrap(try config.server())
        XCTAssertEqual(server.text, "127.0.0.1,10.0.0.0/8,::1,zabbix.example.com")
        XCTAssertEqual(server.names, ["zabbix.example.com"])
        XCTAssertTrue(server.allows([10, 9, 8, 7]))
        XCTAssertEqual(try config.listenIPs(), ["127.0.0.1", "::1"])
        XCTAssertEqual(config.listenPort, 10077)
        XCTAssertEqual(config.timeoutSeconds, 7)
        XCTAssertEqual(
            try config.listenerTLSParameters.mode(),
            .init(acceptsUnencrypted: true, psk: .init(identity: "PSK 001", file: "/etc/zabbix/agent.psk")))
    }

    func testBadValuesNameFileAndLine() throws {
        let badServer = try load("Hostname=h\nServer=127.0.0.1,bad host\n")
        XCTAssertThrowsError(try badServer.server()) { error in
            XCTAssertEqual("\(error)", #"invalid entry in "Server" configuration parameter: "bad host" (config file "\#(directory.path)/agentd.conf", line 2)"#)
        }
        XCTAssertThrowsError(try load("ListenIP=localhost\n").listenIPs()) { error in
            XCTAssertTrue("\(error)".hasPrefix(#"invalid entry in "ListenIP" configuration parameter: "localhost""#), "\(error)")
        }
        // The parser checks zabbix_agentd's ranges when it reads the file.
        XCTAssertThrowsError(try load("ListenPort=80\n")) { XCTAssertTrue("\($0)".contains(#"wrong value of "ListenPort""#), "\($0)") }
        XCTAssertThrowsError(try load("Timeout=31\n")) { XCTAssertTrue("\($0)".contains(#"wrong value of "Timeout""#), "\($0)") }
    }

    func testTLSAcceptRules() {
        func mode(_ accept: String?, _ identity: String? = nil, _ file: String? = nil) throws -> ListenerTLSParameters.Mode {
            try ListenerTLSParameters(accept: accept, pskIdentity: identity, pskFile: file).mode()
        }
        XCTAssertEqual(try mode("psk", "id", "/f"), .init(acceptsUnencrypted: false, psk: .init(identity: "id", file: "/f")))
        XCTAssertEqual(try mode("psk,unencrypted", "id", "/f").acceptsUnencrypted, true)
        XCTAssertThrowsError(try mode("cert")) { XCTAssertEqual($0 as? ListenerTLSError, .certificatesUnsupported) }
        XCTAssertThrowsError(try mode("unencrypted,cert")) { XCTAssertEqual($0 as? ListenerTLSError, .certificatesUnsupported) }
        XCTAssertThrowsError(try mode("tls")) { XCTAssertEqual($0 as? ListenerTLSError, .invalidAccept("tls")) }
        XCTAssertThrowsError(try mode("")) { XCTAssertEqual($0 as? ListenerTLSError, .invalidAccept("")) }
        XCTAssertThrowsError(try mode("psk")) { XCTAssertEqual($0 as? ListenerTLSError, .pskMissing) }
        XCTAssertThrowsError(try mode("psk", "id")) { XCTAssertEqual($0 as? ListenerTLSError, .dependency(defined: "TLSPSKIdentity", missing: "TLSPSKFile")) }
        XCTAssertThrowsError(try mode(nil, nil, "/f")) { XCTAssertEqual($0 as? ListenerTLSError, .dependency(defined: "TLSPSKFile", missing: "TLSPSKIdentity")) }
        // Flags win one by one over the config.
        let merged = ListenerTLSParameters(accept: "psk").filled(from: .init(accept: "unencrypted", pskIdentity: "id", pskFile: "/f"))
        XCTAssertEqual(merged, .init(accept: "psk", pskIdentity: "id", pskFile: "/f"))
    }
}
