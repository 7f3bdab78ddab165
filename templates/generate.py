#!/usr/bin/env python3
"""Generate the Zabbix 6.0 templates of zabbix-sockets from one table.

    python3 templates/generate.py           write templates/*.yaml (only files whose text changes)
    python3 templates/generate.py --check   exit 1 if a committed YAML differs from what would be written

Everything a template holds (items, triggers, macros, graphs) comes from the tables below; the two
templates differ only in how the master item `sockets.stats` gets its value (passive agent check
vs. trapper). Output is deterministic: fixed export date, UUIDs derived from stable names, no
dict-order or locale dependence. Standard library only; the YAML is written by hand in the layout
Zabbix 6.0 exports use ("-" on its own line, single quotes where Zabbix's dumper quotes).

To add items later (per-port discovery, kernel counters, ...): add rows to ITEMS / TRIGGERS /
MACROS (or a new table and a few lines in build_template), run this script, commit both YAMLs.
"""
import argparse
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Bump by hand when the templates change in a way users should notice (Zabbix shows it nowhere but
# in the file); it is fixed so that regenerating gives identical bytes.
EXPORT_DATE = "2025-11-26T00:00:00Z"
TEMPLATE_VERSION = "1.0"

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
        "macros": ["{$SOCKETS.INTERVAL}", "{$SOCKETS.NODATA.TIMEOUT}", "{$SOCKETS.CLOSE_WAIT.MAX}",
                   "{$SOCKETS.SYN_RECV.MAX}", "{$SOCKETS.TIME_WAIT.MAX}"],
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
        "macros": ["{$SOCKETS.NODATA.TIMEOUT}", "{$SOCKETS.CLOSE_WAIT.MAX}",
                   "{$SOCKETS.SYN_RECV.MAX}", "{$SOCKETS.TIME_WAIT.MAX}"],
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
MACROS = {
    "{$SOCKETS.INTERVAL}": (
        "1m", "How often the agent collects the socket statistics (update interval of "
              "sockets.stats). One run is a single netlink dump, cheap even with many sockets."),
    "{$SOCKETS.NODATA.TIMEOUT}": (
        "10m", "How long sockets.stats may stay without a new value before the no-data "
               "trigger fires."),
    "{$SOCKETS.CLOSE_WAIT.MAX}": (
        "100", "CLOSE_WAIT sockets above this count for 5 minutes raise a problem."),
    "{$SOCKETS.SYN_RECV.MAX}": (
        "200", "SYN_RECV (half-open incoming) sockets above this count for 5 minutes raise a "
               "problem."),
    "{$SOCKETS.TIME_WAIT.MAX}": (
        "20000", "TIME_WAIT sockets above this count for 5 minutes raise a problem. Linux "
                 "offers about 28,000 local ports by default (net.ipv4.ip_local_port_range), "
                 "so this default warns before connections to one destination run out of "
                 "ports."),
}

# ---------------------------------------------------------------------------------------------
# Dependent items: one row per number taken from the JSON. Columns:
#   key, JSONPath, item name, graph colour (None = not in the "by state" graph), description.
# The order of rows is the order of the stacked graph (bottom to top) and of the YAML.
ITEMS = [
    ("sockets.tcp[listen]", "$.tcp.listen", "TCP sockets: LISTEN", "1A7C11",
     "Sockets that wait for incoming connections, one per listening address and port "
     "(ss: LISTEN). The number moves only when services start, stop or open new ports, so an "
     "unexpected change deserves a look at `ss -tlnp`."),
    ("sockets.tcp[syn_sent]", "$.tcp.syn_sent", "TCP sockets: SYN_SENT", "F63100",
     "Outgoing connection attempts: a SYN went out and the peer has not answered yet "
     "(ss: SYN-SENT). Normally close to zero. A count that stays up means peers that do not "
     "answer: a remote service down, a firewall dropping packets silently, a routing problem. "
     "`ss -tan state syn-sent` lists the destinations."),
    ("sockets.tcp[syn_recv]", "$.tcp.syn_recv", "TCP sockets: SYN_RECV", "2774A4",
     "Incoming connections half-way through the handshake: the SYN arrived and was answered, "
     "the client's final ACK has not (ss: SYN-RECV; pending connection requests included). "
     "Many of them suggest a SYN flood, clients on a lossy path, or a listener whose accept "
     "queue is full."),
    ("sockets.tcp[established]", "$.tcp.established", "TCP sockets: ESTABLISHED", "A54F10",
     "Open connections that can carry data both ways (ss: ESTAB). This is the working state; "
     "the count follows clients, upstream connections and connection pools. A jump suggests a "
     "traffic surge, clients that do not reuse connections or slow back ends holding them "
     "longer; a drop, an outage on the service or the network."),
    ("sockets.tcp[fin_wait1]", "$.tcp.fin_wait1", "TCP sockets: FIN_WAIT1", "FC6EA3",
     "This host closed its side and waits for the peer to acknowledge that (ss: FIN-WAIT-1). "
     "Usually gone in milliseconds; many of them point at peers that became unreachable or "
     "stopped reading while data was still queued for them."),
    ("sockets.tcp[close_wait]", "$.tcp.close_wait", "TCP sockets: CLOSE_WAIT", "6C59DC",
     "The peer has closed the connection, but the local program has not closed its socket yet "
     "(ss: CLOSE-WAIT). They do not expire by themselves: each stays until the owning process "
     "closes it or exits. A high or growing count nearly always means a program that leaks "
     "connections (a pool or client that never closes broken ones); "
     "`ss -tanp state close-wait` names the process."),
    ("sockets.tcp[fin_wait2]", "$.tcp.fin_wait2", "TCP sockets: FIN_WAIT2", "AC8C14",
     "This host's close was acknowledged; it now waits for the peer to close its side "
     "(ss: FIN-WAIT-2). Peers that keep half-closed connections open collect here; sockets "
     "whose process has already let go are dropped by the kernel after "
     "net.ipv4.tcp_fin_timeout."),
    ("sockets.tcp[last_ack]", "$.tcp.last_ack", "TCP sockets: LAST_ACK", "611F27",
     "The peer closed first, the local program closed afterwards, and this host waits for the "
     "final acknowledgement (ss: LAST-ACK). Usually brief; a lasting count points at peers "
     "that went away."),
    ("sockets.tcp[time_wait]", "$.tcp.time_wait", "TCP sockets: TIME_WAIT", "F230E0",
     "Connections this host closed first, kept for a fixed 60 seconds on Linux so that late "
     "packets cannot be taken for a new connection (ss: TIME-WAIT). Normal on busy clients and "
     "proxies. A very high count means many short-lived connections and can use up local "
     "ports towards one destination; keep-alive and connection pooling reduce it."),
    ("sockets.tcp[closing]", "$.tcp.closing", "TCP sockets: CLOSING", "5CCD18",
     "Both ends closed at the same moment and this host still waits for the acknowledgement of "
     "its own close (ss: CLOSING). Rare; a lasting count suggests packet loss on the path."),
    ("sockets.tcp[close]", "$.tcp.close", "TCP sockets: CLOSE", "BB2A02",
     "Sockets the kernel lists in the CLOSE state (ss: UNCONN for TCP). A connection passes "
     "through it only briefly while being torn down, so this is normally 0."),
    ("sockets.udp[established]", "$.udp.established", "UDP sockets: connected", "5A2B57",
     "UDP sockets tied to one remote address with connect() (ss: ESTAB), as some DNS "
     "resolvers, syslog, metrics or QUIC clients use them."),
    ("sockets.udp[unconn]", "$.udp.unconn", "UDP sockets: unconnected", "89ABF8",
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

# Extra graphs besides the stacked "by state" one: name -> [(key, colour), ...]
TOTALS_GRAPH = ("Sockets: totals", [("sockets.tcp[total]", "1A7C11"),
                                     ("sockets.udp[total]", "2774A4")])
STATE_GRAPH_NAME = "Sockets by state"

# ---------------------------------------------------------------------------------------------
# Triggers. `expr` and the text use {T} for the template's technical name. `item` is the key the
# trigger is attached to (its first item). `depends` names another trigger of the same table.
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
        "expr": "min(/{T}/sockets.tcp[close_wait],5m)>{$SOCKETS.CLOSE_WAIT.MAX}",
        "name": "Sockets: high number of CLOSE_WAIT sockets (over {$SOCKETS.CLOSE_WAIT.MAX} for 5m)",
        "opdata": "Current: {ITEM.LASTVALUE1}",
        "priority": "WARNING",
        "scope": "capacity",
        "depends": "close_wait_growing",
        "description": (
            "More than {$SOCKETS.CLOSE_WAIT.MAX} TCP sockets have been in CLOSE_WAIT for 5 "
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
        "id": "syn_recv_high",
        "item": "sockets.tcp[syn_recv]",
        "expr": "min(/{T}/sockets.tcp[syn_recv],5m)>{$SOCKETS.SYN_RECV.MAX}",
        "name": "Sockets: high number of SYN_RECV sockets (over {$SOCKETS.SYN_RECV.MAX} for 5m)",
        "opdata": "Current: {ITEM.LASTVALUE1}",
        "priority": "WARNING",
        "scope": "performance",
        "description": (
            "More than {$SOCKETS.SYN_RECV.MAX} incoming connections have been stuck half-way "
            "through the TCP handshake for 5 minutes. Causes: a SYN flood, clients on a path "
            "that loses the final ACK, or a listener that accepts too slowly so its queues "
            "overflow.\n"
            "Where to look:\n"
            "- `ss -tan state syn-recv` (which local port, which sources).\n"
            "- `ss -tln`: Recv-Q close to Send-Q on a listener means its accept queue is full.\n"
            "- `nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtSyncookiesSent`, and "
            "the sysctls net.ipv4.tcp_syncookies, net.ipv4.tcp_max_syn_backlog, net.core.somaxconn."
        ),
    },
    {
        "id": "time_wait_high",
        "item": "sockets.tcp[time_wait]",
        "expr": "min(/{T}/sockets.tcp[time_wait],5m)>{$SOCKETS.TIME_WAIT.MAX}",
        "name": "Sockets: high number of TIME_WAIT sockets (over {$SOCKETS.TIME_WAIT.MAX} for 5m)",
        "opdata": "Current: {ITEM.LASTVALUE1}",
        "priority": "WARNING",
        "scope": "capacity",
        "description": (
            "More than {$SOCKETS.TIME_WAIT.MAX} TCP sockets have been in TIME_WAIT for 5 minutes: "
            "this host closes many short-lived connections. Each one holds its local port for 60 "
            "seconds, so new connections to the same destination can fail with \"cannot assign "
            "requested address\".\n"
            "Where to look:\n"
            "- Which peers: `ss -Htan state time-wait | awk '{print $4}' | sort | uniq -c | sort -rn | head`.\n"
            "- Prefer keep-alive and connection pools in the programs that connect out.\n"
            "- Sysctls: net.ipv4.ip_local_port_range, net.ipv4.tcp_tw_reuse, "
            "net.ipv4.tcp_max_tw_buckets."
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
]

ITEM_TAGS = [("component", "network")]
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


def build_template(tpl):
    slug, name = tpl["slug"], tpl["name"]
    sub = lambda s: s.replace("{T}", name)
    uid = lambda kind, ident: stable_uuid(slug, kind, ident)

    triggers_by_item = {}
    trig_by_id = {t["id"]: t for t in TRIGGERS}
    for t in TRIGGERS:
        out = {"uuid": uid("trigger", t["id"]), "expression": sub(t["expr"]), "name": t["name"]}
        if t.get("opdata"):
            out["opdata"] = t["opdata"]
        out["priority"] = t["priority"]
        out["description"] = t["description"] if t["description"] is not None else tpl["nodata_hint"]
        if t["priority"] != "INFO" and t["id"] != "nodata":
            out["manual_close"] = "YES"
        if t.get("depends"):
            d = trig_by_id[t["depends"]]
            out["dependencies"] = [{"name": d["name"], "expression": sub(d["expr"])}]
        out["tags"] = tags([("scope", t["scope"])])
        triggers_by_item.setdefault(t["item"], []).append(out)

    m = tpl["master"]
    master = {"uuid": uid("item", MASTER_KEY), "name": m["name"], "type": m["type"],
              "key": MASTER_KEY, "delay": m["delay"], "history": MASTER_HISTORY, "trends": "0",
              "value_type": "TEXT", "description": m["description"], "tags": tags(MASTER_TAGS)}
    if MASTER_KEY in triggers_by_item:
        master["triggers"] = triggers_by_item.pop(MASTER_KEY)
    items = [master]
    for key, path, iname, _colour, desc in ITEMS:
        proto = key.split(".")[1].split("[")[0]
        it = {"uuid": uid("item", key), "name": iname, "type": "DEPENDENT", "key": key,
              "delay": "0", "history": DEPENDENT_HISTORY, "trends": DEPENDENT_TRENDS,
              "description": desc,
              "preprocessing": [{"type": "JSONPATH", "parameters": [path]}],
              "master_item": {"key": MASTER_KEY},
              "tags": tags(ITEM_TAGS + [("protocol", proto)])}
        if key in triggers_by_item:
            it["triggers"] = triggers_by_item.pop(key)
        items.append(it)
    assert not triggers_by_item, f"triggers on unknown items: {list(triggers_by_item)}"

    description = (
        f"Counts of TCP sockets per state and of UDP sockets on a Linux host, collected by "
        f"zabbix-sockets (one netlink sock_diag dump per run, the same numbers as `ss -tan` / "
        f"`ss -uan` give).\n\n{tpl['how']}\n\n"
        f"Thresholds and timing are user macros; override them per host.\n\n"
        f"Template version: {TEMPLATE_VERSION}"
    )
    out = {"uuid": uid("template", "template"), "template": name, "name": name,
           "description": description, "groups": [{"name": GROUP["name"]}], "items": items,
           "tags": tags(TEMPLATE_TAGS),
           "macros": [{"macro": mname, "value": MACROS[mname][0], "description": MACROS[mname][1]}
                      for mname in tpl["macros"]]}
    return out


def build_graphs(tpl):
    slug, name = tpl["slug"], tpl["name"]
    graphs = []
    state_items = [(k, c) for k, _p, _n, c, _d in ITEMS if c]
    gi = []
    for i, (key, colour) in enumerate(state_items):
        g = {}
        if i:
            g["sortorder"] = str(i)
        g["color"] = colour
        g["item"] = {"host": name, "key": key}
        gi.append(g)
    graphs.append({"uuid": stable_uuid(slug, "graph", STATE_GRAPH_NAME), "name": STATE_GRAPH_NAME,
                   "type": "STACKED", "graph_items": gi})
    gname, gitems = TOTALS_GRAPH
    gi = []
    for i, (key, colour) in enumerate(gitems):
        g = {}
        if i:
            g["sortorder"] = str(i)
        g["color"] = colour
        g["item"] = {"host": name, "key": key}
        gi.append(g)
    graphs.append({"uuid": stable_uuid(slug, "graph", gname), "name": gname, "graph_items": gi})
    return graphs


def build_export(tpl):
    return {"zabbix_export": {"version": "6.0", "date": EXPORT_DATE,
                              "groups": [dict(GROUP)],
                              "templates": [build_template(tpl)],
                              "graphs": build_graphs(tpl)}}


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
                else:
                    lines.append(f"{pad}  - {scalar(elem)}")
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"{pad}{key}: |-" if not value.endswith("\n") else f"{pad}{key}: |")
            for row in value.rstrip("\n").split("\n"):
                lines.append(f"{pad}  {row}" if row else "")
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
