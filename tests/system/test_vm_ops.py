"""Docker habits on VMs (issue 9): kill, wait, port, pause/unpause, create, the
container group, run's --stop-signal/-P/-p PORT/--pull/--cidfile/--network none/--dns/
--add-host/--label-file, stop -s, logs --since/--until, version/info --format, the
reasons a workload cannot start, rmi of a running VM's image. Driven with the real CLI
against real microVMs (busybox image, TCG)."""

import json
import time

import pytest

from conftest import free_tcp_port, import_busybox, wait_for
from test_vms import BOOT_TIMEOUT, IMAGE, vmd  # noqa: F401  (vmd is a fixture)

# A workload that says when it is ready and reports the signals it gets.
TRAPPER = ('trap "echo got-usr1" USR1; trap "echo got-hup" HUP; echo ready; '
           'while :; do sleep 0.2; done')


def wait_log(host, vm, text, timeout=BOOT_TIMEOUT):
    return wait_for(lambda: text in host.logs(vm), timeout,
                    "%r in the logs of %s" % (text, vm), interval=0.2)


def run_trapper(host, name, *flags, script=TRAPPER):
    vm = host.run_detached("--name", name, *flags, IMAGE, "sh", "-c", script)
    host.wait_status(vm, "running")
    wait_log(host, vm, "ready")
    return vm


def test_kill_defaults_to_sigkill_exit_137_and_wait_prints_it(vmd):
    vm = run_trapper(vmd, "k-default")
    p = vmd.ok("kill", "k-default")
    assert p.out == "k-default\n", p.out
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 137, st["State"]
    w = vmd.ok("wait", "k-default", timeout=30)
    assert w.out == "137\n", w.out
    vmd.ok("rm", vm)


def test_kill_with_another_signal_reaches_the_workload_which_keeps_running(vmd):
    vm = run_trapper(vmd, "k-usr1")
    vmd.ok("kill", "-s", "USR1", "k-usr1")
    wait_log(vmd, vm, "got-usr1")
    vmd.ok("kill", "--signal=SIGHUP", vm[:12])
    wait_log(vmd, vm, "got-hup")
    vmd.ok("kill", "-s", "1", "k-usr1")  # by number: HUP again
    wait_for(lambda: vmd.logs(vm).count("got-hup") == 2, 30, "a second got-hup", interval=0.2)
    assert vmd.status(vm) == "running"
    vmd.ok("rm", "-f", vm)


def test_kill_refusals(vmd):
    p = vmd.hypr("kill", "-s", "NOPE", "whatever")
    assert p.returncode != 0 and "invalid argument \"NOPE\"" in p.err, p.err
    vm = vmd.run_detached("--name", "k-done", IMAGE, "true")
    vmd.wait_status(vm, ("exited", "stopped"))
    p = vmd.hypr("kill", "k-done")
    assert p.returncode == 1, p.out
    assert "cannot kill VM k-done" in p.err and "is not running" in p.err, p.err
    assert p.out == ""
    p = vmd.hypr("kill", "no-such-vm")
    assert p.returncode == 1 and "no-such-vm" in p.err, p.err
    vmd.ok("rm", vm)


def test_wait_blocks_until_exit_and_prints_each_code(vmd):
    b = vmd.run_detached("--name", "w-zero", IMAGE, "true")
    vmd.wait_status(b, ("exited", "stopped"))
    a = vmd.run_detached("--name", "w-three", IMAGE, "sh", "-c", "sleep 4; exit 3")
    vmd.wait_status(a, "running")  # wait is to block on it
    p = vmd.ok("wait", "w-three", "w-zero", timeout=BOOT_TIMEOUT)
    assert p.out == "3\n0\n", p.out
    assert vmd.status(a) in ("exited", "stopped")
    p = vmd.hypr("wait", "no-such-vm", "w-zero")
    assert p.returncode == 1 and p.out == "0\n", (p.out, p.err)  # goes on after a failure
    vmd.ok("rm", a, b)


def test_run_stop_signal_is_what_stop_sends(vmd):
    script = ('trap "echo stopping-on-usr1; exit 0" USR1; echo ready; '
              'while :; do sleep 0.2; done')
    vm = run_trapper(vmd, "s-usr1", "--stop-signal", "usr1", script=script)
    assert vmd.inspect(vm)["Config"]["StopSignal"] == "SIGUSR1"
    vmd.ok("stop", "s-usr1")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 0, st["State"]  # the trap ran, not SIGTERM's 143
    assert "stopping-on-usr1" in vmd.logs(vm)
    # kill with the stop signal ends the VM too (Docker: it is then a fatal signal)
    vmd.ok("start", "s-usr1")
    vmd.wait_status(vm, "running")
    wait_for(lambda: vmd.logs(vm).count("ready") == 2, BOOT_TIMEOUT, "second ready",
             interval=0.2)
    vmd.ok("kill", "-s", "SIGUSR1", "s-usr1")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 0, st["State"]
    p = vmd.hypr("run", "--stop-signal", "SIGNOPE", IMAGE, "true")
    assert p.returncode == 125 and "--stop-signal" in p.err, p.err
    vmd.ok("rm", vm)


