/// TCP states and UDP sockets of one cgroup (or of a bucket of sockets without one).
public struct CgroupCounts: Equatable, Sendable {
    public var tcp = TCPStateCounts()
    public var udp = UDPCounts()

    public init() {}

    @inline(__always)
    mutating func add(_ socket: SocketRecord) {
        if socket.transport == .tcp { tcp.add(rawState: socket.state) } else { udp.add(rawState: socket.state) }
    }

    public static func + (a: CgroupCounts, b: CgroupCounts) -> CgroupCounts {
        var sum = CgroupCounts()
        sum.tcp = a.tcp + b.tcp
        sum.udp = a.udp + b.udp
        return sum
    }
}

/// Counts sockets per cgroup id in the same pass as the other sections. Cgroups holding sockets
/// are few (tens, hundreds on a busy node), so an open-addressing table in memory this value
/// owns holds them: a socket costs a hash and an increment, and allocates nothing.
public struct CgroupTally: ~Copyable, SocketVisitor {
    struct Slot {
        /// 0: empty (no cgroup has id 0).
        var id: UInt64
        var counts: CgroupCounts
    }

    private var slots: UnsafeMutablePointer<Slot>
    /// A power of two, kept at least twice `used`.
    private var capacity = 64
    private var used = 0
    /// The last id counted and its slot. One service or container usually holds most of a
    /// host's sockets, so most sockets cost a comparison here instead of a hash and a probe.
    /// 0: none (no cgroup has id 0); cleared whenever `slots` moves or is emptied.
    private var lastID: UInt64 = 0
    private var lastSlot: UnsafeMutablePointer<Slot>
    /// Sockets the kernel sent without a cgroup id: TIME_WAIT and SYN_RECV entries, which are
    /// not full sockets and have no owner.
    public private(set) var unattributed = CgroupCounts()
    /// Full sockets (neither TIME_WAIT nor SYN_RECV) without an id: a kernel that does not send
    /// the attribute, or a source that has none (/proc).
    public private(set) var fullSocketsWithoutID: UInt64 = 0
    /// Whether any socket came with a cgroup id.
    public var sawCgroupIDs: Bool { used > 0 }

    public static var wantsOwnership: Bool { true }

    public init() {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(id: 0, counts: CgroupCounts()), count: capacity)
        lastSlot = slots
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    public mutating func startOver() {
        slots.update(repeating: Slot(id: 0, counts: CgroupCounts()), count: capacity)
        used = 0
        lastID = 0
        unattributed = CgroupCounts()
        fullSocketsWithoutID = 0
    }

    @inline(__always)
    public mutating func visit(_ socket: SocketRecord) {
        let id = socket.cgroupID
        guard id != 0 else {
            unattributed.add(socket)
            let isRequestOrTimeWait = socket.transport == .tcp
                && (socket.state == TCPState.timeWait.rawValue || socket.state == TCPState.synRecv.rawValue)
            if !isRequestOrTimeWait { fullSocketsWithoutID &+= 1 }
            return
        }
        if id != lastID {
            // The index first: finding it may grow (reallocate) `slots`.
            let index = slotIndex(for: id)
            lastSlot = slots + index
            lastID = id
        }
        lastSlot.pointee.counts.add(socket)
    }

    /// The slot holding `id`, claimed if new.
    @inline(__always)
    private mutating func slotIndex(for id: UInt64) -> Int {
        var index = Int(truncatingIfNeeded: (id &* 0x9E37_79B9_7F4A_7C15) >> 32) & (capacity - 1)
        while true {
            let slotID = slots[index].id
            if slotID == id { return index }
            if slotID == 0 { return claim(index, for: id) }
            index = (index + 1) & (capacity - 1)
        }
    }

    @inline(never)
    private mutating func claim(_ index: Int, for id: UInt64) -> Int {
        if (used + 1) * 2 > capacity {
            grow()
            return slotIndex(for: id)
        }
        slots[index].id = id
        used += 1
        return index
    }

    private mutating func grow() {
        let old = slots
        let oldCapacity = capacity
        capacity *= 2
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(id: 0, counts: CgroupCounts()), count: capacity)
        used = 0
        lastID = 0
        for index in 0..<oldCapacity where old[index].id != 0 {
            let slot = slotIndex(for: old[index].id)
            slots[slot].counts = old[index].counts
        }
        old.deinitialize(count: oldCapacity)
        old.deallocate()
    }

    /// Every cgroup id seen since the last `startOver()`, with its counts, lowest id first.
    public var byID: [(id: UInt64, counts: CgroupCounts)] {
        (0..<capacity).compactMap { slots[$0].id == 0 ? nil : (slots[$0].id, slots[$0].counts) }.sorted { $0.id < $1.id }
    }
}

/// Two models filled in one pass: each socket visits both.
public struct VisitorPair<First: SocketVisitor & ~Copyable, Second: SocketVisitor & ~Copyable>: ~Copyable, SocketVisitor {
    public var first: First
    public var second: Second

    public init(_ first: consuming First, _ second: consuming Second) {
        self.first = first
        self.second = second
    }

    public static var wantsListenersFirst: Bool { First.wantsListenersFirst || Second.wantsListenersFirst }
    public static var wantsOwnership: Bool { First.wantsOwnership || Second.wantsOwnership }

    public mutating func startOver() {
        first.startOver()
        second.startOver()
    }

    @inline(__always)
    public mutating func visit(_ socket: SocketRecord) {
        first.visit(socket)
        second.visit(socket)
    }
}
