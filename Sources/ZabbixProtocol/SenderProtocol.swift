import ByteCoding
/// Why a "sender data" request or a trapper response was refused. Wording follows the Zabbix
/// trapper (`process_trap`, `recv_senderhistory`) where it has words for the case.
public enum SenderProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case notJSON(reason: String)
    /// The trapper only treats a payload as JSON when its first byte is `{`.
    case notTrapperJSON
    case missingField(String)
    case invalidField(String, reason: String)
    case invalidSessionTokenLength(Int)
    case unknownRequest(String)
    case unknownResponse(String)

    public var description: String {
        switch self {
        case .notJSON(let reason): return "cannot parse as a valid JSON object: \(reason)"
        case .notTrapperJSON: return "cannot parse as a valid JSON object: first byte is not '{'"
        case .missingField(let name): return "cannot find pair with name \"\(name)\""
        case .invalidField(let name, let reason): return "invalid value of \"\(name)\": \(reason)"
        case .invalidSessionTokenLength(let length): return "invalid session token length \(length)"
        case .unknownRequest(let request): return "unknown request \"\(request)\""
        case .unknownResponse(let response): return "unknown response \"\(response)\""
        }
    }
}

/// One row of a "sender data" request: an item value for host/key, optionally timestamped.
public struct SenderValue: Equatable, Sendable {
    public var host: String
    public var key: String
    /// Always sent as a JSON string; the server converts it to the item's type.
    public var value: String
    /// Seconds since the epoch; the server skips rows whose clock is not a uint31.
    public var clock: Int?
    /// Nanoseconds 0...999_999_999, meaningful with `clock`.
    public var ns: Int?
    /// Per-session counter the server uses to drop duplicates; needs a request `session`.
    public var id: UInt64?

    public init(host: String, key: String, value: String, clock: Int? = nil, ns: Int? = nil, id: UInt64? = nil) {
        self.host = host
        self.key = key
        self.value = value
        self.clock = clock
        self.ns = ns
        self.id = id
    }
}

/// `{"request":"sender data",["session":...,]"data":[...][,"clock":..,"ns":..]}` as zabbix_sender
/// and the active agent build it.
public struct SenderDataRequest: Equatable, Sendable {
    public static let requestName = "sender data"
    public static let sessionTokenLength = 32

    public var values: [SenderValue]
    /// Exactly 32 characters (the agent uses 32 lowercase hex digits).
    public var session: String?
    public var clock: Int?
    public var ns: Int?

    public init(values: [SenderValue], session: String? = nil, clock: Int? = nil, ns: Int? = nil) {
        self.values = values
        self.session = session
        self.clock = clock
        self.ns = ns
    }

    /// Compact JSON, first byte `{`. Throws for fields the server would reject or silently skip.
    public func encodedJSON() throws(SenderProtocolError) -> [UInt8] {
        var json: [UInt8] = []
        json.append(contentsOf: Array("{\"request\":".utf8))
        appendJSONString(Self.requestName, to: &json)
        if let session {
            guard session.utf8.count == Self.sessionTokenLength else {
                throw .invalidSessionTokenLength(session.utf8.count)
            }
            json.append(contentsOf: Array(",\"session\":".utf8))
            appendJSONString(session, to: &json)
        }
        json.append(contentsOf: Array(",\"data\":[".utf8))
        for (index, row) in values.enumerated() {
            if index > 0 { json.append(UInt8(ascii: ",")) }
            json.append(contentsOf: Array("{\"host\":".utf8))
            appendJSONString(row.host, to: &json)
            json.append(contentsOf: Array(",\"key\":".utf8))
            appendJSONString(row.key, to: &json)
            json.append(contentsOf: Array(",\"value\":".utf8))
            appendJSONString(row.value, to: &json)
            try appendTimestamp(clock: row.clock, ns: row.ns, field: "data[\(index)]", to: &json)
            if let id = row.id { json.append(contentsOf: Array(",\"id\":\(id)".utf8)) }
            json.append(UInt8(ascii: "}"))
        }
        json.append(UInt8(ascii: "]"))
        try appendTimestamp(clock: clock, ns: ns, field: "request", to: &json)
        json.append(UInt8(ascii: "}"))
        return json
    }

