#!/usr/bin/env python3
"""sockctl: make TCP sockets on command in the current network namespace and hold them, for
tests that need listeners and connections placed port by port (accept queues, per-port states,
ephemeral ports). tools/sockpop.py builds whole populations with a fixed layout; this one takes
orders.

Run it inside a namespace you own (it refuses the host's and any namespace with interfaces other
than lo, and brings lo up):

    ip netns add NS
    ip netns exec NS python3 tools/sockctl.py <&PIPE >OUT

It prints "READY" and then reads one JSON command per line on stdin and answers each with one
line on stdout: "OK {...}" or "ERR message" (the command had no lasting effect beyond what the
message says). End-of-file on stdin, SIGTERM/SIGINT/SIGHUP or --max-hold seconds close every
socket and end it (the nftables table, if any, goes with the namespace).

Commands (ADDR is "127.0.0.1", "::1", "0.0.0.0" or "::"; ports are TCP):

  {"op":"listen","addr":ADDR,"port":P,"backlog":B,"v6only":true,"reuseport":false}
      A LISTEN socket. "v6only" (IPv6 only; default true) false makes a dual-stack listener.
      "reuseport" sets SO_REUSEPORT (for several listeners on one port). Never accepted from
      unless a connect command below needs it.
  {"op":"connect","addr":ADDR,"port":P,"n":N,"mode":MODE,"sport":S}
      N connections from a client socket of ADDR's family to ADDR:P. MODE:
        established       client and server ESTABLISHED (the server end is accepted)
        close_wait        server CLOSE_WAIT, client FIN_WAIT2 (client shutdown(SHUT_WR))
        fin_wait2         server FIN_WAIT2, client CLOSE_WAIT (server shutdown(SHUT_WR))
        time_wait         server TIME_WAIT (the server closes first; the client end is gone)
        client_time_wait  client TIME_WAIT (the client closes first; the server end is gone)
        pending           non-blocking connect, nothing waited for, nothing accepted
                          (accept-queue overflows: clients beyond the queue stay SYN_SENT)
        handshake         connect completes, nothing accepted: the connection waits in the
                          accept queue, or, when the final ACK is dropped (drop_final_ack),
                          the server side stays SYN_RECV while the client is ESTABLISHED
      "sport" (optional): bind client i to local port S+i (for drop_final_ack). Accepting
      takes the connection from whichever listener on P the kernel gave it to (SO_REUSEPORT,
      separate IPv4 and IPv6 listeners), matched by the client's address and port.
  {"op":"udp","addr":ADDR,"n":N,"connected":false}
      N UDP sockets bound to ADDR (ss: UNCONN), or also connect()ed to ADDR:9 (ss: ESTAB;
      connect sends nothing).
  {"op":"drop_final_ack","sports":"7000-7099"}
      nftables in this namespace: drop pure ACKs (and FIN+ACK) from those client ports on
      input, so their handshakes never complete on the server side (SYN_RECV).
  {"op":"drop_syn","port":P}
      nftables in this namespace: drop every packet to port P on input (clients stay SYN_SENT).
  {"op":"count"}
      {"held": number of sockets this process holds}
  {"op":"fork"}
      {"pid": P}: a child process that holds copies of every socket held now (as a pre-fork
      server's workers inherit theirs) and does nothing else; it ends with this process.

Every wait is bounded (--timeout seconds per socket operation, default 10).
"""

import argparse
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

NFT_TABLE = "sockctl"


class Fail(Exception):
    pass


def log(msg):
    print("sockctl: " + msg, file=sys.stderr, flush=True)


