#!/usr/bin/env python3
"""sockpop: build a known, exact, steady TCP/UDP socket population in the current network
namespace, print what the kernel must report, hold it until told to stop.

Run it inside a namespace you own (it refuses the host's):

    ip netns add NS
    ip netns exec NS python3 tools/sockpop.py --established4 3 --listen6 2 ... <&PIPE

It sets sysctls in that namespace, brings lo up, installs nftables drop rules there (only when
SYN states are asked for), builds the sockets, checks the kernel's own count (a sock_diag dump)
against the plan, then prints ONE line on stdout:

    READY {"tcp":{...},"tcp4":{...},"tcp6":{...},"udp":{...},"udp4":{...},"udp6":{...},
           "steady_for_s":S,"workers":W,"build_s":B,"keep_time_wait":K}

The tcp*/udp* objects use the key names and order of `zabbix-sockets stats --format json`
(docs/stats-contract.md) and hold the exact count per state. It then holds until stdin reaches
end-of-file (keep a pipe open to it; /dev/null ends it at once), SIGTERM/SIGINT/SIGHUP, or
--max-hold seconds, and cleans up (closes every socket, removes its nftables table, restores the
sysctls). It exits non-zero with a message on stderr when the population cannot be reached.

What each option makes (FAM is 4 = 127.0.0.1 or 6 = ::1; IPv6 sockets are IPV6_V6ONLY):
  --listenFAM N        N LISTEN sockets (idle listeners).
  --establishedFAM N   N connected PAIRS: 2N ESTABLISHED sockets (client + accepted side).
  --time-waitFAM N     N TIME_WAIT sockets (the client closes first; the server end is gone).
  --close-waitFAM N    N CLOSE_WAIT sockets and their N FIN_WAIT2 peers (client shutdown(SHUT_WR),
                       both descriptors kept; clients bound to ports 5000+ outside the ephemeral
                       range so no later connection can reuse their port and reset the pair).
  --lone-close-waitFAM N  N CLOSE_WAIT sockets without a peer: the client is closed once in
                       FIN_WAIT2 and expires after net.ipv4.tcp_fin_timeout, set to 1 s in the
                       namespace (READY waits for that); lets CLOSE_WAIT and FIN_WAIT2 differ.
  --syn-sentFAM N      N SYN_SENT sockets (connect to a port whose SYNs are dropped on input).
  --syn-recvFAM N      N SYN_RECV request sockets AND N ESTABLISHED clients: the client's final
                       ACK is dropped on input, so the client is established and the server side
                       stays a request socket.
  --udp-boundFAM N     N UDP sockets bound to the loopback address (ss: UNCONN).
  --udp-connectedFAM N N UDP sockets bound and connect()ed (ss: ESTAB); connect sends nothing.
Helper listeners also count as LISTEN and are included in READY: one per family that has any
established/time-wait/close-wait sockets, and one per family with syn-recv.

UNIX sockets (in the namespace's own table; a filesystem path is created, and removed at the end):
  --unix-listen TYPE:NAME:BACKLOG[:WAITING[:ACCEPTED]]  a listener (TYPE stream or seqpacket;
                       NAME a path or @abstract), WAITING clients connected and never accepted
                       (non-blocking: the ones past the full queue fail and are closed), ACCEPTED
                       connections accepted (2 sockets each). Repeatable.
  --unix-pairs TYPE:N  N socketpair()s of TYPE stream, seqpacket or dgram (2N unnamed sockets).
  --unix-dgram N       N unbound, unconnected datagram sockets (ss: UNCONN).
  --unix-bulk N        (benchmarks) N more unnamed stream sockets as socketpairs, held by worker
                       processes of at most 19,000 descriptors each.
READY then also holds "unix": per type (stream, seqpacket, dgram) the count per state, and
"unix_listen": per NAME {"accept_queue", "backlog", "connections"} as the kernel reported them
(ss -xl's Recv-Q and Send-Q; the accepted ends).

--bulk N (benchmarks; excludes the options above): N sockets in total, about --bulk-time-wait
fraction (default 0.1) TIME_WAIT on IPv4, the rest ESTABLISHED pairs alternating IPv4/IPv6 per
worker, each worker with its own listener, plus a listener per 10,000 TIME_WAIT; one extra idle
listener when needed to make the total exact. Workers hold at most ~19,900 descriptors each
(RLIMIT_NOFILE hard limit here is 20,000): 500k sockets take 24 processes (23 + 1 for TIME_WAIT).

TIME WINDOW: Linux keeps a TIME_WAIT socket for 60 s (up to a few seconds more: timer wheel
granularity), never less. TIME_WAIT sockets are made last, and READY's "steady_for_s" says for
how many seconds after READY every count is still exact (60 s minus the build time of the TIME_WAIT
part minus 1 s margin; null when there is no TIME_WAIT: then the population holds until stopped,
SYN states for hours thanks to raised retry counts). Take counts within that window.
--keep-time-wait (benchmarks) re-creates expired TIME_WAIT sockets (it polls the namespace's
/proc/net/sockstat "tw" every 0.25 s): the TIME_WAIT count dips for about a second every ~60 s and
comes back; /proc/net/netstat TcpExt "TW" (TIME_WAIT sockets ever scheduled, counted when they
are made) grows at each refill, which tells a reader that one happened.
"""

import argparse
import ctypes
import errno
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import time

# Kernel TCP state numbers 1..11 and the contract's key names (include/net/tcp_states.h).
TCP_STATES = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
              "close", "close_wait", "last_ack", "listen", "closing"]
