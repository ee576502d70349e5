"""Networking (issue 5): real microVMs on hyprd's bridges, driven with the `hypr` CLI
(and grpcio where a status code is what is checked).

Everything happens in the private network namespace `make system` runs pytest in:
the bridges, the TAPs, the published ports on 127.0.0.1 and hyprd's DNS server. An
"outside host" for the --internal test is a veth peer in a nested namespace that this
module creates (a child `unshare -n` process) -- never the machine's own namespace.

One daemon (`netd`) is shared by the module; the guest image is a busybox rootfs with
the network applets, a web root (/www: index.html and a 10 MB random file) and a tiny
static UDP echo server (built here with musl-gcc: busybox's nc has no UDP mode).
Every wait is bounded and polls a condition.
"""

import concurrent.futures
import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading

import grpc
import pytest

from dnsclient import dns_query  # noqa: F401 (also used by bench/dns.py)

from conftest import Daemon, build_busybox_rootfs, free_tcp_port, import_busybox, wait_for
from test_vms import Host, all_qemu_pids, cmdline

IMAGE = "busybox"
NET_APPLETS = ["httpd", "wget", "ping", "nslookup", "ip", "ifconfig", "route", "nc",
               "hostname", "sha256sum", "grep"]
INDEX = "<html><body>hello from a hypr guest</body></html>\n"
BIG_SIZE = 10 * 1024 * 1024
HTTP_PORT = 8080
UDP_PORT = 9000
DEFAULT_GW = "10.88.0.1"
DEFAULT_NET = ipaddress.ip_network("10.88.0.0/16")
OUTSIDE_HOST_IP = "192.0.2.2"  # a veth peer in a nested namespace, beyond the bridges
OUTSIDE_PID = [None]  # the process holding that namespace (for nsenter)


def outside_pid():
    assert OUTSIDE_PID[0], "the outside fixture is not set up"
    return OUTSIDE_PID[0]
OUTSIDE_LOCAL_IP = "192.0.2.1"

UDP_ECHO_C = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
        return 1;
    static char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof(from);
        ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
        if (n >= 0)
            sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}
"""


# ---- helpers ---------------------------------------------------------------------------

def http_get(path, port=HTTP_PORT, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def port_is_free(port):
    """Nothing listens on 127.0.0.1:port (a connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def link_exists(name):
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def link_json(name):
    p = subprocess.run(["ip", "-j", "-d", "addr", "show", "dev", name], capture_output=True,
                       text=True)
    return json.loads(p.stdout)[0] if p.returncode == 0 else None


def tap_of(vm_id):
    return "htap" + vm_id[:11]


def htaps():
    p = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True)
    return sorted(l["ifname"] for l in json.loads(p.stdout) if l["ifname"].startswith("htap"))


class NetHost(Host):
    def vm_ip(self, vm):
        ip = self.inspect(vm)["NetworkSettings"]["IPAddress"]
        assert ip, "no IPAddress in inspect for %s" % vm
        return ip

    def sh(self, vm, script, timeout=60):
        """`hypr exec VM -- sh -c SCRIPT` -> completed process (out/err decoded)."""
        return self.hypr("exec", vm, "--", "sh", "-c", script, timeout=timeout)

    def ping(self, vm, target, wait=5, count=1):
        """busybox ping exits 0 when any of `count` echo requests is answered."""
        return self.hypr("exec", vm, "--", "ping", "-c", str(count), "-W", str(wait), target,
                         timeout=count * wait + 30)

    def reaches(self, vm, target, timeout=30):
        """Waits until `vm` gets an answer from `target` (one ping per try: a packet
        lost on a loaded host is not a missing route). On failure the message carries
        what the host and the guest had for routes, neighbours and rules."""
        last = []

        def answered():
            p = self.ping(vm, target, wait=2)
            last[:] = [p]
            return p.returncode == 0
        try:
            wait_for(answered, timeout, "%s to get an answer from %s" % (vm, target),
                     interval=0.2)
        except AssertionError as exc:
            p = last[0] if last else None
            ping = "last ping: rc %s\n%s%s" % ((p.returncode, p.out, p.err) if p else ("-", "", ""))
            raise AssertionError("%s\n%s\n%s" % (exc, ping, self.net_diagnostics(vm, target))) \
                from None

    def resolves(self, vm, name, ip, timeout=30):
        """Waits until `ping NAME` inside `vm` resolves NAME to ip (through the guest's
        libc resolver and the gateway's DNS listener) and gets an answer. On failure the
        message carries the guest's resolv.conf and its nslookup against the gateway,
        what the gateway's and the loopback listener answer here, and net_diagnostics."""
        last = []

        def answered():
            p = self.ping(vm, name, wait=2)
            last[:] = [p]
            return p.returncode == 0 and "(%s)" % ip in p.out
        try:
            wait_for(answered, timeout, "%s to resolve %s to %s and reach it" % (vm, name, ip),
                     interval=0.2)
        except AssertionError as exc:
            p = last[0] if last else None
            rc, pout, perr = (p.returncode, p.out, p.err) if p else ("-", "", "")
            out = ["last ping: rc %s\n%s%s" % (rc, pout, perr)]
            g = self.sh(vm, "cat /etc/resolv.conf; nslookup %s %s" % (name, DEFAULT_GW),
                        timeout=60)
            out.append("guest %s: resolv.conf, nslookup %s %s:\n%s%s"
                       % (vm, name, DEFAULT_GW, g.out, g.err))
            for server, port in ((DEFAULT_GW, 53), ("127.0.0.1", self.dns_port())):
                try:
                    out.append("host asks %s:%d for %s: %r"
                               % (server, port, name, dns_query(name, port, server=server)[:2]))
                except Exception as e:  # noqa: BLE001 - part of the report
                    out.append("host asks %s:%d for %s: %r" % (server, port, name, e))
            raise AssertionError("%s\n%s\n%s" % (exc, "\n".join(out),
                                                 self.net_diagnostics(vm))) from None

    def net_diagnostics(self, vm, target=None):
        cmds = [["ip", "-4", "addr"], ["ip", "-4", "route"], ["ip", "neigh"],
                ["ip", "-s", "link"], ["bridge", "fdb", "show"], ["bridge", "link"],
                ["sysctl", "net.ipv4.ip_forward"], ["nft", "list", "table", "inet", "hypr"]]
        if OUTSIDE_PID[0]:
            cmds.append(["nsenter", "-t", OUTSIDE_PID[0], "-n", "ip", "neigh"])
        out = []
        for c in cmds:
            p = subprocess.run(c, capture_output=True, text=True)
            out.append("$ %s\n%s%s" % (" ".join(c), p.stdout, p.stderr))
        for who in (vm, target):
            if who and not re.match(r"^[0-9.]+$", who):  # a VM (by name)
                g = self.sh(who.split(".")[0], "ip addr; ip route; ip neigh; cat /etc/resolv.conf",
                            timeout=30)
                out.append("guest %s:\n%s%s" % (who, g.out, g.err))
        return "\n".join(out)

    def dns_port(self):
        return int(self.daemon.settings()["dns_port"])

    def network(self, name):
        p = self.ok("network", "inspect", name, timeout=30)
        data = json.loads(p.out)
        assert isinstance(data, list) and len(data) == 1, p.out
        return data[0]

    def boot(self, *args):
        vm_id = self.run_detached(*args)
        self.wait_status(vm_id, "running")
        return vm_id


