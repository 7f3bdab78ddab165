#!/usr/bin/env python3
"""Listening ports discovery on the real server.

  - Two listeners of the test on 127.0.0.1 (host namespace, polled by a test agent): one whose
    accept queue the test fills and never accepts, one with connections in CLOSE_WAIT. Their
    items and values, the accept-queue and per-port CLOSE_WAIT triggers firing (problem.get), the
    listen overflow trigger staying quiet while the full port's own trigger names the cause, and
    the accept-queue problem resolving after the queue drains.
  - Bounded discovery: a namespace of the test (tools/sockpop.py) with 40 listeners, 30 of them
    inside its ephemeral port range, pushed to trapper hosts: items for the 10 service ports
    only by default; all 40 with {$SOCKETS.LISTEN.EPHEMERAL}=1; the 5 lowest with
    {$SOCKETS.LISTEN.PORT.MAX}=5.

    python3 e2e/test_ports.py [--binary PATH] [--assume-up] [--down] [--keep-agent] [-k PATTERN]
"""
import json
import socket
import sys
import time

import support
from support import (AGENT_TEMPLATE, HOST_GROUP, LISTEN_FIELDS, POLL_INTERVAL, Config, zbxapi)

PORTS_HOST = "zabbix-sockets-e2e-ports"
UNEXPLAINED_HOST = "zabbix-sockets-e2e-ports-unexplained"   # the same agent, no port discovered
BOUNDED_HOSTS = {"default": ("zabbix-sockets-e2e-bounded", {}),
                 "ephemeral": ("zabbix-sockets-e2e-bounded-eph", {"{$SOCKETS.LISTEN.EPHEMERAL}": "1"}),
                 "max5": ("zabbix-sockets-e2e-bounded-max5", {"{$SOCKETS.LISTEN.PORT.MAX}": "5"})}


