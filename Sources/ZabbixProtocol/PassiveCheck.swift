import ByteCoding

/// What a Zabbix server, proxy or `zabbix_get` asks a passive agent (port 10050) in one frame:
/// the plain item key of 6.0 and earlier (`agent.ping`), or the JSON request of 7.0
/// (`{"request":"passive checks","data":[{"key":"agent.ping","timeout":3}]}`).
public struct PassiveCheckRequest: Equatable, Sendable {
    /// How the request came, and so how the reply must go.
    public enum Form: Equatable, Sendable {
        case plain
        case json
    }

    public struct Item: Equatable, Sendable {
        public var key: String
        /// The server's per-item timeout in seconds (JSON form only).
        public var timeoutSeconds: Int?

        public init(key: String, timeoutSeconds: Int? = nil) {
            self.key = key
            self.timeoutSeconds = timeoutSeconds
        }
    }

    public static let requestName = "passive checks"
    /// A JSON request may list several items; more than this is refused rather than run.
    public static let maximumItems = 16

    public var form: Form
    public var items: [Item]

    public init(form: Form, items: [Item]) {
        self.form = form
        self.items = items
    }

    /// Parses a request payload. A payload that starts with `{` is the JSON form (no key starts
    /// with `{`); anything else is a key, without the trailing CR and LF the agent strips.
    public init(payload: ArraySlice<UInt8>) throws(PassiveCheckError) {
        guard payload.first == UInt8(ascii: "{") else {
            var key = payload
            while let last = key.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") { key = key.dropLast() }
            guard !key.contains(0), let text = String(validating: key, as: UTF8.self) else {
                throw PassiveCheckError(form: .plain, reason: ItemKeyError.invalidFormat.description)
            }
            self.init(form: .plain, items: [Item(key: text)])
            return
        }
        let json: JSONValue
        do {
            json = try JSONValue.parse(payload)
        } catch {
            throw PassiveCheckError(form: .json, reason: "cannot parse request: \(error)")
        }
        guard case .string(let request)? = json["request"] else {
            throw PassiveCheckError(form: .json, reason: "cannot find the \"request\" tag")
        }
        guard request == Self.requestName else {
            throw PassiveCheckError(form: .json, reason: "unsupported request \"\(request)\"")
        }
        guard case .array(let rows)? = json["data"], !rows.isEmpty else {
            throw PassiveCheckError(form: .json, reason: "cannot find the \"data\" array")
        }
        guard rows.count <= Self.maximumItems else {
            throw PassiveCheckError(form: .json, reason: "\(rows.count) items requested, at most \(Self.maximumItems)")
        }
        var items: [Item] = []
        for row in rows {
            guard case .string(let key)? = row["key"] else {
                throw PassiveCheckError(form: .json, reason: "cannot find the \"key\" tag")
            }
            var timeout: Int?
            switch row["timeout"] {
            case .number(let text)?, .string(let text)?: timeout = Int(text)
            default: break
            }
            items.append(Item(key: key, timeoutSeconds: timeout))
        }
        self.init(form: .json, items: items)
    }
}

/// A request that cannot be answered item by item; the reply still tells the server why.
public struct PassiveCheckError: Error, Equatable, Sendable, CustomStringConvertible {
    public var form: PassiveCheckRequest.Form
    public var reason: String

    public init(form: PassiveCheckRequest.Form, reason: String) {
        self.form = form
        self.reason = reason
    }

    public var description: String { reason }

    /// The payload that tells the server: `ZBX_NOTSUPPORTED\0reason`, or the JSON `error`.
    public var replyPayload: [UInt8] {
        switch form {
        case .plain:
            return PassiveCheckResult.notSupported(reason).plainPayload
        case .json:
            var out = PassiveCheckResult.jsonReplyHead
            out += Array(",\"error\":".utf8)
            appendJSONString(reason, to: &out)
            out.append(UInt8(ascii: "}"))
            return out
        }
    }
}

/// The answer to one item.
public enum PassiveCheckResult: Equatable, Sendable {
    case value(String)
    /// The item is not supported; the text is what Zabbix shows as the item's error.
    case notSupported(String)

    public static let notSupportedMarker = "ZBX_NOTSUPPORTED"
    /// The protocol version the JSON form answers with: the one that introduced it.
    public static let jsonProtocolVersion = "7.0.0"

    /// The reply payload for `results`, the answers to `request.items` in order. The plain form
    /// answers one item (a plain request holds one).
    public static func replyPayload(_ results: [PassiveCheckResult], form: PassiveCheckRequest.Form) -> [UInt8] {
        switch form {
        case .plain:
            return results.first?.plainPayload ?? PassiveCheckResult.notSupported("").plainPayload
        case .json:
            var out = jsonReplyHead
            out += Array(",\"data\":[".utf8)
            for (index, result) in results.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                switch result {
                case .value(let value):
                    out += Array("{\"value\":".utf8)
                    appendJSONString(value, to: &out)
                case .notSupported(let reason):
                    out += Array("{\"error\":".utf8)
                    appendJSONString(reason, to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
            out += Array("]}".utf8)
            return out
        }
    }

    /// The value as is, or `ZBX_NOTSUPPORTED`, a NUL and the reason (no final NUL; without a
    /// reason just the marker), as `zbx_send_response` of the 6.0 agent writes them.
    var plainPayload: [UInt8] {
        switch self {
        case .value(let value):
            return Array(value.utf8)
        case .notSupported(let reason):
            var out = Array(Self.notSupportedMarker.utf8)
            if !reason.isEmpty {
                out.append(0)
                out += Array(reason.utf8)
            }
            return out
        }
    }

    /// `{"version":"7.0.0","variant":1`: the fields a 7.0 agent's reply starts with (variant 1:
    /// the C agent, whose protocol this is).
    static var jsonReplyHead: [UInt8] {
        var out = Array("{\"version\":".utf8)
        appendJSONString(jsonProtocolVersion, to: &out)
        out += Array(",\"variant\":1".utf8)
        return out
    }
}
