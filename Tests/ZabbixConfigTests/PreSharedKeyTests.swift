import TestSupport
import XCTest

@testable import ZabbixConfig
import ZabbixProtocol

/// `zbx_read_psk_file`, `zbx_check_psk_identity_len` and `zbx_tls_validate_config` (sender) rules.
final class PreSharedKeyTests: XCTestCase {
    private let path = "/etc/zabbix/agent.psk"
    private let hex32 = "0123456789abcdefABCDEF0123456789"

    private func parse(_ text: String) throws(PSKError) -> [UInt8] {
        try PreSharedKey.parseKeyFile(Array(text.utf8), path: path)
    }

    private func parseError(_ text: String, file: StaticString = #filePath, line: UInt = #line) -> PSKError? {
        do {
            let key = try parse(text)
            XCTFail("accepted \(key.count) bytes", file: file, line: line)
        } catch {
            return error
        }
        return nil
    }

    func testFirstLineOfHexDigitsIsTheKey() throws {
        let expected: [UInt8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89]
        XCTAssertEqual(try parse(hex32), expected)
        XCTAssertEqual(try parse(hex32 + "\n"), expected)
        XCTAssertEqual(try parse(hex32 + "\r\n"), expected, "a Windows line end")
        XCTAssertEqual(try parse(hex32 + "\nthe rest is never read\n"), expected)
        XCTAssertEqual(try parse(hex32 + "\rjunk after a bare CR\n"), expected, "strcspn cuts at the first CR too")
        XCTAssertEqual(try parse(String(repeating: "ff", count: 256) + "\n"), [UInt8](repeating: 0xff, count: 256))
    }

    func testLengthLimitsInZabbixWords() {
        XCTAssertEqual(parseError(String(hex32.dropLast(2))), .tooShort(path: path))
        XCTAssertEqual(
            parseError(String(hex32.dropLast(2)))?.description,
            "PSK in file \"/etc/zabbix/agent.psk\" is too short. Minimum is 32 hex-digits")
        let tooLong = String(repeating: "ab", count: 256) + "cd"
        XCTAssertEqual(parseError(tooLong), .tooLong(path: path))
        XCTAssertEqual(
            parseError(tooLong)?.description,
            "PSK in file \"/etc/zabbix/agent.psk\" is too long. Maximum is 512 hex-digits")
        XCTAssertEqual(parseError(String(repeating: "ab", count: 5000)), .tooLong(path: path), "fgets reads no more than 514")
    }

    func testEmptyFileAndEmptyFirstLine() {
        XCTAssertEqual(parseError(""), .emptyFile(path: path))
        XCTAssertEqual(parseError("")?.description, "cannot read from file \"/etc/zabbix/agent.psk\" or file empty")
        XCTAssertEqual(parseError("\n" + hex32 + "\n"), .emptyKey(path: path), "only the first line counts")
        XCTAssertEqual(parseError("\r\n")?.description, "file \"/etc/zabbix/agent.psk\" is empty")
    }

    func testNotHexDigitsInPairs() {
        XCTAssertEqual(parseError(hex32 + "0"), .invalid(path: path), "an odd number of digits")
        XCTAssertEqual(parseError(hex32 + "0")?.description, "invalid PSK in file \"/etc/zabbix/agent.psk\"")
        XCTAssertEqual(parseError("0x" + hex32), .invalid(path: path))
        XCTAssertEqual(parseError(hex32 + " "), .invalid(path: path), "trailing blanks are not stripped")
        XCTAssertEqual(parseError(" " + hex32), .invalid(path: path))
        XCTAssertEqual(parseError(String(hex32.dropLast()) + "g"), .invalid(path: path))
    }

