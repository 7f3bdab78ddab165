@testable import ZabbixProtocol

/// The project's strict RFC 8259 reader (ZabbixProtocol's JSONValue) keeps object members in
/// document order, which lets these tests pin the order of the keys; these are reading helpers.
extension JSONValue {
    /// nil when `text` is not one JSON value.
    static func reading(_ text: String) -> JSONValue? { try? parse(Array(text.utf8)[...]) }

    /// An object's member names in order; empty for anything else.
    var keys: [String] {
        if case .object(let members) = self { return members.map(\.name) }
        return []
    }

    var elements: [JSONValue] {
        if case .array(let items) = self { return items }
        return []
    }

    /// A whole non-negative number; nil for anything else.
    var uint: UInt64? {
        if case .number(let literal) = self { return UInt64(literal) }
        return nil
    }

    var text: String? {
        if case .string(let text) = self { return text }
        return nil
    }
}
