#!/usr/bin/python3
"""P8 benchmark: TCP throughput through hypr's port forward.

Re-executes itself in a private network namespace (`unshare -n`) standing in for
the host, and creates a second one standing in for a guest, joined by a veth pair
(host 10.88.0.1/24, guest 10.88.0.2/24). `iperf3 -s` runs in the guest namespace.
iperf3 clients in the host namespace then measure, in both directions (upload =
client → guest, download = `-R`, guest → client):

  direct  iperf3 -c 10.88.0.2
  hypr    iperf3 -c 127.0.0.1:PORT through bench/proxy_fwd (src/net/proxy.c)
  socat   iperf3 -c 127.0.0.1:PORT through `socat TCP-LISTEN:... TCP:10.88.0.2:...`

and, from a third namespace standing in for another host (veth 192.0.2.2 <->
host 192.0.2.1; the guest routes back through the host):

  routed  iperf3 -c 10.88.0.2 (forwarded by the host's kernel, no port forward)
  dnat    iperf3 -c 192.0.2.1:PORT through hypr's nftables DNAT rule (what
          port_forward=nftables installs for traffic from other hosts)

A TCG guest would be the bottleneck, so the forward's target is this stand-in;
the guest path is reported separately (system tests). No traffic leaves the two
namespaces this script creates.

Prints a table with the ratios hypr/socat (target >= 1.5) and hypr/direct
(target >= 0.8) and rewrites the "P8 — port forward throughput" section of
docs/benchmarks.md.

Environment: HYPR_BUILD (build dir, default <repo>/build), BENCH_RUNS (3),
BENCH_SECONDS (5), BENCH_NO_DOC=1 (print only).
"""

import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import benchdoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("HYPR_BUILD") or os.path.join(REPO, "build"))
RUNS = max(1, min(int(os.environ.get("BENCH_RUNS", "3")), 10))
SECONDS = max(1, min(int(os.environ.get("BENCH_SECONDS", "5")), 30))
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## P8 — port forward throughput"
HOST_ADDR, GUEST_ADDR = "10.88.0.1", "10.88.0.2"
EDGE_ADDR, REMOTE_ADDR = "192.0.2.1", "192.0.2.2"  # host and "another host" (TEST-NET-1)
IPERF_PORT, HYPR_PORT, SOCAT_PORT, DNAT_PORT = 5201, 8080, 8081, 8090
TARGET_SOCAT, TARGET_DIRECT = 1.5, 0.8
INNER_ENV = "HYPR_BENCH_FORWARD_NETNS"


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=30, **kw)


def proxy_fwd(tmp):
    """The meson-built proxy_fwd, or (until bench/ builds it) one compiled here
    from the build's static libraries."""
    built = os.path.join(BUILD, "bench", "proxy_fwd")
    if os.access(built, os.X_OK):
        return built, "meson build"
    libs = [os.path.join(BUILD, p) for p in ("src/net/libhypr-net.a", "src/common/libhypr-common.a")]
    for lib in libs:
        if not os.path.exists(lib):
            die("%s missing: build first (make build)" % lib)
    exe = os.path.join(tmp, "proxy_fwd")
    pkg = sh("pkg-config", "--cflags", "--libs", "libuv").stdout.split()
    p = subprocess.run(["cc", "-O2", "-std=gnu17", "-D_GNU_SOURCE", "-I", os.path.join(REPO, "src"),
                        os.path.join(REPO, "bench", "proxy_fwd.c"), "-o", exe] + libs + pkg,
                       capture_output=True, text=True)
    if p.returncode != 0:
        die("compiling proxy_fwd failed:\n" + p.stderr)
    return exe, "compiled by forward.py"