UDP_STATE_NAMES = {1: "established", 7: "unconn"}
UDP_KEYS = ["established", "unconn"]

FAMILIES = {4: (socket.AF_INET, "127.0.0.1"), 6: (socket.AF_INET6, "::1")}

# Port layout inside the namespace (ports are per-namespace, and v4/v6 are separate with V6ONLY).
SVC_PORT_BASE = 1000        # helper listeners: established / time-wait / close-wait; bulk workers
TW_PORT_BASE = 2000         # bulk: TIME_WAIT listeners, one per TW_PER_PORT
SYN_RECV_PORT = 3000        # its final ACKs are dropped on input
SYN_SENT_PORT = 3001        # no listener; SYNs to it are dropped on input
LISTEN_PORT_BASE = 4000     # --listenFAM: 4000..4999
CLOSE_WAIT_PORT_BASE = 5000 # clients of close-wait pairs: 5000..9999, below the ephemeral range
EPHEMERAL = (10000, 65535)
TW_PER_PORT = 10000         # keeps ephemeral port search cheap for each TIME_WAIT destination
MAX_LISTEN = 1000
MAX_CLOSE_WAIT = 5000

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300

TW_LIFETIME_S = 60.0        # TCP_TIMEWAIT_LEN, fixed in Linux


class Fail(Exception):
    """A population that cannot be reached: reported on stderr, exit 1."""


def log(msg):
    print("sockpop: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- kernel view (sock_diag dump)

def kernel_counts(timeout=60.0):
    """Count sockets per family and state with the same netlink dumps the tool under test uses,
    written independently here (no ss, no Swift), so READY is checked against the kernel."""
    out = {}
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(timeout)
        dumps = [("tcp4", socket.AF_INET, socket.IPPROTO_TCP), ("tcp6", socket.AF_INET6, socket.IPPROTO_TCP),
                 ("udp4", socket.AF_INET, socket.IPPROTO_UDP), ("udp6", socket.AF_INET6, socket.IPPROTO_UDP)]
        for seq, (key, fam, proto) in enumerate(dumps, 1):
            states = 0xFFF if proto == socket.IPPROTO_TCP else 0xFFFFFFFF
            req = struct.pack("=IHHII", 16 + 56, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
            req += struct.pack("=BBBBI", fam, proto, 0, 0, states) + bytes(48)
            nl.sendto(req, (0, 0))
            by_state = [0] * 256
            done = False
            while not done:
                if time.monotonic() > deadline:
                    raise Fail("sock_diag dump took longer than %.0f s" % timeout)
                data = nl.recv(1 << 20)
                off, n = 0, len(data)
                while off + 16 <= n:
                    length, typ = struct.unpack_from("=IH", data, off)
                    if length < 16:
                        raise Fail("malformed netlink message")
                    if typ == NLMSG_DONE:
                        done = True
                        break
                    if typ == NLMSG_ERROR:
                        err = struct.unpack_from("=i", data, off + 16)[0]
                        if err:
                            raise Fail("sock_diag dump %s: %s" % (key, os.strerror(-err)))
                    elif typ == SOCK_DIAG_BY_FAMILY:
                        by_state[data[off + 17]] += 1  # inet_diag_msg.idiag_state
                    off += (length + 3) & ~3
            if proto == socket.IPPROTO_TCP:
                c = {name: by_state[i + 1] for i, name in enumerate(TCP_STATES)}
                other = sum(by_state) - sum(c.values())
            else:
                c = {name: by_state[i] for i, name in UDP_STATE_NAMES.items()}
                other = sum(by_state) - sum(c.values())
            if other:
                c["other"] = other
            c["total"] = sum(by_state)
            out[key] = c
    return out


def empty_counts():
    return {"tcp4": dict.fromkeys(TCP_STATES, 0), "tcp6": dict.fromkeys(TCP_STATES, 0),
            "udp4": dict.fromkeys(UDP_KEYS, 0), "udp6": dict.fromkeys(UDP_KEYS, 0)}


def finish_counts(c):
    """Add totals and the tcp/udp sums, in the contract's key order."""
    out = {}
    for key in ("tcp4", "tcp6", "udp4", "udp6"):
        d = dict(c[key])
        d["total"] = sum(d.values())
        out[key] = d
    keys = TCP_STATES + ["total"]
    ukeys = UDP_KEYS + ["total"]
    return {"tcp": {k: out["tcp4"][k] + out["tcp6"][k] for k in keys}, "tcp4": out["tcp4"], "tcp6": out["tcp6"],
            "udp": {k: out["udp4"][k] + out["udp6"][k] for k in ukeys}, "udp4": out["udp4"], "udp6": out["udp6"]}


# ---------------------------------------------------------------- namespace set-up

SYSCTL_ROOT = "/proc/sys/"


def read_sysctl(name):
    with open(SYSCTL_ROOT + name.replace(".", "/")) as f:
        return f.read().strip()


def write_sysctl(name, value):
    with open(SYSCTL_ROOT + name.replace(".", "/"), "w") as f:
        f.write(str(value))


def read_sockstat_tw():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("tw") + 1])
    raise Fail("no TCP line in /proc/net/sockstat")


