/// An item key as Zabbix writes one: `name` or `name[param,"quoted param",[array]]`
/// (`parse_item_key`, `get_param` in Zabbix's str.c).
public struct ItemKey: Equatable, Sendable {
    /// Zabbix's `ITEM_KEY_LEN` (2048 characters), counted in bytes here; longer keys are refused.
    public static let maximumBytes = 2048

    public var name: String
    /// Nil for `name`, `[""]` for `name[]`: Zabbix counts the empty brackets as one empty parameter.
    public var parameters: [String]?

    public init(name: String, parameters: [String]? = nil) {
        self.name = name
        self.parameters = parameters
    }

    /// Parses `text`; quoted parameters lose their quotes and `\"` escapes, an array parameter
    /// keeps its inner text (`[a,b]` gives `a,b`).
    public init(parsing text: String) throws(ItemKeyError) {
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maximumBytes else { throw .invalidFormat }
        var index = 0
        while index < bytes.count, isKeyNameByte(bytes[index]) { index += 1 }
        guard index > 0 else { throw .invalidFormat }
        name = String(decoding: bytes[..<index], as: UTF8.self)
        if index == bytes.count {
            parameters = nil
            return
        }
        guard bytes[index] == UInt8(ascii: "[") else { throw .invalidFormat }
        var reader = ParameterReader(bytes: bytes, index: index + 1)
        parameters = try reader.readList()
        guard reader.index == bytes.count else { throw .invalidFormat }
    }
}

/// Why an item key was refused; the texts are the agent's (`sysinfo.c`).
public enum ItemKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidFormat

    public var description: String { "Invalid item key format." }
}

/// `is_key_char`: letters, digits, `_`, `-` and `.`.
private func isKeyNameByte(_ byte: UInt8) -> Bool {
    isASCIIAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
}

private struct ParameterReader {
    let bytes: [UInt8]
    var index: Int

    /// Reads parameters up to and including the closing `]` of the key.
    mutating func readList() throws(ItemKeyError) -> [String] {
        var parameters: [String] = []
        while true {
            parameters.append(try readParameter())
            guard index < bytes.count else { throw .invalidFormat }
            let separator = bytes[index]
            index += 1
            if separator == UInt8(ascii: "]") { return parameters }
            guard separator == UInt8(ascii: ",") else { throw .invalidFormat }
        }
    }

    /// One parameter, leaving `index` at the `,` or `]` after it.
    mutating func readParameter() throws(ItemKeyError) -> String {
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
        guard index < bytes.count else { throw .invalidFormat }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            let value = try readQuoted()
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
            return value
        case UInt8(ascii: "["):
            return try readArray()
        default:
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: ","), bytes[index] != UInt8(ascii: "]") { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
    }

    /// `"..."` with `\"` as the only escape (a backslash before anything else stays).
    mutating func readQuoted() throws(ItemKeyError) -> String {
        index += 1
        var value: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") { return String(decoding: value, as: UTF8.self) }
            if byte == UInt8(ascii: "\\"), index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                value.append(UInt8(ascii: "\""))
                index += 1
            } else {
                value.append(byte)
            }
        }
        throw .invalidFormat
    }

    /// `[...]` one level deep (Zabbix allows no deeper nesting); quoted parts may hold `]`.
    mutating func readArray() throws(ItemKeyError) -> String {
        index += 1
        let start = index
        var inQuotes = false
        while index < bytes.count {
            let byte = bytes[index]
            if inQuotes {
                if byte == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "\"") {
                    index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inQuotes = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inQuotes = true
            } else if byte == UInt8(ascii: "[") {
                throw .invalidFormat
            } else if byte == UInt8(ascii: "]") {
                let inner = String(decoding: bytes[start..<index], as: UTF8.self)
                index += 1
                while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
                return inner
            }
            index += 1
        }
        throw .invalidFormat
    }
}
