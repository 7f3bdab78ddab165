#!/usr/bin/env python3
"""The classic drop-in: the items of the classic "Template App Sockets" (9 trapper
sock[<ss state>], sock[UDP] polled from a second test agent whose UserParameter sock[*] runs
`zabbix-sockets send --classic -c <its config>`): values arrive, LISTEN, CLOSE-WAIT, FIN-WAIT-2 and
UDP equal `ss` (the classic pipeline counts the host's namespace, so each poll is compared with ss
sampled right before and after it, retried when they differ), the refused sock[CLOSING] does not
make sock[UDP] unsupported, an added sock[CLOSING] item gets values, and a host name unknown to
Zabbix exits 2 naming the host.

    python3 e2e/test_classic.py [--binary PATH] [--assume-up] [--down] [-k PATTERN]
"""
import os
import re
import subprocess
import sys
import time

import support
from support import HOST_GROUP, POLL_INTERVAL, Config, zbxapi

CLASSIC_HOST = "zabbix-sockets-e2e-classic"
NO_SUCH_HOST = "zabbix-sockets-e2e-no-such-host"
# The classic template (landscape.md section 1): trapper items sock[<ss state>], and sock[UDP]
CLASSIC_STATES = ["ESTAB", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK",
                  "SYN-RECV", "SYN-SENT", "LISTEN"]