class Namespace:
    """Sysctls and nftables rules of the current namespace; undone by restore()."""

    NFT_TABLE = "sockpop"

    def __init__(self):
        self.saved = {}
        self.nft = False

    def check_not_host(self):
        # Our sysctls and drop rules must never land in the host's namespace. kthreadd (PID 2)
        # always lives in the initial one and, unlike PID 1 in some sandboxes, can be stat'ed.
        mine = os.stat("/proc/self/ns/net").st_ino
        for pid in (2, 1):
            try:
                if os.stat("/proc/%d/ns/net" % pid).st_ino == mine:
                    raise Fail("refusing to run in the host's network namespace; "
                               "use: ip netns exec NS python3 %s ..." % sys.argv[0])
            except (PermissionError, FileNotFoundError):
                continue
        # Only loopback traffic is allowed: a namespace with other interfaces is not ours.
        with open("/proc/net/dev") as f:
            ifaces = [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]
        if ifaces != ["lo"]:
            raise Fail("namespace has interfaces %s besides lo; use a fresh one (ip netns add)" % ifaces)

    def set(self, name, value, fallbacks=()):
        if name not in self.saved:
            self.saved[name] = read_sysctl(name)
        for v in (value,) + tuple(fallbacks):
            try:
                write_sysctl(name, v)
                return
            except OSError as e:
                last = e
        raise Fail("cannot set %s=%s: %s" % (name, value, last))

    def setup(self, tw_total, syn_total, need_nft, lone_close_wait=False):
        r = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=10)
        if r.returncode:
            raise Fail("ip link set lo up: " + r.stderr.strip())
        self.set("net.ipv4.ip_local_port_range", "%d %d" % EPHEMERAL)
        self.set("net.ipv4.tcp_tw_reuse", 0)  # new loopback connections must not recycle TIME_WAIT
        cur = int(read_sysctl("net.ipv4.tcp_max_tw_buckets"))
        self.set("net.ipv4.tcp_max_tw_buckets", max(cur, 2 * tw_total + 1024))
        # Half-open sockets must outlive any test: retransmits back off to 120 s, so hours.
        self.set("net.ipv4.tcp_syn_retries", 127, fallbacks=(63, 20))
        self.set("net.ipv4.tcp_synack_retries", 255, fallbacks=(127, 63, 20))
        # The SYN_RECV listener's backlog must hold twice its half-open count (else early drops).
        self.set("net.core.somaxconn", max(4096, 2 * syn_total + 1024))
        self.set("net.ipv4.tcp_max_syn_backlog", max(4096, 2 * syn_total + 1024))
        if lone_close_wait:
            self.set("net.ipv4.tcp_fin_timeout", 1)  # closed FIN_WAIT2 clients go within ~1 s
        if need_nft:
            self.install_nft()

    def install_nft(self):
        # Drop on INPUT (dropping on output made SYN_RECV vanish). Only this namespace's table.
        rules = ("add table inet {t}\ndelete table inet {t}\n"
                 "table inet {t} {{\n chain input {{\n  type filter hook input priority filter; policy accept;\n"
                 "  tcp dport {ss} drop\n"
                 "  tcp dport {sr} tcp flags & (syn | ack) == ack drop\n }}\n}}\n"
                 ).format(t=self.NFT_TABLE, ss=SYN_SENT_PORT, sr=SYN_RECV_PORT)
        try:
            r = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True, timeout=20)
        except FileNotFoundError:
            raise Fail("nft not found (apt-get install nftables): needed for SYN_SENT / SYN_RECV")
        if r.returncode:
            raise Fail("nft: " + r.stderr.strip())
        self.nft = True

    def restore(self):
        if self.nft:
            try:
                subprocess.run(["nft", "delete", "table", "inet", self.NFT_TABLE], capture_output=True, timeout=20)
            except (OSError, subprocess.SubprocessError) as e:
                log("cleanup: nft: %s" % e)
            self.nft = False
        for name, value in self.saved.items():
            try:
                write_sysctl(name, value)
            except OSError as e:
                log("cleanup: restore %s: %s" % (name, e))
        self.saved = {}


# ---------------------------------------------------------------- building sockets (in workers)

