"""Black-box tests of hyprd's gRPC API, driven with grpcio (a client nobody here wrote)."""

import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import grpc
import pytest

import hypr_pb2
from conftest import (HYPRD_BIN, PB2_DIR, SERVICE, free_tcp_port, make_callable, method,
                      read_pidfile, request_class, wait_for)
from registry import Registry

DEFAULT_SETTINGS = {
    "default_cpus": "1",
    "default_host_ip": "127.0.0.1",
    "default_memory_mb": "512",
    "dns_port": "41003",
    "grpc_tcp": "false",
    "grpc_tcp_address": "127.0.0.1:41000",
    "hypervisor": "auto",
    "insecure_registries": "",
    "kernel": "",
    "log_level": "info",
    "metrics_addr": "127.0.0.1:41002",
    "port_forward": "userspace",
    "registry_certs_dir": "/etc/hypr/certs.d",
    "rest_addr": "127.0.0.1:41001",
    "shutdown_policy": "keep",
    "stop_timeout": "10",
    "vm_writable_layer_size": "10240",
    "volume_transport": "auto",
}

NOT_IMPLEMENTED = [
    "BuildImage", "DeployStack",
    "DestroyStack", "StreamStackServiceLogs",
]

LIST_RPCS = [
    ("ListVms", {}, "vms"),
    ("ListVms", {"all": True}, "vms"),
    ("ListImages", {}, "images"),
    ("ListImages", {"all": True}, "images"),
    ("ListVolumes", {}, "volumes"),
    ("ListStacks", {}, "stacks"),
]

GET_RPCS = [
    ("GetVM", {"id": "no-such-vm"}, "no-such-vm"),
    ("GetVM", {"id": "0123456789ab"}, "0123456789ab"),
    ("GetImage", {"id": "no-such-image:latest"}, "no-such-image"),
    ("GetNetwork", {"id": "no-such-net"}, "no-such-net"),
    ("GetVolume", {"name": "no-such-vol"}, "no-such-vol"),
    ("GetStack", {"name": "no-such-stack"}, "no-such-stack"),
]

ENTRY = "r%06d.example:5000"  # 19 bytes + comma


def registries(total_bytes):
    n = total_bytes // (len(ENTRY % 0) + 1) + 1
    return ",".join(ENTRY % i for i in range(n))


def subscribers(d):
    return d.health().event_subscribers


# ------------------------------------------------------------------ health, files


def test_health_reports_daemon(hyprd):
    """Health answers healthy/0.1.0 with the daemon's own pid, a sane start time
    and uptime, counts itself as an active call, and no event subscribers."""
    before = int(time.time())
    r = hyprd.health()
    assert r.status == "healthy"
    assert r.version == "0.1.0"
    assert r.pid == hyprd.pid
    assert r.active_calls >= 1
    assert r.event_subscribers == 0
    assert 0 <= r.uptime_seconds < 60
    assert before - 60 <= r.started_at <= before + 1
    assert abs((r.started_at + r.uptime_seconds) - int(time.time())) <= 2


def test_runtime_files(hyprd):
    """Default socket is <run-dir>/hypr.sock with mode 0660, the pid file holds the
    daemon's pid, and the database is <data-dir>/hypr.db."""
    st = os.stat(hyprd.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))
    assert read_pidfile(hyprd.pid_file) == hyprd.pid
    assert os.path.isfile(hyprd.db)


def test_dirs_from_environment_and_socket_option(daemons, short_tmp):
    """HYPR_DATA_DIR/HYPR_RUN_DIR replace the flags, and --socket picks the socket path."""
    sock = str(short_tmp / "custom.sock")
    d = daemons.make(use_env=True, socket_path=sock)
    d.start()
    assert d.health().pid == d.pid
    assert os.path.exists(sock)
    assert not os.path.exists(os.path.join(d.run_dir, "hypr.sock"))
    assert read_pidfile(d.pid_file) == d.pid
    assert os.path.isfile(d.db)
    d.stop_clean()
    assert not os.path.exists(sock)


def test_hypr_log_debug_is_verbose(daemons):
    """HYPR_LOG=debug adds debug lines on stderr; the default level has none."""
    quiet = daemons.start(env={"HYPR_LOG": None})
    quiet.health()
    loud = daemons.start(env={"HYPR_LOG": "debug"})
    loud.health()
    quiet.stop_clean()
    loud.stop_clean()
    debug_line = re.compile(r"\bdebug\b", re.I)
    assert not [l for l in quiet.log_text().splitlines() if debug_line.search(l)
                and not l.startswith("====")], quiet.log_text()
    assert [l for l in loud.log_text().splitlines() if debug_line.search(l)
            and not l.startswith("====")], loud.log_text()