def build_net_rootfs(root):
    """busybox rootfs + network applets + /www + /bin/udpecho (static, musl)."""
    build_busybox_rootfs(root)
    for applet in NET_APPLETS:
        if not os.path.lexists(os.path.join(root, "bin", applet)):
            os.symlink("busybox", os.path.join(root, "bin", applet))
    www = os.path.join(root, "www")
    os.mkdir(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write(INDEX)
    big = os.urandom(BIG_SIZE)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(big)
    src = os.path.join(os.path.dirname(root), "udpecho.c")
    with open(src, "w") as f:
        f.write(UDP_ECHO_C)
    subprocess.run(["musl-gcc", "-static", "-O2", "-o", os.path.join(root, "bin", "udpecho"),
                    src], check=True)
    return hashlib.sha256(big).hexdigest()


# ---- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def net_image():
    base = tempfile.mkdtemp(prefix="hypr-netimg-")
    try:
        root = os.path.join(base, "rootfs")
        digest = build_net_rootfs(root)
        yield root, digest
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def netd(net_image):
    """One hyprd for the module with the network image imported as busybox:latest."""
    base = tempfile.mkdtemp(prefix="hypr-net-")
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    d.start()
    host = NetHost(d)
    try:
        import_busybox(d, net_image[0], timeout=180)
        yield host
        try:
            host.rm_all()
            assert host.ps_json() == []
            d.stop_clean()
            left = [pid for pid in all_qemu_pids() if run.encode() in cmdline(pid)]
            assert not left, "hypervisors left after the daemon stopped: %s" % left
        except AssertionError as exc:  # module teardown: no test report carries the log
            raise AssertionError("%s\n---- hyprd log (tail) ----\n%s"
                                 % (exc, d.log_text()[-6000:])) from None
    finally:
        if d.alive():
            d.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def alpha(netd):
    """A plain VM on the default network: (id, name)."""
    vm_id = netd.boot("-n", "alpha", IMAGE, "sleep", "3600")
    yield vm_id, "alpha"
    netd.hypr("rm", "-f", vm_id)


@pytest.fixture(scope="module")
def web(netd):
    """busybox httpd on :80 (published on 127.0.0.1:8080) and a UDP echo on :9000
    (published on 127.0.0.1:9000/udp); waits until a GET through the forward answers."""
    vm_id = netd.boot("-n", "web", "-p", "%d:80" % HTTP_PORT, "-p", "%d:%d/udp" % (UDP_PORT, UDP_PORT),
                      IMAGE, "sh", "-c", "udpecho %d & exec httpd -f -p 80 -h /www" % UDP_PORT)
    try:
        wait_for(lambda: http_get("/", timeout=5)[0] == 200, 60,
                 "the guest's httpd through 127.0.0.1:%d" % HTTP_PORT, interval=0.25)
    except AssertionError as exc:
        raise AssertionError("%s\n%s" % (exc, netd.console(vm_id)))
    yield vm_id, "web"
    netd.hypr("rm", "-f", vm_id)


@pytest.fixture(scope="module")
def outside():
    """A host beyond hyprd's bridges: veth hxo0 (192.0.2.1/24) here, its peer
    (192.0.2.2/24) in a nested network namespace held by a child process."""
    child = subprocess.Popen(["unshare", "-n", "sleep", "600"], stdin=subprocess.DEVNULL)
    try:
        mine = os.readlink("/proc/self/ns/net")
        wait_for(lambda: os.readlink("/proc/%d/ns/net" % child.pid) != mine, 5,
                 "the nested namespace")
        pid = str(child.pid)
        OUTSIDE_PID[0] = pid
        for cmd in (["ip", "link", "add", "hxo0", "type", "veth", "peer", "name", "hxo1",
                     "netns", pid],
                    ["ip", "addr", "add", OUTSIDE_LOCAL_IP + "/24", "dev", "hxo0"],
                    ["ip", "link", "set", "hxo0", "up"],
                    ["nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up"],
                    ["nsenter", "-t", pid, "-n", "ip", "addr", "add", OUTSIDE_HOST_IP + "/24",
                     "dev", "hxo1"],
                    ["nsenter", "-t", pid, "-n", "ip", "link", "set", "hxo1", "up"]):
            subprocess.run(cmd, check=True, capture_output=True)
        # The outside host answers pings from here (so a failure later is the network's).
        wait_for(lambda: subprocess.run(["busybox", "ping", "-c", "1", "-W", "1",
                                         OUTSIDE_HOST_IP],
                                        capture_output=True).returncode == 0, 10,
                 "the outside host to answer pings from the namespace")
        yield OUTSIDE_HOST_IP
    finally:
        child.kill()
        child.wait(10)
        subprocess.run(["ip", "link", "del", "hxo0"], capture_output=True)


# ---- default network: addresses, guest configuration -----------------------------------

def test_vms_get_addresses_on_the_default_network(netd, alpha, web):
    """Each VM has its own address in 10.88.0.0/16 (never the network, gateway or
    broadcast address), shown by inspect and in the IP column of `hypr ps`."""
    ips = {}
    for vm_id, name in (alpha, web):
        ip = netd.vm_ip(vm_id)
        addr = ipaddress.ip_address(ip)
        assert addr in DEFAULT_NET, ip
        assert addr not in (DEFAULT_NET.network_address, DEFAULT_NET.broadcast_address,
                            ipaddress.ip_address(DEFAULT_GW)), ip
        st = netd.inspect(vm_id)
        nets = st["NetworkSettings"]["Networks"]
        assert list(nets) == ["bridge"], st["NetworkSettings"]
        assert nets["bridge"]["IPAddress"] == ip and nets["bridge"]["IPPrefixLen"] == 16, nets
        assert nets["bridge"]["Gateway"] == DEFAULT_GW, nets
        assert re.fullmatch(r"02(:[0-9a-f]{2}){5}", nets["bridge"]["MacAddress"]), nets
        ips[name] = ip
    assert ips["alpha"] != ips["web"], ips
    rows = {r["Names"]: r for r in netd.ps_json(all=False)}
    for name, ip in ips.items():
        assert rows[name]["IPAddress"] == ip, rows[name]
    out = netd.ok("ps").out
    for name, ip in ips.items():
        assert re.search(r"^\S+\s+%s\s+.*\s%s(\s|$)" % (name, re.escape(ip)), out, re.M), out


def test_guest_interface_route_and_resolver(netd, alpha):
    """Inside the guest: eth0 has the VM's address/16, the default route goes via the
    gateway, /etc/resolv.conf names the gateway, and the TAP is on vbr0."""
    vm_id, name = alpha
    ip = netd.vm_ip(vm_id)
    p = netd.sh(name, "ip -4 addr show dev eth0; echo ---; ip route; echo ---; "
                      "cat /etc/resolv.conf")
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    addr, routes, resolv = p.out.split("---\n")
    assert re.search(r"inet %s/16\b" % re.escape(ip), addr), addr
    assert re.search(r"^default via %s dev eth0" % re.escape(DEFAULT_GW), routes, re.M), routes
    assert re.search(r"^nameserver\s+%s\s*$" % re.escape(DEFAULT_GW), resolv, re.M), resolv
    tap = link_json(tap_of(vm_id))
    assert tap is not None, "no TAP %s for the running VM" % tap_of(vm_id)
    assert tap.get("master") == "vbr0", tap
    br = link_json("vbr0")
    assert any(a.get("local") == DEFAULT_GW and a.get("prefixlen") == 16
               for a in br["addr_info"]), br


def test_ping_each_other_by_ip_and_name(netd, alpha, web):
    """Two VMs on the default network ping each other by IP, by name and by NAME.hypr."""
    web_ip = netd.vm_ip(web[0])
    alpha_ip = netd.vm_ip(alpha[0])
    for src, target in (("alpha", web_ip), ("web", alpha_ip), ("alpha", "web"),
                        ("web", "alpha"), ("alpha", "web.hypr")):
        p = netd.ping(src, target)
        assert p.returncode == 0, ("ping %s from %s" % (target, src), p.returncode, p.out,
                                   p.err)
        assert re.search(r"1 packets received", p.out), p.out


def test_nslookup_and_wget_by_name_from_inside(netd, alpha, web):
    """From inside a VM, `nslookup web` answers web's address (from the gateway's DNS
    server) and `wget http://web/` fetches its page."""
    web_ip = netd.vm_ip(web[0])
    p = netd.hypr("exec", "alpha", "--", "nslookup", "web", timeout=60)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert re.search(r"Server:\s+%s" % re.escape(DEFAULT_GW), p.out), p.out
    assert re.search(r"Address:\s+%s\s*$" % re.escape(web_ip), p.out, re.M), p.out
    p = netd.hypr("exec", "alpha", "--", "nslookup", "no-such-vm.hypr", timeout=60)
    assert p.returncode != 0 or "NXDOMAIN" in p.out, (p.out, p.err)
    assert web_ip not in p.out
    p = netd.hypr("exec", "alpha", "--", "wget", "-q", "-O", "-", "http://web/", timeout=60)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert p.out == INDEX, p.out


# ---- DNS from the namespace --------------------------------------------------------------

@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_dns_server_answers_vm_names(netd, alpha, web, tcp):
    """hyprd's DNS on 127.0.0.1:<dns_port> (dig @127.0.0.1 -p 41003 NAME.hypr): A records
    equal to the VMs' addresses for NAME.hypr and NAME, NXDOMAIN for unknown names."""
    port = netd.dns_port()
    assert port == 41003  # the documented default
    for vm_id, name in (alpha, web):
        ip = netd.vm_ip(vm_id)
        for qname in (name + ".hypr", name):
            rcode, addrs, flags = dns_query(qname, port, tcp=tcp)
            assert (rcode, addrs) == (0, [ip]), (qname, rcode, addrs)
            assert flags & 0x0400, "%s: answer not authoritative (flags %#x)" % (qname, flags)
    rcode, addrs, _ = dns_query("no-such-vm.hypr", port, tcp=tcp)
    assert (rcode, addrs) == (3, []), (rcode, addrs)


def test_rename_updates_dns(netd, alpha):
    """`hypr rename` of a running VM: ps shows the new name, the new name resolves (on
    127.0.0.1, on the gateway and from inside another VM) and the old one does not
    (NXDOMAIN as NAME.hypr); a taken name or a bad name is refused and changes nothing.
    The renamed VM's TAP joining vbr0 must not change the gateway's MAC: guests that
    cached the old one would lose their resolver (and route) for up to ~50 s."""
    gw_mac = link_json("vbr0")["address"]
    vm_id = netd.boot("-n", "oldname", IMAGE, "sleep", "3600")
    try:
        assert link_json("vbr0")["address"] == gw_mac
        ip = netd.vm_ip(vm_id)
        port = netd.dns_port()
        assert dns_query("oldname.hypr", port)[:2] == (0, [ip])
        netd.ok("rename", "oldname", "newname")
        names = {r["Names"] for r in netd.ps_json(all=False)}
        assert "newname" in names and "oldname" not in names, names
        assert netd.inspect(vm_id)["Name"].lstrip("/") == "newname"
        assert dns_query("newname.hypr", port)[:2] == (0, [ip])
        assert dns_query("oldname.hypr", port)[:2] == (3, [])
        # The gateway's listener (what guests ask) answers the new name too...
        assert dns_query("newname", 53, server=DEFAULT_GW)[:2] == (0, [ip])
        assert dns_query("oldname", 53, server=DEFAULT_GW, timeout=5)[0] != 0
        # ...and so it does for a guest: alpha resolves the new name and reaches the VM.
        netd.resolves("alpha", "newname", ip)
        p = netd.ping("alpha", "oldname", wait=1)
        assert p.returncode != 0 and "bad address" in p.err, (p.returncode, p.out, p.err)
        p = netd.hypr("exec", "alpha", "--", "nslookup", "oldname.hypr", DEFAULT_GW, timeout=60)
        assert p.returncode != 0 or "NXDOMAIN" in p.out, (p.out, p.err)
        assert ip not in p.out, p.out
        for bad, word in (("alpha", "already in use"), ("no/slash", "invalid VM name")):
            p = netd.hypr("rename", "newname", bad)
            assert p.returncode != 0 and word in p.err, (bad, p.err)
        assert dns_query("newname.hypr", port)[:2] == (0, [ip])
        p = netd.hypr("rename", "no-such-vm", "x")
        assert p.returncode != 0 and "no-such-vm" in p.err, p.err
    finally:
        netd.hypr("rm", "-f", vm_id)


def test_reused_address_reachable_from_guest_at_once(netd, alpha):
    """A VM that gets the address of one just removed announces it (gratuitous ARP on
    boot): alpha, which still maps the address to the old VM's MAC, reaches the new VM
    within seconds, not after its ARP entry expires (~30-45 s)."""
    first = netd.boot("-n", "reuse1", IMAGE, "sleep", "3600")
    second = None
    try:
        ip = netd.vm_ip(first)
        # alpha now maps ip to reuse1's MAC (MACs are derived from the VM ID).
        netd.reaches("alpha", ip)
        netd.ok("rm", "-f", first)
        second = netd.boot("-n", "reuse2", IMAGE, "sleep", "3600")
        assert netd.vm_ip(second) == ip, "the test needs the freed address handed out again"
        netd.reaches("alpha", "reuse2", timeout=10)
    finally:
        netd.hypr("rm", "-f", *([first] + ([second] if second else [])))


# ---- port forwarding ---------------------------------------------------------------------

def test_published_port_serves_guest_page(netd, web):
    """GET http://127.0.0.1:8080/ returns the page the guest's httpd serves."""
    status, body = http_get("/")
    assert status == 200
    assert body.decode() == INDEX


def test_ps_shows_published_ports(netd, web):
    """`hypr ps` shows the forwards as 127.0.0.1:8080->80/tcp and .../udp, with the IP."""
    row = [r for r in netd.ps_json(all=False) if r["Names"] == "web"][0]
    assert row["Ports"] == "127.0.0.1:8080->80/tcp, 127.0.0.1:9000->9000/udp", row
    out = netd.ok("ps").out
    line = [l for l in out.splitlines() if re.search(r"\sweb\s", l)]
    assert len(line) == 1, out
    assert "127.0.0.1:8080->80/tcp" in line[0], line
    assert row["IPAddress"] and row["IPAddress"] in line[0], (row, line)


def test_10mb_download_is_byte_identical(netd, web, net_image):
    """A 10 MB file downloaded through the forward has the image file's sha256."""
    status, body = http_get("/big.bin", timeout=120)
    assert status == 200
    assert len(body) == BIG_SIZE, len(body)
    assert hashlib.sha256(body).hexdigest() == net_image[1]


def test_100_concurrent_connections_complete(netd, web):
    """100 connections opened at once through the forward all get the full page."""
    n = 100
    barrier = threading.Barrier(n, timeout=30)

    def one(_):
        barrier.wait()
        return http_get("/", timeout=90)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n), timeout=150))
    bad = [r for r in results if r != (200, INDEX.encode())]
    assert not bad, "%d of %d failed: %r" % (len(bad), n, bad[:3])