def cpu_ticks(pid):
    """utime + stime + reaped children's, in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])
    except OSError:
        return 0


def wait_port(addr, port, deadline=5.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.05)
    die("nothing listens on %s:%d" % (addr, port))


def iperf(addr, port, reverse, netns=None):
    argv = (["nsenter", "-t", netns, "-n"] if netns else []) + \
        ["iperf3", "-c", addr, "-p", str(port), "-t", str(SECONDS), "-J"]
    if reverse:
        argv.append("-R")
    # iperf3 -s serves one client at a time: a connection still closing (socat's
    # readiness probe) makes the next one fail at its control message. Bounded retry.
    for attempt in range(3):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=SECONDS + 30)
        try:
            res = json.loads(p.stdout)
        except ValueError:
            die("iperf3 %s: %s" % (" ".join(argv[1:]), p.stderr or p.stdout))
        err = res.get("error", "")
        if not err:
            return res["end"]["sum_received"]["bits_per_second"] / 1e9
        if attempt == 2 or not re.search(r"control message|busy", err):
            die("iperf3 %s: %s" % (" ".join(argv[1:]), err))
        time.sleep(0.5)


class Namespaces:
    """The guest namespace (held by a `sleep` in it), the veth pair, iperf3 -s."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        sh("ip", "link", "set", "lo", "up")
        holder = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
        self.procs.append(holder)
        self.guest = str(holder.pid)
        for _ in range(100):  # until unshare has exec'd sleep in the new namespace
            if os.readlink("/proc/%s/ns/net" % self.guest) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        sh("ip", "link", "add", "veth-h", "type", "veth", "peer", "name", "veth-g")
        sh("ip", "link", "set", "veth-g", "netns", self.guest)
        sh("ip", "addr", "add", HOST_ADDR + "/24", "dev", "veth-h")
        sh("ip", "link", "set", "veth-h", "up")
        self.guest_sh("ip link set lo up && ip addr add %s/24 dev veth-g && ip link set veth-g up"
                      " && ip route add default via %s" % (GUEST_ADDR, HOST_ADDR))
        # Another host, beyond a second veth pair.
        remote = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
        self.procs.append(remote)
        self.remote = str(remote.pid)
        for _ in range(100):
            if os.readlink("/proc/%s/ns/net" % self.remote) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        sh("ip", "link", "add", "veth-e", "type", "veth", "peer", "name", "veth-r")
        sh("ip", "link", "set", "veth-r", "netns", self.remote)
        sh("ip", "addr", "add", EDGE_ADDR + "/24", "dev", "veth-e")
        sh("ip", "link", "set", "veth-e", "up")
        sh("nsenter", "-t", self.remote, "-n", "sh", "-c",
           "ip link set lo up && ip addr add %s/24 dev veth-r && ip link set veth-r up && "
           "ip route add default via %s" % (REMOTE_ADDR, EDGE_ADDR))
        self.spawn(["nsenter", "-t", self.guest, "-n", "iperf3", "-s", "-B", GUEST_ADDR, "-p",
                    str(IPERF_PORT)])
        for _ in range(100):
            out = sh("nsenter", "-t", self.guest, "-n", "ss", "-ltnH").stdout
            if ":%d" % IPERF_PORT in out:
                break
            time.sleep(0.05)
        return self

    def guest_sh(self, cmd):
        sh("nsenter", "-t", self.guest, "-n", "sh", "-c", cmd)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            self.stop(p)
        subprocess.run(["ip", "link", "del", "veth-h"], capture_output=True)
        subprocess.run(["ip", "link", "del", "veth-e"], capture_output=True)


def measure(ns, fwd_exe):
    """{path: {"up": [Gbit/s...], "down": [...], "cpu": [cpu-seconds per GB]}}."""
    hypr = subprocess.Popen([fwd_exe, "tcp", "127.0.0.1", str(HYPR_PORT), GUEST_ADDR,
                             str(IPERF_PORT)], stdout=subprocess.PIPE, text=True)
    ns.procs.append(hypr)
    if not hypr.stdout.readline().startswith("ready"):
        die("proxy_fwd did not start")
    socat = ns.spawn(["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % SOCAT_PORT,
                      "TCP:%s:%d" % (GUEST_ADDR, IPERF_PORT)])
    wait_port("127.0.0.1", SOCAT_PORT)
    dnat = subprocess.Popen([fwd_exe, "dnat", EDGE_ADDR, str(DNAT_PORT), GUEST_ADDR,
                             str(IPERF_PORT)], stdout=subprocess.PIPE, text=True)
    ns.procs.append(dnat)
    if not dnat.stdout.readline().startswith("ready"):
        die("proxy_fwd dnat did not start")
    paths = [("direct", GUEST_ADDR, IPERF_PORT, None), ("hypr", "127.0.0.1", HYPR_PORT, hypr),
             ("socat", "127.0.0.1", SOCAT_PORT, socat),
             ("routed", GUEST_ADDR, IPERF_PORT, ns.remote),
             ("dnat", EDGE_ADDR, DNAT_PORT, ns.remote)]
    res = {name: {"up": [], "down": [], "cpu": []} for name, _, _, _ in paths}
    iperf(GUEST_ADDR, IPERF_PORT, False)  # warm-up
    hz = os.sysconf("SC_CLK_TCK")
    for run in range(RUNS):
        for name, addr, port, who in paths:  # interleaved: drift hits all alike
            proc = who if not isinstance(who, str) else None
            netns = who if isinstance(who, str) else None
            for direction in ("up", "down"):
                before = cpu_ticks(proc.pid) if proc else 0
                gbps = iperf(addr, port, direction == "down", netns)
                res[name][direction].append(gbps)
                if proc:
                    time.sleep(0.2)  # socat's per-connection children get reaped
                    secs = (cpu_ticks(proc.pid) - before) / hz
                    res[name]["cpu"].append(secs / (gbps / 8 * SECONDS))
            print("run %d %-6s up %6.2f  down %6.2f Gbit/s" % (run + 1, name, res[name]["up"][-1],
                                                               res[name]["down"][-1]), flush=True)
    ns.stop(hypr)
    if hypr.returncode != 0:
        die("proxy_fwd exited with %s on SIGTERM (leak or stuck handle)" % hypr.returncode)
    ns.stop(socat)
    ns.stop(dnat)
    if dnat.returncode != 0:
        die("proxy_fwd dnat exited with %s (its rule could not be removed?)" % dnat.returncode)
    return res


