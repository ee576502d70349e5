#!/usr/bin/python3
"""P7 benchmark: DNS queries per second, hyprd's .hypr DNS server against dnsmasq.

Run it in a network namespace (`make bench` does). Starts a hyprd in temp dirs,
imports a busybox rootfs and boots VMs (BENCH_DNS_VMS, default 3) so that hyprd's
name table holds real VM names -- VMs are the only way names get there. Then starts
`dnsmasq` on 127.0.0.1 serving the same names with the same addresses
(--address=/NAME/IP for NAME.hypr and NAME, --no-resolv --no-hosts, no config file),
checks both give the same answers, and measures both with `dnsperf` over UDP with
the same query file (every name, .hypr and plain, type A) and the same parameters,
alternating server per round (BENCH_DNS_ROUNDS rounds of BENCH_DNS_SECONDS seconds
each, defaults 3 and 5). Reports the median queries/s, the ratio hyprd/dnsmasq
(target >= 1.0), latency and lost queries, and rewrites the "P7 — DNS queries per
second" section of docs/benchmarks.md.

Environment: HYPR_BUILD (build dir), BENCH_DNS_VMS, BENCH_DNS_ROUNDS, BENCH_DNS_SECONDS,
BENCH_DNS_CLIENTS (dnsperf -c, default 4), BENCH_DNS_OUTSTANDING (dnsperf -q, 100).
"""

import datetime
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm_boot  # noqa: E402  (Hyprd, busybox_rootfs: the same daemon/image set-up as P1)
import benchdoc
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "system"))
from dnsclient import dns_query  # noqa: E402  (the system tests' DNS client)

REPO = vm_boot.REPO
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## P7 — DNS queries per second"
N_VMS = int(os.environ.get("BENCH_DNS_VMS", "3"))
ROUNDS = int(os.environ.get("BENCH_DNS_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_DNS_SECONDS", "5"))
CLIENTS = int(os.environ.get("BENCH_DNS_CLIENTS", "4"))
OUTSTANDING = int(os.environ.get("BENCH_DNS_OUTSTANDING", "100"))
TARGET = 1.0
HYPRD_DNS_PORT = 41003


def die(msg):
    print("bench dns: " + msg, file=sys.stderr)
    sys.exit(1)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query_a(name, port, timeout=2.0):
    """One UDP A query to 127.0.0.1:port -> (rcode, [addresses])."""
    return dns_query(name, port, timeout=timeout)[:2]


