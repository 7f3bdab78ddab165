import ArgumentParser
import NIOCore
import SocketStats
import StatsOutput
import ZabbixProtocol
import ZabbixSender

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Count sockets once and push the counts to Zabbix as trapper values, without zabbix_sender.",
        discussion: """
        Sends the stats JSON as the value of the trapper item sockets.stats (template "Linux sockets by
        Zabbix trapper"), stamped with the time it was collected. Prints the server's reply and exits as
        zabbix_sender does: 0 all processed, 2 some values refused, 1 nothing delivered.

        --tls-connect psk (or TLSConnect=psk in the -c config) sends over TLS 1.2 with a pre-shared key,
        as zabbix_sender does; the key is read from --tls-psk-file / TLSPSKFile and never printed.

        --classic replaces the classic `ss | awk | zabbix_sender` UserParameter: it sends sock[ESTAB],
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
            : [Batch(values: [SenderValue(host: target.host, key: StatsDocument.itemKey, value: StatsDocument.json(snapshot),
                                          clock: collectedAt.seconds, ns: collectedAt.nanoseconds)],
                     isCore: true)]

        let client = ZabbixSenderClient(timeout: .seconds(Int64(target.timeoutSeconds)), psk: target.psk)
        var report = SendReport(host: target.host)
        for batch in batches {
            let deliveries: [ClusterDelivery]
            do {
                deliveries = try await client.send(SenderDataRequest(values: batch.values), toEach: target.destinations)
            } catch {
                throw fail("cannot build the request: \(error)")
            }
            report.add(batch, deliveries)
        }

        if classic {
            // The agent stores stdout as the sock[UDP] item's value; it also reads stderr, so
            // messages go there only when something needs the admin.
            if verbose { report.printReplies(to: 2) }
            if report.exitCode != 0 { throw fail(report.problems.joined(separator: "; "), code: report.exitCode) }
            print(snapshot.counts.udp.total)
            return
        }
        report.printReplies(to: 1)
        for problem in report.problems { writeLine("zabbix-sockets: \(problem)", to: 2) }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}

/// Values sent in one request. Classic keys the classic template lacks travel apart, so that
/// their refusal is told apart from a host or template problem.
struct Batch {
    var values: [SenderValue]
    /// Refusal of these values is a problem; refusal of the others is expected with the classic template.
    var isCore: Bool
}

/// The classic template's keys: `ss` state names (sepich/zabbix template_app_sockets.xml).
enum ClassicKeys {
    static let core: [(ssName: String, state: TCPState)] = [
        ("ESTAB", .established), ("SYN-SENT", .synSent), ("SYN-RECV", .synRecv), ("FIN-WAIT-1", .finWait1),
        ("FIN-WAIT-2", .finWait2), ("TIME-WAIT", .timeWait), ("CLOSE-WAIT", .closeWait), ("LAST-ACK", .lastAck),
        ("LISTEN", .listen),
    ]
    /// `ss` prints CLOSING, the classic recipe sent it, and the classic template has no item for it.
    static let extra: [(ssName: String, state: TCPState)] = [("CLOSING", .closing)]

    static func batches(_ counts: SocketCounts, host: String, at time: WallClock) -> [Batch] {
        func values(_ keys: [(ssName: String, state: TCPState)]) -> [SenderValue] {
            keys.map { SenderValue(host: host, key: "sock[\($0.ssName)]", value: String(counts.tcp[$0.state]),
                                   clock: time.seconds, ns: time.nanoseconds) }
        }
        return [Batch(values: values(core), isCore: true), Batch(values: values(extra), isCore: false)]
    }
}

/// What the servers said, in zabbix_sender's words, and the exit code that follows.
struct SendReport {
    let host: String
    private(set) var replies: [String] = []
    private(set) var problems: [String] = []
    private(set) var sent = 0
    private(set) var total = 0
    /// 0 all processed, 2 some refused, 1 some server got nothing (zabbix_sender's codes).
    private(set) var exitCode: Int32 = 0

    init(host: String) { self.host = host }

    mutating func add(_ batch: Batch, _ deliveries: [ClusterDelivery]) {
        let keys = batch.values.map(\.key)
        let keyList = keys.count == 1 ? keys[0] : "\(keys.count) keys \(keys.joined(separator: ", "))"
        for delivery in deliveries {
            total += batch.values.count
            for unreachable in delivery.connectFailures where delivery.node != nil {
                replies.append("\(unreachable); used the next node of the cluster")
            }
            switch delivery.result {
            case .failure(let error):
                problems.append("error: \(error)")
                exitCode = 1
            case .success(let response):
                let node = delivery.node.map(String.init(describing:)) ?? "?"
                replies.append("Response from \"\(node)\": \"\(response.info ?? response.status.rawValue)\"")
                guard response.status == .success else {
                    problems.append("error: \(node) answered \"failed\": \(response.info ?? "no reason given")")
                    exitCode = 1
                    continue
                }
                sent += batch.values.count
                guard let tally = response.tally, tally.failed > 0 else { continue }
                if batch.isCore {
                    problems.append("""
                        \(node) refused \(tally.failed) of \(tally.total) values (\(keyList)) for host "\(host)": \
                        check that host "\(host)" exists in Zabbix with trapper items of these keys, is enabled, and is not monitored by a proxy
                        """)
                    if exitCode == 0 { exitCode = 2 }
                } else {
                    replies.append("\(node) refused \(keyList): the classic template has no such item; add a trapper item to graph it")
                }
            }
        }
    }

    func printReplies(to fd: Int32) {
        for reply in replies { writeLine(reply, to: fd) }
        writeLine("sent: \(sent); skipped: 0; total: \(total)", to: fd)
    }
}

func writeLine(_ text: String, to fd: Int32) {
    var line = text + "\n"
    line.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}