class Builder:
    """Runs inside one worker process; holds every socket it makes until the process ends."""

    def __init__(self, deadline):
        self.held = []
        self.listeners = {}
        self.deadline = deadline

    def tick(self, i):
        # Bounded in time: every loop checks the build deadline every 256 sockets.
        if i & 255 == 0 and time.monotonic() > self.deadline:
            raise Fail("build deadline passed")

    def sock(self, fam, kind=socket.SOCK_STREAM):
        af, _ = FAMILIES[fam]
        s = socket.socket(af, kind)
        if af == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return s

    def listener(self, fam, port, backlog=4096):
        key = (fam, port)
        if key not in self.listeners:
            s = self.sock(fam)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((FAMILIES[fam][1], port))
            s.listen(backlog)
            s.settimeout(10)  # accept() is bounded
            self.listeners[key] = s
            self.held.append(s)
        return self.listeners[key]

    def connect_pair(self, fam, lst, port, bind_port=None):
        c = self.sock(fam)
        if bind_port is not None:
            c.bind((FAMILIES[fam][1], bind_port))
        c.settimeout(10)
        c.connect((FAMILIES[fam][1], port))
        s, _ = lst.accept()
        return c, s

    def listen(self, fam, n):
        for i in range(n):
            self.tick(i)
            s = self.sock(fam)
            s.bind((FAMILIES[fam][1], LISTEN_PORT_BASE + i))
            s.listen(16)
            self.held.append(s)

    def established(self, fam, n, port):
        lst = self.listener(fam, port)
        for i in range(n):
            self.tick(i)
            self.held.extend(self.connect_pair(fam, lst, port))

    def close_wait(self, fam, n, port, first_port=CLOSE_WAIT_PORT_BASE, lone=False):
        lst = self.listener(fam, port)
        for i in range(n):
            self.tick(i)
            c, s = self.connect_pair(fam, lst, port, bind_port=first_port + i)
            c.shutdown(socket.SHUT_WR)  # client FIN_WAIT2 (once ACKed), server CLOSE_WAIT
            self.held.append(s)
            if not lone:
                self.held.append(c)
                continue
            # Close the client only in FIN_WAIT2: it then lingers tcp_fin_timeout and goes,
            # leaving the CLOSE_WAIT alone (its port is outside the ephemeral range: no reuse).
            for _ in range(1000):
                if c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == 5:  # TCP_FIN_WAIT2
                    break
                time.sleep(0.001)
            else:
                raise Fail("lone close-wait: client never reached FIN_WAIT2")
            c.close()

    def syn_sent(self, fam, n):
        for i in range(n):
            self.tick(i)
            c = self.sock(fam)
            c.setblocking(False)
            err = c.connect_ex((FAMILIES[fam][1], SYN_SENT_PORT))
            if err != errno.EINPROGRESS:
                raise Fail("syn_sent connect: %s" % os.strerror(err))
            self.held.append(c)

    def syn_recv(self, fam, n):
        self.listener(fam, SYN_RECV_PORT, backlog=2 * n + 64)  # never accepted from
        for i in range(n):
            self.tick(i)
            c = self.sock(fam)
            c.setblocking(False)
            err = c.connect_ex((FAMILIES[fam][1], SYN_RECV_PORT))
            if err not in (0, errno.EINPROGRESS):
                raise Fail("syn_recv connect: %s" % os.strerror(err))
            self.held.append(c)

    def udp(self, fam, n, connected):
        addr = FAMILIES[fam][1]
        for i in range(n):
            self.tick(i)
            s = self.sock(fam, socket.SOCK_DGRAM)
            s.bind((addr, 0))
            if connected:
                s.connect((addr, 9))  # UDP connect only sets the peer; nothing is sent
            self.held.append(s)

    def time_wait(self, fam, n, ports):
        """n TIME_WAIT sockets spread over `ports` (listeners made here if missing)."""
        lsts = [(p, self.listener(fam, p)) for p in ports]
        made, i, batch = 0, 0, 256
        while made < n:
            self.tick(0)
            port, lst = lsts[i % len(lsts)]
            i += 1
            k = min(batch, n - made)
            pairs = [self.connect_pair(fam, lst, port) for _ in range(k)]
            # The client closes first, so TIME_WAIT lands on the client end: its 4-tuple then
            # blocks connect() from picking that port again (tcp_tw_reuse=0). A server-side
            # TIME_WAIT does not, and a new SYN from the same port recycles it.
            for c, s in pairs:
                c.close()
            # The server closes only after it saw that FIN (else both close at once: CLOSING,
            # and two TIME_WAITs); its LAST_ACK ends when the client's ACK comes back.
            for c, s in pairs:
                s.settimeout(10)
                if s.recv(1) != b"":
                    raise Fail("time_wait: expected EOF on the accepted socket")
                s.close()
            made += k