# ------------------------------------------------------------------ settings


def test_settings_defaults(daemons):
    """GetSettings lists every key, sorted, with its default value on a fresh daemon."""
    d = daemons.start(env={"HYPR_LOG": None})
    resp = d.call("GetSettings")
    keys = [s.key for s in resp.settings]
    assert keys == sorted(keys)
    assert {s.key: s.value for s in resp.settings} == DEFAULT_SETTINGS


def test_settings_update_persists_across_restart(hyprd, short_tmp):
    """A valid multi-key update is returned, visible in GetSettings, and survives a restart."""
    kernel = str(short_tmp / "vmlinux")
    open(kernel, "wb").close()
    updates = {
        "hypervisor": "qemu",
        "kernel": kernel,
        "default_cpus": "4",
        "default_memory_mb": "2048",
        "stop_timeout": "0",
        "port_forward": "nftables",
        "default_host_ip": "0.0.0.0",
        "insecure_registries": "localhost:5000,reg.example",
        "dns_port": "5353",
        "log_level": "warn",
        "shutdown_policy": "stop",
    }
    resp = hyprd.call("UpdateSettings", settings=updates)
    returned = {s.key: s.value for s in resp.settings}
    for k, v in updates.items():
        assert returned.get(k) == v, (k, returned.get(k))
    expected = dict(DEFAULT_SETTINGS, **updates)
    assert hyprd.settings() == expected
    hyprd.restart()
    assert hyprd.settings() == expected


def test_settings_accept_boundary_values(hyprd):
    """Each edge of every documented range is accepted and stored."""
    cases = [
        {"default_cpus": "256"}, {"default_cpus": "1"},
        {"default_memory_mb": "64"}, {"default_memory_mb": "1048576"},
        {"stop_timeout": "3600"}, {"stop_timeout": "0"},
        {"dns_port": "1"}, {"dns_port": "65535"},
        {"hypervisor": "cloud-hypervisor"}, {"hypervisor": "firecracker"}, {"hypervisor": "auto"},
        {"grpc_tcp": "true"}, {"grpc_tcp": "false"},
        {"grpc_tcp_address": "127.0.0.1:41999"},
        {"kernel": "/boot/vmlinux"}, {"kernel": ""},
        {"insecure_registries": "a.example"}, {"insecure_registries": ""},
        {"port_forward": "userspace"},
        {"default_host_ip": "10.1.2.3"},
        {"log_level": "error"}, {"log_level": "trace"}, {"log_level": "info"},
    ]
    for upd in cases:
        try:
            hyprd.call("UpdateSettings", settings=upd)
        except grpc.RpcError as e:
            pytest.fail("update %r rejected: %s %s" % (upd, e.code(), e.details()))
        got = hyprd.settings()
        for k, v in upd.items():
            assert got[k] == v, upd


INVALID_SETTINGS = [
    ("no_such_key", "1"),
    ("hypervisor", "vmware"),
    ("kernel", "relative/vmlinux"),
    ("default_cpus", "0"),
    ("default_cpus", "257"),
    ("default_cpus", "two"),
    ("default_memory_mb", "63"),
    ("default_memory_mb", "1048577"),
    ("stop_timeout", "3601"),
    ("stop_timeout", "-1"),
    ("grpc_tcp", "yes"),
    ("grpc_tcp_address", "no-port-here"),
    ("port_forward", "iptables"),
    ("metrics_addr", "127.0.0.1"),
    ("default_host_ip", "300.1.2.3"),
    ("default_host_ip", "localhost"),
    ("insecure_registries", "a.example, b.example"),
    ("insecure_registries", "a.example,,b.example"),
    ("dns_port", "0"),
    ("dns_port", "65536"),
    ("log_level", "verbose"),
    ("shutdown_policy", "kill"),
]


