extension Array where Element == UInt8 {
    mutating func appendLittleEndian<Integer: FixedWidthInteger>(_ value: Integer) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}

extension ArraySlice where Element == UInt8 {
    /// The integer stored little-endian at `offset` bytes past the start of this slice.
    func loadLittleEndian<Integer: FixedWidthInteger>(_: Integer.Type, at offset: Int) -> Integer {
        var value: Integer = 0
        for index in 0..<MemoryLayout<Integer>.size {
            value |= Integer(self[startIndex + offset + index]) << (8 * index)
        }
        return value
    }
}
