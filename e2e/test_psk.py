#!/usr/bin/env python3
"""TLS-PSK end to end: `zabbix-sockets send --tls-connect psk` against a real Zabbix 6.0 server
(Debian's, built with GnuTLS: TLS 1.2 only) on 127.0.0.1.

Runs on its own (python3 e2e/test_psk.py [--binary PATH] [--assume-up] [-k PATTERN]) or from
e2e/run.py; the TLS relay and zabbix_sender helper live in e2e/support.py.

What it proves, on a host that accepts only PSK (tls_accept=2) with one trapper item:
  - the set-up is right: the real zabbix_sender with the same PSK gets "processed: 1" and the
    value is stored (interop);
  - zabbix-sockets with the right PSK gets "processed: 1" and its document is stored, over
    TLS 1.2 with a suite both sides have (seen in the ServerHello, through a relay on loopback
    that only reads the cleartext handshake records);
  - a wrong key and a wrong identity each exit 1 at once with "TLS handshake with ... failed
    ... (wrong PSK or identity?)", print nothing of the key, and deliver nothing;
  - unencrypted values for that host are refused by the server itself;
  - the agent config's TLSConnect/TLSPSKIdentity/TLSPSKFile work through -c, flags win over it,
    and TLSConnect=cert is refused before anything is sent.
"Nothing delivered" is proven with a barrier: after the refused send, zabbix_sender stores a
marker value; the history from before the refused send up to the marker holds only the marker.

Standard library only; every wait is bounded by time and count; all traffic stays on 127.0.0.1.
"""
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

import support
from support import HOST_GROUP, HandshakeRelay, zbxapi

PSK_HOST = "zabbix-sockets-e2e-psk"
ITEM_KEY = "sockets.stats"             # what `zabbix-sockets send` sends, stored as text
IDENTITY = "zabbix-sockets e2e PSK 001"
SUITES = {0xC035: "ECDHE-PSK-AES128-CBC-SHA", 0x008C: "PSK-AES128-CBC-SHA",
          0xC037: "ECDHE-PSK-AES128-CBC-SHA256", 0x00AE: "PSK-AES128-CBC-SHA256",
          0x00A8: "PSK-AES128-GCM-SHA256"}
SEND_TIMEOUT_S = 20                    # -t given to the sends that must fail fast anyway
PROMPT_S = 5                           # "at once": far below SEND_TIMEOUT_S


