import Foundation
import Glibc
import XCTest

@testable import DurableQueue

/// The buffer against an attacker who can write into its directory and against an unlucky disk:
/// full (a real tmpfs too small), read-only (a real remount), and files lost.
final class HostileConditionsTests: XCTestCase {
    // MARK: - Links and permissions

    func testPlantedSegmentLinkIsRefusedAndItsTargetUntouched() throws {
        let directory = temporaryQueueDirectory()
        XCTAssertEqual(mkdir(directory, 0o700), 0)
        let victim = try makeVictim()
        XCTAssertEqual(symlink(victim, directory + "/00000000000000000001.seg"), 0)
        XCTAssertThrowsError(try openQueue(directory)) { error in
            XCTAssertEqual(error as? DurableQueueError, .system(operation: "open", path: directory + "/00000000000000000001.seg", errno: ELOOP))
        }
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious")
    }

    func testPlantedLinksAsStateFilesAreReplacedNeverFollowed() throws {
        let directory = temporaryQueueDirectory()
        XCTAssertEqual(mkdir(directory, 0o700), 0)
        let victim = try makeVictim()
        for name in ["state", "state.copy", "state.tmp"] {
            XCTAssertEqual(symlink(victim, directory + "/" + name), 0)
        }
        let log = EventLog()
        let queue = try openQueue(directory, log: log)
        try queue.append([Array("one".utf8)])
        _ = try queue.read(consumer: "c", limit: 10)
        try queue.acknowledge(consumer: "c", through: 1)
        queue.close()
        XCTAssertEqual(try String(contentsOfFile: victim, encoding: .utf8), "precious")
        for name in ["state", "state.copy"] {
            var status = stat()
            XCTAssertEqual(lstat(directory + "/" + name, &status), 0)
            XCTAssertEqual(status.st_mode & S_IFMT, S_IFREG, "\(name) is the queue's own file now")
        }
        // A segment appended after the links were planted is the queue's own file as well.
        XCTAssertEqual(try openQueue(directory).stats.nextSequence, 2)
    }

    func testDirectoryWritableByOthersIsRefused() throws {
        let directory = temporaryQueueDirectory()
        XCTAssertEqual(mkdir(directory, 0o700), 0)
        XCTAssertEqual(chmod(directory, 0o777), 0)
        XCTAssertThrowsError(try openQueue(directory)) { error in
            guard case .unsafeDirectory(let path, let reason)? = error as? DurableQueueError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(path, directory)
            XCTAssertTrue(reason.contains("writable by group or others (mode 777)"), reason)
        }
        XCTAssertEqual(chmod(directory, 0o720), 0)
        XCTAssertThrowsError(try openQueue(directory))
        XCTAssertEqual(chmod(directory, 0o750), 0)
        XCTAssertNoThrow(try openQueue(directory).close())
    }

    func testDirectoryOwnedByAnotherUserIsRefused() throws {
        let directory = temporaryQueueDirectory()
        XCTAssertEqual(mkdir(directory, 0o700), 0)
        let nobody: uid_t = 65534
        XCTAssertEqual(chown(directory, nobody, gid_t(nobody)), 0, "the tests run as root")
        XCTAssertThrowsError(try openQueue(directory)) { error in
            guard case .unsafeDirectory(_, let reason)? = error as? DurableQueueError else { return XCTFail("\(error)") }
            XCTAssertTrue(reason.contains("owned by uid 65534"), reason)
        }
    }

    func testLockHoldsWithoutAnyLockFile() throws {
        let directory = temporaryQueueDirectory()
        let first = try openQueue(directory)
        // Nothing in the directory is the lock: deleting every file leaves the directory locked.
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        XCTAssertThrowsError(try openQueue(directory)) { error in
            XCTAssertEqual(error as? DurableQueueError, .directoryInUse(path: directory))
        }
        first.close()
        XCTAssertNoThrow(try openQueue(directory).close())
    }

    // MARK: - Lost state

