import ZabbixProtocol

/// Values sent in one request to every destination.
public struct SenderBatch: Sendable {
    public var values: [SenderValue]
    /// Refusal of these values is a problem; refusal of the others is expected (the classic
    /// template lacks some keys) and only reported.
    public var isCore: Bool

    public init(values: [SenderValue], isCore: Bool) {
        self.values = values
        self.isCore = isCore
    }
}

/// What the servers said, in zabbix_sender's words, and the exit code that follows, as
/// zabbix_sender 6.0 decides it (`sender_threads_wait`, `check_response`): 0 when every
/// destination processed every value, 1 when no destination took the data, 2 otherwise (a
/// destination failed while another succeeded, or a server refused values). Values count once,
/// however many destinations get them.
public struct SendReport: Sendable {
    public let host: String
    public private(set) var replies: [String] = []
    public private(set) var problems: [String] = []
    public private(set) var sent = 0
    public private(set) var total = 0
    private var anyCoreFailure = false
    private var allCoreFailed = true
    private var anyRefusal = false
    private var sawCore = false

    public init(host: String) { self.host = host }

    public var exitCode: Int32 {
        if sawCore && allCoreFailed { return 1 }
        return anyCoreFailure || anyRefusal ? 2 : 0
    }

    /// Records one batch's deliveries, one per destination, in the destinations' order.
    public mutating func add(_ batch: SenderBatch, _ deliveries: [ClusterDelivery]) {
        let keys = batch.values.map(\.key)
        let keyList = keys.count == 1 ? keys[0] : "\(keys.count) keys \(keys.joined(separator: ", "))"
        var delivered = false
        for delivery in deliveries {
            for unreachable in delivery.connectFailures where delivery.node != nil {
                replies.append("\(unreachable); used the next node of the cluster")
            }
            switch delivery.result {
            case .failure(let error):
                problems.append("error: \(error)")
                if batch.isCore { anyCoreFailure = true }
            case .success(let response):
                let node = delivery.node.map(String.init(describing:)) ?? "?"
                replies.append("Response from \"\(node)\": \"\(response.info ?? response.status.rawValue)\"")
                guard response.status == .success else {
                    problems.append("error: \(node) answered \"failed\": \(response.info ?? "no reason given")")
                    if batch.isCore { anyCoreFailure = true }
                    continue
                }
                delivered = true
                guard let tally = response.tally, tally.failed > 0 else { continue }
                if batch.isCore {
                    problems.append("""
                        \(node) refused \(tally.failed) of \(tally.total) values (\(keyList)) for host "\(host)": \
                        check that host "\(host)" exists in Zabbix with trapper items of these keys, is enabled, and is not monitored by a proxy
                        """)
                    anyRefusal = true
                } else {
                    replies.append("\(node) refused \(keyList): the classic template has no such item; add a trapper item to graph it")
                }
            }
        }
        total += batch.values.count
        if delivered { sent += batch.values.count }
        if batch.isCore {
            sawCore = true
            if delivered { allCoreFailed = false }
        }
    }

    /// zabbix_sender's last line.
    public var summary: String { "sent: \(sent); skipped: 0; total: \(total)" }
}
