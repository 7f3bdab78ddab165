#!/usr/bin/env python3
"""`zabbix-sockets serve` end to end: the real Zabbix 6.0 server polls it as it polls an agent.

    python3 e2e/test_serve.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]

  --binary     the zabbix-sockets under test (default $ZABBIX_SOCKETS_BIN, else .build/debug/)
  --assume-up  do not run scripts/zabbix-env up (it is idempotent, so this only saves seconds)
  --down       scripts/zabbix-env down at the end (stops everything, removes the state)
  -k PATTERN   only tests whose name contains PATTERN

What it proves, with `serve` running as user zabbix (no capabilities) on a free port of 127.0.0.1,
from an agent config (Server=127.0.0.1, TLSAccept=unencrypted,psk):
  - a host whose agent interface is that endpoint, linked to "Linux sockets by Zabbix agent"
    (templates/zabbix-sockets-agent.yaml, imported here), turns available (interface green), its
    master item gets the JSON, every TCP and UDP item gets the value the master's JSON holds at
    the same moment, and no item of the template turns unsupported;
  - a second host on the same endpoint that speaks only TLS-PSK (tls_connect=2): the server's
    GnuTLS reaches serve's PSK side, the host turns available and gets values;
  - `zabbix_get` from the host's address sees what the server sees (agent.ping, agent.hostname);
  - SIGTERM stops serve within a second.
The last line printed is "N passed, N failed"; exit 1 on any failure. Standard library and
e2e/zbxapi.py only; every wait is bounded by time and count; all traffic stays on 127.0.0.1.
"""
import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import zbxapi  # noqa: E402

AGENT_TEMPLATE = "Linux sockets by Zabbix agent"
TEMPLATE_FILE = os.path.join(ROOT, "templates", "zabbix-sockets-agent.yaml")
HOST_GROUP = "zabbix-sockets e2e"
PLAIN_HOST = "zabbix-sockets-e2e-serve"
PSK_HOST = "zabbix-sockets-e2e-serve-psk"
IDENTITY = "zabbix-sockets e2e serve PSK"
MASTER_KEY = "sockets.stats"
POLL_INTERVAL = "5s"            # host macro {$SOCKETS.INTERVAL}
TCP_STATES = ["established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2", "time_wait",
              "close", "close_wait", "last_ack", "listen", "closing", "total"]
UDP_STATES = ["established", "unconn", "total"]
SERVE_USER = "zabbix"           # Debian's agent user: unprivileged, exists with the packages


class Config:
    binary = None
    assume_up = False
    down = False
    env = {}


