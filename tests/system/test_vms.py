"""VMs that boot (issue 3): real microVMs under qemu (TCG here) whose PID 1 is kestrel,
driven with the `hypr` CLI and, where the CLI has no command, grpcio.

One daemon (`vmd`) is shared by the module where isolation is not needed; tests
that restart the daemon or change its settings get their own. Every VM is run
with --rm or removed, and every wait is bounded.

The image is a busybox rootfs directory (Debian's busybox-static) imported as
busybox:latest with default cmd `sh`.
"""

import fcntl
import json
import os
import re
import selectors
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import threading
import time

import grpc
import pytest

import hypr_pb2
from conftest import HYPR_BIN, Daemon, import_busybox, kill_hypervisors, wait_for

IMAGE = "busybox"  # as a user types it: imported as busybox:latest
BOOT_TIMEOUT = 60  # one TCG boot takes ~3.5 s alone; generous for a busy 2-core host
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PS_COLUMNS = ["ID", "NAME", "IMAGE", "STATUS", "IP", "PORTS"]


# ---- helpers ---------------------------------------------------------------------------

class Host:
    """A daemon plus the CLI pointed at it."""

    def __init__(self, daemon):
        self.daemon = daemon

    @property
    def data_dir(self):
        return self.daemon.data_dir

    @property
    def run_dir(self):
        return self.daemon.run_dir

    def env(self):
        e = dict(os.environ)
        e.pop("HYPR_HOST", None)
        return e

    def argv(self, *args):
        return [HYPR_BIN, "-H", self.daemon.socket, *args]

    def hypr(self, *args, timeout=BOOT_TIMEOUT + 30):
        p = subprocess.run(self.argv(*args), capture_output=True, timeout=timeout,
                           env=self.env(), stdin=subprocess.DEVNULL)
        p.out = p.stdout.decode("utf-8", "replace")
        p.err = p.stderr.decode("utf-8", "replace")
        return p

    def popen(self, *args, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.argv(*args), env=self.env(), **kw)

    def ok(self, *args, timeout=BOOT_TIMEOUT + 30):
        p = self.hypr(*args, timeout=timeout)
        assert p.returncode == 0, "hypr %s -> %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, p.out, p.err)
        return p

    def run_detached(self, *args):
        """`hypr run -d ARGS` -> the full VM ID it printed."""
        p = self.ok("run", "-d", *args)
        vm_id = p.out.strip()
        assert HEX64.match(vm_id), "run -d printed %r, not a 64-hex ID (stderr %r)" % (
            p.out, p.err)
        return vm_id

    def inspect(self, vm):
        p = self.ok("inspect", vm, timeout=30)
        data = json.loads(p.out)
        assert isinstance(data, list) and len(data) == 1, p.out
        return data[0]

    def status(self, vm):
        return self.inspect(vm)["State"]["Status"]

    def wait_status(self, vm, statuses, timeout=BOOT_TIMEOUT):
        statuses = (statuses,) if isinstance(statuses, str) else tuple(statuses)
        seen = []

        def check():
            st = self.inspect(vm)
            seen[:] = [st["State"]["Status"]]
            return st if st["State"]["Status"] in statuses else None
        try:
            return wait_for(check, timeout, "VM %s to be %s" % (vm, "/".join(statuses)),
                            interval=0.25)
        except AssertionError as exc:
            raise AssertionError("%s; last status %s\n%s" % (exc, seen, self.console(vm)))

    def ps_json(self, all=True):
        p = self.ok("ps", *(["-a"] if all else []), "--format", "json", timeout=30)
        return json.loads(p.out)

    def logs(self, vm):
        return self.ok("logs", vm, timeout=30).out

    def console(self, vm_id):
        """The tail of the VM's console log, for failure messages."""
        try:
            with open(log_path(self, vm_id), "rb") as f:
                return "---- console %s ----\n%s" % (vm_id[:12], f.read()[-3000:].decode(
                    "utf-8", "replace"))
        except OSError:
            return ""

    def rm_all(self):
        ids = [v["ID"] for v in self.ps_json()]
        if ids:
            self.hypr("rm", "-f", *ids, timeout=60)