def run_worker(spec, ctrl_fd, res_fd, parent_pid):
    """Body of a worker process. Never returns."""
    code = 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the controller, even on SIGKILL
        if os.getppid() != parent_pid:
            os._exit(1)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller decides on Ctrl-C
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        def reply(obj):
            os.write(res_fd, (json.dumps(obj) + "\n").encode())

        b = Builder(time.monotonic() + spec["build_timeout"])
        try:
            for job in spec["jobs"]:
                kind, fam, n = job["kind"], job["fam"], job["n"]
                if kind == "listen":
                    b.listen(fam, n)
                elif kind == "listener":
                    b.listener(fam, job["port"])
                elif kind == "established":
                    b.established(fam, n, job["port"])
                elif kind == "close_wait":
                    b.close_wait(fam, n, job["port"])
                elif kind == "lone_close_wait":
                    b.close_wait(fam, n, job["port"], job["first_port"], lone=True)
                elif kind == "syn_sent":
                    b.syn_sent(fam, n)
                elif kind == "syn_recv":
                    b.syn_recv(fam, n)
                elif kind in ("udp_bound", "udp_connected"):
                    b.udp(fam, n, kind == "udp_connected")
            reply({"built": True})
        except (Fail, OSError) as e:
            reply({"error": "worker %d: %s" % (spec["index"], e)})
            os._exit(1)

        # Hold. Commands come one per line; end-of-file on the control pipe means exit.
        tw_jobs = spec.get("tw_jobs", [])
        keep = spec.get("keep_time_wait", False)
        tw_target = sum(j["n"] for j in tw_jobs)
        refills = []  # (fam, ports, n) FIFO of what was made, oldest first
        buf = b""
        hold_deadline = time.monotonic() + spec["max_hold"]
        kept = False
        while time.monotonic() < hold_deadline:
            r, _, _ = select.select([ctrl_fd], [], [], 0.25 if kept else 5.0)
            if r:
                chunk = os.read(ctrl_fd, 4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line == b"time_wait":
                        b.deadline = time.monotonic() + spec["build_timeout"]
                        try:
                            for j in tw_jobs:
                                b.time_wait(j["fam"], j["n"], j["ports"])
                                refills.append([j["fam"], j["ports"], j["n"]])
                            reply({"built_time_wait": True})
                        except (Fail, OSError) as e:
                            reply({"error": "worker %d time_wait: %s" % (spec["index"], e)})
                            os._exit(1)
                        kept = keep
            if kept:
                # Re-make what expired, oldest first, so the count per family stays the plan's.
                deficit = tw_target - read_sockstat_tw()
                if deficit > 0:
                    b.deadline = time.monotonic() + spec["build_timeout"]
                    while deficit > 0 and refills:
                        fam, ports, n = refills[0]
                        k = min(n, deficit)
                        b.time_wait(fam, k, ports)
                        refills[0][2] -= k
                        if refills[0][2] == 0:
                            refills.pop(0)
                        refills.append([fam, ports, k])
                        deficit -= k
    except BaseException as e:  # never fall back into the controller's code after fork
        try:
            os.write(res_fd, (json.dumps({"error": "worker %d: %r" % (spec.get("index", -1), e)}) + "\n").encode())
        except OSError:
            pass
        code = 1
    os._exit(code)


# ---------------------------------------------------------------- plans

def plan_small(a):
    """One worker per family; expected counts follow the option help exactly."""
    exp = empty_counts()
    workers = []
    for fam in (4, 6):
        t, u = exp["tcp%d" % fam], exp["udp%d" % fam]
        g = lambda name: getattr(a, "%s%d" % (name, fam))
        n_listen, n_est, n_tw, n_cw = g("listen"), g("established"), g("time_wait"), g("close_wait")
        n_lcw = g("lone_close_wait")
        n_ss, n_sr, n_ub, n_uc = g("syn_sent"), g("syn_recv"), g("udp_bound"), g("udp_connected")
        if n_listen > MAX_LISTEN or n_cw + n_lcw > MAX_CLOSE_WAIT:
            raise Fail("at most %d listen and %d close-wait per family" % (MAX_LISTEN, MAX_CLOSE_WAIT))
        jobs = []
        if n_listen:
            jobs.append({"kind": "listen", "fam": fam, "n": n_listen})
        svc = SVC_PORT_BASE
        if n_est or n_tw or n_cw or n_lcw:
            jobs.append({"kind": "listener", "fam": fam, "n": 1, "port": svc})
            t["listen"] += 1
        if n_est:
            jobs.append({"kind": "established", "fam": fam, "n": n_est, "port": svc})
        if n_cw:
            jobs.append({"kind": "close_wait", "fam": fam, "n": n_cw, "port": svc})
        if n_lcw:
            jobs.append({"kind": "lone_close_wait", "fam": fam, "n": n_lcw, "port": svc,
                         "first_port": CLOSE_WAIT_PORT_BASE + n_cw})
        if n_ss:
            jobs.append({"kind": "syn_sent", "fam": fam, "n": n_ss})
        if n_sr:
            jobs.append({"kind": "syn_recv", "fam": fam, "n": n_sr})
            t["listen"] += 1
        if n_ub:
            jobs.append({"kind": "udp_bound", "fam": fam, "n": n_ub})
        if n_uc:
            jobs.append({"kind": "udp_connected", "fam": fam, "n": n_uc})
        t["listen"] += n_listen
        t["established"] += 2 * n_est + n_sr
        t["close_wait"] += n_cw + n_lcw
        t["fin_wait2"] += n_cw
        t["syn_sent"] += n_ss
        t["syn_recv"] += n_sr
        t["time_wait"] += n_tw
        u["unconn"] += n_ub
        u["established"] += n_uc
        fds = n_listen + 2 * n_est + 2 * n_cw + n_lcw + n_ss + n_sr + n_ub + n_uc + 3
        if fds > fd_budget():
            raise Fail("family %d needs %d descriptors, more than one process may hold (%d); use --bulk"
                       % (fam, fds, fd_budget()))
        tw_jobs = [{"fam": fam, "n": n_tw, "ports": [svc]}] if n_tw else []
        if jobs or tw_jobs:
            workers.append({"jobs": jobs, "tw_jobs": tw_jobs})
    return exp, workers


def fd_budget():
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 64  # stdio, pipes, netlink


def plan_bulk(n_total, tw_fraction):
    exp = empty_counts()
    t4, t6 = exp["tcp4"], exp["tcp6"]
    tw = int(round(n_total * tw_fraction))
    tw_ports = [TW_PORT_BASE + i for i in range(math.ceil(tw / TW_PER_PORT))]
    rest = n_total - tw - len(tw_ports)
    if rest < 3:
        raise Fail("--bulk %d is too small for its TIME_WAIT share" % n_total)
    per_worker = (fd_budget() - 1) // 2  # pairs per worker, besides its listener
    n_workers = math.ceil(rest / (2 * per_worker + 1))
    pairs, odd = divmod(rest - n_workers, 2)
    if len(tw_ports) + n_workers > TW_PORT_BASE - SVC_PORT_BASE:
        raise Fail("--bulk %d needs too many workers" % n_total)
    base, extra = divmod(pairs, n_workers)
    workers = []
    for i in range(n_workers):
        fam = 4 if i % 2 == 0 else 6
        k = base + (1 if i < extra else 0)
        port = SVC_PORT_BASE + i
        jobs = [{"kind": "listener", "fam": fam, "n": 1, "port": port},
                {"kind": "established", "fam": fam, "n": k, "port": port}]
        t = t4 if fam == 4 else t6
        t["listen"] += 1
        t["established"] += 2 * k
        if i == 0 and odd:
            jobs.append({"kind": "listen", "fam": fam, "n": 1})  # makes the total exact
            t["listen"] += 1
        workers.append({"jobs": jobs})
    if tw:
        # One TIME_WAIT worker, IPv4 only: its refills then keep per-family counts exact.
        workers.append({"jobs": [], "tw_jobs": [{"fam": 4, "n": tw, "ports": tw_ports}]})
        t4["time_wait"] += tw
        t4["listen"] += len(tw_ports)
    got = sum(sum(v.values()) for v in exp.values())
    if got != n_total:
        raise Fail("internal: bulk plan makes %d sockets, not %d" % (got, n_total))
    return exp, workers


# ---------------------------------------------------------------- controller

class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


UNIX_TYPES = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET, "dgram": socket.SOCK_DGRAM}
UNIX_FDS_PER_WORKER = 19000  # the hard RLIMIT_NOFILE here is 20,000