class ClassicDropIn(support.ZabbixCase):
    classic = None          # {"agent", "binary", "hostid"}

    @classmethod
    def setUpClass(cls):
        """A host with the classic template's items (9 trapper sock[<ss state>], numeric
        unsigned; sock[UDP] as a passive agent item so the server polls the test agent), and the
        classic UserParameter sock[*] replaced by `zabbix-sockets send --classic -c <agent conf>`."""
        super().setUpClass()
        state_dir = Config.env["ZBX_STATE"]
        binary, _ = support.binary_for_agent(Config.binary, state_dir)
        port = support.free_loopback_port()
        agent = support.Agent(state_dir, binary, port=port, hostname=CLASSIC_HOST, subdir="classic",
                              server_active=f"127.0.0.1:{Config.env['ZBX_SERVER_PORT']}")
        agent.extra_dropins = {"classic.conf": support.classic_dropin(binary, agent.conf)}
        cls.classic = c = {"agent": None, "binary": binary}
        hostid = cls.api.create_host(CLASSIC_HOST, HOST_GROUP, None, agent_port=port)
        c["hostid"] = hostid
        cls.api.call("item.create", [
            {"hostid": hostid, "name": st, "key_": f"sock[{st}]", "type": 2, "value_type": 3,
             "history": "90d", "trends": "365d"} for st in CLASSIC_STATES])
        agent.write_config()
        c["agent"] = agent
        # The server knows the host's trapper items once its configuration cache has them: the
        # command itself, as user zabbix with the agent's config, is the probe (bounded).
        deadline, r = time.monotonic() + 40, None
        while time.monotonic() < deadline:
            cls.reload_cache()
            r = cls.classic_send()
            if r.returncode == 0:
                break
            time.sleep(1)
        if r.returncode != 0:
            raise AssertionError(f"send --classic never succeeded: {r.stderr}")
        if not re.match(r"^\d+\n$", r.stdout):
            raise AssertionError(f"stdout must be the UDP count only: {r.stdout!r}")
        agent.start()
        iface = cls.api.call("hostinterface.get", {"output": ["interfaceid"], "hostids": [hostid]})
        cls.api.call("item.create", {"hostid": hostid, "name": "UDP", "key_": "sock[UDP]",
                                     "type": 0, "value_type": 3, "delay": POLL_INTERVAL,
                                     "interfaceid": iface[0]["interfaceid"],
                                     "history": "90d", "trends": "365d"})
        cls.reload_cache()

    @classmethod
    def tearDownClass(cls):
        c = cls.classic
        if c and c.get("agent"):
            c["agent"].stop()
        cls.delete_hosts(CLASSIC_HOST)
        super().tearDownClass()

    @classmethod
    def classic_send(cls, *extra, conf=None):
        """`send --classic -c CONF` run as the agent runs it (user zabbix)."""
        c = cls.classic
        return subprocess.run(["runuser", "-u", "zabbix", "--", c["binary"], "send", "--classic",
                               "-c", conf or c["agent"].conf, *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=90)

    def classic_items(self):
        return self.host_items(type(self).classic["hostid"])

    def test_values_equal_ss(self):
        """One poll of sock[UDP] delivers all 9 trapper values from one count; LISTEN, CLOSE-WAIT
        and FIN-WAIT-2 equal `ss`, and sock[UDP] equals `ss -Huan | wc -l` (no header line)."""
        items = self.classic_items()
        udp_item = items["sock[UDP]"]
        exact = {"LISTEN": ("-tln",), "CLOSE-WAIT": ("-tan", "state", "close-wait"),
                 "FIN-WAIT-2": ("-tan", "state", "fin-wait-2"), "UDP": ("-uan",)}
        why = ""
        for attempt in range(4):        # bounded: others' sockets may move during one poll
            if why:
                print(f"# classic: {why}, retrying ({attempt})", flush=True)
            time.sleep(0.5)
            before = {k: len(support.ss_lines(*a)) for k, a in exact.items()}
            t = time.time()
            try:
                self.api.check_now([udp_item["itemid"]])
            except zbxapi.ZabbixAPIError:
                pass
            uclock, uns, udp = self.first_value_after(udp_item, t, "a sock[UDP] value", timeout=60)
            after = {k: len(support.ss_lines(*a)) for k, a in exact.items()}
            if before != after:
                why = f"ss moved during the poll {before} -> {after}"
                continue

            def trapper_values():
                # values counted after t (the ss sample) and sent before the sock[UDP] answer
                got = {}
                for st in CLASSIC_STATES:
                    rows = [r for r in self.api.history(items[f"sock[{st}]"], time_from=int(t), limit=20)
                            if r[0] + r[1] / 1e9 >= t and (r[0], r[1]) <= (uclock, uns)]
                    if not rows:
                        return None
                    got[st] = max(rows)
                return got
            try:
                vals = zbxapi.wait_until(trapper_values, 10, 1, "the 9 trapper values of that poll")
            except TimeoutError:
                why = "no trapper values counted after the ss sample (a poll already under way?)"
                continue
            stamps = {(v[0], v[1]) for v in vals.values()}
            self.assertEqual(len(stamps), 1, f"the 9 values come from one count: {vals}")
            got = {st: int(v[2]) for st, v in vals.items()}
            got["UDP"] = int(udp)
            differ = {k: (got[k], before[k]) for k in exact if got[k] != before[k]}
            if differ:
                why = f"item != ss (item, ss): {differ}"
                continue
            break
        else:
            self.fail(f"no poll matched ss in 4 tries; last: {why}")
        self.assertGreaterEqual(got["LISTEN"], 2, "the server's and this agent's listeners at least")
        print(f"# classic: {', '.join(f'{k}={v}' for k, v in got.items())}; "
              f"`ss -uan | wc -l` (with header) would say {len(support.ss_lines('-uan')) + 1}", flush=True)

    def test_closing_refused_then_accepted(self):
        """sock[CLOSING] has no item in the classic template: the server refuses that value, the
        command still exits 0 and prints only the UDP count, sock[UDP] stays supported; after a
        trapper item sock[CLOSING] is added, its values arrive with the next polls."""
        items = self.classic_items()
        self.assertNotIn("sock[CLOSING]", items)
        udp_item = items["sock[UDP]"]
        t = time.time()
        self.first_value_after(udp_item, t, "another sock[UDP] poll", timeout=30)
        st, err = self.api.item_states(type(self).classic["hostid"])["sock[UDP]"]
        self.assertEqual((st, err), ("0", ""), "sock[UDP] must stay supported")
        r = self.classic_send("-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^\d+\n$")
        self.assertIn("refused sock[CLOSING]", r.stderr)

        self.api.call("item.create", {"hostid": type(self).classic["hostid"], "name": "CLOSING",
                                      "key_": "sock[CLOSING]", "type": 2, "value_type": 3})
        items = self.classic_items()

        def closing_accepted():
            self.reload_cache()
            r = self.classic_send("-v")
            return r if r.returncode == 0 and "refused sock[CLOSING]" not in r.stderr else None
        zbxapi.wait_until(closing_accepted, 30, 1, "the server to accept sock[CLOSING]")
        t = time.time()
        try:
            self.api.check_now([udp_item["itemid"]])
        except zbxapi.ZabbixAPIError:
            pass
        clock, ns, value = self.first_value_after(items["sock[CLOSING]"], t, "a sock[CLOSING] value from a poll")
        self.assertRegex(value, r"^\d+$")
        st, err = self.api.item_states(type(self).classic["hostid"])["sock[UDP]"]
        self.assertEqual((st, err), ("0", ""))
        print(f"# classic: sock[CLOSING]={value} arrived {clock + ns / 1e9 - t:.1f}s after the poll "
              f"was asked for", flush=True)

    def test_unknown_host_exits_2(self):
        """`send --classic` with a Hostname Zabbix does not know: exit 2, a message naming the
        host, nothing on stdout (the agent would store no misleading UDP count)."""
        agent = type(self).classic["agent"]
        with open(agent.conf) as f:
            text = f.read()
        conf = os.path.join(agent.dir, "no-such-host.conf")
        with open(conf, "w") as f:
            f.write(re.sub(r"^Hostname=.*$", f"Hostname={NO_SUCH_HOST}", text, flags=re.M))
        os.chmod(conf, 0o644)
        r = self.classic_send(conf=conf)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(NO_SUCH_HOST, r.stderr)
        self.assertEqual(r.stdout, "")
        print(f"# classic, unknown host: exit 2: {r.stderr.strip()[:200]}", flush=True)


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