def qemu_pids(vm_id):
    """Live processes (not zombies) whose cmdline is a qemu-system one naming vm_id."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"qemu-system" in cmd and vm_id.encode() in cmd:
            pids.append(int(entry))
    return pids


def all_qemu_pids():
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and b"qemu-system" in cmdline(int(entry)):
            pids.append(int(entry))
    return pids


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def vm_run_files(host, vm_id):
    return sorted(n for n in os.listdir(host.run_dir) if vm_id in n)


def log_path(host, vm_id):
    return os.path.join(host.data_dir, "logs", vm_id + ".log")


def read_lines_timed(proc, timeout, until=None):
    """Reads proc.stdout incrementally; returns [(monotonic arrival, line)] once until(lines)
    holds, at EOF, or at the deadline."""
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    lines, buf = [], b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if not sel.select(min(left, 0.5)):
                continue
            chunk = os.read(fd, 4096)
            now = time.monotonic()
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append((now, line.decode("utf-8", "replace").rstrip("\r")))
            if until and until(lines):
                break
    finally:
        sel.close()
    return lines


class EventCollector:
    """SubscribeEvents in a background thread."""

    def __init__(self, daemon, types=("vm",)):
        self.channel = daemon.new_channel()
        self.call = daemon.rpc("SubscribeEvents", channel=self.channel)(
            hypr_pb2.SubscribeEventsRequest(types=list(types)), timeout=BOOT_TIMEOUT * 2)
        self.events = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for ev in self.call:
                with self.lock:
                    self.events.append(ev)
        except grpc.RpcError:
            pass

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def close(self):
        self.call.cancel()
        self.thread.join(5)
        self.channel.close()


class Pty:
    """A command on a pseudo-terminal that is its controlling terminal."""

    def __init__(self, argv, rows, cols, env=None):
        self.master, slave = os.openpty()
        self._set_size(slave, rows, cols)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=ctty, env=env)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.out = b""

    @staticmethod
    def _set_size(fd, rows, cols):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, rows, cols):
        # The kernel sends SIGWINCH to the terminal's foreground process group (hypr).
        self._set_size(self.master, rows, cols)

    def send(self, text):
        os.write(self.master, text.encode())

    def _read(self, wait):
        sel = selectors.DefaultSelector()
        sel.register(self.master, selectors.EVENT_READ)
        try:
            if sel.select(wait):
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # EIO: the other side is closed
                    data = b""
                self.out += data
                return bool(data)
        finally:
            sel.close()
        return False

    def expect(self, pattern, timeout, start=0):
        """Waits until pattern matches the output from offset start; returns the match."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, start)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out after %.0fs waiting for %r on the terminal; "
                                     "got %r" % (timeout, pattern, self.out[-2000:]))
            if not self._read(min(left, 0.5)) and self.proc.poll() is not None:
                self._read(0.1)
                m = rx.search(self.out, start)
                if m:
                    return m
                raise AssertionError("exited with %s before %r showed; got %r"
                                     % (self.proc.returncode, pattern, self.out[-2000:]))

    def stty_size(self, timeout):
        """Runs `stty size` in the shell; returns (rows, cols)."""
        tag = "%d" % (time.monotonic_ns() % 100000)
        # $((..)) keeps the marker out of the echoed command line.
        start = len(self.out)
        self.send("stty size; echo END$((%s+1))\r" % tag)
        m = self.expect(r"(\d+) (\d+)\r?\n(?:.*\n)??END%d" % (int(tag) + 1), timeout, start)
        return int(m.group(1)), int(m.group(2))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


