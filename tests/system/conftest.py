"""Fixtures for hypr's black-box system tests.

At session start the Python protobuf module for api/hypr.proto is generated with
protoc into a temporary directory (no pre-generated or grpc_tools stubs), and
gRPC callables are built generically from the proto's service descriptor.

The ``hyprd`` fixture runs the real daemon binary from $HYPR_BUILD (default
/work/main/build) in fresh temporary data/run directories, waits until its
socket answers Health, and on teardown sends SIGTERM and checks a clean exit
(code 0, socket and pid file removed). The daemon's stderr (HYPR_LOG=debug) goes
to a log file that is attached to the report of a failing test.
"""

import atexit
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("HYPR_BUILD") or os.path.join(REPO, "build"))
HYPRD_BIN = os.path.join(BUILD, "src", "daemon", "hyprd")
HYPR_BIN = os.path.join(BUILD, "src", "cli", "hypr")

GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
]

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


def _generate_protos():
    out = tempfile.mkdtemp(prefix="hypr-pb2-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(
        ["protoc", "--python_out=" + out, "-I", os.path.join(REPO, "api"),
         os.path.join(REPO, "api", "hypr.proto")],
        check=True,
    )
    sys.path.insert(0, out)
    return out


# Generated at import of this conftest, i.e. before any test module is collected,
# so test modules can `import hypr_pb2` at top level (and parametrize from it).
PB2_DIR = _generate_protos()
import hypr_pb2  # noqa: E402
from google.protobuf import symbol_database  # noqa: E402

SERVICE = hypr_pb2.DESCRIPTOR.services_by_name["HyprService"]
SERVICE_PATH = "/" + SERVICE.full_name + "/"


def message_class(desc):
    return symbol_database.Default().GetSymbol(desc.full_name)


def method(name):
    return SERVICE.methods_by_name[name]


def request_class(name):
    return message_class(method(name).input_type)


def make_callable(channel, name):
    """A grpc multi-callable for HyprService/<name> with the right arity."""
    m = method(name)
    path = SERVICE_PATH + name
    ser = message_class(m.input_type).SerializeToString
    de = message_class(m.output_type).FromString
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(m.client_streaming, m.server_streaming)]
    return kind(path, request_serializer=ser, response_deserializer=de)


