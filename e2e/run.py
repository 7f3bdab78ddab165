#!/usr/bin/env python3
"""End-to-end tests of zabbix-sockets against a real Zabbix 6.0 (server, API, agent) on loopback:
every e2e/test_*.py file, in one run. Each file also runs on its own (same options).

    python3 e2e/run.py [--binary PATH] [--assume-up] [--down] [--keep-agent] [-k PATTERN]

  --binary     the zabbix-sockets under test (default $ZABBIX_SOCKETS_BIN, else .build/debug/)
  --assume-up  do not run scripts/zabbix-env up (it is idempotent, so this only saves seconds)
  --down       scripts/zabbix-env down at the end (stops everything, removes the state)
  -k PATTERN   only tests whose name contains PATTERN

The files, in the order they run:
  test_templates  generator current, YAML valid, import twice, objects, colours, the dashboard
  test_agent      the agent template on a real agent: every item equals the master's JSON
  test_trapper    zabbix_sender and `send` to the trapper template; exact counts of a namespace
                  the test owns (tools/sockpop.py)
  test_classic    the classic "Template App Sockets" drop-in
  test_ports      listening-port discovery: a full accept queue, CLOSE_WAIT per port, the
                  overflow trigger's dependency, ephemeral ports left out, the port cap
  test_unix       UNIX listening sockets discovery: the test's paths only (systemd and D-Bus
                  names left out), values equal the JSON, the queue trigger fires and resolves
  test_who        "Services and containers" and "Network namespaces" discoveries: a cgroup2
                  mount and namespaces of the test, values equal the JSON, the per-cgroup
                  CLOSE_WAIT trigger fires and resolves
  test_busy       a 100k-socket benchmark population raises no problem; a troubled one only
                  the CLOSE_WAIT leak
  test_profiles   items and values per collection of three host profiles (README table)
  test_psk        `send` over TLS-PSK
  test_daemon     `run`: outages, restarts, PSK, a corrupt segment, a soak

The last line printed is "N passed, N failed" (", N skipped" when some were skipped); exit 1 on
any failure. All traffic stays on 127.0.0.1 / ::1 or inside namespaces the tests made; every wait
is bounded by time and count.
"""
import sys

import support
import test_agent
import test_busy
import test_classic
import test_daemon
import test_ports
import test_profiles
import test_psk
import test_templates
import test_trapper
import test_unix
import test_who

MODULES = [test_templates, test_agent, test_trapper, test_classic, test_ports, test_unix, test_who, test_busy,
           test_profiles, test_psk, test_daemon]

if __name__ == "__main__":
    sys.exit(support.main(MODULES))
