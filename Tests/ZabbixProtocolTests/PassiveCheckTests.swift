import XCTest

@testable import ZabbixProtocol

/// The passive-check request and reply codec, item keys and the `Server=` allow-list, against the
/// forms Zabbix 6.0 (plain key) and 7.0 (JSON) send and the bytes its agent answers with.
final class PassiveCheckTests: XCTestCase {
    func testPlainKeyLosesTrailingLineEndsOnly() throws {
        let request = try PassiveCheckRequest(payload: Array("sockets.stats[counts, 80]\r\n".utf8)[...])
        XCTAssertEqual(request, PassiveCheckRequest(form: .plain, items: [.init(key: "sockets.stats[counts, 80]")]))
        XCTAssertEqual(try PassiveCheckRequest(payload: Array(" agent.ping ".utf8)[...]).items.first?.key, " agent.ping ")
    }

    func testPlainKeyThatIsNotTextIsAnInvalidKey() {
        for payload: [UInt8] in [[0x61, 0x00, 0x62], [0xC3, 0x28], [0xFF]] {
            XCTAssertThrowsError(try PassiveCheckRequest(payload: payload[...])) { error in
                let refused = error as! PassiveCheckError
                XCTAssertEqual(refused.form, .plain)
                XCTAssertEqual(refused.replyPayload, Array("ZBX_NOTSUPPORTED\0Invalid item key format.".utf8))
            }
        }
    }

