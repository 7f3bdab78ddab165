#!/usr/bin/env python3
"""A stand-in Zabbix trapper for tests that need several servers at once (a real Zabbix server
listens on one port): on each given port of 127.0.0.1 it reads one ZBXD request per connection
and answers "processed: N; failed: 0", or never answers with --silent. Prints "ready" once
listening and one line "PORT COUNT" per request taken. Runs until killed or --seconds pass.
"""
import argparse, json, selectors, socket, struct, time, zlib

parser = argparse.ArgumentParser()
parser.add_argument("ports", type=int, nargs="+")
parser.add_argument("--silent", action="store_true", help="accept and read, never answer")
parser.add_argument("--seconds", type=float, default=120)
args = parser.parse_args()

sel = selectors.DefaultSelector()
for port in args.ports:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    sel.register(server, selectors.EVENT_READ, ("listen", port))
print("ready", flush=True)

buffers, held = {}, []
deadline = time.monotonic() + args.seconds
while time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.2):
        kind, port = key.data
        if kind == "listen":
            conn, _ = key.fileobj.accept()
            buffers[conn] = b""
            sel.register(conn, selectors.EVENT_READ, ("conn", port))
            continue
        conn = key.fileobj
        chunk = conn.recv(65536)
        if not chunk:
            sel.unregister(conn); conn.close(); buffers.pop(conn, None); continue
        data = buffers[conn] + chunk
        buffers[conn] = data
        if len(data) < 13 or data[:4] != b"ZBXD":
            continue
        flags, length = data[4], struct.unpack("<I", data[5:9])[0]
        if len(data) < 13 + length:
            continue
        payload = data[13:13 + length]
        if flags & 0x02:
            payload = zlib.decompress(payload)
        count = len(json.loads(payload)["data"])
        print(port, count, flush=True)
        sel.unregister(conn)
        if args.silent:
            held.append(conn)
            continue
        body = json.dumps({"response": "success",
                           "info": f"processed: {count}; failed: 0; total: {count}; seconds spent: 0.000100"}).encode()
        conn.sendall(b"ZBXD\x01" + struct.pack("<II", len(body), 0) + body)
        conn.close()
