#!/usr/bin/env python3
"""The push daemon, `zabbix-sockets run`, end to end against a real Zabbix 6.0 server on 127.0.0.1.

Runs on its own (python3 e2e/test_daemon.py [--binary PATH] [--assume-up] [-k PATTERN]) or from
e2e/run.py; the relay and the sender helpers live in e2e/support.py.

Each scenario has a host of its own with one trapper item `sockets.stats` (value type text); the
daemon runs with `--sections counts`. "Exactly once" is checked on the clocks the daemon stamps on
its values (history.get of that item): with --interval 1 every collection has its own second.

  01 the server itself drops a repeated (session, id) and counts it failed, per host, so that a
     daemon restarted on the same buffer may resend what the server already has (what 11 relies on)
  10 outage: zabbix_server stopped for several intervals, the daemon killed -9 during it and
     started again on the same --buffer-dir, then the server started: every collection is in
     history once, at its collection clock; the only holes are the ticks while no daemon ran
  11 kill -9 between "stored" and "acknowledged": a relay on loopback passes the daemon's
     requests to the server but drops the replies, the daemon is killed -9 and restarted: the
     resent values are dropped by the server (its reply says failed) and history holds each once
  20 TLS-PSK: values reach a PSK-only host; a wrong key and a wrong identity are each logged once
     as "TLS handshake ... failed", nothing arrives (barrier), nothing is acknowledged in the
     buffer, and once the daemon is restarted with the right settings every kept value arrives
  30 corruption: a buffer with garbage at the start of its segment, a flipped byte in a middle
     record and a torn last record: the daemon logs each skip, delivers every readable record and
     runs on
  31 one state file lost while values wait: the other copy keeps the session, nothing is sent
     twice; both lost: a new session; the buffered values and the new ones all arrive (ids are
     the records' sequence numbers, which never restart)
  40 refusal: an extra --netns-host for a host Zabbix does not know, and one for a namespace that
     does not exist: each is logged once over many intervals; the real host misses no value
  50 soak: 5,000 collections at --interval 0.02: RSS and open descriptors flat after warm-up,
     the buffer drains, and every collected value is in history once

Standard library only; every wait is bounded by time and count; traffic stays on 127.0.0.1 and
in a network namespace the test creates and deletes.
"""
import collections
import json
import os
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import time

import support
from support import HOST_GROUP, ROOT, Relay, tally, zabbix_env, zbxapi, zbxd_request

ITEM_KEY = "sockets.stats"
PREFIX = "zabbix-sockets-e2e-daemon-"
HOSTS = {name: PREFIX + name for name in ("dedup", "dedup2", "outage", "ack", "psk", "corrupt", "refusal", "soak")}
UNKNOWN_HOST = PREFIX + "no-such-host"       # never created
NO_NETNS_HOST = PREFIX + "no-netns"          # never created either; its namespace does not exist
PSK_IDENTITY = "zabbix-sockets e2e daemon PSK 001"
SOAK_CYCLES = 5000
SOAK_WARMUP = 200
SOAK_INTERVAL = 0.02
RSS_GROWTH_MAX_KIB = 5 * 1024
FD_DRIFT_MAX = 2


# ------------------------------------------------------------------------------------ buffer files
def read_state(directory, name="state"):
    """The buffer's state file (Sources/DurableQueue/StateFile.swift; `state.copy` holds the same):
    next sequence, consumer positions and the owner's values (the sender session)."""
    with open(os.path.join(directory, name), "rb") as f:
        data = f.read()
    if data[:4] not in (b"\xe2DQT", b"\xe2DQS"):
        raise ValueError("not a state file")
    body, offset = data[12:], 8 if data[:4] == b"\xe2DQT" else 0   # the generation comes first

    def take(fmt):
        nonlocal offset
        value = struct.unpack_from(fmt, body, offset)[0]
        offset += struct.calcsize(fmt)
        return value

    def text():
        nonlocal offset
        n = take("<I")
        offset += n
        return body[offset - n:offset].decode()

    state = {"next_sequence": take("<Q"), "discarded_through": take("<Q"), "dropped": take("<Q")}
    state["positions"] = {text(): take("<Q") for _ in range(take("<I"))}
    state["values"] = {text(): text() for _ in range(take("<I"))}
    return state


def collected(directory):
    """Values the daemon has stored since the buffer was made (one host: one value a collection):
    the highest sequence number in the newest segment, or in the state file (saved with every
    acknowledgement) when that is higher."""
    highest = 0
    try:
        highest = read_state(directory)["next_sequence"] - 1
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        pass
    files = segments(directory) if os.path.isdir(directory) else []
    if files:
        records, _ = read_segment(files[-1])
        if records:
            highest = max(highest, records[-1]["sequence"])
    return highest


