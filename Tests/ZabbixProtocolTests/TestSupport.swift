#if canImport(Glibc)
import Glibc
#endif
import XCTest

/// SplitMix64: tiny, fast and fully determined by its seed, so a failing input can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

extension Array where Element == UInt8 {
    static func random(count: Int, using generator: inout SeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

/// Monotonic seconds, for bounding loops in time as well as in count.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A fresh directory under /tmp, removed by the returned cleanup.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/zabbix-protocol-tests.XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw POSIXFailure(call: "mkdtemp") }
        path = String(cString: created)
    }

    deinit {
        removeTree(path)
    }

    @discardableResult
    func write(_ relativePath: String, _ text: String) throws -> String {
        try write(relativePath, bytes: Array(text.utf8))
    }

    @discardableResult
    func write(_ relativePath: String, bytes: [UInt8]) throws -> String {
        let full = "\(path)/\(relativePath)"
        let descriptor = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw POSIXFailure(call: "open \(full)") }
        defer { close(descriptor) }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw POSIXFailure(call: "write \(full)") }
        return full
    }

    @discardableResult
    func makeDirectory(_ relativePath: String) throws -> String {
        let full = "\(path)/\(relativePath)"
        guard mkdir(full, 0o755) == 0 else { throw POSIXFailure(call: "mkdir \(full)") }
        return full
    }
}

struct POSIXFailure: Error, CustomStringConvertible {
    var call: String
    var code = errno
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

private func removeTree(_ path: String) {
    var status = stat()
    guard lstat(path, &status) == 0 else { return }
    if status.st_mode & S_IFMT == S_IFDIR, let stream = opendir(path) {
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        for name in names { removeTree("\(path)/\(name)") }
        rmdir(path)
    } else {
        unlink(path)
    }
}
