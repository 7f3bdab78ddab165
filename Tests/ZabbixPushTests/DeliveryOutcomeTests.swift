import XCTest
import ZabbixProtocol
import ZabbixSender
@testable import ZabbixPush

/// What each reply (or its absence) means for the buffer: acknowledge or keep, and what to log.
final class DeliveryOutcomeTests: XCTestCase {
    private let node = ZabbixAddress(host: "127.0.0.1", port: 10051)

    private func judge(_ result: Result<TrapperResponse, ZabbixSendError>, mayRepeat: Bool = false) -> DeliveryOutcome {
        DeliveryOutcome.judge(result, from: node, destination: "127.0.0.1:10051", mayRepeat: mayRepeat)
    }

    private func reply(failed: Int, total: Int) -> Result<TrapperResponse, ZabbixSendError> {
        .success(TrapperResponse(
            status: .success,
            tally: ProcessingTally(processed: total - failed, failed: failed, total: total, secondsSpent: 0.001)))
    }

    func testEverythingProcessedIsDelivered() {
        XCTAssertEqual(judge(reply(failed: 0, total: 3)), .delivered)
        XCTAssertEqual(judge(.success(TrapperResponse(status: .success, info: nil))), .delivered, "no tally: nothing refused")
        XCTAssertTrue(DeliveryOutcome.delivered.acknowledges)
    }

    func testFailedValuesAreARefusalUnlessTheyMayBeRepeats() {
        XCTAssertEqual(judge(reply(failed: 2, total: 3)), .refused(failed: 2, total: 3))
        XCTAssertEqual(judge(reply(failed: 2, total: 3), mayRepeat: true), .repeatsDropped(failed: 2, total: 3))
        XCTAssertTrue(DeliveryOutcome.refused(failed: 2, total: 3).acknowledges, "a refused value never blocks those behind it")
        XCTAssertTrue(DeliveryOutcome.repeatsDropped(failed: 2, total: 3).acknowledges)
    }

    func testNoReplyOrAFailedAnswerKeepsTheBatch() {
        let timedOut = judge(.failure(.timedOut(node, seconds: 3)))
        XCTAssertEqual(timedOut, .failed("no reply from 127.0.0.1:10051: timed out after 3 s"))
        XCTAssertFalse(timedOut.acknowledges)
        let cancelled = judge(.failure(.cancelled(node)))
        XCTAssertFalse(cancelled.acknowledges, "a send cut short by the shutdown deadline is sent again at the next start")
        let answeredFailed = judge(.success(TrapperResponse(status: .failed, info: "cannot parse as a valid JSON object")))
        XCTAssertEqual(answeredFailed, .failed("127.0.0.1:10051 answered failed: cannot parse as a valid JSON object"))
        XCTAssertFalse(answeredFailed.acknowledges)
    }

    func testSmallBuffersGetLimitsTheQueueAccepts() throws {
        for mebibytes in [2, 3, 4, 64, 1 << 20] {
            let limits = PushDaemon.queueLimits(BufferSettings(directory: "/x", maxBytes: mebibytes << 20, maxAgeSeconds: 3600))
            XCTAssertLessThanOrEqual(limits.segmentBytes * 2, limits.maxTotalBytes, "\(mebibytes) MiB")
            XCTAssertGreaterThanOrEqual(limits.maxRecordBytes, 1 << 20, "\(mebibytes) MiB: a stats document of up to 1 MiB fits")
        }
    }
}
