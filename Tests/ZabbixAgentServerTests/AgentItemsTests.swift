import NIOCore
import XCTest
import ZabbixProtocol

@testable import ZabbixAgentServer

/// The keys the endpoint answers, and the log limiter that keeps a flood of refusals to one line.
final class AgentItemsTests: XCTestCase {
    func testAgentKeysAndOwnerKeysInZabbixWords() {
        let seen = LockedParameters()
        let items = AgentItems(hostname: "web 01", version: "1.1.0", handlers: [
            "sockets.stats": { parameters in
                seen.record(parameters)
                return .value("{}")
            },
        ])
        XCTAssertEqual(items.answer("agent.ping"), .value("1"))
        XCTAssertEqual(items.answer("agent.version"), .value("1.1.0"))
        XCTAssertEqual(items.answer("agent.hostname"), .value("web 01"))
        XCTAssertEqual(items.answer("agent.ping[]"), .notSupported("Item does not allow parameters."))
        XCTAssertEqual(items.answer("agent.hostname[x]"), .notSupported("Item does not allow parameters."))
        XCTAssertEqual(items.answer("system.cpu.load[all,avg1]"), .notSupported("Unsupported item key."))
        XCTAssertEqual(items.answer("agent.ping "), .notSupported("Invalid item key format."))
        XCTAssertEqual(items.answer(""), .notSupported("Invalid item key format."))
        XCTAssertEqual(items.answer(#"sockets.stats["counts,ports",]"#), .value("{}"))
        XCTAssertEqual(items.answer("sockets.stats"), .value("{}"))
        XCTAssertEqual(seen.all, [["counts,ports", ""], nil])
    }

    func testLogLimiterLetsOneLinePerIntervalThroughAndCountsTheRest() {
        let limiter = LogLimiter(interval: .seconds(10))
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        XCTAssertEqual(limiter.admit("refused", "peer 1", now: start), "peer 1")
        for second in 1...9 {
            XCTAssertNil(limiter.admit("refused", "peer \(second)", now: start + .seconds(Int64(second))))
        }
        XCTAssertEqual(limiter.admit("tls", "other kind", now: start + .seconds(1)), "other kind", "kinds are apart")
        XCTAssertEqual(
            limiter.admit("refused", "peer 10", now: start + .seconds(10)),
            "peer 10 (and 9 more like it since the last such line)")
        XCTAssertEqual(limiter.admit("refused", "peer 11", now: start + .seconds(21)), "peer 11")
    }
}

/// What the handler was called with, from any thread.
private final class LockedParameters: @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [[String]?] = []

    func record(_ parameters: [String]?) {
        lock.lock()
        calls.append(parameters)
        lock.unlock()
    }

    var all: [[String]?] {
        lock.lock()
        defer { lock.unlock() }
        return calls
    }
}