# ---- fixtures --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vmd(busybox_rootfs):
    """One hyprd for the module, with busybox:latest imported; at teardown every VM is
    removed, the daemon must stop cleanly and no hypervisor may be left."""
    base = tempfile.mkdtemp(prefix="hypr-vm-")  # short: unix socket paths <= 107 bytes
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    d.start()
    host = Host(d)
    try:
        import_busybox(d, busybox_rootfs)
        yield host
        host.rm_all()
        ids = [v["ID"] for v in host.ps_json()]
        assert not ids, "VMs left after rm -f: %s" % ids
        d.stop_clean()
        left = [pid for pid in all_qemu_pids() if run.encode() in cmdline(pid)]
        assert not left, "hypervisors left after the daemon stopped: %s" % left
    finally:
        if d.alive():
            d.kill()
        kill_hypervisors(run)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def sleeper(vmd):
    """A long-running VM for exec/metrics/ps tests: (id, name)."""
    name = "sleeper"
    vm_id = vmd.run_detached("-n", name, IMAGE, "sleep", "3600")
    vmd.wait_status(vm_id, "running")
    yield vm_id, name
    vmd.hypr("rm", "-f", vm_id, timeout=60)


@pytest.fixture(scope="module")
def trio(vmd):
    """Three VMs started at the same time; the IDs (all running)."""
    procs = [vmd.popen("run", "-d", "-n", "trio-%d" % i, IMAGE, "sleep", "3600")
             for i in range(3)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=BOOT_TIMEOUT * 3)
        assert p.returncode == 0, "run -d -> %d: %s" % (p.returncode, err.decode())
        ids.append(out.decode().strip())
    for vm_id in ids:
        vmd.wait_status(vm_id, "running", timeout=BOOT_TIMEOUT * 2)
    yield ids
    vmd.hypr("rm", "-f", *ids, timeout=60)


@pytest.fixture
def own_host(daemons, busybox_rootfs):
    """A separate daemon (for settings changes and restarts) with busybox imported."""
    d = daemons.start()
    import_busybox(d, busybox_rootfs)
    host = Host(d)
    yield host
    if d.alive():
        host.rm_all()


# ---- run -------------------------------------------------------------------------------

def test_run_echo_hello(vmd):
    """`hypr run busybox echo hello` prints hello and exits 0."""
    p = vmd.hypr("run", "--rm", IMAGE, "echo", "hello")
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert p.out == "hello\n", (p.out, p.err)


def test_run_exit_code(vmd):
    """The workload's exit code is hypr run's exit code."""
    p = vmd.hypr("run", "--rm", IMAGE, "sh", "-c", "echo before; exit 3")
    assert p.returncode == 3, (p.returncode, p.out, p.err)
    assert "before" in p.out


def test_run_image_entrypoint_and_cmd(vmd, busybox_rootfs):
    """The image's entrypoint and default cmd run when no command is given; a command
    given replaces only the cmd (docker's rules)."""
    vmd.daemon.call("ImportImage", source=busybox_rootfs, reference="busybox:greet",
                    entrypoint=["echo", "ep"], cmd=["default-arg"], timeout=120)
    p = vmd.hypr("run", "--rm", "busybox:greet")
    assert (p.returncode, p.out) == (0, "ep default-arg\n"), (p.returncode, p.out, p.err)
    p = vmd.hypr("run", "--rm", "busybox:greet", "given")
    assert (p.returncode, p.out) == (0, "ep given\n"), (p.returncode, p.out, p.err)


def test_run_rm_events_and_removal(vmd):
    """A `run --rm` publishes vm.created, vm.starting, vm.started, vm.stopped, vm.deleted
    (in order) and the VM is gone afterwards: not in ps -a, GetVM NOT_FOUND, no console
    log, no run files."""
    ev = EventCollector(vmd.daemon)
    try:
        wait_for(lambda: vmd.daemon.health().event_subscribers >= 1, 5, "the subscription")
        p = vmd.hypr("run", "--rm", "-n", "evt", IMAGE, "echo", "bye")
        assert p.returncode == 0, (p.returncode, p.out, p.err)
        assert p.out == "bye\n"

        def mine_until_stopped():
            evs = ev.snapshot()
            ids = {e.id for e in evs
                   if e.type == "vm.created" and e.attributes.get("name") == "evt"}
            evs = [e for e in evs if e.id in ids]
            return evs if any(e.type == "vm.deleted" for e in evs) else None
        evs = wait_for(mine_until_stopped, 10, "vm.deleted of VM evt")
    finally:
        ev.close()
    types = [e.type for e in evs]
    order = ["vm.created", "vm.starting", "vm.started", "vm.stopped", "vm.deleted"]
    assert [t for t in types if t in order] == order, types
    stopped = evs[types.index("vm.stopped")]
    assert stopped.attributes.get("exit_code") == "0", dict(stopped.attributes)
    vm_id = evs[0].id
    assert HEX64.match(vm_id), vm_id
    # --rm: nothing of the VM is left.
    wait_for(lambda: all(v["ID"] != vm_id for v in vmd.ps_json()), 10, "VM evt removed")
    with pytest.raises(grpc.RpcError) as e:
        vmd.daemon.call("GetVM", id=vm_id)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(log_path(vmd, vm_id))
    assert vm_run_files(vmd, vm_id) == []
    assert qemu_pids(vm_id) == []


