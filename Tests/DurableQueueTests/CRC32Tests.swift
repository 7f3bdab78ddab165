import XCTest

@testable import DurableQueue

final class CRC32Tests: XCTestCase {
    func testKnownVectors() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        XCTAssertEqual(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
    }

    func testIncrementalUpdatesMatchOneShot() {
        let bytes = Array("123456789".utf8)
        var crc = CRC32()
        crc.update(bytes[..<4])
        crc.update(bytes[4...])
        XCTAssertEqual(crc.value, CRC32.checksum(bytes))
    }
}
