// swift-tools-version:6.0
import PackageDescription

// One target per concern:
//   CSockDiag      - Linux netlink/sock_diag/inet_diag headers for Swift (C, no logic beyond macros)
//   SocketStats    - reads the kernel (netlink or /proc) and fills a count model; knows nothing of Zabbix
//   CZlib          - the system zlib
//   ZabbixProtocol - ZBXD framing, sender messages, agent config; pure values over bytes, knows nothing of sockets
//   zabbix-sockets - the command line that wires them together
//   sockdiag-floor - the benchmark's floor: the same netlink dumps in minimal C, only counting
let package = Package(
    name: "zabbix-sockets",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "zabbix-sockets", targets: ["zabbix-sockets"]),
        .executable(name: "sockdiag-floor", targets: ["sockdiag-floor"]),
        .library(name: "SocketStats", targets: ["SocketStats"]),
        .library(name: "ZabbixProtocol", targets: ["ZabbixProtocol"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "CSockDiag"),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "SocketStats", dependencies: ["CSockDiag"]),
        .target(name: "ZabbixProtocol", dependencies: ["CZlib"]),
        .executableTarget(
            name: "zabbix-sockets",
            dependencies: [
                "SocketStats",
                "ZabbixProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "sockdiag-floor"),
        .testTarget(name: "SocketStatsTests", dependencies: ["SocketStats"], exclude: ["Fixtures"]),
        .testTarget(name: "ZabbixProtocolTests", dependencies: ["ZabbixProtocol"]),
    ]
)
