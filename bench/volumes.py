#!/usr/bin/python3
"""P11 benchmark: volume I/O in a VM over virtiofs, over 9p, and on the VM's writable
layer, and the boot time a VM's volumes add.

Starts a hyprd in temp dirs (run it in a network namespace: `make bench` does) and
imports the busybox rootfs bench/vm_boot.py makes (Debian's busybox-static, with the
applets this benchmark needs linked in: dd, stat, rm, mkdir, seq, date, grep, sync,
adjtimex; the guest is checked for them).
Then, on one host directory:

  a  virtiofs   `hypr system settings set volume_transport=virtiofs`, then
                `hypr run -d --name p11-virtiofs -v DIR:/mnt/vol busybox sleep 100000`
  b  9p         `... volume_transport=9p`, then the same `run` as p11-9p (same DIR)
  c  writable   /bench in the root fs of the virtiofs VM (its writable layer)

One VM has one transport, so (a) and (b) are two VMs, started one after the other and
both kept running; (c) is measured in the first. The guest's /proc/mounts must show
the transport asked for (virtiofs, 9p) or the run fails. Each round measures the three
targets in alternating order (a b c, then c b a, ...); each row is the median of
BENCH_VOL_RUNS (3) rounds. Per target, with `hypr exec VM sh -c ...`:

  seq write   `dd if=/dev/zero of=F bs=1M count=256 conv=fsync` (oflag=direct where the
              target takes it)
  seq read    `dd if=F of=/dev/null bs=1M` (iflag=direct where the target takes it;
              otherwise after `echo 3 > /proc/sys/vm/drop_caches` in the guest)
  files       5,000 small files: create (a shell loop, `echo x > f$i`), stat (a shell
              loop, the builtin `[ -f f$i ]`, one stat(2) each), delete (`rm -rf` of the
              directory); each phase timed with the guest's clock: `date +%s%N` when the
              guest's date supports %N (busybox's does not), else busybox `adjtimex`
              (read only, microseconds), else /proc/uptime (10 ms)

Boot: `hypr run --rm busybox true` wall time (CLI spawn to exit), with `-v v1:/a -v
v2:/b` (two named volumes, volume_transport=virtiofs) and without, BENCH_BOOT_RUNS (5)
each, the order alternating, after a warm-up of each.

Prints MB/s and files/s per target, the ratios virtiofs/9p (target >= 1.0 on every
row) and virtiofs/writable layer (no target), the boot ratio (target <= 1.10), and
rewrites the "P11" section of docs/benchmarks.md. A missed target is printed as FAIL;
the exit status is non-zero only on errors. Environment: HYPR_BUILD, BENCH_VOL_RUNS (3),
BENCH_BOOT_RUNS (5).
"""

import datetime
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm_boot  # noqa: E402  (the daemon harness, the busybox rootfs, the machine note)
from vm_boot import Hyprd, die  # noqa: E402

RUNS = int(os.environ.get("BENCH_VOL_RUNS", "3"))
BOOT_RUNS = vm_boot.RUNS
SECTION = "## P11 — volumes: virtiofs, 9p, writable layer"
RATIO_TARGET = 1.0    # virtiofs/9p, every row
BOOT_TARGET = 1.10    # run --rm with 2 volumes / without
SIZE_MIB = 256
NFILES = 5000
EXEC_TIMEOUT = 150    # one `hypr exec` (256 MiB through TCG can be slow)
TOTAL_BUDGET = 570    # seconds: the whole run stays under 10 minutes
APPLETS = ("dd", "stat", "rm", "mkdir", "seq", "date", "grep", "sync", "rmdir")
CLOCKS = [  # (label, shell expression printing a time, its unit in seconds, resolution)
    ("date +%s%N", "$(date +%s%N)", 1e-9, 1e-9),
    ("adjtimex tv_sec.tv_usec (read only)",
     "$(adjtimex | { while read k v _; do case $k in time.tv_sec:) s=$v;; time.tv_usec:) "
     "u=$v;; esac; done; echo $s.$(printf %06d $u); })", 1.0, 1e-6),
    ("/proc/uptime (10 ms)", "$(read u _ < /proc/uptime; echo $u)", 1.0, 0.01),
]
VOL = "/mnt/vol"
T0 = time.monotonic()

