#!/usr/bin/env python3
"""What a host costs with the templates' defaults, measured on the real server: three profiles
held by tools/sockpop.py in namespaces of the test, counted by `zabbix-sockets stats --netns`,
pushed to trapper hosts (the agent template has the same items) six times, 10 s apart.

For each profile it prints the number of items the host ends up with (template items plus
discovered ones) and the values the server stored per collection once discovery and the
per-second counters have settled (collections 3 to 6, counted in history at each master value's
timestamp). At the default 1-minute interval that is the values per minute, plus the heartbeats
of throttled items (at most one value per item per 15 minutes, per hour for limits), printed
apart. The README's table comes from this output. The counts are checked against the table of
templates/generate.py (items = template items + 13 per kept listening port + 9 per watched
remote port), so a change to the templates that changes a host's cost fails here.

    python3 e2e/test_profiles.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import json
import sys
import time

import support
from support import CGROUP_FIELDS, LISTEN_FIELDS, REMOTE_FIELDS, TEMPLATE_KEYS, Config

PUSHES = 6
PUSH_EVERY_S = 10
PROFILES = {
    "web": ("a small web server: 3 listening ports, 40 client connections, 300 TIME_WAIT",
            ["--listen4", "3", "--established4", "40", "--time-wait4", "300", "--udp-bound4", "2"]),
    "database": ("a database host: 2 listening ports, 200 client connections",
                 ["--listen4", "2", "--established4", "200", "--udp-bound4", "1"]),
    "listeners300": ("a host with 300 listening ports and 20 connections",
                     ["--listen4", "300", "--established4", "20"]),
}


class Profiles(support.TemplateHostsCase):
    hosts = []

    def stored_at(self, items, clock, ns):
        n = 0
        by_type = {}
        for it in items.values():
            by_type.setdefault(int(it["value_type"]), []).append(it["itemid"])
        for vtype, ids in by_type.items():
            rows = self.api.call("history.get", {"output": ["ns"], "history": vtype, "itemids": ids,
                                                 "time_from": clock, "time_till": clock, "limit": 100000})
            n += sum(1 for r in rows if int(r["ns"]) == ns)
        return n

    def measure(self, label):
        what, args = PROFILES[label]
        host = f"zabbix-sockets-e2e-profile-{label}"
        type(self).hosts.append(host)
        pop = support.SockPop(f"prof-{label}", args)
        try:
            hostid, items = self.trapper_host(host)
            stamps = []
            for i in range(PUSHES):
                t0 = time.monotonic()
                text = pop.stats(Config.binary)
                sent_at, _ = support.send_with_sender(host, text)
                clock, ns, _v = self.wait_master_after(items, sent_at - 1, timeout=30, check_now=False)
                stamps.append((clock, ns))
                if i == 0:
                    doc = json.loads(text)
                    kept = support.listen_ports_discovered(doc)
                    remote = [r["{#PORT}"] for r in doc["remote_discovery"]]
                    cgroups = len(support.cgroups_discovered(doc))
                    want = (len(TEMPLATE_KEYS) + len(kept) * len(LISTEN_FIELDS) + len(remote) * len(REMOTE_FIELDS)
                            + len(support.unix_discovered_keys(doc)) + cgroups * len(CGROUP_FIELDS))
                    self.wait_while_pushing(lambda: support.send_with_sender(host, text),
                                            lambda: len(self.host_items(hostid)) == want,
                                            f"{want} items on the {label} host")
                    self.reload_cache()
                time.sleep(max(0.0, PUSH_EVERY_S - (time.monotonic() - t0)))
            items = self.host_items(hostid)
            self.assertEqual(len(items), want)
            time.sleep(3)           # the history syncer's last batch
            per = [self.stored_at(items, c, n) for c, n in stamps]
            steady = per[2:]
            heartbeats = {support.heartbeat_of(k) for k in items}
            floor = sum({"15m": 1 / 15, "1h": 1 / 60}.get(support.heartbeat_of(k), 0) for k in items)
            print(f"# profile {label} ({what}): {len(items)} items ({len(kept)} listening ports of "
                  f"{len(doc['listen_discovery'])} kept, {len(remote)} remote ports); values stored per "
                  f"collection: {per} -> steady {min(steady)}-{max(steady)}, mean "
                  f"{sum(steady) / len(steady):.1f}; heartbeats add at most {floor:.1f}/min "
                  f"({sorted(h for h in heartbeats if h)})", flush=True)
            self.assertLess(max(steady), len(items) / 2, "throttling stores well under half the items")
        finally:
            pop.close()

    def test_small_web_server(self):
        self.measure("web")

    def test_database_host(self):
        self.measure("database")

    def test_host_with_300_listeners(self):
        self.measure("listeners300")


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
