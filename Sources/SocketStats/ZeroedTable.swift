import Glibc

/// `count` zeroed integers for a table indexed by port, released with `free`. From calloc
/// rather than `allocate` and `initialize(repeating: 0)`: glibc serves tables this large from
/// fresh zero pages, so a poll neither zeroes them (a few hundred KiB: half a million
/// instructions) nor maps the pages no socket touches.
func allocateZeroedTable<Element: FixedWidthInteger>(of type: Element.Type, count: Int) -> UnsafeMutablePointer<Element> {
    guard let memory = calloc(count, MemoryLayout<Element>.stride) else {
        fatalError("calloc of a \(count)-entry table failed")
    }
    return memory.bindMemory(to: Element.self, capacity: count)
}
