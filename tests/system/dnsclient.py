"""A minimal DNS client (A queries over UDP or TCP), shared by the system tests and
bench/dns.py: enough to check hyprd's answers without dig in the test's way."""
import random
import socket
import struct


def dns_query(name, port, server="127.0.0.1", qtype=1, tcp=False, timeout=3.0):
    """One DNS query (RD set) over UDP or TCP; returns (rcode, [A addresses], flags)."""
    qid = random.randrange(1 << 16)
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split("."))
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + b"\0" + \
        struct.pack(">HH", qtype, 1)
    if tcp:
        with socket.create_connection((server, port), timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(msg)) + msg)
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    raise AssertionError("TCP DNS connection closed after %d bytes" % len(data))
                data += chunk
            resp = data[2:2 + struct.unpack(">H", data[:2])[0]]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(msg, (server, port))
            while True:
                resp, _ = s.recvfrom(65536)
                if len(resp) >= 2 and struct.unpack(">H", resp[:2])[0] == qid:
                    break
    rid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", resp[:12])
    assert rid == qid and flags & 0x8000, "not an answer to our query: %r" % resp[:12]

    def skip_name(off):
        while True:
            n = resp[off]
            if n == 0:
                return off + 1
            if n & 0xC0 == 0xC0:
                return off + 2
            off += 1 + n

    off = 12
    for _ in range(qd):
        off = skip_name(off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", resp[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(resp[off:off + 4]))
        off += rdlen
    return flags & 0xF, addrs, flags
