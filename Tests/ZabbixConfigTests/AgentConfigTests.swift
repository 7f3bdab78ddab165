import TestSupport
import XCTest

@testable import ZabbixConfig
@testable import ZabbixProtocol

final class AgentConfigTests: XCTestCase {
    private var directory: TemporaryDirectory!

    override func setUpWithError() throws {
        directory = try TemporaryDirectory()
    }

    override func tearDown() {
        directory = nil
    }

    private func load(_ text: String, unknownParameters: AgentConfig.UnknownParameters = .keep) throws -> AgentConfig {
        try AgentConfig.load(path: try directory.write("agentd.conf", text), unknownParameters: unknownParameters)
    }

    /// Loads `text` and returns the error it must raise.
    private func loadError(
        _ text: String, unknownParameters: AgentConfig.UnknownParameters = .keep,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> AgentConfigError {
        let path = try directory.write("agentd.conf", text)
        return try XCTUnwrap(
            accessorError({ _ = try AgentConfig.load(path: path, unknownParameters: unknownParameters) }, file: file, line: line),
            file: file, line: line)
    }

    /// The `AgentConfigError` that `body` throws; a failure when it throws none or another error.
    private func accessorError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line)
        -> AgentConfigError?
    {
        do {
            try body()
            XCTFail("no error", file: file, line: line)
        } catch let error as AgentConfigError {
            return error
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
        return nil
    }

    func testRealisticAgentConfigWithIncludesOfDirectoryGlobAndFile() throws {
        let confD = try directory.makeDirectory("zabbix_agentd.d")
        try directory.write("zabbix_agentd.d/10-base.conf", "Timeout=10\nUserParameter=app.ping,echo 1\n")
        try directory.write("zabbix_agentd.d/20-override.conf", "Timeout=20\nHostMetadata=linux app\n")
        try directory.makeDirectory("zabbix_agentd.d/ignored-subdirectory")
        let userParameters = try directory.makeDirectory("userparams")
        try directory.write("userparams/b.conf", "UserParameter=b.key,echo b\n")
        try directory.write("userparams/a.conf", "UserParameter=a.key,echo a\n")
        try directory.write("userparams/readme.txt", "this is not a parameter line\n")
        try directory.write("tls.conf", "TLSConnect=psk\nTLSAccept=unencrypted, psk\nTLSPSKIdentity=PSK 001\nTLSPSKFile=/etc/zabbix/agent.psk\n")
        let config = try load(
            """
            # This is a configuration file for Zabbix agent daemon (Unix)
            ############ GENERAL PARAMETERS #################

            PidFile=/run/zabbix/zabbix_agentd.pid
            LogFile=/var/log/zabbix-agent/zabbix_agentd.log
            \tLogFileSize = 0\r
            Server=127.0.0.1, 192.168.1.0/24 ,::1
            ServerActive=zbx1.example.com;zbx2.example.com:10052 , [2001:db8::5]:10051
            Hostname=web01,web01-alias
            Timeout=5
            # Timeout=29 is only a comment
            UserParameter=main.key,echo main
            Include=\(confD)
            Include=\(userParameters)/*.conf
            Include=\(directory.path)/tls.conf
            SomeFutureParameter=kept in lenient mode
            """)
        XCTAssertEqual(config.setting("LogFileSize")?.value, "0", "blanks and CR around name and value trimmed")
        XCTAssertEqual(config.setting("Timeout")?.value, "20", "the directory is read in name order, so 20-override wins")
        XCTAssertEqual(config.setting("Timeout")?.location, .init(file: "\(confD)/20-override.conf", line: 1))
        XCTAssertEqual(
            config.settings("UserParameter").map(\.value),
            ["main.key,echo main", "app.ping,echo 1", "a.key,echo a", "b.key,echo b"])
        XCTAssertEqual(config.setting("Server")?.value, "127.0.0.1,192.168.1.0/24,::1", "list trimmed around commas")
        XCTAssertEqual(
            try config.serverActive(),
            [
                ServerCluster(nodes: [.init(host: "zbx1.example.com"), .init(host: "zbx2.example.com", port: 10052)]),
                ServerCluster(nodes: [.init(host: "2001:db8::5")]),
            ])
        XCTAssertEqual(try config.hostnames(), ["web01", "web01-alias"])
        XCTAssertEqual(config.setting("SomeFutureParameter")?.value, "kept in lenient mode")
        let tls = config.senderTLSParameters
        XCTAssertEqual(tls[.connect], "psk")
        XCTAssertEqual(tls[.pskIdentity], "PSK 001")
        XCTAssertEqual(tls[.pskFile], "/etc/zabbix/agent.psk")
        XCTAssertFalse(config.parameterNames.contains("Include"))
    }

    func testStrictModeRejectsUnknownParametersWithLocation() throws {
        let error = try loadError("Server=127.0.0.1\nSomeFutureParameter=1\n", unknownParameters: .reject)
        XCTAssertEqual(error.reason, .unknownParameter("SomeFutureParameter"))
        XCTAssertEqual(error.line, 2)
        XCTAssertEqual(
            error.description,
            "unknown parameter \"SomeFutureParameter\" in config file \"\(directory.path)/agentd.conf\", line 2")
    }

    func testTheDebianPackagedConfigParsesStrictly() throws {
        let path = "/etc/zabbix/zabbix_agentd.conf"
        guard (try? LocalFiles.kind(of: path)) == .regularFile else { throw XCTSkip("\(path) is not installed") }
        let config = try AgentConfig.load(path: path, unknownParameters: .reject)
        XCTAssertEqual(try config.serverActive().first?.nodes.first, ZabbixAddress(host: "127.0.0.1"))
        XCTAssertNil(config.setting("Timeout"), "Debian's config leaves Timeout at its default")
    }

    func testLaterSingleValuesOverwriteAndSplitIsAtTheFirstEquals() throws {
        let config = try load("HostMetadata=a=b==c\nHostMetadata = second=value \nAlias=x:y\nAlias=z:w\n")
        XCTAssertEqual(config.setting("HostMetadata")?.value, "second=value", "the line's trailing blanks are gone")
        XCTAssertEqual(config.settings("HostMetadata").count, 1)
        XCTAssertEqual(config.settings("Alias").map(\.value), ["x:y", "z:w"])
        XCTAssertEqual(config.setting("HostMetadata")?.location.line, 2)
    }

    func testBadLinesCarryFileLineAndZabbixWording() throws {
        let file = "\(directory.path)/agentd.conf"
        var error = try loadError("# comment\nServer=127.0.0.1\nthis line has no equals sign\n")
        XCTAssertEqual(error.reason, .invalidEntry("this line has no equals sign"))
        XCTAssertEqual(
            error.description,
            "invalid entry \"this line has no equals sign\" (not following \"parameter=value\" notation) in config file \"\(file)\", line 3")

        error = try loadError("Timeout=31\n")
        XCTAssertEqual(error.description, "wrong value of \"Timeout\" in config file \"\(file)\", line 1")
        for value in ["0", "abc", "", "1K", "-1", "3s"] {
            XCTAssertEqual(try loadError("Timeout=\(value)\n").reason, .wrongValue(parameter: "Timeout"), value)
        }
        XCTAssertEqual(try load("BufferSize=1K\n").setting("BufferSize")?.value, "1K", "K = 1024 is within 2-65535")

        error = try loadError("Server=1\n" + "UserParameter=" + String(repeating: "x", count: 2049 - 14) + "\n")
        XCTAssertEqual(error.reason, .lineTooLong(limit: 2048))
        XCTAssertEqual(error.description, "line 2 exceeds 2048 byte length limit in config file \"\(file)\"")
        let longest = "UserParameter=" + String(repeating: "x", count: 2048 - 14)
        XCTAssertEqual(try load(longest + "\r\n").settings("UserParameter").first?.value.utf8.count, 2048 - 14)
        XCTAssertEqual(try load(longest).settings("UserParameter").count, 1, "a last line without newline counts")

        try directory.write("agentd.conf", bytes: Array("Server=1\nHostname=caf".utf8) + [0xE9] + Array("\n".utf8))
        error = try XCTUnwrap(accessorError { _ = try AgentConfig.load(path: file) })
        XCTAssertEqual(error.line, 2)
        XCTAssertTrue(error.description.hasPrefix("non-UTF-8 character at line 2"), error.description)
        try directory.write("agentd.conf", bytes: Array("# caf".utf8) + [0xE9] + Array("\nServer=1\n".utf8))
        XCTAssertNoThrow(try AgentConfig.load(path: file), "comments are skipped before the UTF-8 check")
    }

    func testMissingFilesAndPaths() throws {
        let missing = "\(directory.path)/nope.conf"
        XCTAssertEqual(
            accessorError { _ = try AgentConfig.load(path: missing) }?.description,
            "cannot open config file \"\(missing)\": ENOENT (No such file or directory)")
        let error = try loadError("Server=1\nInclude=\(directory.path)/absent.d\n")
        XCTAssertEqual(error.reason, .includePath("\(directory.path)/absent.d", reason: "ENOENT (No such file or directory)"))
        XCTAssertEqual(error.line, 2)
        XCTAssertEqual(
            try loadError("Include=\(directory.path)/absent.d/*.conf\n").reason,
            .includePath("\(directory.path)/absent.d", reason: "ENOENT (No such file or directory)"))
        XCTAssertNoThrow(try load("Include=\(try directory.makeDirectory("empty"))/*.conf\n"), "a glob may match nothing")
    }

    func testGlobRules() throws {
        try directory.makeDirectory("d")
        try directory.write("d/a.conf", "HostMetadata=a\n")
        try directory.write("d/b.conf.bak", "HostMetadata=bak\n")
        try directory.write("d/.hidden.conf", "HostMetadata=hidden\n")
        try directory.write("d/c.conf", "HostMetadata=c\n")
        let d = "\(directory.path)/d"
        XCTAssertEqual(try load("Include=\(d)/*.conf\n").setting("HostMetadata")?.value, "c")
        XCTAssertEqual(try load("Include=\(d)/*.conf\n").settings("HostMetadata").count, 1)
        XCTAssertEqual(try load("Include=\(d)/.*\n").setting("HostMetadata")?.value, "hidden", "'*' also matches dot files")
        XCTAssertEqual(try load("Include=\(d)/b*bak\n").setting("HostMetadata")?.value, "bak")
        XCTAssertEqual(try load("Include=\(d)/\n").setting("HostMetadata")?.value, "c", "trailing slash: whole directory")
        XCTAssertEqual(try loadError("Include=\(d)/*/x.conf\n").reason, .globNotLastComponent("\(d)/*/x.conf"))
        XCTAssertEqual(try loadError("Include=*.conf\n").reason, .globPathNotAbsolute("*.conf"))
        XCTAssertEqual(try loadError("Include=d/*.conf\n").reason, .globPathNotAbsolute("d/*.conf"))
        XCTAssertEqual(
            try loadError("Include=\(d)/a.conf/*.conf\n").reason, .globBaseNotDirectory("\(d)/a.conf/*.conf"))
        XCTAssertEqual(try loadError("Include=\(d)/a.conf/\n").reason, .globBaseNotDirectory("\(d)/a.conf/"))
    }

    func testGlobMatcher() {
        let cases: [(String, String, Bool)] = [
            ("a.conf", "*.conf", true), ("a.conf", "*", true), ("", "*", true), ("a.conf", "a*", true),
            ("a.conf", "*.con", false), ("abcabc", "*bc*bc", true), ("abcab", "*bc*bc", false),
            ("x.conf", "x.conf", true), ("x.conf", "y.conf", false), ("aaa", "a**a", true),
        ]
        for (name, pattern, expected) in cases {
            XCTAssertEqual(globMatches(Array(name.utf8), pattern: Array(pattern.utf8)), expected, "\(name) ~ \(pattern)")
        }
    }

    func testNestingLimitAndRecursion() throws {
        // Level 1 is the main file; a chain of 9 includes reaches level 10 and is fine.
        for level in 2...11 {
            let next = level < 11 ? "Include=\(directory.path)/level\(level + 1).conf\n" : ""
            try directory.write("level\(level).conf", "HostMetadata=level \(level)\n" + next)
        }
        try directory.write("level10.conf", "HostMetadata=level 10\n")
        XCTAssertEqual(try load("Include=\(directory.path)/level2.conf\n").setting("HostMetadata")?.value, "level 10")
        try directory.write("level10.conf", "HostMetadata=level 10\nInclude=\(directory.path)/level11.conf\n")
        let error = try loadError("Include=\(directory.path)/level2.conf\n")
        XCTAssertEqual(error.reason, .recursion(path: "\(directory.path)/level11.conf"))
        XCTAssertEqual(error.file, "\(directory.path)/level10.conf")
        XCTAssertEqual(error.line, 2)

        let selfIncluding = "\(directory.path)/agentd.conf"
        let recursion = try loadError("Server=1\nInclude=\(selfIncluding)\n")
        XCTAssertEqual(recursion.reason, .recursion(path: selfIncluding))
        XCTAssertTrue(
            recursion.description.hasPrefix("Recursion detected! Skipped processing of '\(selfIncluding)'."),
            recursion.description)
    }

    func testServerActiveForms() throws {
        let clusters = try ServerCluster.parseList(
            "zbx.example.com,10.0.0.1:10052;10.0.0.2,[::1]:10053,::1,[fe80::1],2001:db8::2;zbx2:20051,[::ffff:10.1.2.3]")
        XCTAssertEqual(
            clusters.map(\.nodes),
            [
                [ZabbixAddress(host: "zbx.example.com", port: 10051)],
                [ZabbixAddress(host: "10.0.0.1", port: 10052), ZabbixAddress(host: "10.0.0.2", port: 10051)],
                [ZabbixAddress(host: "::1", port: 10053)],
                [ZabbixAddress(host: "::1", port: 10051)],
                [ZabbixAddress(host: "fe80::1", port: 10051)],
                [ZabbixAddress(host: "2001:db8::2", port: 10051), ZabbixAddress(host: "zbx2", port: 20051)],
                [ZabbixAddress(host: "::ffff:10.1.2.3", port: 10051)],
            ])
        XCTAssertEqual(clusters[2].nodes[0].description, "[::1]:10053")
        XCTAssertEqual(clusters[0].nodes[0].description, "zbx.example.com:10051")

        for invalid in [
            "", "host:", "host:65536", "host:12x", "[::1", "[::1]x", "[::1]:", "[zbx]:10051", "a b", "-lead",
            "a..b", "[1:2:3:4:5:6:7:8:9]", "1:2:3:4:5:6:7:8:9", "::1::2", "1.2.3.4:5:6", "a,", ",a", "a;",
        ] {
            XCTAssertThrowsError(try ServerCluster.parseList(invalid), invalid) { error in
                guard case .invalidAddress(parameter: "ServerActive", _)? = error as? AddressListError else {
                    return XCTFail("\(invalid): \(error)")
                }
            }
        }
        XCTAssertThrowsError(try ServerCluster.parseList("a;b,c;a:10051")) {
            XCTAssertEqual($0 as? AddressListError, .duplicateAddress(parameter: "ServerActive", address: "a:10051"))
        }
        XCTAssertEqual(try ServerCluster.parseList("a:10051,a:10052").count, 2, "another port is another address")

        // In a file, blanks around ',' go but blanks around ';' stay and make the address invalid.
        XCTAssertEqual(try load("ServerActive= a , b \n").serverActive().count, 2)
        let config = try load("Server=1\nServerActive=a; b\n")
        let error = try XCTUnwrap(accessorError { _ = try config.serverActive() })
        XCTAssertEqual(error.reason, .addressList(.invalidAddress(parameter: "ServerActive", address: " b")))
        XCTAssertEqual(
            error.description,
            "error parsing the \"ServerActive\" parameter: address \" b\" is invalid (config file \"\(directory.path)/agentd.conf\", line 2)")
        let duplicate = try load("ServerActive=zbx,[::1],zbx:10051\n")
        XCTAssertEqual(
            accessorError { _ = try duplicate.serverActive() }?.reason.description,
            "error parsing the \"ServerActive\" parameter: address \"zbx:10051\" specified more than once")
        XCTAssertEqual(try load("ServerActive=\n").serverActive(), [])
    }

    func testClusterDemotionKeepsTheWorkingNodeFirst() {
        var cluster = ServerCluster(nodes: [.init(host: "a"), .init(host: "b"), .init(host: "c")])
        cluster.demote(.init(host: "a"))
        XCTAssertEqual(cluster.nodes.map(\.host), ["b", "c", "a"])
        cluster.demote(.init(host: "x"))
        XCTAssertEqual(cluster.nodes.map(\.host), ["b", "c", "a"])
    }

    func testIPAddressText() {
        for valid in ["::", "::1", "1::", "fe80::1", "2001:db8:0:0:0:0:2:1", "::ffff:192.0.2.1", "1:2:3:4:5:6:1.2.3.4"] {
            XCTAssertTrue(isIPv6(Substring(valid)), valid)
        }
        for invalid in ["1", ":1", "1:", "1:2", ":::", "1::2::3", "12345::", "g::1", "1.2.3.4", "::1.2.3", "1:2:3:4:5:6:7:1.2.3.4"] {
            XCTAssertFalse(isIPv6(Substring(invalid)), invalid)
        }
        for valid in ["0.0.0.0", "255.255.255.255", "10.0.0.1"] { XCTAssertTrue(isIPv4(Substring(valid)), valid) }
        for invalid in ["256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", "a.b.c.d", "1.2.3.1234"] {
            XCTAssertFalse(isIPv4(Substring(invalid)), invalid)
        }
    }

    func testHostnameLists() throws {
        XCTAssertEqual(try load("Hostname=web01, Web 01 ,db_1.example-x\n").hostnames(), ["web01", "Web 01", "db_1.example-x"])
        XCTAssertEqual(try load("Server=1\n").hostnames(), [], "unset: the agent falls back to HostnameItem")
        let maximal = String(repeating: "h", count: 128)
        XCTAssertEqual(try load("Hostname=\(maximal)\n").hostnames(), [maximal])
        let cases: [(String, AgentConfigError.Reason)] = [
            ("web01,web01", .duplicateHostname("web01")),
            ("web01,Web01,web01", .duplicateHostname("web01")),
            ("web/01", .invalidHostname("web/01", reason: "name contains invalid character '/'")),
            ("web01,", .invalidHostname("", reason: "name is empty")),
            ("", .invalidHostname("", reason: "name is empty")),
            ("hôte", .invalidHostname("hôte", reason: "name contains invalid character 'ô'")),
            (maximal + "h", .invalidHostname(maximal + "h", reason: "name is too long (max 128 characters)")),
        ]
        for (value, expected) in cases {
            let config = try load("Hostname=\(value)\n")
            XCTAssertEqual(accessorError { _ = try config.hostnames() }?.reason, expected, value)
        }
        XCTAssertEqual(
            AgentConfigError.Reason.duplicateHostname("a").description,
            "error parsing the \"Hostname\" parameter: host \"a\" specified more than once")
        XCTAssertEqual(
            AgentConfigError.Reason.invalidHostname("a/b", reason: "name contains invalid character '/'").description,
            "invalid \"Hostname\" configuration parameter: 'a/b': name contains invalid character '/'")
    }
}