def zabbix_env_settings():
    out = zbxapi.zabbix_env("env", timeout=30)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def free_loopback_port(first=10200, last=10299):
    """A TCP port on 127.0.0.1 that nothing uses now (below 32768: ListenPort's range)."""
    for port in range(first, last + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{last} on 127.0.0.1")


class Serve:
    """`zabbix-sockets serve` as user zabbix, its files under $ZBX_STATE/serve (the binary is
    copied there when user zabbix cannot run it where it was built, e.g. under /root)."""

    def __init__(self, state_dir, binary, port, psk_hex):
        self.dir = os.path.join(state_dir, "serve")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        user = pwd.getpwnam(SERVE_USER)
        self.binary = os.path.join(self.dir, "zabbix-sockets")
        shutil.copy2(binary, self.binary)
        os.chmod(self.binary, 0o755)
        self.psk = zbxapi.write_private(self.dir, "serve.psk", psk_hex + "\n")
        os.chown(self.psk, user.pw_uid, user.pw_gid)
        self.config = os.path.join(self.dir, "agent.conf")
        with open(self.config, "w") as f:
            f.write(f"Server=127.0.0.1\nListenIP=127.0.0.1\nListenPort={port}\nHostname={PLAIN_HOST}\n"
                    f"Timeout=10\nTLSAccept=unencrypted,psk\nTLSPSKIdentity={IDENTITY}\nTLSPSKFile={self.psk}\n")
        os.chmod(self.config, 0o644)
        self.log = os.path.join(self.dir, "serve.log")
        self.port = port
        self.process = None

    def start(self, timeout=30):
        log = open(self.log, "w")
        self.process = subprocess.Popen(
            # setpriv execs in place: the pid is serve's, and SIGTERM reaches it directly.
            ["setpriv", f"--reuid={SERVE_USER}", f"--regid={SERVE_USER}", "--clear-groups", "--",
             self.binary, "serve", "-c", self.config],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        zbxapi.wait_until(lambda: "listening on" in self.log_text() or self.process.poll() is not None,
                          timeout, 0.1, "serve to listen")
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited {self.process.returncode}: {self.log_text()}")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self, timeout=10):
        """SIGTERM; returns the seconds it took to exit (None if it had to be killed)."""
        if self.process is None or self.process.poll() is not None:
            return None
        t0 = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return None


def zabbix_get(key, port, extra=(), timeout=15):
    return subprocess.run(["zabbix_get", "-s", "127.0.0.1", "-p", str(port), "-k", key, *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)


class ServeTests(unittest.TestCase):
    """Two hosts polled through one `serve`; tests run in name order and build on each other."""

    api = None
    serve = None
    psk_hex = None
    hosts = {}          # host name -> hostid

    @classmethod
    def setUpClass(cls):
        cls.api = zbxapi.ZabbixAPI(Config.env["ZBX_API_URL"])
        zbxapi.wait_until(cls.api.version, 30, 1, "API")
        cls.api.login()
        cls.psk_hex = secrets.token_hex(32)

    @classmethod
    def tearDownClass(cls):
        if cls.serve:
            cls.serve.stop()
        for host in (PLAIN_HOST, PSK_HOST):
            try:
                cls.api.delete_host(host)
            except Exception as exc:        # keep tearing down; the report shows the error
                print(f"# cannot delete host {host}: {exc}", flush=True)
        if cls.api:
            try:
                cls.api.logout()
            except Exception:
                pass

    # ---------------------------------------------------------------- helpers
    def interface(self, hostid):
        rows = self.api.call("hostinterface.get", {"output": ["available", "error"], "hostids": [hostid]})
        return rows[0] if rows else {}

    def template_items(self, hostid):
        return {i["key_"]: i for i in self.api.items(hostid) if i["flags"] == "0"}

    def wait_available_with_values(self, hostid, what, timeout=120):
        def ready():
            items = self.template_items(hostid)
            master = items.get(MASTER_KEY)
            if self.interface(hostid).get("available") == "1" and master and master["lastclock"] != "0":
                return items
            return None
        return zbxapi.wait_until(ready, timeout, 1, what)

    # ---------------------------------------------------------------- tests
    def test_01_serve_answers_zabbix_get(self):
        self.api.import_file(TEMPLATE_FILE)
        self.assertIsNotNone(self.api.template_id(AGENT_TEMPLATE))
        port = free_loopback_port()
        type(self).serve = Serve(Config.env["ZBX_STATE"], Config.binary, port, self.psk_hex)
        self.serve.start()
        self.assertEqual(zabbix_get("agent.ping", port).stdout, "1\n")
        self.assertEqual(zabbix_get("agent.hostname", port).stdout, PLAIN_HOST + "\n")
        tls = ["--tls-connect", "psk", "--tls-psk-identity", IDENTITY, "--tls-psk-file", self.serve.psk]
        doc = json.loads(zabbix_get(MASTER_KEY, port, tls).stdout)
        self.assertEqual(set(doc["tcp"]), set(TCP_STATES))
        with open(f"/proc/{self.serve.process.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        uid = pwd.getpwnam(SERVE_USER).pw_uid
        self.assertEqual(status["Uid"].split()[:2], [str(uid), str(uid)], "serve runs as user zabbix")
        self.assertEqual(int(status["CapEff"].strip(), 16), 0, "with no capabilities")

    def test_02_server_polls_and_items_fill_in(self):
        if self.serve is None:
            self.skipTest("serve not started")
        t0 = time.time()
        hostid = self.api.create_host(PLAIN_HOST, HOST_GROUP, AGENT_TEMPLATE, agent_port=self.serve.port,
                                      macros={"{$SOCKETS.INTERVAL}": POLL_INTERVAL})
        self.hosts[PLAIN_HOST] = hostid
        zbxapi.wait_config_sync(Config.env["ZBX_SERVER_CONF"], lambda: self.template_items(hostid), 60,
                                "the server to know the host")
        items = self.wait_available_with_values(hostid, "the endpoint's host to turn available with values")
        print(f"# {PLAIN_HOST}: available with a first value {time.time() - t0:.1f}s after host.create", flush=True)
        master = items[MASTER_KEY]
        per_state = {f"sockets.tcp[{s}]" for s in TCP_STATES} | {f"sockets.udp[{s}]" for s in UDP_STATES}
        missing = sorted(per_state - set(items))
        self.assertEqual(missing, [], "template items")

        # The first poll that reached the dependent items: all of them store its values (later
        # polls store only changes). Usually the host's first value; but the server's first value
        # for a new host may reach the master item alone, and then the next poll is that one.
        def first_poll_with_dependents():
            for clock, ns, value in sorted(self.api.history(master, time_from=int(t0) - 1, limit=10)):
                doc = json.loads(value)
                wanted = {f"sockets.tcp[{s}]": doc["tcp"][s] for s in TCP_STATES}
                wanted.update({f"sockets.udp[{s}]": doc["udp"][s] for s in UDP_STATES})
                got = self.api.values_at([items[k] for k in wanted], clock, ns)
                if len(got) == len(wanted):
                    return clock, wanted, got
            return None
        clock, wanted, got = zbxapi.wait_until(first_poll_with_dependents, 60, 1,
                                               "the dependent items of one poll")
        for key, want in wanted.items():
            self.assertEqual(int(float(got[key])), want, key)

        # Every dependent item has seen one master value once a second one is stored.
        zbxapi.wait_until(lambda: len(self.api.history(master, time_from=clock, limit=2)) >= 2, 60, 1,
                          "a second poll")
        states = {k: (i["state"], i["error"]) for k, i in self.template_items(hostid).items()}
        unsupported = {k: e for k, (s, e) in states.items() if s != "0"}
        self.assertEqual(unsupported, {}, "no template item is unsupported")
        filled = sum(1 for i in self.template_items(hostid).values() if i["lastclock"] != "0")
        print(f"# {PLAIN_HOST}: {filled} of {len(states)} template items have values, none unsupported", flush=True)

    def test_03_server_polls_over_tls_psk(self):
        if self.serve is None:
            self.skipTest("serve not started")
        t0 = time.time()
        groupid = self.api.ensure_hostgroup(HOST_GROUP)
        self.api.delete_host(PSK_HOST)
        hostid = self.api.call("host.create", {
            "host": PSK_HOST, "groups": [{"groupid": groupid}],
            "templates": [{"templateid": self.api.template_id(AGENT_TEMPLATE)}],
            "interfaces": [{"type": 1, "main": 1, "useip": 1, "ip": "127.0.0.1", "dns": "",
                            "port": str(self.serve.port)}],
            "macros": [{"macro": "{$SOCKETS.INTERVAL}", "value": POLL_INTERVAL}],
            "tls_connect": 2, "tls_accept": 2, "tls_psk_identity": IDENTITY, "tls_psk": self.psk_hex})["hostids"][0]
        self.hosts[PSK_HOST] = hostid
        zbxapi.wait_config_sync(Config.env["ZBX_SERVER_CONF"], lambda: self.template_items(hostid), 60,
                                "the server to know the PSK host")
        items = self.wait_available_with_values(hostid, "the PSK host to turn available with values")
        doc = json.loads(items[MASTER_KEY]["lastvalue"])
        self.assertIn("tcp", doc)
        print(f"# {PSK_HOST}: available over TLS-PSK {time.time() - t0:.1f}s after host.create", flush=True)
        self.assertNotIn("TLS handshake failed", self.serve.log_text())

    def test_04_sigterm_stops_within_a_second(self):
        if self.serve is None:
            self.skipTest("serve not started")
        seconds = self.serve.stop()
        self.assertIsNotNone(seconds, "serve did not stop on SIGTERM")
        self.assertLess(seconds, 1.0)
        self.assertIn("stopped", self.serve.log_text())
        print(f"# serve stopped {seconds * 1000:.0f} ms after SIGTERM", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="serve end to end against a real Zabbix 6.0")
    ap.add_argument("--binary", default=os.environ.get("ZABBIX_SOCKETS_BIN",
                                                       os.path.join(ROOT, ".build", "debug", "zabbix-sockets")))
    ap.add_argument("--assume-up", action="store_true")
    ap.add_argument("--down", action="store_true")
    ap.add_argument("-k", dest="pattern")
    args = ap.parse_args(argv)
    Config.binary = os.path.abspath(args.binary)
    if os.geteuid() != 0:
        print("e2e/test_serve.py must run as root (zabbix-env, serve as user zabbix)", file=sys.stderr)
        return 2
    missing = [t for t in ("zabbix_get", "setpriv") if shutil.which(t) is None]
    if missing:
        print(f"missing tools: {missing} (scripts/install-test-deps)", file=sys.stderr)
        return 2
    if not os.access(Config.binary, os.X_OK):
        print(f"binary not found or not executable: {Config.binary}", file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    loader = unittest.TestLoader()
    if args.pattern:
        loader.testNamePatterns = [f"*{args.pattern}*"]
    t0 = time.monotonic()
    try:
        if not args.assume_up:
            zbxapi.zabbix_env("up")
        Config.env = zabbix_env_settings()
        result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(loader.loadTestsFromTestCase(ServeTests))
    finally:
        if args.down:
            zbxapi.zabbix_env("down")
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"# total {time.monotonic() - t0:.1f}s; serve log under {Config.env.get('ZBX_STATE', '?')}/serve")
    print(f"{passed} passed, {failed} failed" + (f", {len(result.skipped)} skipped" if result.skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
