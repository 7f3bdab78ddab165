import Foundation
import Glibc

/// Monotonic seconds, for bounding loops in time as well as in count.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// A fresh directory under /tmp, removed with everything in it when released.
public final class TemporaryDirectory {
    public let path: String

    public init() throws {
        var template = Array("/tmp/zabbix-sockets-tests.XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else { throw POSIXFailure(call: "mkdtemp") }
        path = String(cString: created)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    @discardableResult
    public func write(_ relativePath: String, _ text: String) throws -> String {
        try write(relativePath, bytes: Array(text.utf8))
    }

    @discardableResult
    public func write(_ relativePath: String, bytes: [UInt8]) throws -> String {
        let full = "\(path)/\(relativePath)"
        let descriptor = open(full, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else { throw POSIXFailure(call: "open \(full)") }
        defer { close(descriptor) }
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw POSIXFailure(call: "write \(full)") }
        return full
    }

    @discardableResult
    public func makeDirectory(_ relativePath: String) throws -> String {
        let full = "\(path)/\(relativePath)"
        guard mkdir(full, 0o755) == 0 else { throw POSIXFailure(call: "mkdir \(full)") }
        return full
    }
}

public struct POSIXFailure: Error, CustomStringConvertible {
    public var call: String
    public var code = errno
    public init(call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }
    public var description: String { "\(call): \(String(cString: strerror(code)))" }
}
