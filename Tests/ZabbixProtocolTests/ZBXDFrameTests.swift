import CZlib
import TestSupport
import XCTest

@testable import ZabbixProtocol

final class ZBXDFrameTests: XCTestCase {
    private func decodeWhole(_ bytes: [UInt8], decoder: ZBXDDecoder = ZBXDDecoder()) throws -> ZBXDFrame {
        var decoder = decoder
        guard case .frame(let frame) = try decoder.decode(bytes) else {
            XCTFail("no frame from \(bytes.count) bytes")
            throw ZBXDError.missingDataLength
        }
        try decoder.finish()
        return frame
    }

    private func assertError(
        _ expected: ZBXDError, decoding bytes: [UInt8], decoder: ZBXDDecoder = ZBXDDecoder(),
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var decoder = decoder
        do {
            _ = try decoder.decode(bytes)
            try decoder.finish()
            XCTFail("expected \(expected)", file: file, line: line)
        } catch {
            XCTAssertEqual(error, expected, file: file, line: line)
        }
    }

    func testPassiveRequestMatchesTheDocumentedBytes() throws {
        let bytes = try ZBXDFrame(payload: "agent.ping").encoded()
        XCTAssertEqual(bytes, [0x5A, 0x42, 0x58, 0x44, 0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0] + Array("agent.ping".utf8))
    }

    func testPlainRoundTrip() throws {
        let frame = ZBXDFrame(payload: "{\"request\":\"sender data\",\"data\":[]}")
        XCTAssertEqual(try decodeWhole(try frame.encoded()), frame)
    }

    func testEmptyPayloadRoundTrip() throws {
        let frame = ZBXDFrame(payload: [UInt8]())
        let bytes = try frame.encoded()
        XCTAssertEqual(bytes.count, ZBXDHeader.standardByteCount)
        XCTAssertEqual(try decodeWhole(bytes), frame)
    }

    func testCompressedRoundTripSetsReservedToUncompressedSize() throws {
        let payload = Array(String(repeating: "processed: 1; failed: 0; ", count: 200).utf8)
        let frame = ZBXDFrame(payload: payload, flags: [.zabbixProtocol, .compressed])
        let bytes = try frame.encoded()
        XCTAssertEqual(bytes[4], 0x03)
        XCTAssertLessThan(bytes.count, payload.count / 4, "repetitive text should shrink")
        XCTAssertEqual(Array(bytes[9..<13]), [UInt8(payload.count & 0xFF), UInt8(payload.count >> 8), 0, 0])
        XCTAssertEqual(Array(bytes[13..<15]), [0x78, 0x9C], "a zlib stream header (RFC 1950), default level")
        XCTAssertEqual(try decodeWhole(bytes), frame)
    }

    func testLargeRoundTripUses8ByteLengths() throws {
        let frame = ZBXDFrame(payload: "large", flags: [.zabbixProtocol, .large])
        let bytes = try frame.encoded()
        XCTAssertEqual(bytes.count, ZBXDHeader.largeByteCount + 5)
        XCTAssertEqual(bytes[4], 0x05)
        XCTAssertEqual(Array(bytes[5..<21]), [5, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 8))
        XCTAssertEqual(try decodeWhole(bytes, decoder: ZBXDDecoder(acceptsLargeFrames: true)), frame)
        let compressed = ZBXDFrame(payload: "large and compressed", flags: [.zabbixProtocol, .large, .compressed])
        XCTAssertEqual(
            try decodeWhole(try compressed.encoded(), decoder: ZBXDDecoder(acceptsLargeFrames: true)), compressed)
    }