def test_stop_dash_s_overrides_the_stop_signal(vmd):
    script = ('trap "echo hup-stop; exit 5" HUP; echo ready; while :; do sleep 0.2; done')
    vm = run_trapper(vmd, "s-hup", script=script)
    assert "StopSignal" not in vmd.inspect(vm)["Config"]  # Docker leaves it out when unset
    vmd.ok("stop", "-s", "HUP", "s-hup")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 5, st["State"]
    assert "hup-stop" in vmd.logs(vm)
    p = vmd.hypr("stop", "-s", "BOGUS", "s-hup")
    assert p.returncode != 0 and "invalid argument \"BOGUS\"" in p.err, p.err
    vmd.ok("rm", vm)


def test_image_stop_signal_is_inherited(vmd, busybox_rootfs):
    resp = vmd.daemon.call("ImportImage", source=busybox_rootfs, reference="bb-quit:1",
                           cmd=["sh"], stop_signal="SIGQUIT", timeout=120)
    assert resp.image.stop_signal == "SIGQUIT"
    img = json.loads(vmd.ok("image", "inspect", "bb-quit:1").out)[0]
    assert img["Config"]["StopSignal"] == "SIGQUIT"
    script = 'trap "echo quit-stop; exit 7" QUIT; echo ready; while :; do sleep 0.2; done'
    vm = vmd.run_detached("--name", "s-quit", "bb-quit:1", "sh", "-c", script)
    vmd.wait_status(vm, "running")
    wait_log(vmd, vm, "ready")
    assert vmd.inspect(vm)["Config"]["StopSignal"] == "SIGQUIT"
    vmd.ok("stop", "s-quit")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 7, st["State"]
    vmd.ok("rm", vm)
    vmd.ok("rmi", "bb-quit:1")


def test_port_lists_mappings_like_docker(vmd):
    tcp, udp = free_tcp_port(), free_tcp_port()
    vm = vmd.run_detached("--name", "p-web", "-p", "127.0.0.1:%d:80" % tcp,
                          "-p", "%d:53/udp" % udp, IMAGE, "sleep", "3600")
    vmd.wait_status(vm, "running")
    out = vmd.ok("port", "p-web").out.splitlines()
    assert sorted(out) == sorted(["80/tcp -> 127.0.0.1:%d" % tcp,
                                  "53/udp -> 127.0.0.1:%d" % udp]), out
    assert vmd.ok("port", "p-web", "80").out == "127.0.0.1:%d\n" % tcp
    assert vmd.ok("port", "p-web", "53/udp").out == "127.0.0.1:%d\n" % udp
    p = vmd.hypr("port", "p-web", "81")
    assert p.returncode == 1 and "No public port '81/tcp' published for p-web" in p.err, p.err
    p = vmd.hypr("port", "p-web", "80/bogus")
    assert p.returncode == 1 and "invalid port" in p.err, p.err
    row = [v for v in vmd.ps_json() if v["Names"] == "p-web"][0]
    assert "127.0.0.1:%d->80/tcp" % tcp in row["Ports"], row
    vmd.ok("stop", "-t", "1", "p-web")
    assert vmd.ok("port", "p-web").out == ""  # nothing is bound once it is down
    row = [v for v in vmd.ps_json(all=True) if v["Names"] == "p-web"][0]
    assert (row["Ports"], row["IPAddress"]) == ("", ""), row  # as docker ps -a shows it
    vmd.ok("rm", vm)


def http_get(port, timeout=BOOT_TIMEOUT):
    import urllib.request

    def get():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
                return r.status
        except OSError:
            return None
    return wait_for(get, timeout, "HTTP on 127.0.0.1:%d" % port, interval=0.25)


def published(host, vm):
    """{"80/tcp": host_port} from `hypr port VM`."""
    out = {}
    for line in host.ok("port", vm).out.splitlines():
        guest, hostaddr = line.split(" -> ")
        out[guest] = int(hostaddr.rsplit(":", 1)[1])
    return out


# The base rootfs has no httpd link: busybox runs it, from a page made at start.
WEB = "mkdir -p /www && echo hi > /www/index.html && exec busybox httpd -f -p 80 -h /www"