def wait_answers(port, names, what, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = {n: query_a(n, port) for n in names}
            if all(r == (0, [ip]) for n, (ip, r) in ((n, (names[n], got[n])) for n in names)):
                return
        except OSError:
            got = None
        if time.monotonic() > deadline:
            die("%s does not answer the VM names as expected: %r (want %r)" % (what, got, names))
        time.sleep(0.05)


def start_dnsmasq(tmp, port, names):
    args = ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=%d" % port,
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--pid-file=", "--user=root", "--group=root"]
    args += ["--address=/%s/%s" % (n, ip) for n, ip in sorted(names.items())]
    log = open(os.path.join(tmp, "dnsmasq.log"), "wb")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return proc, log, args


def dnsperf(port, datafile):
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", datafile, "-l", str(SECONDS),
           "-c", str(CLIENTS), "-q", str(OUTSTANDING), "-t", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 30)
    if p.returncode != 0:
        die("dnsperf failed (%d): %s%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    out = p.stdout

    def num(label):
        m = re.search(r"^\s*%s:\s+([\d.]+)" % re.escape(label), out, re.M)
        if not m:
            die("dnsperf output without %r:\n%s" % (label, out))
        return float(m.group(1))
    codes = re.search(r"^\s*Response codes:\s+(.*)$", out, re.M)
    return {"qps": num("Queries per second"), "sent": num("Queries sent"),
            "completed": num("Queries completed"), "lost": num("Queries lost"),
            "latency_ms": num("Average Latency (s)") * 1000,
            "codes": codes.group(1).strip() if codes else "?", "cmd": " ".join(cmd)}


def machine_note():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ver = lambda *c: subprocess.run(c, capture_output=True, text=True).stdout  # noqa: E731
    dm = ver("dnsmasq", "--version").splitlines()[0].split("  Copyright")[0]
    h = subprocess.run(["dnsperf", "-h"], capture_output=True, text=True)
    m = re.search(r"Version ([\d.]+)", h.stdout + h.stderr)
    dp = m.group(1) if m else "?"
    return "%s, %d CPUs, Linux %s; %s; dnsperf %s" % (cpu, os.cpu_count(), platform.release(),
                                                    dm, dp)


def update_doc(text):
    benchdoc.update_section(DOC, SECTION, text)


def main():
    for tool in ("dnsperf", "dnsmasq"):
        if not shutil.which(tool):
            die("%s not installed (make deps)" % tool)
    if not os.access(vm_boot.HYPRD, os.X_OK):
        die("%s not built (make build)" % vm_boot.HYPRD)
    tmp = tempfile.mkdtemp(prefix="hypr-bench-dns-")
    d = dm = dm_log = None
    try:
        rootfs = vm_boot.busybox_rootfs(os.path.join(tmp, "rootfs"))
        d = vm_boot.Hyprd(tmp)
        d.hypr("image", "import", rootfs, "busybox:latest")
        names = {}
        for i in range(N_VMS):
            name = "dnsvm%d" % (i + 1)
            d.hypr("run", "-d", "-n", name, "busybox", "sleep", "3600")
        for i in range(N_VMS):
            name = "dnsvm%d" % (i + 1)
            deadline = time.monotonic() + vm_boot.TIMEOUT
            while True:
                st = json.loads(d.hypr("inspect", name).stdout)[0]
                ip = st["NetworkSettings"]["IPAddress"]
                if st["State"]["Status"] == "running" and ip:
                    break
                if time.monotonic() > deadline or st["State"]["Status"] in ("exited", "failed"):
                    die("VM %s not running with an address: %s" % (name, st["State"]))
                time.sleep(0.1)
            names[name + ".hypr"] = ip
            names[name] = ip
        hyprd_port = HYPRD_DNS_PORT  # a fresh daemon: the dns_port setting's default
        wait_answers(hyprd_port, names, "hyprd (127.0.0.1:%d)" % hyprd_port)

        dm_port = free_udp_port()
        dm, dm_log, dm_args = start_dnsmasq(tmp, dm_port, names)
        wait_answers(dm_port, names, "dnsmasq (127.0.0.1:%d)" % dm_port)

        datafile = os.path.join(tmp, "queries.txt")
        with open(datafile, "w") as f:
            for n in sorted(names):
                f.write("%s A\n" % n)

        runs = {"hyprd": [], "dnsmasq": []}
        for r in range(ROUNDS):
            order = [("hyprd", hyprd_port), ("dnsmasq", dm_port)]
            if r % 2:
                order.reverse()
            for who, port in order:
                res = dnsperf(port, datafile)
                runs[who].append(res)
                print("  round %d %-7s %9.0f q/s  lost %d  latency %.3f ms  %s"
                      % (r + 1, who, res["qps"], res["lost"], res["latency_ms"], res["codes"]))
        rss_kb = vm_boot.vm_rss_kib(d.proc.pid)

        med = {k: statistics.median(x["qps"] for x in v) for k, v in runs.items()}
        lat = {k: statistics.median(x["latency_ms"] for x in v) for k, v in runs.items()}
        lost = {k: sum(int(x["lost"]) for x in v) for k, v in runs.items()}
        sent = {k: sum(int(x["sent"]) for x in v) for k, v in runs.items()}
        ratio = med["hyprd"] / med["dnsmasq"]
        rows = ["| server | queries/s (median of %d × %d s) | min / max | avg latency (median) "
                "| lost / sent | response codes (last round) |" % (ROUNDS, SECONDS),
                "|---|---:|---:|---:|---:|---|"]
        for who in ("hyprd", "dnsmasq"):
            q = [x["qps"] for x in runs[who]]
            rows.append("| %s | %.0f | %.0f / %.0f | %.3f ms | %d / %d | %s |"
                        % (who, med[who], min(q), max(q), lat[who], lost[who], sent[who],
                           runs[who][-1]["codes"]))
        rows.append("| **hyprd / dnsmasq** | **%.2f** | | | | target ≥ %.1f: %s |"
                    % (ratio, TARGET, "PASS" if ratio >= TARGET else "FAIL"))
        rows.append("| hyprd VmRSS after the runs (%d VMs running) | %.1f MB | | | | |"
                    % (N_VMS, rss_kb / 1024))
        tbl = "\n".join(rows)
        when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        note = machine_note()
        print("P7 — DNS queries per second (%d names, UDP, dnsperf -c %d -q %d -l %d)"
              % (len(names), CLIENTS, OUTSTANDING, SECONDS))
        print(tbl)
        print("%s. %s" % (when, note))
        update_doc(
            "Queries per second over UDP on 127.0.0.1 with `dnsperf` (`-c %d -q %d -l %d`, "
            "the same query file for both: type A for each of %d names — `dnsvmN.hypr` and "
            "plain `dnsvmN` of %d running VMs). hyprd = its built-in DNS server on "
            "127.0.0.1:%d, names from the VMs it runs; dnsmasq = `dnsmasq --no-daemon "
            "--no-resolv --no-hosts --address=/NAME/IP …` serving the same names and "
            "addresses on another port of 127.0.0.1. Both checked to give the same answers "
            "first; %d rounds, the servers alternating (first server swapped each round), "
            "medians. Both servers and dnsperf share the machine's CPUs.\n\n%s\n\n"
            "Run: %s. Machine: %s.\n"
            % (CLIENTS, OUTSTANDING, SECONDS, len(names), N_VMS, hyprd_port, ROUNDS, tbl,
               when, note))
        print("updated %s" % os.path.relpath(DOC, os.getcwd()))
    finally:
        if dm is not None and dm.poll() is None:
            dm.terminate()
            try:
                dm.wait(10)
            except subprocess.TimeoutExpired:
                dm.kill()
                dm.wait(5)
        if dm_log:
            dm_log.close()
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