    func testLosingOneStateFileKeepsPositionsAndTheOwnersState() throws {
        for lost in ["state", "state.copy"] {
            let directory = temporaryQueueDirectory()
            let queue = try openQueue(directory)
            queue.state["session"] = "kept"
            try queue.append((1...5).map { Array("record \($0)".utf8) })
            _ = try queue.read(consumer: "c", limit: 3)
            try queue.acknowledge(consumer: "c", through: 3)
            queue.close()
            XCTAssertEqual(unlink(directory + "/" + lost), 0)

            let log = EventLog()
            let reopened = try openQueue(directory, log: log)
            XCTAssertEqual(reopened.state["session"], "kept", lost)
            XCTAssertEqual(try reopened.read(consumer: "c", limit: 10).map(\.sequence), [4, 5], "no delivered record again after losing \(lost)")
            XCTAssertEqual(log.stateRecoveries, [], "the whole copy was used")
            XCTAssertTrue(log.events.contains(.stateCopyRepaired(path: directory + "/" + lost, .missing)), "\(log.events)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/" + lost), "the lost copy is written again")
        }
    }

    func testNewerCopyWinsAfterACrashBetweenTheTwoWrites() throws {
        let directory = temporaryQueueDirectory()
        let queue = try openQueue(directory)
        try queue.append((1...4).map { Array("r\($0)".utf8) })
        _ = try queue.read(consumer: "c", limit: 1)
        try queue.acknowledge(consumer: "c", through: 1)
        let older = try Data(contentsOf: URL(fileURLWithPath: directory + "/state.copy"))
        try queue.acknowledge(consumer: "c", through: 3)
        queue.close()
        // As if the crash came after `state` was replaced and before `state.copy` was.
        try older.write(to: URL(fileURLWithPath: directory + "/state.copy"))
        XCTAssertEqual(try openQueue(directory).read(consumer: "c", limit: 10).map(\.sequence), [4])
    }

    // MARK: - Full and read-only disks

    func testFullDiskRefusesAppendsThenRecoversOnceDeliveredRecordsFreeTheirSpace() throws {
        let mount = try mountTmpfs(kibibytes: 96)
        let directory = mount + "/queue"
        let limits = QueueLimits(segmentBytes: 16 << 10, maxTotalBytes: 1 << 20, maxRecordBytes: 8 << 10, maxAgeSeconds: nil)
        let queue = try openQueue(directory, limits: limits, consumers: ["c"])
        let record = [UInt8](repeating: 0xAB, count: 4 << 10)
        var stored = 0
        var failure: Error?
        for _ in 0..<64 {
            do {
                try queue.append([record])
                stored += 1
            } catch {
                failure = error
                break
            }
        }
        guard case .system(_, _, ENOSPC)? = failure as? DurableQueueError else {
            return XCTFail("expected ENOSPC after \(stored) records, got \(String(describing: failure))")
        }
        // Failed appends leave no empty segments behind and do not hide what is stored.
        for _ in 0..<10 { XCTAssertThrowsError(try queue.append([record])) }
        XCTAssertLessThanOrEqual(queue.stats.segmentCount, stored / 4 + 2)
        let held = try queue.read(consumer: "c", limit: 1000)
        XCTAssertEqual(held.count, stored)

        // Delivering everything frees every byte, the newest segment's too.
        try queue.acknowledge(consumer: "c", through: held.last!.sequence)
        XCTAssertEqual(queue.stats.totalBytes, 0)
        XCTAssertNoThrow(try queue.append([record]), "appends work again once space is back")
        XCTAssertEqual(try queue.read(consumer: "c", limit: 10).map(\.sequence), [held.last!.sequence + 12])
        queue.close()
        XCTAssertEqual(try openQueue(directory, limits: limits).read(consumer: "c", limit: 10).count, 1)
    }

    func testReadOnlyRemountKeepsDeliveringAndRecoversWhenWritableAgain() throws {
        let mount = try mountTmpfs(kibibytes: 1024)
        let directory = mount + "/queue"
        let queue = try openQueue(directory, consumers: ["c"])
        try queue.append((1...6).map { Array("value \($0)".utf8) })
        XCTAssertEqual(runCommand("/bin/mount", ["-o", "remount,ro", mount]), 0)
        XCTAssertThrowsError(try queue.append([Array("lost".utf8)])) { error in
            guard case .system(_, _, EROFS)? = error as? DurableQueueError else { return XCTFail("\(error)") }
        }
        // Reading goes on; an acknowledgement that cannot be saved still moves the position.
        XCTAssertEqual(try queue.read(consumer: "c", limit: 2).map(\.sequence), [1, 2])
        XCTAssertThrowsError(try queue.acknowledge(consumer: "c", through: 2))
        XCTAssertEqual(try queue.read(consumer: "c", limit: 10).map(\.sequence), [3, 4, 5, 6])

        XCTAssertEqual(runCommand("/bin/mount", ["-o", "remount,rw", mount]), 0)
        try queue.append([Array("after".utf8)])
        try queue.acknowledge(consumer: "c", through: 6)
        queue.close()
        let reopened = try openQueue(directory)
        XCTAssertEqual(try reopened.read(consumer: "c", limit: 10).map(\.payload), [Array("after".utf8)])
    }

    // MARK: - Helpers

    private func makeVictim() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("victim-\(UUID().uuidString)").path
        try "precious".write(toFile: path, atomically: false, encoding: .utf8)
        addTeardownBlock { unlink(path) }
        return path
    }

    /// A real tmpfs of `kibibytes`, unmounted after the test.
    private func mountTmpfs(kibibytes: Int) throws -> String {
        let parent = temporaryQueueDirectory()
        XCTAssertEqual(mkdir(parent, 0o700), 0)
        let status = runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kibibytes)k,mode=0700", "tmpfs", parent])
        try XCTSkipIf(status != 0 && geteuid() != 0, "mounting a tmpfs needs root")
        XCTAssertEqual(status, 0, "mount -t tmpfs")
        addTeardownBlock { _ = runCommand("/bin/umount", ["-l", parent]) }
        return parent
    }
}

/// Runs a program to completion and returns its exit status.
@discardableResult
func runCommand(_ path: String, _ arguments: [String]) -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    do { try process.run() } catch { return -1 }
    process.waitUntilExit()
    return process.terminationStatus
}
