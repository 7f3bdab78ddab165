import socket, struct, os, sys, time
# Made the fixtures beside it: in a fresh network namespace (ip netns exec NS python3 capture.py OUTDIR)
# builds a small UNIX population, then captures a unix_diag dump (sequence 9), /proc/net/unix and `ss -xa`.
out = sys.argv[1]
d = "/tmp/cap/sockdir"; os.makedirs(d, exist_ok=True)
keep = []
def listener(kind, name, backlog):
    s = socket.socket(socket.AF_UNIX, kind)
    if name.startswith("@"): s.bind("\0" + name[1:])
    else:
        try: os.unlink(name)
        except FileNotFoundError: pass
        s.bind(name)
    s.listen(backlog); keep.append(s); return s
l1 = listener(socket.SOCK_STREAM, d + "/app.sock", 4)
for i in range(10):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.setblocking(False)
    try: c.connect(d + "/app.sock")
    except (BlockingIOError, OSError): pass
    keep.append(c)
l2 = listener(socket.SOCK_SEQPACKET, d + "/seq.sock", 16)
c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); c.connect(d + "/seq.sock"); keep.append(c)
a, _ = l2.accept(); keep.append(a)
l3 = listener(socket.SOCK_STREAM, "@abstract-test", 8)
for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
    p = socket.socketpair(socket.AF_UNIX, kind); keep += p
g = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); g.bind(d + "/dgram.sock"); keep.append(g)
g2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); keep.append(g2)
time.sleep(0.2)
# unix_diag dump
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
req = struct.pack("=BBHIII II", socket.AF_UNIX, 0, 0, 0xFFF, 0, 0x11, 0xFFFFFFFF, 0xFFFFFFFF)
hdr = struct.pack("=IHHII", 16 + len(req), 20, 0x301, 9, 0)
nl.sendto(hdr + req, (0, 0))
chunks = []
while True:
    data = nl.recv(65536)
    chunks.append(data)
    # the dump ends with NLMSG_DONE (type 3)
    off = 0; done = False
    while off < len(data):
        l, t = struct.unpack_from("=IH", data, off)
        if t == 3: done = True
        off += (l + 3) & ~3
    if done: break
open(out + "/unix_diag.bin", "wb").write(b"".join(chunks))
open(out + "/unix", "wb").write(open("/proc/thread-self/net/unix", "rb").read())
import subprocess
open(out + "/ss-xa.txt", "w").write(subprocess.run(["ss", "-xa"], capture_output=True, text=True).stdout)
print(len(chunks), "datagrams")