    func testIdentityRules() throws {
        XCTAssertNoThrow(try PreSharedKey.checkIdentity(Array("PSK 001".utf8)))
        XCTAssertNoThrow(try PreSharedKey.checkIdentity(Array(String(repeating: "é", count: 256).utf8)), "512 bytes")
        XCTAssertThrowsError(try PreSharedKey.checkIdentity(Array(String(repeating: "x", count: 513).utf8))) {
            XCTAssertEqual($0 as? PSKError, .identityTooLong(bytes: 513))
            XCTAssertEqual("\($0)", "PSK identity length 513 exceeds the maximum length of 512 bytes.")
        }
        XCTAssertThrowsError(try PreSharedKey.checkIdentity([0x50, 0xC3])) {
            XCTAssertEqual($0 as? PSKError, .identityNotUTF8)
        }
        XCTAssertThrowsError(try PreSharedKey.checkIdentity([])) { XCTAssertEqual($0 as? PSKError, .identityEmpty) }
    }

    func testKeyLengthWhenGivenAsBytes() {
        XCTAssertNoThrow(try PreSharedKey(identity: "a", key: [UInt8](repeating: 1, count: 16)))
        XCTAssertNoThrow(try PreSharedKey(identity: "a", key: [UInt8](repeating: 1, count: 256)))
        XCTAssertThrowsError(try PreSharedKey(identity: "a", key: [UInt8](repeating: 1, count: 15))) {
            XCTAssertEqual($0 as? PSKError, .keyLength(15))
        }
        XCTAssertThrowsError(try PreSharedKey(identity: "a", key: [UInt8](repeating: 1, count: 257)))
    }

    func testLoadReadsTheFileAndNeverShowsTheKey() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("agent.psk", "8f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a\n")
        let psk = try PreSharedKey.load(identity: "PSK 001", file: file)
        XCTAssertEqual(psk.identity, "PSK 001")
        XCTAssertEqual(psk.key.count, 32)
        XCTAssertEqual(psk.key.first, 0x8f)
        var dumped = ""
        dump(psk, to: &dumped)
        for text in [psk.description, psk.debugDescription, dumped, "\(psk)", String(reflecting: [psk])] {
            XCTAssertFalse(text.contains("8f3a"), text)
            XCTAssertFalse(text.contains("143"), "0x8f in decimal: \(text)")
        }
        XCTAssertEqual(psk.description, "PSK identity \"PSK 001\" (256-bit key)")

        XCTAssertThrowsError(try PreSharedKey.load(identity: "PSK 001", file: "\(directory.path)/missing.psk")) {
            XCTAssertEqual("\($0)", "cannot open file \"\(directory.path)/missing.psk\": ENOENT (No such file or directory)")
        }
        let short = try directory.write("short.psk", "abcd\n")
        XCTAssertThrowsError(try PreSharedKey.load(identity: "PSK 001", file: short)) {
            XCTAssertEqual($0 as? PSKError, .tooShort(path: short))
        }
        let long = try directory.write("identity.psk", hex32)
        XCTAssertThrowsError(try PreSharedKey.load(identity: String(repeating: "i", count: 600), file: long)) {
            XCTAssertEqual($0 as? PSKError, .identityTooLong(bytes: 600))
        }
    }

    func testEndlessOrLongFilesAreNeverReadWhole() throws {
        // /dev/zero never ends, and a FIFO could block forever: only regular files are read.
        XCTAssertThrowsError(try PreSharedKey.load(identity: "x", file: "/dev/zero")) {
            XCTAssertEqual("\($0)", "cannot open file \"/dev/zero\": not a regular file")
        }
        // A key file with a huge tail is read no further than the first line needs.
        let directory = try TemporaryDirectory()
        let huge = try directory.write("huge.psk", String(repeating: "ab", count: 32) + "\n" + String(repeating: "x", count: 4 << 20))
        XCTAssertEqual(try PreSharedKey.load(identity: "x", file: huge).key.count, 32)
    }
}

final class SenderTLSParametersTests: XCTestCase {
    private typealias Parameters = SenderTLSParameters

    private func mode(_ values: [Parameters.Name: String]) throws(SenderTLSError) -> Parameters.Mode {
        try Parameters(values).mode()
    }

