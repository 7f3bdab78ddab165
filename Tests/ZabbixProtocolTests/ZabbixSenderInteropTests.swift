#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import XCTest

import ZabbixProtocol

/// The real `zabbix_sender` (Debian package zabbix-agent) talks to a loopback listener in this
/// test: our decoder reads what it sends, our encoder writes what it reads back.
final class ZabbixSenderInteropTests: XCTestCase {
    private static let senderPath = "/usr/bin/zabbix_sender"
    private static let stepTimeoutSeconds: Int32 = 15

    override func setUpWithError() throws {
        guard access(Self.senderPath, X_OK) == 0 else {
            throw XCTSkip(
                "\(Self.senderPath) is missing: install it with `apt-get install -y --no-install-recommends zabbix-agent` "
                    + "(with a /usr/sbin/policy-rc.d that exits 101 so the agent service does not start)")
        }
    }

    private struct Exchange {
        var request: ZBXDFrame
        var exitCode: Int32
        var output: String
    }

    /// Runs zabbix_sender with `arguments` (after `-z 127.0.0.1 -p PORT`), answers its one request with `reply`.
    private func exchange(_ arguments: [String], reply: TrapperResponse) throws -> Exchange {
        let listener = try LoopbackListener()
        defer { listener.close() }
        let child = try SpawnedProcess(
            path: Self.senderPath, arguments: ["-z", "127.0.0.1", "-p", "\(listener.port)"] + arguments)
        let connection = try listener.accept(timeoutSeconds: Self.stepTimeoutSeconds)
        defer { Glibc.close(connection) }
        var decoder = ZBXDDecoder(maximumSize: 1 << 20)
        var request: ZBXDFrame?
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request == nil {
            let count = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count >= 0 else { throw POSIXFailure(call: "recv") }
            if count == 0 {
                try decoder.finish()
                break
            }
            if case .frame(let frame) = try decoder.decode(buffer[..<count]) { request = frame }
        }
        let frame = try XCTUnwrap(request, "zabbix_sender closed without a request")
        // zbx_send_response_same: answer with the request's flags.
        let answer = try ZBXDFrame(payload: reply.encodedJSON(), flags: frame.flags).encoded()
        XCTAssertEqual(answer.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, 0) }, answer.count)
        let (exitCode, output) = try child.wait(timeoutSeconds: Self.stepTimeoutSeconds)
        return Exchange(request: frame, exitCode: exitCode, output: output)
    }

    func testSingleValueIsDecodedAndSuccessExitsZero() throws {
        let tally = ProcessingTally(processed: 1, failed: 0, total: 1, secondsSpent: 0.00005)
        let result = try exchange(["-s", "h", "-k", "k", "-o", "v\"1"], reply: TrapperResponse(status: .success, tally: tally))
        XCTAssertEqual(result.request.flags, .zabbixProtocol)
        XCTAssertEqual(result.request.payload.first, UInt8(ascii: "{"))
        let request = try SenderDataRequest(json: result.request.payload[...])
        XCTAssertEqual(request.values, [SenderValue(host: "h", key: "k", value: "v\"1")])
        XCTAssertEqual(result.exitCode, 0, result.output)
        XCTAssertTrue(
            result.output.contains("\"processed: 1; failed: 0; total: 1; seconds spent: 0.000050\""), result.output)
        XCTAssertTrue(result.output.contains("sent: 1; skipped: 0; total: 1"), result.output)
    }

    func testEscapedAndNonASCIIValuesSurviveTheRoundTrip() throws {
        let value = "back\\slash \"quoted\" tab\there ü € {\"json\":[1,2]}"
        let tally = ProcessingTally(processed: 1, failed: 0, total: 1, secondsSpent: 0.001)
        let result = try exchange(
            ["-s", "web 01", "-k", "app.stats[\"a b\",c]", "-o", value], reply: TrapperResponse(status: .success, tally: tally))
        let request = try SenderDataRequest(json: result.request.payload[...])
        XCTAssertEqual(request.values, [SenderValue(host: "web 01", key: "app.stats[\"a b\",c]", value: value)])
        XCTAssertEqual(result.exitCode, 0, result.output)
    }

    func testPartialSuccessExitsTwo() throws {
        let directory = try TemporaryDirectory()
        let input = try directory.write("values.txt", "h k1 1700000000 one\nh k2 1700000001 \"two words\"\n")
        let tally = ProcessingTally(processed: 1, failed: 1, total: 2, secondsSpent: 0.000123)
        let result = try exchange(["-T", "-i", input], reply: TrapperResponse(status: .success, tally: tally))
        let request = try SenderDataRequest(json: result.request.payload[...])
        XCTAssertEqual(request.values.map(\.key), ["k1", "k2"])
        XCTAssertEqual(request.values.map(\.value), ["one", "two words"])
        XCTAssertEqual(request.values.map(\.clock), [1_700_000_000, 1_700_000_001])
        XCTAssertNotNil(request.clock, "-T adds the request's own clock")
        XCTAssertEqual(result.exitCode, 2, result.output)
        XCTAssertTrue(result.output.contains("processed: 1; failed: 1; total: 2"), result.output)
    }

    func testFailedResponseExitsOne() throws {
        let result = try exchange(
            ["-s", "h", "-k", "k", "-o", "1"],
            reply: TrapperResponse(status: .failed, info: "cannot find pair with name \"data\""))
        XCTAssertEqual(result.exitCode, 1, result.output)
    }
}