def wait_for(predicate, timeout, what, interval=0.02):
    """Polls predicate() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.1fs waiting for %s%s"
                % (timeout, what, " (last error: %r)" % (last_exc,) if last_exc else ""))
        time.sleep(interval)


def read_pidfile(path):
    with open(path) as f:
        return int(f.read().strip())


class Daemon:
    """One hyprd process (restartable on the same directories)."""

    def __init__(self, data_dir, run_dir, log_path, env=None, socket_path=None, use_env=False):
        self.data_dir = data_dir
        self.run_dir = run_dir
        self.custom_socket = socket_path
        self.use_env = use_env  # pass the dirs as HYPR_DATA_DIR/HYPR_RUN_DIR
        self.socket = socket_path or os.path.join(run_dir, "hypr.sock")
        self.pid_file = os.path.join(run_dir, "hyprd.pid")
        self.db = os.path.join(data_dir, "hypr.db")
        self.log_path = log_path
        self.extra_env = dict(env or {})
        self.proc = None
        self._channel = None
        self._log = None

    # ---- process ---------------------------------------------------------
    def command(self):
        # --socket only when asked: the default <run-dir>/hypr.sock is part of what is tested.
        cmd = [HYPRD_BIN]
        if not self.use_env:
            cmd += ["--data-dir", self.data_dir, "--run-dir", self.run_dir]
        if self.custom_socket:
            cmd += ["--socket", self.custom_socket]
        return cmd + ["--foreground"]

    def environ(self):
        env = dict(os.environ)
        for k in ("HYPR_DATA_DIR", "HYPR_RUN_DIR", "HYPR_HOST"):
            env.pop(k, None)
        env["HYPR_LOG"] = "debug"
        if self.use_env:
            env["HYPR_DATA_DIR"] = self.data_dir
            env["HYPR_RUN_DIR"] = self.run_dir
        for k, v in self.extra_env.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def start(self, timeout=READY_TIMEOUT):
        assert os.path.exists(HYPRD_BIN), "hyprd not built: %s" % HYPRD_BIN
        self._log = open(self.log_path, "ab")
        self._log.write(b"\n==== hyprd start %s ====\n" % " ".join(self.command()).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=self.environ(),
                                     start_new_session=True)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("hyprd exited with %d before becoming ready:\n%s"
                                     % (rc, self.log_text()[-4000:]))
            if os.path.exists(self.socket):
                try:
                    ch = grpc.insecure_channel("unix:" + self.socket, options=GRPC_OPTIONS)
                    try:
                        resp = make_callable(ch, "Health")(hypr_pb2.HealthRequest(), timeout=1.0)
                    finally:
                        ch.close()
                    if resp.status == "healthy":
                        return
                except grpc.RpcError:
                    pass
            if time.monotonic() >= deadline:
                raise AssertionError("hyprd not ready after %.1fs:\n%s"
                                     % (timeout, self.log_text()[-4000:]))
            time.sleep(0.02)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, send=True):
        """Sends sig (unless already sent: send=False) and waits for exit; returns the
        exit code (killed on timeout)."""
        self.close_channel()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if send:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("hyprd did not exit within %.0fs of %s"
                                     % (timeout, signal.Signals(sig).name))
        rc = self.proc.returncode
        if self._log:
            self._log.close()
            self._log = None
        return rc

    def kill(self):
        """SIGKILL: leaves the socket and pid file behind, like a crash."""
        self.close_channel()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._log:
            self._log.close()
            self._log = None

    def stop_clean(self, sig=signal.SIGTERM, send=True):
        rc = self.stop(sig, send=send)
        assert rc == 0, "hyprd exited with %r after %s" % (rc, signal.Signals(sig).name)
        assert not os.path.exists(self.socket), "socket left behind: %s" % self.socket
        assert not os.path.exists(self.pid_file), "pid file left behind: %s" % self.pid_file

    def restart(self):
        self.stop_clean()
        return self.start()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # ---- grpc --------------------------------------------------------------
    @property
    def channel(self):
        if self._channel is None:
            self._channel = self.new_channel()
        return self._channel

    def new_channel(self):
        return grpc.insecure_channel("unix:" + self.socket, options=GRPC_OPTIONS)

    def close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def rpc(self, name, channel=None):
        """Multi-callable for HyprService/<name> (unary or streaming as declared)."""
        return make_callable(channel or self.channel, name)

    def call(self, name, /, request=None, timeout=10.0, **fields):
        """Unary call; request defaults to <Input>(**fields)."""
        if request is None:
            request = request_class(name)(**fields)
        return self.rpc(name)(request, timeout=timeout)

    def health(self, timeout=10.0):
        return self.call("Health", timeout=timeout)

    def settings(self):
        return {s.key: s.value for s in self.call("GetSettings").settings}


def hypervisor_pids(run_dir, exclude=()):
    """Processes whose command line names a per-VM file of run_dir (hypervisors:
    "<run-dir>/<id>.qmp", ".vsock", ...), hyprd itself excluded."""
    needle = os.path.join(run_dir, "").encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/stat" % entry, "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmd and state != b"Z":
            pids.append(int(entry))
    return pids


def kill_hypervisors(run_dir):
    """VMs outlive hyprd (shutdown_policy keep): a test's VMs must not outlive the test."""
    for pid in hypervisor_pids(run_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class DaemonFactory:
    def __init__(self, tmp_path, node):
        self.tmp_path = tmp_path
        self.node = node
        self.daemons = []
        node._hypr_daemons = self.daemons

    def make(self, name="d", data_dir=None, run_dir=None, env=None, socket_path=None,
             use_env=False):
        base = self.tmp_path / ("%s%d" % (name, len(self.daemons)))
        base.mkdir()
        data_dir = data_dir or str(base / "data")
        run_dir = run_dir or str(base / "run")
        os.makedirs(data_dir, exist_ok=True)
        os.makedirs(run_dir, exist_ok=True)
        d = Daemon(data_dir, run_dir, str(base / "hyprd.log"), env=env,
                   socket_path=socket_path, use_env=use_env)
        self.daemons.append(d)
        return d

    def start(self, **kw):
        return self.make(**kw).start()

    def cleanup(self):
        errors = []
        for d in self.daemons:
            if d.alive():
                try:
                    d.stop_clean()
                except AssertionError as exc:
                    errors.append(str(exc))
            else:
                d.close_channel()
            kill_hypervisors(d.run_dir)
        return errors


@pytest.fixture
def short_tmp():
    """A temp dir with a short path: unix socket paths are limited to 107 bytes."""
    d = tempfile.mkdtemp(prefix="hypr-st-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemons(request, short_tmp):
    """Factory for extra daemons; every one still running is SIGTERMed and
    checked for a clean exit at teardown."""
    f = DaemonFactory(short_tmp, request.node)
    yield f
    errors = f.cleanup()
    assert not errors, "; ".join(errors)


@pytest.fixture
def hyprd(daemons):
    """A running hyprd in fresh temp dirs; clean shutdown is checked at teardown."""
    return daemons.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        daemons = list(getattr(item, "_hypr_daemons", []))
        # Daemons shared by a module (e.g. test_vms.py's `vmd`) reach the test as a
        # fixture value: a Daemon, or an object holding one as `.daemon`.
        for value in getattr(item, "funcargs", {}).values():
            d = value if isinstance(value, Daemon) else getattr(value, "daemon", None)
            if isinstance(d, Daemon) and d not in daemons:
                daemons.append(d)
        for d in daemons:
            text = d.log_text()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append(("hyprd log %s" % d.log_path, text))


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- busybox images for VM tests ------------------------------------------------------

BUSYBOX_BIN = "/bin/busybox"  # Debian's busybox-static
BUSYBOX_APPLETS = ["sh", "echo", "ls", "cat", "sleep", "id", "env", "pwd", "true", "false",
                   "stty", "tty", "seq", "poweroff", "mount", "uname", "hostname", "kill"]


def build_busybox_rootfs(root):
    """A minimal rootfs directory: /bin/busybox with applet symlinks, /etc/passwd with
    root and app (1000:1000, home /tmp), /etc/group, and empty mount points."""
    root = pathlib.Path(root)
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX_BIN, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    for d in ("etc", "proc", "sys", "dev", "tmp", "root", "run"):
        (root / d).mkdir(exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\n")
    return str(root)


@pytest.fixture(scope="session")
def busybox_rootfs():
    """A busybox rootfs directory (session-wide, read-only by convention)."""
    assert os.path.exists(BUSYBOX_BIN), "needs busybox-static (make deps)"
    base = tempfile.mkdtemp(prefix="hypr-bb-")
    try:
        yield build_busybox_rootfs(os.path.join(base, "rootfs"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def import_busybox(daemon, rootfs, reference="busybox:latest", cmd=("sh",), timeout=120):
    """Imports the rootfs into daemon as reference with default cmd `sh` (through the
    ImportImage RPC: the CLI has no flag for the default cmd)."""
    resp = daemon.call("ImportImage", source=rootfs, reference=reference, cmd=list(cmd),
                       timeout=timeout)
    return resp.image
