import TestSupport
import XCTest

@testable import ZabbixProtocol

/// Random and mutated inputs through the frame decoder: it must never crash, never reserve more
/// than its limit, and give back exactly what was encoded. Seeded, so a failure names its replay.
final class ZBXDDecoderFuzzTests: XCTestCase {
    private static let seed: UInt64 = 0x5A42_5844_0001
    private static let iterations = 120_000
    private static let timeBudgetSeconds = 120.0
    /// Small, so mutated length fields often land on both sides of it.
    private static let limit: UInt64 = 4096

    func testRandomAndMutatedInputs() throws {
        var generator = SeededGenerator(seed: Self.seed)
        let started = monotonicSeconds()
        var counts = (frames: 0, errors: 0, open: 0)
        for iteration in 0..<Self.iterations {
            guard monotonicSeconds() - started < Self.timeBudgetSeconds else {
                return XCTFail("time budget spent after \(iteration) of \(Self.iterations) inputs")
            }
            let input = try makeInput(iteration: iteration, using: &generator)
            var decoder = ZBXDDecoder(maximumSize: Self.limit, acceptsLargeFrames: Bool.random(using: &generator))
            var outcome = "open"
            do {
                var rest = input[...]
                while !rest.isEmpty {
                    let chunk = rest.prefix(Int.random(in: 1...64, using: &generator))
                    rest = rest.dropFirst(chunk.count)
                    if case .frame(let frame) = try decoder.decode(chunk) {
                        outcome = "frame"
                        XCTAssertLessThanOrEqual(UInt64(frame.payload.count), Self.limit)
                    }
                }
                try decoder.finish()
            } catch {
                outcome = "error"
            }
            XCTAssertLessThanOrEqual(
                UInt64(decoder.largestReservation), Self.limit,
                "seed \(Self.seed) iteration \(iteration) reserved \(decoder.largestReservation)")
            switch outcome {
            case "frame": counts.frames += 1
            case "error": counts.errors += 1
            default: counts.open += 1
            }
        }
        let seconds = monotonicSeconds() - started
        print("fuzz: \(Self.iterations) inputs in \(seconds) s: \(counts.frames) frames, \(counts.errors) errors, \(counts.open) clean closes")
        XCTAssertGreaterThan(counts.frames, Self.iterations / 10, "mutations should leave many frames intact")
        XCTAssertGreaterThan(counts.errors, Self.iterations / 10, "mutations should break many frames")
    }

    func testDecodeOfEncodeIsIdentity() throws {
        var generator = SeededGenerator(seed: Self.seed ^ 0xFFFF)
        let started = monotonicSeconds()
        for iteration in 0..<20_000 {
            guard monotonicSeconds() - started < Self.timeBudgetSeconds else { return XCTFail("time budget spent") }
            let frame = randomFrame(using: &generator)
            let bytes = try frame.encoded()
            var decoder = ZBXDDecoder(maximumSize: Self.limit, acceptsLargeFrames: true)
            var decoded: ZBXDFrame?
            var rest = bytes[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(Int.random(in: 1...(bytes.count), using: &generator))
                rest = rest.dropFirst(chunk.count)
                if case .frame(let complete) = try decoder.decode(chunk) { decoded = complete }
            }
            try decoder.finish()
            XCTAssertEqual(decoded, frame, "seed \(Self.seed ^ 0xFFFF) iteration \(iteration)")
        }
    }

