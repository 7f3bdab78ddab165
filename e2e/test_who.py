#!/usr/bin/env python3
"""Who holds the sockets, on the real server: the "Services and containers" and "Network
namespaces" discoveries of the trapper template.

  - The test mounts a cgroup2 hierarchy of its own (the same single v2 hierarchy as any other
    cgroup2 mount, e.g. /sys/fs/cgroup/unified: whichever mount the collector picks from
    /proc/self/mountinfo, a cgroup's path relative to the root is the same), makes a child cgroup
    named like a service, and moves tools/sockctl.py, running in a namespace of the test, into it
    before it opens a listener, ESTABLISHED pairs and connections left in CLOSE_WAIT.
  - `stats --netns NS` of that namespace goes to one trapper host: discovery creates the cgroup's
    items, their values equal the JSON, and the per-cgroup CLOSE_WAIT trigger (threshold lowered
    to 1 for this cgroup only, by macro context) fires, then resolves once the sockets close.
  - `stats --all-netns` goes to another: discovery creates items for the test's two namespaces
    (one empty) and their values equal the JSON; then `run --all-netns` delivers every namespace
    to that same host, with values equal to `stats --all-netns`.

    python3 e2e/test_who.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time

import support
from support import CGROUP_FIELDS, NETNS_FIELDS, ROOT, zbxapi

SOCKCTL = os.path.join(ROOT, "tools", "sockctl.py")
CGROUP_HOST = "zabbix-sockets-e2e-cgroups"
NETNS_HOST = "zabbix-sockets-e2e-netns"
NETNS_RUN_HOST = "zabbix-sockets-e2e-netns-run"
CLOSE_WAIT = 3
WAIT = 90           # seconds any single wait on the server may take


def from_doc(prefix, entry, fields):
    """{item key: value} of one cgroup's or namespace's JSON entry, e.g. fields "tcp.close_wait"."""
    out = {}
    for f in fields:
        section, field = f.split(".")
        out[f'{prefix}{f}]'] = entry[section][field]
    return out


def cgroup2_mounts():
    """Mount points of every cgroup2 mount in this mount namespace (/proc/self/mountinfo)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        lines = f.read(1 << 20).splitlines()
    out = []
    for line in lines:
        left, _sep, right = line.partition(" - ")
        if right.split(" ")[:1] == ["cgroup2"]:
            out.append(left.split(" ")[4].replace("\\040", " "))
    return out


class Sockctl:
    """tools/sockctl.py in a namespace of the test, moved into `cgroup_dir` before it makes any
    socket. close() ends it (its sockets go with it) and deletes the namespace."""

    def __init__(self, ns, cgroup_dir):
        self.ns, self.proc = ns, None
        subprocess.run(["ip", "netns", "delete", ns], stderr=subprocess.DEVNULL, timeout=60)
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        try:
            # `ip netns exec` execs python in place: proc.pid is sockctl itself
            self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, SOCKCTL,
                                          "--max-hold", "1800"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
            line = self._line(30)
            if line != "READY":
                raise AssertionError(f"sockctl: {line!r}")
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                f.write(f"{self.proc.pid}\n")
        except BaseException:
            self.close()
            raise

    def _line(self, timeout):
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise AssertionError(f"sockctl said nothing in {timeout}s")
        return self.proc.stdout.readline().decode().strip()

    def do(self, **cmd):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()
        line = self._line(60)
        if not line.startswith("OK"):
            raise AssertionError(f"sockctl {cmd}: {line}")
        return line

    def close(self):
        support.end_in_namespace(self.proc, self.ns, timeout=60)
        self.proc = None


