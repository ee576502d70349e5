"""VMs outlive hyprd: a crash (SIGKILL) or a shutdown with shutdown_policy=keep leaves
them running, and the next hyprd re-adopts them with their workload untouched (same
boot id, same start time, same hypervisor process), their port forwards, names and
logs back; VMs that ended meanwhile get their real exit code and their restart
policy; hypervisors no record claims are killed and stale TAPs removed. With
shutdown_policy=stop, hyprd stops its VMs and brings back those whose restart policy
says so, as dockerd does."""

import os
import shutil
import signal
import tempfile

import pytest

from conftest import Daemon, import_busybox, kill_hypervisors, wait_for
from dnsclient import dns_query
from test_network import NetHost, build_busybox_rootfs, http_get, htaps, tap_of
from test_vms import BOOT_TIMEOUT, IMAGE, log_path, qemu_pids

WEB_PORT = 8091
INDEX = "adopted and still serving\n"


def build_web_rootfs(root):
    build_busybox_rootfs(root)
    for applet in ("httpd", "wget", "head", "tr"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    os.mkdir(os.path.join(root, "www"))
    with open(os.path.join(root, "www", "index.html"), "w") as f:
        f.write(INDEX)
    return root


@pytest.fixture(scope="module")
def web_image():
    base = tempfile.mkdtemp(prefix="hypr-adopt-img-")
    try:
        yield build_web_rootfs(os.path.join(base, "rootfs"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def host(web_image):
    """A hyprd of its own (the tests kill and restart it) with the image imported."""
    base = tempfile.mkdtemp(prefix="hypr-ad-")
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    d.start()
    h = NetHost(d)
    try:
        import_busybox(d, web_image)
        yield h
        if d.alive():
            h.rm_all()
            d.stop_clean()
    finally:
        if d.alive():
            d.kill()
        kill_hypervisors(run)
        shutil.rmtree(base, ignore_errors=True)


def boot_id(h, vm):
    p = h.hypr("exec", vm, "cat", "/proc/sys/kernel/random/boot_id", timeout=60)
    assert p.returncode == 0, (p.returncode, p.out, p.err)
    return p.out.strip()


def crash_and_restart(h):
    """SIGKILL hyprd, then start a new one on the same directories."""
    h.daemon.kill()
    h.daemon.start()


def web_vm(h, name="web", *extra):
    vm = h.boot("-n", name, "-p", "%d:80" % WEB_PORT, *extra, IMAGE, "sh", "-c",
                "httpd -p 80 -h /www; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done")
    wait_for(lambda: http_get("/", port=WEB_PORT, timeout=5) == (200, INDEX.encode()), 60,
             "the guest's httpd through 127.0.0.1:%d" % WEB_PORT, interval=0.25)
    return vm


def test_kill9_readopts_running_vm_untouched(host):
    """After SIGKILL of hyprd the VM runs on; the new hyprd re-adopts it: same qemu
    process, boot id and start time, and its port forward, DNS name, exec and logs work."""
    h = host
    vm = web_vm(h)
    before = h.inspect(vm)["State"]
    pid = before["Pid"]
    assert qemu_pids(vm) == [pid]
    boot = boot_id(h, vm)
    crash_and_restart(h)
    after = h.inspect(vm)["State"]
    assert after["Status"] == "running", after
    assert after["Pid"] == pid and qemu_pids(vm) == [pid], (after, qemu_pids(vm))
    assert after["StartedAt"] == before["StartedAt"], (before, after)
    assert boot_id(h, vm) == boot  # the same guest: not rebooted
    assert http_get("/", port=WEB_PORT, timeout=10) == (200, INDEX.encode())
    ip = h.vm_ip(vm)
    wait_for(lambda: dns_query("web.hypr", h.dns_port())[1] == [ip], 10,
             "web.hypr to resolve to %s after the re-adoption" % ip, interval=0.1)
    # Log capture resumes: lines printed after the restart reach `hypr logs`.
    last = int(h.logs(vm).split("tick ")[-1].split()[0])
    wait_for(lambda: int(h.logs(vm).split("tick ")[-1].split()[0]) > last + 1, 30,
             "new workload output after the re-adoption", interval=0.25)
    # Starting it again must not spawn a second hypervisor.
    h.hypr("start", vm)
    assert qemu_pids(vm) == [pid]
    # And it is still driven: a graceful stop ends it (not a kill after the timeout).
    h.ok("stop", vm)
    st = h.wait_status(vm, "exited")["State"]
    assert st["ExitCode"] != 137, st
    assert qemu_pids(vm) == []
    assert tap_of(vm) not in htaps()


def test_sigterm_keeps_vms_and_stop_right_after_restart_is_graceful(host):
    """shutdown_policy=keep (the default): SIGTERM leaves the VM running; right after the
    next hyprd starts, before kestrel has reconnected, `hypr stop` is still graceful and
    `hypr exec` waits for the channel instead of failing."""
    h = host
    assert h.daemon.settings()["shutdown_policy"] == "keep"
    vm = h.boot("-n", "keeper", IMAGE, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
    pid = h.inspect(vm)["State"]["Pid"]
    h.daemon.stop_clean()
    assert qemu_pids(vm) == [pid], "SIGTERM with shutdown_policy=keep must leave the VM running"
    h.daemon.start()
    p = h.hypr("exec", vm, "echo", "right-after", timeout=60)
    assert (p.returncode, p.out) == (0, "right-after\n"), (p.returncode, p.out, p.err)
    h.daemon.kill()
    h.daemon.start()
    h.ok("stop", vm)  # at once: the channel may not be back yet
    st = h.wait_status(vm, "exited")["State"]
    assert st["ExitCode"] == 0, st  # the trap ran: SIGTERM reached the workload
    assert qemu_pids(vm) == []


def test_a_paused_vm_is_still_paused_after_a_restart_and_unpauses(host):
    h = host
    vm = h.boot("-n", "held", IMAGE, "sh", "-c", "i=0; while true; do i=$((i+1)); echo n $i; sleep 0.2; done")
    wait_for(lambda: "n 2" in h.logs(vm), 60, "the workload's output", interval=0.2)
    h.ok("pause", vm)
    assert h.inspect(vm)["State"]["Status"] == "paused"
    crash_and_restart(h)
    assert h.inspect(vm)["State"]["Status"] == "paused"  # its vCPUs are still stopped
    p = h.hypr("exec", vm, "true")
    assert p.returncode != 0 and "paused" in p.err, p.err
    last = int(h.logs(vm).split("n ")[-1].split()[0])
    h.ok("unpause", vm)
    wait_for(lambda: int(h.logs(vm).split("n ")[-1].split()[0]) > last + 2, 30,
             "output again after the unpause", interval=0.2)
    h.ok("rm", "-f", vm)


def test_vm_that_ended_while_hyprd_was_away(host):
    """A workload that exits while no hyprd runs gets its real exit code; a hypervisor
    killed meanwhile is a failure with a reason, and `--restart always` brings it back."""
    h = host
    quitter = h.boot("-n", "quitter", IMAGE, "sh", "-c", "sleep 5; exit 7")
    victim = h.boot("-n", "victim", "--restart", "always", IMAGE, "sleep", "3600")
    victim_pid = h.inspect(victim)["State"]["Pid"]
    h.daemon.kill()
    os.kill(victim_pid, signal.SIGKILL)
    wait_for(lambda: qemu_pids(quitter) == [], BOOT_TIMEOUT, "the quitter VM to power off",
             interval=0.25)
    h.daemon.start()
    st = h.inspect(quitter)["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 7), st
    assert tap_of(quitter) not in htaps()
    st = h.wait_status(victim, "running")["State"]
    assert st["Pid"] != victim_pid and qemu_pids(victim) == [st["Pid"]], st


def test_hypervisor_without_record_is_killed(host):
    """A hypervisor whose re-adoption record is gone (hyprd died between its spawn and
    the record) is killed, not left running unreachable; its VM is marked failed."""
    h = host
    vm = h.boot("-n", "orphan", IMAGE, "sleep", "3600")
    pid = h.inspect(vm)["State"]["Pid"]
    h.daemon.kill()
    os.unlink(os.path.join(h.run_dir, vm + ".proc"))
    h.daemon.start()
    wait_for(lambda: qemu_pids(vm) == [], 10, "the orphan hypervisor to be killed")
    st = h.inspect(vm)["State"]
    assert st["Status"] != "running" and st["Pid"] == 0, st
    assert "not running" in st["Error"], st
    assert tap_of(vm) not in htaps()
    assert pid not in qemu_pids(vm)
    # The record is fine: it starts again.
    h.ok("start", vm)
    h.wait_status(vm, "running")


def test_shutdown_policy_stop_brings_back_what_docker_would(host):
    """shutdown_policy=stop: SIGTERM stops every VM; the next hyprd starts the `always`
    ones and the `unless-stopped` ones the user did not stop, as dockerd does."""
    h = host
    h.daemon.call("UpdateSettings", settings={"shutdown_policy": "stop"})
    always = h.boot("-n", "always", "--restart", "always", IMAGE, "sleep", "3600")
    unless = h.boot("-n", "unless", "--restart", "unless-stopped", IMAGE, "sleep", "3600")
    manual = h.boot("-n", "manual", "--restart", "unless-stopped", IMAGE, "sleep", "3600")
    plain = h.boot("-n", "plain", IMAGE, "sleep", "3600")
    h.ok("stop", "-t", "1", manual)
    h.wait_status(manual, "exited")
    h.daemon.stop_clean()
    for vm in (always, unless, manual, plain):
        assert qemu_pids(vm) == [], "shutdown_policy=stop left %s running" % vm
    h.daemon.start()
    h.wait_status(always, "running")
    h.wait_status(unless, "running")
    assert h.status(manual) == "exited"
    assert h.status(plain) == "exited"


def test_on_failure_vm_that_died_unseen_comes_back(host):
    """A `--restart on-failure` VM whose hypervisor died (SIGKILL) while no hyprd ran
    ended in failure: the next hyprd starts it again, as dockerd restarts a failed
    on-failure container at start-up; a VM without a policy stays failed."""
    h = host
    onf = h.boot("-n", "onf", "--restart", "on-failure:3", IMAGE, "sleep", "3600")
    plain = h.boot("-n", "plain2", IMAGE, "sleep", "3600")
    h.daemon.kill()
    for vm in (onf, plain):
        for pid in qemu_pids(vm):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: qemu_pids(onf) == [] and qemu_pids(plain) == [], 10, "hypervisors gone")
    h.daemon.start()
    h.wait_status(onf, "running")
    assert h.status(plain) == "failed"  # its hypervisor was killed: no policy, no restart


def test_console_log_exit_code_is_read_from_the_console(host):
    """The exit code of a VM that ended unseen comes from kestrel's last console line,
    not from a guess: the log holds it."""
    h = host
    vm = h.boot("-n", "coder", IMAGE, "sh", "-c", "sleep 4; exit 42")
    h.daemon.kill()
    wait_for(lambda: qemu_pids(vm) == [], BOOT_TIMEOUT, "the VM to power off", interval=0.25)
    with open(log_path(h, vm), "rb") as f:
        assert b"workload finished with exit code 42" in f.read()
    h.daemon.start()
    st = h.inspect(vm)["State"]
    assert (st["Status"], st["ExitCode"], st["Error"]) == ("exited", 42, ""), st
