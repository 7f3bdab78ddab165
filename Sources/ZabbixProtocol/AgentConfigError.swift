/// A refused `zabbix_agentd.conf`: where (file, line) and why, in Zabbix's words.
public struct AgentConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    /// Nil when the error concerns the file as a whole (it cannot be opened).
    public var line: Int?
    public var reason: Reason

    public init(file: String, line: Int?, reason: Reason) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public enum Reason: Error, Equatable, Sendable, CustomStringConvertible {
        case invalidEntry(String)
        case unknownParameter(String)
        case wrongValue(parameter: String)
        case lineTooLong(limit: Int)
        case nonUTF8(String)
        case cannotOpen(reason: String)
        /// `Include=` names a path that cannot be read (`stat`/`opendir` failed).
        case includePath(String, reason: String)
        case recursion(path: String)
        case globNotLastComponent(String)
        case globPathNotAbsolute(String)
        case globBaseNotDirectory(String)
        case invalidAddress(parameter: String, address: String)
        case duplicateAddress(parameter: String, address: String)
        case invalidHostname(String, reason: String)
        case duplicateHostname(String)
        case invalidServerEntry(String)
        case invalidSourceIP(String)
        case tlsParameterEmpty(String)
        case tlsInvalidValue(String)
        case tlsMissingCompanion(defined: String, missing: String)
        case tlsMissingCertificate(defined: String)
        case tlsValueRequiresCertificate(String)
        case tlsValueRequiresPSK(String)

        public var description: String {
            switch self {
            case .invalidEntry(let text): return "invalid entry \"\(text)\" (not following \"parameter=value\" notation)"
            case .unknownParameter(let name): return "unknown parameter \"\(name)\""
            case .wrongValue(let name): return "wrong value of \"\(name)\""
            case .lineTooLong(let limit): return "line exceeds \(limit) byte length limit"
            case .nonUTF8(let text): return "non-UTF-8 character in \"\(text)\""
            case .cannotOpen(let reason): return "cannot open config file: \(reason)"
            case .includePath(let path, let reason): return "\(path): \(reason)"
            case .recursion(let path): return "Recursion detected! Skipped processing of '\(path)'."
            case .globNotLastComponent(let glob): return "\(glob): glob pattern should be the last component of the path"
            case .globPathNotAbsolute(let glob): return "\(glob): path should be absolute"
            case .globBaseNotDirectory(let glob): return "\(glob): base path is not a directory"
            case .invalidAddress(let parameter, let address):
                return "error parsing the \"\(parameter)\" parameter: address \"\(address)\" is invalid"
            case .duplicateAddress(let parameter, let address):
                return "error parsing the \"\(parameter)\" parameter: address \"\(address)\" specified more than once"
            case .invalidHostname(let name, let reason):
                return "invalid \"Hostname\" configuration parameter: '\(name)': \(reason)"
            case .duplicateHostname(let name):
                return "error parsing the \"Hostname\" parameter: host \"\(name)\" specified more than once"
            case .invalidServerEntry(let entry): return "invalid entry in \"Server\" configuration parameter: \"\(entry)\""
            case .invalidSourceIP(let value): return "invalid \"SourceIP\" configuration parameter: '\(value)'"
            case .tlsParameterEmpty(let name): return "configuration parameter \"\(name)\" is defined but empty"
            case .tlsInvalidValue(let name): return "invalid value of \"\(name)\" parameter"
            case .tlsMissingCompanion(let defined, let missing):
                return "configuration parameter \"\(defined)\" is defined but \"\(missing)\" is not defined"
            case .tlsMissingCertificate(let defined):
                return "configuration parameter \"\(defined)\" is defined but \"TLSCertFile\" and \"TLSKeyFile\" are not defined"
            case .tlsValueRequiresCertificate(let name):
                return "parameter \"\(name)\" value requires a certificate but it is not configured"
            case .tlsValueRequiresPSK(let name):
                return "parameter \"\(name)\" value requires a pre-shared key (PSK) but it is not configured"
            }
        }
    }

    /// Zabbix's full sentence where it has one (`__parse_cfg_file`), else the reason plus location.
    public var description: String {
        guard let line else {
            if case .cannotOpen(let reason) = reason { return "cannot open config file \"\(file)\": \(reason)" }
            return "\(reason) in config file \"\(file)\""
        }
        switch reason {
        case .invalidEntry, .unknownParameter, .wrongValue:
            return "\(reason) in config file \"\(file)\", line \(line)"
        case .lineTooLong(let limit):
            return "line \(line) exceeds \(limit) byte length limit in config file \"\(file)\""
        case .nonUTF8(let text):
            return "non-UTF-8 character at line \(line) \"\(text)\" in config file \"\(file)\""
        default:
            return "\(reason) (config file \"\(file)\", line \(line))"
        }
    }
}