class ServicesContainersNamespaces(support.TemplateHostsCase):

    maxDiff = None

    mount = None
    cgroup_dir = None
    ctl = None
    empty_ns = None

    fixed_hosts = (CGROUP_HOST, NETNS_HOST, NETNS_RUN_HOST)

    @classmethod
    def tearDownClass(cls):
        cls.cleanup()
        super().tearDownClass()

    @classmethod
    def cleanup(cls):
        if cls.ctl:
            cls.ctl.close()
            cls.ctl = None
        if cls.empty_ns:
            subprocess.run(["ip", "netns", "delete", cls.empty_ns], stderr=subprocess.DEVNULL, timeout=60)
            cls.empty_ns = None
        if cls.cgroup_dir:
            for _ in range(50):                 # bounded: a dying process leaves the cgroup late
                try:
                    os.rmdir(cls.cgroup_dir)
                    break
                except OSError:
                    time.sleep(0.1)
            cls.cgroup_dir = None
        if cls.mount:
            subprocess.run(["umount", cls.mount], timeout=60)
            os.rmdir(cls.mount)
            cls.mount = None

    def stats(self, *args):
        r = subprocess.run([self.binary, "stats", "--format", "json", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-800:])
        return r.stdout.strip()

    def discovered(self, hostid, keys, what, push=lambda: None):
        """The host's discovered cgroup and namespace items, once their keys are `keys`; push()
        runs again every 5 s meanwhile."""
        found = {}

        def ready():
            found["keys"] = {k: i for k, i in self.host_items(hostid).items()
                             if i["flags"] == "4" and support.WHO_KEY.match(k)}
            return set(found["keys"]) == keys
        try:
            self.wait_while_pushing(push, ready, what, timeout=WAIT)
        except TimeoutError:
            self.fail(f"{what}: discovered {sorted(found['keys'])}, want {sorted(keys)}")
        return found["keys"]

    def wait_for_values(self, hostid, host, text, keys):
        """New items take values only once the server's configuration cache has them: reload it
        and send again (bounded) until every item in `keys` has a value."""
        deadline = time.monotonic() + WAIT
        for _ in range(WAIT):
            self.reload_cache()
            support.send_with_sender(host, text)
            time.sleep(2)
            items = self.api.call("item.get", {"output": ["key_", "lastclock"], "hostids": [hostid]})
            if all(i["lastclock"] != "0" for i in items if i["key_"] in keys):
                return
            if time.monotonic() >= deadline:
                break
        self.fail(f"{host}: discovered items got no value in {WAIT}s")

    def values_equal_json(self, hostid, host, text, expected):
        """Send `text`; each discovered item's newest value at the master's clock equals
        expected[key]. Returns the number of values compared."""
        t = time.time()
        support.send_with_sender(host, text)
        items = self.host_items(hostid)
        clock, ns, _doc = self.wait_master_after(items, t - 1, timeout=WAIT, check_now=False)
        deps = {k: items[k] for k in expected}
        bad = {}
        for _ in range(30):                     # bounded: the history syncer writes in batches
            got = self.latest_at_or_before(deps, clock, ns)
            bad = {k: (got.get(k, (None, None, None))[2], w) for k, w in expected.items()
                   if k not in got or not support.same_value(got[k][2], w)}
            if not bad:
                break
            time.sleep(1)
        if bad:
            states = {i["key_"]: (i["state"], i["error"]) for i in self.api.call("item.get", {
                "output": ["key_", "state", "error"], "hostids": [hostid]}) if i["key_"] in bad}
            self.fail(f"stored (value, JSON): {bad}; item states: {states}")
        return len(expected)

    def test_services_and_containers_and_namespaces(self):
        pid = os.getpid()
        service = f"zs-e2e-who-{pid}.service"
        type(self).mount = tempfile.mkdtemp(prefix="zs-e2e-cgroup2-")
        r = subprocess.run(["mount", "-t", "cgroup2", "none", self.mount], stderr=subprocess.PIPE,
                           text=True, timeout=60)
        if r.returncode != 0:
            os.rmdir(self.mount)
            type(self).mount = None
            self.fail(f"mount -t cgroup2: {r.stderr.strip()}")
        type(self).cgroup_dir = os.path.join(self.mount, service)
        os.mkdir(self.cgroup_dir)
        path = "/" + service
        ns = f"zs-e2e-who-{pid}"
        type(self).ctl = ctl = Sockctl(ns, self.cgroup_dir)
        type(self).empty_ns = empty = f"zs-e2e-who-empty-{pid}"
        subprocess.run(["ip", "netns", "add", empty], check=True, timeout=30)
        ctl.do(op="listen", addr="127.0.0.1", port=8080, backlog=64)
        ctl.do(op="connect", addr="127.0.0.1", port=8080, n=CLOSE_WAIT, mode="close_wait")
        ctl.do(op="connect", addr="127.0.0.1", port=8080, n=2, mode="established")
        ctl.do(op="udp", addr="127.0.0.1", n=2)

        # --- Services and containers: one namespace's document, its own host
        text = self.stats("--netns", ns)
        doc = json.loads(text)
        status = doc["cgroup_status"]
        self.assertEqual(status["available"], 1, status)
        mounts = cgroup2_mounts()
        self.assertIn(status["mount"], mounts)       # two cgroup2 mounts: either, same paths
        self.assertIn(path, doc["cgroups"], doc["cgroup_discovery"])
        mine = doc["cgroups"][path]
        self.assertEqual((mine["name"], mine["kind"]), (service, "service"))
        self.assertEqual(mine["tcp"]["close_wait"], CLOSE_WAIT, mine)
        self.assertEqual(mine["udp"]["total"], 2, mine)
        print(f"# cgroup2 mounts {mounts}; the collector read {status['mount']}; {path}: "
              f"tcp {mine['tcp']['total']}, close_wait {mine['tcp']['close_wait']}, "
              f"udp {mine['udp']['total']}", flush=True)
        context = f'{{$SOCKETS.CGROUP.CLOSE_WAIT.MAX:"{service}"}}'
        cg_host, _items = self.trapper_host(CGROUP_HOST, {
            "{$SOCKETS.CGROUP.NAME.MATCHES}": "^" + re.escape(service) + "$",
            "{$SOCKETS.LISTEN.PORT.MATCHES}": "^$", "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$",
            context: "1"})
        support.send_with_sender(CGROUP_HOST, text)
        keys = {f'sockets.cgroup["{path}",{f}]' for f in CGROUP_FIELDS}
        self.discovered(cg_host, keys, f"items of cgroup {path}",
                        lambda: support.send_with_sender(CGROUP_HOST, text))
        self.wait_for_values(cg_host, CGROUP_HOST, text, keys)
        tagged = self.api.call("item.get", {"output": ["key_"], "hostids": [cg_host],
                                            "selectTags": "extend",
                                            "search": {"key_": "sockets.cgroup["}})
        for it in tagged:
            self.assertIn({"tag": "service", "value": service}, it["tags"], it["key_"])

        text = self.stats("--netns", ns)
        doc = json.loads(text)
        n = self.values_equal_json(cg_host, CGROUP_HOST, text,
                                   from_doc(f'sockets.cgroup["{path}",', doc["cgroups"][path],
                                            CGROUP_FIELDS))
        problem = f"{service}: over 1 sockets in CLOSE_WAIT for 15m"
        zbxapi.wait_until(lambda: problem in self.open_problems(cg_host), WAIT, 1, f"problem {problem!r}")
        print(f"# {service}: {len(keys)} items, {n} values equal the JSON; \"{problem}\" fired",
              flush=True)

        # --- Network namespaces: the host's --all-netns document, its own host
        text = self.stats("--all-netns")
        doc = json.loads(text)
        names = {row["{#NETNS}"] for row in doc["netns_discovery"]}
        self.assertTrue({ns, empty} <= names, sorted(names))
        self.assertEqual(doc["netns"][empty]["tcp"]["total"], 0)
        netns_macros = {
            "{$SOCKETS.NETNS.MATCHES}": f"^({re.escape(ns)}|{re.escape(empty)})$",
            "{$SOCKETS.CGROUP.NAME.MATCHES}": "^$",
            "{$SOCKETS.LISTEN.PORT.MATCHES}": "^$", "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$"}
        ns_host, _items = self.trapper_host(NETNS_HOST, netns_macros)
        support.send_with_sender(NETNS_HOST, text)
        keys = {f'sockets.netns["{name}",{f}]' for name in (ns, empty) for f in NETNS_FIELDS}
        self.discovered(ns_host, keys, f"items of namespaces {ns}, {empty}",
                        lambda: support.send_with_sender(NETNS_HOST, text))
        self.wait_for_values(ns_host, NETNS_HOST, text, keys)
        text = self.stats("--all-netns")
        doc = json.loads(text)
        expected = {}
        for name in (ns, empty):
            expected.update(from_doc(f'sockets.netns["{name}",', doc["netns"][name], NETNS_FIELDS))
        self.assertEqual(expected[f'sockets.netns["{ns}",tcp.close_wait]'], CLOSE_WAIT)
        n = self.values_equal_json(ns_host, NETNS_HOST, text, expected)
        print(f"# namespaces {ns} (tcp {doc['netns'][ns]['tcp']['total']}) and {empty} (empty): "
              f"{len(keys)} items, {n} values equal the JSON", flush=True)

        # --- `run --all-netns` delivers every namespace to the same host, through this discovery
        self.check_run_all_netns(netns_macros, keys)

        # --- the CLOSE_WAIT sockets close: the cgroup's trigger resolves
        ctl.close()
        type(self).ctl = None
        t = time.time()
        doc = json.loads(self.stats())
        self.assertNotIn(path, doc["cgroups"])
        support.send_with_sender(CGROUP_HOST, json.dumps(doc))
        items = self.host_items(cg_host)
        cw = items[f'sockets.cgroup["{path}",tcp.close_wait]']
        self.assertEqual(int(self.first_value_after(cw, t - 1, "close_wait 0", timeout=WAIT)[2]), 0)
        zbxapi.wait_until(lambda: problem not in self.open_problems(cg_host), WAIT, 1,
                          f"problem {problem!r} resolved")
        print(f"# sockets closed: close_wait item 0, \"{problem}\" resolved", flush=True)

    def check_run_all_netns(self, macros, keys):
        """The push daemon with --all-netns, alone, to a new host (most items store only changed
        values, so the host's first values must come from the daemon): discovery creates the
        namespace items and each gets a value collected after the daemon started. Where two
        `stats --all-netns` taken around the run agree (FIN_WAIT2 and TIME_WAIT of the test's
        closed connections age out meanwhile), the value delivered equals them. SIGTERM ends it
        with status 0."""
        hostid, _items = self.trapper_host(NETNS_RUN_HOST, macros)
        buffer_dir = tempfile.mkdtemp(prefix="zs-e2e-who-run-")       # 0700, root's: as run wants
        log_path = os.path.join(buffer_dir, "run.log")
        before = json.loads(self.stats("--all-netns"))
        started = time.time()
        with open(log_path, "w") as log:
            daemon = subprocess.Popen(
                [self.binary, "run", "-z", "127.0.0.1", "-s", NETNS_RUN_HOST, "--all-netns",
                 "--interval", "1", "--buffer-dir", os.path.join(buffer_dir, "buffer"), "-t", "5"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            items = self.discovered(hostid, keys, "namespace items from run --all-netns")
            delivered = {k: self.first_value_after(items[k], started, f"{k} from run --all-netns",
                                                   timeout=WAIT)[2] for k in sorted(keys)}
        finally:
            daemon.terminate()
            try:
                status = daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                status = daemon.wait(10)
            with open(log_path, errors="replace") as f:
                run_log = f.read()
            subprocess.run(["rm", "-rf", buffer_dir], check=False)
        after = json.loads(self.stats("--all-netns"))
        self.assertEqual(status, 0, run_log[-2000:])
        compared = 0
        for name in sorted({support.WHO_KEY.match(k).group(2) for k in keys}):
            prefix = f'sockets.netns["{name}",'
            want_before = from_doc(prefix, before["netns"][name], NETNS_FIELDS)
            want_after = from_doc(prefix, after["netns"][name], NETNS_FIELDS)
            for key, value in want_before.items():
                if value == want_after[key]:
                    self.assertEqual(int(float(delivered[key])), value, key)
                    compared += 1
        self.assertGreater(compared, len(keys) // 2, "too few stable values to compare")
        print(f"# run --all-netns: {len(keys)} namespace items got values collected after it "
              f"started; {compared} stable ones equal `stats --all-netns`; SIGTERM -> exit 0",
              flush=True)


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