/// A blocking TCP listener on 127.0.0.1 with a kernel-chosen port.
final class LoopbackListener {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let listening = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listening >= 0 else { throw POSIXFailure(call: "socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listening, $0, length) == 0 && listen(listening, 8) == 0 && getsockname(listening, $0, &length) == 0
            }
        }
        guard ready else {
            let failure = POSIXFailure(call: "bind/listen")
            Glibc.close(listening)
            throw failure
        }
        descriptor = listening
        port = UInt16(bigEndian: address.sin_port)
    }

    /// Waits at most `timeoutSeconds` for one connection.
    func accept(timeoutSeconds: Int32) throws -> Int32 {
        var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, timeoutSeconds * 1000) == 1 else { throw POSIXFailure(call: "no connection within \(timeoutSeconds) s") }
        let connection = Glibc.accept(descriptor, nil, nil)
        guard connection >= 0 else { throw POSIXFailure(call: "accept") }
        var timeout = timeval(tv_sec: Int(timeoutSeconds), tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return connection
    }

    func close() {
        Glibc.close(descriptor)
    }
}

/// A child process whose stdout and stderr are collected.
final class SpawnedProcess {
    private var pid: pid_t = 0
    private let output: Int32

    init(path: String, arguments: [String]) throws {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw POSIXFailure(call: "pipe") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let status = posix_spawn(&pid, path, &actions, nil, argv, environ)
        Glibc.close(pipeEnds[1])
        output = pipeEnds[0]
        guard status == 0 else {
            Glibc.close(output)
            throw POSIXFailure(call: "posix_spawn \(path)", code: status)
        }
    }

    /// Exit code and everything printed; kills the child after `timeoutSeconds`.
    func wait(timeoutSeconds: Int32) throws -> (Int32, String) {
        defer { Glibc.close(output) }
        let deadline = monotonicSeconds() + Double(timeoutSeconds)
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 {
            if monotonicSeconds() > deadline {
                kill(pid, SIGKILL)
                waitpid(pid, &status, 0)
                throw POSIXFailure(call: "child still running after \(timeoutSeconds) s", code: ETIMEDOUT)
            }
            usleep(10_000)
        }
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            collected.append(contentsOf: chunk[..<count])
        }
        // WIFEXITED / WEXITSTATUS are macros Swift does not import.
        let exitCode = status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
        return (exitCode, String(decoding: collected, as: UTF8.self))
    }
}