def unix_address(name):
    return "\0" + name[1:] if name.startswith("@") else name


class UnixPopulation:
    """The UNIX sockets asked for; held by this process (and bulk workers) until cleanup."""

    def __init__(self, args):
        self.args = args
        self.sockets = []
        self.paths = []
        self.bulk_pids = []
        self.bulk_pipes = []

    def wanted(self):
        a = self.args
        return bool(a.unix_listen or a.unix_pairs or a.unix_dgram or a.unix_bulk)

    def build(self):
        a = self.args
        want = {t: {} for t in UNIX_TYPES}
        listen = {}

        def add(kind, state, n=1):
            want[kind][state] = want[kind].get(state, 0) + n

        for spec in a.unix_listen:
            parts = spec.split(":")
            if len(parts) < 3 or parts[0] not in ("stream", "seqpacket"):
                raise Fail("--unix-listen %r: expected TYPE:NAME:BACKLOG[:WAITING[:ACCEPTED]]" % spec)
            kind, name, backlog = parts[0], parts[1], int(parts[2])
            waiting = int(parts[3]) if len(parts) > 3 else 0
            accepted = int(parts[4]) if len(parts) > 4 else 0
            server = socket.socket(socket.AF_UNIX, UNIX_TYPES[kind])
            if not name.startswith("@"):
                if os.path.exists(name):
                    raise Fail("--unix-listen: %s exists already" % name)
                self.paths.append(name)
            server.bind(unix_address(name))
            server.listen(backlog)
            self.sockets.append(server)
            add(kind, "listen")
            for _ in range(accepted):
                client = socket.socket(socket.AF_UNIX, UNIX_TYPES[kind])
                client.connect(unix_address(name))
                served, _ = server.accept()
                self.sockets += [client, served]
                add(kind, "established", 2)
            queued = 0
            for _ in range(waiting):
                client = socket.socket(socket.AF_UNIX, UNIX_TYPES[kind])
                client.setblocking(False)
                try:
                    client.connect(unix_address(name))
                except BlockingIOError:
                    client.close()  # the queue is full: the kernel refused this one
                    continue
                self.sockets.append(client)
                queued += 1
                add(kind, "established")
            listen[name] = {"accept_queue": queued, "backlog": backlog, "connections": accepted}
        for spec in a.unix_pairs:
            kind, _, n = spec.partition(":")
            if kind not in UNIX_TYPES or not n.isdigit():
                raise Fail("--unix-pairs %r: expected TYPE:N" % spec)
            for _ in range(int(n)):
                self.sockets += socket.socketpair(socket.AF_UNIX, UNIX_TYPES[kind])
            add(kind, "established", 2 * int(n))
        for _ in range(a.unix_dgram):
            self.sockets.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        if a.unix_dgram:
            add("dgram", "unconn", a.unix_dgram)
        if a.unix_bulk:
            self.build_bulk(a.unix_bulk)
            add("stream", "established", a.unix_bulk - a.unix_bulk % 2)
        for kind in want:
            want[kind]["total"] = sum(want[kind].values())
        return want, listen

    def build_bulk(self, n):
        pairs = n // 2
        per_worker = UNIX_FDS_PER_WORKER // 2
        while pairs > 0:
            share = min(pairs, per_worker)
            pairs -= share
            ready_r, ready_w = os.pipe()
            hold_r, hold_w = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                os.close(hold_w)
                for inherited in self.sockets:      # the parent's: they must not count against this worker
                    inherited.close()
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * share + 256), hard))
                held = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(share)]
                os.write(ready_w, b"1")
                select.select([hold_r], [], [], self.args.max_hold + 60)
                os._exit(0 if held else 1)
            os.close(ready_w)
            os.close(hold_r)
            self.bulk_pids.append(pid)
            self.bulk_pipes.append(hold_w)
            r, _, _ = select.select([ready_r], [], [], 60 + share / 1000.0)
            ok = r and os.read(ready_r, 1) == b"1"
            os.close(ready_r)
            if not ok:
                raise Fail("a --unix-bulk worker did not build its %d pairs" % share)

    def cleanup(self):
        for s in self.sockets:
            s.close()
        self.sockets = []
        for fd in self.bulk_pipes:
            os.close(fd)  # end-of-file: the worker exits
        for pid in self.bulk_pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self.bulk_pipes, self.bulk_pids = [], []
        for path in self.paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.paths = []


