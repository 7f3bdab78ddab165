import CZlib

/// zlib stream format (RFC 1950), the format Zabbix's `zbx_compress`/`zbx_uncompress` use.
enum Zlib {
    static func compress(_ input: [UInt8]) throws(ZBXDError) -> [UInt8] {
        var outputLength = compressBound(uLong(input.count))
        var output = [UInt8](repeating: 0, count: Int(outputLength))
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                compress2(out.baseAddress, &outputLength, source.baseAddress, uLong(source.count), Z_DEFAULT_COMPRESSION)
            }
        }
        guard status == Z_OK else { throw .cannotCompress(reason: zlibMessage(status)) }
        output.removeSubrange(Int(outputLength)...)
        return output
    }

    /// Inflates into exactly `expectedLength` bytes; the caller has checked that length against its limit.
    static func uncompress(_ input: [UInt8], expectedLength: Int) throws(ZBXDError) -> [UInt8] {
        // zlib needs a non-null destination even for an empty result.
        var output = [UInt8](repeating: 0, count: max(expectedLength, 1))
        var outputLength = uLong(expectedLength)
        let status = output.withUnsafeMutableBufferPointer { out in
            input.withUnsafeBufferPointer { source in
                CZlib.uncompress(out.baseAddress, &outputLength, source.baseAddress, uLong(source.count))
            }
        }
        guard status == Z_OK else { throw .cannotUncompress(reason: zlibMessage(status)) }
        guard Int(outputLength) == expectedLength else {
            throw .uncompressedSizeLessThanExpected(expected: UInt64(expectedLength), actual: UInt64(outputLength))
        }
        output.removeSubrange(expectedLength...)
        return output
    }

    private static func zlibMessage(_ status: Int32) -> String {
        guard let text = zError(status) else { return "error \(status)" }
        return String(cString: text)
    }
}