def test_run_detached_prints_id_and_ps_columns(vmd, sleeper):
    """`run -d` printed a 64-hex ID; `hypr ps` shows ID (12), NAME, IMAGE, STATUS, IP,
    PORTS with the VM Up."""
    vm_id, name = sleeper
    assert HEX64.match(vm_id)
    out = vmd.ok("ps").out
    lines = out.splitlines()
    assert lines, out
    assert lines[0].split() == PS_COLUMNS, lines[0]
    starts = [lines[0].index(c) for c in PS_COLUMNS]
    rows = [l for l in lines[1:] if l.startswith(vm_id[:12])]
    assert len(rows) == 1, out
    row = rows[0]
    cell = lambda i: row[starts[i]:starts[i + 1] if i + 1 < len(starts) else None].strip()
    assert cell(0) == vm_id[:12], out
    assert cell(1) == name, out
    assert cell(2).startswith(IMAGE), out
    assert cell(3).startswith("Up"), out
    assert vm_id not in out  # IDs are truncated to 12


def test_vm_by_name_id_and_prefix(vmd, sleeper):
    """A VM is found by name, full ID and unique ID prefix."""
    vm_id, name = sleeper
    for ref in (name, vm_id, vm_id[:12], vm_id[:8]):
        assert vmd.inspect(ref)["Id"] == vm_id, ref


def test_name_in_use_is_refused(vmd, sleeper):
    """Running a second VM under a taken name fails (non-zero, names it); no VM is added."""
    vm_id, name = sleeper
    before = len(vmd.ps_json())
    p = vmd.hypr("run", "-d", "-n", name, IMAGE, "true")
    assert p.returncode != 0, p.out
    assert name in p.err, p.err
    assert re.search(r"in use|already|exists|taken", p.err, re.I), p.err
    assert len(vmd.ps_json()) == before


def test_unknown_image_exit_125(vmd):
    """An unknown image: a clear error naming it, exit 125, no VM created."""
    before = len(vmd.ps_json())
    p = vmd.hypr("run", "--rm", "no-such-image:v1", "true")
    assert p.returncode == 125, (p.returncode, p.out, p.err)
    # (hypr run pulls a missing image, as docker does; the pull fails with no network)
    assert "no-such-image" in p.err, p.err
    assert re.search(r"unable to find|not found|no such", p.err, re.I), p.err
    assert len(vmd.ps_json()) == before


@pytest.mark.parametrize("args,word", [
    (["-c", "abc"], "abc"),
    (["-c", "-2"], "-2"),
    (["-c", "1000"], "cpu"),
    (["-m", "abc"], "abc"),
    (["-m", "16"], "memory"),
    (["-m", "100000g"], "memory"),
])
def test_bad_cpu_or_memory_is_refused(vmd, args, word):
    """Bad --cpus/--memory values are refused with an error and no VM is created."""
    before = len(vmd.ps_json())
    p = vmd.hypr("run", "--rm", *args, IMAGE, "true", timeout=30)
    assert p.returncode != 0, p.out
    assert word.lower() in p.err.lower(), p.err
    assert "Traceback" not in p.err and p.returncode > 0
    assert len(vmd.ps_json()) == before


