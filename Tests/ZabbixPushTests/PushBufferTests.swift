import Foundation
import Logging
import XCTest
import ZabbixProtocol
@testable import ZabbixPush

/// The daemon's buffer: the sender session kept with it, ids that are sequence numbers, and
/// per-host reads that skip (and move past) other hosts' values.
final class PushBufferTests: XCTestCase {
    private func directory() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("push-buffer-\(UUID().uuidString)").path
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func open(_ path: String) throws -> PushBuffer {
        try PushBuffer(
            directory: path, limits: PushDaemon.queueLimits(BufferSettings(directory: path, maxBytes: 4 << 20, maxAgeSeconds: 3600)),
            consumers: ["server a", "server b"], logger: Logger(label: "test"))
    }

    /// Now: the buffer drops values older than its age bound (an hour here).
    private let now = Int64(Date().timeIntervalSince1970)

    private func value(_ host: String, _ text: String) -> SenderValue {
        SenderValue(host: host, key: "sockets.stats", value: text, clock: Int(now), ns: 0)
    }

    func testSessionSurvivesReopeningAndIdsAreSequenceNumbers() async throws {
        let path = directory()
        let first = try open(path)
        let session = await first.session
        XCTAssertEqual(session.count, 32)
        XCTAssertTrue(session.allSatisfy(\.isHexDigit))
        try await first.append([value("web", "1"), value("web", "2")], timestamp: now)
        let batch = try await first.read(consumer: "server a", host: "web", limit: 10)
        XCTAssertEqual(batch.values.map(\.id), [1, 2])
        XCTAssertEqual(batch.values.map(\.value), ["1", "2"])
        XCTAssertEqual(batch.through, 2)
        try await first.acknowledge(consumer: "server a", through: 2)
        await first.close()

        let second = try open(path)
        let resumedSession = await second.session
        let resumedThrough = await second.resumedThrough
        XCTAssertEqual(resumedSession, session, "a restart continues the session, so the server can drop repeats")
        XCTAssertEqual(resumedThrough, 2, "ids up to here may have reached a server before")
        let forA = try await second.read(consumer: "server a", host: "web", limit: 10)
        XCTAssertEqual(forA.values, [], "acknowledged values are not read again")
        let forB = try await second.read(consumer: "server b", host: "web", limit: 10)
        XCTAssertEqual(forB.values.map(\.id), [1, 2], "each destination has its own position")
        await second.close()
    }

    func testReadsSkipOtherHostsAndMovePastThem() async throws {
        let buffer = try open(directory())
        try await buffer.append([value("web", "w1"), value("db", "d1")], timestamp: now)
        try await buffer.append([value("db", "d2")], timestamp: now)
        try await buffer.append([value("web", "w2")], timestamp: now)
        let web = try await buffer.read(consumer: "server a", host: "web", limit: 1)
        XCTAssertEqual(web.values.map(\.value), ["w1"])
        XCTAssertEqual(web.through, 1)
        try await buffer.acknowledge(consumer: "server a", through: 1)
        let next = try await buffer.read(consumer: "server a", host: "web", limit: 10)
        XCTAssertEqual(next.values.map(\.value), ["w2"], "db's two values are passed over")
        XCTAssertEqual(next.values.map(\.id), [4])
        XCTAssertEqual(next.through, 4)
        let db = try await buffer.read(consumer: "server b", host: "db", limit: 10)
        XCTAssertEqual(db.values.map(\.value), ["d1", "d2"])
        await buffer.close()
    }
}
