#!/usr/bin/python3
"""P1/P2 benchmark: VM boot to the workload's first output, kestrel's size, and the
hypervisor's memory per VM.

Starts a hyprd in temp dirs (run it in a network namespace: `make bench` does),
imports a busybox rootfs (Debian's busybox-static) as busybox:latest, then:

  P1 hypr   `hypr run -d busybox echo ready`: time from just before the command to the
            workload's first output line (the line's timestamp in `hypr logs -t`, i.e.
            when hyprd received it; the poll that saw it is also recorded)
     peer   a bare `qemu-system-x86_64` with the same argv hyprd used (same -M, -accel,
            -cpu, -m, -smp, -append, kernel = the cached ELF vmlinux, rootfs disk), minus
            the control channel and QMP, and an initrd that is hyprd's
            kestrel-initramfs.cpio (modules included) with a second cpio appended whose
            /init (replacing kestrel) is a busybox script printing one line: time from
            the spawn to that line on the serial console
            N runs each, interleaved, after one warm-up of each; medians
  P2        size of build/guest/kestrel/kestrel
  memory    VmRSS of the qemu process: 1 VM, and each of 3 VMs running at once
            (measured once the workload has printed its line), against the bare qemu's
            VmRSS at its line

kestrel's boot-phase timestamps (its HELLO frames, which hyprd logs when a VM
starts running) are printed, with the kernel-timestamped console lines around
them (/init started, module drivers registering, squashfs).

Prints a table and rewrites the "P1/P2 — VM boot, agent size, memory" section of
docs/benchmarks.md. Environment: HYPR_BUILD (build dir), BENCH_BOOT_RUNS (5).
"""

import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import benchdoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("HYPR_BUILD") or os.path.join(REPO, "build"))
HYPRD = os.path.join(BUILD, "src", "daemon", "hyprd")
HYPR = os.path.join(BUILD, "src", "cli", "hypr")
KESTREL = os.path.join(BUILD, "guest", "kestrel", "kestrel")
BUSYBOX = "/bin/busybox"
RUNS = int(os.environ.get("BENCH_BOOT_RUNS", "5"))
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## P1/P2 — VM boot, agent size, memory"
P1_TARGET = 1.10
P2_TARGET = 100 * 1024
LINE = "ready"
TIMEOUT = 90


def die(msg):
    print("bench vm_boot: " + msg, file=sys.stderr)
    sys.exit(1)


# ---- setup -------------------------------------------------------------------------------

def busybox_rootfs(root):
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2(BUSYBOX, os.path.join(root, "bin", "busybox"))
    for a in ("sh", "echo", "sleep", "cat", "ls", "true"):
        os.symlink("busybox", os.path.join(root, "bin", a))
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "run"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    return root


