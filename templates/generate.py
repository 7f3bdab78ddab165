#!/usr/bin/env python3
"""Generate the Zabbix 6.0 templates of zabbix-sockets from one table.

    python3 templates/generate.py           write templates/*.yaml (only files whose text changes)
    python3 templates/generate.py --check   exit 1 if a committed YAML differs from what would be written

Everything a template holds (items, triggers, macros, graphs) comes from the tables below; the two
templates differ only in how the master item `sockets.stats` gets its value (passive agent check
vs. trapper). Output is deterministic: fixed export date, UUIDs derived from stable names, no
dict-order or locale dependence. Standard library only; the YAML is written by hand in the layout
Zabbix 6.0 exports use ("-" on its own line, single quotes where Zabbix's dumper quotes).

Tables: STATE_COLOURS (one colour per state in every graph), ITEMS (per-state counts),
KERNEL_COUNTERS / KERNEL_GAUGES / KERNEL_LIMITS (the kernel section), LIMIT_RATIOS (use of a limit
in percent, JavaScript), EPHEMERAL_ITEMS, DISCOVERY_RULES with their *_PROTOTYPES and
TRIGGER_PROTOTYPES, TRIGGERS (one item: exported under the item; several items: in the top-level
`triggers`), MACROS, EXTRA_GRAPHS, DASHBOARD_ROWS. Which items are throttled follows from the
triggers (see heartbeat()). To add something: add a row, run this script, commit both YAMLs. UUIDs come from the
template slug, the kind of object and its key or id (template graphs: their name): renaming an
item or trigger keeps its uuid, changing a key or id makes a new object on the next import.
"""
import argparse
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Bump by hand when the templates change in a way users should notice (Zabbix shows it nowhere but
# in the file); it is fixed so that regenerating gives identical bytes.
EXPORT_DATE = "2026-11-29T00:00:00Z"
# The release version, from the one place it is written.
with open(os.path.join(HERE, "..", "Sources", "zabbix-sockets", "Version.swift"), encoding="utf-8") as _f:
    TEMPLATE_VERSION = re.search(r'^let zabbixSocketsVersion = "([^"]+)"$', _f.read(), re.M).group(1)

# Stock 6.0 host group (uuid as shipped in data.sql of 6.0): reusing a stock group is only safe
# with its stock uuid, otherwise the importer tries to create a duplicate group.
GROUP = {"uuid": "846977d1dfed4968bc5f8bdb363285bc", "name": "Templates/Operating systems"}

MASTER_KEY = "sockets.stats"

# ---------------------------------------------------------------------------------------------
# The two templates. `master` holds the fields that differ.
TEMPLATES = [
    {
        "slug": "agent",
        "file": "zabbix-sockets-agent.yaml",
        "name": "Linux sockets by Zabbix agent",
        "how": (
            "The Zabbix agent (zabbix_agentd or agent 2) polls the key sockets.stats every "
            "{$SOCKETS.INTERVAL}; a UserParameter runs `zabbix-sockets stats --format json` "
            "(see conf/zabbix_agentd.d/zabbix-sockets.conf in the zabbix-sockets sources), and "
            "all other items are taken from that one JSON document by JSONPath."
        ),
        "master": {
            "name": "Sockets: raw statistics",
            "type": "ZABBIX_PASSIVE",
            "delay": "{$SOCKETS.INTERVAL}",
            "description": (
                "JSON document printed by `zabbix-sockets stats --format json` on the monitored "
                "host: counts of TCP sockets per state and UDP sockets (connected / unconnected), "
                "for IPv4 and IPv6 together and apart, read from the kernel in one netlink dump. "
                "Every other item of this template is extracted from it. Kept for a short time "
                "only: the numbers live on in the dependent items."
            ),
        },
        "macros": ["{$SOCKETS.INTERVAL}", "{$SOCKETS.NODATA.TIMEOUT}"],
        "nodata_hint": (
            "The server has had no value of sockets.stats for {$SOCKETS.NODATA.TIMEOUT}, so every "
            "socket count of this host is stale.\n"
            "Where to look:\n"
            "- Latest data / the item's error: a \"not supported\" state means the agent does not "
            "know the key (drop-in file not included, agent not restarted) or the command failed.\n"
            "- On the host: `zabbix_agentd -t sockets.stats` (agent 2: `zabbix_agent2 -t "
            "sockets.stats`) and `zabbix-sockets stats --format json`.\n"
            "- Host availability: is the agent running and reachable on its interface?"
        ),
    },
    {
        "slug": "trapper",
        "file": "zabbix-sockets-trapper.yaml",
        "name": "Linux sockets by Zabbix trapper",
        "how": (
            "Nothing is polled: a job on the monitored host pushes the JSON of "
            "`zabbix-sockets stats --format json` to the server or proxy as the value of the "
            "trapper item sockets.stats (for example `zabbix_sender -z SERVER -s HOST -k "
            "sockets.stats -o \"$(zabbix-sockets stats --format json)\"`), and all other items "
            "are taken from that one JSON document by JSONPath. The host name sent must equal "
            "the host's technical name in Zabbix."
        ),
        "master": {
            "name": "Sockets: raw statistics",
            "type": "TRAP",
            "delay": "0",
            "description": (
                "JSON document of `zabbix-sockets stats --format json`, pushed by the monitored "
                "host to the trapper: counts of TCP sockets per state and UDP sockets "
                "(connected / unconnected), for IPv4 and IPv6 together and apart. Every other "
                "item of this template is extracted from it. Kept for a short time only: the "
                "numbers live on in the dependent items."
            ),
        },
        "macros": ["{$SOCKETS.NODATA.TIMEOUT}"],
        "nodata_hint": (
            "The server has received no value of sockets.stats for {$SOCKETS.NODATA.TIMEOUT}, so "
            "every socket count of this host is stale.\n"
            "Where to look:\n"
            "- Is the sending job (cron, timer) still running on the host, and does it exit 0?\n"
            "- Does it send with this host's technical name and to the right server or proxy? "
            "The server answers \"failed: 1\" for an unknown host or key.\n"
            "- Server log: rejected trapper connections (allowed hosts, TLS/PSK settings of the "
            "host)."
        ),
    },
]

# ---------------------------------------------------------------------------------------------
# Macros: name -> (default value, description)
# The UNIX listening paths of the system's own plumbing that discovery skips by default: systemd
# (its private API, journal, userdb, notify sockets; a user manager's) and D-Bus (the system bus,
# a user's bus, abstract bus addresses).
UNIX_SYSTEM_PATHS = (r"^(/run/systemd/|/var/run/systemd/|/run/user/[0-9]+/(systemd/|bus$)|/run/dbus/|"
                     r"/var/run/dbus/|@/org/freedesktop/|@/tmp/dbus-)")

MACROS = {
    "{$SOCKETS.INTERVAL}": (
        "1m", "How often the agent collects the socket statistics (update interval of "
              "sockets.stats). One run is a single netlink dump, cheap even with many sockets."),
    "{$SOCKETS.NODATA.TIMEOUT}": (
        "10m", "How long sockets.stats may stay without a new value before the no-data "
               "trigger fires."),
    "{$SOCKETS.CLOSE_WAIT.MAX}": (
        "100", "CLOSE_WAIT sockets (all ports) above this count for 15 minutes raise a problem. "
               "CLOSE_WAIT has no kernel limit and never expires, so a count that stays up is "
               "a program that does not close what its peers closed."),
    "{$SOCKETS.SYN_QUEUE_FULL.MAX}": (
        "1", "SYNs that met a full SYN queue (dropped, or answered with a SYN cookie) per "
             "second, 5-minute average, above which a problem is raised. This is the kernel "
             "saying a listener's SYN queue is at its limit; a count of SYN_RECV sockets alone "
             "is not."),
    "{$SOCKETS.LISTEN.EPHEMERAL}": (
        "0", "1 = listening ports inside the host's ephemeral range (net.ipv4.ip_local_port_range) "
             "get items too. By default they are left out of discovery: RPC services, Java RMI "
             "and development servers listen on random high ports that come and go, and would "
             "create and delete items again and again."),
    "{$SOCKETS.LISTEN.PORT.MAX}": (
        "50", "At most this many listening ports get items (the lowest port numbers first, "
              "counted after the ephemeral-range rule and before the MATCHES/NOT_MATCHES "
              "filters). Bounds the host's item count: 13 items per port. -1 = no limit."),
    "{$SOCKETS.LISTEN.PORT.MATCHES}": (
        ".*", "Listening ports discovery: only ports whose number matches this regular "
              "expression get items."),
    "{$SOCKETS.LISTEN.PORT.NOT_MATCHES}": (
        "CHANGE_IF_NEEDED", "Listening ports discovery: ports whose number matches this regular "
                            "expression get no items, e.g. ^(22|111)$ (the default matches no "
                            "port)."),
    "{$SOCKETS.REMOTE.PORT.MATCHES}": (
        ".*", "Remote service ports discovery: only watched remote ports that match this "
              "regular expression get items."),
    "{$SOCKETS.REMOTE.PORT.NOT_MATCHES}": (
        "CHANGE_IF_NEEDED", "Remote service ports discovery: watched remote ports that match "
                            "this regular expression get no items (the default matches no "
                            "port)."),
    "{$SOCKETS.ACCEPTQ.PCT.MAX}": (
        "80", "A listening port whose accept queue stays above this percentage of its backlog "
              "for {$SOCKETS.ACCEPTQ.PERIOD} raises a problem. Per port with context: "
              "{$SOCKETS.ACCEPTQ.PCT.MAX:\"8080\"}."),
    "{$SOCKETS.ACCEPTQ.PERIOD}": (
        "5m", "How long the accept queue of a port must stay above {$SOCKETS.ACCEPTQ.PCT.MAX}% "
              "of its backlog before a problem is raised."),
    "{$SOCKETS.PORT.CLOSE_WAIT.MAX}": (
        "50", "Connections to one listening port in CLOSE_WAIT above this count for 15 minutes "
              "raise a problem. Per port with context: {$SOCKETS.PORT.CLOSE_WAIT.MAX:\"8080\"}."),
    "{$SOCKETS.LISTEN_OVERFLOWS.MAX}": (
        "1", "Listen queue overflows per second (TcpExt ListenOverflows, all ports together) "
             "above this 5-minute average raise a problem, unless a discovered port's accept "
             "queue trigger already names the cause."),
    "{$SOCKETS.ORPHANS.PCT.WARN}": (
        "25", "Orphaned TCP sockets above this percentage of net.ipv4.tcp_max_orphans for 5 "
              "minutes raise a warning."),
    "{$SOCKETS.ORPHANS.PCT.HIGH}": (
        "50", "Orphaned TCP sockets above this percentage of net.ipv4.tcp_max_orphans for 5 "
              "minutes raise a high-severity problem."),
    "{$SOCKETS.TW_BUCKETS.PCT.MAX}": (
        "90", "TIME_WAIT sockets (kernel count) at this percentage of "
              "net.ipv4.tcp_max_tw_buckets for 5 minutes raise a problem."),
    "{$SOCKETS.EPHEMERAL.PCT.MAX}": (
        "80", "Local ports held towards one remote address and port at this percentage of the "
              "ephemeral port range for 5 minutes raise a problem."),
    "{$SOCKETS.UNIX.PATH.MAX}": (
        "50", "At most this many UNIX listening paths get items (sorted by path, counted before "
              "the MATCHES/NOT_MATCHES filters). Bounds the host's item count: 5 items per path. "
              "-1 = no limit."),
    "{$SOCKETS.UNIX.PATH.MATCHES}": (
        ".*", "UNIX listening sockets discovery: only paths that match this regular expression "
              "get items (abstract names start with @, as ss shows them)."),
    "{$SOCKETS.UNIX.PATH.NOT_MATCHES}": (
        UNIX_SYSTEM_PATHS, "UNIX listening sockets discovery: paths that match this regular "
                           "expression get no items. The default leaves out systemd's own sockets "
                           "(/run/systemd/..., a user's /run/user/UID/systemd/...) and D-Bus "
                           "(/run/dbus/..., a user's /run/user/UID/bus, @/org/freedesktop/..., "
                           "@/tmp/dbus-...): the init system and the message bus answer at once or "
                           "the host has bigger problems, and a host has a dozen of them. Set it "
                           "to CHANGE_IF_NEEDED to keep them all."),
    "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX}": (
        "80", "A UNIX listening path whose accept queue stays above this percentage of its "
              "backlog for {$SOCKETS.UNIX.ACCEPTQ.PERIOD} raises a problem. Per path with context: "
              "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:\"/run/php/php-fpm.sock\"}. A full UNIX queue "
              "holds one more than the backlog (e.g. 125% of a backlog of 4)."),
    "{$SOCKETS.UNIX.ACCEPTQ.PERIOD}": (
        "5m", "How long the accept queue of a UNIX listening path must stay above "
              "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX}% of its backlog before a problem is raised."),
    "{$SOCKETS.CONNTRACK.PCT.MAX}": (
        "75", "Connection tracking entries above this percentage of "
              "net.netfilter.nf_conntrack_max for 5 minutes raise a problem."),
    "{$SOCKETS.CGROUP.NAME.MATCHES}": (
        ".*", "Services and containers discovery: only cgroups whose name ({#NAME}, e.g. "
              "nginx.service) matches this regular expression get items."),
    "{$SOCKETS.CGROUP.NAME.NOT_MATCHES}": (
        "^/$", "Services and containers discovery: cgroups whose name matches this regular "
               "expression get no items, e.g. ^(/|session-.*\\.scope)$. The default leaves out "
               "the root cgroup (/): it holds the processes of no service or container, and the "
               "host's own items already count and alert on their sockets."),
    "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX}": (
        "50", "Sockets of one service or container in CLOSE_WAIT above this count for 15 minutes "
              "raise a problem. Per cgroup with context on its name: "
              "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"nginx.service\"}."),
    "{$SOCKETS.NETNS.MATCHES}": (
        ".*", "Network namespaces discovery: only namespaces whose name matches this regular "
              "expression get items."),
    "{$SOCKETS.NETNS.NOT_MATCHES}": (
        "^(host|self)$", "Network namespaces discovery: namespaces whose name matches this "
                         "regular expression get no items. The default leaves out the namespace "
                         "zabbix-sockets runs in (named host, or self inside a container): the "
                         "template's own items already count and alert on it."),
    "{$SOCKETS.NETNS.CLOSE_WAIT.MAX}": (
        "100", "Sockets in CLOSE_WAIT inside one network namespace above this count for 15 "
               "minutes raise a problem. Per namespace with context: "
               "{$SOCKETS.NETNS.CLOSE_WAIT.MAX:\"NAME\"}."),
    "{$SOCKETS.NETNS.SYN_SENT.MAX}": (
        "100", "Unanswered connection attempts (SYN_SENT) inside one network namespace above "
               "this count for 15 minutes raise a problem. High by default: a namespace's own "
               "traffic is known only to its owner; lower it per namespace with context."),
}

# Macros of both templates, after each template's own list.
COMMON_MACROS = [
    "{$SOCKETS.CLOSE_WAIT.MAX}", "{$SOCKETS.SYN_QUEUE_FULL.MAX}",
    "{$SOCKETS.LISTEN.EPHEMERAL}", "{$SOCKETS.LISTEN.PORT.MAX}", "{$SOCKETS.LISTEN.PORT.MATCHES}", "{$SOCKETS.LISTEN.PORT.NOT_MATCHES}",
    "{$SOCKETS.REMOTE.PORT.MATCHES}", "{$SOCKETS.REMOTE.PORT.NOT_MATCHES}",
    "{$SOCKETS.ACCEPTQ.PCT.MAX}", "{$SOCKETS.ACCEPTQ.PERIOD}", "{$SOCKETS.PORT.CLOSE_WAIT.MAX}",
    "{$SOCKETS.LISTEN_OVERFLOWS.MAX}", "{$SOCKETS.ORPHANS.PCT.WARN}", "{$SOCKETS.ORPHANS.PCT.HIGH}",
    "{$SOCKETS.TW_BUCKETS.PCT.MAX}", "{$SOCKETS.EPHEMERAL.PCT.MAX}", "{$SOCKETS.CONNTRACK.PCT.MAX}",
    "{$SOCKETS.UNIX.PATH.MAX}", "{$SOCKETS.UNIX.PATH.MATCHES}", "{$SOCKETS.UNIX.PATH.NOT_MATCHES}",
    "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX}", "{$SOCKETS.UNIX.ACCEPTQ.PERIOD}",
    "{$SOCKETS.CGROUP.NAME.MATCHES}", "{$SOCKETS.CGROUP.NAME.NOT_MATCHES}",
    "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX}", "{$SOCKETS.NETNS.MATCHES}", "{$SOCKETS.NETNS.NOT_MATCHES}",
    "{$SOCKETS.NETNS.CLOSE_WAIT.MAX}", "{$SOCKETS.NETNS.SYN_SENT.MAX}",
]

# ---------------------------------------------------------------------------------------------
# One colour per socket state, in every graph (host-wide, per listening port, per remote port).
STATE_COLOURS = {
    "listen": "1A7C11", "syn_sent": "F63100", "syn_recv": "2774A4", "established": "A54F10",
    "fin_wait1": "FC6EA3", "close_wait": "6C59DC", "fin_wait2": "AC8C14", "last_ack": "611F27",
    "time_wait": "F230E0", "closing": "5CCD18", "close": "BB2A02",
    "udp_established": "5A2B57", "udp_unconn": "89ABF8",
}

# ---------------------------------------------------------------------------------------------
# Dependent items: one row per number taken from the JSON. Columns:
#   key, JSONPath, item name, graph colour (None = not in the "by state" graph), description.
# The order of rows is the order of the stacked graph (bottom to top) and of the YAML.
ITEMS = [
    ("sockets.tcp[listen]", "$.tcp.listen", "TCP sockets: LISTEN", STATE_COLOURS["listen"],
     "Sockets that wait for incoming connections, one per listening address and port "
     "(ss: LISTEN). The number moves only when services start, stop or open new ports, so an "
     "unexpected change deserves a look at `ss -tlnp`."),
    ("sockets.tcp[syn_sent]", "$.tcp.syn_sent", "TCP sockets: SYN_SENT", STATE_COLOURS["syn_sent"],
     "Outgoing connection attempts: a SYN went out and the peer has not answered yet "
     "(ss: SYN-SENT). Normally close to zero. A count that stays up means peers that do not "
     "answer: a remote service down, a firewall dropping packets silently, a routing problem. "
     "`ss -tan state syn-sent` lists the destinations."),
    ("sockets.tcp[syn_recv]", "$.tcp.syn_recv", "TCP sockets: SYN_RECV", STATE_COLOURS["syn_recv"],
     "Incoming connections half-way through the handshake: the SYN arrived and was answered, "
     "the client's final ACK has not (ss: SYN-RECV; pending connection requests included). "
     "Many of them suggest a SYN flood, clients on a lossy path, or a listener whose accept "
     "queue is full."),
    ("sockets.tcp[established]", "$.tcp.established", "TCP sockets: ESTABLISHED", STATE_COLOURS["established"],
     "Open connections that can carry data both ways (ss: ESTAB). This is the working state; "
     "the count follows clients, upstream connections and connection pools. A jump suggests a "
     "traffic surge, clients that do not reuse connections or slow back ends holding them "
     "longer; a drop, an outage on the service or the network."),
    ("sockets.tcp[fin_wait1]", "$.tcp.fin_wait1", "TCP sockets: FIN_WAIT1", STATE_COLOURS["fin_wait1"],
     "This host closed its side and waits for the peer to acknowledge that (ss: FIN-WAIT-1). "
     "Usually gone in milliseconds; many of them point at peers that became unreachable or "
     "stopped reading while data was still queued for them."),
    ("sockets.tcp[close_wait]", "$.tcp.close_wait", "TCP sockets: CLOSE_WAIT", STATE_COLOURS["close_wait"],
     "The peer has closed the connection, but the local program has not closed its socket yet "
     "(ss: CLOSE-WAIT). They do not expire by themselves: each stays until the owning process "
     "closes it or exits. A high or growing count nearly always means a program that leaks "
     "connections (a pool or client that never closes broken ones); "
     "`ss -tanp state close-wait` names the process."),
    ("sockets.tcp[fin_wait2]", "$.tcp.fin_wait2", "TCP sockets: FIN_WAIT2", STATE_COLOURS["fin_wait2"],
     "This host's close was acknowledged; it now waits for the peer to close its side "
     "(ss: FIN-WAIT-2). Peers that keep half-closed connections open collect here; sockets "
     "whose process has already let go are dropped by the kernel after "
     "net.ipv4.tcp_fin_timeout."),
    ("sockets.tcp[last_ack]", "$.tcp.last_ack", "TCP sockets: LAST_ACK", STATE_COLOURS["last_ack"],
     "The peer closed first, the local program closed afterwards, and this host waits for the "
     "final acknowledgement (ss: LAST-ACK). Usually brief; a lasting count points at peers "
     "that went away."),
    ("sockets.tcp[time_wait]", "$.tcp.time_wait", "TCP sockets: TIME_WAIT", STATE_COLOURS["time_wait"],
     "Connections this host closed first, kept for a fixed 60 seconds on Linux so that late "
     "packets cannot be taken for a new connection (ss: TIME-WAIT). Normal on busy clients and "
     "proxies. A very high count means many short-lived connections and can use up local "
     "ports towards one destination; keep-alive and connection pooling reduce it."),
    ("sockets.tcp[closing]", "$.tcp.closing", "TCP sockets: CLOSING", STATE_COLOURS["closing"],
     "Both ends closed at the same moment and this host still waits for the acknowledgement of "
     "its own close (ss: CLOSING). Rare; a lasting count suggests packet loss on the path."),
    ("sockets.tcp[close]", "$.tcp.close", "TCP sockets: CLOSE", STATE_COLOURS["close"],
     "Sockets the kernel lists in the CLOSE state (ss: UNCONN for TCP). A connection passes "
     "through it only briefly while being torn down, so this is normally 0."),
    ("sockets.udp[established]", "$.udp.established", "UDP sockets: connected", STATE_COLOURS["udp_established"],
     "UDP sockets tied to one remote address with connect() (ss: ESTAB), as some DNS "
     "resolvers, syslog, metrics or QUIC clients use them."),
    ("sockets.udp[unconn]", "$.udp.unconn", "UDP sockets: unconnected", STATE_COLOURS["udp_unconn"],
     "UDP sockets that are bound but not tied to one peer (ss: UNCONN): services such as DNS, "
     "NTP or syslog, and clients that address each datagram themselves."),
    ("sockets.tcp[total]", "$.tcp.total", "TCP sockets: total", None,
     "Every TCP socket the kernel reports in the host's network namespace, IPv4 and IPv6, in "
     "any state: the sum of the TCP state items."),
    ("sockets.udp[total]", "$.udp.total", "UDP sockets: total", None,
     "Every UDP socket in the host's network namespace, IPv4 and IPv6: connected plus "
     "unconnected."),
]

DEPENDENT_HISTORY = "7d"
DEPENDENT_TRENDS = "365d"
MASTER_HISTORY = "1h"

# Extra graphs besides the stacked "by state" one: (name, [(key, colour), ...])
EXTRA_GRAPHS = [
    ("Sockets: totals", [("sockets.tcp[total]", "0040FF"), ("sockets.udp[total]", "00BFFF")]),
    ("Sockets: listen queue drops per second", [
        ("sockets.kernel[TcpExt_ListenOverflows]", "F63100"),
        ("sockets.kernel[TcpExt_ListenDrops]", "A54F10"),
        ("sockets.kernel[TcpExt_TCPReqQFullDrop]", "2774A4"),
        ("sockets.kernel[TcpExt_TCPReqQFullDoCookies]", "1A7C11"),
        ("sockets.kernel[TcpExt_SyncookiesSent]", "FC6EA3")]),
    ("Sockets: TCP connections opened, failed and reset per second", [
        ("sockets.kernel[Tcp_ActiveOpens]", "1A7C11"),
        ("sockets.kernel[Tcp_PassiveOpens]", "2774A4"),
        ("sockets.kernel[Tcp_AttemptFails]", "F63100"),
        ("sockets.kernel[Tcp_EstabResets]", "A54F10"),
        ("sockets.kernel[Tcp_OutRsts]", "6C59DC")]),
    ("Sockets: kernel TCP socket counts", [
        ("sockets.kernel[TCP_alloc]", "1A7C11"),
        ("sockets.kernel[TCP_inuse]", "2774A4"),
        ("sockets.kernel[TCP_tw]", "F230E0"),
        ("sockets.kernel[TCP_orphan]", "F63100")]),
    ("Sockets: use of kernel limits (%)", [
        ("sockets.limit_pct[tw_buckets]", STATE_COLOURS["time_wait"]),
        ("sockets.limit_pct[orphans]", "F63100"),
        ("sockets.limit_pct[tcp_mem]", "2774A4"),
        ("sockets.limit_pct[conntrack]", "A54F10"),
        ("sockets.ephemeral[pressure_pct]", "1A7C11"),
        ("sockets.listen.max_queue_pct", "6C59DC")]),
    ("Sockets: TCP memory (pages)", [
        ("sockets.kernel[TCP_mem]", "1A7C11"),
        ("sockets.kernel[tcp_mem_pressure]", "FC6EA3"),
        ("sockets.kernel[tcp_mem_max]", "F63100")]),
]
STATE_GRAPH_NAME = "Sockets by state"

# ---------------------------------------------------------------------------------------------
# Triggers. `expr` and the text use {T} for the template's technical name. `item` (optional) is
# the key the trigger is attached to; without it the keys come from `expr`: one key, the trigger
# goes under that item; several, into the export's top-level `triggers`. `depends` names another
# trigger of the same table. `id` makes the uuid: keep it when editing a trigger.
TRIGGERS = [
    {
        "id": "close_wait_growing",
        "item": "sockets.tcp[close_wait]",
        "expr": ("min(/{T}/sockets.tcp[close_wait],5m)>{$SOCKETS.CLOSE_WAIT.MAX} and "
                 "min(/{T}/sockets.tcp[close_wait],5m)>max(/{T}/sockets.tcp[close_wait],5m:now-30m)"),
        "name": "Sockets: CLOSE_WAIT keeps growing (over {$SOCKETS.CLOSE_WAIT.MAX} and above its level of 30m ago)",
        "opdata": "Current: {ITEM.LASTVALUE1}",
        "priority": "AVERAGE",
        "scope": "capacity",
        "description": (
            "CLOSE_WAIT sockets have stayed above {$SOCKETS.CLOSE_WAIT.MAX} for 5 minutes, and "
            "even the lowest count of the last 5 minutes is above the highest count of the same "
            "window 30 minutes earlier. Sockets that only the local program can close are piling "
            "up: a connection leak that ends in \"too many open files\" or a full connection "
            "pool.\n"
            "Where to look:\n"
            "- `ss -tanp state close-wait` shows the owning process and the peers.\n"
            "- Group by peer: `ss -Htan state close-wait | awk '{print $4}' | sort | uniq -c | sort -rn | head`.\n"
            "- Fix in the program (close connections the peer has closed); restarting it only "
            "empties the pile for a while.\n"
            "The comparison needs 35 minutes of data: on a new host whose count is already above "
            "the threshold this trigger shows as unknown until then, while the \"high number\" "
            "trigger reports the problem."
        ),
    },
    {
        "id": "close_wait_high",
        "item": "sockets.tcp[close_wait]",
        "expr": "min(/{T}/sockets.tcp[close_wait],15m)>{$SOCKETS.CLOSE_WAIT.MAX}",
        "name": "Sockets: high number of CLOSE_WAIT sockets (over {$SOCKETS.CLOSE_WAIT.MAX} for 15m)",
        "opdata": "Current: {ITEM.LASTVALUE1}",
        "priority": "WARNING",
        "scope": "capacity",
        "depends": "close_wait_growing",
        "description": (
            "More than {$SOCKETS.CLOSE_WAIT.MAX} TCP sockets have been in CLOSE_WAIT for 15 "
            "minutes: their peers have closed, but a local program keeps the sockets open. The "
            "kernel does not clean these up; only the program can.\n"
            "Where to look:\n"
            "- `ss -tanp state close-wait` shows which process owns them.\n"
            "- A count that keeps rising is a leak (see the \"keeps growing\" trigger); a stable "
            "count may be a program that closes lazily; then raise {$SOCKETS.CLOSE_WAIT.MAX} on "
            "this host."
        ),
    },
    {
        "id": "syn_queue_full",
        "expr": ("avg(/{T}/sockets.kernel[TcpExt_TCPReqQFullDrop],5m)"
                 "+avg(/{T}/sockets.kernel[TcpExt_TCPReqQFullDoCookies],5m)"
                 ">{$SOCKETS.SYN_QUEUE_FULL.MAX}"),
        "name": "Sockets: SYN queues full (over {$SOCKETS.SYN_QUEUE_FULL.MAX}/s on average for 5m)",
        "opdata": "Dropped: {ITEM.LASTVALUE1}/s, cookies: {ITEM.LASTVALUE2}/s",
        "priority": "WARNING",
        "scope": "performance",
        "description": (
            "For 5 minutes, more than {$SOCKETS.SYN_QUEUE_FULL.MAX} new connections per second "
            "found the SYN queue of their listening port full: the kernel dropped the SYN (the "
            "client retries after 1 s, 3 s, 7 s) or answered with a SYN cookie. Causes: a SYN "
            "flood, clients on a path that loses the final ACK, or a listener whose backlog is "
            "too small for its bursts. (A high count of SYN_RECV sockets alone is normal on a "
            "busy server and raises nothing.)\n"
            "Where to look:\n"
            "- `ss -Htan state syn-recv | awk '{print $3}' | sort | uniq -c | sort -rn | head` "
            "(which local port) and the sources in column 4.\n"
            "- `nstat -az TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies TcpExtSyncookiesSent "
            "TcpExtListenDrops`.\n"
            "- Sysctls: net.ipv4.tcp_max_syn_backlog, net.core.somaxconn, net.ipv4.tcp_syncookies; "
            "and the program's listen() backlog."
        ),
    },
    {
        "id": "nodata",
        "item": MASTER_KEY,
        "expr": "nodata(/{T}/sockets.stats,{$SOCKETS.NODATA.TIMEOUT})=1",
        "name": "Sockets: no socket statistics for {$SOCKETS.NODATA.TIMEOUT}",
        "priority": "WARNING",
        "scope": "availability",
        "description": None,   # per template: TEMPLATES[...]["nodata_hint"]
    },
    {
        "id": "listen_overflows",
        "expr": ("avg(/{T}/sockets.kernel[TcpExt_ListenOverflows],5m)>{$SOCKETS.LISTEN_OVERFLOWS.MAX}"
                 " and last(/{T}/sockets.kernel[TcpExt_ListenOverflows])>0"
                 " and min(/{T}/sockets.listen.max_queue_pct,{$SOCKETS.ACCEPTQ.PERIOD})"
                 "<={$SOCKETS.ACCEPTQ.PCT.MAX}"),
        "name": "Sockets: listen queue overflows (over {$SOCKETS.LISTEN_OVERFLOWS.MAX}/s on average for 5m)",
        "opdata": "Current: {ITEM.LASTVALUE1}/s",
        "priority": "WARNING",
        "scope": "performance",
        "description": (
            "On average more than {$SOCKETS.LISTEN_OVERFLOWS.MAX} connections per second over 5 "
            "minutes completed their handshake and found the accept queue of their listening port "
            "full. The kernel dropped them; clients saw slow or failed connects. A service on "
            "this host does not accept connections as fast as they arrive.\n"
            "Where to look:\n"
            "- Which port: the \"accept queue\" items of the listening ports discovery, or "
            "`ss -ltn` (Recv-Q close to Send-Q).\n"
            "- `nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop` for the "
            "counters right now.\n"
            "- Then the program on that port: saturated workers, slow back ends, a backlog too "
            "small for bursts (its listen() backlog and net.core.somaxconn).\n"
            "This trigger fires only while overflows go on (the last collection saw some), and "
            "stays quiet while a discovered port's accept queue has been over "
            "{$SOCKETS.ACCEPTQ.PCT.MAX}% for {$SOCKETS.ACCEPTQ.PERIOD}: that port's own trigger "
            "names the cause. So it reports overflows no discovered port explains (bursts "
            "between two collections, ports left out of discovery)."
        ),
    },
    {
        "id": "orphans_high",
        "expr": "min(/{T}/sockets.limit_pct[orphans],5m)>{$SOCKETS.ORPHANS.PCT.HIGH}",
        "name": "Sockets: orphaned TCP sockets over {$SOCKETS.ORPHANS.PCT.HIGH}% of tcp_max_orphans",
        "opdata": "Orphans: {ITEM.LASTVALUE1} of tcp_max_orphans",
        "priority": "HIGH",
        "scope": "capacity",
        "description": (
            "For 5 minutes, more than {$SOCKETS.ORPHANS.PCT.HIGH}% of net.ipv4.tcp_max_orphans "
            "TCP sockets have had no program attached (closed, still finishing with their peer). "
            "For sockets already in trouble (retransmission timeouts, errors) the kernel checks "
            "the orphan count doubled or quadrupled against the limit, so at this level it may "
            "already be resetting connections and logging \"too many orphaned sockets\" or "
            "\"out of socket memory\".\n"
            "Where to look:\n"
            "- `ss -Htan state fin-wait-1 state fin-wait-2 state last-ack state closing | awk "
            "'{print $5}' | sort | uniq -c | sort -rn | head` for the peers (orphans are in these "
            "states).\n"
            "- `dmesg | grep -i -e orphan -e 'socket memory'`.\n"
            "- Peers that stopped reading (FIN_WAIT1 with data queued) or vanished; "
            "net.ipv4.tcp_orphan_retries and net.ipv4.tcp_fin_timeout shorten their life; raise "
            "net.ipv4.tcp_max_orphans only with memory to spare (about 64 KiB each in the worst "
            "case).\n"
            "The numbers are kernel-wide: in containers every namespace counts."
        ),
    },
    {
        "id": "orphans_warn",
        "expr": "min(/{T}/sockets.limit_pct[orphans],5m)>{$SOCKETS.ORPHANS.PCT.WARN}",
        "name": "Sockets: orphaned TCP sockets over {$SOCKETS.ORPHANS.PCT.WARN}% of tcp_max_orphans",
        "opdata": "Orphans: {ITEM.LASTVALUE1} of tcp_max_orphans",
        "priority": "WARNING",
        "scope": "capacity",
        "depends": "orphans_high",
        "description": (
            "For 5 minutes, more than {$SOCKETS.ORPHANS.PCT.WARN}% of net.ipv4.tcp_max_orphans "
            "TCP sockets have had no program attached. For sockets already in trouble the kernel "
            "checks the orphan count up to four times over against the limit, so a quarter of it "
            "can already mean connections being reset.\n"
            "Where to look:\n"
            "- `ss -tan state fin-wait-1 state fin-wait-2 state last-ack state closing` for the "
            "peers, `dmesg | grep -i orphan`.\n"
            "- Peers that stopped reading or vanished; net.ipv4.tcp_orphan_retries, "
            "net.ipv4.tcp_fin_timeout, net.ipv4.tcp_max_orphans.\n"
            "The numbers are kernel-wide: in containers every namespace counts."
        ),
    },
    {
        "id": "tw_buckets",
        "expr": "min(/{T}/sockets.limit_pct[tw_buckets],5m)>={$SOCKETS.TW_BUCKETS.PCT.MAX}",
        "name": "Sockets: TIME_WAIT at {$SOCKETS.TW_BUCKETS.PCT.MAX}% of tcp_max_tw_buckets",
        "opdata": "TIME_WAIT: {ITEM.LASTVALUE1} of tcp_max_tw_buckets",
        "priority": "WARNING",
        "scope": "capacity",
        "description": (
            "For 5 minutes the kernel has held at least {$SOCKETS.TW_BUCKETS.PCT.MAX}% of "
            "net.ipv4.tcp_max_tw_buckets TIME_WAIT sockets. At the limit, connections that close "
            "skip TIME_WAIT (kernel log: \"TCP: time wait bucket table overflow\"), and late "
            "packets of an old connection can then disturb a new one with the same ports.\n"
            "Where to look:\n"
            "- Which peers: `ss -Htan state time-wait | awk '{print $4}' | sort | uniq -c | sort "
            "-rn | head`.\n"
            "- Fewer short connections: keep-alive and connection pools in the programs that "
            "close first.\n"
            "- Sysctls: net.ipv4.tcp_max_tw_buckets (raise it if memory allows; each entry is "
            "small), net.ipv4.tcp_tw_reuse for outgoing connections."
        ),
    },
    {
        "id": "ephemeral_pressure",
        "expr": "min(/{T}/sockets.ephemeral[pressure_pct],5m)>={$SOCKETS.EPHEMERAL.PCT.MAX}",
        "name": "Sockets: ephemeral ports towards one destination at {$SOCKETS.EPHEMERAL.PCT.MAX}% of the range",
        "opdata": "Current: {ITEM.LASTVALUE1}%",
        "priority": "AVERAGE",
        "scope": "capacity",
        "description": (
            "For 5 minutes, connections from this host to a single remote address and port have "
            "held at least {$SOCKETS.EPHEMERAL.PCT.MAX}% of the local ports in "
            "net.ipv4.ip_local_port_range. When none is left, new connections to that "
            "destination fail with \"cannot assign requested address\" even though the host is "
            "otherwise idle.\n"
            "Where to look:\n"
            "- The item \"Ephemeral ports: busiest destination\" names the remote address and "
            "port; `ss -tan dst ADDRESS:PORT | awk '{print $1}' | sort | uniq -c` shows in which "
            "states the ports are held (usually TIME_WAIT).\n"
            "- Reuse connections (keep-alive, pools) in the program that connects there.\n"
            "- Sysctls: net.ipv4.ip_local_port_range (widen it), net.ipv4.tcp_tw_reuse; more "
            "source or destination addresses also multiply the ports available."
        ),
    },
    {
        "id": "tcp_mem_pressure",
        "expr": "min(/{T}/sockets.limit_pct[tcp_mem],5m)>100",
        "name": "Sockets: TCP memory above the tcp_mem pressure threshold",
        "opdata": "Used: {ITEM.LASTVALUE1} of the pressure value",
        "priority": "AVERAGE",
        "scope": "performance",
        "description": (
            "For 5 minutes the buffers of all TCP sockets have used more pages than the pressure "
            "value of net.ipv4.tcp_mem. The kernel now shrinks socket buffers, which slows "
            "transfers; at the max value it drops data and resets connections (\"out of socket "
            "memory\" / TCPAbortOnMemory).\n"
            "Where to look:\n"
            "- `ss -Htn | sort -k2,2nr | head` and `ss -Htn | sort -k3,3nr | head` list the "
            "sockets with the most unread (Recv-Q) and unsent (Send-Q) data, `ss -tmn` their "
            "buffer memory: usually programs that do not read their sockets, or peers that do "
            "not read theirs.\n"
            "- `cat /proc/net/sockstat` (TCP mem) and `sysctl net.ipv4.tcp_mem "
            "net.ipv4.tcp_rmem net.ipv4.tcp_wmem`.\n"
            "- Raise net.ipv4.tcp_mem only if the host has the memory; the defaults scale with "
            "RAM.\n"
            "The numbers are kernel-wide: in containers every namespace counts."
        ),
    },
    {
        "id": "conntrack",
        "expr": "min(/{T}/sockets.limit_pct[conntrack],5m)>{$SOCKETS.CONNTRACK.PCT.MAX}",
        "name": "Sockets: connection tracking table over {$SOCKETS.CONNTRACK.PCT.MAX}% full",
        "opdata": "Entries: {ITEM.LASTVALUE1} of nf_conntrack_max",
        "priority": "AVERAGE",
        "scope": "capacity",
        "description": (
            "For 5 minutes netfilter's connection tracking table has held more than "
            "{$SOCKETS.CONNTRACK.PCT.MAX}% of net.netfilter.nf_conntrack_max entries. When it is "
            "full the kernel drops packets of new connections (kernel log: \"nf_conntrack: table "
            "full, dropping packet\"), whatever the sockets look like.\n"
            "Where to look:\n"
            "- With the conntrack tool: `conntrack -S` (drop and insert_failed counters), "
            "`conntrack -L | awk '{print $1}' | sort | uniq -c` (entries per protocol), "
            "`conntrack -L -p tcp --dport PORT | wc -l` (one service).\n"
            "- Many short connections or UDP flows; long timeouts "
            "(net.netfilter.nf_conntrack_tcp_timeout_established, ..._time_wait, udp_timeout).\n"
            "- Raise net.netfilter.nf_conntrack_max (and the hash size) if memory allows, or "
            "exempt busy traffic from tracking (NOTRACK / notrack rules).\n"
            "Stays unknown on hosts where nf_conntrack is not loaded."
        ),
    },
]

# ---------------------------------------------------------------------------------------------
# Kernel counters and limits: items `sockets.kernel[<name>]` from `$.kernel.<name>`.
# Columns: name, item name, units, description. `KERNEL_COUNTERS` grow since boot and are stored
# per second (CHANGE_PER_SECOND: the first value after a restart of the counter is discarded,
# so a reboot or a new namespace does not show a negative spike); the others are stored as read.
KERNEL_COUNTERS = [
    ("Tcp_ActiveOpens", "Kernel TCP: connections opened per second", "",
     "Connections this host started (a SYN sent by connect()), per second: the rate of outgoing "
     "connections. A jump usually shows up in TIME_WAIT a minute later; clients that open a new "
     "connection per request instead of reusing one are the common cause."),
    ("Tcp_PassiveOpens", "Kernel TCP: connections accepted per second", "",
     "Incoming connections whose handshake completed on a listening socket, per second: the rate "
     "of new connections to the services on this host."),
    ("Tcp_AttemptFails", "Kernel TCP: failed connection attempts per second", "",
     "Connection attempts given up on (sockets that went from SYN_SENT or SYN_RECV back to CLOSED, "
     "mostly because the other side answered with a reset), per second. A rise means this host "
     "connects to ports where nothing listens, or to peers that refuse it."),
    ("Tcp_EstabResets", "Kernel TCP: established connections reset per second", "",
     "Connections in ESTABLISHED or CLOSE_WAIT that ended with a reset instead of a clean close, "
     "per second. Peers or middleboxes (load balancers, firewalls with short idle timeouts) that "
     "drop connections show up here."),
    ("Tcp_InSegs", "Kernel TCP: segments received per second", "",
     "TCP segments received, per second (errors included)."),
    ("Tcp_OutSegs", "Kernel TCP: segments sent per second", "",
     "TCP segments sent, per second (retransmissions not included)."),
    ("Tcp_RetransSegs", "Kernel TCP: segments retransmitted per second", "",
     "TCP segments sent again because no acknowledgement came in time, per second. Compared "
     "with the segments sent it shows loss or congestion on the paths this host talks over "
     "(`ss -ti` lists retransmits per connection)."),
    ("Tcp_InErrs", "Kernel TCP: bad segments received per second", "",
     "TCP segments received with errors (bad checksum, bad header), per second. Should stay near "
     "0; a rise points at faulty NICs, drivers or offloading, or at a broken path."),
    ("Tcp_OutRsts", "Kernel TCP: resets sent per second", "",
     "Segments sent with the RST flag, per second: connections to closed ports refused, "
     "connections aborted by this host. A rise together with failed attempts elsewhere often "
     "means a service on this host is down while clients keep trying."),
    ("Udp_InDatagrams", "Kernel UDP: datagrams received per second", "",
     "UDP datagrams delivered to sockets, per second."),
    ("Udp_NoPorts", "Kernel UDP: datagrams to closed ports per second", "",
     "UDP datagrams that arrived for a port where no socket listens, per second (answered with "
     "ICMP port unreachable). A steady rate points at a stopped UDP service or at scans."),
    ("Udp_InErrors", "Kernel UDP: receive errors per second", "",
     "UDP datagrams that could not be delivered, per second: bad checksums and full receive "
     "buffers (the latter also in \"receive buffer errors\")."),
    ("Udp_OutDatagrams", "Kernel UDP: datagrams sent per second", "",
     "UDP datagrams sent, per second."),
    ("Udp_RcvbufErrors", "Kernel UDP: receive buffer errors per second", "",
     "UDP datagrams dropped because the receiving socket's buffer was full, per second: the "
     "program reads too slowly for the traffic it gets. Look at `ss -uamn` (Recv-Q, skmem) and "
     "the sysctls net.core.rmem_default, net.core.rmem_max; the program can raise SO_RCVBUF."),
    ("Udp_SndbufErrors", "Kernel UDP: send buffer errors per second", "",
     "UDP datagrams dropped on send because the socket's send buffer (or the device queue) was "
     "full, per second. See net.core.wmem_default, net.core.wmem_max."),
    ("TcpExt_SyncookiesSent", "Kernel TCP: SYN cookies sent per second", "",
     "Answers to SYNs that carried a SYN cookie because a listener's SYN queue was full, per "
     "second. The connections still work, with fewer TCP options. A steady rate means a SYN "
     "flood or a listener that cannot keep up (net.ipv4.tcp_syncookies, "
     "net.ipv4.tcp_max_syn_backlog)."),
    ("TcpExt_SyncookiesRecv", "Kernel TCP: SYN cookies received per second", "",
     "Valid SYN cookies that came back and became connections, per second."),
    ("TcpExt_SyncookiesFailed", "Kernel TCP: invalid SYN cookies per second", "",
     "ACKs that looked like SYN cookie answers but did not check out, per second."),
    ("TcpExt_TW", "Kernel TCP: TIME_WAIT sockets finished per second", "",
     "TIME_WAIT sockets that reached the end of their 60 seconds, per second: about the rate at "
     "which this host closes connections first."),
    ("TcpExt_ListenOverflows", "Kernel TCP: listen queue overflows per second", "",
     "Completed handshakes that found the listener's accept queue full, per second. The kernel "
     "drops the client's final ACK; the client sees a slow or failed connect. Which port: the "
     "per-port accept queue items, or `ss -ltn` (Recv-Q near Send-Q)."),
    ("TcpExt_ListenDrops", "Kernel TCP: listen drops per second", "",
     "Connection requests dropped at a listener for any reason, per second: overflows of the "
     "accept queue plus other drops (memory, no listener any more)."),
    ("TcpExt_TCPTimeouts", "Kernel TCP: retransmission timeouts per second", "",
     "Retransmission timers that expired, per second: segments for which no acknowledgement came "
     "at all in time. Lost peers and heavily lossy paths raise it."),
    ("TcpExt_TCPAbortOnData", "Kernel TCP: resets on data after close per second", "",
     "Connections this host reset because data arrived after the program had closed its side, or "
     "because the program closed with SO_LINGER set to 0, per second."),
    ("TcpExt_TCPAbortOnClose", "Kernel TCP: resets on close with unread data per second", "",
     "Connections this host reset because the program closed the socket while received data was "
     "still unread, per second. Common with clients that stop reading a response early."),
    ("TcpExt_TCPAbortOnMemory", "Kernel TCP: resets for lack of memory per second", "",
     "Connections reset because TCP memory ran short or too many orphaned sockets existed, per "
     "second (the kernel log says \"out of memory -- consider tuning tcp_mem\" or \"too many "
     "orphaned sockets\"). Any value above 0 deserves a look at net.ipv4.tcp_mem and "
     "net.ipv4.tcp_max_orphans."),
    ("TcpExt_TCPAbortOnTimeout", "Kernel TCP: resets after timeout per second", "",
     "Connections given up after too many retransmissions or unanswered keepalive probes, per "
     "second: peers that vanished (net.ipv4.tcp_retries2, tcp_keepalive_*)."),
    ("TcpExt_TCPAbortOnLinger", "Kernel TCP: FIN_WAIT2 sockets dropped per second", "",
     "Closed sockets dropped in FIN_WAIT2 after net.ipv4.tcp_fin_timeout (or the program's "
     "TCP_LINGER2) because the peer never closed its side, per second."),
    ("TcpExt_TCPAbortFailed", "Kernel TCP: failed resets per second", "",
     "Resets the kernel wanted to send but could not (no memory), per second. Should be 0."),
    ("TcpExt_TCPReqQFullDoCookies", "Kernel TCP: SYN queue full, cookie sent per second", "",
     "SYNs that arrived at a full SYN queue and were answered with a SYN cookie, per second."),
    ("TcpExt_TCPReqQFullDrop", "Kernel TCP: SYN queue full, SYN dropped per second", "",
     "SYNs dropped because a listener's SYN queue was full and SYN cookies were off or not "
     "possible, per second: clients retry after 1 s, 3 s, ... (net.ipv4.tcp_syncookies, "
     "net.ipv4.tcp_max_syn_backlog, the listen() backlog)."),
]

KERNEL_GAUGES = [
    ("Tcp_CurrEstab", "Kernel TCP: connections in ESTABLISHED or CLOSE_WAIT", "",
     "The kernel's own gauge of TCP connections in ESTABLISHED or CLOSE_WAIT in this network "
     "namespace (what `ss -s` prints as \"estab\")."),
    ("sockets_used", "Kernel: sockets in use", "",
     "Sockets of every kind in use (TCP, UDP, UNIX, raw, netlink...), as /proc/net/sockstat "
     "\"sockets: used\" shows them. A steady climb with flat TCP and UDP counts points at a "
     "program leaking UNIX or other sockets."),
    ("TCP_inuse", "Kernel TCP: IPv4 sockets in use", "",
     "IPv4 TCP sockets in use in this network namespace, TIME_WAIT not included "
     "(/proc/net/sockstat)."),
    ("TCP6_inuse", "Kernel TCP: IPv6 sockets in use", "",
     "IPv6 TCP sockets in use in this network namespace (/proc/net/sockstat6). Has no value on "
     "hosts without IPv6."),
    ("UDP_inuse", "Kernel UDP: IPv4 sockets in use", "",
     "IPv4 UDP sockets in use in this network namespace (/proc/net/sockstat)."),
    ("UDP6_inuse", "Kernel UDP: IPv6 sockets in use", "",
     "IPv6 UDP sockets in use in this network namespace (/proc/net/sockstat6). Has no value on "
     "hosts without IPv6."),
    ("TCP_orphan", "Kernel TCP: orphaned sockets", "",
     "TCP sockets no program holds any more (closed, still finishing their goodbye with the "
     "peer), for the whole kernel, every namespace included. The kernel starts killing them when "
     "their number passes net.ipv4.tcp_max_orphans (or a half or quarter of it when memory is "
     "tight)."),
    ("TCP_tw", "Kernel TCP: TIME_WAIT sockets (kernel count)", "",
     "TIME_WAIT sockets by the kernel's own count (/proc/net/sockstat \"tw\"), the number "
     "net.ipv4.tcp_max_tw_buckets limits."),
    ("TCP_alloc", "Kernel TCP: sockets allocated", "",
     "TCP sockets allocated in any state, orphans included, for the whole kernel."),
    ("TCP_mem", "Kernel TCP: memory used (pages)", "",
     "Memory held by the buffers of all TCP sockets, in pages (usually 4 KiB), for the whole "
     "kernel. Compared with net.ipv4.tcp_mem: above its pressure value the kernel shrinks "
     "buffers, above its max value it refuses memory to sockets."),
]

# Limits: read from /proc/sys; they change only when an admin changes them, so unchanged values
# are stored once an hour. Same columns.
KERNEL_LIMITS = [
    ("tcp_max_tw_buckets", "Kernel limit: net.ipv4.tcp_max_tw_buckets", "",
     "The most TIME_WAIT sockets the kernel keeps; beyond it closing connections skip TIME_WAIT "
     "(kernel log: \"TCP: time wait bucket table overflow\")."),
    ("somaxconn", "Kernel limit: net.core.somaxconn", "",
     "The cap on the backlog any program can ask for in listen(); the accept queue of a port "
     "never gets longer than this."),
    ("ip_local_port_range_low", "Kernel limit: ephemeral ports, first", "",
     "The first local port the kernel hands out to outgoing connections "
     "(net.ipv4.ip_local_port_range)."),
    ("ip_local_port_range_high", "Kernel limit: ephemeral ports, last", "",
     "The last local port the kernel hands out to outgoing connections "
     "(net.ipv4.ip_local_port_range)."),
    ("nf_conntrack_count", "Kernel: connections tracked by netfilter", "",
     "Entries in the netfilter connection tracking table (net.netfilter.nf_conntrack_count), "
     "a count, not a limit, but read with the limits. Has no value where the nf_conntrack "
     "module is not loaded."),
    ("nf_conntrack_max", "Kernel limit: net.netfilter.nf_conntrack_max", "",
     "Size of the connection tracking table; when it is full the kernel drops new connections "
     "(\"nf_conntrack: table full, dropping packet\"). Has no value where the nf_conntrack "
     "module is not loaded."),
    ("tcp_max_orphans", "Kernel limit: net.ipv4.tcp_max_orphans", "",
     "The most orphaned TCP sockets the kernel allows (kernel-wide). Has no value when "
     "zabbix-sockets cannot read the host's /proc/sys (some containers)."),
    ("tcp_mem_min", "Kernel limit: net.ipv4.tcp_mem low (pages)", "",
     "Below this many pages of TCP buffer memory the kernel does not restrain sockets."),
    ("tcp_mem_pressure", "Kernel limit: net.ipv4.tcp_mem pressure (pages)", "",
     "Above this many pages of TCP buffer memory the kernel enters memory pressure and shrinks "
     "socket buffers, which slows connections down."),
    ("tcp_mem_max", "Kernel limit: net.ipv4.tcp_mem max (pages)", "",
     "The most pages of memory TCP buffers may use; at this point new data is dropped and "
     "connections get reset."),
]

# Keys the kernel section leaves out on some hosts (module not loaded, IPv6 off, kernel-wide
# files not readable from a container): their JSONPath failure is discarded, so the items stay
# supported and simply get no value.
KERNEL_OPTIONAL = {"TCP6_inuse", "UDP6_inuse", "nf_conntrack_count", "nf_conntrack_max",
                   "tcp_max_orphans", "tcp_mem_min", "tcp_mem_pressure", "tcp_mem_max"}
# Throttling (DISCARD_UNCHANGED_HEARTBEAT): an item that a trigger reads over a time window
# (min/avg/... of 5m) is stored at every collection, since an empty window makes the trigger
# unknown. Every other item stores a value only when it changes, and at least every
# QUIET_HEARTBEAT (LIMIT_HEARTBEAT for limits, ranges, discovery rows, listener counts): states
# that sit at 0 most of the time (CLOSING, LAST_ACK, SYN_SENT, most per-port states) then cost a
# value per change, not one per collection.
LIMIT_HEARTBEAT = "1h"
QUIET_HEARTBEAT = "15m"

# Ephemeral ports: items `sockets.ephemeral[<name>]` from `$.ephemeral.<name>`.
# Columns: name, item name, value type, units, description.
EPHEMERAL_ITEMS = [
    ("pressure_pct", "Ephemeral ports: pressure", "UNSIGNED", "%",
     "The most local ports held towards one remote address and port, as a percentage of the "
     "ephemeral port range. Every connection to the same destination needs its own local port; "
     "at 100% new connections to that destination fail with \"cannot assign requested "
     "address\" (EADDRNOTAVAIL)."),
    ("busiest_sockets", "Ephemeral ports: most used towards one destination", "UNSIGNED", "",
     "How many sockets (TIME_WAIT included) hold a local port from the ephemeral range towards "
     "the busiest remote address and port."),
    ("busiest_remote", "Ephemeral ports: busiest destination", "CHAR", "",
     "The remote address:port that holds the most ephemeral ports (empty when no connection "
     "uses the range)."),
    ("range_size", "Ephemeral ports: range size", "UNSIGNED", "",
     "Number of ports in net.ipv4.ip_local_port_range."),
]

# Use of the kernel's limits: items `sockets.limit_pct[<name>]`, the first key as a percentage of
# the second, computed from the master's JSON (JavaScript; the value is discarded when a key is
# absent or the limit is 0, as for the optional kernel keys). The ratio triggers use these.
# Columns: name, item name, numerator key, denominator key, description.
LIMIT_RATIOS = [
    ("tw_buckets", "Kernel limit use: TIME_WAIT, % of tcp_max_tw_buckets", "TCP_tw",
     "tcp_max_tw_buckets",
     "TIME_WAIT sockets (kernel count) as a percentage of net.ipv4.tcp_max_tw_buckets. At 100% "
     "closing connections skip TIME_WAIT (kernel log: \"TCP: time wait bucket table overflow\")."),
    ("orphans", "Kernel limit use: orphaned sockets, % of tcp_max_orphans", "TCP_orphan",
     "tcp_max_orphans",
     "Orphaned TCP sockets as a percentage of net.ipv4.tcp_max_orphans (kernel-wide). The kernel "
     "counts orphans of sockets in trouble up to four times over against the limit, so it may "
     "reset connections well before 100%."),
    ("tcp_mem", "Kernel limit use: TCP memory, % of the tcp_mem pressure value", "TCP_mem",
     "tcp_mem_pressure",
     "Pages used by TCP socket buffers as a percentage of the pressure value of net.ipv4.tcp_mem "
     "(kernel-wide). Above 100% the kernel shrinks socket buffers."),
    ("conntrack", "Kernel limit use: conntrack entries, % of nf_conntrack_max",
     "nf_conntrack_count", "nf_conntrack_max",
     "Entries in netfilter's connection tracking table as a percentage of "
     "net.netfilter.nf_conntrack_max. At 100% packets of new connections are dropped. Has no "
     "value where nf_conntrack is not loaded."),
]

# ---------------------------------------------------------------------------------------------
# Low-level discovery. Each rule is DEPENDENT on sockets.stats and reads its rows by JSONPath;
# unchanged rows are passed on once an hour only, so discovery runs when ports come or go.
# Prototype columns: field, name (after "Port {#PORT}: "), units, graph colour or None,
# description. JSONPath of a prototype: `<base>["<row_macro>"].<field>` (row_macro: {#PORT} unless
# the rule names another; the filter reads filter_macro, likewise); when the row has gone from
# the document (the service stopped) the value becomes 0, not an error, so its triggers resolve
# and the items stay supported until the discovery lifetime removes them.
LLD_HEARTBEAT = LIMIT_HEARTBEAT
LLD_LIFETIME = "7d"

# The listening ports that get items, as JavaScript over the master's JSON: `rows` ends up as the
# discovery rows kept. Ports inside the host's ephemeral range are left out unless
# {$SOCKETS.LISTEN.EPHEMERAL} is 1, then at most {$SOCKETS.LISTEN.PORT.MAX} ports, the lowest
# first. Shared by the discovery rule and by sockets.listen.max_queue_pct, so that item sees the
# same ports as the accept-queue triggers. (MATCHES/NOT_MATCHES stay Zabbix filters: a regex
# macro cannot be pasted safely into a JavaScript string.)
LISTEN_PORTS_JS = """var doc = JSON.parse(value);
var kernel = doc.kernel || {};
var low = kernel.ip_local_port_range_low, high = kernel.ip_local_port_range_high;
var keepEphemeral = '{$SOCKETS.LISTEN.EPHEMERAL}' === '1';
var most = parseInt('{$SOCKETS.LISTEN.PORT.MAX}', 10);
var rows = (doc.listen_discovery || []).filter(function (row) {
    var port = parseInt(row['{#PORT}'], 10);
    return keepEphemeral || low === undefined || high === undefined || port < low || port > high;
});
rows.sort(function (a, b) { return parseInt(a['{#PORT}'], 10) - parseInt(b['{#PORT}'], 10); });
if (most >= 0 && rows.length > most) {
    rows = rows.slice(0, most);
}
"""
LISTEN_DISCOVERY_JS = LISTEN_PORTS_JS + "return JSON.stringify(rows);"
MAX_QUEUE_JS = LISTEN_PORTS_JS + """var fullest = 0;
rows.forEach(function (row) {
    var port = (doc.listen || {})[row['{#PORT}']];
    if (port && port.accept_queue_pct > fullest) {
        fullest = port.accept_queue_pct;
    }
});
return fullest;"""
MAX_QUEUE_ITEM = (
    "sockets.listen.max_queue_pct", "Listening ports: fullest accept queue, % of backlog", "%",
    "The highest accept queue (as a percentage of its backlog) among the listening ports that "
    "discovery keeps. The listen queue overflow trigger uses it to stay quiet while a port's own "
    "accept-queue trigger already names the cause.")


# The UNIX listening paths that get items: at most {$SOCKETS.UNIX.PATH.MAX}, in path order (the
# order of the JSON).
UNIX_DISCOVERY_JS = """var rows = JSON.parse(value).unix_listen_discovery || [];
var most = parseInt('{$SOCKETS.UNIX.PATH.MAX}', 10);
if (most >= 0 && rows.length > most) {
    rows = rows.slice(0, most);
}
return JSON.stringify(rows);"""


def limit_ratio_js(numerator, denominator):
    """JavaScript: {"pct": used * 100 / limit}, or {} when a key is absent or the limit is 0 (a
    JavaScript step takes no error handler in 6.0: the JSONPath step after it discards that)."""
    return (f"var kernel = JSON.parse(value).kernel || {{}};\n"
            f"var used = kernel.{numerator}, limit = kernel.{denominator};\n"
            f"return JSON.stringify(used === undefined || !limit ? {{}} : "
            f"{{pct: used * 100 / limit}});")



LISTEN_PROTOTYPES = [
    ("established", "inbound ESTABLISHED", "", STATE_COLOURS["established"],
     "Connections to this port that are open both ways (ss: ESTAB, local port {#PORT}), "
     "including those the kernel has accepted but the program has not taken yet."),
    ("syn_recv", "inbound SYN_RECV", "", STATE_COLOURS["syn_recv"],
     "Connection requests to this port half-way through the handshake (ss: SYN-RECV)."),
    ("fin_wait1", "inbound FIN_WAIT1", "", STATE_COLOURS["fin_wait1"],
     "Connections to this port that the service closed, waiting for the client to acknowledge."),
    ("fin_wait2", "inbound FIN_WAIT2", "", STATE_COLOURS["fin_wait2"],
     "Connections to this port that the service closed, waiting for the client to close too."),
    ("time_wait", "inbound TIME_WAIT", "", STATE_COLOURS["time_wait"],
     "Connections to this port that the service closed first, in their 60 seconds of TIME_WAIT."),
    ("close_wait", "inbound CLOSE_WAIT", "", STATE_COLOURS["close_wait"],
     "Connections to this port that the client closed and the service has not: they stay until "
     "the service closes them. A growing number here is a connection leak in the program "
     "behind this port."),
    ("last_ack", "inbound LAST_ACK", "", STATE_COLOURS["last_ack"],
     "Connections to this port closed by both sides, waiting for the client's last "
     "acknowledgement."),
    ("closing", "inbound CLOSING", "", STATE_COLOURS["closing"],
     "Connections to this port where both sides closed at once (ss: CLOSING)."),
    ("total", "inbound connections", "", None,
     "All connections whose local port is {#PORT}, in any state (the listening sockets "
     "themselves not included)."),
    ("accept_queue", "accept queue", "", None,
     "Connections the kernel has completed for this port that the program has not accept()ed "
     "yet, summed over its listening sockets (`ss -ltn` Recv-Q)."),
    ("backlog", "backlog", "", None,
     "The longest accept queue the listening sockets of this port may have: the program's "
     "listen() backlog, capped by net.core.somaxconn (`ss -ltn` Send-Q). 0 when the counts come "
     "from /proc, which does not show it."),
    ("accept_queue_pct", "accept queue, % of backlog", "%", None,
     "The accept queue as a percentage of the backlog. At 100% the kernel starts dropping "
     "completed handshakes for this port (listen queue overflows). 0 when the backlog is "
     "unknown."),
    ("listeners", "listening sockets", "", None,
     "Listening sockets on this port (more than one with dual-stack or SO_REUSEPORT services). "
     "0 means nothing listens on {#PORT} any more."),
]

UNIX_LISTEN_PROTOTYPES = [
    ("accept_queue", "accept queue", "", None,
     "Connections to this UNIX socket that the program has not accept()ed yet, summed over its "
     "listening sockets (`ss -xl` Recv-Q). Without netlink it is counted from the waiting "
     "connections that /proc/net/unix lists."),
    ("backlog", "backlog", "", None,
     "The longest accept queue the listening sockets of this path may have: the program's "
     "listen() backlog, capped by net.core.somaxconn (`ss -xl` Send-Q). 0 when the counts come "
     "from /proc/net/unix, which does not show it."),
    ("accept_queue_pct", "accept queue, % of backlog", "%", None,
     "The accept queue as a percentage of the backlog. A full UNIX queue holds backlog + 1, so "
     "a full queue shows a little over 100%; clients then get EAGAIN (nginx: \"Resource "
     "temporarily unavailable\", a 502). 0 when the backlog is unknown."),
    ("connections", "connections", "", None,
     "Connections accepted on this path and still open (stream and seqpacket sockets that carry "
     "its name and do not listen)."),
    ("listeners", "listening sockets", "", None,
     "Listening sockets bound to this path. 0 means nothing listens on it any more."),
]

REMOTE_PROTOTYPES = [
    ("established", "outbound ESTABLISHED", "", STATE_COLOURS["established"],
     "Connections from this host to remote port {#PORT} that are open both ways."),
    ("syn_sent", "outbound SYN_SENT", "", STATE_COLOURS["syn_sent"],
     "Connection attempts to remote port {#PORT} that have no answer yet: a count that stays up "
     "means the service behind it is down or filtered."),
    ("fin_wait1", "outbound FIN_WAIT1", "", STATE_COLOURS["fin_wait1"],
     "Connections to remote port {#PORT} this host closed, waiting for the acknowledgement."),
    ("fin_wait2", "outbound FIN_WAIT2", "", STATE_COLOURS["fin_wait2"],
     "Connections to remote port {#PORT} this host closed, waiting for the server to close."),
    ("time_wait", "outbound TIME_WAIT", "", STATE_COLOURS["time_wait"],
     "Connections to remote port {#PORT} this host closed first, in TIME_WAIT. Each holds a "
     "local port for 60 seconds: a high count means new connections per request instead of "
     "a pool."),
    ("close_wait", "outbound CLOSE_WAIT", "", STATE_COLOURS["close_wait"],
     "Connections the server on remote port {#PORT} closed that the local program has not: a "
     "client or pool that does not notice closed connections."),
    ("last_ack", "outbound LAST_ACK", "", STATE_COLOURS["last_ack"],
     "Connections to remote port {#PORT} closed by both sides, waiting for the last "
     "acknowledgement."),
    ("closing", "outbound CLOSING", "", STATE_COLOURS["closing"],
     "Connections to remote port {#PORT} where both sides closed at once."),
    ("total", "outbound connections", "", None,
     "All connections from this host to remote port {#PORT}, in any state."),
]

# Per cgroup (service, socket unit, container, pod): rows `{#CGROUP}` (path), `{#NAME}`, `{#KIND}`.
# TIME_WAIT and SYN_RECV belong to no cgroup (the kernel sends no owner for them), so they have no
# per-cgroup item: their counts are the host's items.
CGROUP_STATES = ["established", "syn_sent", "fin_wait1", "fin_wait2", "close_wait", "last_ack",
                 "closing", "listen"]
CGROUP_PROTOTYPES = [
    (f"tcp.{state}", f"TCP {state.upper()}", "", STATE_COLOURS[state],
     f"TCP sockets in {state.upper()} made by the processes of {{#NAME}} (cgroup {{#CGROUP}}); "
     f"accepted connections count under their listener's cgroup.")
    for state in CGROUP_STATES
] + [
    ("tcp.total", "TCP sockets", "", None,
     "All TCP sockets of {#NAME} that have an owner (TIME_WAIT and SYN_RECV have none)."),
    ("udp.total", "UDP sockets", "", None, "UDP sockets of {#NAME} (cgroup {#CGROUP})."),
]

# Per network namespace (zabbix-sockets --all-netns): rows `{#NETNS}` (name), `{#INODE}`.
NETNS_STATES = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
                "close_wait", "last_ack", "closing", "listen"]