def unix_kernel_view(names):
    """`ss -xa` and `ss -xl` as this namespace's kernel shows them: per type and state, and the
    queue and backlog of the listeners in `names` (written here independently of zabbix-sockets)."""
    netids = {"u_str": "stream", "u_seq": "seqpacket", "u_dgr": "dgram"}
    states = {"ESTAB": "established", "LISTEN": "listen", "UNCONN": "unconn", "SYN-SENT": "syn_sent"}
    out = subprocess.run(["ss", "-Hxa"], capture_output=True, text=True, timeout=60, check=True).stdout
    got = {t: {} for t in UNIX_TYPES}
    listen = {}
    for line in out.splitlines():
        f = line.split()
        kind, state = netids.get(f[0], f[0]), states.get(f[1], f[1])
        got.setdefault(kind, {})
        got[kind][state] = got[kind].get(state, 0) + 1
        if f[4] in names:
            entry = listen.setdefault(f[4], {"accept_queue": 0, "backlog": 0, "connections": 0})
            if state == "listen":
                entry["accept_queue"] += int(f[2])
                entry["backlog"] += int(f[3])
            else:
                entry["connections"] += 1
    for kind in got:
        got[kind]["total"] = sum(got[kind].values())
    return got, listen


class Controller:
    def __init__(self, args):
        self.args = args
        self.ns = Namespace()
        self.workers = []  # dicts: pid, ctrl (write fd), res (read fd), buf
        self.unix = UnixPopulation(args)

    def spawn(self, spec):
        ctrl_r, ctrl_w = os.pipe()
        res_r, res_w = os.pipe()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(ctrl_w)
            os.close(res_r)
            for w in self.workers:  # siblings' pipes are not ours
                for fd in (w["ctrl"], w["res"]):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            run_worker(spec, ctrl_r, res_w, parent)
        os.close(ctrl_r)
        os.close(res_w)
        self.workers.append({"pid": pid, "ctrl": ctrl_w, "res": res_r, "buf": b"", "index": spec["index"]})

    def wait_replies(self, workers, key, timeout):
        """Wait until each worker in `workers` replied {key: true}; a reply with "error" fails."""
        pending = {w["res"]: w for w in workers}
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("workers %s did not finish within %.0f s"
                           % (sorted(w["index"] for w in pending.values()), timeout))
            r, _, _ = select.select(list(pending), [], [], min(left, 1.0))
            for fd in r:
                w = pending[fd]
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise Fail("worker %d exited while building" % w["index"])
                w["buf"] += chunk
                while b"\n" in w["buf"]:
                    line, w["buf"] = w["buf"].split(b"\n", 1)
                    msg = json.loads(line)
                    if "error" in msg:
                        raise Fail(msg["error"])
                    if msg.get(key):
                        pending.pop(fd, None)

    def run(self):
        a = self.args
        self.ns.check_not_host()
        if a.bulk:
            exp, specs = plan_bulk(a.bulk, a.bulk_time_wait_fraction)
        else:
            exp, specs = plan_small(a)
        want = finish_counts(exp)
        tw_total = want["tcp"]["time_wait"]
        syn_total = want["tcp"]["syn_sent"] + want["tcp"]["syn_recv"]
        n_total = want["tcp"]["total"] + want["udp"]["total"]
        build_timeout = a.build_timeout or (30 + n_total / 5000.0)

        before = kernel_counts()
        busy = {k: v["total"] for k, v in before.items() if v["total"]}
        if busy:
            raise Fail("namespace is not empty (%s): counts would not be exact; use a fresh one" % busy)
        lone = 0 if a.bulk else a.lone_close_wait4 + a.lone_close_wait6
        self.ns.setup(tw_total, syn_total, need_nft=syn_total > 0, lone_close_wait=lone > 0)

        t0 = time.monotonic()
        for i, spec in enumerate(specs):
            spec.update(index=i, build_timeout=build_timeout, max_hold=a.max_hold + build_timeout,
                        keep_time_wait=a.keep_time_wait)
            self.spawn(spec)
        self.wait_replies(self.workers, "built", build_timeout)
        # TIME_WAIT last: its 60 s clock starts here.
        tw_workers = [w for w, s in zip(self.workers, specs) if s.get("tw_jobs")]
        t_tw = time.monotonic()
        for w in tw_workers:
            os.write(w["ctrl"], b"time_wait\n")
        self.wait_replies(tw_workers, "built_time_wait", build_timeout)
        build_s = time.monotonic() - t0

        # Transitions (LAST_ACK -> CLOSE, FIN_WAIT1 -> FIN_WAIT2) finish in microseconds on
        # loopback; poll a bounded while for the kernel to agree with the plan.
        deadline = time.monotonic() + a.settle_timeout
        while True:
            got = kernel_counts()
            diff = compare(want, got)
            if not diff:
                break
            if time.monotonic() > deadline:
                raise Fail("population not reached after %.0f s: %s" % (a.settle_timeout, "; ".join(diff)))
            time.sleep(0.05)

        if self.unix.wanted():
            want_unix, listen = self.unix.build()
            deadline = time.monotonic() + a.settle_timeout
            while True:
                got_unix, got_listen = unix_kernel_view(set(listen))
                if got_unix == want_unix and got_listen == listen:
                    break
                if time.monotonic() > deadline:
                    raise Fail("UNIX population not reached: want %s %s, kernel has %s %s"
                               % (want_unix, listen, got_unix, got_listen))
                time.sleep(0.05)
            want["unix"], want["unix_listen"] = want_unix, listen

        now = time.monotonic()
        steady = None
        if tw_total:
            steady = round(max(0.0, t_tw + TW_LIFETIME_S - 1.0 - now), 1)
        ready = dict(want)
        ready.update(steady_for_s=steady, workers=len(self.workers), build_s=round(build_s, 2),
                     keep_time_wait=bool(a.keep_time_wait and tw_total))
        log("built %d sockets in %.2f s with %d worker(s)%s" % (
            n_total, build_s, len(self.workers),
            "" if steady is None else "; counts exact for %.1f s from now (TIME_WAIT)" % steady))
        print("READY " + json.dumps(ready, separators=(",", ":")), flush=True)
        self.hold()

    def hold(self):
        """Until stdin EOF, a signal, a worker's death, or --max-hold."""
        deadline = time.monotonic() + self.args.max_hold
        watch = {w["res"]: w for w in self.workers}
        while time.monotonic() < deadline:
            r, _, _ = select.select([0] + list(watch), [], [], 1.0)
            for fd in r:
                if fd == 0:
                    if not os.read(0, 4096):
                        log("stdin closed: cleaning up")
                        return
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise Fail("worker %d died: population lost" % watch[fd]["index"])
                for line in chunk.decode(errors="replace").splitlines():
                    if "error" in line:
                        raise Fail(json.loads(line)["error"])
        log("--max-hold %.0f s reached: cleaning up" % self.args.max_hold)

    def cleanup(self):
        for w in self.workers:
            try:
                os.close(w["ctrl"])  # end-of-file: the worker exits and its sockets close
            except OSError:
                pass
        deadline = time.monotonic() + 20
        alive = {w["pid"] for w in self.workers}
        while alive and time.monotonic() < deadline:
            for pid in list(alive):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        alive.discard(pid)
                except ChildProcessError:
                    alive.discard(pid)
            if alive:
                time.sleep(0.05)
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for w in self.workers:
            try:
                os.close(w["res"])
            except OSError:
                pass
        self.workers = []
        self.unix.cleanup()
        self.ns.restore()


