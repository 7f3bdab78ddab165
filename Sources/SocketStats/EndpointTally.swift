import Glibc

/// Sockets per remote endpoint (address, port, family): what the ephemeral-port figure needs.
///
/// Per socket it is the most frequent step of the per-port pass, so it avoids both hashing and
/// copy-on-write checks where it can: an open-addressing table (linear probing, a seeded
/// multiplicative hash) in memory it owns, and in front of it a per-remote-port memo of the
/// slot last used for that port. Connections to one service port mostly go to one address, so
/// most sockets cost one memo load and one comparison; a miss falls back to the hash table.
/// (A Dictionary, hashing every socket's endpoint with SipHash, cost twice the whole count.)
/// Memory grows with distinct endpoints (doubling at half full), never per socket.
struct EndpointTally: ~Copyable {
    struct Entry {
        var address: AddressWords
        var port: UInt16
        var isIPv6: Bool
        /// 0 marks an empty slot.
        var sockets: UInt64
    }

    private static let empty = Entry(address: .zero, port: 0, isIPv6: false, sockets: 0)
    /// `capacity` slots, a power of two, at least twice `used`.
    private var slots: UnsafeMutablePointer<Entry>
    private var capacity = 64
    private var used = 0
    /// Remote port -> 1 + a slot holding an endpoint with that port, 0 none. Only a hint:
    /// `add` checks the slot's address and family before using it.
    private let memo: UnsafeMutablePointer<UInt32>
    /// Differs per process, so that peers who choose their addresses cannot choose collisions.
    private let seed: UInt64

    init() {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Self.empty, count: capacity)
        memo = allocateZeroedTable(of: UInt32.self, count: 65536)
        seed = UInt64.random(in: 0...UInt64.max)
    }

    deinit {
        slots.deallocate()
        free(memo)
    }

    mutating func removeAll() {
        for index in 0..<capacity where slots[index].sockets != 0 {
            memo[Int(slots[index].port)] = 0
            slots[index] = Self.empty
        }
        used = 0
    }

    @inline(__always)
    mutating func add(_ address: AddressWords, port: UInt16, isIPv6: Bool) {
        let hint = Int(memo[Int(port)])
        // A hint always names a slot holding this port (set with it, moved by `grow`, cleared
        // by `removeAll`), so only the address and family need comparing.
        if hint != 0, slots[hint - 1].address == address, slots[hint - 1].isIPv6 == isIPv6 {
            slots[hint - 1].sockets &+= 1
            return
        }
        addByHash(address, port: port, isIPv6: isIPv6)
    }

    private mutating func addByHash(_ address: AddressWords, port: UInt16, isIPv6: Bool) {
        let mask = capacity &- 1
        var index = Self.hash(address, port: port, isIPv6: isIPv6, seed: seed) & mask
        while slots[index].sockets != 0 {
            if slots[index].port == port && slots[index].address == address && slots[index].isIPv6 == isIPv6 {
                slots[index].sockets &+= 1
                memo[Int(port)] = UInt32(index + 1)
                return
            }
            index = (index &+ 1) & mask
        }
        slots[index] = Entry(address: address, port: port, isIPv6: isIPv6, sockets: 1)
        memo[Int(port)] = UInt32(index + 1)
        used += 1
        if used * 2 > capacity { grow() }
    }

    /// The endpoint with the most sockets; ties go to the lowest port, then IPv4, then the
    /// lowest address, so that the answer does not depend on the table's layout.
    var busiest: Entry? {
        var best: Entry?
        for index in 0..<capacity where slots[index].sockets > 0 {
            let entry = slots[index]
            if let current = best, !Self.ranksBefore(entry, current) { continue }
            best = entry
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
    private static func hash(_ address: AddressWords, port: UInt16, isIPv6: Bool, seed: UInt64) -> Int {
        var hash = (UInt64(address.w0) | UInt64(address.w1) << 32) ^ seed
        hash = (hash &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(address.w2) | UInt64(address.w3) << 32)
        hash = (hash &* 0xC2B2_AE3D_27D4_EB4F) ^ (UInt64(port) | (isIPv6 ? 1 << 16 : 0))
        hash = hash &* 0x1656_67B1_9E37_79F9
        return Int(truncatingIfNeeded: hash >> 32 ^ hash)
    }

    /// Doubles the table; the memo then points to the endpoints' new slots.
    private mutating func grow() {
        let old = slots, oldCapacity = capacity
        capacity *= 2
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Self.empty, count: capacity)
        let mask = capacity - 1
        for oldIndex in 0..<oldCapacity where old[oldIndex].sockets != 0 {
            let entry = old[oldIndex]
            var index = Self.hash(entry.address, port: entry.port, isIPv6: entry.isIPv6, seed: seed) & mask
            while slots[index].sockets != 0 { index = (index + 1) & mask }
            slots[index] = entry
            memo[Int(entry.port)] = UInt32(index + 1)
        }
        old.deallocate()
    }
}
