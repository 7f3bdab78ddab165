#!/usr/bin/env python3
"""slowclients: N connections to HOST:PORT that never finish a request, for load tests of
`zabbix-sockets serve`. Run it inside a namespace the test made:

    ip netns exec NS python3 tools/slowclients.py --host 127.0.0.1 --port 10050 --count 200 <&PIPE

Connection i behaves by i % 4: 0 stays silent; 1 sends a ZBXD header that announces 100 bytes
and stops after 5 of them; 2 sends the first bytes of a TLS record (0x16 ...) and stops; 3 sends
one byte of "ZBXD" every second. Prints "READY N" once all N are connected (the kernel
accepted them), then holds until stdin reaches end-of-file or --max-hold seconds pass,
and closes every socket. It never reads what the server sends. Exits non-zero with a message
on stderr when the connections cannot be made within --connect-timeout seconds.
"""
import argparse
import select
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--connect-timeout", type=float, default=20.0)
    p.add_argument("--max-hold", type=float, default=120.0)
    a = p.parse_args()
    if not 1 <= a.count <= 5000:
        sys.exit("slowclients: --count must be 1-5000")
    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    deadline = time.monotonic() + a.connect_timeout
    sockets = []
    for i in range(a.count):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            s.connect((a.host, a.port))
        except OSError as e:
            sys.exit("slowclients: connection %d of %d failed: %s" % (i + 1, a.count, e))
        s.setblocking(False)
        mode = i % 4
        try:
            if mode == 1:
                s.send(b"ZBXD\x01" + (100).to_bytes(4, "little"))
            elif mode == 2:
                s.send(b"\x16\x03\x01")
        except OSError:
            pass
        sockets.append(s)
    print("READY %d" % len(sockets), flush=True)
    end = time.monotonic() + a.max_hold
    dribbled = 0
    while time.monotonic() < end:
        ready, _, _ = select.select([sys.stdin], [], [], 1.0)
        if ready and not sys.stdin.buffer.read1(4096):
            break
        if dribbled < 4:
            for s in sockets[3::4]:
                try:
                    s.send(b"ZBXD"[dribbled:dribbled + 1])
                except OSError:
                    pass
            dribbled += 1
    for s in sockets:
        s.close()


if __name__ == "__main__":
    main()