    func testJSONRequestOf70() throws {
        let text = #"{"request":"passive checks","data":[{"key":"agent.ping","timeout":3},{"key":"sockets.stats[\"counts\"]","timeout":"4"}]}"#
        let request = try PassiveCheckRequest(payload: Array(text.utf8)[...])
        XCTAssertEqual(request.form, .json)
        XCTAssertEqual(request.items, [.init(key: "agent.ping", timeoutSeconds: 3), .init(key: #"sockets.stats["counts"]"#, timeoutSeconds: 4)])
    }

    func testBadJSONRequestsGetATopLevelError() {
        let cases: [(String, String)] = [
            (#"{"request":"passive checks""#, "cannot parse request"),
            (#"{"data":[]}"#, "cannot find the \"request\" tag"),
            (#"{"request":"active checks","data":[{"key":"a"}]}"#, "unsupported request \"active checks\""),
            (#"{"request":"passive checks","data":[]}"#, "cannot find the \"data\" array"),
            (#"{"request":"passive checks","data":[{"timeout":3}]}"#, "cannot find the \"key\" tag"),
        ]
        for (text, reason) in cases {
            XCTAssertThrowsError(try PassiveCheckRequest(payload: Array(text.utf8)[...]), text) { error in
                let refused = error as! PassiveCheckError
                XCTAssertEqual(refused.form, .json)
                XCTAssertTrue(refused.reason.hasPrefix(reason), "\(text): \(refused.reason)")
                let reply = String(decoding: refused.replyPayload, as: UTF8.self)
                XCTAssertTrue(reply.hasPrefix(#"{"version":"7.0.0","variant":1,"error":""#), reply)
            }
        }
        let many = #"{"request":"passive checks","data":["# + Array(repeating: #"{"key":"a"}"#, count: 17).joined(separator: ",") + "]}"
        XCTAssertThrowsError(try PassiveCheckRequest(payload: Array(many.utf8)[...]))
    }

    func testPlainReplies() {
        XCTAssertEqual(PassiveCheckResult.replyPayload([.value("1")], form: .plain), Array("1".utf8))
        // 17 + strlen(reason) bytes, the NUL inside, none at the end.
        let notSupported = PassiveCheckResult.replyPayload([.notSupported("Unsupported item key.")], form: .plain)
        XCTAssertEqual(notSupported, Array("ZBX_NOTSUPPORTED".utf8) + [0] + Array("Unsupported item key.".utf8))
        XCTAssertEqual(notSupported.count, 17 + "Unsupported item key.".utf8.count)
        XCTAssertEqual(PassiveCheckResult.replyPayload([.notSupported("")], form: .plain), Array("ZBX_NOTSUPPORTED".utf8))
    }

    func testJSONReplies() {
        let reply = PassiveCheckResult.replyPayload([.value("{\"a\":1}"), .notSupported("Unsupported item key.")], form: .json)
        XCTAssertEqual(
            String(decoding: reply, as: UTF8.self),
            #"{"version":"7.0.0","variant":1,"data":[{"value":"{\"a\":1}"},{"error":"Unsupported item key."}]}"#)
        XCTAssertNoThrow(try JSONValue.parse(reply[...]))
    }

    func testItemKeys() throws {
        XCTAssertEqual(try ItemKey(parsing: "agent.ping"), ItemKey(name: "agent.ping"))
        XCTAssertEqual(try ItemKey(parsing: "agent.ping[]"), ItemKey(name: "agent.ping", parameters: [""]))
        XCTAssertEqual(try ItemKey(parsing: "k[a,b]"), ItemKey(name: "k", parameters: ["a", "b"]))
        XCTAssertEqual(try ItemKey(parsing: "k[ a ,  b]"), ItemKey(name: "k", parameters: ["a ", "b"]))
        XCTAssertEqual(try ItemKey(parsing: #"k["counts,ports", "5432,80" ,]"#), ItemKey(name: "k", parameters: ["counts,ports", "5432,80", ""]))
        XCTAssertEqual(try ItemKey(parsing: #"k["a\"b\c"]"#), ItemKey(name: "k", parameters: [#"a"b\c"#]))
        XCTAssertEqual(try ItemKey(parsing: #"k[[a,"]"],b]"#), ItemKey(name: "k", parameters: [#"a,"]""#, "b"]))
        for bad in ["", "[a]", "k[", "k[a", "k]", "k[a]x", #"k["a"b]"#, "k[[a,[b]]]", "k x", "k[\"a]", String(repeating: "k", count: 2049)] {
            XCTAssertThrowsError(try ItemKey(parsing: bad), bad) { XCTAssertEqual($0 as? ItemKeyError, .invalidFormat) }
        }
    }

    func testIPAddressBytes() {
        XCTAssertEqual(parseIPAddress("10.1.2.3"), [10, 1, 2, 3])
        XCTAssertEqual(parseIPAddress("::1"), [UInt8](repeating: 0, count: 15) + [1])
        XCTAssertEqual(parseIPAddress("2001:db8::ff00:42:8329"), [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0x42, 0x83, 0x29])
        XCTAssertEqual(parseIPAddress("::ffff:127.0.0.1"), [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 127, 0, 0, 1])
        XCTAssertEqual(parseIPAddress("1::"), [0, 1] + [UInt8](repeating: 0, count: 14))
        for bad in ["", "1.2.3", "1.2.3.256", "::1::", "12345::", "host", "1.2.3.4/8"] {
            XCTAssertNil(parseIPAddress(Substring(bad)), bad)
        }
    }

    func testAllowListMatchesAsZabbixDoes() throws {
        let list = try PeerAllowList(parsing: "127.0.0.1,10.20.0.0/16,2001:db8::/32,::ffff:192.0.2.7,zabbix.example.com")
        let v4 = { (text: String) in parseIPAddress(Substring(text))! }
        XCTAssertTrue(list.allows(v4("127.0.0.1")))
        XCTAssertTrue(list.allows(v4("::ffff:127.0.0.1")), "IPv4-mapped form of an IPv4 entry")
        XCTAssertTrue(list.allows(v4("::127.0.0.1")), "IPv4-compatible form of an IPv4 entry")
        XCTAssertFalse(list.allows(v4("127.0.0.2")))
        XCTAssertTrue(list.allows(v4("10.20.255.1")))
        XCTAssertFalse(list.allows(v4("10.21.0.1")))
        XCTAssertTrue(list.allows(v4("2001:db8:1::5")))
        XCTAssertFalse(list.allows(v4("2001:db9::5")))
        XCTAssertTrue(list.allows(v4("192.0.2.7")), "an IPv6-mapped entry matches its IPv4 peer")
        XCTAssertFalse(list.allows(v4("::1")))
        XCTAssertEqual(list.names, ["zabbix.example.com"])
        XCTAssertFalse(list.allows(v4("198.51.100.9")))
        XCTAssertTrue(list.allows(v4("198.51.100.9"), resolved: [v4("198.51.100.9")]), "a name's address")
        XCTAssertFalse(list.allows([1, 2, 3]), "neither IPv4 nor IPv6")

        XCTAssertTrue(try PeerAllowList(parsing: "0.0.0.0/0").allows(v4("203.0.113.5")))
        XCTAssertFalse(try PeerAllowList(parsing: "0.0.0.0/0").allows(v4("2001:db8::1")))
        XCTAssertTrue(try PeerAllowList(parsing: "::/0").allows(v4("203.0.113.5")))
        XCTAssertTrue(try PeerAllowList(parsing: "::/0").allows(v4("2001:db8::1")))
        XCTAssertTrue(try PeerAllowList(parsing: "10.0.0.0/31").allows(v4("10.0.0.1")))
        XCTAssertFalse(try PeerAllowList(parsing: "10.0.0.0/31").allows(v4("10.0.0.2")))
    }

    func testAllowListRefusesWhatZabbixRefuses() {
        for bad in ["", "a,,b", "10.0.0.0/33", "::/129", "10.0.0.0/", "/8", "10.0.0.0/8/8", "host name", "-host", "1.2.3.4/+8", "a..b"] {
            XCTAssertThrowsError(try PeerAllowList(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".hasPrefix("invalid entry in \"Server\" configuration parameter: \""), "\(error)")
            }
        }
    }
}