def check_not_host():
    mine = os.stat("/proc/self/ns/net").st_ino
    for pid in (2, 1):
        try:
            if os.stat("/proc/%d/ns/net" % pid).st_ino == mine:
                raise Fail("refusing to run in the host's network namespace; use: ip netns exec NS ...")
        except (PermissionError, FileNotFoundError):
            continue
    with open("/proc/net/dev") as f:
        ifaces = [line.split(":", 1)[0].strip() for line in f.readlines()[2:]]
    if ifaces != ["lo"]:
        raise Fail("namespace has interfaces %s besides lo; use a fresh one (ip netns add)" % ifaces)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class Holder:
    def __init__(self, timeout, max_hold):
        self.timeout = timeout
        self.max_hold = max_hold
        self.children = []
        self.held = []
        self.listeners = {}  # port -> [socket]
        self.nft_rules = []

    # -------------------------------------------------------------- commands

    def listen(self, c):
        addr, port = c["addr"], int(c["port"])
        fam = family_of(addr)
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if c.get("v6only", True) else 0)
            if c.get("reuseport"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind((addr, port))
            s.listen(int(c.get("backlog", 128)))
        except OSError:
            s.close()
            raise
        s.setblocking(False)
        self.held.append(s)
        self.listeners.setdefault(port, []).append(s)
        return {"port": s.getsockname()[1]}

    def connect(self, c):
        addr, port, n, mode = c["addr"], int(c["port"]), int(c["n"]), c["mode"]
        if n < 0 or n > 10000:
            raise Fail("n must be 0..10000")
        if mode not in ("established", "close_wait", "fin_wait2", "time_wait", "client_time_wait",
                        "pending", "handshake"):
            raise Fail("unknown mode %r" % mode)
        sport = c.get("sport")
        made = 0
        for i in range(n):
            client = socket.socket(family_of(addr), socket.SOCK_STREAM)
            if family_of(addr) == socket.AF_INET6:
                client.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                if sport is not None:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    client.bind((addr if addr not in ("0.0.0.0", "::") else "", int(sport) + i))
                client.setblocking(False)
                err = client.connect_ex((addr, port))
                if err not in (0, errno.EINPROGRESS):
                    raise Fail("connect %s:%d: %s" % (addr, port, os.strerror(err)))
                if mode == "pending":
                    self.held.append(client)
                    made += 1
                    continue
                self.wait_connected(client, addr, port)
                if mode == "handshake":
                    self.held.append(client)
                    made += 1
                    continue
                server = self.accept_for(client, port)
                self.finish(client, server, mode)
                made += 1
            except BaseException:
                if client not in self.held:
                    client.close()
                raise
        return {"made": made}

    def wait_connected(self, client, addr, port):
        _, w, _ = select.select([], [client], [], self.timeout)
        if not w:
            raise Fail("connect %s:%d: not connected within %.0f s" % (addr, port, self.timeout))
        err = client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise Fail("connect %s:%d: %s" % (addr, port, os.strerror(err)))

    def accept_for(self, client, port):
        """The accepted end of `client`, from whichever listener on `port` got it."""
        lsts = self.listeners.get(port)
        if not lsts:
            raise Fail("no listener of ours on port %d to accept from" % port)
        want = client.getsockname()[:2]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select(lsts, [], [], max(0.0, deadline - time.monotonic()))
            for lst in r:
                try:
                    server, peer = lst.accept()
                except BlockingIOError:
                    continue
                server.setblocking(True)
                server.settimeout(self.timeout)
                if normalize(peer[:2]) == normalize(want):
                    return server
                # Someone else's connection (a pending one): keep it, the state is unchanged.
                self.held.append(server)
        raise Fail("port %d: the connection from %s was not accepted within %.0f s" % (port, want, self.timeout))

    def finish(self, client, server, mode):
        client.setblocking(True)
        client.settimeout(self.timeout)
        if mode == "established":
            self.held += [client, server]
        elif mode == "close_wait":
            client.shutdown(socket.SHUT_WR)
            expect_eof(server)
            self.held += [client, server]
        elif mode == "fin_wait2":
            server.shutdown(socket.SHUT_WR)
            expect_eof(client)
            self.held += [client, server]
        elif mode == "time_wait":
            server.close()
            expect_eof(client)
            client.close()
        elif mode == "client_time_wait":
            client.close()
            expect_eof(server)
            server.close()

    def udp(self, c):
        addr, n = c["addr"], int(c["n"])
        if n < 0 or n > 10000:
            raise Fail("n must be 0..10000")
        for _ in range(n):
            s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
            try:
                if family_of(addr) == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((addr, 0))
                if c.get("connected"):
                    s.connect((addr, 9))
            except OSError:
                s.close()
                raise
            self.held.append(s)
        return {"made": n}

    def drop_final_ack(self, c):
        sports = str(c["sports"])
        if not all(part.isdigit() for part in sports.split("-")) or sports.count("-") > 1:
            raise Fail("sports must be PORT or LOW-HIGH")
        self.nft("tcp sport %s tcp flags & (syn | ack) == ack drop" % sports)
        return {}

    def drop_syn(self, c):
        self.nft("tcp dport %d drop" % int(c["port"]))
        return {}

    def nft(self, rule):
        self.nft_rules.append(rule)
        body = "\n".join("  " + r for r in self.nft_rules)
        script = ("add table inet {t}\ndelete table inet {t}\n"
                  "table inet {t} {{\n chain input {{\n  type filter hook input priority filter; policy accept;\n"
                  "{body}\n }}\n}}\n").format(t=NFT_TABLE, body=body)
        try:
            r = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=20)
        except FileNotFoundError:
            self.nft_rules.pop()
            raise Fail("nft not found (apt-get install nftables)")
        if r.returncode:
            self.nft_rules.pop()
            raise Fail("nft: " + r.stderr.strip())

    def fork(self, c):
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            # The child: no stdin or stdout of its own; it waits (bounded) for its parent to go.
            try:
                end = time.monotonic() + self.max_hold
                while os.getppid() == parent and time.monotonic() < end:
                    time.sleep(0.2)
            finally:
                os._exit(0)
        self.children.append(pid)
        return {"pid": pid}

    def close_all(self):
        for s in self.held:
            try:
                s.close()
            except OSError:
                pass
        self.held = []
        self.listeners = {}
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        self.children = []


def normalize(addr_port):
    host, port = addr_port
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, port


def expect_eof(s):
    if s.recv(1) != b"":
        raise Fail("expected end-of-file")


class Stop(Exception):
    pass


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-hold", type=float, default=900.0, metavar="S", help="stop after S seconds (default 900)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="bound on each wait (default 10)")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        log("error: must run as root (ip link, nftables)")
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    h = Holder(a.timeout, a.max_hold)
    try:
        check_not_host()
        r = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=10)
        if r.returncode:
            raise Fail("ip link set lo up: " + r.stderr.strip())
        print("READY", flush=True)
        deadline = time.monotonic() + a.max_hold
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                log("--max-hold %.0f s reached: closing" % a.max_hold)
                return 0
            r, _, _ = select.select([0], [], [], min(left, 1.0))
            if not r:
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return 0
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    c = json.loads(line)
                    op = getattr(h, c["op"]) if c.get("op") in (
                        "listen", "connect", "udp", "drop_final_ack", "drop_syn", "fork") else None
                    if c.get("op") == "count":
                        reply = {"held": len(h.held)}
                    elif op is None:
                        raise Fail("unknown op %r" % c.get("op"))
                    else:
                        reply = op(c)
                    print("OK " + json.dumps(reply), flush=True)
                except (Fail, OSError, KeyError, ValueError, TypeError) as e:
                    print("ERR %s" % (e if isinstance(e, Fail) else repr(e)), flush=True)
    except Stop as e:
        log("%s: closing" % e)
        return 0
    except Fail as e:
        log("error: %s" % e)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        h.close_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