# What each target is: (label, VM key, guest directory).
TARGETS = {
    "a": ("virtiofs volume", "virtiofs", VOL + "/virtiofs"),
    "b": ("9p volume (same host dir)", "9p", VOL + "/9p"),
    "c": ("writable layer (/bench)", "virtiofs", "/bench"),
}


def budget(what):
    if time.monotonic() - T0 > TOTAL_BUDGET:
        die("over the %d s budget before %s" % (TOTAL_BUDGET, what))


def test_rootfs(root):
    """bench/vm_boot.py's busybox rootfs, plus the applets this benchmark runs."""
    vm_boot.busybox_rootfs(root)
    for a in APPLETS + ("adjtimex",):
        link = os.path.join(root, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    os.makedirs(os.path.join(root, "mnt"), exist_ok=True)
    return root


def gexec(d, vm, script, timeout=EXEC_TIMEOUT):
    """Runs script with sh in the guest; returns its stdout."""
    budget("an exec in %s" % vm)
    p = d.hypr("exec", vm, "sh", "-c", script, check=False, timeout=timeout)
    if p.returncode != 0:
        die("hypr exec %s sh -c %s -> %d: %s%s\n%s" % (vm, shlex.quote(script), p.returncode,
                                                     p.stdout, p.stderr, d.log_text()))
    return p.stdout


def kv(out):
    """key=value lines of a guest script's output."""
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class Guest:
    """What a VM's busybox can do, probed once: its clock and direct I/O per target."""

    def __init__(self, d, vm):
        self.d, self.vm = d, vm
        missing = gexec(d, vm, "for a in %s; do command -v $a >/dev/null || echo $a; done"
                        % " ".join(APPLETS)).split()
        if missing:
            die("the test image lacks %s" % ", ".join(missing))
        for label, expr, scale, res in CLOCKS:
            p = d.hypr("exec", vm, "sh", "-c", "a=%s; b=%s; echo $a; echo $b" % (expr, expr),
                       check=False, timeout=30)
            try:
                a, b = (float(x) for x in p.stdout.split())
            except ValueError:
                continue
            # date without %N prints "...%N"; a working clock is positive and moves forward.
            if p.returncode == 0 and "N" not in p.stdout and 0 < a <= b:
                self.clock, self.now, self.scale, self.res = label, expr, scale, res
                break
        else:
            die("no usable clock in the guest")
        self.direct = {}

    def transport(self, path):
        """The fstype /proc/mounts gives for the mount at path."""
        for line in gexec(self.d, self.vm, "cat /proc/mounts").splitlines():
            f = line.split()
            if len(f) >= 3 and f[1] == path:
                return f[2]
        return None

    def probe_direct(self, key, path):
        """(oflag=direct works, iflag=direct works) on the target's directory."""
        f = path + "/.probe"
        out = kv(gexec(self.d, self.vm,
                       "mkdir -p {p}; "
                       "dd if=/dev/zero of={f} bs=1M count=1 oflag=direct 2>/dev/null "
                       "&& echo o=1 || echo o=0; "
                       "dd if=/dev/zero of={f} bs=1M count=1 2>/dev/null; "
                       "dd if={f} of=/dev/null bs=1M iflag=direct 2>/dev/null "
                       "&& echo i=1 || echo i=0; rm -f {f}".format(p=path, f=f)))
        self.direct[key] = (out.get("o") == "1", out.get("i") == "1")

    def seconds(self, a, b):
        # A phase shorter than the clock's resolution counts as one tick.
        return max((float(b) - float(a)) * self.scale, self.res)

    def dd(self, key, path):
        """Write then read SIZE_MIB MiB; returns (write MB/s, read MB/s)."""
        odirect, idirect = self.direct[key]
        f = path + "/seq.bin"
        script = (
            "set -e; mkdir -p {p}; rm -f {f}; sync; "
            "t0={now}; dd if=/dev/zero of={f} bs=1M count={n} conv=fsync{of} 2>/dev/null; "
            "t1={now}; {drop}"
            "t2={now}; dd if={f} of=/dev/null bs=1M{ifl} 2>/dev/null; t3={now}; "
            "rm -f {f}; echo w0=$t0; echo w1=$t1; echo r0=$t2; echo r1=$t3"
        ).format(p=path, f=f, n=SIZE_MIB, now=self.now,
                 of=" oflag=direct" if odirect else "",
                 ifl=" iflag=direct" if idirect else "",
                 drop="" if idirect else
                 "sync; { echo 3 > /proc/sys/vm/drop_caches; } 2>/dev/null || true; ")
        t = kv(gexec(self.d, self.vm, script))
        mb = SIZE_MIB * 1048576 / 1e6
        return (mb / self.seconds(t["w0"], t["w1"]), mb / self.seconds(t["r0"], t["r1"]))

    def files(self, path):
        """Create, stat, delete NFILES small files; returns files/s of each phase."""
        dirp = path + "/files"
        script = (
            "set -e; rm -rf {d}; mkdir -p {d}; cd {d}; "
            "t0={now}; i=0; while [ $i -lt {n} ]; do echo x > f$i; i=$((i+1)); done; "
            "t1={now}; i=0; while [ $i -lt {n} ]; do [ -f f$i ]; i=$((i+1)); done; "
            "t2={now}; cd /; rm -rf {d}; t3={now}; "
            "echo c0=$t0; echo s0=$t1; echo d0=$t2; echo d1=$t3"
        ).format(d=dirp, n=NFILES, now=self.now)
        t = kv(gexec(self.d, self.vm, script))
        return tuple(NFILES / self.seconds(t[a], t[b])
                     for a, b in (("c0", "s0"), ("s0", "d0"), ("d0", "d1")))


def start_vm(d, transport, name, hostdir, image):
    d.hypr("system", "settings", "set", "volume_transport=" + transport)
    d.hypr("run", "-d", "--name", name, "-v", "%s:%s" % (hostdir, VOL), image,
           "sleep", "100000", timeout=120)
    return name


def run_rm(d, vols, n):
    """`hypr run --rm busybox true`, with vols (-v args) or none; seconds spawn to exit."""
    budget("run --rm")
    args = ["run", "--rm", "--name", "p11-boot-%s-%d" % ("v" if vols else "n", n)]
    for v in vols:
        args += ["-v", v]
    t0 = time.monotonic()
    p = d.hypr(*args, "busybox", "true", check=False, timeout=120)
    elapsed = time.monotonic() - t0
    if p.returncode != 0:
        die("hypr %s busybox true -> %d: %s\n%s" % (" ".join(args), p.returncode, p.stderr,
                                                     d.log_text()))
    return elapsed


ROWS = [("seq write", "MB/s"), ("seq read", "MB/s"), ("create", "files/s"),
        ("stat", "files/s"), ("delete", "files/s")]


def main():
    for path in (vm_boot.HYPRD, vm_boot.HYPR):
        if not os.access(path, os.X_OK):
            die("%s not built (make build)" % path)
    if not os.path.exists(vm_boot.BUSYBOX):
        die("needs busybox-static (make deps)")
    tmp = tempfile.mkdtemp(prefix="hypr-p11-")  # short: socket paths
    d = None
    try:
        d = Hyprd(tmp)
        d.hypr("image", "import", test_rootfs(os.path.join(tmp, "rootfs")), "busybox:latest",
               timeout=300)
        hostdir = os.path.join(tmp, "vol")
        os.mkdir(hostdir)

        vms = {"virtiofs": start_vm(d, "virtiofs", "p11-virtiofs", hostdir, "busybox"),
               "9p": start_vm(d, "9p", "p11-9p", hostdir, "busybox")}
        vm_argv = vm_boot.cmdline(d.pid_of(vms["virtiofs"]))
        accel = "TCG (software emulation)" if "tcg" in vm_argv else "KVM"
        guests = {k: Guest(d, v) for k, v in vms.items()}
        for k, g in guests.items():
            got = g.transport(VOL)
            if got != k:
                die("VM %s: %s is mounted as %r, not %s" % (vms[k], VOL, got, k))
        for key, (_, vmk, path) in TARGETS.items():
            guests[vmk].probe_direct(key, path)

        res = {k: {r: [] for r, _ in ROWS} for k in TARGETS}
        order = list(TARGETS)
        for n in range(1, RUNS + 1):
            for key in (order if n % 2 else order[::-1]):
                _, vmk, path = TARGETS[key]
                g = guests[vmk]
                w, r = g.dd(key, path)
                c, s, dl = g.files(path)
                for row, v in zip((r for r, _ in ROWS), (w, r, c, s, dl)):
                    res[key][row].append(v)
            print("  round %d: write MB/s a %.0f b %.0f c %.0f; create files/s a %.0f b %.0f "
                  "c %.0f" % (n, *(res[k]["seq write"][-1] for k in "abc"),
                              *(res[k]["create"][-1] for k in "abc")), flush=True)
        d.hypr("rm", "-f", *vms.values(), timeout=120)

        # Boot: two named volumes against none, virtiofs.
        d.hypr("system", "settings", "set", "volume_transport=virtiofs")
        d.hypr("volume", "create", "v1")
        d.hypr("volume", "create", "v2")
        vols = ["v1:/a", "v2:/b"]
        run_rm(d, [], 0)
        run_rm(d, vols, 0)
        boot = {"none": [], "vols": []}
        pairs = [("none", []), ("vols", vols)]
        for n in range(1, BOOT_RUNS + 1):
            for key, v in (pairs if n % 2 else pairs[::-1]):
                boot[key].append(run_rm(d, v, n))
            print("  boot %d: no volumes %.2f s, 2 volumes %.2f s"
                  % (n, boot["none"][-1], boot["vols"][-1]), flush=True)
        clock = guests["virtiofs"].clock
        direct = {k: guests[TARGETS[k][1]].direct[k] for k in TARGETS}
    finally:
        if d:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: {r: statistics.median(v) for r, v in res[k].items()} for k in res}
    lines = ["| measure | a: virtiofs | b: 9p | c: writable layer | virtiofs/9p | target "
             "| virtiofs/writable |", "|---|---:|---:|---:|---:|---|---:|"]
    for row, unit in ROWS:
        a, b, c = (med[k][row] for k in "abc")
        ratio = a / b
        lines.append("| %s (%s, median of %d) | %.0f | %.0f | %.0f | %.2f | >= %.1f: %s | %.2f |"
                     % (row, unit, RUNS, a, b, c, ratio, RATIO_TARGET,
                        "PASS" if ratio >= RATIO_TARGET else "FAIL", a / c))
    bn, bv = statistics.median(boot["none"]), statistics.median(boot["vols"])
    bratio = bv / bn
    lines += ["", "| boot: `hypr run --rm busybox true` (median of %d) | no volumes | "
              "`-v v1:/a -v v2:/b` | ratio | target |" % BOOT_RUNS, "|---|---:|---:|---:|---|",
              "| wall time, CLI spawn to exit | %.2f s | %.2f s | %.2f | <= %.2f: %s |"
              % (bn, bv, bratio, BOOT_TARGET, "PASS" if bratio <= BOOT_TARGET else "FAIL")]
    table = "\n".join(lines)

    def io_mode(k):
        o, i = direct[k]
        return "%s write, %s read" % ("direct" if o else "buffered (oflag=direct refused)",
                                      "direct" if i else "buffered after drop_caches "
                                      "(iflag=direct refused)")
    note = ("Measured %s on %s; %s. One hyprd, one host directory bind-mounted at %s in two "
            "VMs started one after the other: the first with `volume_transport=virtiofs` "
            "(targets a, and c = /bench in its writable layer), the second with "
            "`volume_transport=9p` (target b); the guest's /proc/mounts confirmed each "
            "transport. One VM has one transport, so a and b cannot share a VM. Rounds "
            "alternate the order of the targets (a b c, c b a, ...); each figure is the "
            "median of %d rounds. Sequential: `dd bs=1M count=%d conv=fsync` then a read of "
            "the file; a: %s; b: %s; c: %s. Files: %d small files created (`echo x > f$i` "
            "loop), stat'ed (`[ -f f$i ]` loop, one stat(2) each), deleted (`rm -rf` of the "
            "directory). Guest clock: %s. The host's page cache is not dropped. Boot: `hypr "
            "run --rm busybox true` from the CLI's spawn to its exit, with two named volumes "
            "(virtiofs) and without, alternating, after a warm-up of each."
            % (datetime.date.today().isoformat(), vm_boot.machine_note(), accel, VOL, RUNS,
               SIZE_MIB, io_mode("a"), io_mode("b"), io_mode("c"), NFILES, clock))
    print("P11 — volumes")
    print(table)
    print(note)
    vm_boot.benchdoc.update_section(vm_boot.DOC, SECTION, note + "\n\n" + table)
    print("updated %s" % os.path.relpath(vm_boot.DOC, os.getcwd()))


if __name__ == "__main__":
    main()
