#!/usr/bin/python3
"""P1b benchmark: `hypr run --rm IMG true` wall time, busybox against a ~240 MB
Debian image, and both against the bare qemu boot of the same kernel.

Starts a hyprd in temp dirs (run it in a network namespace: `make bench` does) and
imports two images:
  busybox   a busybox rootfs (Debian's busybox-static), as bench/vm_boot.py makes it
  debian    a Debian bookworm rootfs made with `debootstrap --variant=minbase
            --include=nginx-light,redis-server,procps` (about 240 MB unpacked), cached
            in BENCH_DEBIAN_ROOTFS (default /var/cache/hypr-bench/debian-rootfs);
            debootstrap needs Debian's archive, the one network this machine has
Then, interleaved, N times each after one warm-up of each:
  hypr    `hypr run --rm IMG true`: from the spawn of the CLI to its exit (the VM has
          booted, run `true`, powered off and been removed)
  peer    a bare `qemu-system-x86_64` with the argv hyprd used and an initrd whose /init
          (busybox) prints one line: spawn to that line (bench/vm_boot.py's peer)
and reads kestrel's boot phases (the HELLO timestamps hyprd logs) of each image's
runs, to show where the Debian image's extra time goes.

Prints a table of ratios (debian/busybox: target <= 1.15) and rewrites the "P1b"
section of docs/benchmarks.md. Environment: HYPR_BUILD, BENCH_BOOT_RUNS (5),
BENCH_DEBIAN_ROOTFS.
"""

import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm_boot  # noqa: E402  (the daemon harness, the bare-qemu peer)
from vm_boot import Hyprd, die  # noqa: E402

RUNS = vm_boot.RUNS
SECTION = "## P1b — `run --rm` of a Debian image against busybox"
TARGET = 1.15
DEBIAN = os.environ.get("BENCH_DEBIAN_ROOTFS", "/var/cache/hypr-bench/debian-rootfs")
PHASES = ["agent", "mounts", "modules", "channel", "rootfs", "network", "workload"]


def debian_rootfs():
    if os.path.isfile(os.path.join(DEBIAN, "usr", "sbin", "nginx")):
        return DEBIAN
    if not shutil.which("debootstrap"):
        die("needs debootstrap (make deps) or BENCH_DEBIAN_ROOTFS")
    tmp = DEBIAN + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(DEBIAN), exist_ok=True)
    print("bench: debootstrap of a Debian rootfs into %s (a few minutes, once)" % DEBIAN,
          flush=True)
    p = subprocess.run(["debootstrap", "--variant=minbase",
                        "--include=nginx-light,redis-server,procps", "bookworm", tmp,
                        "http://deb.debian.org/debian"], capture_output=True, text=True)
    if p.returncode != 0:
        die("debootstrap failed (%d): %s" % (p.returncode, p.stderr[-2000:]))
    shutil.rmtree(os.path.join(tmp, "var", "cache", "apt", "archives"), ignore_errors=True)
    os.rename(tmp, DEBIAN)
    return DEBIAN


def du_mb(path):
    out = subprocess.run(["du", "-sm", path], capture_output=True, text=True).stdout
    return int(out.split()[0])


def run_rm(d, image, n):
    name = "rm-%s-%d" % (image.split(":")[0], n)
    t0 = time.monotonic()
    p = d.hypr("run", "--rm", "--name", name, image, "true", check=False)
    elapsed = time.monotonic() - t0
    if p.returncode != 0:
        die("hypr run --rm %s true -> %d: %s\n%s" % (image, p.returncode, p.stderr,
                                                    d.log_text()))
    return name, elapsed


PHASE_LINE = re.compile(r"VM (\S+) \([0-9a-f]{12}\) boot phases \(guest uptime\): (.*)")


def phases_by_name(log_text):
    """{vm name: {phase: guest seconds}} from hyprd's 'boot phases' lines."""
    out = {}
    for m in PHASE_LINE.finditer(log_text):
        out[m.group(1)] = {k: float(v.rstrip("s")) for k, v in
                           (kv.split("=") for kv in m.group(2).split())}
    return out


def median_phases(phases, names):
    rows = [phases[n] for n in names if n in phases]
    return {p: statistics.median(r[p] for r in rows) for p in PHASES if rows and p in rows[0]}


