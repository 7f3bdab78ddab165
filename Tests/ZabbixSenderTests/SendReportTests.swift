import XCTest
import ZabbixProtocol
@testable import ZabbixSender

/// `send`'s summary line and exit code, as zabbix_sender 6.0 decides them.
final class SendReportTests: XCTestCase {
    private let first = ZabbixAddress(host: "127.0.0.1", port: 10051)
    private let second = ZabbixAddress(host: "127.0.0.2", port: 10051)
    private let batch = SenderBatch(values: [SenderValue(host: "web01", key: "sockets.stats", value: "{}")], isCore: true)

    private func taken(by node: ZabbixAddress, failed: Int = 0) -> ClusterDelivery {
        let tally = ProcessingTally(processed: 1 - failed, failed: failed, total: 1, secondsSpent: 0.0001)
        return ClusterDelivery(
            node: node, result: .success(TrapperResponse(status: .success, tally: tally)), connectFailures: [],
            cluster: ServerCluster(nodes: [node]))
    }

    private func silent(_ node: ZabbixAddress) -> ClusterDelivery {
        ClusterDelivery(
            node: node, result: .failure(.timedOut(node, seconds: 1)), connectFailures: [], cluster: ServerCluster(nodes: [node]))
    }

    func testEveryDestinationTakingEverythingExitsZero() {
        var report = SendReport(host: "web01")
        report.add(batch, [taken(by: first), taken(by: second)])
        XCTAssertEqual(report.exitCode, 0)
        XCTAssertEqual(report.summary, "sent: 1; skipped: 0; total: 1", "values count once, not once per destination")
        XCTAssertEqual(report.replies.count, 2)
    }

    func testOneSilentDestinationOfTwoIsPartialSuccess() {
        var report = SendReport(host: "web01")
        report.add(batch, [silent(first), taken(by: second)])
        XCTAssertEqual(report.exitCode, 2)
        XCTAssertEqual(report.summary, "sent: 1; skipped: 0; total: 1")
        XCTAssertEqual(report.problems, ["error: no reply from 127.0.0.1:10051: timed out after 1 s"])
    }

    func testNoDestinationTakingTheDataExitsOne() {
        var report = SendReport(host: "web01")
        report.add(batch, [silent(first), silent(second)])
        XCTAssertEqual(report.exitCode, 1)
        XCTAssertEqual(report.summary, "sent: 0; skipped: 0; total: 1")
    }

    func testRefusedCoreValuesExitTwoAndRefusedExtrasOnlyReport() {
        var refused = SendReport(host: "web01")
        refused.add(batch, [taken(by: first, failed: 1)])
        XCTAssertEqual(refused.exitCode, 2)
        XCTAssertTrue(refused.problems[0].contains("check that host \"web01\" exists"), refused.problems[0])

        var extra = SendReport(host: "web01")
        extra.add(batch, [taken(by: first)])
        extra.add(SenderBatch(values: [SenderValue(host: "web01", key: "sock[CLOSING]", value: "0")], isCore: false), [taken(by: first, failed: 1)])
        XCTAssertEqual(extra.exitCode, 0)
        XCTAssertEqual(extra.summary, "sent: 2; skipped: 0; total: 2")
        XCTAssertTrue(extra.replies.last!.contains("the classic template has no such item"))
    }
}
