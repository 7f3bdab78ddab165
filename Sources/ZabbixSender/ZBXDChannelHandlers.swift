import NIOCore
import ZabbixProtocol

/// Frames inbound bytes with the pure `ZBXDDecoder`; one frame per connection, as Zabbix speaks.
/// A bad or truncated frame reaches `errorCaught` as a `ZBXDError`.
public struct ZBXDFrameDecoderHandler: ByteToMessageDecoder {
    public typealias InboundOut = ZBXDFrame

    private var decoder: ZBXDDecoder

    public init(maximumSize: UInt64 = ZBXDDecoder.defaultMaximumSize) {
        decoder = ZBXDDecoder(maximumSize: maximumSize)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let bytes = buffer.readBytes(length: buffer.readableBytes), !bytes.isEmpty else { return .needMoreData }
        if case .frame(let frame) = try decoder.decode(bytes) {
            context.fireChannelRead(wrapInboundOut(frame))
        }
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        _ = try decode(context: context, buffer: &buffer)
        // Called once no more bytes will come. Without half-closure a peer's close arrives as
        // channelInactive with seenEOF false, so a cut frame must be reported either way.
        try decoder.finish()
        return .needMoreData
    }
}

/// Writes `ZBXDFrame`s with the pure encoder.
public struct ZBXDFrameEncoderHandler: MessageToByteEncoder {
    public typealias OutboundIn = ZBXDFrame

    public init() {}

    public func encode(data: ZBXDFrame, out: inout ByteBuffer) throws {
        out.writeBytes(try data.encoded())
    }
}