NETNS_PROTOTYPES = [
    (f"tcp.{state}", f"TCP {state.upper()}", "", STATE_COLOURS[state],
     f"TCP sockets in {state.upper()} inside network namespace {{#NETNS}} (inode {{#INODE}}).")
    for state in NETNS_STATES
] + [
    ("tcp.total", "TCP sockets", "", None, "All TCP sockets inside network namespace {#NETNS}."),
    ("udp.total", "UDP sockets", "", None, "UDP sockets inside network namespace {#NETNS}."),
]

DISCOVERY_RULES = [
    {
        "id": "listen",
        "key": "sockets.listen.discovery",
        "name": "Listening TCP ports discovery",
        "rows": "$.listen_discovery",
        "base": "$.listen",
        "script": LISTEN_DISCOVERY_JS,
        "item_key": "sockets.listen[{#PORT},%s]",
        "item_name": "Port {#PORT}: %s",
        "prototypes": LISTEN_PROTOTYPES,
        "macros": ("{$SOCKETS.LISTEN.PORT.MATCHES}", "{$SOCKETS.LISTEN.PORT.NOT_MATCHES}"),
        "description": (
            "One row per local TCP port something listens on (all addresses and listening "
            "sockets of a port together; {#ADDRESSES} lists the addresses). Creates items for the "
            "port's accept queue, backlog and the states of connections to it. Leave ports out "
            "with {$SOCKETS.LISTEN.PORT.MATCHES} and {$SOCKETS.LISTEN.PORT.NOT_MATCHES} "
            "(regular expressions on the port number), e.g. NOT_MATCHES ^(22|111)$; thresholds "
            "per port with macro context, e.g. {$SOCKETS.ACCEPTQ.PCT.MAX:\"8080\"}."
        ),
        "tags": [("component", "network"), ("port", "{#PORT}"), ("direction", "inbound")],
        "graphs": [
            ("by_state", "Port {#PORT}: inbound connections by state", "STACKED", None),
            ("queue", "Port {#PORT}: accept queue and backlog", None,
             [("accept_queue", "F63100"), ("backlog", "1A7C11")]),
        ],
    },
    {
        "id": "remote",
        "key": "sockets.remote.discovery",
        "name": "Remote service ports discovery",
        "rows": "$.remote_discovery",
        "base": "$.remote",
        "item_key": "sockets.remote[{#PORT},%s]",
        "item_name": "Remote port {#PORT}: %s",
        "prototypes": REMOTE_PROTOTYPES,
        "macros": ("{$SOCKETS.REMOTE.PORT.MATCHES}", "{$SOCKETS.REMOTE.PORT.NOT_MATCHES}"),
        "description": (
            "One row per watched remote service port (zabbix-sockets --remote-ports, by default "
            "5432, 3306, 6379, 443, 80): outgoing connections from this host to that port, by "
            "state. Leave ports out with {$SOCKETS.REMOTE.PORT.MATCHES} and "
            "{$SOCKETS.REMOTE.PORT.NOT_MATCHES}."
        ),
        "tags": [("component", "network"), ("port", "{#PORT}"), ("direction", "outbound")],
        "graphs": [
            ("by_state", "Remote port {#PORT}: outbound connections by state", "STACKED", None),
        ],
    },
    {
        "id": "unix_listen",
        "key": "sockets.unix.listen.discovery",
        "name": "UNIX listening sockets discovery",
        "row_macro": "{#PATH}",
        "filter_macro": "{#PATH}",
        "rows": "$.unix_listen_discovery",
        "base": "$.unix_listen",
        "script": UNIX_DISCOVERY_JS,
        "item_key": 'sockets.unix.listen["{#PATH}",%s]',
        "item_name": "UNIX {#PATH}: %s",
        "prototypes": UNIX_LISTEN_PROTOTYPES,
        "macros": ("{$SOCKETS.UNIX.PATH.MATCHES}", "{$SOCKETS.UNIX.PATH.NOT_MATCHES}"),
        "description": (
            "One row per UNIX-domain path (or abstract name, @name) that a stream or seqpacket "
            "socket listens on: php-fpm, gunicorn, uwsgi, Docker, databases. Creates items for "
            "its accept queue, backlog and connections. systemd's and D-Bus's own sockets are "
            "left out by {$SOCKETS.UNIX.PATH.NOT_MATCHES}; at most {$SOCKETS.UNIX.PATH.MAX} paths. "
            "Thresholds per path with macro context, e.g. "
            "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:\"/run/php/php-fpm.sock\"}."
        ),
        "tags": [("component", "unix-sockets"), ("path", "{#PATH}")],
        "graphs": [
            ("queue", "UNIX {#PATH}: accept queue and backlog", None,
             [("accept_queue", "F63100"), ("backlog", "1A7C11")]),
        ],
    },
    {
        "id": "cgroup",
        "key": "sockets.cgroup.discovery",
        "name": "Services and containers",
        "rows": "$.cgroup_discovery",
        "base": "$.cgroups",
        "row_macro": "{#CGROUP}",
        "filter_macro": "{#NAME}",
        "item_key": "sockets.cgroup[\"{#CGROUP}\",%s]",
        "item_name": "{#NAME}: %s",
        "prototypes": CGROUP_PROTOTYPES,
        "macros": ("{$SOCKETS.CGROUP.NAME.MATCHES}", "{$SOCKETS.CGROUP.NAME.NOT_MATCHES}"),
        "description": (
            "One row per cgroup v2 that holds sockets (the `cgroups` section of zabbix-sockets): "
            "a systemd service or socket unit, a Docker container, a Kubernetes pod, else the "
            "cgroup's path. {#NAME} is the name a person recognises, {#KIND} one of service, "
            "socket, container, pod, cgroup. Leave cgroups out with "
            "{$SOCKETS.CGROUP.NAME.MATCHES} and {$SOCKETS.CGROUP.NAME.NOT_MATCHES} (regular "
            "expressions on {#NAME}); thresholds per cgroup with macro context, e.g. "
            "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"nginx.service\"}. No rows where cgroup v2 is not "
            "mounted (see cgroup_status in sockets.stats)."
        ),
        "tags": [("component", "network"), ("{#KIND}", "{#NAME}")],
        "graphs": [
            ("by_state", "{#NAME}: TCP sockets by state", "STACKED", None),
        ],
    },
    {
        "id": "netns",
        "key": "sockets.netns.discovery",
        "name": "Network namespaces",
        "rows": "$.netns_discovery",
        "base": "$.netns",
        "row_macro": "{#NETNS}",
        "filter_macro": "{#NETNS}",
        "item_key": "sockets.netns[\"{#NETNS}\",%s]",
        "item_name": "Namespace {#NETNS}: %s",
        "prototypes": NETNS_PROTOTYPES,
        "macros": ("{$SOCKETS.NETNS.MATCHES}", "{$SOCKETS.NETNS.NOT_MATCHES}"),
        "description": (
            "One row per network namespace on the host, when zabbix-sockets runs with "
            "--all-netns (containers' and `ip netns` namespaces; the host's counts stay the "
            "template's own items). {#NETNS} is the `ip netns` name, else the container or unit "
            "of its first process, else pid:PID. Leave namespaces out with "
            "{$SOCKETS.NETNS.MATCHES} and {$SOCKETS.NETNS.NOT_MATCHES}."
        ),
        "tags": [("component", "network"), ("netns", "{#NETNS}")],
        "graphs": [
            ("by_state", "Namespace {#NETNS}: TCP sockets by state", "STACKED", None),
        ],
    },
]

