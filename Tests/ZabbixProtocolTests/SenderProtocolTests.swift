import TestSupport
import XCTest

@testable import ZabbixProtocol

final class SenderProtocolTests: XCTestCase {
    private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    func testRequestIsCompactAndInZabbixSenderOrder() throws {
        let request = SenderDataRequest(
            values: [
                SenderValue(host: "web01", key: "app.stats", value: "{\"rps\":12}"),
                SenderValue(host: "web01", key: "app.up", value: "1", clock: 1_700_000_000, ns: 5),
            ],
            clock: 1_700_000_001, ns: 123_456_789)
        let json = try request.encodedJSON()
        XCTAssertEqual(json.first, UInt8(ascii: "{"), "the trapper takes the JSON path only for a leading '{'")
        XCTAssertEqual(
            text(json),
            #"{"request":"sender data","data":[{"host":"web01","key":"app.stats","value":"{\"rps\":12}"},"#
                + #"{"host":"web01","key":"app.up","value":"1","clock":1700000000,"ns":5}],"clock":1700000001,"ns":123456789}"#)
        XCTAssertEqual(try request.frame().flags, .zabbixProtocol, "zabbix_sender never compresses")
    }

    func testSessionAndRowIdsAsTheActiveAgentSendsThem() throws {
        let session = "6b0e3c0f4a3d2f1e9c8b7a6d5e4f3a2b"
        let request = SenderDataRequest(
            values: [SenderValue(host: "h", key: "k", value: "v", clock: 1, ns: 2, id: 1)], session: session)
        XCTAssertEqual(
            text(try request.encodedJSON()),
            #"{"request":"sender data","session":"6b0e3c0f4a3d2f1e9c8b7a6d5e4f3a2b","data":[{"host":"h","key":"k","value":"v","clock":1,"ns":2,"id":1}]}"#
        )
        XCTAssertEqual(try SenderDataRequest(json: try request.encodedJSON()[...]), request)
    }

    func testStringsAreEscapedIncludingControlCharactersAndNonASCII() throws {
        let value = "quote\" backslash\\ slash/ nl\n cr\r tab\t bell\u{07} nul\u{00} del\u{7F} ü € 😀"
        let json = try SenderDataRequest(values: [SenderValue(host: "h", key: "k[\"a\",b]", value: value)]).encodedJSON()
        XCTAssertTrue(
            text(json).contains(
                #""value":"quote\" backslash\\ slash/ nl\n cr\r tab\t bell\u0007 nul\u0000 del"# + "\u{7F} ü € 😀\""))
        XCTAssertTrue(text(json).contains(#""key":"k[\"a\",b]""#))
        let decoded = try SenderDataRequest(json: json[...])
        XCTAssertEqual(decoded.values.first?.value, value)
        XCTAssertEqual(decoded.values.first?.key, "k[\"a\",b]")
    }

    func testRequestFieldsTheServerWouldRejectAreRefused() {
        XCTAssertThrowsError(try SenderDataRequest(values: [], session: "short").encodedJSON()) {
            XCTAssertEqual($0 as? SenderProtocolError, .invalidSessionTokenLength(5))
            XCTAssertEqual(($0 as? SenderProtocolError)?.description, "invalid session token length 5")
        }
        XCTAssertThrowsError(
            try SenderDataRequest(values: [SenderValue(host: "h", key: "k", value: "v", clock: 1 << 31)]).encodedJSON())
        XCTAssertThrowsError(
            try SenderDataRequest(values: [SenderValue(host: "h", key: "k", value: "v", clock: 1, ns: 1_000_000_000)])
                .encodedJSON())
        XCTAssertThrowsError(try SenderDataRequest(values: [], clock: -1).encodedJSON())
    }

    func testRequestDecodingFollowsTheTrapper() throws {
        let values = try SenderDataRequest(
            json: Array(#"{"request":"sender data","data":[{"host":"h","key":"k","value":12.5},{"host":"h","key":"n","value":null},{"host":"h","key":"b","value":true}]}"#.utf8)[...]
        ).values
        XCTAssertEqual(values.map(\.value), ["12.5", "", "true"])
        let failures: [(String, SenderProtocolError)] = [
            (#" {"request":"sender data","data":[]}"#, .notTrapperJSON),
            (#"{"request":"agent data","data":[]}"#, .unknownRequest("agent data")),
            (#"{"request":"sender data"}"#, .missingField("data")),
            (#"{"data":[]}"#, .missingField("request")),
            (#"{"request":"sender data","data":[{"key":"k","value":"v"}]}"#, .missingField("data[0].host")),
            (
                #"{"request":"sender data","data":[{"host":"h","key":"k","value":{"a":1}}]}"#,
                .invalidField("data[0].value", reason: "not a JSON primitive")
            ),
        ]
        for (json, expected) in failures {
            XCTAssertThrowsError(try SenderDataRequest(json: Array(json.utf8)[...]), json) {
                XCTAssertEqual($0 as? SenderProtocolError, expected)
            }
        }
    }

    func testSuccessResponseWithTally() throws {
        let response = try TrapperResponse(
            json: Array(#"{"response":"success","info":"processed: 2; failed: 0; total: 2; seconds spent: 0.000123"}"#.utf8)[...])
        XCTAssertEqual(response.status, .success)
        XCTAssertEqual(response.tally, ProcessingTally(processed: 2, failed: 0, total: 2, secondsSpent: 0.000123))
    }

    func testPartialSuccessCountsFailures() throws {
        let response = try TrapperResponse(
            json: Array(#"{"response":"success","info":"processed: 1; failed: 1; total: 2; seconds spent: 0.000050"}"#.utf8)[...])
        XCTAssertEqual(response.tally?.failed, 1)
        XCTAssertEqual(response.tally?.processed, 1)
    }

    func testFailedResponseKeepsArbitraryInfo() throws {
        let response = try TrapperResponse(
            json: Array(#"{"response":"failed","info":"cannot parse as a valid JSON object: invalid object format"}"#.utf8)[...])
        XCTAssertEqual(response.status, .failed)
        XCTAssertEqual(response.info, "cannot parse as a valid JSON object: invalid object format")
        XCTAssertNil(response.tally)
        let bare = try TrapperResponse(json: Array(#"{"response":"failed"}"#.utf8)[...])
        XCTAssertEqual(bare, TrapperResponse(status: .failed))
        let versioned = try TrapperResponse(json: Array(#" { "version":"6.0.14", "response" : "success" } "#.utf8)[...])
        XCTAssertEqual(versioned.status, .success)
    }

    func testGarbageResponsesAreErrors() {
        let failures: [(String, SenderProtocolError)] = [
            ("OK", .notJSON(reason: "invalid JSON at byte 0: unexpected character")),
            ("", .notJSON(reason: "invalid JSON at byte 0: unexpected end of data")),
            (#"["success"]"#, .notJSON(reason: "not an object")),
            (#"{"info":"processed: 1"}"#, .missingField("response")),
            (#"{"response":true}"#, .invalidField("response", reason: "not a string")),
            (#"{"response":"ok"}"#, .unknownResponse("ok")),
            (#"{"response":"success","info":3}"#, .invalidField("info", reason: "not a string")),
            (#"{"response":"success"} trailing"#, .notJSON(reason: "invalid JSON at byte 23: unexpected data after the value")),
            (#"{"response":"success""#, .notJSON(reason: "invalid JSON at byte 21: expected ',' or '}'")),
        ]
        for (json, expected) in failures {
            XCTAssertThrowsError(try TrapperResponse(json: Array(json.utf8)[...]), json) {
                XCTAssertEqual($0 as? SenderProtocolError, expected)
            }
        }
        XCTAssertEqual(
            SenderProtocolError.missingField("response").description, "cannot find pair with name \"response\"")
    }

    func testResponseEncodingMatchesTheTrapper() throws {
        let tally = ProcessingTally(processed: 1, failed: 1, total: 2, secondsSpent: 0.0000504)
        XCTAssertEqual(tally.info, "processed: 1; failed: 1; total: 2; seconds spent: 0.000050")
        let response = TrapperResponse(status: .success, tally: tally)
        XCTAssertEqual(
            text(response.encodedJSON()),
            #"{"response":"success","info":"processed: 1; failed: 1; total: 2; seconds spent: 0.000050"}"#)
        XCTAssertEqual(text(TrapperResponse(status: .failed).encodedJSON()), #"{"response":"failed"}"#)
        XCTAssertEqual(try TrapperResponse(json: response.encodedJSON()[...]), response)
        XCTAssertEqual(ProcessingTally(processed: 0, failed: 0, total: 0, secondsSpent: 12.5).info.suffix(9), "12.500000")
    }

    func testTallyParsingIsExact() {
        XCTAssertNotNil(ProcessingTally(info: "processed: 0; failed: 0; total: 0; seconds spent: 0.000000"))
        for info in [
            "processed: 1; failed: 0; total: 1",
            "processed: -1; failed: 0; total: 1; seconds spent: 0.1",
            "processed: 1; failed: 0; total: 1; seconds spent: inf",
            "processed: 1; failed: 0; total: 1; seconds spent: 0.1 ",
            "processed: 1;failed: 0; total: 1; seconds spent: 0.1",
            "Processed: 1; failed: 0; total: 1; seconds spent: 0.1",
        ] {
            XCTAssertNil(ProcessingTally(info: info), info)
        }
    }

    func testJSONReaderIsStrict() {
        let invalid = [
            "{\"a\":1,}", "[1,]", "{'a':1}", "01", "1.", ".5", "-", "1e", "+1", "\"\\x\"", "\"\u{01}\"",
            "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "nul", "[1 2]", "{\"a\" 1}", "\"abc",
            String(repeating: "[", count: 65) + String(repeating: "]", count: 65),
        ]
        for text in invalid {
            XCTAssertThrowsError(try JSONValue.parse(Array(text.utf8)[...]), text)
        }
        XCTAssertThrowsError(try JSONValue.parse([0x22, 0xC3, 0x28, 0x22][...]), "invalid UTF-8 inside a string")
        XCTAssertEqual(try JSONValue.parse(Array("\"\\ud83d\\ude00 \\u00fc\\/\"".utf8)[...]), .string("😀 ü/"))
        XCTAssertEqual(try JSONValue.parse(Array("-0.5e+3".utf8)[...]), .number("-0.5e+3"))
        XCTAssertEqual(
            try JSONValue.parse(Array(" {\"a\":[true,false,null],\"a\":2} ".utf8)[...])["a"],
            .array([.bool(true), .bool(false), .null]), "the first of duplicate names wins, as in Zabbix")
        let deep = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        XCTAssertNoThrow(try JSONValue.parse(Array(deep.utf8)[...]))
    }
}