class Hyprd:
    def __init__(self, tmp):
        self.data = os.path.join(tmp, "data")
        self.run = os.path.join(tmp, "run")
        os.mkdir(self.data)
        os.mkdir(self.run)
        self.sock = os.path.join(self.run, "hypr.sock")
        self.log_path = os.path.join(tmp, "hyprd.log")
        self.spawn()

    def spawn(self):
        """Starts hyprd on the directories (again, after a kill) and waits until it answers."""
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.pop("HYPR_LOG", None)
        self.proc = subprocess.Popen([HYPRD, "--data-dir", self.data, "--run-dir", self.run,
                                      "--foreground"], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                die("hyprd exited with %d:\n%s" % (self.proc.returncode, self.log_text()))
            if os.path.exists(self.sock) and self.hypr("health", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                die("hyprd not ready after 15s:\n" + self.log_text())
            time.sleep(0.05)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def hypr(self, *args, check=True, timeout=TIMEOUT):
        p = subprocess.run([HYPR, "-H", self.sock, *args], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            die("hypr %s -> %d: %s%s\n%s" % (" ".join(args), p.returncode, p.stdout, p.stderr,
                                             self.log_text()))
        return p

    def pid_of(self, vm):
        return int(json.loads(self.hypr("inspect", vm).stdout)[0]["State"]["Pid"])

    def stop(self):
        ids = self.hypr("ps", "-a", "-q", check=False).stdout.split()
        if ids:
            self.hypr("rm", "-f", *ids, check=False)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


# ---- cpio newc -----------------------------------------------------------------------------

def cpio_entry(name, mode, data=b"", rdev=(0, 0), ino=[900000]):
    ino[0] += 1
    namez = name.encode() + b"\0"
    fields = (ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0)
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + namez
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def busybox_init_cpio():
    """A newc archive whose /init is a busybox script printing one line."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    script = ("#!/bin/busybox sh\n/bin/busybox echo %s\n/bin/busybox poweroff -f\n" % LINE).encode()
    out = b"".join([
        cpio_entry("dev", 0o40755),
        cpio_entry("dev/console", 0o20600, rdev=(5, 1)),
        cpio_entry("bin", 0o40755),
        cpio_entry("bin/busybox", 0o100755, bb),
        cpio_entry("init", 0o100755, script),
        cpio_entry("TRAILER!!!", 0),
    ])
    return out + b"\0" * (-len(out) % 512)


# ---- measurements --------------------------------------------------------------------------

TS_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z?\s(.*)$")


def parse_ts(s):
    return datetime.datetime.fromisoformat(s).replace(tzinfo=datetime.timezone.utc).timestamp()


def hypr_boot(d, n):
    """One `hypr run -d busybox echo ready`; returns seconds to the line (by its log
    timestamp), seconds until a poll saw it, and the VM ID."""
    name = "boot%d" % n
    t0_wall, t0 = time.time(), time.monotonic()
    p = d.hypr("run", "-d", "-n", name, "busybox", "echo", LINE)
    t_returned = time.monotonic() - t0
    vm_id = p.stdout.strip()
    deadline = time.monotonic() + TIMEOUT
    while True:
        out = d.hypr("logs", "-t", vm_id).stdout
        seen = time.monotonic()
        for line in out.splitlines():
            m = TS_LINE.match(line)
            if m and m.group(2).strip() == LINE:
                return parse_ts(m.group(1)) - t0_wall, seen - t0, t_returned, vm_id
        if seen > deadline:
            die("no '%s' from VM %s after %ds" % (LINE, vm_id, TIMEOUT))
        time.sleep(0.01)


def bare_boot(argv):
    """Spawns qemu; returns (seconds to the line on the console, VmRSS KiB then, console)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    console, elapsed, rss = [], None, 0
    try:
        deadline = t0 + TIMEOUT
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            console.append(line)
            if line.strip() == LINE:
                elapsed = time.monotonic() - t0
                rss = vm_rss_kib(p.pid)
                break
            if time.monotonic() > deadline:
                break
    finally:
        p.kill()
        p.wait(10)
    if elapsed is None:
        die("bare qemu printed no '%s':\n%s" % (LINE, "\n".join(console[-30:])))
    return elapsed, rss, console


def bare_argv(vm_argv, initrd):
    """hyprd's qemu argv with another initrd and without the control channel and QMP."""
    out, i = [], 0
    while i < len(vm_argv):
        a = vm_argv[i]
        nxt = vm_argv[i + 1] if i + 1 < len(vm_argv) else ""
        if a == "-initrd":
            out += [a, initrd]
            i += 2
        elif a == "-qmp" or (a == "-chardev" and nxt.startswith("socket,")) or \
                (a == "-device" and nxt.startswith(("virtio-serial", "virtserialport"))):
            i += 2
        else:
            out.append(a)
            i += 1
    return out


PHASE_LINES = [
    (r"Run /init as init process", "kernel runs /init (kestrel or busybox sh)"),
    (r"virtio_blk .*\[vda\]", "virtio_blk loaded, rootfs disk seen"),
    (r"PF_VSOCK", "vsock module loaded"),
    (r"squashfs: version", "squashfs module loaded (rootfs mount)"),
]
KTS = re.compile(r"^\[\s*(\d+\.\d+)\]\s(.*)$")


def console_phases(lines):
    got = []
    for pat, label in PHASE_LINES:
        for line in lines:
            m = KTS.match(line)
            if m and re.search(pat, m.group(2)):
                got.append((float(m.group(1)), label, m.group(2).strip()))
                break
    return got


def guest_span(lines):
    ph = console_phases(lines)
    if len(ph) < 2 or not ph[0][1].startswith("kernel runs /init"):
        return "n/a"
    return "%.2f s" % (ph[-1][0] - ph[0][0])


def boot_ms_from_daemon_log(text, name):
    m = re.search(r"VM %s is running \(booted in (\d+) ms\)" % re.escape(name), text)
    return int(m.group(1)) if m else None


def kestrel_phases_from_daemon_log(text, vm_id):
    """kestrel's HELLO boot phases, as hyprd logs them when the VM runs."""
    m = re.search(r"VM \S+ \(%s\) boot phases \(guest uptime\):(.*)" % vm_id[:12], text)
    return m.group(1).strip() if m else None


def machine_note():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    qv = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                        text=True).stdout.splitlines()[0]
    return "%s, %d CPUs, %.1f GiB RAM, Linux %s; %s" % (
        cpu, os.cpu_count(), mem_kb / 1048576, platform.release(), qv)


def update_doc(text):
    benchdoc.update_section(DOC, SECTION, text)


def mb(kib):
    return "%.1f MB" % (kib / 1024)


def main():
    for path in (HYPRD, HYPR, KESTREL):
        if not os.access(path, os.X_OK):
            die("%s not built (make build)" % path)
    if not os.path.exists(BUSYBOX):
        die("needs busybox-static (make deps)")
    if not shutil.which("qemu-system-x86_64"):
        die("needs qemu-system-x86 (make deps)")
    tmp = tempfile.mkdtemp(prefix="hypr-bb-")  # short: socket paths
    d = None
    try:
        d = Hyprd(tmp)
        rootfs = busybox_rootfs(os.path.join(tmp, "rootfs"))
        d.hypr("image", "import", rootfs, "busybox:latest")

        # Warm-up: extracts and caches the kernel, builds the initramfs, and gives the argv.
        vm = d.hypr("run", "-d", "-n", "warm", "busybox", "sh", "-c",
                    "echo %s; sleep 3600" % LINE).stdout.strip()
        vm_argv = cmdline(d.pid_of(vm))
        d.hypr("rm", "-f", vm)
        if "tcg" in vm_argv:
            accel = "TCG (software emulation: /dev/kvm is not usable here)"
        else:
            accel = "KVM"
        base = os.path.join(d.run, "kestrel-initramfs.cpio")
        initrd = os.path.join(tmp, "busybox-init.cpio")
        with open(base, "rb") as f, open(initrd, "wb") as out:
            out.write(f.read())
            out.write(busybox_init_cpio())
        argv = bare_argv(vm_argv, initrd)
        bare_boot(argv)  # warm-up of the peer

        hypr_ts, hypr_seen, hypr_ret, bare_t, bare_rss = [], [], [], [], []
        last_vm, bare_console = None, []
        for n in range(RUNS):
            ts, seen, ret, vm_id = hypr_boot(d, n)
            hypr_ts.append(ts)
            hypr_seen.append(seen)
            hypr_ret.append(ret)
            if last_vm:
                d.hypr("rm", "-f", last_vm)
            last_vm = vm_id
            t, rss, bare_console = bare_boot(argv)
            bare_t.append(t)
            bare_rss.append(rss)
            print("  run %d: hypr %.2f s (seen %.2f s, run -d returned %.2f s), bare %.2f s"
                  % (n + 1, ts, seen, ret, t), flush=True)
        # Wait for the last VM to power off so its console log is complete.
        deadline = time.monotonic() + 30
        while d.hypr("ps", "-q").stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(os.path.join(d.data, "logs", last_vm + ".log"), errors="replace") as f:
            hypr_console = f.read().splitlines()
        daemon_log = open(d.log_path).read()
        booted_ms = [boot_ms_from_daemon_log(daemon_log, "boot%d" % n) for n in range(RUNS)]
        kphases = kestrel_phases_from_daemon_log(daemon_log, last_vm)
        d.hypr("rm", "-f", last_vm)

        # Memory: 1 VM, then 3 at once.
        rss1 = []
        one = d.hypr("run", "-d", "-n", "mem0", "busybox", "sh", "-c",
                     "echo %s; sleep 3600" % LINE).stdout.strip()
        wait_line(d, one)
        rss1.append(vm_rss_kib(d.pid_of(one)))
        more = [d.hypr("run", "-d", "-n", "mem%d" % i, "busybox", "sh", "-c",
                       "echo %s; sleep 3600" % LINE).stdout.strip() for i in (1, 2)]
        for v in more:
            wait_line(d, v)
        rss3 = [vm_rss_kib(d.pid_of(v)) for v in [one] + more]
        hyprd_rss = vm_rss_kib(d.proc.pid)
        d.hypr("rm", "-f", one, *more)

        kestrel_size = os.stat(KESTREL).st_size
        busybox_size = os.stat(BUSYBOX).st_size
        d.stop()
        d = None

        med_h, med_b = statistics.median(hypr_ts), statistics.median(bare_t)
        ratio = med_h / med_b
        rss_b = statistics.median(bare_rss)
        rss3_mean = statistics.mean(rss3)
        rows = [
            "| metric | hypr | peer | hypr/peer | target |",
            "|---|---:|---:|---:|---|",
            "| P1 `run -d` → first output line, median of %d | %.2f s | %.2f s (bare qemu, "
            "busybox /init) | **%.2f** | ≤ %.2f: %s |"
            % (RUNS, med_h, med_b, ratio, P1_TARGET, "PASS" if ratio <= P1_TARGET else "FAIL"),
            "| P1 min / max | %.2f / %.2f s | %.2f / %.2f s | | |"
            % (min(hypr_ts), max(hypr_ts), min(bare_t), max(bare_t)),
            "| P1 seen by polling `hypr logs` (median) | %.2f s | | %.2f | |"
            % (statistics.median(hypr_seen), statistics.median(hypr_seen) / med_b),
            "| `run -d` returned (VM running, median) | %.2f s | | | |"
            % statistics.median(hypr_ret),
            "| hyprd: spawn → workload started (\"booted in\", median) | %s | | | |"
            % ("%.2f s" % (statistics.median([b for b in booted_ms if b]) / 1000)
               if any(booted_ms) else "n/a"),
            "| host side before the spawn (`run -d` returned − \"booted in\", median) | %s | | | |"
            % ("%.2f s" % (statistics.median(hypr_ret) - statistics.median(
                [b for b in booted_ms if b]) / 1000) if any(booted_ms) else "n/a"),
            "| guest: /init started → squashfs loaded (console, last run) | %s | | | |"
            % guest_span(hypr_console),
            "| P2 kestrel size (stripped, static) | %d B (%.1f KB) | %d B (busybox-static, "
            "for scale) | %.3f | ≤ 100 KB: %s |"
            % (kestrel_size, kestrel_size / 1024, busybox_size, kestrel_size / busybox_size,
               "PASS" if kestrel_size <= P2_TARGET else "FAIL"),
            "| qemu VmRSS, 1 VM (512 MiB guest) | %s | %s (bare qemu at its line) | %.2f | |"
            % (mb(rss1[0]), mb(rss_b), rss1[0] / rss_b),
            "| qemu VmRSS per VM, 3 VMs at once (mean; each) | %s (%s) | | %.2f vs 1 VM | |"
            % (mb(rss3_mean), ", ".join(mb(r) for r in rss3), rss3_mean / rss1[0]),
            "| hyprd VmRSS with 3 VMs running | %s | | | |" % mb(hyprd_rss),
        ]
        tbl = "\n".join(rows)

        def phase_table(lines, title):
            out = ["%s:" % title]
            for ts, label, text in console_phases(lines):
                out.append("  [%8.3f] %-42s %s" % (ts, label, text))
            return out
        phases = phase_table(hypr_console, "hypr VM (last run), console log <data-dir>/logs/<id>.log")
        phases += phase_table(bare_console, "bare qemu (last run)")
        when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        note = machine_note()
        print("P1/P2 — VM boot to first output, kestrel size, hypervisor memory; %s" % accel)
        print(tbl)
        print("kestrel's boot phases (HELLO frames, guest uptime): %s" % (kphases or "n/a"))
        print("kernel-timestamped console lines:")
        print("\n".join(phases))
        print("%s. %s" % (when, note))
        update_doc(
            "Boot of a busybox VM to its workload's first output line. hypr = `hypr run -d "
            "busybox echo %s`, timed from just before the command to the line's timestamp "
            "in `hypr logs -t` (when hyprd received it). Peer = a bare `qemu-system-x86_64` "
            "with the argv hyprd used (same -M, -accel, -cpu, -m, -smp, -append, the cached "
            "ELF vmlinux and the rootfs disk; no control channel or QMP) and hyprd's "
            "`kestrel-initramfs.cpio` (modules included) with a cpio appended whose /init "
            "is a busybox script printing one line, timed from the spawn to that line on "
            "the console. %d runs each, interleaved, after a warm-up of each; %s. "
            "Memory is `VmRSS` of the qemu process once the workload has printed.\n\n"
            "%s\n\n"
            "kestrel's boot phases (HELLO frames as hyprd logs them; guest uptime): "
            "%s\n\nKernel-timestamped console lines around them (guest clock, seconds "
            "since the kernel started):\n\n```\n%s\n```\n\n"
            "Run: %s. Machine: %s.\n"
            % (LINE, RUNS, accel, tbl, kphases or "n/a", "\n".join(phases), when, note))
        print("updated %s" % os.path.relpath(DOC, os.getcwd()))
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_line(d, vm_id):
    deadline = time.monotonic() + TIMEOUT
    while LINE not in d.hypr("logs", vm_id).stdout.split():
        if time.monotonic() > deadline:
            die("VM %s printed no '%s'" % (vm_id, LINE))
        time.sleep(0.05)


if __name__ == "__main__":
    main()