def machine_note():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    osname = platform.freedesktop_os_release().get("PRETTY_NAME", "") \
        if hasattr(platform, "freedesktop_os_release") else ""
    return "%s, %d CPUs, %.1f GiB RAM, Linux %s, %s" % (cpu, os.cpu_count(), mem_kb / 1048576,
                                                       platform.release(), osname)


def verdict(value, target):
    return "PASS" if value >= target else "FAIL"


def report(res, fwd_how):
    med = {n: {d: statistics.median(v[d]) for d in ("up", "down")} for n, v in res.items()}
    cpu = {n: statistics.median(v["cpu"]) if v["cpu"] else None for n, v in res.items()}
    iperf_v = sh("iperf3", "--version").stdout.split("\n")[0].strip()
    socat_v = next((ln.split("version", 1)[1].split(" on ")[0].strip()
                    for ln in sh("socat", "-V").stdout.splitlines() if "socat version" in ln), "?")
    rows = ["| path | upload (client → guest) | download (guest → client) | hypr ÷ path, up / down "
            "| target | CPU s per GB moved |",
            "|---|---:|---:|---:|---|---:|"]
    for name, label in (("hypr", "hypr port forward (src/net/proxy_tcp.c, splice)"),
                        ("socat", "socat TCP-LISTEN,fork → TCP"),
                        ("direct", "direct (no forward)")):
        up, down = med[name]["up"], med[name]["down"]
        if name == "hypr":
            ratio, target = "1.00 / 1.00", ""
        else:
            ru, rd = med["hypr"]["up"] / up, med["hypr"]["down"] / down
            t = TARGET_SOCAT if name == "socat" else TARGET_DIRECT
            ratio = "**%.3f** / **%.3f**" % (ru, rd)
            target = "≥ %.1f: %s / %s" % (t, verdict(ru, t), verdict(rd, t))
        c = "%.3f" % cpu[name] if cpu[name] is not None else ""
        rows.append("| %s | %.2f Gbit/s | %.2f Gbit/s | %s | %s | %s |"
                    % (label, up, down, ratio, target, c))
    rows += ["", "From another host (a third namespace behind the host), where "
             "`port_forward=nftables` puts a DNAT rule in the kernel's path:", "",
             "| path | upload | download | hypr DNAT ÷ routed, up / down |", "|---|---:|---:|---:|"]
    for name, label in (("dnat", "hypr DNAT rule (port_forward=nftables)"),
                        ("routed", "routed to the guest address (no forward)")):
        up, down = med[name]["up"], med[name]["down"]
        ratio = "1.00 / 1.00" if name == "routed" else "**%.3f** / **%.3f**" % (
            up / med["routed"]["up"], down / med["routed"]["down"])
        rows.append("| %s | %.2f Gbit/s | %.2f Gbit/s | %s |" % (label, up, down, ratio))
    table = "\n".join(rows)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        "TCP throughput of one `iperf3 -c … -t %d` stream (median of %d interleaved runs per "
        "path and direction) from a namespace standing in for the host to an `iperf3 -s` at "
        "%s in a second namespace standing in for a guest (veth pair, MTU 1500). hypr = "
        "`bench/proxy_fwd` (%s) running `net_proxy_start` for 127.0.0.1:%d → %s:%d, the "
        "code hyprd runs for `-p`; socat = `socat TCP-LISTEN:%d,fork TCP:%s:%d` relaying the "
        "same ports; direct = the client connecting to the guest address itself. CPU = user + "
        "system time of the forwarding process (socat: with its per-connection children) per "
        "GB moved. A TCG guest would be the bottleneck, so the guest path is reported "
        "separately (system tests).\n\n%s\n\nRun: %s. Machine: %s; %s, socat %s."
        % (SECONDS, RUNS, GUEST_ADDR, fwd_how, HYPR_PORT, GUEST_ADDR, IPERF_PORT, SOCAT_PORT,
           GUEST_ADDR, IPERF_PORT, table, now, machine_note(), iperf_v, socat_v))
    return text


def update_doc(text):
    benchdoc.update_section(DOC, SECTION, text)


def main():
    if os.geteuid() != 0:
        die("needs root (network namespaces)")
    for tool in ("iperf3", "socat", "unshare", "nsenter", "ip", "ss"):
        if not shutil.which(tool):
            die("%s missing (make deps)" % tool)
    if os.environ.get(INNER_ENV) != "1":
        env = dict(os.environ, **{INNER_ENV: "1"})
        os.execvpe("unshare", ["unshare", "-n", sys.executable, os.path.abspath(__file__)] +
                   sys.argv[1:], env)
    tmp = tempfile.mkdtemp(prefix="hypr-bench-fwd-")
    try:
        exe, how = proxy_fwd(tmp)
        with Namespaces() as ns:
            res = measure(ns, exe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(res, how)
    print("\n" + SECTION + "\n\n" + text)
    if os.environ.get("BENCH_NO_DOC") != "1":
        update_doc(text)


if __name__ == "__main__":
    main()
