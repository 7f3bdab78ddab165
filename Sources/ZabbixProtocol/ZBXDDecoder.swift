import ByteCoding
/// Why a ZBXD frame was refused. Descriptions follow `zbx_tcp_recv_ext` in Zabbix's comms.c,
/// without the peer address (the network layer knows it, this codec does not).
public enum ZBXDError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The bytes do not start with `ZBXD`, or the peer closed inside those 4 bytes.
    case missingHeader
    /// The flags byte lacks 0x01 or carries bits this receiver does not accept.
    case unsupportedProtocolVersion(UInt8)
    /// The peer closed before the length fields were complete.
    case missingDataLength
    /// The peer closed before `expected` payload bytes arrived.
    case shorterThanExpected(expected: UInt64, received: UInt64)
    /// More bytes followed a complete frame (one message per connection).
    case longerThanExpected(expected: UInt64)
    case exceedsMaximumSize(size: UInt64, maximum: UInt64)
    case uncompressedSizeExceedsMaximum(size: UInt64, maximum: UInt64)
    case cannotUncompress(reason: String)
    case uncompressedSizeLessThanExpected(expected: UInt64, actual: UInt64)
    case cannotCompress(reason: String)

    public var description: String {
        switch self {
        case .missingHeader:
            return "message is missing header"
        case .unsupportedProtocolVersion(let flags):
            return "message is using unsupported protocol version \"\(flags)\""
        case .missingDataLength:
            return "message is missing data length"
        case .shorterThanExpected(let expected, let received):
            return "message is shorter than expected \(expected) bytes (received \(received))"
        case .longerThanExpected(let expected):
            return "message is longer than expected \(expected) bytes"
        case .exceedsMaximumSize(let size, let maximum):
            return "message size \(size) exceeds the maximum size \(maximum) bytes"
        case .uncompressedSizeExceedsMaximum(let size, let maximum):
            return "uncompressed message size \(size) exceeds the maximum size \(maximum) bytes"
        case .cannotUncompress(let reason):
            return "cannot uncompress data: \(reason)"
        case .uncompressedSizeLessThanExpected(let expected, let actual):
            return "size of uncompressed data is less than expected (\(actual) of \(expected) bytes)"
        case .cannotCompress(let reason):
            return "cannot compress data: \(reason)"
        }
    }
}

/// Incremental decoder for exactly one ZBXD frame, fed with bytes as they arrive.
///
/// Declared sizes are checked against `maximumSize` before anything is allocated, so a hostile
/// header cannot make it reserve more; `largestReservation` records what it did reserve.
public struct ZBXDDecoder: Sendable {
    public enum Result: Equatable, Sendable {
        case needMoreData
        case frame(ZBXDFrame)
    }

    /// Default limit for replies: far above any trapper reply, far below Zabbix's 1 GiB.
    public static let defaultMaximumSize: UInt64 = 128 << 20

    public let maximumSize: UInt64
    /// Whether 0x04 (8-byte lengths) is allowed; Zabbix's agent and sender refuse it, its trapper accepts it.
    public let acceptsLargeFrames: Bool
    /// The largest single buffer reserved so far (payload or inflate target); never above `maximumSize`.
    public private(set) var largestReservation = 0

    private enum State {
        case header
        case payload(ZBXDHeader)
        case complete(ZBXDHeader)
        case failed(ZBXDError)
    }

    private var state = State.header
    private var headerBytes: [UInt8] = []
    private var payload: [UInt8] = []

    public init(maximumSize: UInt64 = ZBXDDecoder.defaultMaximumSize, acceptsLargeFrames: Bool = false) {
        // Lengths become Int indices, so the limit may not pass Int.max.
        self.maximumSize = min(maximumSize, UInt64(Int.max))
        self.acceptsLargeFrames = acceptsLargeFrames
        headerBytes.reserveCapacity(ZBXDHeader.largeByteCount)
    }

    public mutating func decode(_ bytes: [UInt8]) throws(ZBXDError) -> Result {
        try decode(bytes[...])
    }

    /// Consumes all of `bytes`. Once an error was thrown the decoder keeps throwing it.
    public mutating func decode(_ bytes: ArraySlice<UInt8>) throws(ZBXDError) -> Result {
        do {
            return try consume(bytes)
        } catch {
            state = .failed(error)
            payload = []
            throw error
        }
    }

