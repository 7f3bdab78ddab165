#!/usr/bin/env python3
"""UNIX listening sockets discovery on the real server.

  - The test listens on two paths of its own (host namespace) with backlog 4 and 10 clients it
    never accepts (the kernel queues 5 and refuses the rest), and on two abstract names that
    look like the system's plumbing (@/org/freedesktop/..., @/tmp/dbus-...). `zabbix-sockets
    stats` is pushed to a trapper host whose {$SOCKETS.UNIX.PATH.MATCHES} keeps only the test's
    names: discovery creates the items of the two paths and of a third whose name holds a double
    quote and a backslash, and none for the two decoys, which the default
    {$SOCKETS.UNIX.PATH.NOT_MATCHES} leaves out; the values of one push equal its JSON.
  - The queue trigger fires for the full path, not for the path whose context macro
    {$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:"<path>"} raises its threshold, and resolves after the test
    accepts (drains) the queue.

    python3 e2e/test_unix.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import support
from support import MASTER_KEY, UNIX_LISTEN_FIELDS, Config

UNIX_HOST = "zabbix-sockets-e2e-unix"
BACKLOG, CLIENTS = 4, 10
ODD_CLIENTS = 2         # queued on the path with a quote and a backslash in its name
PUSH_EVERY = 3          # seconds between two pushes while waiting for the server
TRIGGER_WAIT = 120      # bound on waiting for a problem to open or to resolve


class UnixListeningSockets(support.TemplateHostsCase):

    held = []           # every socket the test holds
    directory = None

    fixed_hosts = (UNIX_HOST,)

    @classmethod
    def tearDownClass(cls):
        for s in cls.held:
            s.close()
        cls.held = []
        if cls.directory:
            shutil.rmtree(cls.directory, ignore_errors=True)
        super().tearDownClass()

    def listen(self, name, clients=0):
        """A stream listener on `name` (a path or @abstract) with `clients` non-blocking clients
        never accepted; returns (listener, number the kernel queued)."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.held.append(server)
        server.bind("\0" + name[1:] if name.startswith("@") else name)
        server.listen(BACKLOG)
        queued = 0
        for _ in range(clients):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            try:
                client.connect(server.getsockname())
            except BlockingIOError:
                client.close()          # the queue is full: the kernel refused this one
                continue
            self.held.append(client)
            queued += 1
        return server, queued

    def push(self, must_be_processed=True):
        """One `zabbix-sockets stats` document to the trapper host: (time sent, document). A
        server that has just been told of the host may refuse the first values (its
        configuration cache is behind): push_until keeps pushing then."""
        r = subprocess.run([Config.binary, "stats", "--sections", "counts,unix"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = time.time()
        ok, out = support.zabbix_sender(UNIX_HOST, MASTER_KEY, r.stdout.strip())
        if must_be_processed:
            self.assertTrue(ok, out)
        return t, json.loads(r.stdout)

    def push_until(self, condition, what):
        """Pushes every PUSH_EVERY seconds until condition() holds; bounded by TRIGGER_WAIT."""
        deadline = time.monotonic() + TRIGGER_WAIT
        for _ in range(TRIGGER_WAIT // PUSH_EVERY + 1):
            self.push(must_be_processed=False)
            time.sleep(PUSH_EVERY)
            found = condition()
            if found:
                return found
            if time.monotonic() > deadline:
                break
        self.fail(f"{what}: not within {TRIGGER_WAIT} s")

    def test_discovery_values_and_queue_trigger(self):
        tag = f"zs-e2e-{os.getpid()}"
        type(self).directory = tempfile.mkdtemp(prefix=tag + "-")
        full, calm = os.path.join(self.directory, "app.sock"), os.path.join(self.directory, "calm.sock")
        decoys = [f"@/org/freedesktop/{tag}", f"@/tmp/dbus-{tag}"]   # matched by the default NOT_MATCHES
        full_server, queued = self.listen(full, CLIENTS)
        self.assertEqual(queued, BACKLOG + 1, "a UNIX accept queue holds backlog + 1")
        self.listen(calm, CLIENTS)
        # A name a local user may well choose to break item keys and JSONPath: a double quote and
        # a backslash. Zabbix escapes both where discovery substitutes {#PATH}.
        odd = os.path.join(self.directory, 'we"ird\\name.sock')
        self.assertEqual(self.listen(odd, ODD_CLIENTS)[1], ODD_CLIENTS)
        for name in decoys:
            self.listen(name)
        mine = "|".join([self.directory + "/"] + decoys)
        hostid, _items = self.trapper_host(UNIX_HOST, macros={
            "{$SOCKETS.UNIX.PATH.MATCHES}": f"^({mine})",          # nothing of other processes
            "{$SOCKETS.UNIX.ACCEPTQ.PERIOD}": "10s",
            f'{{$SOCKETS.UNIX.ACCEPTQ.PCT.MAX:"{calm}"}}': "200",  # context: this path never fires
            "{$SOCKETS.LISTEN.PORT.MAX}": "0", "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$"})
        t0 = time.time()

        # Discovery: the two paths of the test, not the decoys.
        want = {support.unix_key(path, f) for path in (full, calm, odd) for f in UNIX_LISTEN_FIELDS}

        def discovered():
            found = {k for k, i in self.host_items(hostid).items() if i["flags"] == "4"}
            return found if found == want else None
        try:
            self.push_until(discovered, "items discovered for the test's three paths")
        except AssertionError:
            found = {k for k, i in self.host_items(hostid).items() if i["flags"] == "4"}
            rule = self.api.call("discoveryrule.get", {"output": ["key_", "state", "error"], "hostids": [hostid]})
            self.fail(f"discovered {sorted(found)}, want {sorted(want)}; rules {rule}")
        t_disc = time.time() - t0
        doc = self.push()[1]
        self.assertTrue(set(decoys) <= set(doc["unix_listen"]), "the decoys are in the JSON, only discovery skips them")

        # Values of one push equal its JSON.
        self.reload_cache()
        time.sleep(1)
        items = self.host_items(hostid)
        clock, ns, value = self.wait_master_after(items, self.push()[0], check_now=False)
        doc = json.loads(value)
        path_items = {k: i for k, i in items.items() if k in want}
        bad, n = self.compare_with_doc(path_items, clock, ns, doc, None)
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        got = {k: int(v) for k, v in self.api.values_at(list(path_items.values()), clock, ns).items()}
        self.assertEqual(got.get(support.unix_key(full, "accept_queue_pct")), 125, "5 waiting of a backlog of 4")
        self.assertEqual(doc["unix_listen"][full]["accept_queue"], BACKLOG + 1)
        self.assertEqual(doc["unix_listen"][full]["backlog"], BACKLOG)
        # (compare_with_doc held the odd path's items to this document; its queue is not 0, the
        # value a JSONPath that missed would give)
        self.assertEqual(doc["unix_listen"][odd]["accept_queue"], ODD_CLIENTS)
        self.assertEqual(self.host_items(hostid)[support.unix_key(odd, "accept_queue")]["lastvalue"], str(ODD_CLIENTS))

        # The queue trigger: fires for the full path, stays quiet for the one with a context macro.
        name_full = f"UNIX {full}: accept queue over 80% of its backlog for 10s"
        name_calm = f"UNIX {calm}: accept queue over 200% of its backlog for 10s"
        problems = self.push_until(lambda: name_full in self.open_problems(hostid) and self.open_problems(hostid),
                                   f"problem {name_full!r}")
        t_fire = time.time() - t0
        self.assertNotIn(name_calm, problems, "the context macro keeps the calm path quiet")

        # Drain: accept and close every waiting connection; the problem resolves.
        full_server.setblocking(False)
        for _ in range(BACKLOG + 2):
            try:
                conn, _addr = full_server.accept()
                conn.close()
            except BlockingIOError:
                break
        self.push_until(lambda: name_full not in self.open_problems(hostid), f"problem {name_full!r} resolved")
        print(f"# UNIX paths: {len(want)} items discovered {t_disc:.1f}s after host.create, {n} values equal the "
              f"JSON, queue problem at {t_fire:.1f}s, resolved at {time.time() - t0:.1f}s", flush=True)


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
