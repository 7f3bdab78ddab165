import ZabbixProtocol
/// How `__parse_cfg_file` stores a parameter's value.
enum AgentParameterKind: Equatable {
    /// TYPE_STRING: a later line overwrites an earlier one.
    case string
    /// TYPE_STRING_LIST: like `.string`, with spaces and tabs around commas removed.
    case stringList
    /// TYPE_MULTISTRING (and the AllowKey/DenyKey rules): every line is kept.
    case multiple
    /// TYPE_INT: decimal with an optional K/M/G/T suffix, range-checked when read.
    case integer(ClosedRange<UInt64>)
}

/// The parameters the 6.0 `zabbix_agentd` on Linux knows (`zbx_load_config`), plus the Windows-only
/// performance counters so a shared file still parses strictly. `Include` is handled by the parser.
let agentParameterKinds: [String: AgentParameterKind] = [
    "Server": .stringList,
    "ServerActive": .stringList,
    "Hostname": .stringList,
    "HostnameItem": .string,
    "HostMetadata": .string,
    "HostMetadataItem": .string,
    "HostInterface": .string,
    "HostInterfaceItem": .string,
    "BufferSize": .integer(2...65535),
    "BufferSend": .integer(1...3600),
    "PidFile": .string,
    "LogType": .string,
    "LogFile": .string,
    "LogFileSize": .integer(0...1024),
    "Timeout": .integer(1...30),
    "ListenPort": .integer(1024...32767),
    "ListenIP": .stringList,
    "ListenBacklog": .integer(0...UInt64(Int32.max)),
    "SourceIP": .string,
    "DebugLevel": .integer(0...5),
    "StartAgents": .integer(0...100),
    "RefreshActiveChecks": .integer(60...3600),
    "MaxLinesPerSecond": .integer(1...1000),
    "EnableRemoteCommands": .integer(0...1),
    "LogRemoteCommands": .integer(0...1),
    "UnsafeUserParameters": .integer(0...1),
    "AllowRoot": .integer(0...1),
    "User": .string,
    "Alias": .multiple,
    "UserParameter": .multiple,
    "UserParameterDir": .string,
    "LoadModulePath": .string,
    "LoadModule": .multiple,
    "AllowKey": .multiple,
    "DenyKey": .multiple,
    "PerfCounter": .multiple,
    "PerfCounterEn": .multiple,
    "TLSConnect": .string,
    "TLSAccept": .stringList,
    "TLSCAFile": .string,
    "TLSCRLFile": .string,
    "TLSServerCertIssuer": .string,
    "TLSServerCertSubject": .string,
    "TLSCertFile": .string,
    "TLSKeyFile": .string,
    "TLSPSKIdentity": .string,
    "TLSPSKFile": .string,
    "TLSCipherCert13": .string,
    "TLSCipherCert": .string,
    "TLSCipherPSK13": .string,
    "TLSCipherPSK": .string,
    "TLSCipherAll13": .string,
    "TLSCipherAll": .string,
]

/// Zabbix's `str2uint64(value, "KMGT", ...)`: digits, then at most one suffix (powers of 1024).
func parseConfigInteger(_ text: String) -> UInt64? {
    var digits = Substring(text)
    var multiplier: UInt64 = 1
    switch digits.last {
    case "K": multiplier = 1 << 10
    case "M": multiplier = 1 << 20
    case "G": multiplier = 1 << 30
    case "T": multiplier = 1 << 40
    default: break
    }
    if multiplier != 1 { digits = digits.dropLast() }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
        let number = UInt64(digits)
    else { return nil }
    let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
    return overflow ? nil : product
}

/// Zabbix's `zbx_trim_str_list(value, ',')`: spaces and tabs around each comma-separated item go.
func trimmedConfigList(_ value: String) -> String {
    let items = Array(value.utf8).split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    return items.map { String(decoding: trimmingBytes($0, leading: configBlanks, trailing: configBlanks), as: UTF8.self) }
        .joined(separator: ",")
}

/// Byte-wise like Zabbix's `zbx_ltrim`/`zbx_rtrim`; a Character-wise trim would treat "\r\n" or a
/// blank followed by a combining mark as one unit.
let configBlanks: [UInt8] = [UInt8(ascii: " "), UInt8(ascii: "\t")]
let configLineEndBlanks: [UInt8] = configBlanks + [UInt8(ascii: "\r"), UInt8(ascii: "\n")]

func trimmingBytes(_ bytes: ArraySlice<UInt8>, leading: [UInt8], trailing: [UInt8]) -> ArraySlice<UInt8> {
    var result = bytes
    while let first = result.first, leading.contains(first) { result = result.dropFirst() }
    while let last = result.last, trailing.contains(last) { result = result.dropLast() }
    return result
}