def test_publish_guest_port_alone_and_publish_all_pick_free_host_ports(vmd, busybox_rootfs):
    vmd.daemon.call("ImportImage", source=busybox_rootfs, reference="bb-web:1",
                    cmd=["sh", "-c", WEB], exposed_ports=["80/tcp", "53/udp"], timeout=120)
    a = vmd.run_detached("--name", "p-one", "-p", "80", "--init", IMAGE, "sh", "-c", WEB)
    b = vmd.run_detached("--name", "p-all", "-P", "--expose", "9000/udp", "bb-web:1")
    for vm in (a, b):
        vmd.wait_status(vm, "running")
    one, every = published(vmd, "p-one"), published(vmd, "p-all")
    assert list(one) == ["80/tcp"] and one["80/tcp"] >= 1024, one
    assert sorted(every) == ["53/udp", "80/tcp", "9000/udp"], every
    assert every["80/tcp"] != one["80/tcp"]
    assert http_get(one["80/tcp"]) == 200
    assert http_get(every["80/tcp"]) == 200
    out = vmd.ok("ps").out
    assert "127.0.0.1:%d->80/tcp" % every["80/tcp"] in out, out
    p = vmd.hypr("run", "--expose", "80/sctp", IMAGE, "true")
    assert p.returncode == 125 and "--expose" in p.err, p.err
    vmd.ok("rm", "-f", a, b)
    vmd.ok("rmi", "bb-web:1")


def test_create_then_start_cidfile_and_pull_never(vmd, tmp_path):
    cid = tmp_path / "cid"
    p = vmd.ok("create", "--name", "c-later", "--cidfile", str(cid), IMAGE, "sh", "-c",
               "echo created-then-started")
    vm = p.out.strip()
    assert cid.read_text() == vm  # Docker writes the ID without a newline
    assert vmd.status(vm) == "created"
    p = vmd.hypr("create", "--cidfile", str(cid), IMAGE, "true")
    assert p.returncode == 125 and "Container ID file found" in p.err, p.err
    vmd.ok("start", "c-later")
    # start returns once the workload runs (Docker's), not while the VM boots
    assert vmd.status(vm) in ("running", "exited", "stopped")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 0
    assert "created-then-started" in vmd.logs(vm)
    p = vmd.hypr("run", "--pull", "never", "127.0.0.1:1/not/here:1", "true")
    assert p.returncode == 125 and "not found" in p.err, p.err
    assert "Unable to find image" not in p.err  # never means no pull at all
    p = vmd.hypr("run", "--pull", "sometimes", IMAGE, "true")
    assert p.returncode == 125 and "invalid pull option: 'sometimes'" in p.err, p.err
    p = vmd.hypr("create", "-d", IMAGE)
    assert p.returncode == 125 and "unknown shorthand flag: 'd'" in p.err, p.err
    vmd.ok("rm", vm)


