import ZabbixProtocol

/// The keys a passive endpoint answers: the agent's own (`agent.ping`, `agent.version`,
/// `agent.hostname`) and those its owner adds. Everything else is not supported, in the agent's words.
public struct AgentItems: Sendable {
    /// Answers one key's parameters (nil when the key has no brackets).
    public typealias Handler = @Sendable (_ parameters: [String]?) -> PassiveCheckResult

    public static let unsupportedKey = "Unsupported item key."
    public static let noParametersAllowed = "Item does not allow parameters."

    public var hostname: String
    public var version: String
    public var handlers: [String: Handler]

    public init(hostname: String, version: String, handlers: [String: Handler] = [:]) {
        self.hostname = hostname
        self.version = version
        self.handlers = handlers
    }

    public func answer(_ key: String) -> PassiveCheckResult {
        let parsed: ItemKey
        do {
            parsed = try ItemKey(parsing: key)
        } catch {
            return .notSupported(error.description)
        }
        let fixed: String?
        switch parsed.name {
        case "agent.ping": fixed = "1"
        case "agent.version": fixed = version
        case "agent.hostname": fixed = hostname
        default: fixed = nil
        }
        if let fixed {
            return parsed.parameters == nil ? .value(fixed) : .notSupported(Self.noParametersAllowed)
        }
        guard let handler = handlers[parsed.name] else { return .notSupported(Self.unsupportedKey) }
        return handler(parsed.parameters)
    }
}