    func testLargeFlagIsAddedWhenALengthNeedsMoreThan32Bits() {
        XCTAssertFalse(ZBXDHeader(dataLength: 0xFFFF_FFFE, uncompressedLength: nil).flags.contains(.large))
        let long = ZBXDHeader(dataLength: 0xFFFF_FFFF, uncompressedLength: nil)
        XCTAssertEqual(long.flags, [.zabbixProtocol, .large])
        XCTAssertEqual(long.encoded.count, ZBXDHeader.largeByteCount)
        XCTAssertEqual(Array(long.encoded[5..<13]), [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        let inflatesLarge = ZBXDHeader(dataLength: 100, uncompressedLength: 0x1_0000_0000)
        XCTAssertEqual(inflatesLarge.flags, [.zabbixProtocol, .compressed, .large])
        XCTAssertEqual(Array(inflatesLarge.encoded[13..<21]), [0, 0, 0, 0, 1, 0, 0, 0])
    }

    func testFrameCompressedByZlibCompressDecodes() throws {
        // zlib's classic compress(), the call Zabbix's zbx_compress makes.
        let payload = Array("{\"response\":\"success\",\"info\":\"processed: 1; failed: 0; total: 1; seconds spent: 0.000042\"}".utf8)
        var compressedLength = compressBound(uLong(payload.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
        XCTAssertEqual(CZlib.compress(&compressed, &compressedLength, payload, uLong(payload.count)), Z_OK)
        compressed.removeSubrange(Int(compressedLength)...)
        let header = ZBXDHeader(dataLength: UInt64(compressed.count), uncompressedLength: UInt64(payload.count))
        let frame = try decodeWhole(header.encoded + compressed)
        XCTAssertEqual(frame.payload, payload)
        XCTAssertEqual(frame.flags, [.zabbixProtocol, .compressed])
    }

    func testFrameCompressedByPythonZlibAtLevel9Decodes() throws {
        // zlib.compress(payload, 9) from CPython: another zlib, another level.
        let compressed: [UInt8] = [
            0x78, 0xda, 0x1d, 0xc9, 0xc1, 0x0a, 0x80, 0x20, 0x10, 0x84, 0xe1, 0x57, 0x91, 0x3d, 0x47, 0x58, 0xdd, 0xf4,
            0x69, 0x44, 0x57, 0x10, 0x64, 0x57, 0x1c, 0x3b, 0x45, 0xef, 0x9e, 0x36, 0xa7, 0x9f, 0x6f, 0x1e, 0xea, 0x8c,
            0xa6, 0x02, 0x26, 0x47, 0xb8, 0x63, 0x64, 0x80, 0x36, 0x2a, 0x92, 0x75, 0x42, 0xeb, 0xba, 0x80, 0x93, 0x33,
            0xa7, 0x37, 0x39, 0x94, 0xba, 0xd2, 0x7a, 0x33, 0x74, 0x84, 0xfa, 0x23, 0x38, 0xaa, 0x24, 0x18, 0x34, 0x96,
            0x31, 0xbf, 0xdd, 0xce, 0x5d, 0x07, 0xbd, 0x1f, 0x63, 0x73, 0x1c, 0xd6,
        ]
        let expected = "{\"response\":\"success\",\"info\":\"processed: 2; failed: 0; total: 2; seconds spent: 0.000031\"}"
        let header = ZBXDHeader(dataLength: UInt64(compressed.count), uncompressedLength: 90)
        XCTAssertEqual(try decodeWhole(header.encoded + compressed).payload, Array(expected.utf8))
    }

    func testByteByByteFeedingGivesTheSameFrame() throws {
        for flags: ZBXDFlags in [.zabbixProtocol, [.zabbixProtocol, .compressed]] {
            let frame = ZBXDFrame(payload: "system.cpu.load[all,avg1]", flags: flags)
            var decoder = ZBXDDecoder()
            var decoded: ZBXDFrame?
            for byte in try frame.encoded() {
                XCTAssertNil(decoded, "bytes after the frame was complete")
                if case .frame(let complete) = try decoder.decode([byte]) { decoded = complete }
            }
            try decoder.finish()
            XCTAssertEqual(decoded, frame)
        }
    }

    func testCloseBeforeAnyByteIsNotAnError() throws {
        var decoder = ZBXDDecoder()
        XCTAssertEqual(try decoder.decode([]), .needMoreData)
        XCTAssertNoThrow(try decoder.finish())
    }

    func testEveryTruncationIsReportedOnClose() throws {
        let bytes = try ZBXDFrame(payload: "0123456789").encoded()
        for length in 1..<bytes.count {
            var decoder = ZBXDDecoder()
            XCTAssertEqual(try decoder.decode(Array(bytes[..<length])), .needMoreData)
            let expected: ZBXDError =
                switch length {
                case ..<4: .missingHeader
                case ..<13: .missingDataLength
                default: .shorterThanExpected(expected: 10, received: UInt64(length - 13))
                }
            XCTAssertThrowsError(try decoder.finish(), "cut at \(length)") { XCTAssertEqual($0 as? ZBXDError, expected) }
        }
    }

    func testBytesAfterTheFrameAreLongerThanExpected() throws {
        let bytes = try ZBXDFrame(payload: "abc").encoded()
        assertError(.longerThanExpected(expected: 3), decoding: bytes + [0x00])
        var decoder = ZBXDDecoder()
        guard case .frame = try decoder.decode(bytes) else { return XCTFail("no frame") }
        XCTAssertThrowsError(try decoder.decode([0x5A])) {
            XCTAssertEqual($0 as? ZBXDError, .longerThanExpected(expected: 3))
        }
    }

    func testGarbageHeadersAreRejectedAtTheFirstWrongByte() {
        assertError(.missingHeader, decoding: Array("GET / HTTP/1.1\r\n\r\n".utf8))
        assertError(.missingHeader, decoding: Array("ZBXC".utf8))
        assertError(.missingHeader, decoding: Array("{\"request\":\"sender data\"}".utf8))
        assertError(.missingHeader, decoding: [0x16, 0x03, 0x01, 0x02, 0x00])  // a TLS ClientHello
        var decoder = ZBXDDecoder()
        XCTAssertEqual(try decoder.decode(Array("ZB".utf8)), .needMoreData)
        XCTAssertThrowsError(try decoder.decode(Array("Y".utf8))) { XCTAssertEqual($0 as? ZBXDError, .missingHeader) }
        XCTAssertThrowsError(try decoder.decode(Array("XD".utf8)), "a failed decoder stays failed") {
            XCTAssertEqual($0 as? ZBXDError, .missingHeader)
        }
    }

    func testUnsupportedFlagsAreRejected() {
        for flags: UInt8 in [0x00, 0x02, 0x06, 0x08, 0x09, 0x11, 0x81, 0xFF] {
            assertError(.unsupportedProtocolVersion(flags), decoding: Array("ZBXD".utf8) + [flags, 0, 0, 0, 0, 0, 0, 0, 0])
        }
        // 0x04 only where the receiver allows it, as Zabbix's agent and sender do not.
        assertError(.unsupportedProtocolVersion(0x05), decoding: Array("ZBXD".utf8) + [0x05])
        assertError(.unsupportedProtocolVersion(0x07), decoding: Array("ZBXD".utf8) + [0x07])
        var decoder = ZBXDDecoder(acceptsLargeFrames: true)
        XCTAssertEqual(try decoder.decode(Array("ZBXD".utf8) + [0x05]), .needMoreData)
    }

    func testHugeDeclaredLengthIsRefusedWithoutAllocating() throws {
        let cases: [(ZBXDHeader, ZBXDError)] = [
            (
                ZBXDHeader(flags: .zabbixProtocol, dataLength: 0xFFFF_FFFF, reservedLength: 0),
                .exceedsMaximumSize(size: 0xFFFF_FFFF, maximum: ZBXDDecoder.defaultMaximumSize)
            ),
            (
                ZBXDHeader(flags: [.zabbixProtocol, .large], dataLength: UInt64.max, reservedLength: 0),
                .exceedsMaximumSize(size: UInt64.max, maximum: ZBXDDecoder.defaultMaximumSize)
            ),
            (
                ZBXDHeader(flags: .zabbixProtocol, dataLength: ZBXDDecoder.defaultMaximumSize + 1, reservedLength: 0),
                .exceedsMaximumSize(size: ZBXDDecoder.defaultMaximumSize + 1, maximum: ZBXDDecoder.defaultMaximumSize)
            ),
            (
                ZBXDHeader(flags: [.zabbixProtocol, .compressed], dataLength: 20, reservedLength: 0xFFFF_FFFF),
                .uncompressedSizeExceedsMaximum(size: 0xFFFF_FFFF, maximum: ZBXDDecoder.defaultMaximumSize)
            ),
            (
                ZBXDHeader(flags: [.zabbixProtocol, .compressed, .large], dataLength: 20, reservedLength: 1 << 62),
                .uncompressedSizeExceedsMaximum(size: 1 << 62, maximum: ZBXDDecoder.defaultMaximumSize)
            ),
        ]
        for (header, expected) in cases {
            var decoder = ZBXDDecoder(acceptsLargeFrames: true)
            XCTAssertThrowsError(try decoder.decode(header.encoded)) { XCTAssertEqual($0 as? ZBXDError, expected) }
            XCTAssertEqual(decoder.largestReservation, 0, "nothing may be reserved for a refused header")
        }
    }

    func testLengthAtTheLimitIsReservedExactly() throws {
        var decoder = ZBXDDecoder(maximumSize: 1000)
        XCTAssertEqual(try decoder.decode(ZBXDHeader(dataLength: 1000, uncompressedLength: nil).encoded), .needMoreData)
        XCTAssertEqual(decoder.largestReservation, 1000)
        XCTAssertThrowsError(try decoder.finish()) {
            XCTAssertEqual($0 as? ZBXDError, .shorterThanExpected(expected: 1000, received: 0))
        }
    }

    func testCompressedFrameWithWrongDeclaredSizesOrData() throws {
        let payload = Array("processed: 1; failed: 0; total: 1; seconds spent: 0.000042".utf8)
        let compressed = try Zlib.compress(payload)
        func frame(reserved: Int, body: [UInt8] = compressed) -> [UInt8] {
            ZBXDHeader(dataLength: UInt64(body.count), uncompressedLength: UInt64(reserved)).encoded + body
        }
        assertError(
            .uncompressedSizeLessThanExpected(expected: UInt64(payload.count + 5), actual: UInt64(payload.count)),
            decoding: frame(reserved: payload.count + 5))
        assertError(.cannotUncompress(reason: "buffer error"), decoding: frame(reserved: payload.count - 1))
        var corrupted = compressed
        corrupted[0] = 0x00
        assertError(.cannotUncompress(reason: "data error"), decoding: frame(reserved: payload.count, body: corrupted))
        // Raw deflate (no zlib header and checksum) is not what Zabbix sends and fails as it does there.
        let rawDeflate = Array(compressed[2..<(compressed.count - 4)])
        assertError(.cannotUncompress(reason: "data error"), decoding: frame(reserved: payload.count, body: rawDeflate))
        assertError(.cannotUncompress(reason: "data error"), decoding: frame(reserved: 0, body: []))
        let emptyStream = try Zlib.compress([])
        XCTAssertEqual(try decodeWhole(frame(reserved: 0, body: emptyStream)).payload, [])
    }

    func testErrorTextsUseZabbixWording() {
        XCTAssertEqual(ZBXDError.missingHeader.description, "message is missing header")
        XCTAssertEqual(
            ZBXDError.unsupportedProtocolVersion(8).description, "message is using unsupported protocol version \"8\"")
        XCTAssertEqual(
            ZBXDError.exceedsMaximumSize(size: 5, maximum: 4).description, "message size 5 exceeds the maximum size 4 bytes")
        XCTAssertEqual(
            ZBXDError.shorterThanExpected(expected: 10, received: 3).description,
            "message is shorter than expected 10 bytes (received 3)")
        XCTAssertEqual(ZBXDError.cannotUncompress(reason: "data error").description, "cannot uncompress data: data error")
        XCTAssertTrue(
            ZBXDError.uncompressedSizeLessThanExpected(expected: 2, actual: 1).description.hasPrefix(
                "size of uncompressed data is less than expected"))
    }
}
