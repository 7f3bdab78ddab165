#!/usr/bin/env python3
"""Quiet defaults on busy hosts: what problems the templates raise, with default macros, for
populations held by tools/sockpop.py in namespaces of the test, counted by `zabbix-sockets stats
--netns` and pushed to trapper hosts (a collection every 10 s, so 5-minute windows fill with
several values; time functions evaluate on the values a window holds).

  - "bench": the benchmark population of scripts/bench (sockpop --bulk 100000: ESTABLISHED
    pairs, 10% TIME_WAIT kept refilled, a listener per worker). A healthy busy host: no problem
    at all.
  - "trouble": 500 listeners, 300 SYN_RECV (final ACKs dropped), 150 CLOSE_WAIT pairs on one
    service port, 2000 ESTABLISHED pairs. Exactly one problem: the host-wide CLOSE_WAIT trigger
    (150 > 100, a leak someone should look at). Its per-port CLOSE_WAIT trigger yields to it
    (dependency), SYN_RECV alone raises nothing (the kernel's SYN queues never overflowed), and
    discovery stops at {$SOCKETS.LISTEN.PORT.MAX} = 50 ports.

Every trigger of each host is printed with its state and the value it looked at.

    python3 e2e/test_busy.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import json
import sys
import time

import support
from support import LISTEN_FIELDS, Config

PUSHES = 5
PUSH_EVERY_S = 10
SHAPES = {
    "bench": (["--bulk", "100000", "--bulk-time-wait-fraction", "0.1", "--keep-time-wait"], set()),
    "trouble": (["--listen4", "500", "--syn-recv4", "300", "--close-wait4", "150",
                 "--established4", "2000"],
                {"Sockets: high number of CLOSE_WAIT sockets (over 100 for 15m)"}),
}


class BusyHosts(support.TemplateHostsCase):
    hosts = []

    def watch(self, label):
        args, want = SHAPES[label]
        host = f"zabbix-sockets-e2e-busy-{label}"
        type(self).hosts.append(host)
        pop = support.SockPop(f"busy-{label}", args, build_timeout=600)
        try:
            hostid, items = self.trapper_host(host)
            sizes = {k: v["total"] for k, v in pop.ready.items() if k in ("tcp", "udp")}
            print(f"# {label}: sockpop READY {sizes}", flush=True)
            doc = None
            for i in range(PUSHES):
                t0 = time.monotonic()
                text = pop.stats(Config.binary)
                support.send_with_sender(host, text)
                doc = json.loads(text)
                if i == 0:          # discovered items take values once the server's cache has them
                    kept = support.listen_ports_discovered(doc)
                    keys = {f"sockets.listen[{p},{f}]" for p in kept for f in LISTEN_FIELDS}
                    self.wait_while_pushing(lambda: support.send_with_sender(host, text),
                                            lambda: keys <= set(self.host_items(hostid)),
                                            f"{len(kept)} listening ports discovered")
                    self.reload_cache()
                time.sleep(max(0.0, PUSH_EVERY_S - (time.monotonic() - t0)))
            time.sleep(3)           # the last values' triggers
            problems = self.open_problems(hostid)
            triggers = self.api.call("trigger.get", {
                "output": ["description", "value", "state", "error", "opdata"], "hostids": [hostid],
                "expandDescription": True, "selectItems": ["key_", "lastvalue"]})
            n_items = len(self.host_items(hostid))
            print(f"# {label}: {doc['tcp']['total']} TCP + {doc['udp']['total']} UDP sockets, "
                  f"{len(doc['listen_discovery'])} listening ports ({len(kept)} discovered), "
                  f"{n_items} items, {len(triggers)} triggers; problems: {sorted(problems) or 'none'}",
                  flush=True)
            for t in sorted(triggers, key=lambda t: t["description"]):
                state = ("PROBLEM" if t["value"] == "1" else "ok") if t["state"] == "0" else "unknown"
                looked = ", ".join(f"{i['key_']}={i['lastvalue']}" for i in t["items"]
                                   if i["key_"] != support.MASTER_KEY)
                print(f"#   {state:8} {t['description']}  [{looked}]", flush=True)
            self.assertEqual(set(problems), want)
            return doc, kept
        finally:
            pop.close()

    def test_benchmark_population_raises_nothing(self):
        doc, kept = self.watch("bench")
        self.assertGreaterEqual(doc["tcp"]["total"], 100000 - 1000)

    def test_trouble_population_raises_only_the_close_wait_leak(self):
        doc, kept = self.watch("trouble")
        self.assertEqual(len(kept), int(support.MACRO_DEFAULTS["{$SOCKETS.LISTEN.PORT.MAX}"]))
        self.assertGreaterEqual(doc["tcp"]["syn_recv"], 300)


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