def read_segment(path):
    """Valid records of a segment (Sources/DurableQueue/RecordFrame.swift) and the daemon's
    value in each (Sources/ZabbixPush/BufferedValue.swift)."""
    with open(path, "rb") as f:
        data = f.read()
    records, offset = [], 0
    while offset + 28 <= len(data) and data[offset:offset + 4] == b"\xe2DQR":
        length, sequence, _ts, _crc = struct.unpack_from("<IQqI", data, offset + 4)
        payload = data[offset + 28:offset + 28 + length]
        if len(payload) < length:
            break
        _version, clock, ns, value_id = struct.unpack_from("<BqiQ", payload, 0)
        records.append({"offset": offset, "length": length, "sequence": sequence,
                        "clock": clock, "ns": ns, "id": value_id})
        offset += 28 + length
    return records, len(data)


def segments(directory):
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".seg"))


# ------------------------------------------------------------------------------------ process
def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """One `zabbix-sockets run`, its stderr in a log file; started when constructed, returns
    once it logged "started"."""

    def __init__(self, binary, log_path, host, buffer_dir, *extra, port=10051, interval="1"):
        self.log_path = log_path
        self.argv = [binary, "run", "-z", "127.0.0.1", "-p", str(port), "-s", host,
                     "--interval", str(interval), "--sections", "counts", "--buffer-dir", buffer_dir,
                     "-t", "5", *extra]
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.returncode = None
        try:
            self.wait_log("] started: ", 20)
        except TimeoutError:
            self.kill9()
            raise
        self.started_at = time.time()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def count(self, *needles):
        return sum(1 for line in self.log().splitlines() if all(n in line for n in needles))

    def wait_log(self, needle, timeout):
        def seen():
            if self.proc.poll() is not None and needle not in self.log():
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging "
                                     f"{needle!r}:\n{self.log()[-3000:]}")
            return needle in self.log()
        return zbxapi.wait_until(seen, timeout, 0.1, f"the daemon to log {needle!r}")

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.returncode = self.proc.wait(10)
        self._log.close()
        return self.returncode

    def stop(self, timeout=30):
        """SIGTERM, bounded wait (then SIGKILL); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"the daemon did not exit within {timeout}s of SIGTERM")
        self.returncode = self.proc.returncode
        self._log.close()
        return self.returncode

    def alive(self):
        return self.proc.poll() is None


# ------------------------------------------------------------------------------------ tests
class DaemonTests(support.ZabbixCase):
    """Hosts of its own per scenario; tests run in name order, each independent of the others."""

    api = None
    itemids = {}
    daemons = []
    relays = []
    netns = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.port = int(env["ZBX_SERVER_PORT"])
        cls.server_conf = env["ZBX_SERVER_CONF"]
        cls.tmp = tempfile.TemporaryDirectory(prefix="zabbix-sockets-daemon-")
        cls.key = secrets.token_hex(32)
        cls.psk_file = cls._write("right.psk", cls.key + "\n")
        cls.wrong_psk_file = cls._write("wrong.psk", secrets.token_hex(32) + "\n")
        groupid = cls.api.ensure_hostgroup(HOST_GROUP)
        t0 = time.monotonic()
        for name, host in HOSTS.items():
            cls.api.delete_host(host)
            params = {"host": host, "groups": [{"groupid": groupid}]}
            if name == "psk":
                params.update({"tls_connect": 2, "tls_accept": 2, "tls_psk_identity": PSK_IDENTITY,
                               "tls_psk": cls.key})
            hostid = cls.api.call("host.create", params)["hostids"][0]
            cls.itemids[name] = cls.api.call("item.create", {
                "hostid": hostid, "name": "socket statistics (daemon e2e)", "key_": ITEM_KEY, "type": 2,
                "value_type": zbxapi.VALUE_TYPE["text"]})["itemids"][0]

        def all_known():
            data = [{"host": h, "key": ITEM_KEY, "value": "probe"} for n, h in HOSTS.items() if n != "psk"]
            if tally(zbxd_request({"request": "sender data", "data": data}, cls.port)["info"])[0] < len(data):
                return False
            return cls.zabbix_sender_psk("probe")[0]
        zbxapi.wait_config_sync(cls.server_conf, all_known, 60, "the server to know the daemon test hosts")
        time.sleep(1.1)          # the probes' second is over before any test's window starts
        print(f"# {len(HOSTS)} daemon test hosts known to the server after {time.monotonic() - t0:.1f}s; "
              f"binary {cls.binary}", flush=True)

    @classmethod
    def tearDownClass(cls):
        for daemon in cls.daemons:
            if daemon.alive():
                daemon.kill9()
        for relay in cls.relays:
            relay.close()
        for name in cls.netns:
            subprocess.run(["ip", "netns", "delete", name], timeout=30)
        if getattr(cls, "env", None):
            try:
                out = subprocess.run([os.path.join(ROOT, "scripts", "zabbix-env"), "status"], timeout=60,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
                if "zabbix_server  stopped" in out:
                    zabbix_env("start-server", timeout=120)     # a test failed during its outage
            except (subprocess.SubprocessError, OSError) as exc:
                print(f"# could not restart zabbix_server: {exc}", flush=True)
        if cls.api:
            try:
                for host in HOSTS.values():
                    cls.api.delete_host(host)
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
    def zabbix_sender_psk(cls, value):
        return support.zabbix_sender(HOSTS["psk"], ITEM_KEY, value, cls.port,
                                     psk=(PSK_IDENTITY, cls.psk_file))

    def daemon(self, label, name, buffer_dir, *extra, **kw):
        log_path = os.path.join(self.tmp.name, f"{label}.log")
        d = Daemon(self.binary, log_path, HOSTS[name], buffer_dir, *extra, **kw)
        self.daemons.append(d)
        return d

    def buffer_dir(self, label):
        return os.path.join(self.tmp.name, "buffer-" + label)

    def relay(self, mode):
        r = Relay(self.port, mode)
        self.relays.append(r)
        return r

    def values(self, name, t_from, t_till=None, with_value=True):
        """History of a test host's item from t_from: [(clock, ns, value or None)], oldest first;
        only the daemon's documents (set-up probes and barrier markers left out)."""
        params = {"output": ["clock", "ns", "value"] if with_value else ["clock", "ns"],
                  "history": zbxapi.VALUE_TYPE["text"], "itemids": [self.itemids[name]],
                  "time_from": int(t_from), "sortfield": "clock", "sortorder": "ASC", "limit": 100000}
        if t_till is not None:
            params["time_till"] = int(t_till)
        rows = [(int(r["clock"]), int(r["ns"]), r.get("value")) for r in self.api.call("history.get", params)]
        return sorted(r for r in rows if r[2] is None or r[2].startswith("{"))

    def wait_values(self, name, t_from, count, timeout, what):
        return zbxapi.wait_until(lambda: (v := self.values(name, t_from)) and len(v) >= count and v,
                                 timeout, 0.5, what)

    def assert_each_tick_once(self, rows, may_miss=(), first=None, last=None):
        """With --interval 1: one value per second from the first to the last clock, none twice,
        except the seconds in `may_miss` (while no daemon ran). Returns the seconds missed there."""
        per_clock = collections.Counter(clock for clock, _, _ in rows)
        self.assertEqual({c: n for c, n in per_clock.items() if n > 1}, {}, "a collection stored twice")
        self.assertEqual(len({(c, ns) for c, ns, _ in rows}), len(rows), "a (clock, ns) stored twice")
        first = rows[0][0] if first is None else first
        last = rows[-1][0] if last is None else last
        holes = [c for c in range(first, last + 1) if c not in per_clock]
        self.assertEqual([c for c in holes if c not in may_miss], [],
                         f"collections missing from history (may miss {sorted(may_miss)})")
        return holes

    def ensure_server_up(self):
        zabbix_env("start-server", timeout=120)

    # ---------------------------------------------------------------- 0x: the server's side
    def test_01_server_drops_repeated_ids_per_host_and_session(self):
        """What a restarted daemon relies on (zabbix-protocol.md sections 3 and 5), on the real 6.0."""
        host, other = HOSTS["dedup"], HOSTS["dedup2"]
        session, now = secrets.token_hex(16), int(time.time())
        t0 = now - 1

        def request(rows, token=session):
            return {"request": "sender data", "session": token,
                    "data": [{"host": h, "key": ITEM_KEY, "value": "{" + f'"v":"{tag}"' + "}", "clock": now,
                              "ns": ns, "id": i} for h, tag, ns, i in rows]}
        first = [(host, "a", 1, 1), (host, "b", 2, 2), (host, "c", 3, 3)]
        replies = [zbxd_request(request(first), self.port)["info"]]
        replies.append(zbxd_request(request(first), self.port)["info"])            # the same again
        replies.append(zbxd_request(request([(host, "b2", 4, 2), (host, "d", 5, 4)]), self.port)["info"])
        replies.append(zbxd_request(request([(other, "x", 6, 1)]), self.port)["info"])    # other host
        replies.append(zbxd_request(request([(host, "e", 7, 1)], secrets.token_hex(16)), self.port)["info"])
        for line in replies:
            print(f"#   {line}", flush=True)
        self.assertEqual([tally(r) for r in replies], [(3, 0), (0, 3), (1, 1), (1, 0), (1, 0)])
        # 32 characters exactly, or the request is refused as a whole
        bad = zbxd_request(request([(host, "f", 8, 9)], "short"), self.port)
        self.assertEqual(bad["response"], "failed", bad)
        rows = zbxapi.wait_until(lambda: (v := self.values("dedup", t0)) and len(v) >= 4 and v, 30, 0.5,
                                 "the deduplicated values in history")
        time.sleep(1.5)          # a duplicate, if any, would have been synced with them
        got = sorted(json.loads(v)["v"] for _, _, v in self.values("dedup", t0))
        self.assertEqual(got, ["a", "b", "c", "d", "e"])
        self.assertEqual([json.loads(v)["v"] for _, _, v in self.values("dedup2", t0)], ["x"])
        print(f"# the server dropped a repeated id of the same host and session ({len(rows)}+ rows, "
              f"each once); another host or a new session starts its own ids", flush=True)

    # ---------------------------------------------------------------- 1x: outage, kill -9
    def test_10_outage_with_kill9_loses_nothing_and_repeats_nothing(self):
        buf = self.buffer_dir("outage")
        t0 = time.time()
        d1 = self.daemon("outage-1", "outage", buf)
        self.wait_values("outage", t0, 3, 30, "the first 3 values")
        t_down = time.time()
        try:
            zabbix_env("stop-server", timeout=120)
            t_stopped = time.time()
            d1.wait_log("cannot deliver to 127.0.0.1:", 20)
            time.sleep(3)                                   # several intervals with no server
            t_kill = time.time()
            self.assertEqual(d1.kill9(), -signal.SIGKILL)
            held = collected(buf)
            d2 = self.daemon("outage-2", "outage", buf)     # same buffer, server still away
            t_restarted = d2.started_at
            time.sleep(3)
        finally:
            zabbix_env("start-server", timeout=120)
        t_up = time.time()
        d2.wait_log("delivering to 127.0.0.1:", 70)       # "delivering to ... again"
        t_delivering = time.time()
        time.sleep(2.5)
        self.assertEqual(d2.stop(), 0, d2.log())
        t_end = time.time()
        n = collected(buf)
        rows = zbxapi.wait_until(lambda: (v := self.values("outage", t0 - 1)) and len(v) >= n and v, 30, 0.5,
                                 f"all {n} collected values in history")
        may_miss = set(range(int(t_kill), int(t_restarted) + 2))
        holes = self.assert_each_tick_once(rows, may_miss)
        self.assertEqual(len(rows), n, "history holds what the daemons collected, no more, no less")
        during = [c for c, _, _ in rows if t_down <= c <= t_up]
        self.assertGreaterEqual(len(during), 6, "values collected while the server was away")
        self.assertEqual(d1.count("cannot deliver to 127.0.0.1:"), 1, "logged once, not per try")
        print(f"# outage: server down {t_up - t_down:.1f}s (stop took {t_stopped - t_down:.1f}s), daemon killed -9 "
              f"after {t_kill - t_down:.1f}s ({held} values collected by then), restarted in {t_restarted - t_kill:.2f}s; "
              f"delivering again {t_delivering - t_up:.1f}s after the server; {len(rows)} values "
              f"{rows[0][0]}..{rows[-1][0]} each once, {len(during)} collected during the outage, "
              f"holes {holes} (while no daemon ran); whole test {t_end - t0:.0f}s", flush=True)

    def test_11_kill9_between_store_and_acknowledge_repeats_nothing(self):
        buf = self.buffer_dir("ack")
        relay = self.relay("pass")
        t0 = time.time()
        d1 = self.daemon("ack-1", "ack", buf, port=relay.port)
        self.wait_values("ack", t0, 2, 30, "the first values through the relay")
        relay.mode = "swallow"           # the server stores, the daemon never hears of it
        zbxapi.wait_until(lambda: len(relay.swallowed()) >= 3, 30, 0.1, "3 swallowed replies")
        t_kill = time.time()
        d1.kill9()
        relay.mode = "pass"
        swallowed = relay.swallowed()
        d2 = self.daemon("ack-2", "ack", buf, port=relay.port)
        d2.wait_log("likely delivered before", 20)
        time.sleep(2.5)
        self.assertEqual(d2.stop(), 0, d2.log())
        n = collected(buf)
        rows = zbxapi.wait_until(lambda: (v := self.values("ack", t0 - 1)) and len(v) >= n and v, 30, 0.5,
                                 f"all {n} collected values in history")
        time.sleep(1.5)
        rows = self.values("ack", t0 - 1)
        holes = self.assert_each_tick_once(rows, set(range(int(t_kill), int(d2.started_at) + 2)))
        self.assertEqual(len(rows), n)
        # The first swallowed request was stored; the retries of the same ids were refused as repeats,
        # and so was the part of the restarted daemon's first request that the server already had.
        self.assertGreater(tally(swallowed[0])[0], 0, swallowed)
        self.assertTrue(all(tally(info)[1] > 0 for info in swallowed[1:]), swallowed)
        last_swallowed = max(i for i, (mode, _) in enumerate(relay.replies) if mode == "swallow")
        first_after_restart = relay.replies[last_swallowed + 1][1]
        self.assertGreater(tally(first_after_restart)[1], 0, "the restarted daemon resent stored values")
        self.assertNotIn("refused", d2.log(), "repeats dropped by the server are not refusals")
        print(f"# kill -9 between store and ack: {len(swallowed)} replies swallowed ({swallowed[0]} | "
              f"then {'; '.join(i.split('; seconds')[0] for i in swallowed[1:])}); after restart: "
              f"{first_after_restart.split('; seconds')[0]}; {len(rows)} values each once, holes {holes}", flush=True)

    # ---------------------------------------------------------------- 2x: TLS-PSK
    def psk_args(self, identity=PSK_IDENTITY, psk_file=None):
        return ["--tls-connect", "psk", "--tls-psk-identity", identity, "--tls-psk-file", psk_file or self.psk_file]

    def test_20_psk(self):
        t0 = time.time()
        good = self.daemon("psk-good", "psk", self.buffer_dir("psk-good"), *self.psk_args())
        rows = self.wait_values("psk", t0, 3, 30, "3 values over PSK")
        self.assertEqual(good.stop(), 0, good.log())
        self.assertNotIn("warning", good.log())
        self.assert_each_tick_once(rows)

        refused = {}
        for label, args in (("wrong key", self.psk_args(psk_file=self.wrong_psk_file)),
                            ("wrong identity", self.psk_args(identity="zabbix-sockets e2e daemon unknown"))):
            buf = self.buffer_dir("psk-" + label.replace(" ", "-"))
            t1 = time.time()
            d = self.daemon("psk-" + label.replace(" ", "-"), "psk", buf, *args)
            d.wait_log("TLS handshake with", 10)
            time.sleep(3.5)                               # several intervals, several retries
            self.assertEqual(d.stop(), 0, d.log())
            log = d.log()
            running = [line for line in log.splitlines() if "shutdown:" not in line]
            self.assertEqual(sum(1 for line in running if f"TLS handshake with 127.0.0.1:{self.port} failed" in line
                                 and "(wrong PSK or identity?)" in line), 1, log)     # once while running
            self.assertIn("values stay buffered for the next start", log)
            self.assertNotIn(self.key, log.lower())
            state = read_state(buf)
            kept = collected(buf)
            self.assertGreaterEqual(kept, 3)
            self.assertEqual(list(state["positions"].values()), [0], "nothing acknowledged")
            refused[label] = (buf, args, t1, time.time(), kept,
                              next(line for line in log.splitlines() if "TLS handshake" in line))

        marker = "barrier-" + secrets.token_hex(6)      # nothing of the refused daemons arrived
        ok, out = self.zabbix_sender_psk(marker)
        self.assertTrue(ok, out)
        params = {"output": ["clock", "ns", "value"], "history": 4, "itemids": [self.itemids["psk"]],
                  "time_from": int(t0)}
        zbxapi.wait_until(lambda: any(r["value"] == marker for r in self.api.call("history.get", params)),
                          30, 0.5, "the barrier value")
        first_refused = min(t1 for _, _, t1, _, _, _ in refused.values())
        self.assertEqual([r for r in self.values("psk", first_refused) if r[0] >= first_refused], [])

        t_fix = time.time()                 # the same buffers, the right settings: everything kept arrives
        fixed = [self.daemon("psk-fixed-" + str(i), "psk", buf, *self.psk_args())
                 for i, (buf, _, _, _, _, _) in enumerate(refused.values())]
        want = sum(kept for *_, kept, _ in refused.values())
        # Whole timestamps: the good daemon's last value may fall in the second the first window opens.
        in_windows = lambda: [r for r in self.values("psk", first_refused)   # noqa: E731
                              if first_refused <= r[0] + r[1] / 1e9 < t_fix]
        rows = zbxapi.wait_until(lambda: len(v := in_windows()) >= want and v, 30, 0.5,
                                 f"the {want} values kept while the PSK was wrong")
        for d in fixed:
            self.assertEqual(d.stop(), 0, d.log())
        time.sleep(1)
        rows = in_windows()
        self.assertEqual(len(rows), want, f"rows {[r[:2] for r in rows]}; kept per window "
                         f"{[(t1, t2, kept) for _, _, t1, t2, kept, _ in refused.values()]}; t_fix {t_fix}")
        for label, (_, _, t1, t2, kept, _) in refused.items():
            window = [r for r in rows if t1 <= r[0] + r[1] / 1e9 <= t2]
            self.assertEqual(len(window), kept, label)
            self.assert_each_tick_once(window)
        for label, (*_, kept, line) in refused.items():
            print(f"# PSK {label}: {kept} values kept, none acknowledged, all arrived after the fix; "
                  f"logged once: {line.split('] ', 1)[-1]}", flush=True)

    # ---------------------------------------------------------------- 3x: corrupt buffer
    def test_30_corrupt_segment(self):
        buf = self.buffer_dir("corrupt")
        relay = self.relay("reject")        # the server is unreachable: values stay in the buffer
        t0 = time.time()
        d1 = self.daemon("corrupt-1", "corrupt", buf, "--shutdown-seconds", "1", port=relay.port,
                         interval="0.25")
        zbxapi.wait_until(lambda: (collected(buf) or 0) >= 12, 20, 0.1, "12 values in the buffer")
        self.assertEqual(d1.stop(), 0, d1.log())
        self.assertIn("values stay buffered for the next start", d1.log())
        files = segments(buf)
        self.assertEqual(len(files), 1, files)
        records, size = read_segment(files[0])
        self.assertGreaterEqual(len(records), 12)
        self.assertEqual(size, records[-1]["offset"] + 28 + records[-1]["length"])
        first, middle, last = records[0], records[len(records) // 2], records[-1]
        with open(files[0], "r+b") as f:
            f.seek(0)
            f.write(b"GARBAGE!" * 2)                              # the segment's first record header
            f.seek(middle["offset"] + 28 + middle["length"] - 20)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))                      # a flipped bit inside a middle value
            f.truncate(last["offset"] + 28 + last["length"] // 2)  # the last record torn
        lost = {(r["clock"], r["ns"]) for r in (first, middle, last)}
        kept = [(r["clock"], r["ns"]) for r in records if (r["clock"], r["ns"]) not in lost]

        relay.mode = "pass"
        t_restart = time.time()
        d2 = self.daemon("corrupt-2", "corrupt", buf, port=relay.port, interval="0.25")
        rows = zbxapi.wait_until(
            lambda: (v := self.values("corrupt", t0 - 1)) and sum(1 for r in v if r[0] + r[1] / 1e9 > t_restart) >= 4
            and len(v) >= len(kept) and v, 30, 0.5, "the readable records and new values")
        self.assertEqual(d2.stop(), 0, d2.log())
        time.sleep(1)
        rows = self.values("corrupt", t0 - 1)
        got = collections.Counter((c, ns) for c, ns, _ in rows)
        self.assertEqual([k for k in kept if got[k] != 1], [], "every readable record arrives, once")
        self.assertEqual([k for k in lost if got[k]], [], "nothing of the damaged records")
        self.assertEqual([k for k, n in got.items() if n > 1], [])
        new = [r for r in rows if r[0] + r[1] / 1e9 > t_restart]
        self.assertGreaterEqual(len(new), 4, "runs on")
        skips = [line.split("] ", 1)[-1] for line in d2.log().splitlines() if "corrupt bytes" in line]
        offsets = {int(line.split(" offset ")[1].split()[0]) for line in skips}
        self.assertIn(0, offsets, skips)
        self.assertTrue(any(middle["offset"] <= o <= middle["offset"] + 28 for o in offsets), skips)
        self.assertIn(last["offset"], offsets, skips)
        self.assertNotIn("error", d2.log())
        print(f"# corruption: {len(records)} records, 3 damaged (garbage at offset 0, a flipped bit at "
              f"{middle['offset'] + 28 + middle['length'] - 20}, torn at {last['offset']}); "
              f"{len(kept)} readable all arrived once, {len(new)} new since the restart", flush=True)
        for line in skips:
            print(f"#   {line}", flush=True)

    def test_31_lost_state_file(self):
        """One state file (session token, positions) gone while values wait: the copy keeps the
        session. Both gone: the daemon starts a new session and delivers from the oldest record;
        neither the old values nor the new ones may be taken for repeats of the old session's ids."""
        buf = self.buffer_dir("lost-state")
        relay = self.relay("reject")
        t0 = time.time()
        d1 = self.daemon("lost-state-1", "corrupt", buf, "--shutdown-seconds", "1", port=relay.port,
                         interval="0.25")
        zbxapi.wait_until(lambda: (collected(buf) or 0) >= 8, 20, 0.1, "8 values in the buffer")
        self.assertEqual(d1.stop(), 0, d1.log())
        old_session = read_state(buf)["values"]["session"]
        os.remove(os.path.join(buf, "state"))
        d_copy = self.daemon("lost-state-copy", "corrupt", buf, "--shutdown-seconds", "1", port=relay.port,
                             interval="0.25")
        zbxapi.wait_until(lambda: "state copy" in d_copy.log(), 10, 0.1, "the repaired state copy logged")
        self.assertEqual(d_copy.stop(), 0, d_copy.log())
        self.assertEqual(read_state(buf)["values"]["session"], old_session, "one lost file keeps the session")
        for name in ("state", "state.copy"):
            os.remove(os.path.join(buf, name))

        relay.mode = "pass"
        t_restart = time.time()
        d2 = self.daemon("lost-state-2", "corrupt", buf, port=relay.port, interval="0.25")
        self.assertIn("state file", d2.log())
        time.sleep(4)                                      # 16 new collections
        self.assertEqual(d2.stop(), 0, d2.log())
        records = [r for path in segments(buf) for r in read_segment(path)[0]]
        # what the daemon still holds at its stop (a busy machine may leave the newest value
        # undelivered) stays in the buffer for the next run: not lost, not expected in history yet
        acked = min(read_state(buf)["positions"].values())
        want = {(r["clock"], r["ns"]) for r in records if r["sequence"] <= acked}
        new = {(r["clock"], r["ns"]) for r in records if r["clock"] + r["ns"] / 1e9 > t_restart}
        self.assertGreaterEqual(len(new), 10)
        try:
            # Every wanted value by its timestamp, not a count of rows: the previous test's last
            # values on this host may fall in the same second as t0, and counting them made the
            # check run before the newest values were in history (seen twice in CI).
            zbxapi.wait_until(lambda: want <= {(c, ns) for c, ns, _ in self.values("corrupt", t0 - 1)},
                              60, 0.5, f"the {len(want)} values of the buffer in history")
        except TimeoutError:
            pass                                           # which ones are missing is asserted below
        rows = self.values("corrupt", t0 - 1)
        got = collections.Counter((c, ns) for c, ns, _ in rows)
        missing = sorted(k for k in want if not got[k])
        self.assertEqual(missing, [], f"{len(missing)} of {len(want)} values lost ({len(new)} new); "
                                      f"acknowledged up to record {acked} of "
                                      f"{[(r['sequence'], r['clock'], r['ns']) for r in records]}; "
                                      f"server replies through the relay {relay.replies}\n{d2.log()}")
        self.assertEqual([k for k, n in got.items() if n > 1], [])
        self.assertNotEqual(read_state(buf)["values"]["session"], old_session)
        print(f"# lost state file: {len(want) - len(new)} buffered + {len(new)} new values, each once in "
              f"history; a new session", flush=True)

    # ---------------------------------------------------------------- 4x: refusals
    def test_40_refused_host_and_missing_namespace_are_logged_once(self):
        ns = "zs-e2e-daemon-" + secrets.token_hex(3)
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        self.netns.append(ns)
        try:
            t0 = time.time()
            d = self.daemon("refusal", "refusal", self.buffer_dir("refusal"),
                            "--netns-host", f"{ns}={UNKNOWN_HOST}",
                            "--netns-host", f"/nonexistent/netns/{ns}={NO_NETNS_HOST}")
            zbxapi.wait_until(lambda: d.count("refused", f'"{UNKNOWN_HOST}"'), 15, 0.2, "the refusal")
            # Six intervals of the same: the real host's values keep arriving meanwhile.
            zbxapi.wait_until(lambda: len(self.values("refusal", t0)) >= 6, 30, 0.5, "six values for the real host")
            self.assertEqual(d.stop(), 0, d.log())
        finally:
            subprocess.run(["ip", "netns", "delete", ns], check=True, timeout=30)
            self.netns.remove(ns)
        log = d.log()
        refusals = d.count("refused", f'"{UNKNOWN_HOST}"')
        collect_errors = d.count(f"cannot collect for {NO_NETNS_HOST}")
        self.assertEqual(refusals, 1, log)
        self.assertEqual(collect_errors, 1, log)
        self.assertNotIn("likely delivered before", log, "a new buffer has sent nothing before")
        rows = self.values("refusal", t0)
        self.assertGreaterEqual(len(rows), 6)
        self.assert_each_tick_once(rows)
        state = read_state(self.buffer_dir("refusal"))
        behind = {c: state["next_sequence"] - 1 - p for c, p in state["positions"].items()}
        print(f"# refusal: {len(rows)} values for the real host, each second once; over "
              f"{rows[-1][0] - rows[0][0] + 1} intervals the refusal was logged {refusals}x, the missing "
              f"namespace {collect_errors}x; records behind per consumer at exit {behind}", flush=True)
        for line in log.splitlines():
            if UNKNOWN_HOST in line or NO_NETNS_HOST in line:
                print(f"#   {line.split('] ', 1)[-1][:220]}", flush=True)

    # ---------------------------------------------------------------- 5x: soak
    def test_50_soak(self):
        buf = self.buffer_dir("soak")
        t0 = time.time()
        d = self.daemon("soak", "soak", buf, interval=str(SOAK_INTERVAL))
        zbxapi.wait_until(lambda: (collected(buf) or 0) >= SOAK_WARMUP, 60, 0.2, f"{SOAK_WARMUP} cycles")
        start = {"cycles": collected(buf), "rss": rss_kib(d.pid), "fds": fd_count(d.pid),
                 "cpu": cpu_seconds(d.pid), "t": time.time()}
        # bounds of 4x the nominal time: on a machine busy with other work a debug build at 50 Hz
        # falls behind (the claim here is flat memory and descriptors, not speed)
        zbxapi.wait_until(lambda: (collected(buf) or 0) >= SOAK_CYCLES // 2, SOAK_CYCLES * SOAK_INTERVAL * 4, 0.5,
                          f"{SOAK_CYCLES // 2} cycles")
        middle = {"cycles": collected(buf), "rss": rss_kib(d.pid), "fds": fd_count(d.pid)}
        zbxapi.wait_until(lambda: (collected(buf) or 0) >= SOAK_CYCLES, SOAK_CYCLES * SOAK_INTERVAL * 4, 0.5,
                          f"{SOAK_CYCLES} cycles")
        end = {"cycles": collected(buf), "rss": rss_kib(d.pid), "fds": fd_count(d.pid),
               "cpu": cpu_seconds(d.pid), "t": time.time()}

        def drained():
            s = read_state(buf)
            return all(s["next_sequence"] - 1 - p <= 2 for p in s["positions"].values())
        zbxapi.wait_until(drained, 30, 0.2, "the buffer to drain while running")
        self.assertEqual(d.stop(), 0, d.log())
        state = read_state(buf)
        cycles = collected(buf)
        self.assertEqual(list(state["positions"].values()), [state["next_sequence"] - 1], "all acknowledged")
        self.assertNotIn("warning", d.log())
        self.assertNotIn("error", d.log())
        t_hist = time.time()
        rows = zbxapi.wait_until(lambda: len(v := self.values("soak", t0 - 1, with_value=False)) >= cycles and v,
                                 180, 1, f"{cycles} values in history")    # a busy server syncs slowly
        self.assertEqual(len(rows), cycles)
        self.assertEqual(len({(c, ns) for c, ns, _ in rows}), cycles, "no value twice")
        span = end["t"] - start["t"]
        ticks = span / SOAK_INTERVAL
        rss_growth = end["rss"] - start["rss"]
        print(f"# soak: {cycles} cycles at --interval {SOAK_INTERVAL} in {time.time() - t0:.0f}s "
              f"({(end['cycles'] - start['cycles']) / ticks:.0%} of ticks collected); RSS {start['rss']} KiB at "
              f"cycle {start['cycles']} -> {middle['rss']} KiB at {middle['cycles']} -> {end['rss']} KiB at cycle "
              f"{end['cycles']} ({rss_growth:+d} KiB); fds {start['fds']} -> {middle['fds']} -> {end['fds']}; CPU {(end['cpu'] - start['cpu']) / span:.0%} of a core; "
              f"{len(rows)} values in history ({time.time() - t_hist:.1f}s to sync), each once", flush=True)
        self.assertLess(rss_growth, RSS_GROWTH_MAX_KIB)
        self.assertLessEqual(abs(end["fds"] - start["fds"]), FD_DRIFT_MAX)


# ------------------------------------------------------------------------------------ main
if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
