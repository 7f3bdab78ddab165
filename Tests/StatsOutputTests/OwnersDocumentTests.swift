import Foundation
import SocketStats
import StatsOutput
import XCTest
@testable import ZabbixProtocol

/// Pins the `owners --format json` document.
final class OwnersDocumentTests: XCTestCase {
    func testKeysOrderAndEscaping() throws {
        let owners = SocketOwners(
            owners: [.init(pid: 42, command: "we\"ird", cgroup: "nginx.service", sockets: 5)],
            matched: 7, orphaned: 1, unowned: 1, notFound: 0, processesScanned: 3, fullScan: false, problems: ["a note"])
        let json = OwnersDocument.json([(netns: "host", owners: owners)], problems: ["skipped x"])
        XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(json.utf8)))
        let doc = try XCTUnwrap(JSONValue.reading(json))
        XCTAssertEqual(doc.keys, ["netns", "problems"])
        let host = try XCTUnwrap(doc["netns"]?["host"])
        XCTAssertEqual(host.keys, ["matched", "orphaned", "unowned", "not_found", "processes_scanned", "full_scan", "owners", "problems"])
        let first = try XCTUnwrap(host["owners"]?.elements.first)
        XCTAssertEqual(first.keys, ["pid", "command", "cgroup", "sockets"])
        XCTAssertEqual(first["command"]?.text, "we\"ird")
        XCTAssertEqual(first["sockets"]?.uint, 5)
        let text = OwnersDocument.text([(netns: "host", owners: owners)], problems: [])
        XCTAssertTrue(text.contains("1 orphaned"), text)
        XCTAssertTrue(text.contains("42"), text)
    }
}
