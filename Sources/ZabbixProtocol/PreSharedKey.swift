import ByteCoding
/// A TLS pre-shared key as Zabbix 6.0 configures one: `TLSPSKIdentity` and the key from the first
/// line of `TLSPSKFile` (`zbx_read_psk_file`, `zbx_check_psk_identity_len` in tls.c).
///
/// Its descriptions never show the key, so a `PreSharedKey` can be logged or dumped.
public struct PreSharedKey: Equatable, Sendable {
    /// `HOST_TLS_PSK_LEN_MIN`: 16 bytes.
    public static let minimumHexDigits = 32
    /// `HOST_TLS_PSK_LEN`: 256 bytes.
    public static let maximumHexDigits = 512
    /// `HOST_TLS_PSK_IDENTITY_LEN`: 128 UTF-8 characters of up to 4 bytes.
    public static let maximumIdentityBytes = 512

    public let identity: String
    public let key: [UInt8]

    /// Checks `identity` as Zabbix does and that `key` has 16 to 256 bytes.
    public init(identity: String, key: [UInt8]) throws(PSKError) {
        try Self.checkIdentity(Array(identity.utf8))
        let range = (Self.minimumHexDigits / 2)...(Self.maximumHexDigits / 2)
        guard range.contains(key.count) else { throw .keyLength(key.count) }
        self.identity = identity
        self.key = key
    }

    /// The key bytes of a `TLSPSKFile` whose contents are `contents`, as `zbx_read_psk_file` reads
    /// them: the first line up to CR, LF or NUL, 32 to 512 hex digits in pairs.
    public static func parseKeyFile(_ contents: [UInt8], path: String) throws(PSKError) -> [UInt8] {
        guard !contents.isEmpty else { throw .emptyFile(path: path) }
        // fgets with a buffer of HOST_TLS_PSK_LEN_MAX + 2, then buf[strcspn(buf, "\r\n")] = '\0' and strlen.
        let line = contents.prefix(maximumHexDigits + 2).prefix {
            $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: "\r") && $0 != 0
        }
        if line.isEmpty { throw .emptyKey(path: path) }
        if line.count < minimumHexDigits { throw .tooShort(path: path) }
        if line.count > maximumHexDigits { throw .tooLong(path: path) }
        guard line.count % 2 == 0 else { throw .invalid(path: path) }
        var key: [UInt8] = []
        key.reserveCapacity(line.count / 2)
        var high: UInt8?
        for byte in line {
            guard let nibble = hexDigitValue(byte) else { throw .invalid(path: path) }
            if let first = high {
                key.append(first << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return key
    }

    /// A `TLSPSKIdentity` must be UTF-8 (`zbx_is_utf8`) and at most 512 bytes.
    public static func checkIdentity(_ identity: [UInt8]) throws(PSKError) {
        guard !identity.isEmpty else { throw .identityEmpty }
        guard String(validating: identity, as: UTF8.self) != nil else { throw .identityNotUTF8 }
        guard identity.count <= maximumIdentityBytes else { throw .identityTooLong(bytes: identity.count) }
    }
}

extension PreSharedKey: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "PSK identity \"\(identity)\" (\(key.count * 8)-bit key)" }
    public var debugDescription: String { "PreSharedKey(identity: \(identity.debugDescription), key: <\(key.count) bytes>)" }
    /// `dump` and the debugger show the identity and the key's length, never the key.
    public var customMirror: Mirror {
        Mirror(self, children: ["identity": identity, "keyBytes": key.count], displayStyle: .struct)
    }
}

/// A refused PSK identity or PSK file, in Zabbix's words.
public enum PSKError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// Nothing to read at all (fgets returned NULL).
    case emptyFile(path: String)
    /// The first line holds no key.
    case emptyKey(path: String)
    case tooShort(path: String)
    case tooLong(path: String)
    /// Not hex digits in pairs.
    case invalid(path: String)
    case identityEmpty
    case identityNotUTF8
    case identityTooLong(bytes: Int)
    /// A key given as bytes, not read from a file, outside 16...256 bytes.
    case keyLength(Int)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): return "cannot open file \"\(path)\": \(reason)"
        case .emptyFile(let path): return "cannot read from file \"\(path)\" or file empty"
        case .emptyKey(let path): return "file \"\(path)\" is empty"
        case .tooShort(let path):
            return "PSK in file \"\(path)\" is too short. Minimum is \(PreSharedKey.minimumHexDigits) hex-digits"
        case .tooLong(let path):
            return "PSK in file \"\(path)\" is too long. Maximum is \(PreSharedKey.maximumHexDigits) hex-digits"
        case .invalid(let path): return "invalid PSK in file \"\(path)\""
        case .identityEmpty: return "PSK identity is empty"
        case .identityNotUTF8: return "PSK identity is not a valid UTF-8 string"
        case .identityTooLong(let bytes):
            return "PSK identity length \(bytes) exceeds the maximum length of \(PreSharedKey.maximumIdentityBytes) bytes."
        case .keyLength(let count):
            return "PSK of \(count) bytes: Zabbix takes \(PreSharedKey.minimumHexDigits / 2) to \(PreSharedKey.maximumHexDigits / 2) bytes"
        }
    }
}
