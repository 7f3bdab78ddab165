// swift-tools-version:6.0
import PackageDescription

// One target per concern; each depends only on the ones above it in this list.
//   Posix             - system calls: one errno describer, one EINTR loop, bounded file reads, the wall clock
//   ByteCoding        - little-endian integers, hex digits, the one JSON string escaper
//   CSockDiag         - Linux netlink/sock_diag/inet_diag/unix_diag headers for Swift (C, no logic beyond macros)
//   SocketStats       - reads the kernel (netlink or /proc) and fills a count model (per state, port, cgroup,
//                       network namespace); finds socket owners in /proc/PID/fd; knows nothing of Zabbix.
//                       Its one entry point for a whole poll: CollectionOptions.collect() -> Snapshot
//   StatsOutput       - a Snapshot as the `stats` JSON that the templates read (and as a text table); `owners` output
//   CZlib             - the system zlib
//   ZabbixProtocol    - ZBXD framing, sender and passive-check messages, addresses; pure values over bytes
//   ZabbixConfig      - the agent config file (Include, ServerActive, Hostname, Server, TLS), PSK files
//   ZabbixSender      - SwiftNIO client: one frame out, one reply back; ServerActive clusters, TLS-PSK
//   ZabbixAgentServer - SwiftNIO passive endpoint: allow-list, TLS-PSK, one request per connection
//   DurableQueue      - on-disk record buffer (segments, consumers, crash recovery); knows nothing of Zabbix
//   ZabbixPush        - the push daemon: schedule, on-disk buffer, delivery with retries; knows nothing of sockets
//   zabbix-sockets    - the command line: parses flags and wires the targets together
//   sockdiag-floor    - the benchmark's floor: the same netlink dumps in minimal C, only counting
let package = Package(
    name: "zabbix-sockets",
    products: [
        .executable(name: "zabbix-sockets", targets: ["zabbix-sockets"]),
        .executable(name: "sockdiag-floor", targets: ["sockdiag-floor"]),
        .library(name: "SocketStats", targets: ["SocketStats"]),
        .library(name: "StatsOutput", targets: ["StatsOutput"]),
        .library(name: "ZabbixProtocol", targets: ["ZabbixProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
    ],
    targets: [
        .target(name: "Posix"),
        .target(name: "ByteCoding"),
        .target(name: "CSockDiag"),
        .target(name: "SocketStats", dependencies: ["CSockDiag", "Posix", "ByteCoding"]),
        .target(name: "StatsOutput", dependencies: ["SocketStats", "ByteCoding"]),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "ZabbixProtocol", dependencies: ["CZlib", "ByteCoding"]),
        .target(name: "ZabbixConfig", dependencies: ["ZabbixProtocol", "Posix"]),
        .target(
            name: "ZabbixSender",
            dependencies: [
                "ZabbixProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]
        ),
        .target(
            name: "ZabbixAgentServer",
            dependencies: [
                "ZabbixProtocol",
                "ZabbixSender",
                "Posix",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "DurableQueue", dependencies: ["Posix", "ByteCoding"]),
        .target(
            name: "ZabbixPush",
            dependencies: [
                "ZabbixProtocol",
                "ZabbixSender",
                "DurableQueue",
                "Posix",
                "ByteCoding",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "zabbix-sockets",
            dependencies: [
                "SocketStats",
                "StatsOutput",
                "ZabbixProtocol",
                "ZabbixConfig",
                "ZabbixSender",
                "ZabbixPush",
                "ZabbixAgentServer",
                "Posix",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "sockdiag-floor"),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SocketStatsTests", dependencies: ["SocketStats", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "StatsOutputTests", dependencies: ["StatsOutput", "SocketStats", "ZabbixProtocol", "CZlib"]),
        .testTarget(name: "ZabbixProtocolTests", dependencies: ["ZabbixProtocol", "CZlib", "TestSupport"]),
        .testTarget(name: "ZabbixConfigTests", dependencies: ["ZabbixConfig", "ZabbixProtocol", "TestSupport"]),
        .testTarget(
            name: "ZabbixSenderTests",
            dependencies: [
                "ZabbixSender",
                "ZabbixProtocol",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "ZabbixAgentServerTests",
            dependencies: ["ZabbixAgentServer", "ZabbixProtocol", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(name: "DurableQueueTests", dependencies: ["DurableQueue", "Posix", "ByteCoding", "TestSupport"]),
        .testTarget(name: "ZabbixPushTests", dependencies: ["ZabbixPush", "ZabbixProtocol"]),
        .testTarget(name: "IntegrationTests", dependencies: []),
    ]
)