def test_bad_entrypoint_exit_127(vmd):
    """A command that does not exist in the image: exit 127 with the reason shown."""
    before = len(vmd.ps_json())
    p = vmd.hypr("run", "--rm", IMAGE, "/nonexistent")
    assert p.returncode == 127, (p.returncode, p.out, p.err)
    both = p.out + p.err
    assert "/nonexistent" in both, both
    assert re.search(r"not found|no such file", both, re.I), both
    wait_for(lambda: len(vmd.ps_json()) == before, 10, "the --rm VM to be removed")


def test_env_workdir_user_applied_by_run(vmd):
    """-e, -w and -u app are applied to the workload (app is uid/gid 1000)."""
    p = vmd.hypr("run", "--rm", "-e", "FOO=bar", "-e", "SPACED=a b", "-w", "/tmp",
                 "-u", "app", IMAGE, "sh", "-c",
                 'echo "foo=$FOO"; echo "spaced=$SPACED"; pwd; id -u; id -g')
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert p.out.splitlines() == ["foo=bar", "spaced=a b", "/tmp", "1000", "1000"], p.out


# ---- logs ------------------------------------------------------------------------------

def test_logs_follow_streams_as_output_comes(vmd):
    """`logs -f` on a `run -d` VM shows each line as the workload writes it (lines
    arrive spread over time, in order) and ends when the VM stops."""
    vm_id = vmd.run_detached(IMAGE, "sh", "-c",
                             "for i in 1 2 3 4 5; do echo line$i; sleep 1; done")
    try:
        proc = vmd.popen("logs", "-f", vm_id)
        try:
            lines = read_lines_timed(proc, 40, until=lambda ls: any(
                l == "line5" for _, l in ls))
            rc = proc.wait(20)  # follow ends once the VM stops
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        got = [l for _, l in lines]
        assert got[:5] == ["line1", "line2", "line3", "line4", "line5"], got
        assert rc == 0, proc.stderr.read()
        t = {l: ts for ts, l in lines}
        # Written one second apart: a reader that gets them only at the end sees no spread.
        assert t["line5"] - t["line1"] >= 2.5, lines
        assert t["line5"] - t["line3"] >= 1.0, lines
        st = vmd.wait_status(vm_id, "exited", timeout=30)
        assert st["State"]["ExitCode"] == 0
        # After the fact, logs and logs -n give the same lines.
        assert vmd.logs(vm_id).splitlines() == got[:5]
        assert vmd.ok("logs", "-n", "2", vm_id).out.splitlines() == ["line4", "line5"]
    finally:
        vmd.hypr("rm", "-f", vm_id)


def test_logs_follow_reader_that_falls_behind_gets_every_line(vmd):
    """A `logs -f` reader that reads nothing until the workload is done (MBs of
    output pile up behind it) still gets every line, once, in order; so do `logs`
    and `logs -n` afterwards. hyprd catches such a reader up from the log file
    instead of queueing the output in memory."""
    n = 700000  # ~4.8 MB: more than hyprd queues on one connection
    vm_id = vmd.run_detached(IMAGE, "sh", "-c", "sleep 1; seq 1 %d" % n)
    try:
        proc = vmd.popen("logs", "-f", vm_id)
        try:
            vmd.wait_status(vm_id, "exited", timeout=BOOT_TIMEOUT + 60)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        assert proc.returncode == 0, err
        want = "".join("%d\n" % i for i in range(1, n + 1)).encode()
        assert out == want, (len(out), len(want), out[:40], out[-40:])
        assert vmd.logs(vm_id).encode() == want
        assert vmd.ok("logs", "-n", "3", vm_id).out.splitlines() == [str(n - 2), str(n - 1),
                                                                     str(n)]
    finally:
        vmd.hypr("rm", "-f", vm_id)


# ---- exec ------------------------------------------------------------------------------

def test_exec_ls_root(vmd, sleeper):
    """`exec VM -- ls /` lists the image's root directory."""
    p = vmd.hypr("exec", sleeper[1], "--", "ls", "/", timeout=30)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    names = set(p.out.split())
    assert {"bin", "etc", "proc", "sys", "dev", "tmp", "root"} <= names, p.out


