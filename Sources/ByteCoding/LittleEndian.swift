extension Array where Element == UInt8 {
    /// Appends `value`'s bytes, least significant first.
    public mutating func appendLittleEndian<Integer: FixedWidthInteger>(_ value: Integer) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends the low `width` bytes of `value`, least significant first (ZBXD's 4- or 8-byte sizes).
    public mutating func appendLittleEndian(_ value: UInt64, width: Int) {
        for index in 0..<width {
            append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))))
        }
    }
}

extension Collection where Element == UInt8 {
    /// The integer stored little-endian in this collection's first `MemoryLayout<Integer>.size`
    /// bytes past `offset`; the caller checked that they are there.
    public func loadLittleEndian<Integer: FixedWidthInteger>(_: Integer.Type, at offset: Int = 0) -> Integer {
        var value: Integer = 0
        var index = self.index(startIndex, offsetBy: offset)
        for shift in 0..<MemoryLayout<Integer>.size {
            value |= Integer(truncatingIfNeeded: self[index]) << (8 * shift)
            index = self.index(after: index)
        }
        return value
    }
}