    private func error(_ values: [Parameters.Name: String], file: StaticString = #filePath, line: UInt = #line) -> String? {
        do {
            let mode = try mode(values)
            XCTFail("accepted: \(mode)", file: file, line: line)
        } catch {
            return error.description
        }
        return nil
    }

    func testModes() throws {
        XCTAssertEqual(try mode([:]), .unencrypted)
        XCTAssertEqual(try mode([.connect: "unencrypted"]), .unencrypted)
        XCTAssertEqual(
            try mode([.connect: "psk", .pskIdentity: "PSK 001", .pskFile: "/k"]), .psk(identity: "PSK 001", file: "/k"))
        XCTAssertEqual(
            try mode([.connect: "unencrypted", .pskIdentity: "PSK 001", .pskFile: "/k"]), .unencrypted,
            "PSK parameters may be defined and unused")
        XCTAssertEqual(
            try mode([.connect: "cert", .certFile: "/c", .keyFile: "/k", .caFile: "/ca"]), .certificate)
    }

    func testMessagesInZabbixSendersWords() {
        XCTAssertEqual(error([.connect: "PSK"]), "invalid value of \"TLSConnect\" or \"--tls-connect\" parameter")
        XCTAssertEqual(
            error([.connect: "psk", .pskIdentity: " \t"]),
            "configuration parameter \"TLSPSKIdentity\" or \"--tls-psk-identity\" is defined but empty")
        XCTAssertEqual(
            error([.connect: "psk", .pskFile: "/k"]),
            "parameter \"TLSPSKFile\" or \"--tls-psk-file\" is defined, but neither \"TLSPSKIdentity\" nor \"--tls-psk-identity\" is defined")
        XCTAssertEqual(
            error([.connect: "psk", .pskIdentity: "PSK 001"]),
            "parameter \"TLSPSKIdentity\" or \"--tls-psk-identity\" is defined, but neither \"TLSPSKFile\" nor \"--tls-psk-file\" is defined")
        XCTAssertEqual(
            error([.connect: "psk"]),
            "parameter \"TLSConnect\" or \"--tls-connect\" value requires \"TLSPSKFile\" or \"--tls-psk-file\", but neither of them is defined")
        XCTAssertEqual(
            error([.pskIdentity: "PSK 001", .pskFile: "/k"]),
            "parameter \"TLSPSKFile\" or \"--tls-psk-file\" is defined, but neither \"TLSConnect\" nor \"--tls-connect\" is defined")
        XCTAssertEqual(
            error([.connect: "cert"]),
            "parameter \"TLSConnect\" or \"--tls-connect\" value requires \"TLSCertFile\" or \"--tls-cert-file\", but neither of them is defined")
    }

    func testFlagsWinOneByOneAndTheConfigFillsTheRest() throws {
        let config = Parameters([.connect: "unencrypted", .pskIdentity: "from config", .pskFile: "/config.psk"])
        let flags = Parameters([.connect: "psk", .pskFile: "/flag.psk"])
        XCTAssertEqual(try flags.filled(from: config).mode(), .psk(identity: "from config", file: "/flag.psk"))
        XCTAssertEqual(try Parameters().filled(from: config).mode(), .unencrypted)
        // A config that alone would be refused is completed by a flag, as zabbix_sender does.
        let half = Parameters([.connect: "psk", .pskFile: "/config.psk"])
        XCTAssertEqual(
            try Parameters([.pskIdentity: "flag"]).filled(from: half).mode(), .psk(identity: "flag", file: "/config.psk"))
    }

    func testAgentConfigGivesItsParametersUnchecked() throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "agentd.conf", "ServerActive=127.0.0.1\nTLSConnect=psk\nTLSPSKIdentity=PSK 001\nTLSPSKFile=/etc/zabbix/agent.psk\nTLSAccept=bogus\n")
        let config = try AgentConfig.load(path: file)
        XCTAssertEqual(
            config.senderTLSParameters,
            Parameters([.connect: "psk", .pskIdentity: "PSK 001", .pskFile: "/etc/zabbix/agent.psk"]),
            "zabbix_sender reads no TLSAccept")
    }
}