@pytest.mark.parametrize("key,value", INVALID_SETTINGS, ids=["%s=%s" % kv for kv in INVALID_SETTINGS])
def test_settings_invalid_update_is_atomic(hyprd, key, value):
    """An unknown key or a bad value gives INVALID_ARGUMENT naming the key, and the
    valid key sent in the same request is not applied either."""
    companion = {"stop_timeout": "42"} if key != "stop_timeout" else {"default_cpus": "3"}
    before = hyprd.settings()
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("UpdateSettings", settings=dict(companion, **{key: value}))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()
    assert key in (ei.value.details() or ""), ei.value.details()
    assert hyprd.settings() == before


def test_settings_updated_event(hyprd):
    """A successful update publishes settings.updated (id "settings", attributes =
    changed keys) to a matching subscriber, and not to one filtering on "vm"."""
    sub = hyprd.rpc("SubscribeEvents")
    settings_stream = sub(hypr_pb2.SubscribeEventsRequest(types=["settings"]), timeout=20)
    # Its deadline bounds the wait for "nothing arrives".
    vm_stream = sub(hypr_pb2.SubscribeEventsRequest(types=["vm"]), timeout=3)
    wait_for(lambda: subscribers(hyprd) == 2, 2, "2 event subscribers")
    t0 = int(time.time() * 1000)
    hyprd.call("UpdateSettings", settings={"default_cpus": "3", "stop_timeout": "30"})
    ev = next(settings_stream)
    assert ev.type == "settings.updated"
    assert ev.id == "settings"
    assert dict(ev.attributes) == {"default_cpus": "3", "stop_timeout": "30"}
    assert t0 - 5000 <= ev.timestamp_ms <= int(time.time() * 1000) + 5000
    settings_stream.cancel()
    got = []
    with pytest.raises(grpc.RpcError) as ei:
        for e in vm_stream:
            got.append(e)
    assert got == []
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


# ------------------------------------------------------------------ system stats


