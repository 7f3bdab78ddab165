#!/usr/bin/env python3
"""The trapper template, fed by zabbix_sender and by `zabbix-sockets send`, and the counts of a
namespace the test owns: tools/sockpop.py builds an exact population in it, `zabbix-sockets stats
--netns` counts it, and the values the server stores for that collection must equal both the
document and sockpop's own count of the kernel. Nothing else on the machine can open or close
sockets in that namespace, so the comparison is exact on a busy machine too.

    python3 e2e/test_trapper.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import json
import subprocess
import sys
import time

import support
from support import DEPENDENT, LISTEN_FIELDS, REMOTE_FIELDS, TCP_STATES, Config

TRAPPER_HOST = "zabbix-sockets-e2e-trapper"
NS_HOST = "zabbix-sockets-e2e-namespace"
# Every TCP state sockpop can hold still, both families, UDP both ways.
POPULATION = ["--listen4", "20", "--listen6", "5", "--established4", "10", "--established6", "3",
              "--close-wait4", "6", "--lone-close-wait6", "2", "--syn-sent4", "3", "--syn-recv4", "4",
              "--udp-bound4", "9", "--udp-connected4", "4", "--udp-bound6", "3", "--udp-connected6", "5"]


class TrapperTemplate(support.TemplateHostsCase):

    fixed_hosts = (TRAPPER_HOST, NS_HOST)

    def test_zabbix_sender(self):
        """The trapper template gets the same document pushed with zabbix_sender."""
        hostid, items = self.trapper_host(TRAPPER_HOST)
        out = subprocess.run([Config.binary, "stats", "--format", "json"], stdout=subprocess.PIPE,
                             text=True, check=True, timeout=30).stdout.strip()
        doc = json.loads(out)
        clock, ns, value, deps = self.push_until_dependents(
            lambda: support.send_with_sender(TRAPPER_HOST, out)[0], items)
        self.assertEqual(json.loads(value), doc)
        for key, (proto, state) in DEPENDENT.items():
            self.assertEqual(deps[key], doc[proto][state], key)
        bad = {k: v for k, v in self.api.item_states(hostid).items() if v != ("0", "")}
        self.assertEqual(bad, {}, "unsupported trapper items")

    def test_zabbix_sockets_send(self):
        """`zabbix-sockets send` to a trapper-template host, twice: the first document's values
        arrive and its discovery rows make items for the listening ports the template keeps and
        the watched remote ports; the second document reaches every item, discovered ones and
        kernel counters (per second since the first) included."""
        if not support.binary_has_send(Config.binary):
            self.skipTest("binary has no `send` subcommand yet")
        hostid, items = self.trapper_host(TRAPPER_HOST)
        argv = support.send_argv(Config.binary, TRAPPER_HOST, int(Config.env["ZBX_SERVER_PORT"]))

        pushed = []

        def push():
            """`zabbix-sockets send` until it exits 0 (bounded: the config cache may lag behind);
            the time before it ran."""
            deadline, t0, r = time.monotonic() + 60, time.time(), None
            while time.monotonic() < deadline:
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
                if r.returncode == 0:
                    pushed.append(t0)
                    return t0
                self.reload_cache()
                time.sleep(1)
            self.fail(f"zabbix-sockets send: {r.stdout}")
        clock, ns, value, deps = self.push_until_dependents(push, items)
        doc = json.loads(value)
        for key, (proto, state) in DEPENDENT.items():
            self.assertEqual(deps[key], doc[proto][state], key)

        want = ({f"sockets.listen[{p},{f}]" for p in support.listen_ports_discovered(doc) for f in LISTEN_FIELDS}
                | {f"sockets.remote[{r['{#PORT}']},{f}]" for r in doc["remote_discovery"] for f in REMOTE_FIELDS}
                | support.unix_discovered_keys(doc))
        found = {}
        def discovered():
            # ports and UNIX paths only: the host's cgroups come and go with other processes
            found["keys"] = {k for k, i in self.host_items(hostid).items()
                             if i["flags"] == "4" and (support.PORT_KEY.match(k) or support.UNIX_KEY.match(k))}
            return found["keys"] == want
        try:
            self.wait_while_pushing(push, discovered, f"{len(want)} discovered items on the trapper host")
        except TimeoutError:
            self.fail(f"missing {sorted(want - found['keys'])[:10]}, unexpected {sorted(found['keys'] - want)[:10]}")
        if len(pushed) > 1:     # the per-second items of the next push count from the newest
            clock, ns, value = self.wait_master_after(items, pushed[-1] - 2, timeout=30, check_now=False)
            doc = json.loads(value)
        self.reload_cache()
        time.sleep(1)
        t1 = time.time()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)
        items = self.host_items(hostid)
        clock2, ns2, value2 = self.wait_master_after(items, t1 - 1, timeout=30, check_now=False)
        bad, n = self.compare_with_doc(items, clock2, ns2, json.loads(value2), (clock, ns, doc))
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        unsupported = {k: v for k, v in self.api.item_states(hostid).items() if v != ("0", "")}
        self.assertEqual(unsupported, {}, "unsupported trapper-host items")
        print(f"# trapper host: {len(want)} items discovered from the first push, {n} values of "
              f"the second push equal its JSON", flush=True)

    def test_counts_of_an_owned_namespace(self):
        """sockpop holds every TCP state (IPv4 and IPv6) and UDP both ways in a namespace of this
        test; `stats --netns` counts it; the server stores exactly sockpop's kernel count."""
        pop = support.SockPop("trapper", POPULATION)
        try:
            hostid, items = self.trapper_host(NS_HOST, macros={"{$SOCKETS.REMOTE.PORT.MATCHES}": "^$"})
            text = pop.stats(Config.binary)
            clock, ns, value, deps = self.push_until_dependents(
                lambda: support.send_with_sender(NS_HOST, text)[0], items)
            self.assertEqual(value, text, "the server stored what stats printed")
            ready = pop.ready
            for key, (proto, state) in DEPENDENT.items():
                self.assertEqual(deps[key], ready[proto].get(state, 0 if state != "total" else
                                 sum(ready[proto].values())), f"{key}: server vs sockpop")
            self.assertEqual(sum(deps[f"sockets.tcp[{s}]"] for s in TCP_STATES), deps["sockets.tcp[total]"])
            print("# owned namespace, stored = sockpop: " + ", ".join(
                f"{k.split('[')[0][8:]} {k.split('[')[1][:-1]}={v}" for k, v in deps.items() if v), flush=True)
        finally:
            pop.close()


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
