#!/usr/bin/env python3
"""The generated templates: current with their generator, valid YAML, imported twice into the real
Zabbix 6.0 without error or duplicates, every object where the generator's table says, and the
"Sockets" dashboard on a linked host with widgets that show existing graphs.

    python3 e2e/test_templates.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import os
import re
import subprocess
import sys

import support
from support import (AGENT_TEMPLATE, DEPENDENT, HOST_GROUP, KERNEL_KEYS, KERNEL_KIND, LIMIT_KEYS,
                     LISTEN_FIELDS, MASTER_KEY, REMOTE_FIELDS, ROOT, TEMPLATE_FILES, TEMPLATE_KEYS,
                     TEMPLATE_TRIGGERS, TRAPPER_TEMPLATE, tplgen)

DASHBOARD_HOST = "zabbix-sockets-e2e-dashboard"


class Templates(support.TemplateHostsCase):
    """Checks on the files and on what the server made of them; one host for the dashboard."""

    fixed_hosts = (DASHBOARD_HOST,)

    def test_generated_templates_current(self):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "templates", "generate.py"), "--check"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        for path in TEMPLATE_FILES:
            with open(path) as f:
                text = f.read()
            uuids = re.findall(r"uuid: ([0-9a-f]+)$", text, re.M)
            for u in uuids:
                self.assertRegex(u, r"^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$", path)
            self.assertEqual(len(uuids), len(set(uuids)), f"duplicate uuid in {path}")

    def test_templates_parse_as_yaml(self):
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed (apt-get install python3-yaml)")
        for path in TEMPLATE_FILES:
            with open(path) as f:
                exp = yaml.safe_load(f)["zabbix_export"]
            self.assertEqual(exp["version"], "6.0")
            tpl = exp["templates"][0]
            self.assertEqual({i["key"] for i in tpl["items"]}, TEMPLATE_KEYS, path)
            for it in tpl["items"]:             # 7.x converters fill in what is left out
                self.assertIn("history", it, it["key"])
            rules = {r["key"]: r for r in tpl["discovery_rules"]}
            self.assertEqual(set(rules), {"sockets.listen.discovery", "sockets.remote.discovery",
                                          "sockets.unix.listen.discovery",
                                          "sockets.cgroup.discovery", "sockets.netns.discovery"})
            for r in rules.values():
                self.assertEqual(r["lifetime"], tplgen.LLD_LIFETIME)
            self.assertEqual(len(rules["sockets.listen.discovery"]["item_prototypes"]), len(LISTEN_FIELDS))
            self.assertEqual(len(rules["sockets.remote.discovery"]["item_prototypes"]), len(REMOTE_FIELDS))
            self.assertEqual(len(rules["sockets.unix.listen.discovery"]["item_prototypes"]),
                             len(support.UNIX_LISTEN_FIELDS))
            self.assertEqual(len(rules["sockets.cgroup.discovery"]["item_prototypes"]), 10)  # README
            self.assertEqual(len(rules["sockets.netns.discovery"]["item_prototypes"]), 12)   # README
            self.assertEqual([t["tag"] + ":" + t["value"] for t in tpl["tags"]], ["class:os", "target:linux"])
            self.assertTrue(all(m.get("description") for m in tpl["macros"]), "a macro lacks a description")

    def test_import_twice_updates_in_place(self):
        for _ in range(2):      # the second import updates in place (stable uuids, no duplicates)
            for path in TEMPLATE_FILES:
                self.assertIs(self.api.import_file(path), True, path)
        groups = self.api.call("hostgroup.get", {"output": ["groupid", "uuid"],
                                                 "filter": {"name": ["Templates/Operating systems"]}})
        self.assertEqual(len(groups), 1, groups)
        for name in (AGENT_TEMPLATE, TRAPPER_TEMPLATE):
            self.assertEqual(len(self.api.call("template.get", {"output": ["templateid"],
                                                                "filter": {"host": [name]}})), 1)

    def test_template_objects(self):
        proto_triggers = sum(len(v) for v in tplgen.TRIGGER_PROTOTYPES.values())
        deps_want = ({t["name"] for t in tplgen.TRIGGERS if t.get("depends")},
                     {t["name"] for v in tplgen.TRIGGER_PROTOTYPES.values() for t in v
                      if t.get("depends") or t.get("depends_template")})
        for name, master_type in ((AGENT_TEMPLATE, "0"), (TRAPPER_TEMPLATE, "2")):
            tpl = self.api.call("template.get", {"output": ["templateid"], "filter": {"host": [name]},
                                                 "selectMacros": "extend", "selectTags": "extend",
                                                 "selectGroups": ["name"]})
            self.assertEqual(len(tpl), 1, name)
            tid = tpl[0]["templateid"]
            self.assertEqual([g["name"] for g in tpl[0]["groups"]], ["Templates/Operating systems"])
            items = {i["key_"]: i for i in self.api.call("item.get", {
                "output": ["key_", "type", "value_type", "delay", "history", "trends", "master_itemid"],
                "templateids": [tid], "selectTags": "extend", "selectPreprocessing": "extend"})}
            self.assertEqual(set(items), TEMPLATE_KEYS)
            master = items[MASTER_KEY]
            self.assertEqual((master["type"], master["value_type"], master["trends"]),
                             (master_type, "4", "0"))
            if master_type == "0":
                self.assertEqual(master["delay"], "{$SOCKETS.INTERVAL}")
            for key in DEPENDENT:
                self.assertEqual((items[key]["type"], items[key]["value_type"]), ("18", "3"), key)
            for key, kname in KERNEL_KEYS.items():       # counters per second: float
                want = "0" if KERNEL_KIND[kname] == "counter" else "3"
                self.assertEqual((items[key]["type"], items[key]["value_type"]), ("18", want), key)
            for key in LIMIT_KEYS:
                self.assertEqual((items[key]["type"], items[key]["value_type"]), ("18", "0"), key)
            for key, it in items.items():
                self.assertTrue(any(t["tag"] == "component" for t in it["tags"]), key)
                throttled = [p["params"] for p in it["preprocessing"] if p["type"] == "20"]
                self.assertEqual(throttled, [support.heartbeat_of(key)] if support.heartbeat_of(key) else [],
                                 key)
            triggers = self.api.call("trigger.get", {"output": ["description", "priority"],
                                                     "templateids": [tid], "selectTags": "extend",
                                                     "selectDependencies": ["description"]})
            self.assertEqual(len(triggers), TEMPLATE_TRIGGERS, triggers)
            for t in triggers:
                self.assertIn([x["tag"] for x in t["tags"]], [["scope"]], t["description"])
            deps = {t["description"] for t in triggers if t["dependencies"]}
            self.assertEqual(deps, deps_want[0])
            rules = {r["key_"]: r for r in self.api.call("discoveryrule.get", {
                "output": ["key_", "type", "master_itemid", "lifetime"], "templateids": [tid],
                "selectFilter": "extend", "selectPreprocessing": "extend"})}
            self.assertEqual(set(rules), {"sockets.listen.discovery", "sockets.remote.discovery",
                                          "sockets.unix.listen.discovery",
                                          "sockets.cgroup.discovery", "sockets.netns.discovery"})
            for key, rule in rules.items():
                self.assertEqual(rule["type"], "18", key)
                self.assertEqual(rule["master_itemid"], master["itemid"], key)
                self.assertEqual(len(rule["filter"]["conditions"]), 2, key)
                self.assertEqual(rule["lifetime"], tplgen.LLD_LIFETIME, key)
            protos = self.api.call("itemprototype.get", {"output": ["key_"], "templateids": [tid],
                                                         "selectTags": "extend"})
            self.assertEqual(len(protos), len(LISTEN_FIELDS) + len(REMOTE_FIELDS) + len(support.UNIX_LISTEN_FIELDS) + 10 + 12)
            rule_tag = {"sockets.listen[": {"tag": "port", "value": "{#PORT}"},
                        "sockets.remote[": {"tag": "port", "value": "{#PORT}"},
                        "sockets.unix.listen[": {"tag": "path", "value": "{#PATH}"},
                        "sockets.cgroup[": {"tag": "{#KIND}", "value": "{#NAME}"},
                        "sockets.netns[": {"tag": "netns", "value": "{#NETNS}"}}
            for p in protos:
                self.assertIn(rule_tag[p["key_"].split("[")[0] + "["], p["tags"], p["key_"])
            tprotos = self.api.call("triggerprototype.get", {"output": ["description"],
                                                             "templateids": [tid],
                                                             "selectDependencies": ["description"]})
            self.assertEqual(len(tprotos), proto_triggers, tprotos)
            self.assertEqual({t["description"] for t in tprotos if t["dependencies"]}, deps_want[1])
            gprotos = self.api.call("graphprototype.get", {"output": ["name", "graphtype", "show_triggers"],
                                                           "templateids": [tid]})
            self.assertEqual(len(gprotos), sum(len(r["graphs"]) for r in tplgen.DISCOVERY_RULES))
            graphs = self.api.call("graph.get", {"output": ["name", "graphtype", "show_triggers"],
                                                 "templateids": [tid],
                                                 "selectGraphItems": ["itemid", "color"]})
            by_name = {g["name"]: g for g in graphs}
            self.assertEqual(by_name["Sockets by state"]["graphtype"], "1")       # stacked
            self.assertEqual(len(by_name["Sockets by state"]["gitems"]), 13)  # 11 TCP + 2 UDP
            for g in graphs + gprotos:           # no per-state trigger lines over a stack
                if g["graphtype"] == "1":
                    self.assertEqual(g["show_triggers"], "0", g["name"])
            macros = {m["macro"] for m in tpl[0]["macros"]}
            self.assertTrue({"{$SOCKETS.NODATA.TIMEOUT}", *tplgen.COMMON_MACROS} <= macros)

    def test_state_colours_are_the_same_in_every_graph(self):
        """One colour per state: host-wide, per listening port, per remote port, per cgroup and
        per namespace (their fields are `tcp.<state>`)."""
        seen = {}
        rows = [(f"{k.split('[')[1][:-1]}" if k.startswith("sockets.tcp") else "udp_" + k.split("[")[1][:-1], c)
                for k, _p, _n, c, _d in tplgen.ITEMS if c]
        for rule in tplgen.DISCOVERY_RULES:
            rows += [(f.split(".")[-1], c) for f, _n, _u, c, _d in rule["prototypes"] if c]
        for state, colour in rows:
            seen.setdefault(state, set()).add(colour)
        self.assertEqual({s: c for s, c in seen.items() if len(c) != 1}, {})
        self.assertEqual(len({c.pop() for c in seen.values()}), len(seen), "two states share a colour")

    def test_dashboard_on_a_linked_host(self):
        """The template dashboard exists once per template; on a host linked to the agent
        template it is offered (templatedashboard.get by the host's templates) and every widget
        references a graph or graph prototype of that template."""
        hostid = self.api.create_host(DASHBOARD_HOST, HOST_GROUP, AGENT_TEMPLATE)
        host = self.api.call("host.get", {"output": ["hostid"], "hostids": [hostid],
                                          "selectParentTemplates": ["templateid", "host"]})[0]
        tids = [t["templateid"] for t in host["parentTemplates"]]
        boards = self.api.call("templatedashboard.get", {"output": "extend", "templateids": tids,
                                                          "selectPages": "extend"})
        self.assertEqual([b["name"] for b in boards], [tplgen.DASHBOARD_NAME])
        tid = tids[0]
        graphs = {g["graphid"]: g["name"] for g in self.api.call("graph.get", {
            "output": ["name"], "templateids": [tid]})}
        protos = {g["graphid"]: g["name"] for g in self.api.call("graphprototype.get", {
            "output": ["name"], "templateids": [tid]})}
        shown = []
        for page in boards[0]["pages"]:
            for w in page["widgets"]:
                ids = [f["value"] for f in w["fields"] if f["name"] == "graphid"]
                self.assertEqual(len(ids), 1, w)
                pool = graphs if w["type"] == "graph" else protos
                self.assertIn(ids[0], pool, f"widget {w['type']} points to no graph of the template")
                shown.append((w["type"], pool[ids[0]]))
        self.assertEqual(shown, tplgen.dashboard_graph_names())
        print(f"# dashboard {tplgen.DASHBOARD_NAME!r}: {len(shown)} widgets: "
              + "; ".join(n for _k, n in shown), flush=True)


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