def test_system_stats(hyprd):
    """GetSystemStats matches the host: cpus, memory, disk of the data dir, zero counts."""
    r = hyprd.call("GetSystemStats")
    assert r.host_cpus == os.cpu_count()
    with open("/proc/meminfo") as f:
        meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    total = meminfo["MemTotal"]
    assert abs(r.host_memory_total_bytes - total) <= total // 100
    assert 0 < r.host_memory_available_bytes <= r.host_memory_total_bytes
    vfs = os.statvfs(hyprd.data_dir)
    disk_total = vfs.f_blocks * vfs.f_frsize
    assert abs(r.disk_total_bytes - disk_total) <= disk_total // 100
    slack = max(disk_total // 50, 64 << 20)
    assert (abs(r.disk_free_bytes - vfs.f_bavail * vfs.f_frsize) <= slack
            or abs(r.disk_free_bytes - vfs.f_bfree * vfs.f_frsize) <= slack), r.disk_free_bytes
    for field in ("vms_total", "vms_running", "images", "volumes", "stacks"):
        assert getattr(r, field) == 0, field
    assert r.networks == 1, "only the default network"
    assert os.path.realpath(r.data_dir) == os.path.realpath(hyprd.data_dir)


# ------------------------------------------------------------------ list / get / unimplemented


@pytest.mark.parametrize("name,fields,repeated", LIST_RPCS,
                         ids=["%s%s" % (n, "-all" if f else "") for n, f, _ in LIST_RPCS])
def test_list_empty_on_fresh_daemon(hyprd, name, fields, repeated):
    """Every List RPC answers OK with an empty list on a fresh daemon."""
    r = hyprd.call(name, **fields)
    assert list(getattr(r, repeated)) == []


def test_fresh_daemon_has_only_the_default_network(hyprd):
    """Like docker's `bridge`: a fresh daemon lists exactly the default network,
    vbr0 on 10.88.0.0/16 with gateway 10.88.0.1."""
    nets = list(hyprd.call("ListNetworks").networks)
    assert [(n.name, n.bridge, n.subnet, n.gateway, n.driver) for n in nets] == [
        ("bridge", "vbr0", "10.88.0.0/16", "10.88.0.1", "bridge")]


def test_volume_rpcs_over_grpcio(hyprd):
    """CreateVolume / GetVolume / ListVolumes / DeleteVolume / PruneVolumes from a
    plain grpcio client: labels kept, a taken name answers with the volume (as
    Docker), bad names and unknown ones refused with the value named."""
    v = hyprd.call("CreateVolume", name="apivol", labels={"team": "a"}).volume
    assert (v.name, v.driver, v.scope, dict(v.labels)) == ("apivol", "local", "local",
                                                           {"team": "a"})
    assert v.mountpoint.endswith("/volumes/local/apivol")
    assert hyprd.call("CreateVolume", name="apivol").volume.created_at == v.created_at
    anon = hyprd.call("CreateVolume").volume.name
    assert re.fullmatch(r"[0-9a-f]{64}", anon), anon
    with open(os.path.join(v.mountpoint, "f"), "wb") as f:
        f.write(b"x" * 10000)
    got = hyprd.call("GetVolume", name="apivol").volume
    assert got.size_bytes >= 10000 and list(got.vm_ids) == []
    names = [x.name for x in hyprd.call("ListVolumes", filters=["label=team=a"]).volumes]
    assert names == ["apivol"]
    for bad in ("..", "a/b", "x", "-x"):
        with pytest.raises(grpc.RpcError) as ei:
            hyprd.call("CreateVolume", name=bad)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and bad in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("ListVolumes", filters=["colour=red"])
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "colour" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("DeleteVolume", name="nope-vol")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND and "nope-vol" in ei.value.details()
    # prune without all keeps named volumes (Docker 23+); with all it takes them
    assert list(hyprd.call("PruneVolumes").deleted) == []
    r = hyprd.call("PruneVolumes", all=True, filters=["label=team=a"])
    assert list(r.deleted) == ["apivol"] and r.reclaimed_bytes >= 10000
    assert not os.path.exists(v.mountpoint)
    hyprd.call("DeleteVolume", name=anon)
    assert list(hyprd.call("ListVolumes").volumes) == []


@pytest.mark.parametrize("name,fields,ident", GET_RPCS, ids=["%s-%s" % (n, i) for n, _, i in GET_RPCS])
def test_get_unknown_is_not_found(hyprd, name, fields, ident):
    """Every Get RPC with an unknown ID/name answers NOT_FOUND naming what was asked for."""
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call(name, **fields)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, (ei.value.code(), ei.value.details())
    assert ident in (ei.value.details() or ""), ei.value.details()


def test_rename_vm_errors(hyprd):
    """RenameVM (grpcio): an unknown VM is NOT_FOUND naming it; an invalid new name is
    INVALID_ARGUMENT naming the name."""
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("RenameVM", id="no-such-vm", name="x")
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND, ei.value
    assert "no-such-vm" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("RenameVM", id="no-such-vm", name="bad/name")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value
    assert "bad/name" in ei.value.details()


# ------------------------------------------------------------------ login


@pytest.fixture
def auth_registry(short_tmp):
    """Debian's docker-registry behind htpasswd basic auth (hypr / s3cret)."""
    if not (shutil.which("docker-registry") and shutil.which("htpasswd")):
        pytest.skip("needs docker-registry and htpasswd (make deps)")
    reg = Registry(str(short_tmp / "reg"), htpasswd=("hypr", "s3cret")).start()
    yield reg
    reg.stop()


def login(d, registry, username="hypr", password="s3cret", timeout=30):
    return d.call("Login", registry=registry, username=username, password=password,
                  timeout=timeout)


def login_error(d, registry, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        login(d, registry, **kw)
    return ei.value


def test_login_checks_credentials_and_saves_nothing(daemons, short_tmp, auth_registry):
    """Login (grpcio) checks the credentials against the registry: good ones succeed,
    a wrong password is UNAUTHENTICATED with the registry's reason, a bad registry name
    INVALID_ARGUMENT, an unreachable one UNAVAILABLE, missing fields INVALID_ARGUMENT.
    The daemon writes no docker config (the client keeps the credentials) and never
    logs the password."""
    cfg, home = short_tmp / "docker", short_tmp / "home"
    cfg.mkdir()
    home.mkdir()
    d = daemons.start(env={"DOCKER_CONFIG": str(cfg), "HOME": str(home)})
    host = auth_registry.host

    r = login(d, host)
    assert r.status == "Login Succeeded" and r.identity_token == "", r
    assert login(d, "http://%s/v2/" % host).status == "Login Succeeded"

    err = login_error(d, host, password="wrongpass")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
    assert "unauthorized" in err.details() and host in err.details(), err.details()
    err = login_error(d, host, username="nobody", password="wrongpass")
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()

    for bad in ("bad host", "-x.example", "127.0.0.1:99999"):
        err = login_error(d, bad)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, err.details())
        assert "invalid registry" in err.details(), err.details()
    unreachable = "127.0.0.1:%d" % free_tcp_port()
    err = login_error(d, unreachable)
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
    assert unreachable in err.details(), err.details()
    for fields in ({"username": ""}, {"password": ""}):
        err = login_error(d, host, **fields)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()

    assert os.listdir(cfg) == [] and os.listdir(home) == []
    assert d.health().status == "healthy"
    d.stop_clean()
    assert "s3cret" not in d.log_text() and "wrongpass" not in d.log_text()


def test_login_call_gone_before_registry_answers(daemons):
    """A Login whose call ends (deadline) while the registry says nothing is cancelled:
    the daemon keeps answering and still shuts down promptly and cleanly."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepted by the kernel, never answered
    try:
        d = daemons.start()
        host = "127.0.0.1:%d" % srv.getsockname()[1]
        err = login_error(d, host, timeout=1)
        assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.details()
        assert d.health().status == "healthy"
        t0 = time.monotonic()
        d.stop_clean()
        assert time.monotonic() - t0 < 10
    finally:
        srv.close()


def test_unimplemented_list_covers_the_rest_of_the_service():
    """Sanity of this suite: the RPCs tested here are exactly the service minus the
    implemented ones (a new RPC in the proto must be classified)."""
    implemented = {"ListVms", "ListImages", "ListNetworks", "ListVolumes", "ListStacks",
                   "GetVM", "GetImage", "GetNetwork", "GetVolume", "GetStack",
                   "GetSystemStats", "Health", "GetSettings", "UpdateSettings",
                   "SubscribeEvents", "PullImage", "ImportImage", "DeleteImage",
                   "GetImageHistory", "CreateVM", "StartVM", "StopVM", "DeleteVM", "RunVM",
                   "StreamVMMetrics", "StreamLogs", "Exec", "CreateNetwork", "DeleteNetwork",
                   "RenameVM", "Login",
                   "ListGpus"}
    implemented |= {"GetDiskUsage", "PruneSystem"}  # system df / prune
    implemented |= {"KillVM", "WaitVM", "PauseVM", "UnpauseVM", "UpdateVM"}  # issue 9
    implemented |= {"CreateVolume", "DeleteVolume", "PruneVolumes"}  # issue 11
    assert set(NOT_IMPLEMENTED) == {m.name for m in SERVICE.methods} - implemented


@pytest.mark.parametrize("name", NOT_IMPLEMENTED)
def test_not_implemented_rpcs(hyprd, name):
    """Each RPC not implemented yet answers UNIMPLEMENTED with a message naming it,
    whether unary, server-streaming or bidi; the daemon stays healthy."""
    m = method(name)
    req = request_class(name)()
    call = hyprd.rpc(name)
    with pytest.raises(grpc.RpcError) as ei:
        if m.client_streaming:
            for _ in call(iter([req]), timeout=10):
                pass
        elif m.server_streaming:
            for _ in call(req, timeout=10):
                pass
        else:
            call(req, timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED, (ei.value.code(), ei.value.details())
    assert name in (ei.value.details() or ""), ei.value.details()
    assert hyprd.health().status == "healthy"


def test_unknown_method_is_unimplemented(hyprd):
    """A method path the service does not have answers UNIMPLEMENTED."""
    call = hyprd.channel.unary_unary("/hypr.v1.HyprService/NoSuchMethod",
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as ei:
        call(b"", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_request_is_invalid_argument(hyprd):
    """A request body that is not a valid protobuf answers INVALID_ARGUMENT; the daemon lives on."""
    call = hyprd.channel.unary_unary("/hypr.v1.HyprService/UpdateSettings",
                                     request_serializer=lambda b: b,
                                     response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as ei:
        call(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)  # field 1, absurd length
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()
    assert hyprd.health().status == "healthy"


# ------------------------------------------------------------------ deadlines, sizes, load


def test_deadline_exceeded_on_stream(hyprd):
    """SubscribeEvents with a 0.3 s deadline ends with DEADLINE_EXCEEDED near 0.3 s,
    and the server releases the subscription."""
    t0 = time.monotonic()
    call = hyprd.rpc("SubscribeEvents")(hypr_pb2.SubscribeEventsRequest(), timeout=0.3)
    with pytest.raises(grpc.RpcError) as ei:
        for _ in call:
            pass
    elapsed = time.monotonic() - t0
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 <= elapsed < 5, elapsed
    wait_for(lambda: subscribers(hyprd) == 0, 10, "event_subscribers back to 0")


def test_8mib_request_and_response(hyprd):
    """An ~8 MiB UpdateSettings request is accepted and an ~8 MiB GetSettings response
    comes back intact."""
    big = registries(8 << 20)
    assert len(big) >= 8 << 20
    hyprd.call("UpdateSettings", settings={"insecure_registries": big}, timeout=60)
    resp = hyprd.call("GetSettings", timeout=60)
    assert resp.ByteSize() >= 8 << 20
    got = {s.key: s.value for s in resp.settings}["insecure_registries"]
    assert len(got) == len(big)
    assert got == big


def test_oversized_request_is_resource_exhausted(hyprd):
    """A >16 MiB request answers RESOURCE_EXHAUSTED, changes nothing, and the daemon
    keeps serving."""
    huge = registries(17 << 20)
    req = hypr_pb2.UpdateSettingsRequest(settings={"insecure_registries": huge})
    assert req.ByteSize() > 16 << 20
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.rpc("UpdateSettings")(req, timeout=60)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (ei.value.code(),
                                                                   ei.value.details())
    with hyprd.new_channel() as ch:
        assert make_callable(ch, "Health")(hypr_pb2.HealthRequest(), timeout=10).status == "healthy"
    assert hyprd.settings()["insecure_registries"] == ""


def test_100_concurrent_calls_on_one_channel(hyprd):
    """100 calls in flight at once on one HTTP/2 connection all succeed."""
    health = hyprd.rpc("Health")
    getset = hyprd.rpc("GetSettings")
    futs = []
    for i in range(100):
        if i % 2:
            futs.append(("h", health.future(hypr_pb2.HealthRequest(), timeout=30)))
        else:
            futs.append(("s", getset.future(hypr_pb2.GetSettingsRequest(), timeout=30)))
    for kind, f in futs:
        r = f.result()
        if kind == "h":
            assert r.status == "healthy"
        else:
            assert len(r.settings) == len(DEFAULT_SETTINGS)


CHILD = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
import grpc, hypr_pb2
gate = sys.argv[3]
deadline = time.monotonic() + 30
while not os.path.exists(gate):
    if time.monotonic() > deadline:
        sys.exit("gate never opened")
    time.sleep(0.005)
ch = grpc.insecure_channel("unix:" + sys.argv[2])
h = ch.unary_unary("/hypr.v1.HyprService/Health",
                   request_serializer=hypr_pb2.HealthRequest.SerializeToString,
                   response_deserializer=hypr_pb2.HealthResponse.FromString)
r = h(hypr_pb2.HealthRequest(), timeout=30)
print(r.status, r.pid)
"""


def test_20_processes_concurrently(hyprd, short_tmp):
    """20 separate client processes (20 connections) calling Health at once all succeed."""
    gate = str(short_tmp / "gate")
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, PB2_DIR, hyprd.socket, gate],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(20)]
    open(gate, "w").close()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=90)
        results.append((p.returncode, out.decode(), err.decode()))
    for rc, out, err in results:
        assert rc == 0, err
        assert out.split() == ["healthy", str(hyprd.pid)], (out, err)