# Trigger prototypes, per discovery rule id. Same fields as TRIGGERS; {T} is the template name.
TRIGGER_PROTOTYPES = {
    "listen": [
        {
            "id": "accept_queue_full",
            "expr": ("min(/{T}/sockets.listen[{#PORT},accept_queue_pct],{$SOCKETS.ACCEPTQ.PERIOD})"
                     ">{$SOCKETS.ACCEPTQ.PCT.MAX:\"{#PORT}\"}"),
            "name": ("Port {#PORT}: accept queue over {$SOCKETS.ACCEPTQ.PCT.MAX:\"{#PORT}\"}% of "
                     "its backlog for {$SOCKETS.ACCEPTQ.PERIOD}"),
            "opdata": "Queue: {ITEM.LASTVALUE1}% of the backlog",
            "priority": "AVERAGE",
            "scope": "performance",
            "description": (
                "The program listening on port {#PORT} ({#ADDRESSES}) has not taken new "
                "connections off its accept queue fast enough for {$SOCKETS.ACCEPTQ.PERIOD}: the "
                "queue has stayed above {$SOCKETS.ACCEPTQ.PCT.MAX:\"{#PORT}\"}% of the backlog. "
                "Once it is full, the kernel drops further completed handshakes; clients see "
                "connect timeouts and retries of 1 s, 3 s and more.\n"
                "Where to look:\n"
                "- `ss -ltnp 'sport = :{#PORT}'`: Recv-Q is the queue, Send-Q the backlog, and "
                "the process that owns it.\n"
                "- Is the program stuck or saturated (all workers busy, a slow back end, a "
                "blocked event loop)? Its own metrics and logs, CPU, `top -H -p PID`.\n"
                "- `nstat -az TcpExtListenOverflows TcpExtListenDrops` counts the drops.\n"
                "- A short queue for a bursty service: raise the program's listen() backlog and "
                "net.core.somaxconn (the cap on it) together.\n"
                "To change the threshold for this port only, set "
                "{$SOCKETS.ACCEPTQ.PCT.MAX:\"{#PORT}\"} on the host."
            ),
        },
        {
            "id": "port_close_wait",
            "expr": ("min(/{T}/sockets.listen[{#PORT},close_wait],15m)"
                     ">{$SOCKETS.PORT.CLOSE_WAIT.MAX:\"{#PORT}\"}"),
            "name": ("Port {#PORT}: over {$SOCKETS.PORT.CLOSE_WAIT.MAX:\"{#PORT}\"} connections in "
                     "CLOSE_WAIT for 15m"),
            "opdata": "Current: {ITEM.LASTVALUE1}",
            "priority": "WARNING",
            "scope": "capacity",
            "depends_template": "close_wait_high",
            "description": (
                "More than {$SOCKETS.PORT.CLOSE_WAIT.MAX:\"{#PORT}\"} connections to port "
                "{#PORT} have been in CLOSE_WAIT for 15 minutes: their clients hung up, and the "
                "service behind the port has not closed its end. Only the service can close "
                "them, so they pile up until it runs out of file descriptors or workers.\n"
                "Where to look:\n"
                "- `ss -tanp state close-wait '( sport = :{#PORT} )'` shows the process and the "
                "clients.\n"
                "- Usually a code path that returns without closing the connection (error "
                "handling, timeouts); restarting the service only clears them for a while.\n"
                "To change the threshold for this port only, set "
                "{$SOCKETS.PORT.CLOSE_WAIT.MAX:\"{#PORT}\"} on the host."
            ),
        },
    ],
    "remote": [],
    "unix_listen": [
        {
            "id": "unix_accept_queue_full",
            "expr": ('min(/{T}/sockets.unix.listen["{#PATH}",accept_queue_pct],{$SOCKETS.UNIX.ACCEPTQ.PERIOD})'
                     '>{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:"{#PATH}"}'),
            "name": ('UNIX {#PATH}: accept queue over {$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:"{#PATH}"}% of its '
                     'backlog for {$SOCKETS.UNIX.ACCEPTQ.PERIOD}'),
            "opdata": "Queue: {ITEM.LASTVALUE1}% of the backlog",
            "priority": "AVERAGE",
            "scope": "performance",
            "description": (
                "The program listening on the UNIX socket {#PATH} has not taken new connections "
                "off its accept queue fast enough for {$SOCKETS.UNIX.ACCEPTQ.PERIOD}: the queue has "
                "stayed above {$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:\"{#PATH}\"}% of the backlog. Once it "
                "is full, connect() fails with EAGAIN: nginx logs \"Resource temporarily "
                "unavailable\" and answers 502, while every TCP figure looks healthy.\n"
                "Where to look:\n"
                "- `ss -xlp src {#PATH}`: Recv-Q is the queue, Send-Q the backlog, and the process.\n"
                "- Are all workers busy (php-fpm pm.max_children, gunicorn workers) or stuck on a "
                "slow back end? The application's own status page and logs.\n"
                "- A short queue for bursts: raise the program's listen backlog (php-fpm "
                "listen.backlog) and net.core.somaxconn together.\n"
                "To change the threshold for this path only, set "
                "{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:\"{#PATH}\"} on the host."
            ),
        },
    ],
    "cgroup": [
        {
            "id": "cgroup_close_wait",
            "expr": ("min(/{T}/sockets.cgroup[\"{#CGROUP}\",tcp.close_wait],15m)"
                     ">{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"{#NAME}\"}"),
            "name": ("{#NAME}: over {$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"{#NAME}\"} sockets in "
                     "CLOSE_WAIT for 15m"),
            "opdata": "Current: {ITEM.LASTVALUE1}",
            "priority": "WARNING",
            "scope": "capacity",
            "description": (
                "{#NAME} (cgroup {#CGROUP}) has held more than "
                "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"{#NAME}\"} sockets in CLOSE_WAIT for 15 "
                "minutes: their peers hung up and the program has not closed its end. Only the "
                "program can close them, so they pile up until it runs out of file descriptors "
                "or workers.\n"
                "Which process: run `zabbix-sockets owners --state close_wait` on the host (as "
                "root; add --all-netns for containers in namespaces of their own). It lists the "
                "pid, command, cgroup and count of each process holding such sockets.\n"
                "Usually a code path that returns without closing the connection (error "
                "handling, timeouts); restarting the service only clears them for a while.\n"
                "To change the threshold for this service or container only, set "
                "{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:\"{#NAME}\"} on the host."
            ),
        },
    ],
    "netns": [
        {
            "id": "netns_close_wait",
            "expr": ("min(/{T}/sockets.netns[\"{#NETNS}\",tcp.close_wait],15m)"
                     ">{$SOCKETS.NETNS.CLOSE_WAIT.MAX:\"{#NETNS}\"}"),
            "name": ("Namespace {#NETNS}: over {$SOCKETS.NETNS.CLOSE_WAIT.MAX:\"{#NETNS}\"} "
                     "sockets in CLOSE_WAIT for 15m"),
            "opdata": "Current: {ITEM.LASTVALUE1}",
            "priority": "WARNING",
            "scope": "capacity",
            "description": (
                "More than {$SOCKETS.NETNS.CLOSE_WAIT.MAX:\"{#NETNS}\"} sockets inside network "
                "namespace {#NETNS} have been in CLOSE_WAIT for 15 minutes: a program in that "
                "container or namespace does not close connections its peers closed.\n"
                "Which process: run `zabbix-sockets owners --state close_wait --netns {#NETNS}` "
                "on the host (as root).\n"
                "To change the threshold for this namespace only, set "
                "{$SOCKETS.NETNS.CLOSE_WAIT.MAX:\"{#NETNS}\"} on the host."
            ),
        },
        {
            "id": "netns_syn_sent",
            "expr": ("min(/{T}/sockets.netns[\"{#NETNS}\",tcp.syn_sent],15m)"
                     ">{$SOCKETS.NETNS.SYN_SENT.MAX:\"{#NETNS}\"}"),
            "name": ("Namespace {#NETNS}: over {$SOCKETS.NETNS.SYN_SENT.MAX:\"{#NETNS}\"} "
                     "unanswered connection attempts for 15m"),
            "opdata": "Current: {ITEM.LASTVALUE1}",
            "priority": "WARNING",
            "scope": "availability",
            "description": (
                "More than {$SOCKETS.NETNS.SYN_SENT.MAX:\"{#NETNS}\"} outgoing connection "
                "attempts inside network namespace {#NETNS} have stayed without an answer for 15 "
                "minutes: a service that container depends on is down or filtered.\n"
                "Where to look: `nsenter --net=... ss -tan state syn-sent` in that namespace "
                "lists the destinations.\n"
                "To change the threshold for this namespace only, set "
                "{$SOCKETS.NETNS.SYN_SENT.MAX:\"{#NETNS}\"} on the host."
            ),
        },
    ],
}

ITEM_TAGS = [("component", "network")]
KERNEL_TAGS = [("component", "kernel")]
EPHEMERAL_TAGS = [("component", "ephemeral-ports")]
MASTER_TAGS = [("component", "raw")]
TEMPLATE_TAGS = [("class", "os"), ("target", "linux")]


# ---------------------------------------------------------------------------------------------
def stable_uuid(*parts):
    """32 hex chars in UUIDv4 shape, derived only from `parts`: regenerating never changes it."""
    h = list(hashlib.sha256("zabbix-sockets/".encode() + "/".join(parts).encode()).hexdigest()[:32])
    h[12] = "4"
    h[16] = "89ab"[int(h[16], 16) & 3]
    return "".join(h)


def tags(pairs):
    return [{"tag": t, "value": v} for t, v in pairs]


_KEY_REF = re.compile(r"/\{T\}/([a-z0-9_.]+(?:\[[^\]]*\])?)")


def trigger_items(expr):
    """Item keys a trigger expression refers to, in order of first use."""
    keys = []
    for k in _KEY_REF.findall(expr):
        if k not in keys:
            keys.append(k)
    return keys


_WINDOW_REF = re.compile(r"(\w+)\(/\{T\}/([a-z0-9_.]+(?:\[[^\]]*\])?)")


def window_keys():
    """Item keys (prototypes with {#PORT}) that some trigger reads with a function other than
    last(): these must get a value at every collection."""
    exprs = [t["expr"] for t in TRIGGERS]
    exprs += [t["expr"] for rows in TRIGGER_PROTOTYPES.values() for t in rows]
    return {key for e in exprs for fn, key in _WINDOW_REF.findall(e) if fn != "last"}


SLOW_FIELDS = {"listeners", "backlog", "range_size", "busiest_remote"}


def heartbeat(key, slow=False):
    """The DISCARD_UNCHANGED_HEARTBEAT of an item key (None: stored at every collection)."""
    if key in window_keys():
        return None
    return LIMIT_HEARTBEAT if slow else QUIET_HEARTBEAT


def build_trigger(t, table, sub, uid, kind, description=None):
    """One trigger (or trigger prototype) in export layout."""
    out = {"uuid": uid(kind, t["id"]), "expression": sub(t["expr"]), "name": t["name"]}
    if t.get("opdata"):
        out["opdata"] = t["opdata"]
    out["priority"] = t["priority"]
    out["description"] = t["description"] if t["description"] is not None else description
    if t["priority"] != "INFO" and t["id"] != "nodata":
        out["manual_close"] = "YES"
    deps = []
    if t.get("depends"):
        deps.append(table[t["depends"]])
    if t.get("depends_template"):    # a trigger prototype that yields to a template trigger
        deps.append({d["id"]: d for d in TRIGGERS}[t["depends_template"]])
    if deps:
        out["dependencies"] = [{"name": d["name"], "expression": sub(d["expr"])} for d in deps]
    out["tags"] = tags([("scope", t["scope"])])
    return out


def dependent_item(uuid, name, key, path, description, tag_pairs, value_type=None, units=None,
                   per_second=False, error_handler=None, slow=False, history=DEPENDENT_HISTORY,
                   trends=DEPENDENT_TRENDS, script=None):
    """A dependent item of the master: JSONPath `path` (or JavaScript `script`), then per second
    if asked, then its heartbeat (see heartbeat())."""
    it = {"uuid": uuid, "name": name, "type": "DEPENDENT", "key": key, "delay": "0",
          "history": history, "trends": "0" if value_type == "CHAR" else trends}
    if value_type:
        it["value_type"] = value_type
    if units:
        it["units"] = units
    it["description"] = description
    steps = [{"type": "JAVASCRIPT", "parameters": [script]}] if script else []
    if path:
        step = {"type": "JSONPATH", "parameters": [path]}
        if error_handler:
            step["error_handler"] = error_handler[0]
            if len(error_handler) > 1:
                step["error_handler_params"] = error_handler[1]
        steps.append(step)
    if per_second:
        steps.append({"type": "CHANGE_PER_SECOND", "parameters": [""]})
    beat = heartbeat(key, slow)
    if beat:
        steps.append({"type": "DISCARD_UNCHANGED_HEARTBEAT", "parameters": [beat]})
    it["preprocessing"] = steps
    it["master_item"] = {"key": MASTER_KEY}
    it["tags"] = tags(tag_pairs)
    return it


def kernel_rows():
    """(name, item name, units, description, kind) for every kernel item, in YAML order."""
    return ([r + ("counter",) for r in KERNEL_COUNTERS] + [r + ("gauge",) for r in KERNEL_GAUGES]
            + [r + ("limit",) for r in KERNEL_LIMITS])


def graph_items(name, keys_colours):
    out = []
    for i, (key, colour) in enumerate(keys_colours):
        g = {}
        if i:
            g["sortorder"] = str(i)
        g["color"] = colour
        g["item"] = {"host": name, "key": key}
        out.append(g)
    return out


def graph(uuid, gname, gtype, items):
    """A graph or graph prototype. Stacked graphs draw no trigger lines: a per-state threshold
    drawn over a stack reads as a threshold on the whole stack."""
    g = {"uuid": uuid, "name": gname}
    if gtype == "STACKED":
        g["show_triggers"] = "NO"
    if gtype:
        g["type"] = gtype
    g["graph_items"] = items
    return g


def build_discovery(rule, name, sub, uid):
    proto_triggers = {t["id"]: t for t in TRIGGER_PROTOTYPES[rule["id"]]}
    triggers_by_key = {}
    for t in TRIGGER_PROTOTYPES[rule["id"]]:
        keys = trigger_items(t["expr"])
        assert len(keys) == 1, f"trigger prototype {t['id']} must use one item, uses {keys}"
        triggers_by_key.setdefault(keys[0], []).append(
            build_trigger(t, proto_triggers, sub, uid, "trigger_prototype"))
    prototypes = []
    for field, iname, units, _colour, desc in rule["prototypes"]:
        key = rule["item_key"] % field
        it = dependent_item(uid("item_prototype", key), rule["item_name"] % iname, key,
                            f'{rule["base"]}["{rule.get("row_macro", "{#PORT}")}"].{field}', desc,
                            rule["tags"],
                            units=units, error_handler=("CUSTOM_VALUE", "0"),
                            slow=field in SLOW_FIELDS)
        if key in triggers_by_key:
            it["trigger_prototypes"] = triggers_by_key.pop(key)
        prototypes.append(it)
    assert not triggers_by_key, f"trigger prototypes on unknown items: {list(triggers_by_key)}"
    matches, not_matches = rule["macros"]
    filter_macro = rule.get("filter_macro", "{#PORT}")
    out = {"uuid": uid("discovery", rule["key"]), "name": rule["name"], "type": "DEPENDENT",
           "key": rule["key"], "delay": "0",
           "filter": {"evaltype": "AND", "conditions": [
               {"macro": filter_macro, "value": matches, "formulaid": "A"},
               {"macro": filter_macro, "value": not_matches, "operator": "NOT_MATCHES_REGEX",
                "formulaid": "B"}]},
           "lifetime": LLD_LIFETIME, "description": rule["description"],
           "item_prototypes": prototypes}
    graphs = []
    for gid, gname, gtype, keys in rule["graphs"]:
        if keys is None:        # every prototype with a colour, stacked
            keys = [(f, c) for f, _n, _u, c, _d in rule["prototypes"] if c]
        graphs.append(graph(uid("graph_prototype", f'{rule["id"]}/{gid}'), gname, gtype,
                            graph_items(name, [(rule["item_key"] % f, c) for f, c in keys])))
    out["graph_prototypes"] = graphs
    out["master_item"] = {"key": MASTER_KEY}
    # A document without the rule's rows (netns_discovery without --all-netns, a section left out
    # of --sections) means no rows, not an unsupported rule.
    first = ({"type": "JAVASCRIPT", "parameters": [rule["script"]]} if rule.get("script")
             else {"type": "JSONPATH", "parameters": [rule["rows"]],
                   "error_handler": "CUSTOM_VALUE", "error_handler_params": "[]"})
    out["preprocessing"] = [first, {"type": "DISCARD_UNCHANGED_HEARTBEAT",
                                    "parameters": [LLD_HEARTBEAT]}]
    return out


def template_items(tpl, uid, triggers_by_item):
    """Every item of the template in YAML order, the master first."""
    m = tpl["master"]
    master = {"uuid": uid("item", MASTER_KEY), "name": m["name"], "type": m["type"],
              "key": MASTER_KEY, "delay": m["delay"], "history": MASTER_HISTORY, "trends": "0",
              "value_type": "TEXT", "description": m["description"], "tags": tags(MASTER_TAGS)}
    items = [master]
    for key, path, iname, _colour, desc in ITEMS:
        proto = key.split(".")[1].split("[")[0]
        items.append(dependent_item(uid("item", key), iname, key, path, desc,
                                    ITEM_TAGS + [("protocol", proto)]))
    for kname, iname, units, desc, kind in kernel_rows():
        key = f"sockets.kernel[{kname}]"
        items.append(dependent_item(
            uid("item", key), iname, key, f"$.kernel.{kname}", desc,
            KERNEL_TAGS + [("kernel", kind)],
            value_type="FLOAT" if kind == "counter" else None, units=units,
            per_second=kind == "counter",
            error_handler=("DISCARD_VALUE",) if kname in KERNEL_OPTIONAL else None,
            slow=kind == "limit"))
    for rname, iname, numerator, denominator, desc in LIMIT_RATIOS:
        key = f"sockets.limit_pct[{rname}]"
        items.append(dependent_item(uid("item", key), iname, key, "$.pct", desc,
                                    KERNEL_TAGS + [("kernel", "limit-use")], value_type="FLOAT",
                                    units="%", error_handler=("DISCARD_VALUE",),
                                    script=limit_ratio_js(numerator, denominator)))
    for ename, iname, vtype, units, desc in EPHEMERAL_ITEMS:
        key = f"sockets.ephemeral[{ename}]"
        items.append(dependent_item(uid("item", key), iname, key, f"$.ephemeral.{ename}", desc,
                                    EPHEMERAL_TAGS, value_type=None if vtype == "UNSIGNED" else vtype,
                                    units=units, slow=ename in SLOW_FIELDS))
    key, iname, units, desc = MAX_QUEUE_ITEM
    items.append(dependent_item(uid("item", key), iname, key, None, desc,
                                ITEM_TAGS + [("direction", "inbound")], units=units,
                                script=MAX_QUEUE_JS))
    for it in items:
        if it["key"] in triggers_by_item:
            it["triggers"] = triggers_by_item.pop(it["key"])
    assert not triggers_by_item, f"triggers on unknown items: {list(triggers_by_item)}"
    return items


def build_template(tpl):
    """(template, top-level triggers) of one template in export layout."""
    slug, name = tpl["slug"], tpl["name"]
    sub = lambda s: s.replace("{T}", name)
    uid = lambda kind, ident: stable_uuid(slug, kind, ident)

    triggers_by_item = {}
    top_triggers = []
    trig_by_id = {t["id"]: t for t in TRIGGERS}
    for t in TRIGGERS:
        out = build_trigger(t, trig_by_id, sub, uid, "trigger", tpl["nodata_hint"])
        keys = [t["item"]] if "item" in t else trigger_items(t["expr"])
        if len(keys) == 1:
            triggers_by_item.setdefault(keys[0], []).append(out)
        else:                   # several items: Zabbix exports these after the templates
            top_triggers.append(out)

    items = template_items(tpl, uid, triggers_by_item)
    known = {it["key"] for it in items}
    for t in top_triggers:
        missing = [k for k in trigger_items(t["expression"].replace(name, "{T}")) if k not in known]
        assert not missing, f"trigger {t['name']} uses unknown items {missing}"
    for _g, gitems in EXTRA_GRAPHS:
        missing = [k for k, _c in gitems if k not in known]
        assert not missing, f"graph {_g} uses unknown items {missing}"

    description = (
        f"Socket statistics of a Linux host, collected by zabbix-sockets in one pass over the "
        f"kernel's sockets (netlink sock_diag; the same numbers as `ss -tan` / `ss -uan` give): "
        f"TCP sockets per state and UDP sockets; per listening port its accept queue, backlog "
        f"and connections by state (discovery); outgoing connections per watched service port "
        f"(discovery); use of the ephemeral port range; the kernel's TCP/UDP counters (per "
        f"second) and the limits sockets run into (tcp_max_orphans, tcp_max_tw_buckets, tcp_mem, "
        f"nf_conntrack_max, somaxconn), with their use in percent.\n\n{tpl['how']}\n\n"
        f"Listening ports inside the ephemeral port range are left out of discovery unless "
        f"{{$SOCKETS.LISTEN.EPHEMERAL}} is 1, and at most {{$SOCKETS.LISTEN.PORT.MAX}} ports get "
        f"items. Thresholds, periods and discovery filters are user macros; override them per "
        f"host, and per port with macro context (e.g. {{$SOCKETS.ACCEPTQ.PCT.MAX:\"8080\"}}). "
        f"The dashboard \"{DASHBOARD_NAME}\" shows the host at a glance.\n\n"
        f"Template version: {TEMPLATE_VERSION}"
    )
    out = {"uuid": uid("template", "template"), "template": name, "name": name,
           "description": description, "groups": [{"name": GROUP["name"]}], "items": items,
           "discovery_rules": [build_discovery(r, name, sub, uid) for r in DISCOVERY_RULES],
           "tags": tags(TEMPLATE_TAGS),
           "macros": [{"macro": mname, "value": MACROS[mname][0], "description": MACROS[mname][1]}
                      for mname in tpl["macros"] + COMMON_MACROS],
           "dashboards": [build_dashboard(tpl, uid)]}
    return out, top_triggers


# ---------------------------------------------------------------------------------------------
# The template dashboard, 6.0 layout: a 24-column grid. Rows of (widget kind, graph name, width,
# height); kind "graph" = a template graph, "graphprototype" = one graph per discovered port.
DASHBOARD_NAME = "Sockets"
DASHBOARD_ROWS = [
    [("graph", "Sockets by state", 12, 5), ("graph", "Sockets: totals", 12, 5)],
    [("graphprototype", "Port {#PORT}: accept queue and backlog", 24, 5)],
    [("graph", "Sockets: listen queue drops per second", 12, 5),
     ("graph", "Sockets: TCP connections opened, failed and reset per second", 12, 5)],
    [("graph", "Sockets: use of kernel limits (%)", 12, 5),
     ("graph", "Sockets: kernel TCP socket counts", 12, 5)],
]


def dashboard_graph_names():
    """(kind, graph name) of every widget, for checks."""
    return [(kind, gname) for row in DASHBOARD_ROWS for kind, gname, _w, _h in row]


def build_dashboard(tpl, uid):
    widgets, y = [], 0
    for row in DASHBOARD_ROWS:
        x = 0
        for kind, gname, width, height in row:
            w = {"type": "GRAPH_CLASSIC" if kind == "graph" else "GRAPH_PROTOTYPE", "name": gname}
            if x:
                w["x"] = str(x)
            if y:
                w["y"] = str(y)
            w["width"], w["height"] = str(width), str(height)
            fields = []
            if kind == "graphprototype":
                fields += [{"type": "INTEGER", "name": "columns", "value": "3"},
                           {"type": "INTEGER", "name": "rows", "value": "1"}]
            fields.append({"type": "GRAPH" if kind == "graph" else "GRAPH_PROTOTYPE",
                           "name": "graphid", "value": {"host": tpl["name"], "name": gname}})
            w["fields"] = fields
            widgets.append(w)
            x += width
        y += max(h for _k, _n, _w, h in row)
    return {"uuid": uid("dashboard", DASHBOARD_NAME), "name": DASHBOARD_NAME,
            "pages": [{"widgets": widgets}]}


def build_graphs(tpl):
    slug, name = tpl["slug"], tpl["name"]
    state_items = [(k, c) for k, _p, _n, c, _d in ITEMS if c]
    graphs = [graph(stable_uuid(slug, "graph", STATE_GRAPH_NAME), STATE_GRAPH_NAME, "STACKED",
                    graph_items(name, state_items))]
    for gname, gitems in EXTRA_GRAPHS:
        graphs.append(graph(stable_uuid(slug, "graph", gname), gname, None,
                            graph_items(name, gitems)))
    names = {g["name"] for g in graphs}
    protos = {g[1] for r in DISCOVERY_RULES for g in r["graphs"]}
    for kind, gname in dashboard_graph_names():
        assert gname in (names if kind == "graph" else protos), f"dashboard: no graph {gname}"
    return graphs


def build_export(tpl):
    template, top_triggers = build_template(tpl)
    export = {"version": "6.0", "date": EXPORT_DATE, "groups": [dict(GROUP)],
              "templates": [template]}
    if top_triggers:
        export["triggers"] = top_triggers
    export["graphs"] = build_graphs(tpl)
    return {"zabbix_export": export}


# ---------------------------------------------------------------------------------------------
# YAML writer: the subset Zabbix exports use, quoting like its (Symfony) dumper.
_RESERVED = {"null", "~", "true", "false", "y", "n", "yes", "no", "on", "off"}
_NEEDS_QUOTES = re.compile(r"[\s'\":{}\[\],&*#?]|^[-?|<>=!%@`]")
_NUMERIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^0x[0-9a-fA-F_]+$|^[0-9]+[_0-9]*$")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d?-\d\d?([Tt]|\s+)?")


def scalar(value):
    if not isinstance(value, str):
        raise TypeError(f"only strings in the export, got {value!r}")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ValueError(f"control characters need double quoting, not supported: {value!r}")
    if value == "":
        return "''"
    if (value.lower() in _RESERVED or _NEEDS_QUOTES.search(value) or _NUMERIC.match(value)
            or _TIMESTAMP.match(value)):
        return "'" + value.replace("'", "''") + "'"
    return value


def block(head, value, pad, lines):
    """A multi-line string as a literal block ("|-" without a final newline)."""
    lines.append(f"{head} |-" if not value.endswith("\n") else f"{head} |")
    for row in value.rstrip("\n").split("\n"):
        lines.append(f"{pad}{row}" if row else "")


def emit(node, indent, lines):
    pad = " " * indent
    for key, value in node.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            emit(value, indent + 2, lines)
        elif isinstance(value, list):
            lines.append(f"{pad}{key}:")
            for elem in value:
                if isinstance(elem, dict):
                    lines.append(f"{pad}  -")
                    emit(elem, indent + 4, lines)
                elif isinstance(elem, str) and "\n" in elem:
                    block(f"{pad}  -", elem, pad + "    ", lines)
                else:
                    lines.append(f"{pad}  - {scalar(elem)}")
        elif isinstance(value, str) and "\n" in value:
            block(f"{pad}{key}:", value, pad + "  ", lines)
        else:
            lines.append(f"{pad}{key}: {scalar(value)}")


def render(tpl):
    lines = []
    emit(build_export(tpl), 0, lines)
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if a committed YAML differs from the generated text")
    ap.add_argument("--out-dir", default=HERE, help="where the YAML files live (default: %(default)s)")
    args = ap.parse_args(argv)

    uuids = {}
    stale = []
    for tpl in TEMPLATES:
        text = render(tpl)
        for u in re.findall(r"uuid: ([0-9a-f]{32})$", text, re.M):
            if u in uuids and u != GROUP["uuid"]:
                raise SystemExit(f"duplicate uuid {u}")
            uuids[u] = tpl["file"]
        path = os.path.join(args.out_dir, tpl["file"])
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path}")
    if stale:
        for p in stale:
            print(f"{p} differs from the output of templates/generate.py; run it and commit the result",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