    /// The peer closed the connection. Fine before any byte or after a complete frame; otherwise
    /// the error names where the frame was cut.
    public mutating func finish() throws(ZBXDError) {
        switch state {
        case .header:
            if headerBytes.isEmpty { return }
            let error: ZBXDError = headerBytes.count < ZBXDHeader.magic.count ? .missingHeader : .missingDataLength
            state = .failed(error)
            throw error
        case .payload(let header):
            let error = ZBXDError.shorterThanExpected(expected: header.dataLength, received: UInt64(payload.count))
            state = .failed(error)
            payload = []
            throw error
        case .complete:
            return
        case .failed(let error):
            throw error
        }
    }

    private mutating func consume(_ input: ArraySlice<UInt8>) throws(ZBXDError) -> Result {
        var bytes = input
        while true {
            switch state {
            case .failed(let error):
                throw error
            case .complete(let header):
                if !bytes.isEmpty { throw .longerThanExpected(expected: header.dataLength) }
                return .needMoreData
            case .header:
                guard let header = try readHeader(from: &bytes) else { return .needMoreData }
                // Sizes are validated in readHeader, so these fit in Int and within the limit.
                payload.reserveCapacity(Int(header.dataLength))
                largestReservation = max(largestReservation, Int(header.dataLength))
                state = .payload(header)
            case .payload(let header):
                let missing = Int(header.dataLength) - payload.count
                let taken = bytes.prefix(missing)
                payload.append(contentsOf: taken)
                bytes = bytes.dropFirst(taken.count)
                guard payload.count == Int(header.dataLength) else { return .needMoreData }
                if !bytes.isEmpty { throw .longerThanExpected(expected: header.dataLength) }
                let frame = try makeFrame(header)
                state = .complete(header)
                return .frame(frame)
            }
        }
    }

    /// Collects header bytes, failing as soon as a byte contradicts the format.
    private mutating func readHeader(from bytes: inout ArraySlice<UInt8>) throws(ZBXDError) -> ZBXDHeader? {
        while let byte = bytes.first {
            let offset = headerBytes.count
            if offset < ZBXDHeader.magic.count, byte != ZBXDHeader.magic[offset] {
                throw .missingHeader
            }
            if offset == ZBXDHeader.magic.count {
                try validateFlags(byte)
            }
            headerBytes.append(byte)
            bytes = bytes.dropFirst()
            if offset >= ZBXDHeader.magic.count, headerBytes.count == expectedHeaderLength {
                return try parsedHeader()
            }
        }
        return nil
    }

    private var expectedHeaderLength: Int {
        ZBXDFlags(rawValue: headerBytes[4]).contains(.large) ? ZBXDHeader.largeByteCount : ZBXDHeader.standardByteCount
    }

    private func validateFlags(_ byte: UInt8) throws(ZBXDError) {
        // Same test as zbx_tcp_recv_ext: 0x01 must be set and nothing above the accepted bits.
        var accepted: ZBXDFlags = [.zabbixProtocol, .compressed]
        if acceptsLargeFrames { accepted.insert(.large) }
        if byte & ZBXDFlags.zabbixProtocol.rawValue == 0 || byte > accepted.rawValue {
            throw .unsupportedProtocolVersion(byte)
        }
    }

    private func parsedHeader() throws(ZBXDError) -> ZBXDHeader {
        let flags = ZBXDFlags(rawValue: headerBytes[4])
        let width = flags.contains(.large) ? 8 : 4
        let dataLength = width == 8 ? headerBytes.loadLittleEndian(UInt64.self, at: 5)
            : UInt64(headerBytes.loadLittleEndian(UInt32.self, at: 5))
        let reservedLength = width == 8 ? headerBytes.loadLittleEndian(UInt64.self, at: 5 + width)
            : UInt64(headerBytes.loadLittleEndian(UInt32.self, at: 5 + width))
        if dataLength > maximumSize {
            throw .exceedsMaximumSize(size: dataLength, maximum: maximumSize)
        }
        if flags.contains(.compressed), reservedLength > maximumSize {
            throw .uncompressedSizeExceedsMaximum(size: reservedLength, maximum: maximumSize)
        }
        return ZBXDHeader(flags: flags, dataLength: dataLength, reservedLength: reservedLength)
    }

    private mutating func makeFrame(_ header: ZBXDHeader) throws(ZBXDError) -> ZBXDFrame {
        defer { payload = [] }
        guard header.flags.contains(.compressed) else {
            return ZBXDFrame(payload: payload, flags: header.flags)
        }
        let expected = Int(header.reservedLength)
        largestReservation = max(largestReservation, expected)
        return ZBXDFrame(payload: try Zlib.uncompress(payload, expectedLength: expected), flags: header.flags)
    }
}