@pytest.mark.parametrize("cmd,code", [
    (["sh", "-c", "exit 7"], 7),
    (["false"], 1),
    (["true"], 0),
    (["/no/such/command"], 127),
])
def test_exec_exit_codes(vmd, sleeper, cmd, code):
    """hypr exec exits with the command's exit code (127 for a missing command)."""
    p = vmd.hypr("exec", sleeper[0], "--", *cmd, timeout=30)
    assert p.returncode == code, (p.returncode, p.out, p.err)


def test_exec_env_workdir_user(vmd, sleeper):
    """exec -e/-w/-u apply to the command; stdout and stderr are kept apart."""
    p = vmd.hypr("exec", "-e", "X=1 2", "-w", "/proc", "-u", "app", sleeper[0], "--", "sh",
                 "-c", 'echo "x=$X"; pwd; id -u; echo oops >&2', timeout=30)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    assert p.out.splitlines() == ["x=1 2", "/proc", "1000"], p.out
    assert p.err.strip() == "oops", p.err


def test_exec_stdin(vmd, sleeper):
    """exec -i sends stdin to the command."""
    p = subprocess.run(vmd.argv("exec", "-i", sleeper[0], "--", "cat"), input=b"abc\nxyz\n",
                       capture_output=True, timeout=30, env=vmd.env())
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"abc\nxyz\n", p.stdout


def test_exec_it_pty_and_window_size(vmd, sleeper):
    """`exec -it` under a pseudo-terminal: a shell prompt, echo of typed input, the window
    size set before starting (stty size), a later resize, and the exit status."""
    term = Pty(vmd.argv("exec", "-it", sleeper[0]), 30, 100, env=vmd.env())
    try:
        term.expect(r"[#$] $|[#$] ", 30)  # busybox sh prompt, e.g. "/ # "
        start = len(term.out)
        term.send("echo hel''lo\r")
        term.expect(r"echo hel''lo", 15, start)  # the terminal echoes what is typed
        term.expect(r"\r?\nhello\r?\n", 15, start)
        assert term.stty_size(15) == (30, 100)
        term.resize(40, 120)
        wait_for(lambda: term.stty_size(10) == (40, 120), 20, "stty size 40 120 after resize",
                 interval=0.2)
        start = len(term.out)
        term.send("tty\r")
        term.expect(r"/dev/pts/\d+", 15, start)
        term.send("exit 5\r")
        assert term.proc.wait(20) == 5
    finally:
        term.close()


@pytest.mark.parametrize("state", ["created", "exited"])
def test_exec_into_stopped_vm_fails(vmd, state):
    """exec into a VM that is not running fails with "not running", non-zero."""
    if state == "created":
        vm = vmd.daemon.call("CreateVM", config=hypr_pb2.VMConfig(
            image=IMAGE, name="never-started", cmd=["true"])).vm
        vm_id = vm.id
    else:
        vm_id = vmd.run_detached(IMAGE, "true")
        vmd.wait_status(vm_id, "exited", timeout=30)
    try:
        p = vmd.hypr("exec", vm_id, "--", "true", timeout=30)
        assert p.returncode != 0, p.out
        assert "not running" in p.err, p.err
    finally:
        vmd.hypr("rm", "-f", vm_id)


# ---- metrics ---------------------------------------------------------------------------

def test_stream_vm_metrics(vmd, sleeper):
    """StreamVMMetrics on a running VM delivers guest memory figures within ~15 s."""
    call = vmd.daemon.rpc("StreamVMMetrics")(
        hypr_pb2.StreamVMMetricsRequest(id=sleeper[0], interval_ms=1000), timeout=20)
    try:
        got = None
        for m in call:
            if m.memory_total_bytes > 0:
                got = m
                break
    finally:
        call.cancel()
    assert got is not None, "no metrics message with memory_total_bytes"
    assert got.id == sleeper[0]
    assert 0 < got.memory_used_bytes <= got.memory_total_bytes
    assert got.memory_total_bytes <= 512 << 20  # the default 512 MiB VM
    assert abs(got.timestamp_ms / 1000 - time.time()) < 30


# ---- restart and stop -----------------------------------------------------------------

