import Foundation
import XCTest

/// `zabbix-sockets run`'s signals, with no Zabbix server at all: SIGHUP re-reads the config (and
/// keeps the old one when the new one is broken), SIGTERM exits 0 and keeps what it could not send.
/// Delivery against a real server is proven by e2e/test_daemon.py.
final class RunSignalsIntegrationTests: NamespaceTestCase {
    func testSIGHUPReloadsAndSIGTERMStopsCleanly() throws {
        let scratch = try makeScratchDirectory()
        let config = scratch.appendingPathComponent("agent.conf")
        // Ports 1 and 2 on loopback: privileged, nothing listens there, so every delivery fails.
        try "ServerActive=127.0.0.1:1\nHostname=before\n".write(to: config, atomically: true, encoding: .utf8)
        let log = Tool.tempFile("run-log")
        defer { try? FileManager.default.removeItem(at: log) }
        let daemon = try Tool.process(
            [try statsBinary(), "run", "-c", config.path, "--interval", "0.2", "--sections", "counts",
             "--buffer-dir", scratch.appendingPathComponent("buffer").path, "--shutdown-seconds", "2"],
            stdout: log, stderr: log)
        try daemon.run()
        defer { if daemon.isRunning { Tool.wait(daemon, timeout: 0) } }
        func logged(_ text: String) -> Bool { ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains(text) }

        try waitUntil("the first delivery attempt", timeout: 10) { logged("cannot deliver to 127.0.0.1:1:") }
        try "ServerActive=127.0.0.1:2\nHostname=after\n".write(to: config, atomically: true, encoding: .utf8)
        kill(daemon.processIdentifier, SIGHUP)
        try waitUntil("the reload", timeout: 10) { logged("configuration reloaded") }
        try waitUntil("delivery to the new server", timeout: 10) { logged("cannot deliver to 127.0.0.1:2:") }

        try "ServerActive=not a server\n".write(to: config, atomically: true, encoding: .utf8)
        kill(daemon.processIdentifier, SIGHUP)
        try waitUntil("the refused reload", timeout: 10) { logged("configuration reload failed, keeping the previous one") }
        XCTAssertTrue(daemon.isRunning, "a broken config on SIGHUP must not stop the daemon")

        kill(daemon.processIdentifier, SIGTERM)
        XCTAssertTrue(Tool.wait(daemon, timeout: 10), "SIGTERM: exits within the shutdown deadline")
        XCTAssertEqual(daemon.terminationStatus, 0)
        XCTAssertTrue(logged("values stay buffered for the next start"), (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}