    /// The reply and request parsers run on whatever a peer sends; mutated JSON must only ever throw.
    func testMutatedJSONOnlyThrows() throws {
        var generator = SeededGenerator(seed: Self.seed ^ 0x4A53)
        let seeds = [
            TrapperResponse(status: .success, tally: ProcessingTally(processed: 1, failed: 2, total: 3, secondsSpent: 0.5))
                .encodedJSON(),
            try SenderDataRequest(
                values: [SenderValue(host: "h\u{1}", key: "k[\"a\"]", value: "ü😀\n", clock: 5, ns: 6, id: 7)],
                session: String(repeating: "a", count: 32)
            ).encodedJSON(),
            Array("[[[[{\"a\":[1.5e3,-0,true,null,\"\\ud83d\\ude00\"]}]]]]".utf8),
        ]
        let alphabet = Array("{}[]\":,\\u0123456789abcdefE.+-tfn \t\r\n".utf8) + [0x00, 0x1F, 0x7F, 0xC3, 0xA9, 0xED, 0xA0, 0xFF]
        let started = monotonicSeconds()
        var parsed = 0
        for iteration in 0..<50_000 {
            guard monotonicSeconds() - started < Self.timeBudgetSeconds else { return XCTFail("time budget spent") }
            var bytes = seeds[iteration % seeds.count]
            for _ in 0..<Int.random(in: 1...4, using: &generator) where !bytes.isEmpty {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: index)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: index)
                }
            }
            if (try? TrapperResponse(json: bytes[...])) != nil { parsed += 1 }
            if (try? SenderDataRequest(json: bytes[...])) != nil { parsed += 1 }
        }
        XCTAssertGreaterThan(parsed, 0, "some mutations stay valid")
    }

    private func randomFrame(using generator: inout SeededGenerator) -> ZBXDFrame {
        var flags: ZBXDFlags = .zabbixProtocol
        if Bool.random(using: &generator) { flags.insert(.compressed) }
        if Int.random(in: 0..<4, using: &generator) == 0 { flags.insert(.large) }
        let count = Int.random(in: 0...600, using: &generator)
        // Half text-like (compressible), half uniform noise.
        let payload =
            Bool.random(using: &generator)
            ? (0..<count).map { _ in UInt8.random(in: 0x20...0x7A, using: &generator) & 0xF7 }
            : randomBytes(count, using: &generator)
        return ZBXDFrame(payload: payload, flags: flags)
    }

    private func makeInput(iteration: Int, using generator: inout SeededGenerator) throws -> [UInt8] {
        switch iteration % 4 {
        case 0:
            // Pure noise, sometimes behind a valid magic so the length and flag paths are reached.
            let noise = randomBytes(Int.random(in: 0...40, using: &generator), using: &generator)
            return Bool.random(using: &generator) ? Array("ZBXD".utf8) + noise : noise
        default:
            var bytes = try randomFrame(using: &generator).encoded()
            mutate(&bytes, using: &generator)
            return bytes
        }
    }

    private func mutate(_ bytes: inout [UInt8], using generator: inout SeededGenerator) {
        for _ in 0..<Int.random(in: 0...3, using: &generator) {
            let headerEnd = min(bytes.count, 21)
            switch Int.random(in: 0..<6, using: &generator) {
            case 0 where !bytes.isEmpty:
                // Flip a bit, mostly in the header where the decisions are.
                let index = Bool.random(using: &generator) ? Int.random(in: 0..<headerEnd, using: &generator)
                    : Int.random(in: 0..<bytes.count, using: &generator)
                bytes[index] ^= 1 << UInt8.random(in: 0...7, using: &generator)
            case 1:
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &generator))
            case 2:
                bytes.append(contentsOf: randomBytes(Int.random(in: 1...8, using: &generator), using: &generator))
            case 3 where bytes.count >= 13:
                // Overwrite a length field with an extreme or nearby value.
                let field = Bool.random(using: &generator) ? 5 : 9
                let value: UInt32 = [0, 1, UInt32(Self.limit), UInt32(Self.limit) + 1, .max, .random(in: 0...UInt32.max, using: &generator)]
                    .randomElement(using: &generator)!
                for offset in 0..<4 { bytes[field + offset] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(offset))) }
            case 4 where bytes.count > 4:
                bytes[4] = UInt8.random(in: 0...8, using: &generator)
            default:
                if !bytes.isEmpty {
                    let index = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[index] = UInt8.random(in: 0...255, using: &generator)
                }
            }
        }
    }
}
