/// CRC-32 as zlib, gzip and Ethernet compute it (reflected polynomial 0xEDB88320), table-driven
/// so the library needs no zlib.
struct CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 {
            value = value & 1 == 1 ? (value >> 1) ^ 0xEDB8_8320 : value >> 1
        }
        return value
    }

    private var register: UInt32 = 0xFFFF_FFFF

    /// The checksum of everything passed to `update` so far.
    var value: UInt32 { register ^ 0xFFFF_FFFF }

    mutating func update<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        var crc = register
        Self.table.withUnsafeBufferPointer { table in
            let updatedContiguously: Void? = bytes.withContiguousStorageIfAvailable { storage in
                for byte in storage {
                    crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                }
            }
            if updatedContiguously == nil {
                for byte in bytes {
                    crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
                }
            }
        }
        register = crc
    }

    static func checksum<Bytes: Collection>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }
}