class ListeningPorts(support.TemplateHostsCase):

    agent = None
    ports = None            # {"hostid", "p_full", "p_conn", "socks", ...}

    fixed_hosts = tuple(h for h, _m in BOUNDED_HOSTS.values())

    @classmethod
    def tearDownClass(cls):
        cls.close_ports()
        if cls.agent and not Config.keep_agent:
            cls.agent.stop()
        super().tearDownClass()

    @classmethod
    def close_ports(cls):
        p = cls.ports
        if not p:
            return
        for s in p["socks"]:
            try:
                s.close()
            except OSError:
                pass
        cls.delete_hosts(PORTS_HOST, UNEXPLAINED_HOST)
        cls.ports = None

    def test_full_accept_queue_and_close_wait_on_discovered_ports(self):
        path, note = support.binary_for_agent(Config.binary, Config.env["ZBX_STATE"])
        type(self).agent = support.Agent(Config.env["ZBX_STATE"], path)
        self.agent.start()
        self.check_listen_discovery_items_and_values()
        self.check_accept_queue_trigger_fires_and_resolves()

    def test_discovery_leaves_out_ephemeral_ports_and_is_bounded(self):
        pop = support.SockPop("ports", ["--listen4", "40"])
        try:
            low = 4010      # sockpop's listeners are 4000..4039: 4010..4039 become ephemeral
            pop.run("sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={low} 65535")
            text = pop.stats(Config.binary)
            doc = json.loads(text)
            self.assertEqual(doc["kernel"]["ip_local_port_range_low"], low)
            self.assertEqual(len(doc["listen_discovery"]), 40, doc["listen_discovery"])
            want = {"default": [str(p) for p in range(4000, 4010)],
                    "ephemeral": [str(p) for p in range(4000, 4040)],
                    "max5": [str(p) for p in range(4000, 4005)]}
            hosts = {}
            for label, (host, macros) in BOUNDED_HOSTS.items():
                macros = dict(macros, **{"{$SOCKETS.REMOTE.PORT.MATCHES}": "^$"})
                hosts[label] = self.trapper_host(host, macros)[0]
                self.assertEqual(support.listen_ports_discovered(doc, macros), want[label], label)
            for label, (host, _m) in BOUNDED_HOSTS.items():
                support.send_with_sender(host, text)
            for label, hostid in hosts.items():
                keys = {f"sockets.listen[{p},{f}]" for p in want[label] for f in LISTEN_FIELDS}
                found = {}

                def discovered():
                    found["keys"] = {k for k, i in self.host_items(hostid).items()
                             if i["flags"] == "4" and support.PORT_KEY.match(k)}
                    return found["keys"] == keys
                try:
                    host = BOUNDED_HOSTS[label][0]
                    self.wait_while_pushing(lambda: support.send_with_sender(host, text), discovered,
                                            f"items of {len(want[label])} ports ({label})")
                except TimeoutError:
                    ports = sorted({k.split("[")[1].split(",")[0] for k in found["keys"]})
                    rules = self.api.call("discoveryrule.get", {
                        "output": ["key_", "state", "error", "lastclock"], "hostids": [hostid]})
                    self.fail(f"{label}: items for ports {ports}, want {want[label]}; rules {rules}")
                n_items = len(self.host_items(hostid))
                print(f"# {label}: 40 listeners (30 ephemeral) -> items for {len(want[label])} ports, "
                      f"{n_items} items on the host", flush=True)
        finally:
            pop.close()

    def check_listen_discovery_items_and_values(self):
        """Two listeners of the test on 127.0.0.1: one with backlog 4 whose accept queue the test
        fills and never accepts, one with 3 accepted connections and 2 the clients half-closed
        (CLOSE_WAIT on the port). A host whose {$SOCKETS.LISTEN.PORT.MATCHES} keeps only these
        two ports gets their 2 x 13 items from discovery, and the values of one poll equal the
        JSON and what the test holds."""
        backlog = 4
        socks = []
        type(self).ports = p = {"socks": socks}
        full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(full)
        full.bind(("127.0.0.1", 0))
        full.listen(backlog)
        p_full = full.getsockname()[1]
        for _ in range(backlog + 2):        # bounded; stops when Recv-Q reaches the backlog
            if support.listen_queue(p_full)[0] >= backlog:
                break
            socks.append(socket.create_connection(("127.0.0.1", p_full), timeout=5))
            time.sleep(0.05)
        queue, limit = support.listen_queue(p_full)
        self.assertEqual((queue, limit), (backlog, backlog), "accept queue full")
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(conn)
        conn.bind(("127.0.0.1", 0))
        conn.listen(16)
        p_conn = conn.getsockname()[1]
        for i in range(5):
            c = socket.create_connection(("127.0.0.1", p_conn), timeout=5)
            socks += [c, conn.accept()[0]]
            if i >= 3:
                c.shutdown(socket.SHUT_WR)      # server side: CLOSE_WAIT on p_conn
        p.update(p_full=str(p_full), p_conn=str(p_conn), full=full, backlog=backlog)
        hostid = self.api.create_host(PORTS_HOST, HOST_GROUP, AGENT_TEMPLATE, macros={
            "{$SOCKETS.INTERVAL}": POLL_INTERVAL,
            "{$SOCKETS.LISTEN.PORT.MATCHES}": f"^({p_full}|{p_conn})$",
            "{$SOCKETS.LISTEN.EPHEMERAL}": "1",        # the test's listeners have ephemeral ports
            "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$",
            "{$SOCKETS.UNIX.PATH.MATCHES}": "^$",     # UNIX paths are e2e/test_unix.py's
            "{$SOCKETS.ACCEPTQ.PERIOD}": "10s",
            "{$SOCKETS.LISTEN_OVERFLOWS.MAX}": "0",     # any overflow (test_51 makes some)
            # macro context: only this port's CLOSE_WAIT threshold is lowered
            f'{{$SOCKETS.PORT.CLOSE_WAIT.MAX:"{p_conn}"}}': "1"})
        p["hostid"] = hostid
        # The same agent's numbers on a host that discovers no port: there, nothing explains the
        # overflows, so the template's overflow trigger must fire.
        p["unexplained"] = self.api.create_host(UNEXPLAINED_HOST, HOST_GROUP, AGENT_TEMPLATE, macros={
            "{$SOCKETS.INTERVAL}": POLL_INTERVAL, "{$SOCKETS.LISTEN.PORT.MAX}": "0",
            "{$SOCKETS.REMOTE.PORT.MATCHES}": "^$", "{$SOCKETS.UNIX.PATH.MATCHES}": "^$",
            "{$SOCKETS.LISTEN_OVERFLOWS.MAX}": "0"})
        t0 = p["created"] = time.time()
        self.reload_cache()
        want = {f"sockets.listen[{port},{f}]" for port in (p_full, p_conn) for f in LISTEN_FIELDS}

        def discovered():
            found = {k for k, i in self.host_items(hostid).items()
                             if i["flags"] == "4" and support.PORT_KEY.match(k)}
            return found if found == want else None
        try:
            zbxapi.wait_until(discovered, 60, 1, "items discovered for the two ports")
        except TimeoutError:
            rule = self.api.call("discoveryrule.get", {"output": ["key_", "state", "error"],
                                                       "hostids": [hostid]})
            found = {k for k, i in self.host_items(hostid).items()
                             if i["flags"] == "4" and support.PORT_KEY.match(k)}
            self.fail(f"discovered {sorted(found)}, want {sorted(want)}; rules {rule}")
        t_disc = time.time() - t0
        self.reload_cache()
        time.sleep(1)
        items = self.host_items(hostid)
        clock, ns, value = self.wait_master_after(items, time.time())
        doc = json.loads(value)
        port_items = {k: i for k, i in items.items() if k in want}
        bad, n = self.compare_with_doc(port_items, clock, ns, doc, None)
        self.assertEqual(bad, {}, "stored (item) vs expected (JSON)")
        got = {k: int(v) for k, v in self.api.values_at(list(port_items.values()), clock, ns).items()}
        f = lambda port, field: got[f"sockets.listen[{port},{field}]"]
        self.assertEqual([f(p_full, x) for x in ("listeners", "backlog", "accept_queue", "accept_queue_pct")],
                         [1, backlog, backlog, 100])
        self.assertEqual([f(p_conn, x) for x in ("listeners", "accept_queue", "established", "close_wait", "total")],
                         [1, 0, 3, 2, 5])
        print(f"# ports {p_full} (queue full) and {p_conn}: 26 items discovered {t_disc:.1f}s after "
              f"host.create, values at {time.time() - t0:.1f}s", flush=True)

    def check_accept_queue_trigger_fires_and_resolves(self):
        """The discovered accept-queue trigger of the full port is a problem in Zabbix
        (problem.get) while the queue stays full; the context macro fires the CLOSE_WAIT trigger
        of the other port only. Two more clients (one more fits: the kernel queues up to
        backlog + 1; the SYNs of the last are dropped) make the kernel count listen overflows:
        the template's overflow trigger ({$SOCKETS.LISTEN_OVERFLOWS.MAX}=0) fires on a second
        host that discovers no port (nothing explains them there), and stays quiet on this one,
        whose full port's trigger already names the cause. After the test accepts and closes the
        queued connections, the accept-queue problem is resolved."""
        p = type(self).ports
        try:
            hostid = p["hostid"]
            triggers = {t["description"]: t["triggerid"] for t in self.api.call("trigger.get", {
                "output": ["description"], "hostids": [hostid], "filter": {"flags": 4}})}
            def tid(port, what):
                hit = [i for d, i in triggers.items() if d.startswith(f"Port {port}: ") and what in d]
                self.assertEqual(len(hit), 1, (port, what, triggers))
                return hit[0]
            aq_full, aq_conn = tid(p["p_full"], "accept queue"), tid(p["p_conn"], "accept queue")
            cw_full, cw_conn = tid(p["p_full"], "CLOSE_WAIT"), tid(p["p_conn"], "CLOSE_WAIT")
            # the other two exist (tid checks) and must not be problems: see the set below
            del aq_conn, cw_full

            def open_problems():
                return {pr["objectid"]: pr for pr in self.api.problems(hostid, triggers.values())
                        if pr["r_eventid"] == "0"}
            def fired():
                o = open_problems()
                return o if {aq_full, cw_conn} <= set(o) else None
            probs = zbxapi.wait_until(fired, 60, 1, "the accept-queue and CLOSE_WAIT problems")
            self.assertEqual(support.listen_queue(int(p["p_full"]))[0], p["backlog"], "queue still full")
            self.assertEqual(set(probs), {aq_full, cw_conn}, {k: v["name"] for k, v in probs.items()})
            since = int(probs[aq_full]["clock"]) - p["created"]
            print(f"# problem open while the queue is full (since {since:.0f}s after host.create): "
                  f"{probs[aq_full]['name']}", flush=True)
            print(f"# problem: {probs[cw_conn]['name']}", flush=True)

            def overflow_trigger(h):
                ts = [t for t in self.api.call("trigger.get", {
                    "output": ["description", "value", "state"], "hostids": [h], "filter": {"flags": 0}})
                    if t["description"].startswith("Sockets: listen queue overflows")]
                self.assertEqual(len(ts), 1)
                return ts[0]
            overflow_tid = [overflow_trigger(p["unexplained"])["triggerid"]]
            before = support.kernel_counter("TcpExt", "ListenOverflows")
            p["socks"].append(socket.create_connection(("127.0.0.1", int(p["p_full"])), timeout=5))
            late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            late.setblocking(False)
            late.connect_ex(("127.0.0.1", int(p["p_full"])))     # SYN dropped: queue is full
            try:
                zbxapi.wait_until(lambda: support.kernel_counter("TcpExt", "ListenOverflows") > before, 10,
                                  0.2, "the kernel to count a listen overflow")
                t2 = time.time()
                zbxapi.wait_until(lambda: [pr for pr in self.api.problems(p["unexplained"], overflow_tid)
                                           if pr["r_eventid"] == "0"], 40, 1,
                                  "the listen overflows problem on the host that discovers no port")
                print(f"# listen overflows {before} -> {support.kernel_counter('TcpExt', 'ListenOverflows')}:"
                      f" problem on the host without discovered ports {time.time() - t2:.1f}s later",
                      flush=True)
                time.sleep(6)                   # one more poll of this host with the same numbers
                quiet = overflow_trigger(hostid)
                self.assertEqual((quiet["state"], quiet["value"]), ("0", "0"),
                                 "the overflow trigger must yield to the full port's trigger")
                self.assertIn(aq_full, open_problems())
            finally:
                late.close()                    # no more SYN retransmits into the drained queue

            full = p["full"]                    # drain: accept and close every queued connection
            full.settimeout(2)
            for _ in range(p["backlog"] + 3):
                if support.listen_queue(int(p["p_full"]))[0] == 0:
                    break
                full.accept()[0].close()
            self.assertEqual(support.listen_queue(int(p["p_full"]))[0], 0)
            t1 = time.time()

            def resolved():
                prs = [pr for pr in self.api.problems(hostid, [aq_full]) if pr["r_eventid"] != "0"]
                return prs or None
            zbxapi.wait_until(resolved, 60, 1, "the accept-queue problem to resolve")
            self.assertNotIn(aq_full, open_problems())
            print(f"# accept-queue problem resolved {time.time() - t1:.1f}s after the queue drained",
                  flush=True)
        finally:
            self.close_ports()


if __name__ == "__main__":
    sys.exit(support.main([sys.modules[__name__]]))
