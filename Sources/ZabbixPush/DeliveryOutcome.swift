import ZabbixProtocol
import ZabbixSender

/// What one attempt to deliver a batch means for the buffer and the log. Pure, so every case is
/// unit-tested without a server.
enum DeliveryOutcome: Equatable {
    /// Every value was taken: acknowledge.
    case delivered
    /// Some values were not taken although they may have reached the server before (an earlier
    /// process, or a lost reply): the server drops repeated ids and counts them as failed.
    /// Acknowledge; not a refusal.
    case repeatsDropped(failed: Int, total: Int)
    /// The server refused values (unknown host or item, disabled, ...): acknowledge, so a refused
    /// value never blocks the ones behind it, and log the cause once.
    case refused(failed: Int, total: Int)
    /// Nothing is known to have arrived: keep the batch and retry with backoff.
    case failed(String)

    /// Judges a delivery to `destination`. `mayRepeat`: the batch starts at or below an id that
    /// may already have been sent.
    static func judge(
        _ result: Result<TrapperResponse, ZabbixSendError>, from node: ZabbixAddress?, destination: String,
        mayRepeat: Bool
    ) -> DeliveryOutcome {
        switch result {
        case .failure(let error):
            return .failed(error.description)
        case .success(let response) where response.status == .failed:
            let who = node.map(String.init(describing:)) ?? destination
            return .failed("\(who) answered failed: \(response.info ?? "no reason given")")
        case .success(let response):
            guard let tally = response.tally, tally.failed > 0 else { return .delivered }
            return mayRepeat
                ? .repeatsDropped(failed: tally.failed, total: tally.total)
                : .refused(failed: tally.failed, total: tally.total)
        }
    }

    /// True when the buffer may forget the batch.
    var acknowledges: Bool {
        if case .failed = self { return false }
        return true
    }
}
