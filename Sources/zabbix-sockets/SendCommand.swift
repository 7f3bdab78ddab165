import ArgumentParser
import NIOCore
import Posix
import SocketStats
import StatsOutput
import ZabbixConfig
import ZabbixProtocol
import ZabbixSender

import Glibc

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Count sockets once and push the counts to Zabbix as trapper values, without zabbix_sender.",
        discussion: """
        Sends the stats JSON as the value of the trapper item sockets.stats (template "Linux sockets by \
        Zabbix trapper"), stamped with the time it was collected. Prints the server's reply and exits as \
        zabbix_sender does: 0 all processed, 2 some values refused, 1 nothing delivered.

        --tls-connect psk (or TLSConnect=psk in the -c config) sends over TLS 1.2 with a pre-shared key, \
        as zabbix_sender does; the key is read from --tls-psk-file / TLSPSKFile and never printed.

        --classic replaces the classic `ss | awk | zabbix_sender` UserParameter: it sends sock[ESTAB], \
        sock[TIME-WAIT], ... (LISTEN even when 0, CLOSING too) and prints only the UDP socket count:
          UserParameter=sock[*],/usr/local/bin/zabbix-sockets send --classic -c /etc/zabbix/zabbix_agentd.conf
        """
    )

    @OptionGroup var sender: SenderFlags
    @OptionGroup var collection: CollectionFlags

    @Flag(help: "Send the classic template's trapper keys sock[<ss state>] and print only the UDP socket count.")
    var classic = false

    @Flag(name: .shortAndLong, help: "With --classic, also print the servers' replies (on stderr).")
    var verbose = false

    func run() async throws {
        let target: SenderFlags.Resolved
        do {
            target = try sender.resolve()
        } catch let error as SenderFlags.SettingsError {
            throw fail(error.description)
        }
        let collectedAt = WallClock.now()
        let snapshot = try collection.collect()
        let batches = classic
            ? ClassicKeys.batches(snapshot.counts, host: target.host, at: collectedAt)
            : [SenderBatch(values: [SenderValue(host: target.host, key: StatsDocument.itemKey, value: StatsDocument.json(snapshot),
                                          clock: collectedAt.seconds, ns: collectedAt.nanoseconds)],
                     isCore: true)]

        let client = ZabbixSenderClient(timeout: .seconds(Int64(target.timeoutSeconds)), psk: target.psk)
        var report = SendReport(host: target.host)
        // Later batches go only where the first one got through: a silent server costs one
        // timeout, not one per batch.
        var reachable = target.destinations
        for batch in batches where !reachable.isEmpty {
            let deliveries: [ClusterDelivery]
            do {
                deliveries = try await client.send(SenderDataRequest(values: batch.values), toEach: reachable)
            } catch {
                throw fail("cannot build the request: \(error)")
            }
            report.add(batch, deliveries)
            reachable = zip(reachable, deliveries).compactMap { cluster, delivery in
                if case .failure = delivery.result { return nil }
                return delivery.cluster
            }
        }

        if classic {
            // The agent stores stdout as the sock[UDP] item's value; it also reads stderr, so
            // messages go there only when something needs the admin.
            if verbose { printReplies(report, to: 2) }
            if report.exitCode != 0 { throw fail(report.problems.joined(separator: "; "), code: report.exitCode) }
            print(snapshot.counts.udp.total)
            return
        }
        printReplies(report, to: 1)
        for problem in report.problems { writeLine("zabbix-sockets: \(problem)", to: 2) }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

/// The classic template's keys: `ss` state names (sepich/zabbix template_app_sockets.xml).
enum ClassicKeys {
    static let core: [TCPState] = [.established, .synSent, .synRecv, .finWait1, .finWait2, .timeWait, .closeWait, .lastAck, .listen]
    /// `ss` prints CLOSING, the classic recipe sent it, and the classic template has no item for it.
    static let extra: [TCPState] = [.closing]

    static func batches(_ counts: SocketCounts, host: String, at time: WallClock) -> [SenderBatch] {
        func values(_ states: [TCPState]) -> [SenderValue] {
            states.map { SenderValue(host: host, key: "sock[\($0.ssName)]", value: String(counts.tcp[$0]),
                                     clock: time.seconds, ns: time.nanoseconds) }
        }
        return [SenderBatch(values: values(core), isCore: true), SenderBatch(values: values(extra), isCore: false)]
    }
}

private func printReplies(_ report: SendReport, to fd: Int32) {
    for reply in report.replies { writeLine(reply, to: fd) }
    writeLine(report.summary, to: fd)
}

func writeLine(_ text: String, to fd: Int32) {
    var line = text + "\n"
    line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}
