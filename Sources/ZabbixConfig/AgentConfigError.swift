import ZabbixProtocol
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
        case addressList(AddressListError)
        case invalidHostname(String, reason: String)
        case duplicateHostname(String)
        case peerList(PeerAllowListError)
        case listenIP(ListenIPError)

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
            case .addressList(let error): return error.description
            case .invalidHostname(let name, let reason):
                return "invalid \"Hostname\" configuration parameter: '\(name)': \(reason)"
            case .duplicateHostname(let name):
                return "error parsing the \"Hostname\" parameter: host \"\(name)\" specified more than once"
            case .peerList(let error): return error.description
            case .listenIP(let error): return error.description
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