# ------------------------------------------------------------------ stream lifecycle


def test_cancelled_streams_are_released(hyprd):
    """Cancelled SubscribeEvents streams, and streams whose connection is closed,
    are released by the server (event_subscribers goes back to 0)."""
    sub = hyprd.rpc("SubscribeEvents")
    calls = [sub(hypr_pb2.SubscribeEventsRequest()) for _ in range(5)]
    wait_for(lambda: subscribers(hyprd) == 5, 10, "5 event subscribers")
    for c in calls:
        c.cancel()
    wait_for(lambda: subscribers(hyprd) == 0, 10, "event_subscribers back to 0 after cancel")

    ch = hyprd.new_channel()
    sub2 = make_callable(ch, "SubscribeEvents")
    calls = [sub2(hypr_pb2.SubscribeEventsRequest()) for _ in range(3)]
    wait_for(lambda: subscribers(hyprd) == 3, 10, "3 event subscribers")
    ch.close()
    wait_for(lambda: subscribers(hyprd) == 0, 10,
             "event_subscribers back to 0 after the connection closed")
    wait_for(lambda: hyprd.health().active_calls == 1, 10, "only the Health call active")


GARBAGE = {
    "random": random.Random(1234).randbytes(65536),
    "http1": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    # valid client preface, then a SETTINGS frame with an illegal length (5)
    "bad-frame": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00"
                 + b"\x00\x01\x02\x03\x04" + b"\xff" * 64,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_connection_closed_others_unaffected(hyprd, kind):
    """A connection sending garbage is closed by the daemon, while a gRPC channel
    open at the same time keeps working."""
    health = hyprd.rpc("Health")
    assert health(hypr_pb2.HealthRequest(), timeout=10).status == "healthy"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(hyprd.socket)
    try:
        try:
            s.sendall(GARBAGE[kind])
        except (BrokenPipeError, ConnectionResetError):
            pass  # already closed on us: fine
        assert health(hypr_pb2.HealthRequest(), timeout=10).status == "healthy"
        closed = False
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not data:
                closed = True
                break
        assert closed, "daemon kept the garbage connection open"
    finally:
        s.close()
    assert health(hypr_pb2.HealthRequest(), timeout=10).status == "healthy"


# ------------------------------------------------------------------ tcp listener


def test_grpc_tcp_after_restart(hyprd):
    """TCP is off by default; with grpc_tcp=true and an address, after a restart
    Health also answers over TCP on 127.0.0.1."""
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 41000)) != 0, "something listens on 41000 by default"
    port = free_tcp_port()
    hyprd.call("UpdateSettings",
               settings={"grpc_tcp": "true", "grpc_tcp_address": "127.0.0.1:%d" % port})
    hyprd.restart()
    with grpc.insecure_channel("127.0.0.1:%d" % port) as ch:
        r = make_callable(ch, "Health")(hypr_pb2.HealthRequest(), timeout=10)
    assert r.status == "healthy"
    assert r.pid == hyprd.pid
    assert hyprd.health().status == "healthy"  # unix socket still served


