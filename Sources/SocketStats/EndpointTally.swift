/// Sockets per remote endpoint (address, port, family): what the ephemeral-port figure needs.
/// An open-addressing table with linear probing and a seeded multiplicative hash: per socket one
/// short multiply chain and usually one probe, where a Dictionary's SipHash cost about as much
/// as the whole per-state count. Memory grows with distinct endpoints (doubling at half full),
/// never per socket.
struct EndpointTally {
    struct Entry {
        var address: AddressWords
        var port: UInt16
        var isIPv6: Bool
        /// 0 marks an empty slot.
        var sockets: UInt64
    }

    private static let empty = Entry(address: .zero, port: 0, isIPv6: false, sockets: 0)
    /// A power of two, at least twice `used`.
    private var slots: [Entry]
    private var used = 0
    /// Differs per process, so that peers who choose their addresses cannot choose collisions.
    private let seed: UInt64

    init() {
        slots = [Entry](repeating: Self.empty, count: 64)
        seed = UInt64.random(in: 0...UInt64.max) | 1
    }

    mutating func removeAll() {
        for index in slots.indices { slots[index] = Self.empty }
        used = 0
    }

    @inline(__always)
    mutating func add(_ address: AddressWords, port: UInt16, isIPv6: Bool) {
        let inserted = slots.withUnsafeMutableBufferPointer { table in
            let mask = table.count &- 1
            var index = Self.slot(address, port: port, isIPv6: isIPv6, seed: seed) & mask
            while true {
                let entry = table[index]
                if entry.sockets == 0 {
                    table[index] = Entry(address: address, port: port, isIPv6: isIPv6, sockets: 1)
                    return true
                }
                if entry.port == port && entry.address == address && entry.isIPv6 == isIPv6 {
                    table[index].sockets &+= 1
                    return false
                }
                index = (index &+ 1) & mask
            }
        }
        if inserted {
            used += 1
            if used * 2 > slots.count { grow() }
        }
    }

    /// The endpoint with the most sockets; ties go to the lowest port, then IPv4, then the
    /// lowest address, so that the answer does not depend on the table's layout.
    var busiest: Entry? {
        var best: Entry?
        for entry in slots where entry.sockets > 0 {
            guard let current = best else {
                best = entry
                continue
            }
            if Self.ranksBefore(entry, current) { best = entry }
        }
        return best
    }

    private static func ranksBefore(_ a: Entry, _ b: Entry) -> Bool {
        if a.sockets != b.sockets { return a.sockets > b.sockets }
        if a.port != b.port { return a.port < b.port }
        if a.isIPv6 != b.isIPv6 { return !a.isIPv6 }
        let x = a.address, y = b.address
        return (x.w0.bigEndian, x.w1.bigEndian, x.w2.bigEndian, x.w3.bigEndian)
            < (y.w0.bigEndian, y.w1.bigEndian, y.w2.bigEndian, y.w3.bigEndian)
    }

    @inline(__always)
    private static func slot(_ address: AddressWords, port: UInt16, isIPv6: Bool, seed: UInt64) -> Int {
        var hash = (UInt64(address.w0) | UInt64(address.w1) << 32) ^ seed
        hash = (hash &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(address.w2) | UInt64(address.w3) << 32)
        hash = (hash &* 0xC2B2_AE3D_27D4_EB4F) ^ (UInt64(port) | (isIPv6 ? 1 << 16 : 0))
        hash = hash &* 0x1656_67B1_9E37_79F9
        return Int(truncatingIfNeeded: hash >> 32 ^ hash)
    }

    private mutating func grow() {
        let old = slots
        slots = [Entry](repeating: Self.empty, count: old.count * 2)
        let mask = slots.count - 1
        for entry in old where entry.sockets > 0 {
            var index = Self.slot(entry.address, port: entry.port, isIPv6: entry.isIPv6, seed: seed) & mask
            while slots[index].sockets != 0 { index = (index + 1) & mask }
            slots[index] = entry
        }
    }
}
