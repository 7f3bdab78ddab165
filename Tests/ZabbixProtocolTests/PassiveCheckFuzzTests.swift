import TestSupport
import XCTest

@testable import ZabbixProtocol

/// Whatever a peer sends to the passive listener goes through the frame decoder (with the agent's
/// limits), the request parser and the item key parser: they must never crash, and every request
/// that parses must be answerable. Seeded, so a failure names its replay.
final class PassiveCheckFuzzTests: XCTestCase {
    private static let seed: UInt64 = 0x5A42_5844_0010
    private static let iterations = 150_000
    private static let timeBudgetSeconds = 120.0
    /// The listener's frame limit in production is 64 KiB; small here so length mutations cross it.
    private static let limit: UInt64 = 2048

    private static let seeds: [String] = [
        "agent.ping",
        "sockets.stats[counts,ports]",
        #"sockets.stats["counts,ports","5432,80"]"#,
        #"k[[a,"]"],b, "c\"d" ]"#,
        #"{"request":"passive checks","data":[{"key":"agent.ping","timeout":3}]}"#,
        #"{"request":"passive checks","data":[{"key":"sockets.stats[\"kernel\"]","timeout":"30"},{"key":"x"}]}"#,
    ]

    func testFramedRequestsFromAHostilePeer() throws {
        var generator = SeededGenerator(seed: Self.seed)
        let alphabet = Array("{}[]\":,\\ ._-azAZ09\r\n".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF]
        let started = monotonicSeconds()
        var counts = (requests: 0, refusedRequests: 0, refusedFrames: 0, keys: 0, badKeys: 0)
        for iteration in 0..<Self.iterations {
            guard monotonicSeconds() - started < Self.timeBudgetSeconds else {
                return XCTFail("time budget spent after \(iteration) of \(Self.iterations) inputs")
            }
            var payload = Array(Self.seeds[iteration % Self.seeds.count].utf8)
            for _ in 0..<Int.random(in: 0...4, using: &generator) where !payload.isEmpty {
                let index = Int.random(in: 0..<payload.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: payload[index] = alphabet.randomElement(using: &generator)!
                case 1: payload.remove(at: index)
                default: payload.insert(alphabet.randomElement(using: &generator)!, at: index)
                }
            }
            var frame = try ZBXDFrame(payload: payload, flags: Bool.random(using: &generator) ? .compressed : []).encoded()
            // Now and then damage the frame itself: length fields, flags, truncation.
            if Int.random(in: 0..<4, using: &generator) == 0 {
                let index = Int.random(in: 0..<min(frame.count, 13), using: &generator)
                frame[index] = UInt8.random(in: 0...255, using: &generator)
            }
            if Int.random(in: 0..<8, using: &generator) == 0 {
                frame.removeLast(Int.random(in: 0...frame.count, using: &generator))
            }
            var decoder = ZBXDDecoder(maximumSize: Self.limit)
            var received: ZBXDFrame?
            do {
                var rest = frame[...]
                while !rest.isEmpty {
                    let chunk = rest.prefix(Int.random(in: 1...32, using: &generator))
                    rest = rest.dropFirst(chunk.count)
                    if case .frame(let complete) = try decoder.decode(chunk) { received = complete }
                }
                try decoder.finish()
            } catch {
                counts.refusedFrames += 1
                continue
            }
            XCTAssertLessThanOrEqual(decoder.largestReservation, Int(Self.limit))
            guard let received else { continue }
            let parsed = Result { () throws(PassiveCheckError) in try PassiveCheckRequest(payload: received.payload[...]) }
            switch parsed {
            case .success(let request):
                counts.requests += 1
                XCTAssertFalse(request.items.isEmpty)
                XCTAssertLessThanOrEqual(request.items.count, PassiveCheckRequest.maximumItems)
                var results: [PassiveCheckResult] = []
                for item in request.items {
                    if let key = try? ItemKey(parsing: item.key) {
                        counts.keys += 1
                        XCTAssertFalse(key.name.isEmpty)
                        results.append(.value(key.parameters?.joined(separator: "\u{1}") ?? key.name))
                    } else {
                        counts.badKeys += 1
                        results.append(.notSupported(ItemKeyError.invalidFormat.description))
                    }
                }
                let reply = PassiveCheckResult.replyPayload(results, form: request.form)
                if request.form == .json {
                    XCTAssertNoThrow(try JSONValue.parse(reply[...]), "seed \(Self.seed) iteration \(iteration)")
                }
            case .failure(let error):
                counts.refusedRequests += 1
                if error.form == .json { XCTAssertNoThrow(try JSONValue.parse(error.replyPayload[...])) }
            }
        }
        print("passive fuzz: \(Self.iterations) inputs in \(monotonicSeconds() - started) s: \(counts)")
        XCTAssertGreaterThan(counts.keys, Self.iterations / 10, "many mutations stay valid keys")
        XCTAssertGreaterThan(counts.badKeys, Self.iterations / 20, "many mutations break keys")
        XCTAssertGreaterThan(counts.refusedRequests, Self.iterations / 50, "many mutations break JSON requests")
        XCTAssertGreaterThan(counts.refusedFrames, Self.iterations / 20, "many damaged frames are refused")
    }
}