# ------------------------------------------------------------------ process lifecycle


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shutdown_is_clean(hyprd, sig):
    """SIGTERM/SIGINT with an event stream open: the stream ends promptly, hyprd exits 0
    and removes its socket and pid file."""
    stream = hyprd.rpc("SubscribeEvents")(hypr_pb2.SubscribeEventsRequest(), timeout=30)
    wait_for(lambda: subscribers(hyprd) == 1, 10, "subscriber registered")
    t0 = time.monotonic()
    hyprd.send_signal(sig)
    code = grpc.StatusCode.OK
    try:
        for _ in stream:
            pass
    except grpc.RpcError as e:
        code = e.code()
    assert code != grpc.StatusCode.DEADLINE_EXCEEDED, "stream not ended by shutdown"
    assert time.monotonic() - t0 < 15
    hyprd.stop_clean(sig, send=False)


def test_second_daemon_refuses_same_run_dir(hyprd):
    """A second hyprd on the same run dir exits non-zero at once, says "already
    running" with the first one's pid, and leaves the first daemon untouched."""
    p = subprocess.run([HYPRD_BIN, "--data-dir", hyprd.data_dir, "--run-dir", hyprd.run_dir,
                        "--foreground"], capture_output=True, timeout=10,
                       env=hyprd.environ())
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    assert p.returncode != 0, out
    assert "already running" in out, out
    assert str(hyprd.pid) in out, out
    assert read_pidfile(hyprd.pid_file) == hyprd.pid
    assert os.path.exists(hyprd.socket)
    with hyprd.new_channel() as ch:
        r = make_callable(ch, "Health")(hypr_pb2.HealthRequest(), timeout=10)
    assert r.pid == hyprd.pid


def test_stale_pid_file_is_taken_over(daemons):
    """A pid file naming a dead process does not stop hyprd from starting."""
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(ProcessLookupError):
        os.kill(p.pid, 0)
    d = daemons.make()
    with open(d.pid_file, "w") as f:
        f.write("%d\n" % p.pid)
    d.start()
    assert read_pidfile(d.pid_file) == d.pid
    assert d.health().pid == d.pid


def test_restart_after_crash(daemons):
    """After a SIGKILL (socket and pid file left behind) hyprd starts again on the same
    dirs and keeps its settings."""
    d = daemons.start()
    d.call("UpdateSettings", settings={"default_cpus": "7"})
    d.kill()
    assert os.path.exists(d.pid_file)
    d.start()
    assert read_pidfile(d.pid_file) == d.pid
    assert d.health().pid == d.pid
    assert d.settings()["default_cpus"] == "7"
