/// The value of an ASCII hex digit (either case), or nil.
public func hexDigitValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// Lowercase hex digits, indexed by value.
public let lowercaseHexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// At most `limit` characters of `bytes` for an error message: printable ASCII as is, anything
/// else as \xNN, and "..." when cut. A malformed file never floods a log.
public func excerpt<Bytes: Collection>(_ bytes: Bytes, limit: Int = 40) -> String where Bytes.Element == UInt8 {
    var text = ""
    for byte in bytes.prefix(limit) {
        if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
            text.unicodeScalars.append(Unicode.Scalar(byte))
        } else if byte == UInt8(ascii: "\\") {
            text += "\\\\"
        } else {
            text += "\\x"
            text.unicodeScalars.append(Unicode.Scalar(lowercaseHexDigits[Int(byte >> 4)]))
            text.unicodeScalars.append(Unicode.Scalar(lowercaseHexDigits[Int(byte & 0xF)]))
        }
    }
    return bytes.count > limit ? text + "..." : text
}