def main():
    for path in (vm_boot.HYPRD, vm_boot.HYPR):
        if not os.access(path, os.X_OK):
            die("%s not built (make build)" % path)
    deb = debian_rootfs()
    tmp = tempfile.mkdtemp(prefix="hypr-p1b-")
    d = None
    try:
        d = Hyprd(tmp)
        bb = vm_boot.busybox_rootfs(os.path.join(tmp, "rootfs"))
        d.hypr("image", "import", bb, "busybox:latest", timeout=300)
        d.hypr("image", "import", deb, "debian:bench", timeout=600)
        sizes = {"busybox": du_mb(bb), "debian": du_mb(deb)}
        out = d.hypr("images", "--format", "{{.Repository}} {{.Size}}").stdout
        squash = dict(line.split(" ", 1) for line in out.splitlines())
        # Warm-ups: the kernel cache, the initramfs, page cache of both squashfs files.
        vm = d.hypr("run", "-d", "-n", "warm", "busybox", "sh", "-c",
                    "echo %s; sleep 3600" % vm_boot.LINE).stdout.strip()
        vm_argv = vm_boot.cmdline(d.pid_of(vm))
        d.hypr("rm", "-f", vm)
        accel = "TCG (software emulation)" if "tcg" in vm_argv else "KVM"
        initrd = os.path.join(tmp, "busybox-init.cpio")
        with open(os.path.join(d.run, "kestrel-initramfs.cpio"), "rb") as f, \
                open(initrd, "wb") as out:
            out.write(f.read())
            out.write(vm_boot.busybox_init_cpio())
        argv = vm_boot.bare_argv(vm_argv, initrd)
        run_rm(d, "busybox", 0)
        run_rm(d, "debian:bench", 0)
        vm_boot.bare_boot(argv)

        t = {"busybox": [], "debian": [], "bare": []}
        names = {"busybox": [], "debian": []}
        pairs = [("busybox", "busybox"), ("debian", "debian:bench")]
        for n in range(1, RUNS + 1):
            # The order alternates: whatever the previous VM's teardown costs falls on
            # each image as often.
            for key, image in (pairs if n % 2 else pairs[::-1]):
                name, s = run_rm(d, image, n)
                t[key].append(s)
                names[key].append(name)
            t["bare"].append(vm_boot.bare_boot(argv)[0])
            print("  run %d: busybox %.2f s, debian %.2f s, bare qemu %.2f s"
                  % (n, t["busybox"][-1], t["debian"][-1], t["bare"][-1]), flush=True)
        phases = phases_by_name(open(d.log_path, errors="replace").read())
        med = {k: statistics.median(v) for k, v in t.items()}
        ph = {k: median_phases(phases, names[k]) for k in names}
    finally:
        if d:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ratio = med["debian"] / med["busybox"]
    rows = [
        ("`run --rm busybox true` (median of %d)" % RUNS, med["busybox"], med["bare"],
         "bare qemu boot"),
        ("`run --rm debian true` (median of %d)" % RUNS, med["debian"], med["bare"],
         "bare qemu boot"),
        ("debian against busybox", med["debian"], med["busybox"], "busybox run"),
    ]
    lines = ["| measure | hypr | peer | peer is | ratio | target |",
             "|---|---:|---:|---|---:|---|"]
    for label, a, b, peer in rows:
        target = ("<= %.2f: %s" % (TARGET, "PASS" if ratio <= TARGET else "MISS")
                  if peer == "busybox run" else "")
        lines.append("| %s | %.2f s | %.2f s | %s | %.2f | %s |" % (label, a, b, peer, a / b,
                                                                   target))
    lines += ["", "kestrel's boot phases (guest uptime at each, median over the runs):", "",
              "| phase | busybox | debian | difference |", "|---|---:|---:|---:|"]
    for p in PHASES:
        if p in ph["busybox"] and p in ph["debian"]:
            lines.append("| %s | %.3f s | %.3f s | %+.3f s |" % (
                p, ph["busybox"][p], ph["debian"][p], ph["debian"][p] - ph["busybox"][p]))
    table = "\n".join(lines)
    print(table)
    note = ("Measured %s on %s; %s. Images: busybox %d MB unpacked (squashfs %s), Debian "
            "bookworm minbase + nginx-light, redis-server, procps %d MB unpacked (squashfs "
            "%s). Each run is `hypr run --rm IMG true` from the CLI's spawn to its exit; the "
            "peer is bench/vm_boot.py's bare qemu boot (same argv, an initrd whose /init "
            "prints a line). Runs interleaved (the two images in alternating order) after one "
            "warm-up of each."
            % (datetime.date.today().isoformat(), vm_boot.machine_note(), accel,
               sizes["busybox"], squash.get("busybox", "?"), sizes["debian"],
               squash.get("debian", "?")))
    vm_boot.benchdoc.update_section(vm_boot.DOC, SECTION, note + "\n\n" + table)


if __name__ == "__main__":
    main()
