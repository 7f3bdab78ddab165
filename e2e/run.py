#!/usr/bin/env python3
"""End-to-end tests of zabbix-sockets against a real Zabbix 6.0 (server, API, agent) on loopback.

    python3 e2e/run.py [--binary PATH] [--assume-up] [--down] [--keep-agent] [-k PATTERN]

Runner: the standard library's unittest, tests run in the order of their names; the last line
printed is "N passed, N failed" (", N skipped" when some were skipped); exit 1 on any failure.

What it does:
  - brings Zabbix up with scripts/zabbix-env up (skip with --assume-up; --down tears it down after)
  - checks the generated templates are current (templates/generate.py --check) and parse
  - imports both templates through the API (configuration.import must not report an error),
    twice (the second import must update, not duplicate), and checks their objects
  - starts a zabbix_agentd on 127.0.0.1:10050 (own config in $ZBX_STATE/agent, Server=127.0.0.1)
    whose UserParameter is a generated copy of conf/zabbix_agentd.d/zabbix-sockets.conf pointing
    at the binary under test (--binary, else $ZABBIX_SOCKETS_BIN, else .build/debug/zabbix-sockets)
  - creates a host linked to "Linux sockets by Zabbix agent" ({$SOCKETS.INTERVAL}=5s) and proves,
    with socket populations the test itself opens in this (the host's) network namespace, that the
    dependent items get the kernel's counts (exact for LISTEN, CLOSE_WAIT, FIN_WAIT2 and UDP;
    a stated tolerance for ESTABLISHED), that every dependent value equals the master's JSON, and
    that no item of the template is unsupported; then that the kernel counter items (per second),
    gauges, limits, ephemeral-port items and the items discovered for the agent's and server's
    listening ports and for the watched remote ports equal what the master's JSON gives
  - pushes a document with zabbix_sender to a host linked to "Linux sockets by Zabbix trapper",
    then with `zabbix-sockets send` twice: discovery on the trapper template, values of every item
  - fires a template trigger on its own host (low {$SOCKETS.CLOSE_WAIT.MAX})
  - classic drop-in: the items of the classic "Template App Sockets" (9 trapper sock[<ss state>],
    sock[UDP] polled from a second test agent whose UserParameter sock[*] runs
    `zabbix-sockets send --classic -c <its config>`): values arrive, UDP equals `ss -Huan | wc -l`,
    the refused sock[CLOSING] does not make sock[UDP] unsupported, an added sock[CLOSING] item gets
    values, and a host name unknown to Zabbix exits 2 naming the host
  - listening ports discovery on a host of its own: items for two listeners the test opens (one
    whose accept queue it fills and never accepts), their values, and the accept-queue trigger
    prototype's trigger firing (problem.get) while the queue is full and resolving after it drains

All traffic stays on 127.0.0.1 / ::1; every wait is bounded by time and count.
"""
import argparse
import collections
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "templates"))
import zbxapi  # noqa: E402
import test_psk  # noqa: E402
import test_daemon  # noqa: E402
import generate as tplgen  # noqa: E402  (the templates' tables: which items exist, of what kind)

AGENT_TEMPLATE = "Linux sockets by Zabbix agent"
TRAPPER_TEMPLATE = "Linux sockets by Zabbix trapper"
TEMPLATE_FILES = [os.path.join(ROOT, "templates", f)
                  for f in ("zabbix-sockets-agent.yaml", "zabbix-sockets-trapper.yaml")]
DROPIN = os.path.join(ROOT, "conf", "zabbix_agentd.d", "zabbix-sockets.conf")
CLASSIC_DROPIN = os.path.join(ROOT, "conf", "zabbix_agentd.d", "zabbix-sockets-classic.conf")
HOST_GROUP = "zabbix-sockets e2e"
AGENT_HOST = "zabbix-sockets-e2e-agent"
TRAPPER_HOST = "zabbix-sockets-e2e-trapper"
TRIGGER_HOST = "zabbix-sockets-e2e-trigger"
CLASSIC_HOST = "zabbix-sockets-e2e-classic"
PORTS_HOST = "zabbix-sockets-e2e-ports"
NO_SUCH_HOST = "zabbix-sockets-e2e-no-such-host"
MASTER_KEY = "sockets.stats"
POLL_INTERVAL = "5s"           # host macro {$SOCKETS.INTERVAL} on the test hosts

TCP_STATES = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
              "close", "close_wait", "last_ack", "listen", "closing"]
SS_TCP = {"ESTAB": "established", "SYN-SENT": "syn_sent", "SYN-RECV": "syn_recv",
          "FIN-WAIT-1": "fin_wait1", "FIN-WAIT-2": "fin_wait2", "TIME-WAIT": "time_wait",
          "UNCONN": "close", "CLOSE-WAIT": "close_wait", "LAST-ACK": "last_ack",
          "LISTEN": "listen", "CLOSING": "closing"}
SS_UDP = {"ESTAB": "established", "UNCONN": "unconn"}
# dependent item key -> path into the JSON document
DEPENDENT = {f"sockets.tcp[{s}]": ("tcp", s) for s in TCP_STATES + ["total"]}
DEPENDENT.update({f"sockets.udp[{s}]": ("udp", s) for s in ("established", "unconn", "total")})

# Items of the kernel and ephemeral sections: key -> name in the JSON ("kernel" / "ephemeral").
KERNEL_KIND = {name: kind for name, _n, _u, _d, kind in tplgen.kernel_rows()}   # counter/gauge/limit
KERNEL_KEYS = {f"sockets.kernel[{n}]": n for n in KERNEL_KIND}
EPHEMERAL_KEYS = {f"sockets.ephemeral[{r[0]}]": r[0] for r in tplgen.EPHEMERAL_ITEMS}
TEMPLATE_KEYS = {MASTER_KEY, *DEPENDENT, *KERNEL_KEYS, *EPHEMERAL_KEYS}
LISTEN_FIELDS = [r[0] for r in tplgen.LISTEN_PROTOTYPES]
REMOTE_FIELDS = [r[0] for r in tplgen.REMOTE_PROTOTYPES]
PORT_KEY = re.compile(r"^sockets\.(listen|remote)\[(\d+),(\w+)\]$")
TEMPLATE_TRIGGERS = len(tplgen.TRIGGERS)
# The classic template (landscape.md section 1): trapper items sock[<ss state>], and sock[UDP]
CLASSIC_STATES = ["ESTAB", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK",
                  "SYN-RECV", "SYN-SENT", "LISTEN"]

# Sockets in states that a poll of the agent opens and closes by itself (the server's connection
# to 127.0.0.1:10050 is ESTABLISHED on both ends while the agent runs the command) or that an API
# request in flight adds (client<->php, php<->postgres). See test_05 for how they are allowed for.
POLL_ESTAB = 2
API_ESTAB = 4


class Config:
    binary = None
    assume_up = False
    down = False
    keep_agent = False
    env = {}


# ------------------------------------------------------------------------------------------ env
zabbix_env = zbxapi.zabbix_env


def read_env():
    out = zabbix_env("env", timeout=30)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# ------------------------------------------------------------------------------------------ agent