    /// The request as one ZBXD frame, uncompressed like zabbix_sender sends it.
    public func frame() throws(SenderProtocolError) -> ZBXDFrame {
        ZBXDFrame(payload: try encodedJSON())
    }

    /// Reads a request as the trapper does; used for tests and fake servers.
    public init(json: ArraySlice<UInt8>) throws(SenderProtocolError) {
        guard json.first == UInt8(ascii: "{") else { throw .notTrapperJSON }
        let object = try parseJSONObject(json)
        guard case .string(let request)? = object["request"] else { throw .missingField("request") }
        guard request == Self.requestName else { throw .unknownRequest(request) }
        guard case .array(let rows)? = object["data"] else { throw .missingField("data") }
        values = []
        for (index, row) in rows.enumerated() {
            let field = "data[\(index)]"
            guard case .object = row else { throw .invalidField(field, reason: "not an object") }
            values.append(
                SenderValue(
                    host: try requiredString(row, "host", in: field),
                    key: try requiredString(row, "key", in: field),
                    value: try primitiveText(row["value"], field: "\(field).value"),
                    clock: try optionalInteger(row["clock"], field: "\(field).clock"),
                    ns: try optionalInteger(row["ns"], field: "\(field).ns"),
                    id: try optionalInteger(row["id"], field: "\(field).id")))
        }
        switch object["session"] {
        case nil: session = nil
        case .string(let token)?:
            guard token.utf8.count == Self.sessionTokenLength else {
                throw .invalidSessionTokenLength(token.utf8.count)
            }
            session = token
        default: throw .invalidField("session", reason: "not a string")
        }
        clock = try optionalInteger(object["clock"], field: "clock")
        ns = try optionalInteger(object["ns"], field: "ns")
    }
}

/// The trapper's answer: `{"response":"success"|"failed"[,"info":"..."]}`.
public struct TrapperResponse: Equatable, Sendable {
    public enum Status: String, Sendable {
        case success
        case failed
    }

    public var status: Status
    /// For "sender data" a `ProcessingTally`; for failures free text such as "cannot find pair with name \"data\"".
    public var info: String?

    public init(status: Status, info: String? = nil) {
        self.status = status
        self.info = info
    }

    public init(status: Status, tally: ProcessingTally) {
        self.init(status: status, info: tally.info)
    }

    /// The counts from `info`, when it has the trapper's "processed: ...; seconds spent: ..." form.
    public var tally: ProcessingTally? { info.flatMap(ProcessingTally.init(info:)) }

    /// Compact JSON as `zbx_send_response_ext` writes it; `info` is left out when nil.
    public func encodedJSON() -> [UInt8] {
        var json = Array("{\"response\":".utf8)
        appendJSONString(status.rawValue, to: &json)
        if let info {
            json.append(contentsOf: Array(",\"info\":".utf8))
            appendJSONString(info, to: &json)
        }
        json.append(UInt8(ascii: "}"))
        return json
    }

    public init(json: ArraySlice<UInt8>) throws(SenderProtocolError) {
        let object = try parseJSONObject(json)
        guard let response = object["response"] else { throw .missingField("response") }
        guard case .string(let text) = response else { throw .invalidField("response", reason: "not a string") }
        guard let status = Status(rawValue: text) else { throw .unknownResponse(text) }
        self.status = status
        switch object["info"] {
        case nil: info = nil
        case .string(let text)?: info = text
        default: throw .invalidField("info", reason: "not a string")
        }
    }
}

/// `processed: %d; failed: %d; total: %d; seconds spent: %lf` from the trapper's `info`.
/// "processed" only means accepted into preprocessing, not stored.
public struct ProcessingTally: Equatable, Sendable {
    public var processed: Int
    public var failed: Int
    public var total: Int
    public var secondsSpent: Double

    public init(processed: Int, failed: Int, total: Int, secondsSpent: Double) {
        self.processed = processed
        self.failed = failed
        self.total = total
        self.secondsSpent = secondsSpent
    }

