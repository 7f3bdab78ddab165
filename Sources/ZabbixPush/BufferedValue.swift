import ByteCoding
import ZabbixProtocol

/// A sender value as the daemon keeps it in its on-disk buffer: little-endian fields, lengths
/// before strings, so that decoding checks every length against what is there.
///
///     version u8 | clock i64 | ns i32 | host u16+bytes | key u16+bytes | value u32+bytes
///
/// No id: the push buffer sends each value with its record's sequence number as id.
public enum BufferedValue {
    static let version: UInt8 = 1

    public struct DecodingError: Error, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { "buffered value: \(reason)" }
    }

    public static func encode(_ value: SenderValue) -> [UInt8] {
        var bytes: [UInt8] = [version]
        bytes.appendLittleEndian(Int64(value.clock ?? 0))
        bytes.appendLittleEndian(Int32(value.ns ?? 0))
        for (text, width) in [(value.host, 2), (value.key, 2), (value.value, 4)] {
            let utf8 = Array(text.utf8)
            if width == 2 { bytes.appendLittleEndian(UInt16(clamping: utf8.count)) } else { bytes.appendLittleEndian(UInt32(clamping: utf8.count)) }
            bytes += utf8.prefix(width == 2 ? Int(UInt16.max) : Int(UInt32.max))
        }
        return bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> SenderValue {
        var reader = Reader(bytes: bytes)
        guard try reader.integer(UInt8.self) == version else { throw DecodingError(reason: "unknown version \(bytes[0])") }
        let clock = try reader.integer(Int64.self)
        let ns = try reader.integer(Int32.self)
        let host = try reader.string(length: Int(try reader.integer(UInt16.self)))
        let key = try reader.string(length: Int(try reader.integer(UInt16.self)))
        let value = try reader.string(length: Int(try reader.integer(UInt32.self)))
        guard reader.offset == bytes.count else { throw DecodingError(reason: "\(bytes.count - reader.offset) trailing bytes") }
        return SenderValue(host: host, key: key, value: value, clock: Int(clock), ns: Int(ns))
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(DecodingError) -> T {
            let size = MemoryLayout<T>.size
            guard bytes.count - offset >= size else { throw DecodingError(reason: "truncated at byte \(offset)") }
            defer { offset += size }
            return bytes.loadLittleEndian(T.self, at: offset)
        }

        mutating func string(length: Int) throws(DecodingError) -> String {
            guard bytes.count - offset >= length else { throw DecodingError(reason: "truncated at byte \(offset)") }
            defer { offset += length }
            guard let text = String(validating: bytes[offset..<(offset + length)], as: UTF8.self) else {
                throw DecodingError(reason: "text at byte \(offset) is not UTF-8")
            }
            return text
        }
    }
}