def test_restart_on_failure_twice(vmd):
    """--restart on-failure:2 restarts a failing workload exactly twice: RestartCount 2,
    its line logged 3 times, final exit code 1."""
    vm_id = vmd.run_detached("--restart", "on-failure:2", IMAGE, "sh", "-c",
                             "echo attempt; exit 1")
    try:
        st = vmd.wait_status(vm_id, ("exited", "failed"), timeout=90)
        assert st["State"]["Status"] == "exited", st["State"]
        assert st["RestartCount"] == 2, st
        assert st["State"]["ExitCode"] == 1, st["State"]
        assert st["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                     "MaximumRetryCount": 2}
        assert vmd.logs(vm_id).splitlines().count("attempt") == 3, vmd.logs(vm_id)
    finally:
        vmd.hypr("rm", "-f", vm_id)


def test_stop_kills_workload_ignoring_sigterm(vmd):
    """`stop -t 2` on a workload that ignores SIGTERM kills it after ~2 s: exit 137."""
    vm_id = vmd.run_detached(IMAGE, "sh", "-c",
                             'trap "" TERM; echo ready; while :; do sleep 1; done')
    try:
        wait_for(lambda: "ready" in vmd.logs(vm_id), 30, "the workload's trap to be set",
                 interval=0.2)
        t0 = time.monotonic()
        p = vmd.hypr("stop", "-t", "2", vm_id, timeout=60)
        elapsed = time.monotonic() - t0
        assert p.returncode == 0, (p.out, p.err)
        assert 2.0 <= elapsed <= 8.0, elapsed
        st = vmd.wait_status(vm_id, "exited", timeout=10)
        assert st["State"]["ExitCode"] == 137, st["State"]
        wait_for(lambda: qemu_pids(vm_id) == [], 10, "qemu gone after stop")
    finally:
        vmd.hypr("rm", "-f", vm_id)


# ---- several VMs, removal, hypervisor death --------------------------------------------

def test_three_vms_at_once(vmd, trio):
    """Three VMs run at once: all Up in `hypr ps`, each with its own live qemu."""
    rows = {r["ID"]: r for r in vmd.ps_json(all=False)}
    for vm_id in trio:
        assert vm_id in rows, rows.keys()
        assert rows[vm_id]["Status"].startswith("Up"), rows[vm_id]
    out = vmd.ok("ps").out
    for i, vm_id in enumerate(trio):
        assert re.search(r"^%s\s+trio-%d\s+.*\bUp\b" % (vm_id[:12], i), out, re.M), out
    pids = [vmd.inspect(v)["State"]["Pid"] for v in trio]
    assert len(set(pids)) == 3 and all(p > 0 for p in pids), pids
    for vm_id, pid in zip(trio, pids):
        assert qemu_pids(vm_id) == [pid], (vm_id, pid, qemu_pids(vm_id))


def test_rm_force_running_leaves_nothing(vmd, trio):
    """`rm -f` of a running VM: no hypervisor process, no socket or file in the run dir,
    no console log, no record."""
    vm_id = trio[0]
    assert vmd.status(vm_id) == "running"
    assert qemu_pids(vm_id), "no qemu for the running VM"
    assert os.path.exists(log_path(vmd, vm_id))
    assert vm_run_files(vmd, vm_id), "no run-dir files for the running VM"
    p = vmd.hypr("rm", "-f", vm_id, timeout=30)
    assert p.returncode == 0, (p.out, p.err)
    assert all(v["ID"] != vm_id for v in vmd.ps_json())
    wait_for(lambda: qemu_pids(vm_id) == [], 5, "the qemu of the removed VM to be gone")
    assert vm_run_files(vmd, vm_id) == []
    assert not os.path.exists(log_path(vmd, vm_id))
    p = vmd.hypr("inspect", vm_id, timeout=30)
    assert p.returncode != 0


def test_killed_hypervisor_turns_vm_failed(vmd, trio):
    """SIGKILL of a VM's qemu turns the VM `failed` with an error message."""
    vm_id = trio[1]
    st = vmd.inspect(vm_id)
    assert st["State"]["Status"] == "running"
    pid = st["State"]["Pid"]
    assert pid in qemu_pids(vm_id), (pid, qemu_pids(vm_id))
    os.kill(pid, signal.SIGKILL)
    st = vmd.wait_status(vm_id, "failed", timeout=15)
    assert st["State"]["Running"] is False
    assert st["State"]["Error"].strip(), st["State"]
    assert re.search(r"kill|signal|exit|died|terminated|hypervisor|qemu", st["State"]["Error"],
                     re.I), st["State"]["Error"]
    row = [r for r in vmd.ps_json() if r["ID"] == vm_id][0]
    assert row["State"] == "failed" and row["Status"] == "Failed", row
    assert qemu_pids(vm_id) == []
    # The others are unaffected.
    assert vmd.status(trio[2]) == "running"


# ---- daemon restart and settings -------------------------------------------------------

def test_daemon_restart_keeps_vm_records(own_host):
    """Restarting hyprd (SIGTERM, start on the same dirs) keeps every VM record."""
    h = own_host
    p = h.hypr("run", "-n", "finished", IMAGE, "echo", "done")
    assert p.returncode == 0 and p.out == "done\n", (p.returncode, p.out, p.err)
    alive = h.run_detached("-n", "alive", IMAGE, "sleep", "3600")
    made = h.daemon.call("CreateVM", config=hypr_pb2.VMConfig(image=IMAGE, name="made")).vm
    before = {v["ID"]: v["Names"] for v in h.ps_json()}
    assert set(before.values()) == {"finished", "alive", "made"}, before
    assert alive in before and made.id in before
    h.daemon.restart()
    after = {v["ID"]: v["Names"] for v in h.ps_json()}
    assert after == before
    st = h.inspect("finished")
    assert st["State"]["Status"] == "exited" and st["State"]["ExitCode"] == 0, st["State"]
    assert h.status("made") == "created"
    assert "done" in h.logs("finished")
    # The VM that was running is not claimed to run without a hypervisor, and it can be
    # started again from its record.
    st = h.inspect("alive")
    if st["State"]["Status"] == "running":
        assert qemu_pids(alive) == [st["State"]["Pid"]], st["State"]
    else:
        assert qemu_pids(alive) == [], st["State"]
        h.ok("start", "alive")
        h.wait_status(alive, "running")
    p = h.hypr("exec", "alive", "--", "echo", "still-here", timeout=30)
    assert (p.returncode, p.out) == (0, "still-here\n"), (p.returncode, p.out, p.err)


@pytest.mark.parametrize("when", ["fresh-daemon", "after-a-boot"])
def test_missing_kernel_setting_is_a_clear_error(own_host, short_tmp, when):
    """A `kernel` setting naming a missing file: hypr run fails naming it, and nothing is
    left booting or recorded -- also when the daemon already booted a VM with the
    kernel it found before the setting changed."""
    h = own_host
    missing = str(short_tmp / "no-such-vmlinux")
    if when == "after-a-boot":
        p = h.hypr("run", "--rm", IMAGE, "true")
        assert p.returncode == 0, (p.returncode, p.out, p.err)
    try:
        h.daemon.call("UpdateSettings", settings={"kernel": missing})
    except grpc.RpcError as e:  # refusing it right away is as good
        assert missing in e.details(), e.details()
        return
    p = h.hypr("run", "--rm", IMAGE, "echo", "hi", timeout=60)
    assert p.returncode != 0, p.out
    assert missing in p.err, p.err
    assert "hi" not in p.out
    assert h.ps_json() == []
    assert not [pid for pid in all_qemu_pids() if h.run_dir.encode() in cmdline(pid)]
    assert not [n for n in os.listdir(h.run_dir) if re.match(r"[0-9a-f]{64}", n)]


def test_firecracker_not_installed(own_host):
    """hypervisor=firecracker without the binary: a clear "not installed" error, no VM."""
    h = own_host
    assert shutil.which("firecracker") is None
    h.daemon.call("UpdateSettings", settings={"hypervisor": "firecracker"})
    p = h.hypr("run", "--rm", IMAGE, "true", timeout=60)
    assert p.returncode != 0, p.out
    assert "firecracker" in p.err and "not installed" in p.err, p.err
    assert h.ps_json() == []

