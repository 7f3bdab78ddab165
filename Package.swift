// swift-tools-version:6.0
import PackageDescription

// One target per concern:
//   CSockDiag      - Linux netlink/sock_diag/inet_diag headers for Swift (C, no logic beyond macros)
//   SocketStats    - reads the kernel (netlink or /proc) and fills a count model; knows nothing of Zabbix.
//                    Its one entry point for a whole poll: CollectionOptions.collect() -> Snapshot
//   StatsOutput    - a Snapshot as the `stats` JSON that the templates read (and as a text table)
//   CZlib          - the system zlib
//   ZabbixProtocol - ZBXD framing, sender messages, agent config; pure values over bytes, knows nothing of sockets
//   ZabbixSender   - SwiftNIO client: one frame out, one reply back; ServerActive clusters and entries
//   ZabbixPush     - the push daemon: schedule, on-disk buffer, delivery with retries; knows nothing of sockets
//   zabbix-sockets - the command line: parses flags and wires the targets together
//   sockdiag-floor - the benchmark's floor: the same netlink dumps in minimal C, only counting
//   DurableQueue   - on-disk record buffer (segments, consumers, crash recovery); knows nothing of Zabbix
let package = Package(
    name: "zabbix-sockets",
    platforms: [.macOS(.v13)],
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
        .target(name: "CSockDiag"),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "SocketStats", dependencies: ["CSockDiag"]),
        .target(name: "StatsOutput", dependencies: ["SocketStats"]),
        .target(name: "ZabbixProtocol", dependencies: ["CZlib"]),
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
            name: "ZabbixPush",
            dependencies: [
                "ZabbixProtocol",
                "ZabbixSender",
                "DurableQueue",
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
                "ZabbixSender",
                "ZabbixPush",
                "DurableQueue",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(name: "sockdiag-floor"),
        .testTarget(name: "SocketStatsTests", dependencies: ["SocketStats"], exclude: ["Fixtures"]),
        .testTarget(name: "StatsOutputTests", dependencies: ["StatsOutput", "SocketStats", "ZabbixProtocol"]),
        .testTarget(name: "ZabbixProtocolTests", dependencies: ["ZabbixProtocol", "CZlib"]),
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
        .testTarget(name: "IntegrationTests", dependencies: []),
        .target(name: "DurableQueue"),
        .testTarget(name: "DurableQueueTests", dependencies: ["DurableQueue"]),
        .testTarget(name: "ZabbixPushTests", dependencies: ["ZabbixPush", "ZabbixProtocol"]),
    ]
)