class Agent:
    """A zabbix_agentd on 127.0.0.1:10050 with its own config under $ZBX_STATE/agent.

    `extra_dropins` {"name.conf": "text"} are written next to the zabbix-sockets drop-in (the
    classic `sock[*]` UserParameter, see classic_dropin). `subdir` puts a second agent's config,
    pid file and log under $ZBX_STATE/agent/<subdir>.
    """

    def __init__(self, state_dir, binary, port=10050, hostname=AGENT_HOST, extra_dropins=None,
                 server_active=None, subdir=None):
        self.dir = os.path.join(state_dir, "agent", *([subdir] if subdir else []))
        self.server_active = server_active     # e.g. "127.0.0.1:10051" (active checks, sender -c)
        self.conf = os.path.join(self.dir, "zabbix_agentd.conf")
        self.pidfile = os.path.join(self.dir, "zabbix_agentd.pid")
        self.log = os.path.join(self.dir, "zabbix_agentd.log")
        self.port, self.hostname = port, hostname
        self.binary = binary
        self.extra_dropins = extra_dropins or {}

    def _pid(self):
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            return pid
        except ProcessLookupError:
            return None

    def write_config(self):
        dropins = os.path.join(self.dir, "zabbix_agentd.d")
        os.makedirs(dropins, exist_ok=True)
        with open(DROPIN) as f:
            text = f.read()
        if "/usr/local/bin/zabbix-sockets" not in text:
            raise RuntimeError(f"{DROPIN} no longer names /usr/local/bin/zabbix-sockets")
        with open(os.path.join(dropins, "zabbix-sockets.conf"), "w") as f:
            f.write(text.replace("/usr/local/bin/zabbix-sockets", self.binary))
        for name, body in self.extra_dropins.items():
            with open(os.path.join(dropins, name), "w") as f:
                f.write(body)
        with open(self.conf, "w") as f:
            f.write(f"""# written by e2e/run.py
PidFile={self.pidfile}
LogType=file
LogFile={self.log}
LogFileSize=0
Server=127.0.0.1
ListenIP=127.0.0.1
ListenPort={self.port}
Hostname={self.hostname}
StartAgents=3
Timeout=10
Include={dropins}/*.conf
""")
            if self.server_active:
                f.write(f"ServerActive={self.server_active}\n")
        subprocess.run(["chown", "-R", "zabbix:zabbix", self.dir], check=True)

    def start(self, timeout=30):
        self.stop()
        self.write_config()
        if os.path.exists(self.log):
            os.remove(self.log)
        subprocess.run(["zabbix_agentd", "-c", self.conf], check=True, timeout=30)  # daemonizes
        zbxapi.wait_until(lambda: self._pid() and agent_get("agent.ping", port=self.port) == "1",
                          timeout, 0.5, f"zabbix_agentd on 127.0.0.1:{self.port} (log {self.log})")

    def stop(self, timeout=20):
        pid = self._pid()
        if pid is None:
            return
        os.kill(pid, 15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pid() is not None:
            time.sleep(0.2)
        if self._pid() is not None:
            os.kill(pid, 9)


def agent_get(key, host="127.0.0.1", port=10050, timeout=15):
    """Passive check like zabbix_get: ZBXD header + key; returns the agent's answer text."""
    data = key.encode()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"ZBXD\x01" + struct.pack("<Q", len(data)) + data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if len(buf) < 13 or buf[:4] != b"ZBXD":
        raise RuntimeError(f"bad agent answer {buf[:40]!r}")
    (length,) = struct.unpack("<Q", buf[5:13])
    return buf[13:13 + length].decode()


def binary_usable_by_zabbix(binary):
    """The agent runs UserParameters as user zabbix: can it run the binary under test?"""
    r = subprocess.run(["runuser", "-u", "zabbix", "--", binary, "stats", "--format", "json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    return r.returncode == 0, (r.stderr or r.stdout).strip()[:300]


def binary_for_agent(binary, state_dir):
    """The path the agent's UserParameter should run: the binary itself if user zabbix can run
    it there, else a copy in $ZBX_STATE/agent/bin (e.g. a build under /root)."""
    ok, msg = binary_usable_by_zabbix(binary)
    if ok:
        return binary, ""
    bindir = os.path.join(state_dir, "agent", "bin")
    os.makedirs(bindir, exist_ok=True)
    copy = os.path.join(bindir, "zabbix-sockets")
    shutil.copy2(binary, copy)
    os.chmod(copy, 0o755)
    for d in (os.path.join(state_dir, "agent"), bindir):
        os.chmod(d, 0o755)
    ok, msg2 = binary_usable_by_zabbix(copy)
    if ok:
        return copy, f"user zabbix cannot run {binary} ({msg}); using a copy at {copy}"
    raise AssertionError(f"user zabbix cannot run {binary} ({msg}) nor a copy ({msg2})")


def classic_dropin(binary, agent_conf):
    """conf/zabbix_agentd.d/zabbix-sockets-classic.conf, the drop-in that replaces the classic
    `sock[*]` UserParameter of the sepich "Template App Sockets" (`ss -ant | awk ... |
    zabbix_sender -c /etc/zabbix/zabbix_agentd.conf -i -; ss -anu | wc -l`), pointed at the binary
    under test and at the test agent's config (which carries ServerActive and the classic host's
    Hostname) instead of /etc/zabbix/zabbix_agentd.conf."""
    with open(CLASSIC_DROPIN) as f:
        text = f.read()
    line = "UserParameter=sock[*],/usr/local/bin/zabbix-sockets send --classic -c /etc/zabbix/zabbix_agentd.conf"
    if line not in text.splitlines():
        raise RuntimeError(f"{CLASSIC_DROPIN} no longer holds {line!r}")
    return (text.replace("/usr/local/bin/zabbix-sockets", binary)
            .replace("/etc/zabbix/zabbix_agentd.conf", agent_conf))


def free_loopback_port(first=10060, last=10199):
    """A TCP port on 127.0.0.1 that nothing uses at this moment, for the second test agent: from
    a fixed range below 32768, since agents (and `send -c`) refuse a ListenPort above 32767."""
    for port in range(first, last + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{last} on 127.0.0.1")


def expected_from_doc(key, doc):
    """What an item's JSONPath gives from one master document, before any per-second step: a
    number or text; None where the template discards the value (an optional kernel key absent).
    A discovered port missing from the document gives 0 (the prototypes' custom error value)."""
    if key in DEPENDENT:
        proto, state = DEPENDENT[key]
        return doc[proto][state]
    if key in EPHEMERAL_KEYS:
        return doc["ephemeral"][EPHEMERAL_KEYS[key]]
    if key in KERNEL_KEYS:
        return doc["kernel"].get(KERNEL_KEYS[key])
    m = PORT_KEY.match(key)
    if m:
        section, port, field = m.groups()
        return doc[section].get(port, {}).get(field, 0)
    raise KeyError(key)


def same_value(stored, want):
    """An item's stored value (text from history.get) against the expected number or text."""
    if isinstance(want, str):
        return stored == want
    got = float(stored)
    return abs(got - want) <= 1e-6 * max(1.0, abs(want))


# ------------------------------------------------------------------------------------------ ss
def ss_lines(*args):
    """Lines `ss -H <args>` prints (no header), e.g. ss_lines("-uan")."""
    out = subprocess.run(["ss", "-H", *args], stdout=subprocess.PIPE, text=True, check=True,
                         timeout=30).stdout
    return [line for line in out.splitlines() if line.strip()]


def kernel_counter(group, name):
    """One counter of /proc/net/netstat or /proc/net/snmp, e.g. ("TcpExt", "ListenOverflows")."""
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            if head.startswith(group + ":"):
                return int(dict(zip(head.split()[1:], vals.split()[1:]))[name])
    raise KeyError(f"{group}_{name}")


def listen_queue(port):
    """(Recv-Q, Send-Q) of the LISTEN socket on 127.0.0.1:port: accept queue and backlog."""
    for line in ss_lines("-ltn", f"sport = :{port}"):
        f = line.split()
        return int(f[1]), int(f[2])
    raise AssertionError(f"no listener on port {port} in ss")


def ss_counts():
    """Per-state counts from ss at this moment: ({tcp_state: n}, {udp_state: n})."""
    tcp, udp = collections.Counter(), collections.Counter()
    for line in subprocess.run(["ss", "-Htan"], stdout=subprocess.PIPE, text=True, check=True,
                               timeout=30).stdout.splitlines():
        if line.split():
            tcp[SS_TCP[line.split()[0]]] += 1
    for line in subprocess.run(["ss", "-Huan"], stdout=subprocess.PIPE, text=True, check=True,
                               timeout=30).stdout.splitlines():
        if line.split():
            udp[SS_UDP[line.split()[0]]] += 1
    return tcp, udp


# ------------------------------------------------------------------------------------------ population
def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Population:
    """Sockets this test holds open in the host's namespace, with the counts they add.

    listeners (LISTEN), udp_unconn (UNCONN), udp_connected (ESTAB), established pairs (2 ESTAB,
    plus 1 LISTEN for their acceptor), half-closed pairs (1 FIN_WAIT2 + 1 CLOSE_WAIT: the client
    calls shutdown(SHUT_WR) and both descriptors stay open, so both states last).
    """

    def __init__(self):
        self.socks = []
        self.expect = collections.Counter()     # keys: tcp.<state>, udp.<state>

    def _keep(self, s):
        self.socks.append(s)
        return s

    def listeners(self, n, family=socket.AF_INET):
        addr = "127.0.0.1" if family == socket.AF_INET else "::1"
        for _ in range(n):
            s = self._keep(socket.socket(family, socket.SOCK_STREAM))
            s.bind((addr, 0))
            s.listen(8)
        self.expect["tcp.listen"] += n

    def udp(self, unconnected, connected, family=socket.AF_INET):
        addr = "127.0.0.1" if family == socket.AF_INET else "::1"
        peer = self._keep(socket.socket(family, socket.SOCK_DGRAM))
        peer.bind((addr, 0))
        for _ in range(unconnected):
            self._keep(socket.socket(family, socket.SOCK_DGRAM)).bind((addr, 0))
        for _ in range(connected):
            s = self._keep(socket.socket(family, socket.SOCK_DGRAM))
            s.connect(peer.getsockname()[:2])
        self.expect["udp.unconn"] += unconnected + 1
        self.expect["udp.established"] += connected

    def _pairs(self, n, half_close):
        acceptor = self._keep(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        acceptor.bind(("127.0.0.1", 0))
        acceptor.listen(n + 8)
        clients = []
        for _ in range(n):
            c = self._keep(socket.create_connection(acceptor.getsockname(), timeout=10))
            clients.append(c)
            self._keep(acceptor.accept()[0])
        self.expect["tcp.listen"] += 1
        if half_close:
            for c in clients:
                c.shutdown(socket.SHUT_WR)
            self.expect["tcp.fin_wait2"] += n
            self.expect["tcp.close_wait"] += n
        else:
            self.expect["tcp.established"] += 2 * n

    def established_pairs(self, n):
        self._pairs(n, half_close=False)

    def half_closed_pairs(self, n):
        self._pairs(n, half_close=True)

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []


# ------------------------------------------------------------------------------------------ hooks
def send_with_sender(host, value, port=10051, timeout=60):
    """zabbix_sender one value to host/sockets.stats; retried (bounded) until the server knows the
    host and item (config cache), i.e. until it answers "processed: 1; failed: 0"."""
    deadline = time.monotonic() + timeout
    out = ""
    for _ in range(int(timeout) + 1):
        r = subprocess.run(["zabbix_sender", "-z", "127.0.0.1", "-p", str(port), "-s", host,
                            "-k", MASTER_KEY, "-o", value], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        out = r.stdout
        if r.returncode == 0 and "processed: 1; failed: 0" in out:
            return time.time(), out
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    raise TimeoutError(f"zabbix_sender never got processed: 1; last output: {out.strip()}")


def send_argv(binary, host, port=10051):
    """HOOK for the `zabbix-sockets send` scenario: the command line that pushes one document to
    the trapper host (zabbix_sender-style -z/-p/-s, as the `send` subcommand in progress takes
    them; adjust here if its options change)."""
    return [binary, "send", "-z", "127.0.0.1", "-p", str(port), "-s", host]


def binary_has_send(binary):
    """True once `zabbix-sockets --help` lists a `send` subcommand."""
    r = subprocess.run([binary, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=30)
    subcommands = r.stdout.split("SUBCOMMANDS:", 1)[-1] if "SUBCOMMANDS:" in r.stdout else ""
    return re.search(r"^\s+send\b", subcommands, re.M) is not None


# ------------------------------------------------------------------------------------------ tests
class E2E(unittest.TestCase):
    """One shared Zabbix; tests build on each other and run in name order."""

    api = None
    agent = None
    hostid = None
    items = None            # key -> item dict of the agent host
    rounds = []             # observations of test_05, for the report

    @classmethod
    def setUpClass(cls):
        cfg = Config
        t0 = time.monotonic()
        if not cfg.assume_up:
            zabbix_env("up")
        cfg.env = read_env()
        cls.bringup_s = time.monotonic() - t0
        cls.api = zbxapi.ZabbixAPI(cfg.env["ZBX_API_URL"])
        zbxapi.wait_until(cls.api.version, 30, 1, "API")
        cls.api.login()
        print(f"# Zabbix {cls.api.version()} ready in {cls.bringup_s:.1f}s; binary {cfg.binary}",
              flush=True)

    @classmethod
    def tearDownClass(cls):
        cls.stop_classic()
        cls.close_ports()
        if cls.agent and not Config.keep_agent:
            cls.agent.stop()
        if cls.api:
            try:
                cls.api.logout()
            except Exception:
                pass
        if Config.down:
            zabbix_env("down")

    # ---------------------------------------------------------------- helpers
    def reload_cache(self):
        zbxapi.reload_config_cache(Config.env["ZBX_SERVER_CONF"])

    def host_items(self, hostid):
        return {i["key_"]: i for i in self.api.items(hostid)}

    def wait_master_after(self, items, t, timeout=60, check_now=True):
        """Newest master value whose clock is at least `t`: (clock, ns, document)."""
        master = items[MASTER_KEY]
        if check_now and master["type"] == "0":
            try:
                self.api.check_now([master["itemid"]])
            except zbxapi.ZabbixAPIError:
                pass            # the regular 5 s poll comes anyway
            time.sleep(1.5)      # let the poll happen without API traffic of ours
        def newer():
            for clock, ns, value in self.api.history(master, time_from=int(t), limit=10):
                if clock + ns / 1e9 >= t:
                    return clock, ns, value
            return None
        return zbxapi.wait_until(newer, timeout, 1, f"a value of {MASTER_KEY} after {t:.0f}")

    def agent_host_ports(self):
        """Listening ports whose discovery the agent host keeps: the test agent's, the server's."""
        return sorted({str(self.agent.port), Config.env["ZBX_SERVER_PORT"]})

    def master_before(self, items, clock, ns):
        """The master value stored just before (clock, ns): (clock, ns, document) or None."""
        for c, n, value in self.api.history(items[MASTER_KEY], time_from=clock - 600, limit=20):
            if (c, n) < (clock, ns):
                return c, n, json.loads(value)
        return None

    def compare_with_doc(self, items, clock, ns, doc, prev, timeout=30):
        """Every item of `items` (key -> item; the master left out) against the master document
        stored at (clock, ns): its value at that timestamp equals what its JSONPath gives; counters
        the change per second since the previous master value `prev` (clock, ns, document);
        limits, stored only when they change, their last value. Items whose JSON key is absent
        (optional kernel keys) must have no value then. Returns {key: (stored, expected)} of the
        mismatches and the number of values compared."""
        at_clock, limits, absent = {}, {}, []
        for key in items:
            if key == MASTER_KEY:
                continue
            want = expected_from_doc(key, doc)
            kind = KERNEL_KIND.get(KERNEL_KEYS.get(key))
            if want is None:
                absent.append(key)
                continue
            if kind == "counter":
                old = expected_from_doc(key, prev[2]) if prev else None
                if old is None or want < old:
                    continue                    # no previous value, or the counter restarted
                want = (want - old) / ((clock - prev[0]) + (ns - prev[1]) / 1e9)
            (limits if kind == "limit" else at_clock)[key] = want
        got = {}
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout) + 1):       # bounded: the history syncer writes in batches
            got = self.api.values_at([items[k] for k in at_clock], clock, ns)
            if set(got) == set(at_clock) or time.monotonic() >= deadline:
                break
            time.sleep(1)
        missing = sorted(set(at_clock) - set(got))
        self.assertEqual(missing, [], f"no value at the master's clock {clock}.{ns:09d}")
        bad = {k: (got[k], w) for k, w in at_clock.items() if not same_value(got[k], w)}
        if limits or absent:
            last = {i["key_"]: i for i in self.api.call("item.get", {
                "output": ["key_", "lastvalue", "lastclock"],
                "itemids": [items[k]["itemid"] for k in list(limits) + absent]})}
            for k, w in limits.items():
                if not same_value(last[k]["lastvalue"], w):
                    bad[k] = (last[k]["lastvalue"], w)
            for k in absent:
                if last[k]["lastclock"] != "0":
                    bad[k] = (last[k]["lastvalue"], "no value (key absent from the JSON)")
        return bad, len(at_clock) + len(limits)

    def dependent_values_at(self, items, clock, ns, timeout=30):
        """All dependent values stored with the master's timestamp: {key: int}."""
        def collect():
            out = {}
            for key in DEPENDENT:
                rows = self.api.call("history.get", {
                    "output": "extend", "history": int(items[key]["value_type"]),
                    "itemids": [items[key]["itemid"]], "time_from": clock, "time_till": clock})
                hit = [r for r in rows if int(r["ns"]) == ns]
                if not hit:
                    return None
                out[key] = int(hit[0]["value"])
            return out
        return zbxapi.wait_until(collect, timeout, 1, f"dependent values at clock {clock}")

    # ---------------------------------------------------------------- 0x: templates
    def test_01_generated_templates_current(self):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "templates", "generate.py"), "--check"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        for path in TEMPLATE_FILES:
            with open(path) as f:
                text = f.read()
            uuids = re.findall(r"uuid: ([0-9a-f]+)$", text, re.M)
            for u in uuids:
                self.assertRegex(u, r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$", path)
            self.assertEqual(len(uuids), len(set(uuids)), f"duplicate uuid in {path}")

    def test_02_templates_parse_as_yaml(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed (apt-get install python3-yaml)")
        for path in TEMPLATE_FILES:
            with open(path) as f:
                doc = yaml.safe_load(f)
            exp = doc["zabbix_export"]
            self.assertEqual(exp["version"], "6.0")
            tpl = exp["templates"][0]
            keys = {i["key"] for i in tpl["items"]}
            self.assertEqual(keys, TEMPLATE_KEYS, path)
            rules = {r["key"]: r for r in tpl["discovery_rules"]}
            self.assertEqual(set(rules), {"sockets.listen.discovery", "sockets.remote.discovery"})
            self.assertEqual(len(rules["sockets.listen.discovery"]["item_prototypes"]), len(LISTEN_FIELDS))
            self.assertEqual(len(rules["sockets.remote.discovery"]["item_prototypes"]), len(REMOTE_FIELDS))

    def test_03_import_templates(self):
        for _ in range(2):      # the second import updates in place (stable uuids, no duplicates)
            for path in TEMPLATE_FILES:
                t0 = time.monotonic()
                self.assertIs(self.api.import_file(path), True, path)
                print(f"# imported {os.path.basename(path)} in {time.monotonic() - t0:.1f}s",
                      flush=True)
        groups = self.api.call("hostgroup.get", {"output": ["groupid", "uuid"],
                                                 "filter": {"name": ["Templates/Operating systems"]}})
        self.assertEqual(len(groups), 1, groups)

    def test_04_template_objects(self):
        for name, master_type in ((AGENT_TEMPLATE, "0"), (TRAPPER_TEMPLATE, "2")):
            tpl = self.api.call("template.get", {"output": ["templateid"], "filter": {"host": [name]},
                                                 "selectMacros": "extend", "selectTags": "extend",
                                                 "selectGroups": ["name"]})
            self.assertEqual(len(tpl), 1, name)
            tid = tpl[0]["templateid"]
            self.assertEqual([g["name"] for g in tpl[0]["groups"]], ["Templates/Operating systems"])
            items = {i["key_"]: i for i in self.api.call("item.get", {
                "output": ["key_", "type", "value_type", "delay", "history", "trends", "master_itemid"],
                "templateids": [tid], "preservekeys": True}).values()}
            self.assertEqual(set(items), TEMPLATE_KEYS)
            master = items[MASTER_KEY]
            self.assertEqual((master["type"], master["value_type"], master["trends"]),
                             (master_type, "4", "0"))
            if master_type == "0":
                self.assertEqual(master["delay"], "{$SOCKETS.INTERVAL}")
            for key in DEPENDENT:
                self.assertEqual((items[key]["type"], items[key]["value_type"]), ("18", "3"), key)
            for key, kname in KERNEL_KEYS.items():       # counters per second: float
                want = "0" if KERNEL_KIND[kname] == "counter" else "3"
                self.assertEqual((items[key]["type"], items[key]["value_type"]), ("18", want), key)
            triggers = self.api.call("trigger.get", {"output": ["description", "priority"],
                                                     "templateids": [tid],
                                                     "selectDependencies": ["description"]})
            self.assertEqual(len(triggers), TEMPLATE_TRIGGERS, triggers)
            deps = {t["description"]: [d["description"] for d in t["dependencies"]]
                    for t in triggers if t["dependencies"]}
            self.assertEqual(len(deps), 2, "CLOSE_WAIT high -> growing, orphans 25% -> 50%")
            rules = {r["key_"]: r for r in self.api.call("discoveryrule.get", {
                "output": ["key_", "type", "master_itemid", "lifetime"], "templateids": [tid],
                "selectFilter": "extend", "selectPreprocessing": "extend"})}
            self.assertEqual(set(rules), {"sockets.listen.discovery", "sockets.remote.discovery"})
            for key, rule in rules.items():
                self.assertEqual(rule["type"], "18", key)
                self.assertEqual(rule["master_itemid"], master["itemid"], key)
                self.assertEqual(len(rule["filter"]["conditions"]), 2, key)
            protos = self.api.call("itemprototype.get", {"output": ["key_"], "templateids": [tid]})
            self.assertEqual(len(protos), len(LISTEN_FIELDS) + len(REMOTE_FIELDS))
            tprotos = self.api.call("triggerprototype.get", {"output": ["description"],
                                                             "templateids": [tid]})
            self.assertEqual(len(tprotos), 2, tprotos)
            gprotos = self.api.call("graphprototype.get", {"output": ["name"], "templateids": [tid]})
            self.assertEqual(len(gprotos), 3, gprotos)
            graphs = self.api.call("graph.get", {"output": ["name", "graphtype"], "templateids": [tid],
                                                 "selectGraphItems": ["itemid"]})
            by_name = {g["name"]: g for g in graphs}
            self.assertEqual(by_name["Sockets by state"]["graphtype"], "1")       # stacked
            self.assertEqual(len(by_name["Sockets by state"]["gitems"]), 13)  # 11 TCP + 2 UDP
            self.assertEqual(len(by_name["Sockets: totals"]["gitems"]), 2)
            macros = {m["macro"] for m in tpl[0]["macros"]}
            self.assertTrue({"{$SOCKETS.NODATA.TIMEOUT}", "{$SOCKETS.CLOSE_WAIT.MAX}",
                             "{$SOCKETS.SYN_RECV.MAX}", "{$SOCKETS.TIME_WAIT.MAX}",
                             *tplgen.COMMON_MACROS} <= macros)

    # ---------------------------------------------------------------- 1x: agent template
    def test_10_agent_answers_sockets_stats(self):
        path, note = binary_for_agent(Config.binary, Config.env["ZBX_STATE"])
        if note:
            print(f"# {note}", flush=True)
        type(self).agent = Agent(Config.env["ZBX_STATE"], path)
        t0 = time.monotonic()
        self.agent.start()
        doc = json.loads(agent_get(MASTER_KEY))
        print(f"# agent up and answering in {time.monotonic() - t0:.1f}s", flush=True)
        self.assertEqual(list(doc)[:2], ["source", "tcp"])
        self.assertEqual(set(doc["tcp"]), set(TCP_STATES + ["total"]))

    def test_11_host_gets_values(self):
        if self.agent is None:
            self.skipTest("agent not started")
        # Discovery of listening ports only for the agent's and the server's ports: test_12 opens
        # and closes dozens of listeners, which would otherwise each get items.
        hostid = self.api.create_host(AGENT_HOST, HOST_GROUP, AGENT_TEMPLATE, macros={
            "{$SOCKETS.INTERVAL}": POLL_INTERVAL,
            "{$SOCKETS.LISTEN.PORT.MATCHES}": f"^({'|'.join(self.agent_host_ports())})$"})
        type(self).hostid = hostid
        t0 = time.time()
        self.reload_cache()
        # the template's own items (discovered ones may already follow; test_13 checks those)
        items = {k: i for k, i in self.host_items(hostid).items() if i["flags"] == "0"}
        type(self).items = items
        self.assertEqual(set(items), TEMPLATE_KEYS)
        clock, ns, value = self.wait_master_after(items, t0 - 5, timeout=90)
        doc = json.loads(value)
        deps = self.dependent_values_at(items, clock, ns)
        for key, (proto, state) in DEPENDENT.items():
            self.assertEqual(deps[key], doc[proto][state], key)
        print(f"# first values {time.time() - t0:.1f}s after host.create", flush=True)

    def test_12_counts_match_kernel(self):
        """Three rounds: P1 open, P1+P2 open, all closed. Each round waits for a poll that started
        after the population settled and compares with ss sampled right before and after it.

        Exact (must equal ss, and the change between rounds must equal what the test opened or
        closed): LISTEN, CLOSE_WAIT, FIN_WAIT2, UDP connected/unconnected/total. The poll itself
        does not touch them; a round is polled again (at most 4 times) when ss before and after
        disagree or the item differs from an ss count both agree on, since other programs'
        sockets can pass through any state for a moment; a wrong count persists and fails.
        ESTABLISHED: the poll's own server->agent connection (2 sockets) is open while the agent
        runs the command, and one API request may be in flight (client<->php, php<->postgres: 4),
        so the value must lie in [min(ss), max(ss) + 2 + 4] (a poll outside is polled again, as
        above, since other programs' connections come and go too)."""
        if self.items is None:
            self.skipTest("no agent host")
        items = self.items
        v6 = ipv6_loopback()
        p1, p2 = Population(), Population()
        exact = ["tcp.listen", "tcp.close_wait", "tcp.fin_wait2", "udp.unconn", "udp.established",
                 "udp.total"]
        observed = []

        def round_(label):
            # A round is retried (at most 4 polls) when ss before and after the poll disagree on
            # an exact state, or when the item disagrees with an ss count both samples agree on:
            # short-lived sockets of others (e.g. a PostgreSQL backend in CLOSE_WAIT while it
            # exits after an API request) can sit in any state for a moment. A wrong count from
            # the tool persists and fails all 4.
            why = ""
            for attempt in range(4):
                if why:
                    print(f"# round {label}: {why}, retrying ({attempt})", flush=True)
                time.sleep(0.5)
                tcp0, udp0 = ss_counts()
                t = time.time() + 0.3      # the poll must start after this
                time.sleep(0.3)
                clock, ns, value = self.wait_master_after(items, t)
                time.sleep(0.3)            # let teardown of our own API connections finish
                tcp1, udp1 = ss_counts()
                before = {**{f"tcp.{k}": tcp0[k] for k in TCP_STATES},
                          **{f"udp.{k}": udp0[k] for k in ("established", "unconn")}}
                after = {**{f"tcp.{k}": tcp1[k] for k in TCP_STATES},
                         **{f"udp.{k}": udp1[k] for k in ("established", "unconn")}}
                before["udp.total"] = udp0["established"] + udp0["unconn"]
                after["udp.total"] = udp1["established"] + udp1["unconn"]
                moved = {k: (before[k], after[k]) for k in exact if before[k] != after[k]}
                if moved:
                    why = f"ss moved during the poll {moved}"
                    continue
                deps = self.dependent_values_at(items, clock, ns)
                got = {f"{p}.{s}": deps[k] for k, (p, s) in DEPENDENT.items()}
                differ = {k: (got[k], before[k]) for k in exact if got[k] != before[k]}
                if differ:
                    why = f"item != ss (item, ss): {differ}"
                    continue
                lo = min(before["tcp.established"], after["tcp.established"])
                hi = max(before["tcp.established"], after["tcp.established"]) + POLL_ESTAB + API_ESTAB
                if not lo <= got["tcp.established"] <= hi:
                    why = f"ESTABLISHED {got['tcp.established']} outside [{lo}, {hi}]"
                    continue
                break
            else:
                self.fail(f"round {label}: no poll matched ss in 4 tries; last: {why}")
            doc = json.loads(value)
            for key, (proto, state) in DEPENDENT.items():
                self.assertEqual(deps[key], doc[proto][state], f"{key} vs master JSON")
            for k in exact:
                self.assertEqual(got[k], before[k], f"round {label}: {k} item {got[k]} != ss {before[k]}")
            self.assertTrue(lo <= got["tcp.established"] <= hi,
                            f"round {label}: ESTABLISHED {got['tcp.established']} not in [{lo}, {hi}]")
            self.assertEqual(got["tcp.total"], sum(got[f"tcp.{s}"] for s in TCP_STATES))
            self.assertEqual(got["udp.total"], got["udp.established"] + got["udp.unconn"])
            observed.append((label, got, before))
            print(f"# round {label}: " + ", ".join(f"{k}={got[k]}" for k in
                  ["tcp.listen", "tcp.established", "tcp.close_wait", "tcp.fin_wait2", "tcp.time_wait",
                   "udp.unconn", "udp.established"]) + f" (ss ESTAB {before['tcp.established']})",
                  flush=True)
            return got

        try:
            p1.listeners(20)
            if v6:
                p1.listeners(5, socket.AF_INET6)
            p1.udp(unconnected=9, connected=4)
            p1.half_closed_pairs(6)
            p1.established_pairs(10)
            r1 = round_("P1")
            open1 = dict(p1.expect)
            p2.listeners(17)
            p2.udp(unconnected=3, connected=5, family=socket.AF_INET6 if v6 else socket.AF_INET)
            p2.half_closed_pairs(3)
            r2 = round_("P1+P2")
            open2 = {k: p1.expect[k] + p2.expect[k] for k in set(p1.expect) | set(p2.expect)}
            p1.close()
            p2.close()
            r3 = round_("closed")
            # The population must show up in the items by exactly what the test opened/closed.
            # Compare only states whose background (ss minus the test's own sockets) stayed the
            # same across the two rounds; others on this machine may open sockets meanwhile, and
            # each round has already matched ss exactly.
            opened = [open1, open2, {}]
            ss_rounds = [o[2] for o in observed[-3:]]

            def own(i, k):
                o = opened[i]
                if k == "udp.total":
                    return o.get("udp.unconn", 0) + o.get("udp.established", 0)
                return o.get(k, 0)
            rounds = [r1, r2, r3]
            for i, j, what in ((0, 1, "P1 -> P1+P2"), (1, 2, "P1+P2 -> closed")):
                for k in exact:
                    bg_i, bg_j = ss_rounds[i][k] - own(i, k), ss_rounds[j][k] - own(j, k)
                    if bg_i != bg_j:
                        print(f"# {k}: other sockets changed by {bg_j - bg_i} between rounds "
                              f"({what}); change not compared", flush=True)
                        continue
                    self.assertEqual(rounds[j][k] - rounds[i][k], own(j, k) - own(i, k),
                                     f"{k}: change {what}")
        finally:
            p1.close()
            p2.close()
        type(self).rounds = observed

    def test_13_no_item_unsupported(self):
        """Every item of the agent host, discovered ones included, is supported and has a value
        (kernel counters too, which need two polls), except kernel keys this machine's JSON leaves
        out; discovery made items for exactly the ports {$SOCKETS.LISTEN.PORT.MATCHES} keeps and
        for every watched remote port."""
        if self.hostid is None:
            self.skipTest("no agent host")
        doc = json.loads(self.api.history(self.items[MASTER_KEY], limit=1)[0][2])
        ports = self.agent_host_ports()
        remote = [r["{#PORT}"] for r in doc["remote_discovery"]]
        want = ({f"sockets.listen[{p},{f}]" for p in ports for f in LISTEN_FIELDS}
                | {f"sockets.remote[{p},{f}]" for p in remote for f in REMOTE_FIELDS})
        no_value_ok = {k for k in KERNEL_KEYS if expected_from_doc(k, doc) is None}
        state = {}

        def settled():
            items = self.api.items(self.hostid)
            found = {i["key_"] for i in items if i["flags"] == "4"}
            bad = {i["key_"]: (i["state"], i["error"]) for i in items if (i["state"], i["error"]) != ("0", "")}
            empty = sorted(i["key_"] for i in items if i["lastclock"] == "0" and i["key_"] not in no_value_ok)
            state.update(found=found, bad=bad, empty=empty, n=len(items))
            return found == want and not bad and not empty
        try:
            zbxapi.wait_until(settled, 60, 2, "discovered items, all supported and with values")
        except TimeoutError:
            self.fail(f"missing discovered: {sorted(want - state['found'])}; unexpected discovered: "
                      f"{sorted(state['found'] - want)}; unsupported: {state['bad']}; "
                      f"without value: {state['empty']}")
        print(f"# {state['n']} items supported with values ({len(want)} discovered: ports "
              f"{', '.join(ports)} and remote {', '.join(remote)}); no value by design: "
              f"{sorted(no_value_ok) or 'none'}", flush=True)

    def test_14_triggers_evaluate(self):
        """Template triggers and the triggers discovered for the two kept ports are evaluated and
        OK on this quiet host; a trigger on a kernel key this machine lacks may stay unknown."""
        if self.hostid is None:
            self.skipTest("no agent host")
        doc = json.loads(self.api.history(self.items[MASTER_KEY], limit=1)[0][2])
        lacking = [k for k in KERNEL_KEYS if expected_from_doc(k, doc) is None]
        triggers = self.api.call("trigger.get", {"output": ["description", "state", "value", "error",
                                                            "expression", "flags"],
                                                 "hostids": [self.hostid], "expandExpression": True})
        self.assertEqual(len(triggers), TEMPLATE_TRIGGERS + 2 * len(self.agent_host_ports()),
                         [t["description"] for t in triggers])
        for t in triggers:
            if t["state"] == "1" and any(k in t["expression"] for k in lacking):
                print(f"# unknown as expected (kernel key absent here): {t['description']}")
                continue
            # state 0: evaluated (not "unknown"); value 0: OK on this quiet host
            self.assertEqual((t["state"], t["value"], t["error"]), ("0", "0", ""), t)

    def test_15_items_match_master_json(self):
        """One poll, every item of the agent host: plain counts, ephemeral ports, kernel gauges
        and limits equal the master's JSON; kernel counters equal the change per second between
        this and the previous master value; discovered port items equal $.listen["PORT"] and
        $.remote["PORT"] of the same document."""
        if self.hostid is None:
            self.skipTest("no agent host")
        items = self.host_items(self.hostid)
        clock, ns, value = self.wait_master_after(items, time.time())
        prev = self.master_before(items, clock, ns)
        self.assertIsNotNone(prev, "no earlier master value")
        bad, n = self.compare_with_doc(items, clock, ns, json.loads(value), prev)
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        rate = self.api.values_at([items["sockets.kernel[Tcp_PassiveOpens]"]], clock, ns)
        print(f"# {n} item values equal the JSON at {clock}.{ns:09d} (e.g. PassiveOpens "
              f"{float(rate['sockets.kernel[Tcp_PassiveOpens]']):.2f}/s)", flush=True)

    # ---------------------------------------------------------------- 2x: trapper template
    def test_20_trapper_host_with_zabbix_sender(self):
        """The trapper template gets the same document pushed with zabbix_sender."""
        hostid = self.api.create_host(TRAPPER_HOST, HOST_GROUP, TRAPPER_TEMPLATE,
                                      with_agent_interface=False)
        self.reload_cache()
        out = subprocess.run([Config.binary, "stats", "--format", "json"], stdout=subprocess.PIPE,
                             text=True, check=True, timeout=30).stdout.strip()
        doc = json.loads(out)
        sent_at, reply = send_with_sender(TRAPPER_HOST, out)
        items = self.host_items(hostid)
        clock, ns, value = self.wait_master_after(items, sent_at - 2, timeout=30, check_now=False)
        self.assertEqual(json.loads(value), doc)
        deps = self.dependent_values_at(items, clock, ns)
        for key, (proto, state) in DEPENDENT.items():
            self.assertEqual(deps[key], doc[proto][state], key)
        bad = {k: v for k, v in self.api.item_states(hostid).items() if v != ("0", "")}
        self.assertEqual(bad, {}, "unsupported trapper items")

    def test_21_trapper_host_with_zabbix_sockets_send(self):
        """`zabbix-sockets send` to a trapper-template host, twice: the first document's values
        arrive and its discovery rows make items for this machine's listening ports and the
        watched remote ports; the second document reaches every item, discovered ones and kernel
        counters (per second since the first) included."""
        if not binary_has_send(Config.binary):
            self.skipTest("binary has no `send` subcommand yet")
        hostid = self.api.create_host(TRAPPER_HOST, HOST_GROUP, TRAPPER_TEMPLATE,
                                      with_agent_interface=False)
        self.reload_cache()
        items = self.host_items(hostid)
        deadline, t0, r = time.monotonic() + 60, time.time(), None
        while time.monotonic() < deadline:          # bounded: config cache may lag behind
            r = subprocess.run(send_argv(Config.binary, TRAPPER_HOST, int(Config.env["ZBX_SERVER_PORT"])),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
            if r.returncode == 0:
                break
            time.sleep(1)
        self.assertEqual(r.returncode, 0, r.stdout)
        clock, ns, value = self.wait_master_after(items, t0 - 2, timeout=30, check_now=False)
        doc = json.loads(value)
        deps = self.dependent_values_at(items, clock, ns)
        for key, (proto, state) in DEPENDENT.items():
            self.assertEqual(deps[key], doc[proto][state], key)

        want = ({f"sockets.listen[{r['{#PORT}']},{f}]" for r in doc["listen_discovery"] for f in LISTEN_FIELDS}
                | {f"sockets.remote[{r['{#PORT}']},{f}]" for r in doc["remote_discovery"] for f in REMOTE_FIELDS})
        def discovered():
            found = {k for k, i in self.host_items(hostid).items() if i["flags"] == "4"}
            return found >= want
        zbxapi.wait_until(discovered, 60, 1, f"{len(want)} discovered items on the trapper host")
        self.reload_cache()
        time.sleep(1)
        t1 = time.time()
        r = subprocess.run(send_argv(Config.binary, TRAPPER_HOST, int(Config.env["ZBX_SERVER_PORT"])),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)
        items = self.host_items(hostid)
        clock2, ns2, value2 = self.wait_master_after(items, t1 - 1, timeout=30, check_now=False)
        bad, n = self.compare_with_doc(items, clock2, ns2, json.loads(value2), (clock, ns, doc))
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        unsupported = {k: v for k, v in self.api.item_states(hostid).items() if v != ("0", "")}
        self.assertEqual(unsupported, {}, "unsupported trapper-host items")
        print(f"# trapper host: {len(want)} items discovered from the first push, {n} values of "
              f"the second push equal its JSON", flush=True)

    # ---------------------------------------------------------------- 3x: triggers fire
    def test_30_close_wait_trigger_fires(self):
        """A host whose {$SOCKETS.CLOSE_WAIT.MAX} is below the CLOSE_WAIT sockets the test holds
        from before the host exists: the template's "high number of CLOSE_WAIT" trigger fires."""
        if self.agent is None:
            self.skipTest("agent not started")
        pop = Population()
        try:
            pop.half_closed_pairs(6)
            # whatever else is in CLOSE_WAIT only adds to the 6 held here: 5 is exceeded for sure
            hostid = self.api.create_host(TRIGGER_HOST, HOST_GROUP, AGENT_TEMPLATE, macros={
                "{$SOCKETS.INTERVAL}": POLL_INTERVAL,
                "{$SOCKETS.CLOSE_WAIT.MAX}": str(pop.expect["tcp.close_wait"] - 1),
                # no discovery here (^$ matches no port): this host is about one template trigger
                "{$SOCKETS.LISTEN.PORT.MATCHES}": "^$", "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$"})
            self.reload_cache()
            def fired():
                ts = self.api.call("trigger.get", {"output": ["description", "value", "state"],
                                                   "hostids": [hostid], "only_true": True,
                                                   "filter": {"value": 1}, "expandDescription": True})
                return ts or None
            ts = zbxapi.wait_until(fired, 60, 1, "a CLOSE_WAIT trigger in PROBLEM")
            names = [t["description"] for t in ts]
            self.assertTrue(any("high number of CLOSE_WAIT" in n for n in names), names)
            print(f"# fired: {names}", flush=True)
        finally:
            pop.close()
            try:
                self.api.delete_host(TRIGGER_HOST)
            except zbxapi.ZabbixAPIError:
                pass


    # ---------------------------------------------------------------- 4x: classic drop-in
    classic = None          # {"agent", "binary", "hostid", "items", "pop"} of test_40..42

    def classic_send(self, *extra, conf=None):
        """`send --classic -c CONF` run as the agent runs it (user zabbix)."""
        c = type(self).classic
        return subprocess.run(["runuser", "-u", "zabbix", "--", c["binary"], "send", "--classic",
                               "-c", conf or c["agent"].conf, *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=90)

    def classic_items(self):
        return self.host_items(type(self).classic["hostid"])

    def first_value_after(self, item, t, what, timeout=40):
        """The first value of `item` whose clock is at least t: (clock, ns, value)."""
        def first():
            rows = [r for r in self.api.history(item, time_from=int(t), limit=20) if r[0] + r[1] / 1e9 >= t]
            return min(rows) if rows else None
        return zbxapi.wait_until(first, timeout, 1, what)

    @classmethod
    def stop_classic(cls):
        c = cls.classic
        if not c:
            return
        if c.get("agent"):
            c["agent"].stop()
        if c.get("pop"):
            c["pop"].close()
        try:
            cls.api.delete_host(CLASSIC_HOST)
        except Exception:
            pass
        cls.classic = None

    def test_40_classic_dropin_values(self):
        """The classic template's items on a host (9 trapper sock[<ss state>], numeric unsigned;
        sock[UDP] as a passive agent item so the server polls the test agent), and the classic
        UserParameter sock[*] replaced by `zabbix-sockets send --classic -c <agent conf>`: one
        poll of sock[UDP] delivers all 9 trapper values from one count, LISTEN, CLOSE-WAIT and
        FIN-WAIT-2 equal `ss`, and sock[UDP] equals `ss -Huan | wc -l` (no header line)."""
        state_dir = Config.env["ZBX_STATE"]
        binary, _ = binary_for_agent(Config.binary, state_dir)
        port = free_loopback_port()
        agent = Agent(state_dir, binary, port=port, hostname=CLASSIC_HOST, subdir="classic",
                      server_active=f"127.0.0.1:{Config.env['ZBX_SERVER_PORT']}")
        agent.extra_dropins = {"classic.conf": classic_dropin(binary, agent.conf)}
        type(self).classic = c = {"agent": None, "binary": binary}
        hostid = self.api.create_host(CLASSIC_HOST, HOST_GROUP, None, agent_port=port)
        c["hostid"] = hostid
        self.api.call("item.create", [
            {"hostid": hostid, "name": st, "key_": f"sock[{st}]", "type": 2, "value_type": 3,
             "history": "90d", "trends": "365d"} for st in CLASSIC_STATES])
        agent.write_config()
        c["agent"] = agent
        # The server knows the host's trapper items once its configuration cache has them: the
        # command itself, as user zabbix with the agent's config, is the probe (bounded).
        deadline, r = time.monotonic() + 40, None
        while time.monotonic() < deadline:
            self.reload_cache()
            r = self.classic_send()
            if r.returncode == 0:
                break
            time.sleep(1)
        self.assertEqual(r.returncode, 0, f"send --classic never succeeded: {r.stderr}")
        self.assertRegex(r.stdout, r"^\d+\n$", "stdout must be the UDP count only")
        agent.start()
        iface = self.api.call("hostinterface.get", {"output": ["interfaceid"], "hostids": [hostid]})
        self.api.call("item.create", {"hostid": hostid, "name": "UDP", "key_": "sock[UDP]",
                                      "type": 0, "value_type": 3, "delay": POLL_INTERVAL,
                                      "interfaceid": iface[0]["interfaceid"],
                                      "history": "90d", "trends": "365d"})
        self.reload_cache()
        pop = Population()
        c["pop"] = pop
        pop.udp(unconnected=5, connected=2)
        pop.half_closed_pairs(3)
        pop.listeners(2)
        items = self.classic_items()
        udp_item = items["sock[UDP]"]
        exact = {"LISTEN": ("-tln",), "CLOSE-WAIT": ("-tan", "state", "close-wait"),
                 "FIN-WAIT-2": ("-tan", "state", "fin-wait-2"), "UDP": ("-uan",)}
        why = ""
        for attempt in range(4):        # bounded: others' sockets may move during one poll
            if why:
                print(f"# classic: {why}, retrying ({attempt})", flush=True)
            time.sleep(0.5)
            before = {k: len(ss_lines(*a)) for k, a in exact.items()}
            t = time.time()
            try:
                self.api.check_now([udp_item["itemid"]])
            except zbxapi.ZabbixAPIError:
                pass
            uclock, uns, udp = self.first_value_after(udp_item, t, "a sock[UDP] value", timeout=60)
            after = {k: len(ss_lines(*a)) for k, a in exact.items()}
            if before != after:
                why = f"ss moved during the poll {before} -> {after}"
                continue

            def trapper_values():
                # values counted after t (the ss sample) and sent before the sock[UDP] answer
                got = {}
                for st in CLASSIC_STATES:
                    rows = [r for r in self.api.history(items[f"sock[{st}]"], time_from=int(t), limit=20)
                            if r[0] + r[1] / 1e9 >= t and (r[0], r[1]) <= (uclock, uns)]
                    if not rows:
                        return None
                    got[st] = max(rows)
                return got
            try:
                vals = zbxapi.wait_until(trapper_values, 10, 1, "the 9 trapper values of that poll")
            except TimeoutError:
                why = "no trapper values counted after the ss sample (a poll already under way?)"
                continue
            stamps = {(v[0], v[1]) for v in vals.values()}
            self.assertEqual(len(stamps), 1, f"the 9 values come from one count: {vals}")
            got = {st: int(v[2]) for st, v in vals.items()}
            got["UDP"] = int(udp)
            differ = {k: (got[k], before[k]) for k in exact if got[k] != before[k]}
            if differ:
                why = f"item != ss (item, ss): {differ}"
                continue
            break
        else:
            self.fail(f"no poll matched ss in 4 tries; last: {why}")
        self.assertGreaterEqual(got["UDP"], pop.expect["udp.unconn"] + pop.expect["udp.established"])
        self.assertGreaterEqual(got["CLOSE-WAIT"], 3)
        print(f"# classic: {', '.join(f'{k}={v}' for k, v in got.items())}; "
              f"`ss -uan | wc -l` (with header) would say {len(ss_lines('-uan')) + 1}", flush=True)

    def test_41_classic_closing(self):
        """sock[CLOSING] has no item in the classic template: the server refuses that value, the
        command still exits 0 and prints only the UDP count, sock[UDP] stays supported; after a
        trapper item sock[CLOSING] is added, its values arrive with the next polls."""
        if not type(self).classic:
            self.skipTest("no classic host")
        items = self.classic_items()
        self.assertNotIn("sock[CLOSING]", items)
        udp_item = items["sock[UDP]"]
        t = time.time()
        self.first_value_after(udp_item, t, "another sock[UDP] poll", timeout=30)
        st, err = self.api.item_states(type(self).classic["hostid"])["sock[UDP]"]
        self.assertEqual((st, err), ("0", ""), "sock[UDP] must stay supported")
        r = self.classic_send("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^\d+\n$")
        self.assertIn("refused sock[CLOSING]", r.stderr)

        self.api.call("item.create", {"hostid": type(self).classic["hostid"], "name": "CLOSING",
                                      "key_": "sock[CLOSING]", "type": 2, "value_type": 3})
        items = self.classic_items()

        def closing_accepted():
            self.reload_cache()
            r = self.classic_send("-v")
            return r if r.returncode == 0 and "refused sock[CLOSING]" not in r.stderr else None
        zbxapi.wait_until(closing_accepted, 30, 1, "the server to accept sock[CLOSING]")
        t = time.time()
        try:
            self.api.check_now([udp_item["itemid"]])
        except zbxapi.ZabbixAPIError:
            pass
        clock, ns, value = self.first_value_after(items["sock[CLOSING]"], t, "a sock[CLOSING] value from a poll")
        self.assertRegex(value, r"^\d+$")
        st, err = self.api.item_states(type(self).classic["hostid"])["sock[UDP]"]
        self.assertEqual((st, err), ("0", ""))
        print(f"# classic: sock[CLOSING]={value} arrived {clock + ns / 1e9 - t:.1f}s after the poll "
              f"was asked for", flush=True)

    def test_42_classic_unknown_host(self):
        """`send --classic` with a Hostname Zabbix does not know: exit 2, a message naming the
        host, nothing on stdout (the agent would store no misleading UDP count)."""
        if not type(self).classic:
            self.skipTest("no classic host")
        try:
            agent = type(self).classic["agent"]
            with open(agent.conf) as f:
                text = f.read()
            conf = os.path.join(agent.dir, "no-such-host.conf")
            with open(conf, "w") as f:
                f.write(re.sub(r"^Hostname=.*$", f"Hostname={NO_SUCH_HOST}", text, flags=re.M))
            os.chmod(conf, 0o644)
            r = self.classic_send(conf=conf)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(NO_SUCH_HOST, r.stderr)
            self.assertEqual(r.stdout, "")
            print(f"# classic, unknown host: exit 2: {r.stderr.strip()[:200]}", flush=True)
        finally:
            self.stop_classic()

    # ---------------------------------------------------------------- 5x: listening ports
    ports = None            # {"hostid", "p_full", "p_conn", "socks", ...} of test_50/51

    @classmethod
    def close_ports(cls):
        p = cls.ports
        if not p:
            return
        for s in p["socks"]:
            try:
                s.close()
            except OSError:
                pass
        try:
            cls.api.delete_host(PORTS_HOST)
        except Exception:
            pass
        cls.ports = None

    def test_50_listen_discovery_items_and_values(self):
        """Two listeners of the test on 127.0.0.1: one with backlog 4 whose accept queue the test
        fills and never accepts, one with 3 accepted connections and 2 the clients half-closed
        (CLOSE_WAIT on the port). A host whose {$SOCKETS.LISTEN.PORT.MATCHES} keeps only these
        two ports gets their 2 x 13 items from discovery, and the values of one poll equal the
        JSON and what the test holds."""
        if self.agent is None:
            self.skipTest("agent not started")
        backlog = 4
        socks = []
        type(self).ports = p = {"socks": socks}
        full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(full)
        full.bind(("127.0.0.1", 0))
        full.listen(backlog)
        p_full = full.getsockname()[1]
        for _ in range(backlog + 2):        # bounded; stops when Recv-Q reaches the backlog
            if listen_queue(p_full)[0] >= backlog:
                break
            socks.append(socket.create_connection(("127.0.0.1", p_full), timeout=5))
            time.sleep(0.05)
        queue, limit = listen_queue(p_full)
        self.assertEqual((queue, limit), (backlog, backlog), "accept queue full")
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(conn)
        conn.bind(("127.0.0.1", 0))
        conn.listen(16)
        p_conn = conn.getsockname()[1]
        for i in range(5):
            c = socket.create_connection(("127.0.0.1", p_conn), timeout=5)
            socks += [c, conn.accept()[0]]
            if i >= 3:
                c.shutdown(socket.SHUT_WR)      # server side: CLOSE_WAIT on p_conn
        p.update(p_full=str(p_full), p_conn=str(p_conn), full=full, backlog=backlog)
        hostid = self.api.create_host(PORTS_HOST, HOST_GROUP, AGENT_TEMPLATE, macros={
            "{$SOCKETS.INTERVAL}": POLL_INTERVAL,
            "{$SOCKETS.LISTEN.PORT.MATCHES}": f"^({p_full}|{p_conn})$",
            "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$",
            "{$SOCKETS.ACCEPTQ.PERIOD}": "10s",
            "{$SOCKETS.LISTEN_OVERFLOWS.MAX}": "0",     # any overflow (test_51 makes some)
            # macro context: only this port's CLOSE_WAIT threshold is lowered
            f'{{$SOCKETS.PORT.CLOSE_WAIT.MAX:"{p_conn}"}}': "1"})
        p["hostid"] = hostid
        t0 = p["created"] = time.time()
        self.reload_cache()
        want = {f"sockets.listen[{port},{f}]" for port in (p_full, p_conn) for f in LISTEN_FIELDS}

        def discovered():
            found = {k for k, i in self.host_items(hostid).items() if i["flags"] == "4"}
            return found if found == want else None
        try:
            zbxapi.wait_until(discovered, 60, 1, "items discovered for the two ports")
        except TimeoutError:
            rule = self.api.call("discoveryrule.get", {"output": ["key_", "state", "error"],
                                                       "hostids": [hostid]})
            found = {k for k, i in self.host_items(hostid).items() if i["flags"] == "4"}
            self.fail(f"discovered {sorted(found)}, want {sorted(want)}; rules {rule}")
        t_disc = time.time() - t0
        self.reload_cache()
        time.sleep(1)
        items = self.host_items(hostid)
        clock, ns, value = self.wait_master_after(items, time.time())
        doc = json.loads(value)
        port_items = {k: i for k, i in items.items() if k in want}
        bad, n = self.compare_with_doc(port_items, clock, ns, doc, None)
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        got = {k: int(v) for k, v in self.api.values_at(list(port_items.values()), clock, ns).items()}
        f = lambda port, field: got[f"sockets.listen[{port},{field}]"]
        self.assertEqual([f(p_full, x) for x in ("listeners", "backlog", "accept_queue", "accept_queue_pct")],
                         [1, backlog, backlog, 100])
        self.assertEqual([f(p_conn, x) for x in ("listeners", "accept_queue", "established", "close_wait", "total")],
                         [1, 0, 3, 2, 5])
        print(f"# ports {p_full} (queue full) and {p_conn}: 26 items discovered {t_disc:.1f}s after "
              f"host.create, values at {time.time() - t0:.1f}s", flush=True)

    def test_51_accept_queue_trigger_fires_and_resolves(self):
        """The discovered accept-queue trigger of the full port is a problem in Zabbix
        (problem.get) while the queue stays full; the context macro fires the CLOSE_WAIT trigger
        of the other port only. Two more clients (one more fits: the kernel queues up to
        backlog + 1; the SYNs of the last are dropped) make the kernel count listen overflows,
        and the per-second counter item fires the template's overflow trigger
        ({$SOCKETS.LISTEN_OVERFLOWS.MAX}=0 on this host). After the test accepts and closes the
        queued connections, the accept-queue problem is resolved."""
        p = type(self).ports
        if not p or "hostid" not in p:
            self.skipTest("no ports host")
        try:
            hostid = p["hostid"]
            triggers = {t["description"]: t["triggerid"] for t in self.api.call("trigger.get", {
                "output": ["description"], "hostids": [hostid], "filter": {"flags": 4}})}
            def tid(port, what):
                hit = [i for d, i in triggers.items() if d.startswith(f"Port {port}: ") and what in d]
                self.assertEqual(len(hit), 1, (port, what, triggers))
                return hit[0]
            aq_full, aq_conn = tid(p["p_full"], "accept queue"), tid(p["p_conn"], "accept queue")
            cw_full, cw_conn = tid(p["p_full"], "CLOSE_WAIT"), tid(p["p_conn"], "CLOSE_WAIT")
            # the other two exist (tid checks) and must not be problems: see the set below
            del aq_conn, cw_full

            def open_problems():
                return {pr["objectid"]: pr for pr in self.api.problems(hostid, triggers.values())
                        if pr["r_eventid"] == "0"}
            def fired():
                o = open_problems()
                return o if {aq_full, cw_conn} <= set(o) else None
            probs = zbxapi.wait_until(fired, 60, 1, "the accept-queue and CLOSE_WAIT problems")
            self.assertEqual(listen_queue(int(p["p_full"]))[0], p["backlog"], "queue still full")
            self.assertEqual(set(probs), {aq_full, cw_conn}, {k: v["name"] for k, v in probs.items()})
            since = int(probs[aq_full]["clock"]) - p["created"]
            print(f"# problem open while the queue is full (since {since:.0f}s after host.create): "
                  f"{probs[aq_full]['name']}", flush=True)
            print(f"# problem: {probs[cw_conn]['name']}", flush=True)

            overflow_tid = [t["triggerid"] for t in self.api.call("trigger.get", {
                "output": ["description"], "hostids": [hostid], "filter": {"flags": 0}})
                if t["description"].startswith("Sockets: listen queue overflows")]
            self.assertEqual(len(overflow_tid), 1)
            before = kernel_counter("TcpExt", "ListenOverflows")
            p["socks"].append(socket.create_connection(("127.0.0.1", int(p["p_full"])), timeout=5))
            late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            late.setblocking(False)
            late.connect_ex(("127.0.0.1", int(p["p_full"])))     # SYN dropped: queue is full
            try:
                zbxapi.wait_until(lambda: kernel_counter("TcpExt", "ListenOverflows") > before, 10,
                                  0.2, "the kernel to count a listen overflow")
                t2 = time.time()
                zbxapi.wait_until(lambda: [pr for pr in self.api.problems(hostid, overflow_tid)
                                           if pr["r_eventid"] == "0"], 40, 1,
                                  "the listen overflows problem")
                print(f"# listen overflows {before} -> {kernel_counter('TcpExt', 'ListenOverflows')}:"
                      f" problem {time.time() - t2:.1f}s later", flush=True)
            finally:
                late.close()                    # no more SYN retransmits into the drained queue

            full = p["full"]                    # drain: accept and close every queued connection
            full.settimeout(2)
            for _ in range(p["backlog"] + 3):
                if listen_queue(int(p["p_full"]))[0] == 0:
                    break
                full.accept()[0].close()
            self.assertEqual(listen_queue(int(p["p_full"]))[0], 0)
            t1 = time.time()

            def resolved():
                prs = [pr for pr in self.api.problems(hostid, [aq_full]) if pr["r_eventid"] != "0"]
                return prs or None
            zbxapi.wait_until(resolved, 60, 1, "the accept-queue problem to resolve")
            self.assertNotIn(aq_full, open_problems())
            print(f"# accept-queue problem resolved {time.time() - t1:.1f}s after the queue drained",
                  flush=True)
        finally:
            self.close_ports()


# ------------------------------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(description="end-to-end tests against a real Zabbix 6.0")
    ap.add_argument("--binary", default=os.environ.get("ZABBIX_SOCKETS_BIN",
                                                       os.path.join(ROOT, ".build", "debug", "zabbix-sockets")),
                    help="zabbix-sockets binary under test (default: $ZABBIX_SOCKETS_BIN or %(default)s)")
    ap.add_argument("--assume-up", action="store_true", help="do not run scripts/zabbix-env up")
    ap.add_argument("--down", action="store_true", help="run scripts/zabbix-env down at the end")
    ap.add_argument("--keep-agent", action="store_true", help="leave the test agent running")
    ap.add_argument("-k", dest="pattern", help="only tests whose name contains this")
    args = ap.parse_args()
    Config.binary = os.path.abspath(args.binary)
    Config.assume_up, Config.down, Config.keep_agent = args.assume_up, args.down, args.keep_agent
    if os.geteuid() != 0:
        print("e2e/run.py must run as root (zabbix-env, agent as user zabbix)", file=sys.stderr)
        return 2
    missing = [t for t in ("ss", "runuser") if shutil.which(t) is None]
    if missing:
        print(f"missing tools: {missing} (apt-get install iproute2 util-linux)", file=sys.stderr)
        return 2
    if not os.access(Config.binary, os.X_OK):
        print(f"binary not found or not executable: {Config.binary} (build it, or --binary)",
              file=sys.stderr)
        print("0 passed, 1 failed")
        return 1

    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{args.pattern}*"]
    suite = loader.loadTestsFromTestCase(E2E)
    # PSK and the push daemon first: E2E's teardown stops the environment under --down.
    suite = unittest.TestSuite([test_psk.load(loader, Config), test_daemon.load(loader, Config), suite])
    t0 = time.monotonic()
    class Result(unittest.TextTestResult):
        passed = 0
        durations = []

        def startTest(self, test):
            self._t0 = time.monotonic()
            super().startTest(test)

        def stopTest(self, test):
            super().stopTest(test)
            self.durations.append((test.id().rsplit(".", 1)[-1], time.monotonic() - self._t0))

        def addSuccess(self, test):
            super().addSuccess(test)
            self.passed += 1

    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=Result).run(suite)
    # errors include a failed setUpClass (e.g. Zabbix did not come up): counted as failed
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.passed
    print("# seconds per test: " + ", ".join(f"{name.split('_')[1]} {secs:.0f}"
                                          for name, secs in result.durations))
    print(f"# total {time.monotonic() - t0:.1f}s; logs under {Config.env.get('ZBX_STATE', '?')}")
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