def compare(want, got):
    diff = []
    for key in ("tcp4", "tcp6", "udp4", "udp6"):
        for state in set(want[key]) | set(got[key]):
            w, g = want[key].get(state, 0), got[key].get(state, 0)
            if w != g:
                diff.append("%s %s: want %d, kernel has %d" % (key, state, w, g))
    return sorted(diff)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See the module docstring (head -60 %s) for the socket mapping." % sys.argv[0])
    for name, help_ in (("listen", "LISTEN sockets"), ("established", "connected pairs (2 sockets each)"),
                        ("time-wait", "TIME_WAIT sockets"), ("close-wait", "CLOSE_WAIT + FIN_WAIT2 pairs"),
                        ("lone-close-wait", "CLOSE_WAIT sockets whose peer is gone"),
                        ("syn-sent", "SYN_SENT sockets"), ("syn-recv", "SYN_RECV + ESTABLISHED client"),
                        ("udp-bound", "UDP UNCONN sockets"), ("udp-connected", "UDP ESTAB sockets")):
        for fam in (4, 6):
            p.add_argument("--%s%d" % (name, fam), type=int, default=0, metavar="N",
                           help="%s on %s" % (help_, FAMILIES[fam][1]))
    p.add_argument("--unix-listen", action="append", default=[], metavar="TYPE:NAME:BACKLOG[:WAITING[:ACCEPTED]]")
    p.add_argument("--unix-pairs", action="append", default=[], metavar="TYPE:N")
    p.add_argument("--unix-dgram", type=int, default=0, metavar="N")
    p.add_argument("--unix-bulk", type=int, default=0, metavar="N")
    p.add_argument("--bulk", type=int, default=0, metavar="N",
                   help="benchmark population of exactly N sockets (ESTABLISHED pairs + TIME_WAIT)")
    p.add_argument("--bulk-time-wait-fraction", type=float, default=0.1, metavar="F")
    p.add_argument("--keep-time-wait", action="store_true", help="re-create TIME_WAIT sockets as they expire")
    p.add_argument("--max-hold", type=float, default=3600.0, metavar="S", help="stop after S seconds (default 3600)")
    p.add_argument("--build-timeout", type=float, default=0.0, metavar="S",
                   help="bound on building (default 30 s + 1 s per 5000 sockets)")
    p.add_argument("--settle-timeout", type=float, default=10.0, metavar="S",
                   help="bound on waiting for the kernel to agree with the plan (default 10)")
    a = p.parse_args(argv)
    per_state = [v for k, v in vars(a).items() if k[-1] in "46"]
    if any(v < 0 for v in per_state) or a.bulk < 0:
        p.error("counts must be >= 0")
    if a.bulk and any(per_state):
        p.error("--bulk excludes the per-state options")
    if a.keep_time_wait and not a.bulk:
        p.error("--keep-time-wait needs --bulk (it refills from one IPv4 worker)")
    if not (0.0 <= a.bulk_time_wait_fraction < 1.0):
        p.error("--bulk-time-wait-fraction must be in [0, 1)")
    return a


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        log("error: must run as root (sysctls, nftables)")
        return 1
    c = Controller(a)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    code = 0
    try:
        c.run()
    except Stop as e:
        log("%s: cleaning up" % e)
    except Fail as e:
        log("error: %s" % e)
        code = 1
    except OSError as e:
        log("error: %s" % e)
        code = 1
    finally:
        # A second signal must not interrupt the cleanup itself.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        c.cleanup()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