def test_udp_forward_echoes(netd, web):
    """Datagrams to 127.0.0.1:9000/udp reach the guest's echo server and come back, also
    from two different client sockets (each gets its own replies)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    try:
        for i, s in enumerate(socks):
            s.settimeout(1.0)
            payload = b"hypr-udp-%d-" % i + os.urandom(16).hex().encode()

            def echoed():
                s.sendto(payload, ("127.0.0.1", UDP_PORT))
                try:
                    while True:
                        data, _ = s.recvfrom(65536)
                        if data == payload:
                            return True
                except socket.timeout:
                    return False
            wait_for(echoed, 30, "the UDP echo of %r" % payload, interval=0.1)
        big = os.urandom(8000)
        socks[0].sendto(big, ("127.0.0.1", UDP_PORT))
        wait_for(lambda: socks[0].recvfrom(65536)[0] == big, 10, "an 8000-byte echo")
    finally:
        for s in socks:
            s.close()


def test_host_port_in_use_fails_before_boot(netd):
    """`hypr run -p PORT:80` with PORT taken on the host: non-zero exit naming the port
    and no VM left running (no hypervisor started for it)."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    qemus = set(all_qemu_pids())
    try:
        p = netd.hypr("run", "-d", "-n", "portclash", "-p", "%d:80" % port, IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")
        assert p.returncode != 0, (p.out, p.err)
        assert str(port) in p.err, p.err
        assert re.search(r"in use|already", p.err, re.I), p.err
        assert "Traceback" not in p.err
        assert not [r for r in netd.ps_json(all=False) if r["Names"] == "portclash"]
        assert set(all_qemu_pids()) <= qemus, "a hypervisor was started"
        # The address it was given went back to the pool: the next VM gets the lowest
        # address the state does not hold.
        db = sqlite3.connect("file:%s?mode=ro" % netd.daemon.db, uri=True)
        try:
            held = {ipaddress.ip_address(a) for (a,) in db.execute(
                "SELECT address FROM ip_allocations WHERE network = 'bridge'")}
        finally:
            db.close()
        lowest = next(a for a in DEFAULT_NET.hosts()
                      if a not in held and str(a) != DEFAULT_GW)
        vm_id = netd.boot("-n", "afterclash", IMAGE, "sleep", "60")
        assert netd.vm_ip(vm_id) == str(lowest), (netd.vm_ip(vm_id), sorted(held))
    finally:
        busy.close()
        netd.hypr("rm", "-f", "portclash", "afterclash")


# ---- TAP and name lifecycle --------------------------------------------------------------

def test_stop_start_rm_tap_name_forward_and_address(netd):
    """The TAP exists while the VM runs and goes with stop and with rm; the name stops
    resolving and the published port is released when the VM stops and both come back
    with start; the address is kept across stop/start."""
    port = netd.dns_port()
    hport = free_tcp_port()
    vm_id = netd.boot("-n", "cycler", "-p", "%d:80" % hport, IMAGE,
                      "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        tap = tap_of(vm_id)
        ip = netd.vm_ip(vm_id)
        assert link_exists(tap), htaps()
        assert dns_query("cycler.hypr", port)[:2] == (0, [ip])
        wait_for(lambda: http_get("/", port=hport, timeout=5)[0] == 200, 30,
                 "cycler's page on 127.0.0.1:%d" % hport, interval=0.25)
        netd.ok("stop", "-t", "1", vm_id)
        netd.wait_status(vm_id, "exited", timeout=30)
        wait_for(lambda: not link_exists(tap), 10, "TAP %s removed after stop" % tap)
        wait_for(lambda: dns_query("cycler.hypr", port)[0] == 3, 10,
                 "cycler.hypr to be NXDOMAIN after stop")
        wait_for(lambda: port_is_free(hport), 10,
                 "host port %d released after stop" % hport)
        netd.ok("start", vm_id)
        netd.wait_status(vm_id, "running")
        assert netd.vm_ip(vm_id) == ip, "address changed across stop/start"
        assert link_exists(tap)
        assert dns_query("cycler.hypr", port)[:2] == (0, [ip])
        wait_for(lambda: http_get("/", port=hport, timeout=5) == (200, INDEX.encode()), 30,
                 "cycler's page again after start", interval=0.25)
        netd.ok("rm", "-f", vm_id)
        wait_for(lambda: not link_exists(tap), 10, "TAP %s removed after rm" % tap)
        assert dns_query("cycler.hypr", port)[0] == 3
        wait_for(lambda: port_is_free(hport), 10, "host port %d released after rm" % hport)
    finally:
        netd.hypr("rm", "-f", vm_id)


# ---- custom networks ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def nets(netd):
    """Networks neta (10.90.1.0/24, explicit gateway), netb (auto subnet) and neti
    (--internal), with one VM on each: {net: (vm_id, vm_name)}."""
    netd.ok("network", "create", "--subnet", "10.90.1.0/24", "--gateway", "10.90.1.254",
            "--label", "tier=back", "--label", "owner=ops team", "neta", timeout=30)
    netd.ok("network", "create", "netb", timeout=30)
    netd.ok("network", "create", "--internal", "neti", timeout=30)
    vms = {}
    try:
        for net in ("neta", "netb", "neti"):
            name = "on-" + net
            vms[net] = (netd.boot("-n", name, "--network", net, IMAGE, "sleep", "3600"), name)
        yield vms
    finally:
        ids = [v[0] for v in vms.values()]
        if ids:
            netd.hypr("rm", "-f", *ids, timeout=60)
        netd.hypr("network", "rm", "-f", "neta", "netb", "neti", timeout=30)


def test_network_ls_and_inspect_json(netd, nets):
    """`network ls`/`inspect` JSON: subnets, gateways, vbrN bridges, the internal flag;
    the bridges exist with the gateway address."""
    ls = {n["Name"]: n for n in json.loads(netd.ok("network", "ls", "--format", "json").out)}
    assert {"bridge", "neta", "netb", "neti"} <= set(ls), ls.keys()
    dflt = netd.network("bridge")
    assert dflt["IPAM"]["Config"] == [{"Subnet": "10.88.0.0/16", "Gateway": DEFAULT_GW}], dflt
    assert dflt["Bridge"] == "vbr0" and dflt["Driver"] == "bridge"
    a = netd.network("neta")
    assert a["IPAM"]["Config"] == [{"Subnet": "10.90.1.0/24", "Gateway": "10.90.1.254"}], a
    assert a["Internal"] is False
    assert a["Labels"] == {"tier": "back", "owner": "ops team"}, a
    assert dict(netd.daemon.call("GetNetwork", id="neta").network.labels) == a["Labels"]
    assert dflt["Labels"] == {}, dflt
    b = netd.network("netb")
    b_subnet = ipaddress.ip_network(b["IPAM"]["Config"][0]["Subnet"])
    assert b_subnet.subnet_of(ipaddress.ip_network("10.89.0.0/16")) or \
        b_subnet.network_address >= ipaddress.ip_address("10.89.0.0"), b
    assert not b_subnet.overlaps(DEFAULT_NET) and not b_subnet.overlaps(
        ipaddress.ip_network("10.90.1.0/24")), b
    i = netd.network("neti")
    assert i["Internal"] is True
    bridges = [n["Bridge"] for n in (dflt, a, b, i)]
    assert len(set(bridges)) == 4 and all(re.fullmatch(r"vbr\d+", x) for x in bridges), bridges
    for n in (a, b, i):
        cfg = n["IPAM"]["Config"][0]
        br = link_json(n["Bridge"])
        assert br is not None, "bridge %s missing" % n["Bridge"]
        plen = ipaddress.ip_network(cfg["Subnet"]).prefixlen
        assert any(x.get("local") == cfg["Gateway"] and x.get("prefixlen") == plen
                   for x in br["addr_info"]), br
        assert ls[n["Name"]]["Id"] == n["Id"]
    for net, (vm_id, _) in nets.items():
        n = netd.network(net)
        assert vm_id in n["VMs"], n
        ip = ipaddress.ip_address(netd.vm_ip(vm_id))
        assert ip in ipaddress.ip_network(n["IPAM"]["Config"][0]["Subnet"]), (net, ip)
        assert link_json(tap_of(vm_id))["master"] == n["Bridge"]


def test_vm_on_custom_network_reaches_its_gateway_and_resolves_own_network(netd, nets):
    """A VM on neta: route via neta's gateway, pings it, and resolves its own name
    through the gateway's DNS server."""
    vm_id, name = nets["neta"]
    ip = netd.vm_ip(vm_id)
    p = netd.sh(name, "ip route; cat /etc/resolv.conf")
    assert re.search(r"^default via 10\.90\.1\.254 dev eth0", p.out, re.M), p.out
    assert re.search(r"^nameserver\s+10\.90\.1\.254\s*$", p.out, re.M), p.out
    netd.reaches(name, "10.90.1.254")
    p = netd.hypr("exec", name, "--", "nslookup", name, timeout=60)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert re.search(r"Address:\s+%s\s*$" % re.escape(ip), p.out, re.M), p.out


def test_networks_are_isolated(netd, nets, alpha):
    """A VM on neta cannot reach a VM on netb or on the default network (pings time
    out), and vice versa."""
    a_ip = netd.vm_ip(nets["neta"][0])
    b_ip = netd.vm_ip(nets["netb"][0])
    default_ip = netd.vm_ip(alpha[0])
    for src, dst in ((nets["neta"][1], b_ip), (nets["netb"][1], a_ip),
                     (nets["neta"][1], default_ip), ("alpha", a_ip)):
        p = netd.ping(src, dst, wait=2)
        assert p.returncode != 0, "%s reached %s across networks:\n%s" % (src, dst, p.out)
        assert "0 packets received" in p.out, p.out


def test_vm_on_two_networks_reaches_both(netd, nets):
    """`--network neta --network netb`: one NIC per network, each with its network's
    address (inspect shows both); the VM reaches the VMs of both by IP and by name,
    while they still cannot reach each other. Its TAPs go when it is removed."""
    vm_id = netd.boot("-n", "on-ab", "--network", "neta", "--network", "netb", IMAGE,
                      "sleep", "3600")
    try:
        st = netd.inspect(vm_id)
        nets_json = st["NetworkSettings"]["Networks"]
        assert sorted(nets_json) == ["neta", "netb"], nets_json
        a_ip, b_ip = nets_json["neta"]["IPAddress"], nets_json["netb"]["IPAddress"]
        assert ipaddress.ip_address(a_ip) in ipaddress.ip_network("10.90.1.0/24"), nets_json
        netb_subnet = netd.network("netb")["IPAM"]["Config"][0]["Subnet"]
        assert ipaddress.ip_address(b_ip) in ipaddress.ip_network(netb_subnet), nets_json
        assert st["NetworkSettings"]["IPAddress"] == a_ip, st["NetworkSettings"]
        assert nets_json["neta"]["MacAddress"] != nets_json["netb"]["MacAddress"], nets_json
        # Inside: both addresses, the default route via the first network's gateway.
        p = netd.sh("on-ab", "ip -4 addr; echo ---; ip route")
        addrs, routes = p.out.split("---\n")
        assert "inet %s/24" % a_ip in addrs, addrs
        assert "inet %s/" % b_ip in addrs, addrs
        assert re.search(r"^default via 10\.90\.1\.254 ", routes, re.M), routes
        # Both neighbours answer, by IP and by name (each name through the first
        # network's resolver).
        for target in (netd.vm_ip(nets["neta"][0]), netd.vm_ip(nets["netb"][0]), "on-neta",
                       "on-netb", "on-netb.hypr"):
            netd.reaches("on-ab", target)
        # Each neighbour resolves on-ab to its address on their shared network.
        for net, want in (("neta", a_ip), ("netb", b_ip)):
            p = netd.hypr("exec", nets[net][1], "--", "nslookup", "on-ab", timeout=60)
            assert re.search(r"Address:\s+%s\s*$" % re.escape(want), p.out, re.M), (net, p.out)
        # The neighbours stay apart from each other.
        p = netd.ping(nets["neta"][1], netd.vm_ip(nets["netb"][0]), wait=2)
        assert p.returncode != 0, p.out
        taps = [t for t in htaps() if t.startswith(tap_of(vm_id)[:-1])]
        assert len(taps) == 2, htaps()
    finally:
        netd.ok("rm", "-f", vm_id)
    wait_for(lambda: not [t for t in htaps() if t.startswith(tap_of(vm_id)[:-1])], 10,
             "the two TAPs of the removed VM to go")


@pytest.mark.parametrize("args,words", [
    (["--network", "neta", "--network", "neta"], ["neta", "more than once"]),
    (["--network", "nope"], ["network nope not found"]),
])
def test_bad_network_list_refused(netd, nets, args, words):
    """A network named twice or unknown fails the run with a message naming it, and no
    VM is created (CreateVM refuses it too)."""
    before = {r["Names"] for r in netd.ps_json(all=True)}
    p = netd.hypr("run", "-d", "-n", "badnets", *args, IMAGE, "sleep", "60", timeout=60)
    assert p.returncode != 0, p.out
    for w in words:
        assert w in p.err, (w, p.err)
    nets_arg = [a for a in args if a != "--network"]
    with pytest.raises(grpc.RpcError) as exc:
        netd.daemon.call("CreateVM", config={"image": IMAGE, "name": "badnets2",
                                              "networks": nets_arg})
    assert words[0] in exc.value.details(), exc.value.details()
    assert {r["Names"] for r in netd.ps_json(all=True)} == before


def test_internal_network_has_no_route_out(netd, nets, alpha, outside):
    """A host beyond the bridges answers a VM on the default network (forwarded and
    masqueraded) but not a VM on an --internal network."""
    netd.reaches("alpha", outside)
    netd.reaches(nets["neta"][1], outside)
    p = netd.ping(nets["neti"][1], outside, wait=2)
    assert p.returncode != 0, "the internal network's VM reached %s:\n%s" % (outside, p.out)


def test_network_prune_removes_only_unused(netd, nets):
    """`network prune -f` removes the networks no VM uses (and their bridges), names
    them, and keeps the default network and those in use."""
    for name in ("unused1", "unused2"):
        netd.ok("network", "create", name, timeout=30)
    bridges = {n: netd.network(n)["Bridge"] for n in ("unused1", "unused2")}
    p = netd.ok("network", "prune", "-f", timeout=60)
    assert "unused1" in p.out and "unused2" in p.out, p.out
    left = {n["Name"] for n in json.loads(netd.ok("network", "ls", "--format", "json").out)}
    assert {"bridge", "neta", "netb", "neti"} <= left and not left & {"unused1", "unused2"}, left
    for br in bridges.values():
        wait_for(lambda: not link_exists(br), 10, "bridge %s removed" % br)


def test_auto_subnet_and_bridge_avoid_what_the_host_already_has(netd, nets):
    """A network created without --subnet never takes a subnet routed to another link of
    the namespace (a VPN, a bridge another hyprd left), nor a vbrN name already there:
    replies to its guests would go to the other link."""
    taken = [netd.network(n["Name"])["IPAM"]["Config"][0]["Subnet"]
             for n in json.loads(netd.ok("network", "ls", "--format", "json").out)]
    # The next automatic pick, as the daemon would choose it, given to a dummy link.
    probe = "probe%d" % os.getpid()
    netd.ok("network", "create", probe, timeout=30)
    next_subnet = netd.network(probe)["IPAM"]["Config"][0]["Subnet"]
    next_bridge = netd.network(probe)["Bridge"]
    netd.ok("network", "rm", probe, timeout=30)
    wait_for(lambda: not link_exists(next_bridge), 10, "bridge %s removed" % next_bridge)
    host_addr = str(ipaddress.ip_network(next_subnet)[7]) + "/24"
    subprocess.run(["ip", "link", "add", next_bridge, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", host_addr, "dev", next_bridge], check=True)
        netd.ok("network", "create", "beside", timeout=30)
        try:
            got = netd.network("beside")
            subnet = got["IPAM"]["Config"][0]["Subnet"]
            assert not ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(next_subnet)), \
                (subnet, host_addr)
            assert subnet not in taken, (subnet, taken)
            assert got["Bridge"] != next_bridge, got
        finally:
            netd.ok("network", "rm", "beside", timeout=30)
    finally:
        subprocess.run(["ip", "link", "del", next_bridge], check=False)


def test_force_removed_network_leaves_running_vm(netd, nets):
    """`network rm -f` of a network a running VM uses (its second one): the network,
    its bridge and the VM's TAP on it go, the VM keeps running and keeps its first
    network (reachable by name there)."""
    netd.ok("network", "create", "netx", timeout=30)
    bridge = netd.network("netx")["Bridge"]
    vm_id = netd.boot("-n", "on-ax", "--network", "neta", "--network", "netx", IMAGE,
                      "sleep", "3600")
    try:
        second = [t for t in htaps() if t.startswith(tap_of(vm_id)[:-1]) and t != tap_of(vm_id)]
        assert len(second) == 1, htaps()
        netd.ok("network", "rm", "-f", "netx", timeout=30)
        assert "netx" not in {n["Name"] for n in json.loads(
            netd.ok("network", "ls", "--format", "json").out)}
        wait_for(lambda: not link_exists(bridge), 10, "bridge %s removed" % bridge)
        assert not link_exists(second[0]), htaps()
        assert link_exists(tap_of(vm_id))
        assert netd.status(vm_id) == "running"
        nets_json = netd.inspect(vm_id)["NetworkSettings"]["Networks"]
        assert nets_json["neta"]["IPAddress"] and nets_json["netx"]["IPAddress"] == "", nets_json
        netd.reaches(nets["neta"][1], "on-ax")
    finally:
        netd.hypr("rm", "-f", vm_id)


def test_delete_in_use_network_refused(netd, nets):
    """`network rm` of a network a VM uses fails naming the VM (FAILED_PRECONDITION);
    once the VM is gone the network and its bridge are removed. The default network
    cannot be removed."""
    p = netd.hypr("network", "rm", "netb", timeout=30)
    assert p.returncode != 0, p.out
    assert "in use" in p.err and nets["netb"][1] in p.err, p.err
    with pytest.raises(grpc.RpcError) as exc:
        netd.daemon.call("DeleteNetwork", id="netb")
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.value
    assert "netb" in netd.ok("network", "ls").out
    p = netd.hypr("network", "rm", "bridge", timeout=30)
    assert p.returncode != 0 and "default" in p.err, (p.out, p.err)
    bridge = netd.network("netb")["Bridge"]
    netd.ok("rm", "-f", nets["netb"][0])
    netd.ok("network", "rm", "netb", timeout=30)
    assert "netb" not in {n["Name"] for n in json.loads(
        netd.ok("network", "ls", "--format", "json").out)}
    wait_for(lambda: not link_exists(bridge), 10, "bridge %s removed" % bridge)


@pytest.mark.parametrize("args,words", [
    (["--subnet", "10.90.1.128/25"], ["overlaps", "neta"]),
    (["--subnet", "10.88.5.0/24"], ["overlaps", "bridge"]),
    (["--subnet", "10.91.0.0/33"], ["subnet", "10.91.0.0/33"]),
    (["--subnet", "not-a-cidr"], ["subnet", "not-a-cidr"]),
    (["--subnet", "10.92.0.0/24", "--gateway", "10.93.0.1"], ["gateway", "10.93.0.1"]),
])
def test_bad_network_create_rejected(netd, nets, args, words):
    """Overlapping subnets, invalid CIDRs and a gateway outside the subnet are refused
    with a message naming the problem; no network is created."""
    before = {n["Name"] for n in json.loads(netd.ok("network", "ls", "--format", "json").out)}
    p = netd.hypr("network", "create", *args, "badnet", timeout=30)
    assert p.returncode != 0, p.out
    for w in words:
        assert w.lower() in p.err.lower(), (w, p.err)
    after = {n["Name"] for n in json.loads(netd.ok("network", "ls", "--format", "json").out)}
    assert after == before


@pytest.mark.parametrize("subnet", ["10.94.0.0/40", "10.94.0.300/24", "10.94.0.0",
                                    "fd00::/64"])
def test_bad_cidr_rejected_by_the_daemon(netd, subnet):
    """CreateNetwork itself (not only the CLI) refuses invalid CIDRs: INVALID_ARGUMENT
    with the subnet in the message."""
    with pytest.raises(grpc.RpcError) as exc:
        netd.daemon.call("CreateNetwork", name="badcidr", subnet=subnet)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value
    assert subnet in exc.value.details(), exc.value.details()


# ---- reconcile at start-up ---------------------------------------------------------------

def test_nftables_port_forward_mode(netd, outside):
    """With port_forward=nftables, a port published on 0.0.0.0 is also DNATed for
    traffic arriving from another host: the outside host gets the guest's page through
    this host's address. The rule goes with the VM."""
    netd.daemon.call("UpdateSettings", settings={"port_forward": "nftables"})
    try:
        vm_id = netd.boot("-n", "dnatweb", "-p", "0.0.0.0:8095:80", IMAGE,
                          "httpd", "-f", "-p", "80", "-h", "/www")
        guest_ip = netd.vm_ip(vm_id)
        rules = subprocess.run(["nft", "list", "table", "inet", "hypr"], capture_output=True,
                               text=True, check=True).stdout
        assert re.search(r"tcp dport 8095 dnat ip to %s:80" % re.escape(guest_ip), rules), rules
        # From the outside host, to this host's address on the shared link.
        fetch = ["nsenter", "-t", outside_pid(), "-n", "curl", "-s", "-m", "5",
                 "http://%s:8095/" % OUTSIDE_LOCAL_IP]
        wait_for(lambda: b"<" in subprocess.run(fetch, capture_output=True).stdout, 60,
                 "the guest's page from the outside host through the DNAT rule")
        netd.ok("rm", "-f", vm_id)
        rules = subprocess.run(["nft", "list", "table", "inet", "hypr"], capture_output=True,
                               text=True, check=True).stdout
        assert "8095" not in rules, rules
    finally:
        netd.daemon.call("UpdateSettings", settings={"port_forward": "userspace"})


def test_restarted_daemon_removes_stale_taps(daemons, net_image):
    """TAPs that belong to no running VM (a hyprd that was SIGKILLed, a leftover device)
    are removed when hyprd starts again on the same directories; a `--restart always`
    VM comes back with its TAP, its address and its published port."""
    d = daemons.start()
    h = NetHost(d)
    import_busybox(d, net_image[0], timeout=180)
    vm_id = h.boot("-n", "stale", IMAGE, "sleep", "3600")
    tap = tap_of(vm_id)
    assert link_exists(tap)
    pid = h.inspect(vm_id)["State"]["Pid"]
    port = HTTP_PORT + 7
    keeper = h.boot("-n", "keeper", "--restart", "always", "-p", "%d:80" % port, IMAGE,
                    "httpd", "-f", "-p", "80", "-h", "/www")
    keeper_ip = h.vm_ip(keeper)
    keeper_pid = h.inspect(keeper)["State"]["Pid"]
    leftover = "htapdeadbeef00"[:15]
    subprocess.run(["ip", "tuntap", "add", "dev", leftover, "mode", "tap"], check=True)
    try:
        d.kill()
        for p in (pid, keeper_pid):  # the hypervisors of a crashed daemon go too
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: not {pid, keeper_pid} & set(all_qemu_pids()), 10,
                 "the orphaned qemus to exit")
        # A crashed daemon cleaned nothing up: the persistent TAP is still there.
        assert link_exists(tap), "TAP %s vanished with the daemon (not persistent?)" % tap
        d.start()
        assert not link_exists(leftover), htaps()
        assert not link_exists(tap), htaps()
        assert h.status(vm_id) != "running" or link_exists(tap)
        # The restart-policy VM is running again, reachable as before.
        h.wait_status(keeper, "running")
        assert link_exists(tap_of(keeper)), htaps()
        assert h.vm_ip(keeper) == keeper_ip
        wait_for(lambda: http_get("/", port=port, timeout=5)[0] == 200, 60,
                 "the restarted VM's page through 127.0.0.1:%d" % port, interval=0.25)
    finally:
        subprocess.run(["ip", "link", "del", leftover], capture_output=True)
        if d.alive():
            h.rm_all()