# ------------------------------------------------------------------------------------ tests
class PSKTests(support.ZabbixCase):
    """One PSK-only host; tests run in name order, each proving its own claim."""

    api = None
    hostid = None
    item = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.port = int(env["ZBX_SERVER_PORT"])
        cls.server_conf = env["ZBX_SERVER_CONF"]
        cls.server_log = env["ZBX_SERVER_LOG"]
        cls.tmp = tempfile.TemporaryDirectory(prefix="zabbix-sockets-psk-")
        cls.key = secrets.token_hex(32)           # a fresh 256-bit PSK per run
        cls.wrong_key = secrets.token_hex(32)
        cls.psk_file = cls._write("right.psk", cls.key + "\n")
        cls.wrong_psk_file = cls._write("wrong.psk", cls.wrong_key + "\n")
        cls.api.delete_host(PSK_HOST)
        groupid = cls.api.ensure_hostgroup(HOST_GROUP)
        cls.hostid = cls.api.call("host.create", {
            "host": PSK_HOST, "groups": [{"groupid": groupid}],
            "tls_connect": 2, "tls_accept": 2,           # 2 = PSK, and only PSK accepted
            "tls_psk_identity": IDENTITY, "tls_psk": cls.key})["hostids"][0]
        itemid = cls.api.call("item.create", {
            "hostid": cls.hostid, "name": "socket statistics (PSK e2e)", "key_": ITEM_KEY,
            "type": 2, "value_type": zbxapi.VALUE_TYPE["text"]})["itemids"][0]
        cls.item = {"itemid": itemid, "value_type": str(zbxapi.VALUE_TYPE["text"])}
        t0 = time.monotonic()
        # Known to the server (host, item and PSK in its config cache) once zabbix_sender with the
        # PSK gets "processed: 1"; the marker also proves the set-up before any test relies on it.
        zbxapi.wait_config_sync(cls.server_conf, lambda: cls.zabbix_sender("setup-" + secrets.token_hex(4))[0],
                                60, "the server to accept PSK values for the new host")
        print(f"# PSK host known to the server after {time.monotonic() - t0:.1f}s; binary {cls.binary}",
              flush=True)

    @classmethod
    def tearDownClass(cls):
        if cls.api:
            try:
                cls.api.delete_host(PSK_HOST)
                cls.api.logout()
            except Exception:
                pass
        if getattr(cls, "tmp", None):
            cls.tmp.cleanup()

    # ---------------------------------------------------------------- helpers
    @classmethod
    def _write(cls, name, text):
        return zbxapi.write_private(cls.tmp.name, name, text)

    @classmethod
    def zabbix_sender(cls, value, port=None):
        """The real zabbix_sender with the PSK: (processed, output)."""
        return support.zabbix_sender(PSK_HOST, ITEM_KEY, value, port or cls.port,
                                     psk=(IDENTITY, cls.psk_file))

    def send(self, *args, port=None):
        """`zabbix-sockets send` to the PSK host: (returncode, stdout, stderr, seconds)."""
        argv = [self.binary, "send", "-s", PSK_HOST, "-t", str(SEND_TIMEOUT_S), *args]
        if "-c" not in args:
            argv[2:2] = ["-z", "127.0.0.1", "-p", str(port or self.port)]
        t0 = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr, time.monotonic() - t0

    def psk_flags(self, identity=IDENTITY, psk_file=None):
        return ["--tls-connect", "psk", "--tls-psk-identity", identity, "--tls-psk-file", psk_file or self.psk_file]

    def history_since(self, t):
        return self.api.history(self.item, time_from=int(t) - 1, limit=50)

    def wait_value(self, predicate, t, what, timeout=30):
        def found():
            return next((v for v in self.history_since(t) if v[0] + v[1] / 1e9 >= t - 1 and predicate(v[2])), None)
        return zbxapi.wait_until(found, timeout, 0.5, what)

    def assert_nothing_arrived_since(self, t):
        """Barrier: a marker sent now with zabbix_sender is stored; nothing else since `t` is."""
        marker = "barrier-" + secrets.token_hex(6)
        ok, out = self.zabbix_sender(marker)
        self.assertTrue(ok, out)
        self.wait_value(lambda v: v == marker, t, f"the barrier value {marker}")
        others = [v for v in self.history_since(t) if v[0] + v[1] / 1e9 >= t and v[2] != marker]
        self.assertEqual(others, [], "a refused send must deliver nothing")

    def assert_no_key(self, *texts):
        for text in texts:
            self.assertNotIn(self.key, text.lower())
            self.assertNotIn(self.wrong_key, text.lower())

    def assert_handshake_refused(self, rc, out, err, seconds):
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f"TLS handshake with 127.0.0.1:{self.port} failed", err)
        self.assertIn("(wrong PSK or identity?)", err)
        self.assertIn("sent: 0; skipped: 0; total: 1", out)
        self.assertLess(seconds, PROMPT_S, f"took {seconds:.1f}s with -t {SEND_TIMEOUT_S}")
        self.assert_no_key(out, err)

    def server_log_since(self, offset):
        with open(self.server_log, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def server_log_size(self):
        return os.path.getsize(self.server_log)

    # ---------------------------------------------------------------- 0x: the set-up
    def test_01_zabbix_sender_interop(self):
        """The real zabbix_sender with the same PSK: processed and stored (the set-up is right)."""
        t0 = time.time()
        relay = HandshakeRelay(self.port)
        try:
            marker = "zabbix_sender-" + secrets.token_hex(6)
            ok, out = self.zabbix_sender(marker, port=relay.port)
        finally:
            relay.close()
        self.assertTrue(ok, out)
        self.wait_value(lambda v: v == marker, t0, "zabbix_sender's value")
        hello = relay.seen[0]
        print(f"# zabbix_sender (GnuTLS) negotiated {SUITES.get(hello['suite'], hex(hello['suite'] or 0))}, "
              f"TLS {hello['version']:#06x}, handshake {hello['handshake_ms']:.1f} ms", flush=True)

    # ---------------------------------------------------------------- 1x: zabbix-sockets send
    def test_10_right_psk_is_processed_and_stored(self):
        t0 = time.time()
        relay = HandshakeRelay(self.port)
        try:
            rc, out, err, seconds = self.send(*self.psk_flags(), port=relay.port)
        finally:
            relay.close()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("processed: 1; failed: 0", out)
        self.assert_no_key(out, err)
        clock, ns, value = self.wait_value(lambda v: v.startswith("{"), t0, "the document sent over PSK")
        doc = json.loads(value)
        self.assertIn("tcp", doc)
        self.assertIn("established", doc["tcp"])
        hello = relay.seen[0]
        self.assertEqual(hello["client_suites"], [0xC035, 0x008C], "offered: only the common PSK suites")
        self.assertEqual(hello["version"], 0x0303, "TLS 1.2")
        self.assertIn(hello["suite"], (0xC035, 0x008C))
        print(f"# zabbix-sockets negotiated {SUITES[hello['suite']]} ({hello['suite']:#06x}), TLS 1.2; "
              f"handshake {hello['handshake_ms']:.1f} ms; whole command {seconds * 1000:.0f} ms", flush=True)

    def test_11_wrong_psk_fails_at_once_and_delivers_nothing(self):
        t0 = time.time()
        log_at = self.server_log_size()
        rc, out, err, seconds = self.send(*self.psk_flags(psk_file=self.wrong_psk_file))
        self.assert_handshake_refused(rc, out, err, seconds)
        print(f"# wrong PSK after {seconds * 1000:.0f} ms: {err.strip()}", flush=True)
        self.assert_nothing_arrived_since(t0)
        server_said = [ln for ln in self.server_log_since(log_at).splitlines() if "TLS" in ln or "PSK" in ln]
        if server_said:
            print(f"# server log: {server_said[0].strip()}", flush=True)

    def test_12_wrong_identity_fails_at_once_and_delivers_nothing(self):
        t0 = time.time()
        log_at = self.server_log_size()
        rc, out, err, seconds = self.send(*self.psk_flags(identity="zabbix-sockets e2e unknown identity"))
        self.assert_handshake_refused(rc, out, err, seconds)
        print(f"# wrong identity after {seconds * 1000:.0f} ms: {err.strip()}", flush=True)
        self.assert_nothing_arrived_since(t0)
        server_said = [ln for ln in self.server_log_since(log_at).splitlines() if "PSK" in ln or "TLS" in ln]
        if server_said:
            print(f"# server log: {server_said[0].strip()}", flush=True)

    def test_13_unencrypted_is_refused_by_the_server(self):
        t0 = time.time()
        log_at = self.server_log_size()
        rc, out, err, _ = self.send()
        self.assertEqual(rc, 2, out + err)      # zabbix_sender's "partial success": the server refused
        self.assertIn("processed: 0; failed: 1", out)
        self.assert_nothing_arrived_since(t0)
        self.assertIn(f'connection of type "unencrypted" is not allowed for host "{PSK_HOST}"',
                      self.server_log_since(log_at))

    def test_14_bad_psk_file_is_refused_in_zabbix_words_before_sending(self):
        short = self._write("short.psk", "0123456789abcdef\n")
        rc, out, err, _ = self.send(*self.psk_flags(psk_file=short))
        self.assertEqual(rc, 1, out + err)
        self.assertIn(f'PSK in file "{short}" is too short. Minimum is 32 hex-digits', err)
        self.assertEqual(out, "")
        rc, out, err, _ = self.send("--tls-connect", "psk", "--tls-psk-file", self.psk_file)
        self.assertEqual(rc, 1, out + err)
        self.assertIn('parameter "TLSPSKFile" or "--tls-psk-file" is defined, but neither "TLSPSKIdentity" '
                      'nor "--tls-psk-identity" is defined', err)

    # ---------------------------------------------------------------- 2x: through the agent config
    def agent_config(self, name, tls_lines):
        return self._write(name, f"ServerActive=127.0.0.1:{self.port}\nHostname={PSK_HOST}\n{tls_lines}")

    def test_20_agent_config_psk(self):
        conf = self.agent_config("psk.conf", f"TLSConnect=psk\nTLSPSKIdentity={IDENTITY}\nTLSPSKFile={self.psk_file}\n")
        t0 = time.time()
        rc, out, err, _ = self.send("-c", conf)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("processed: 1; failed: 0", out)
        self.wait_value(lambda v: v.startswith("{"), t0, "the document sent with -c")

    def test_21_flags_win_over_the_agent_config(self):
        conf = self.agent_config("unencrypted.conf",
                                 f"TLSConnect=unencrypted\nTLSPSKIdentity={IDENTITY}\nTLSPSKFile={self.wrong_psk_file}\n")
        rc, out, err, _ = self.send("-c", conf, "--tls-connect", "psk", "--tls-psk-file", self.psk_file)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("processed: 1; failed: 0", out)

    def test_22_certificate_mode_is_refused_and_nothing_is_sent(self):
        conf = self.agent_config("cert.conf", "TLSConnect=cert\nTLSCAFile=/nonexistent/ca.crt\n"
                                              "TLSCertFile=/nonexistent/agent.crt\nTLSKeyFile=/nonexistent/agent.key\n")
        t0 = time.time()
        rc, out, err, _ = self.send("-c", conf)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("not supported", err)
        self.assertIn("Nothing was sent", err)
        self.assertEqual(out, "")
        self.assert_nothing_arrived_since(t0)

    # ---------------------------------------------------------------- 3x: numbers
    def test_30_timing(self):
        """Median wall time of the whole command (start, socket count, send, exit), PSK vs
        unencrypted (refused by the server, but a full round trip); runs alternate."""
        runs = 9
        times = {"psk": [], "unencrypted": []}
        for _ in range(runs):
            for label, args in (("psk", self.psk_flags()), ("unencrypted", [])):
                rc, out, err, seconds = self.send(*args)
                self.assertEqual(rc, 0 if label == "psk" else 2, out + err)
                times[label].append(seconds * 1000)
        psk, plain = (statistics.median(times[k]) for k in ("psk", "unencrypted"))
        print(f"# whole `send` command, median of {runs}: psk {psk:.0f} ms, unencrypted {plain:.0f} ms", flush=True)


# ------------------------------------------------------------------------------------ main
if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
