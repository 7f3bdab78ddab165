import XCTest
import ZabbixProtocol
@testable import ZabbixPush

final class PushPiecesTests: XCTestCase {
    func testTicksAreMultiplesOfTheIntervalStrictlyAfterNow() {
        let minute = PushSchedule(intervalNanoseconds: 60_000_000_000)
        XCTAssertEqual(minute.nextTick(after: 1_700_000_000_000_000_000), 1_700_000_040_000_000_000)
        XCTAssertEqual(minute.nextTick(after: 1_700_000_040_000_000_000), 1_700_000_100_000_000_000, "on a tick: the next one")
        let fast = PushSchedule(intervalNanoseconds: 250_000_000)
        XCTAssertEqual(fast.nextTick(after: 1_000_000_001), 1_250_000_000)
    }

    func testBackoffDoublesWithJitterUpToTheCap() {
        var backoff = RetryBackoff(baseNanoseconds: 1_000, capNanoseconds: 16_000)
        var random = SystemRandomNumberGenerator()
        let bounds: [Int64] = [1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000]
        for bound in bounds {
            let delay = backoff.nextDelay(using: &random)
            XCTAssert((bound / 2...bound).contains(delay), "\(delay) outside \(bound / 2)...\(bound)")
        }
        backoff.reset()
        XCTAssertLessThanOrEqual(backoff.nextDelay(using: &random), 1_000)
        for _ in 0..<100 { _ = backoff.nextDelay(using: &random) }  // no overflow after many failures
    }

    func testRefusalsAreLoggedOncePerCauseUntilTheyEnd() {
        var log = RefusalLog()
        XCTAssertTrue(log.refused("host a"))
        XCTAssertFalse(log.refused("host a"))
        XCTAssertTrue(log.refused("host b"))
        XCTAssertTrue(log.accepted("host a"))
        XCTAssertFalse(log.accepted("host a"))
        XCTAssertTrue(log.refused("host a"), "refused again after recovering: logged again")
    }

    func testBufferedValueRoundTrip() throws {
        let value = SenderValue(host: "web01", key: "sockets.stats", value: "{\"tcp\":{\"é\":1}}\n", clock: 1_700_000_000, ns: 999_999_999)
        XCTAssertEqual(try BufferedValue.decode(BufferedValue.encode(value)), value)
        let negative = SenderValue(host: "", key: "k", value: "", clock: -1, ns: 0)
        XCTAssertEqual(try BufferedValue.decode(BufferedValue.encode(negative)), negative)
    }

    func testBufferedValueRejectsDamage() {
        let bytes = BufferedValue.encode(SenderValue(host: "h", key: "k", value: "v", clock: 1, ns: 2))
        for cut in 0..<bytes.count {
            XCTAssertThrowsError(try BufferedValue.decode(Array(bytes[0..<cut])), "cut at \(cut)")
        }
        XCTAssertThrowsError(try BufferedValue.decode(bytes + [0]))
        var badVersion = bytes
        badVersion[0] = 9
        XCTAssertThrowsError(try BufferedValue.decode(badVersion))
        var badText = bytes
        badText[badText.count - 1] = 0xFF
        XCTAssertThrowsError(try BufferedValue.decode(badText))
    }
}
