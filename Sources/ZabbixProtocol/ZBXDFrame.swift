import ByteCoding
/// The flags byte of a ZBXD header (offset 4).
public struct ZBXDFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 0x01, mandatory on every frame.
    public static let zabbixProtocol = ZBXDFlags(rawValue: 0x01)
    /// 0x02, the payload is a zlib stream; the reserved field holds the uncompressed size.
    public static let compressed = ZBXDFlags(rawValue: 0x02)
    /// 0x04, the two length fields are 8 bytes instead of 4.
    public static let large = ZBXDFlags(rawValue: 0x04)
}

/// The fixed part of a frame: `ZBXD`, flags, data length, reserved length (all little-endian).
public struct ZBXDHeader: Equatable, Sendable {
    public static let magic: [UInt8] = Array("ZBXD".utf8)
    public static let standardByteCount = 13
    public static let largeByteCount = 21

    public var flags: ZBXDFlags
    /// Payload length as sent (the compressed length when `.compressed` is set).
    public var dataLength: UInt64
    /// Uncompressed payload length when `.compressed` is set, else 0.
    public var reservedLength: UInt64

    public init(flags: ZBXDFlags, dataLength: UInt64, reservedLength: UInt64) {
        self.flags = flags
        self.dataLength = dataLength
        self.reservedLength = reservedLength
    }

    /// A header for `dataLength` payload bytes. `.large` is added when a length does not fit
    /// in 32 bits, as `zbx_tcp_send_ext` does; it is kept when the caller asks for it.
    public init(dataLength: UInt64, uncompressedLength: UInt64?, requestedFlags: ZBXDFlags = []) {
        var flags = requestedFlags.union(.zabbixProtocol)
        if let uncompressedLength {
            flags.insert(.compressed)
            reservedLength = uncompressedLength
        } else {
            flags.remove(.compressed)
            reservedLength = 0
        }
        if dataLength >= 0xFFFF_FFFF || reservedLength >= 0xFFFF_FFFF {
            flags.insert(.large)
        }
        self.flags = flags
        self.dataLength = dataLength
    }

    public var byteCount: Int {
        flags.contains(.large) ? Self.largeByteCount : Self.standardByteCount
    }

    public var encoded: [UInt8] {
        var bytes = Self.magic
        bytes.reserveCapacity(byteCount)
        bytes.append(flags.rawValue)
        let fieldWidth = flags.contains(.large) ? 8 : 4
        bytes.appendLittleEndian(dataLength, width: fieldWidth)
        bytes.appendLittleEndian(reservedLength, width: fieldWidth)
        return bytes
    }
}

/// One ZBXD message. `payload` is always the uncompressed text; `flags` records how it travels,
/// so a reply can use the request's flags as `zbx_send_response_same` does.
public struct ZBXDFrame: Equatable, Sendable {
    public var flags: ZBXDFlags
    public var payload: [UInt8]

    public init(payload: [UInt8], flags: ZBXDFlags = .zabbixProtocol) {
        self.payload = payload
        self.flags = flags.union(.zabbixProtocol)
    }

    public init(payload: some StringProtocol, flags: ZBXDFlags = .zabbixProtocol) {
        self.init(payload: Array(payload.utf8), flags: flags)
    }

    /// Header plus payload, compressed with zlib `compress2` when `.compressed` is set.
    public func encoded() throws(ZBXDError) -> [UInt8] {
        let body: [UInt8]
        let header: ZBXDHeader
        if flags.contains(.compressed) {
            body = try Zlib.compress(payload)
            header = ZBXDHeader(
                dataLength: UInt64(body.count), uncompressedLength: UInt64(payload.count), requestedFlags: flags)
        } else {
            body = payload
            header = ZBXDHeader(dataLength: UInt64(body.count), uncompressedLength: nil, requestedFlags: flags)
        }
        return header.encoded + body
    }
}