    /// Parses the exact trapper format; any other text gives nil.
    public init?(info: String) {
        var rest = Substring(info)
        guard let processed = Self.take(label: "processed: ", terminator: "; ", from: &rest).flatMap({ Int($0) }),
            let failed = Self.take(label: "failed: ", terminator: "; ", from: &rest).flatMap({ Int($0) }),
            let total = Self.take(label: "total: ", terminator: "; ", from: &rest).flatMap({ Int($0) }),
            rest.hasPrefix("seconds spent: ")
        else { return nil }
        let seconds = rest.dropFirst("seconds spent: ".count)
        guard isDecimal(seconds, allowingPoint: true), let secondsSpent = Double(seconds) else { return nil }
        self.init(processed: processed, failed: failed, total: total, secondsSpent: secondsSpent)
    }

    /// The text the trapper writes, seconds with six decimals like C's `%lf`.
    public var info: String {
        "processed: \(processed); failed: \(failed); total: \(total); seconds spent: \(formatSixDecimals(secondsSpent))"
    }

    private static func take(label: String, terminator: String, from rest: inout Substring) -> Substring? {
        guard rest.hasPrefix(label) else { return nil }
        let afterLabel = rest.dropFirst(label.count)
        guard let end = afterLabel.firstRange(of: terminator) else { return nil }
        let number = afterLabel[..<end.lowerBound]
        guard isDecimal(number, allowingPoint: false) else { return nil }
        rest = afterLabel[end.upperBound...]
        return number
    }
}

private func isDecimal(_ text: Substring, allowingPoint: Bool) -> Bool {
    var sawPoint = false
    var sawDigit = false
    for character in text.utf8 {
        if character >= UInt8(ascii: "0") && character <= UInt8(ascii: "9") {
            sawDigit = true
        } else if allowingPoint && character == UInt8(ascii: ".") && !sawPoint {
            sawPoint = true
        } else {
            return false
        }
    }
    return sawDigit
}

private func formatSixDecimals(_ value: Double) -> String {
    guard value.isFinite, value >= 0, value < Double(Int.max / 1_000_000) else { return String(value) }
    let micros = Int((value * 1_000_000).rounded())
    let fraction = String(micros % 1_000_000)
    return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
}

private func parseJSONObject(_ json: ArraySlice<UInt8>) throws(SenderProtocolError) -> JSONValue {
    let value: JSONValue
    do {
        value = try JSONValue.parse(json)
    } catch {
        throw .notJSON(reason: error.description)
    }
    guard case .object = value else { throw .notJSON(reason: "not an object") }
    return value
}

private func requiredString(_ object: JSONValue, _ name: String, in field: String) throws(SenderProtocolError) -> String {
    guard let value = object[name] else { throw .missingField("\(field).\(name)") }
    guard case .string(let text) = value else { throw .invalidField("\(field).\(name)", reason: "not a string") }
    return text
}

/// The server accepts any JSON primitive as a value and uses its text; null becomes "".
private func primitiveText(_ value: JSONValue?, field: String) throws(SenderProtocolError) -> String {
    switch value {
    case .string(let text)?, .number(let text)?: return text
    case .bool(let flag)?: return flag ? "true" : "false"
    case .null?: return ""
    case nil: throw .missingField(field)
    case .object?, .array?: throw .invalidField(field, reason: "not a JSON primitive")
    }
}

private func optionalInteger<Integer: FixedWidthInteger>(
    _ value: JSONValue?, field: String
) throws(SenderProtocolError) -> Integer? {
    guard let value else { return nil }
    guard case .number(let text) = value, let number = Integer(text), number >= 0 else {
        throw .invalidField(field, reason: "not a non-negative integer")
    }
    return number
}

private func appendTimestamp(clock: Int?, ns: Int?, field: String, to json: inout [UInt8]) throws(SenderProtocolError) {
    if let clock {
        guard (0...Int(Int32.max)).contains(clock) else {
            throw .invalidField("\(field).clock", reason: "\(clock) is not a uint31")
        }
        json.append(contentsOf: Array(",\"clock\":\(clock)".utf8))
    }
    if let ns {
        guard (0...999_999_999).contains(ns) else {
            throw .invalidField("\(field).ns", reason: "\(ns) is not within 0-999999999")
        }
        json.append(contentsOf: Array(",\"ns\":\(ns)".utf8))
    }
}