def test_logs_since_and_until(vmd):
    import datetime
    vm = vmd.run_detached("--name", "l-times", IMAGE, "sh", "-c",
                          "echo one; sleep 2; echo two; sleep 3600")
    vmd.wait_status(vm, "running")
    wait_log(vmd, vm, "two")
    stamps = {}
    for line in vmd.ok("logs", "-t", vm).out.splitlines():
        ts, text = line.split(" ", 1)
        stamps[text] = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    assert set(stamps) == {"one", "two"}, stamps
    cut = "%.3f" % ((stamps["one"] + stamps["two"]) / 2)  # Unix seconds, between the two
    assert vmd.ok("logs", "--since", cut, vm).out == "two\n"
    assert vmd.ok("logs", "--until", cut, vm).out == "one\n"
    rfc = datetime.datetime.fromtimestamp(float(cut), datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    assert vmd.ok("logs", "--since", rfc, vm).out == "two\n"
    assert vmd.ok("logs", "--since", "1h", vm).out == "one\ntwo\n"  # relative: the last hour
    assert vmd.ok("logs", "--details", vm).out == "one\ntwo\n"  # no log attributes to add
    assert vmd.ok("logs", "--since", "1h", "--tail", "1", vm).out == "two\n"
    assert vmd.ok("logs", "--until", "1h", vm).out == ""  # nothing is older than an hour
    # follow with an --until in the past ends instead of waiting for more
    assert vmd.ok("logs", "-f", "--until", cut, vm, timeout=30).out == "one\n"
    p = vmd.hypr("logs", "--since", "yesterday", vm)
    assert p.returncode != 0 and "invalid argument \"yesterday\"" in p.err, p.err
    vmd.ok("rm", "-f", vm)


def test_container_management_command_aliases(vmd):
    vm = vmd.ok("container", "create", "--name", "c-alias", IMAGE, "true").out.strip()
    for ls in ("ls", "list", "ps"):
        out = vmd.ok("container", ls, "-a", "--format", "{{.Names}} {{.State}}").out
        assert "c-alias created" in out.splitlines(), (ls, out)
    assert vmd.ok("container", "inspect", "-f", "{{.Name}}", "c-alias").out.strip() in (
        "c-alias", "/c-alias")
    assert vmd.ok("container", "rm", "c-alias").out == "c-alias\n"
    assert vm not in vmd.ok("ps", "-a", "-q", "--no-trunc").out


def test_network_none_dns_add_host_and_label_file(vmd, tmp_path):
    out = vmd.ok("run", "--rm", "--network", "none", IMAGE, "ls", "/sys/class/net").out
    assert out.split() == ["lo"], out  # no NIC at all
    p = vmd.hypr("run", "--rm", "--network", "none", "-p", "8080:80", IMAGE, "true")
    assert p.returncode == 125 and "--network none" in p.err, p.err
    out = vmd.ok("run", "--rm", "--dns", "192.0.2.53", "--add-host", "db:10.1.2.3",
                 "--add-host", "gw:host-gateway", "--add-host", "v6:fd00::1", IMAGE,
                 "cat", "/etc/resolv.conf", "/etc/hosts").out
    lines = out.splitlines()
    assert "nameserver 192.0.2.53" in lines and not any(
        l.startswith("nameserver 10.") for l in lines), out
    assert "10.1.2.3 db" in lines and "10.88.0.1 gw" in lines and "fd00::1 v6" in lines, out
    p = vmd.hypr("run", "--rm", "--add-host", "nocolon", IMAGE, "true")
    assert p.returncode == 125 and "--add-host" in p.err, p.err
    p = vmd.hypr("run", "--rm", "--dns", "not-an-ip", IMAGE, "true")
    assert p.returncode == 125 and "invalid DNS server" in p.err, p.err
    lf = tmp_path / "labels"
    lf.write_text("# team labels\na=1\nb=2\n")
    vm = vmd.ok("create", "--label-file", str(lf), "-l", "b=3", IMAGE, "true").out.strip()
    assert vmd.inspect(vm)["Config"]["Labels"] == {"a": "1", "b": "3"}
    vmd.ok("rm", vm)


def test_rmi_force_refused_for_a_running_vms_image_and_untags_a_stopped_ones(vmd, busybox_rootfs):
    import_busybox(vmd.daemon, busybox_rootfs, reference="bb-busy:1")
    vm = vmd.run_detached("--name", "r-busy", "bb-busy:1", "sleep", "3600")
    vmd.wait_status(vm, "running")
    p = vmd.hypr("rmi", "-f", "bb-busy:1")
    assert p.returncode == 1, p.out
    assert "(cannot be forced) - image is being used by running VM r-busy" in p.err, p.err
    p = vmd.hypr("rmi", "bb-busy:1")
    assert p.returncode == 1 and "is being used by running VM" in p.err, p.err
    assert "bb-busy" in vmd.ok("images").out  # nothing was removed
    vmd.ok("stop", "-t", "1", vm)
    p = vmd.hypr("rmi", "bb-busy:1")  # a stopped VM's image: refused without -f
    assert p.returncode == 1 and "remove the VM first or use --force" in p.err, p.err
    assert vmd.ok("rmi", "-f", "bb-busy:1").out == "Untagged: bb-busy:1\n"
    rows = json.loads(vmd.ok("images", "--format", "json").out)
    assert not [r for r in rows if "bb-busy" in json.dumps(r)], rows
    assert vmd.ok("images", "-q", "-f", "dangling=true").out.strip()  # it stays, dangling
    vmd.ok("start", vm)  # the VM keeps its image
    vmd.wait_status(vm, "running")
    vmd.ok("rm", "-f", vm)
    vmd.ok("image", "prune", "-f")
    assert vmd.ok("images", "-q", "-f", "dangling=true").out == ""


def test_version_and_info_take_format_like_docker(vmd):
    server = vmd.daemon.call("Health").version
    assert vmd.ok("version", "--format", "{{.Server.Version}}").out == server + "\n"
    assert vmd.ok("version", "-f", "{{.Client.Os}}/{{.Client.Arch}}").out.startswith("linux/")
    info = json.loads(vmd.ok("info", "--format", "json").out)
    assert info["ServerVersion"] == server and info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Containers"] == info["ContainersRunning"] + info["ContainersStopped"]
    out = vmd.ok("info", "-f", "{{.ServerVersion}} {{.OSType}}").out
    assert out == "%s linux\n" % server, out
    p = vmd.hypr("info", "--format", "{{.Nope}}")
    assert p.returncode != 0 and "Nope" in p.err and p.out == "", (p.out, p.err)


def test_a_workload_that_cannot_start_fails_the_run_with_its_reason(vmd):
    p = vmd.hypr("run", "-d", "--name", "f-cmd", IMAGE, "nosuchcmd")
    assert p.returncode == 127, (p.returncode, p.out, p.err)
    assert p.out == ""  # no ID: the run failed, as docker run -d does
    assert "exec nosuchcmd: No such file or directory" in p.err, p.err
    st = vmd.inspect("f-cmd")["State"]
    assert st["Status"] in ("exited", "stopped") and st["ExitCode"] == 127, st
    assert "exec nosuchcmd" in st["Error"], st
    p = vmd.hypr("start", "f-cmd")
    assert p.returncode == 1 and "exec nosuchcmd" in p.err, (p.out, p.err)
    p = vmd.hypr("run", "-d", "--name", "f-user", "-u", "nosuchuser", IMAGE, "true")
    assert p.returncode == 126, (p.returncode, p.out, p.err)
    assert "unable to find user nosuchuser: no matching entries in passwd file" in p.err, p.err
    assert "unable to find user" in vmd.inspect("f-user")["State"]["Error"]
    vmd.ok("rm", "f-cmd", "f-user")


def test_pause_holds_the_vm_and_unpause_resumes_it(vmd):
    vm = vmd.run_detached("--name", "z-tick", IMAGE, "sh", "-c",
                          "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done")
    vmd.wait_status(vm, "running")
    wait_log(vmd, vm, "tick 3")
    assert vmd.ok("pause", "z-tick").out == "z-tick\n"
    st = vmd.inspect(vm)["State"]
    assert st["Status"] == "paused" and st["Paused"] and st["Running"], st
    assert "(Paused)" in vmd.ok("ps").out
    held = vmd.logs(vm).count("tick")
    time.sleep(1.5)  # a running workload would print ~7 lines meanwhile
    assert vmd.logs(vm).count("tick") <= held + 1, "ticks went on while paused"
    p = vmd.hypr("pause", "z-tick")
    assert p.returncode == 1 and "already paused" in p.err, p.err
    p = vmd.hypr("exec", "z-tick", "true")
    assert p.returncode != 0 and "is paused, unpause the VM before exec" in p.err, p.err
    assert vmd.ok("unpause", "z-tick").out == "z-tick\n"
    assert vmd.status(vm) == "running"
    wait_for(lambda: vmd.logs(vm).count("tick") >= held + 3, 30, "ticks after unpause",
             interval=0.2)
    p = vmd.hypr("unpause", "z-tick")
    assert p.returncode == 1 and "is not paused" in p.err, p.err
    # stop of a paused VM ends it at once
    vmd.ok("pause", "z-tick")
    vmd.ok("stop", "z-tick", timeout=30)
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 137, st["State"]
    p = vmd.hypr("pause", "z-tick")
    assert p.returncode == 1 and "is not running" in p.err, p.err
    vmd.ok("rm", vm)


def test_update_changes_a_stopped_vm_and_refuses_a_running_one(vmd):
    vm = vmd.ok("create", "--name", "u-later", IMAGE, "sh", "-c", "exit 3").out.strip()
    assert vmd.ok("update", "--restart", "on-failure:2", "--memory", "256m", "--cpus", "2",
                  "u-later").out == "u-later\n"
    host = vmd.inspect(vm)["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}, host
    assert host["MemoryMB"] == 256 and host["Cpus"] == 2, host
    p = vmd.hypr("update", "u-later")
    assert p.returncode != 0 and "one or more flags" in p.err, p.err
    p = vmd.hypr("update", "--memory", "1m", "u-later")
    assert p.returncode != 0 and "memory" in p.err, p.err
    assert vmd.inspect(vm)["HostConfig"]["MemoryMB"] == 256  # nothing changed
    # the policy is the one it boots with: exit 3 is retried twice
    vmd.ok("start", "u-later")
    st = vmd.wait_status(vm, ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 3 and st["RestartCount"] == 2, (st["State"],
                                                                      st["RestartCount"])
    s = vmd.run_detached("--name", "u-run", IMAGE, "sleep", "3600")
    vmd.wait_status(s, "running")
    p = vmd.hypr("update", "--restart", "always", "u-run")
    assert p.returncode == 1 and "while it runs" in p.err, p.err
    vmd.ok("rm", "-f", vm, s)


def test_network_inspect_lists_the_attached_vms_under_containers(vmd):
    vm = vmd.run_detached("--name", "n-web", IMAGE, "sleep", "3600")
    st = vmd.wait_status(vm, "running")
    net = json.loads(vmd.ok("network", "inspect", "bridge").out)[0]
    entry = net["Containers"][vm]
    assert entry["Name"] == "n-web", entry
    assert entry["IPv4Address"].split("/")[0] == st["NetworkSettings"]["IPAddress"], entry
    assert entry["IPv4Address"].endswith("/16") and entry["MacAddress"].count(":") == 5, entry
    assert vmd.ok("network", "inspect", "-f", "{{len .Containers}}", "bridge").out == "1\n"
    vmd.ok("rm", "-f", vm)
    assert json.loads(vmd.ok("network", "inspect", "bridge").out)[0]["Containers"] == {}


@pytest.fixture(scope="module")
def tools_image(vmd, tmp_path_factory):
    """busybox with what hypr cp runs in the VM (sh, tar, mktemp, dirname, mv, rmdir)."""
    from conftest import build_busybox_rootfs
    import os
    root = build_busybox_rootfs(str(tmp_path_factory.mktemp("tools") / "rootfs"))
    for applet in ("tar", "mktemp", "dirname", "mv", "rmdir", "mkdir", "stat"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    os.makedirs(os.path.join(root, "srv", "site", "img"))
    with open(os.path.join(root, "srv", "site", "index.html"), "w") as f:
        f.write("<h1>hi</h1>\n")
    with open(os.path.join(root, "srv", "site", "img", "logo.txt"), "w") as f:
        f.write("logo\n")
    import_busybox(vmd.daemon, root, reference="bb-tools:1")
    yield "bb-tools:1"
    vmd.hypr("rmi", "-f", "bb-tools:1")


def test_cp_both_ways_like_docker(vmd, tools_image, tmp_path):
    import io
    import os
    import subprocess
    import tarfile
    vm = vmd.run_detached("--name", "cp-web", tools_image, "sleep", "3600")
    vmd.wait_status(vm, "running")
    # VM -> host: a file to a new name, a directory into an existing directory
    vmd.ok("cp", "cp-web:/srv/site/index.html", str(tmp_path / "page.html"))
    assert (tmp_path / "page.html").read_text() == "<h1>hi</h1>\n"
    (tmp_path / "into").mkdir()
    vmd.ok("cp", "cp-web:/srv/site", str(tmp_path / "into"))
    assert (tmp_path / "into" / "site" / "img" / "logo.txt").read_text() == "logo\n"
    # SRC/. : the directory's contents under a new name
    vmd.ok("cp", "cp-web:/srv/site/.", str(tmp_path / "copy"))
    assert sorted(os.listdir(tmp_path / "copy")) == ["img", "index.html"]
    # to stdout: a tar stream
    p = subprocess.run(vmd.argv("cp", "cp-web:/srv/site/img", "-"), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    names = tarfile.open(fileobj=io.BytesIO(p.stdout)).getnames()
    assert names == ["img", "img/logo.txt"] or sorted(names) == ["img", "img/logo.txt"], names
    # host -> VM: a file into a directory, a directory to a new name
    (tmp_path / "conf.txt").write_text("setting=1\n")
    vmd.ok("cp", str(tmp_path / "conf.txt"), "cp-web:/tmp")
    assert vmd.ok("exec", "cp-web", "cat", "/tmp/conf.txt").out == "setting=1\n"
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x").write_text("x\n")
    vmd.ok("cp", str(tmp_path / "d"), "cp-web:/srv/newdir")
    assert vmd.ok("exec", "cp-web", "cat", "/srv/newdir/sub/x").out == "x\n"
    # a tar stream on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"from a stream\n"
        info = tarfile.TarInfo("streamed.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    p = subprocess.run(vmd.argv("cp", "-", "cp-web:/tmp"), input=buf.getvalue(),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert vmd.ok("exec", "cp-web", "cat", "/tmp/streamed.txt").out == "from a stream\n"
    # refusals
    p = vmd.hypr("cp", "a", "b")
    assert p.returncode != 0 and "at least one VM source" in p.err, p.err
    p = vmd.hypr("cp", "cp-web:/a", "cp-web:/b")
    assert p.returncode != 0 and "between VMs" in p.err, p.err
    p = vmd.hypr("cp", "cp-web:/no/such/file", str(tmp_path / "nope"))
    assert p.returncode == 1, p.err
    assert p.err.strip() == "Error: Could not find the file /no/such/file in VM cp-web", p.err
    assert not (tmp_path / "nope").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".hypr-cp")]  # no leftovers
    vmd.ok("rm", "-f", vm)


def test_logs_console_shows_the_kernel_and_kestrel(vmd):
    vm = vmd.run_detached("--name", "l-console", IMAGE, "sh", "-c", "echo workload-line")
    vmd.wait_status(vm, ("exited", "stopped"))
    plain = vmd.logs(vm)
    assert plain == "workload-line\n", plain  # logs is the workload's output only
    out = vmd.ok("logs", "--console", vm).out
    assert "Linux version" in out and "kestrel" in out and "workload-line" in out, out[-2000:]
    last = vmd.ok("logs", "--console", "--tail", "2", vm).out
    assert last.count("\n") == 2 and out.endswith(last), (last, out[-300:])
    p = vmd.hypr("logs", "--console", "-f", vm)
    assert p.returncode == 1 and "--console takes neither" in p.err, p.err
    vmd.ok("rm", vm)


def test_top_lists_the_vms_processes(vmd):
    vm = vmd.run_detached("--name", "t-top", IMAGE, "sh", "-c", "sleep 3600")
    vmd.wait_status(vm, "running")
    out = vmd.ok("top", "t-top").out
    lines = out.splitlines()
    assert "PID" in lines[0], out
    assert any("sleep 3600" in l for l in lines[1:]), out
    assert any(l.split()[:1] == ["1"] and l.endswith("/init") for l in lines), out  # kestrel
    assert not any(l.endswith("[kthreadd]") for l in lines), out  # the VM kernel's threads
    custom = vmd.ok("top", "t-top", "-o", "pid,comm").out
    assert any(l.split()[-1:] == ["sleep"] for l in custom.splitlines()[1:]), custom
    p = vmd.hypr("top", "no-such-vm")
    assert p.returncode == 1 and "no-such-vm" in p.err, p.err
    vmd.ok("rm", "-f", vm)


def test_run_it_is_an_interactive_shell_and_its_exit_code_is_run_s(vmd):
    from test_vms import Pty
    term = Pty(vmd.argv("run", "-it", "--rm", "--name", "it-sh", IMAGE, "sh"), 30, 100,
               env=vmd.env())
    try:
        term.expect(r"[#$] ", 60)  # the workload's own prompt: it runs on our terminal
        start = len(term.out)
        term.send("echo $$ hel''lo\r")
        term.expect(r"\r?\n(\d+) hello\r?\n", 15, start)
        assert term.stty_size(15) == (30, 100)  # the size came with the start
        start = len(term.out)
        term.send("tty\r")
        term.expect(r"/dev/pts/\d+", 15, start)
        assert any(v["Names"] == "it-sh" and v["State"] == "running" for v in vmd.ps_json())
        term.send("exit 7\r")
        assert term.proc.wait(30) == 7
    finally:
        term.close()
    wait_for(lambda: not [v for v in vmd.ps_json() if v["Names"] == "it-sh"], 30,
             "the --rm VM to be removed")


def test_run_i_pipes_stdin_and_ctrl_p_ctrl_q_detaches(vmd):
    import subprocess
    p = subprocess.run(vmd.argv("run", "-i", "--rm", IMAGE, "sh", "-c", "cat; exit 4"),
                       input=b"piped line\n", capture_output=True, timeout=90, env=vmd.env())
    assert p.returncode == 4 and p.stdout == b"piped line\n", (p.returncode, p.stdout, p.stderr)
    p = subprocess.run(vmd.argv("run", "-it", IMAGE, "sh"), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30, env=vmd.env())
    assert p.returncode == 1 and b"the input device is not a TTY" in p.stderr, p.stderr
    from test_vms import Pty
    term = Pty(vmd.argv("run", "-it", "--name", "it-detach", IMAGE, "sh"), 24, 80,
               env=vmd.env())
    try:
        term.expect(r"[#$] ", 60)
        term.send("echo before-detach\r")
        term.expect(r"\r?\nbefore-detach\r?\n", 15)
        term.send("\x10\x11")  # Ctrl-P Ctrl-Q
        term.expect(r"read escape sequence", 15)
        assert term.proc.wait(20) == 0
    finally:
        term.close()
    assert vmd.status("it-detach") == "running"  # the workload goes on without us
    assert "before-detach" in vmd.logs("it-detach")  # its terminal output is in the logs
    # hypr attach joins it again: input, output from now on, and its exit code
    term = Pty(vmd.argv("attach", "it-detach"), 24, 80, env=vmd.env())
    try:
        term.send("echo again-$((20+1))\r")
        term.expect(r"again-21", 30)
        assert b"before-detach" not in term.out  # output from now on only
        term.send("exit 6\r")
        assert term.proc.wait(30) == 6
    finally:
        term.close()
    st = vmd.wait_status("it-detach", ("exited", "stopped"))
    assert st["State"]["ExitCode"] == 6, st["State"]
    vmd.ok("rm", "it-detach")
    plain = vmd.run_detached("--name", "it-plain", IMAGE, "sleep", "3600")
    vmd.wait_status(plain, "running")
    p = vmd.hypr("attach", "it-plain")
    assert p.returncode == 1 and "no attachable workload" in p.err, p.err
    vmd.ok("rm", "-f", plain)


def test_run_dit_runs_on_its_own_and_attach_with_detach_keys_joins_it(vmd):
    from test_vms import Pty
    vm = vmd.ok("run", "-dit", "--name", "dit", IMAGE, "sh").out.strip()
    vmd.wait_status(vm, "running")
    p = vmd.hypr("attach", "--detach-keys", "ctrl-q,q,", vm)
    assert p.returncode == 1 and "invalid detach keys" in p.err, p.err
    term = Pty(vmd.argv("attach", "--detach-keys", "ctrl-x,x", "dit"), 24, 80, env=vmd.env())
    try:
        term.send("echo attached-$((40+2))\r")
        term.expect(r"attached-42", 30)
        term.send("\x18x")
        term.expect(r"read escape sequence", 15)
        assert term.proc.wait(20) == 0
    finally:
        term.close()
    assert vmd.status(vm) == "running"
    assert "attached-42" in vmd.logs(vm)
    # a restart starts the workload again, detached, and it can be joined again
    vmd.ok("restart", "-t", "1", vm)
    vmd.wait_status(vm, "running")
    term = Pty(vmd.argv("attach", vm), 24, 80, env=vmd.env())
    try:
        term.send("exit 9\r")
        assert term.proc.wait(30) == 9
    finally:
        term.close()
    assert vmd.wait_status(vm, ("exited", "stopped"))["State"]["ExitCode"] == 9
    vmd.ok("rm", vm)
    # -dit of a command that cannot run: the VM ends with Docker's 127 and says why
    bad = vmd.ok("run", "-dit", IMAGE, "nosuchcmd").out.strip()
    st = vmd.wait_status(bad, ("exited", "stopped", "failed"))
    assert st["State"]["ExitCode"] == 127, st["State"]
    assert "nosuchcmd" in vmd.logs(bad)
    vmd.ok("rm", bad)


def test_create_it_then_start_ai_and_start_a_show_the_run(vmd):
    from test_vms import Pty
    vm = vmd.ok("create", "-it", "--name", "cit", IMAGE, "sh").out.strip()
    term = Pty(vmd.argv("start", "-ai", "cit"), 30, 90, env=vmd.env())
    try:
        term.expect(r"[#$] ", 60)
        start = len(term.out)
        term.send("stty size\r")
        term.expect(r"\r?\n30 90\r?\n", 15, start)
        term.send("exit 5\r")
        assert term.proc.wait(30) == 5
    finally:
        term.close()
    vmd.ok("rm", vm)
    plain = vmd.ok("create", "--name", "sa", IMAGE, "sh", "-c", "echo out-line; echo err-line >&2; exit 3").out.strip()
    p = vmd.hypr("start", "-a", "sa", timeout=BOOT_TIMEOUT + 30)
    assert p.returncode == 3 and p.out == "out-line\n" and "err-line" in p.err, (p.out, p.err)
    p = vmd.hypr("start", "-a", "sa", timeout=BOOT_TIMEOUT + 30)  # this run's output only
    assert p.returncode == 3 and p.out == "out-line\n", p.out
    p = vmd.hypr("start", "-a", "sa", "cit")
    assert p.returncode == 1 and "cannot start and attach multiple" in p.err, p.err
    vmd.ok("rm", plain)


def test_diff_lists_what_the_workload_changed_like_docker_diff(vmd):
    quiet = vmd.run_detached("--name", "d-quiet", "-v", "/data", IMAGE, "sleep", "3600")
    script = ("mkdir /app && echo hi > /app/f && echo x >> /etc/passwd && rm /etc/group && "
              "echo ready && sleep 3600")
    busy = run_trapper(vmd, "d-busy", "-v", "/data", script=script)
    vmd.wait_status(quiet, "running")
    assert vmd.ok("diff", quiet).out == ""  # what hypr itself wrote is not the VM's change
    assert vmd.ok("diff", busy).out.splitlines() == [
        "A /app", "A /app/f", "C /etc", "D /etc/group", "C /etc/passwd"]
    p = vmd.hypr("diff", "no-such-vm")
    assert p.returncode == 1 and "no-such-vm" in p.err, p.err
    vmd.ok("rm", "-f", quiet, busy)


def test_inspect_shows_the_config_the_vm_runs_with(vmd, busybox_rootfs):
    vmd.daemon.call("ImportImage", source=busybox_rootfs, reference="bb-env:1",
                    cmd=["sh", "-c", "echo from-image"], env=["PATH=/bin", "A=img", "B=img"],
                    workdir="/tmp", timeout=120)
    vm = vmd.ok("create", "-e", "A=run", "bb-env:1").out.strip()
    cfg = vmd.inspect(vm)["Config"]
    assert cfg["Env"] == ["PATH=/bin", "B=img", "A=run"], cfg["Env"]  # the run's A wins
    assert cfg["Cmd"] == ["sh", "-c", "echo from-image"] and cfg["WorkingDir"] == "/tmp", cfg
    own = vmd.ok("create", "-w", "/", "bb-env:1", "echo", "mine").out.strip()
    cfg = vmd.inspect(own)["Config"]
    assert cfg["Cmd"] == ["echo", "mine"] and cfg["WorkingDir"] == "/", cfg
    ep = vmd.ok("create", "--entrypoint", "/bin/true", "bb-env:1").out.strip()
    cfg = vmd.inspect(ep)["Config"]
    assert cfg["Entrypoint"] == ["/bin/true"] and cfg["Cmd"] == [], cfg  # Docker drops it
    p = vmd.hypr("diff", own)
    assert p.returncode == 1 and "start it first" in p.err, p.err
    vmd.ok("rm", vm, own, ep)
    vmd.ok("rmi", "bb-env:1")
