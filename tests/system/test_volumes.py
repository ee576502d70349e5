"""Volumes and the writable layer (issue 11): named, anonymous and image VOLUME
volumes, bind mounts, tmpfs, :ro, pre-population, the writable layer across
stop/start, --read-only, in-use refusals, prune, the 9p transport, bad input.
Driven with the real CLI against real microVMs (busybox image, TCG)."""

import json
import os
import shutil
import tempfile

import pytest

from conftest import build_busybox_rootfs, wait_for
from test_vms import BOOT_TIMEOUT, IMAGE, vmd  # noqa: F401  (vmd is a fixture)

BB = "/bin/busybox"  # applets the test image does not link


def run_out(host, *args):
    """`hypr run --rm ARGS` -> its output (the workload's)."""
    return host.ok("run", "--rm", *args, timeout=BOOT_TIMEOUT + 30).out


def volume_inspect(host, name):
    return json.loads(host.ok("volume", "inspect", name, timeout=30).out)[0]


@pytest.fixture
def hostdir():
    d = tempfile.mkdtemp(prefix="hypr-bind-")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def seeded(vmd, tmp_path_factory):
    """An image with content at /srv/seed (owner 1000, mode 0750 and 0640) and a
    VOLUME at /var/lib/app: what databases' images look like."""
    root = build_busybox_rootfs(tmp_path_factory.mktemp("seed") / "rootfs")
    seed = os.path.join(root, "srv", "seed")
    os.makedirs(seed)
    with open(os.path.join(seed, "conf"), "w") as f:
        f.write("from-image\n")
    os.chmod(os.path.join(seed, "conf"), 0o640)
    os.chown(os.path.join(seed, "conf"), 1000, 1000)
    os.chmod(seed, 0o750)
    os.chown(seed, 1000, 1000)
    os.makedirs(os.path.join(root, "var", "lib", "app"))
    with open(os.path.join(root, "var", "lib", "app", "init"), "w") as f:
        f.write("seeded\n")
    vmd.daemon.call("ImportImage", source=root, reference="seeded:latest", cmd=["sh"],
                    volumes=["/var/lib/app"], timeout=120)
    return "seeded"


def test_named_volume_outlives_the_vm_and_is_on_the_host(vmd):
    assert vmd.ok("volume", "create", "data1").out == "data1\n"
    out = run_out(vmd, "-v", "data1:/data", IMAGE, "sh", "-c", "echo hello > /data/f; echo ok")
    assert out.strip() == "ok"
    v = volume_inspect(vmd, "data1")
    assert v["Name"] == "data1" and v["Driver"] == "local" and v["Scope"] == "local"
    with open(os.path.join(v["Mountpoint"], "f")) as f:
        assert f.read() == "hello\n"
    assert v["UsageData"]["Size"] > 0
    # a second VM sees it after the first is gone
    assert run_out(vmd, "-v", "data1:/data", IMAGE, "cat", "/data/f") == "hello\n"
    assert vmd.ok("volume", "rm", "data1").out == "data1\n"
    assert not os.path.exists(v["Mountpoint"])


def test_run_creates_a_missing_named_volume(vmd):
    run_out(vmd, "-v", "auto1:/d", IMAGE, "true")
    assert "auto1" in vmd.ok("volume", "ls", "-q").out.split()
    vmd.ok("volume", "rm", "auto1")


def test_bind_mount_is_live_both_ways_with_the_guests_owner(vmd, hostdir):
    vm = vmd.run_detached("--name", "bind1", "-v", hostdir + ":/mnt", IMAGE, "sleep", "600")
    vmd.wait_status(vm, "running")
    with open(os.path.join(hostdir, "from-host"), "w") as f:
        f.write("edited on the host\n")
    assert vmd.ok("exec", "bind1", "cat", "/mnt/from-host").out == "edited on the host\n"
    with open(os.path.join(hostdir, "from-host"), "w") as f:  # grown: read in full at once
        f.write("edited again on the host, longer\n")
    assert vmd.ok("exec", "bind1", "cat", "/mnt/from-host").out == \
        "edited again on the host, longer\n"
    vmd.ok("exec", "-u", "1000:1000", "bind1", "sh", "-c", "echo guest > /mnt/from-guest")
    st = os.stat(os.path.join(hostdir, "from-guest"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    with open(os.path.join(hostdir, "from-guest")) as f:
        assert f.read() == "guest\n"
    insp = vmd.inspect(vm)
    assert insp["Mounts"] == [{"Type": "bind", "Source": hostdir, "Destination": "/mnt",
                               "Mode": "", "RW": True}], insp["Mounts"]
    vmd.ok("rm", "-f", vm)


def test_read_only_mounts_refuse_writes(vmd, hostdir):
    p = vmd.hypr("run", "--rm", "-v", hostdir + ":/ro:ro", "--mount",
                 "type=volume,source=rovol,target=/rv,readonly", IMAGE, "sh", "-c",
                 "echo x > /ro/a || echo bind-refused; "
                 "echo x > /rv/a || echo vol-refused")
    assert "/ro/a: Read-only file system" in p.err, p.err
    assert "/rv/a: Read-only file system" in p.err, p.err
    assert p.out == "bind-refused\nvol-refused\n", p.out
    assert not os.path.exists(os.path.join(hostdir, "a"))
    vmd.ok("volume", "rm", "rovol")


def test_tmpfs_is_sized_and_empty_at_each_start(vmd):
    vm = vmd.run_detached("--name", "tmp1", "--tmpfs", "/scratch:size=2m,mode=1770",
                          "--mount", "type=tmpfs,dst=/t2,tmpfs-size=1m", IMAGE, "sh", "-c",
                          "ls /scratch; echo data > /scratch/x; echo x; sleep 600")
    vmd.wait_status(vm, "running")
    df = vmd.ok("exec", "tmp1", BB, "df", "-k", "/scratch", "/t2").out.splitlines()
    assert df[1].split()[1] == "2048" and df[2].split()[1] == "1024", df
    mode = vmd.ok("exec", "tmp1", BB, "stat", "-c", "%a", "/scratch").out.strip()
    assert mode == "1770"
    vmd.ok("stop", "-t", "1", "tmp1")
    vmd.ok("start", "tmp1")
    vmd.wait_status(vm, "running")
    wait_for(lambda: vmd.logs(vm).count("\n") >= 2, BOOT_TIMEOUT, "the second start's ls")
    # each start's ls printed nothing before its own echo: /scratch was empty both times
    assert vmd.logs(vm) == "x\nx\n", vmd.logs(vm)
    vmd.ok("rm", "-f", vm)


def test_volume_is_prepopulated_from_the_image_keeping_owner_and_mode(vmd, seeded, hostdir):
    out = run_out(vmd, "-v", "pop1:/srv/seed", seeded, "cat", "/srv/seed/conf")
    assert out == "from-image\n"
    mp = volume_inspect(vmd, "pop1")["Mountpoint"]
    st = os.stat(os.path.join(mp, "conf"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1000, 1000, 0o640)
    assert os.stat(mp).st_mode & 0o777 == 0o750 and os.stat(mp).st_uid == 1000
    # a bind is never filled
    assert run_out(vmd, "-v", hostdir + ":/srv/seed", seeded, "ls", "/srv/seed") == ""
    assert os.listdir(hostdir) == []
    # nocopy: an empty volume stays empty
    assert run_out(vmd, "-v", "pop2:/srv/seed:nocopy", seeded, "ls", "/srv/seed") == ""
    # read-only: filled all the same (as Docker), and then refuses writes
    p = vmd.hypr("run", "--rm", "-v", "pop3:/srv/seed:ro", seeded, "sh", "-c",
                 "cat /srv/seed/conf; echo x > /srv/seed/new")
    assert p.out == "from-image\n" and "Read-only file system" in p.err, (p.out, p.err)
    vmd.ok("volume", "rm", "pop1", "pop2", "pop3")


def test_image_volume_gets_an_anonymous_volume_that_rm_v_removes(vmd, seeded):
    vm = vmd.run_detached("--name", "anon1", seeded, "cat", "/var/lib/app/init")
    vmd.wait_status(vm, ("exited", "stopped"))
    assert vmd.logs(vm) == "seeded\n"
    mounts = vmd.inspect(vm)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Destination"] == "/var/lib/app", mounts
    name = mounts[0]["Name"]
    assert len(name) == 64
    v = volume_inspect(vmd, name)
    assert v["Anonymous"] is True and v["VMs"] == ["anon1"]
    # in use by a stopped VM: refused without -f, naming the VM
    p = vmd.hypr("volume", "rm", name)
    assert p.returncode != 0 and "in use by VM anon1" in p.err, p.err
    vmd.ok("rm", "-v", vm)
    assert name not in vmd.ok("volume", "ls", "-q").out.split()
    assert not os.path.exists(v["Mountpoint"])


def test_rm_without_v_keeps_anonymous_volumes_and_prune_takes_them(vmd):
    vm = vmd.run_detached("--name", "anon2", "-v", "/cache", IMAGE, "true")
    vmd.wait_status(vm, ("exited", "stopped"))
    name = vmd.inspect(vm)["Mounts"][0]["Name"]
    vmd.ok("volume", "create", "keepme", "--label", "k=v")
    vmd.ok("rm", vm)
    ls = vmd.ok("volume", "ls", "-q", "--filter", "dangling=true").out.split()
    assert name in ls and "keepme" in ls
    assert vmd.ok("volume", "ls", "-q", "--filter", "label=k=v").out.split() == ["keepme"]
    p = vmd.ok("volume", "prune", "-f")  # Docker 23+: anonymous ones only
    assert name in p.out and "keepme" not in p.out, p.out
    p = vmd.ok("volume", "prune", "-f", "-a", "--filter", "label=k")
    assert "keepme" in p.out, p.out
    assert "keepme" not in vmd.ok("volume", "ls", "-q").out.split()


def test_volume_of_a_running_vm_cannot_be_removed_even_with_force(vmd):
    vm = vmd.run_detached("--name", "busy1", "-v", "busyvol:/d", IMAGE, "sleep", "600")
    vmd.wait_status(vm, "running")
    p = vmd.hypr("volume", "rm", "-f", "busyvol")
    assert p.returncode != 0 and "in use by VM busy1" in p.err, p.err
    assert "busyvol" in vmd.ok("volume", "ls", "-q").out.split()
    vmd.ok("rm", "-f", vm)
    vmd.ok("volume", "rm", "busyvol")


def test_writable_layer_survives_stop_start_and_goes_with_rm(vmd):
    vm = vmd.run_detached("--name", "layer1", IMAGE, "sleep", "600")
    vmd.wait_status(vm, "running")
    vmd.ok("exec", "layer1", "sh", "-c", "echo kept > /etc/mine")
    layer = os.path.join(vmd.data_dir, "layers", vm + ".ext4")
    assert os.path.exists(layer)
    # sparse: it takes what was written, and system df counts that with the VM
    used = os.stat(layer).st_blocks * 512
    assert 0 < used < 256 << 20 and os.stat(layer).st_size == 10240 << 20
    df = json.loads(vmd.ok("system", "df", "-v", "--format", "json", timeout=30).out)
    size = {v["ID"]: v["SizeBytes"] for v in df["VMs"]}[vm]
    assert size >= used, (size, used)
    vmd.ok("stop", "-t", "1", "layer1")
    vmd.ok("start", "layer1")
    vmd.wait_status(vm, "running")
    assert vmd.ok("exec", "layer1", "cat", "/etc/mine").out == "kept\n"
    vmd.ok("rm", "-f", vm)
    assert not os.path.exists(layer)


def test_read_only_root(vmd):
    p = vmd.hypr("run", "--rm", "--read-only", "-v", "rw1:/data", IMAGE, "sh", "-c",
                 "echo x > /etc/x; echo y > /tmp/y && echo tmp-ok; "
                 "echo z > /data/z && echo vol-ok")
    assert "/etc/x: Read-only file system" in p.err, p.err
    assert p.out == "tmp-ok\nvol-ok\n", p.out
    vmd.ok("volume", "rm", "rw1")


@pytest.mark.parametrize("flags,needle", [
    (["-v", "foo/bar:/x"], "foo/bar"),
    (["-v", "v1:relative"], "relative"),
    (["-v", "v1:/"], "\"/\""),
    (["--mount", "type=volume,source=..,target=/x"], ".."),
    (["-v", "a:/d", "-v", "b:/d/"], "/d"),
    (["--mount", "type=bind,source=/nonexistent/hypr-src,target=/x"], "/nonexistent/hypr-src"),
    (["--mount", "type=volume,target=/x,colour=red"], "colour"),
    (["--mount", "type=tmpfs,target=/x,tmpfs-size=12q"], "12q"),
    (["--tmpfs", "/x:size=lots"], "lots"),
])
def test_bad_mounts_are_refused_and_create_nothing(vmd, flags, needle):
    before = vmd.ok("volume", "ls", "-q").out.split()
    p = vmd.hypr("run", "--rm", *flags, IMAGE, "true")
    assert p.returncode == 125 and needle in p.err, (p.returncode, p.err)
    assert vmd.ok("volume", "ls", "-q").out.split() == before
    assert not os.path.exists("/nonexistent/hypr-src")


def test_too_many_shared_directories_says_the_limit(vmd):
    flags = []
    for i in range(17):
        flags += ["-v", "many%d:/m%d" % (i, i)]
    p = vmd.hypr("create", *flags, IMAGE, "true")
    assert p.returncode == 125 and "at most 16" in p.err, p.err
    assert not [v for v in vmd.ok("volume", "ls", "-q").out.split() if v.startswith("many")]


def test_9p_transport_passes_the_same_data_paths(vmd, hostdir):
    vmd.ok("system", "settings", "set", "volume_transport=9p")
    try:
        out = run_out(vmd, "-v", "nine:/data", "-v", hostdir + ":/mnt", IMAGE, "sh", "-c",
                      "grep -E ' /(data|mnt) ' /proc/mounts | cut -d' ' -f3; "
                      "echo v > /data/f; echo b > /mnt/f")
        assert out.split() == ["9p", "9p"], out
        with open(os.path.join(hostdir, "f")) as f:
            assert f.read() == "b\n"
        mp = volume_inspect(vmd, "nine")["Mountpoint"]
        with open(os.path.join(mp, "f")) as f:
            assert f.read() == "v\n"
        p = vmd.hypr("run", "--rm", "-v", hostdir + ":/mnt:ro", IMAGE, "sh", "-c",
                     "echo x > /mnt/g")
    finally:
        vmd.ok("system", "settings", "set", "volume_transport=auto")
    assert "Read-only file system" in p.err and p.returncode == 1, p.err
    assert not os.path.exists(os.path.join(hostdir, "g"))
    vmd.ok("volume", "rm", "nine")


def test_volumes_survive_a_hyprd_restart_with_a_vm_using_one(vmd):
    vm = vmd.run_detached("--name", "keep1", "-v", "kvol:/d", IMAGE, "sh", "-c",
                          "echo before > /d/f; sleep 600")
    vmd.wait_status(vm, "running")
    vmd.daemon.kill()
    vmd.daemon.start()
    vmd.wait_status(vm, "running")
    assert vmd.ok("exec", "keep1", "cat", "/d/f").out == "before\n"
    vmd.ok("exec", "keep1", "sh", "-c", "echo after >> /d/f")
    assert "kvol" in vmd.ok("volume", "ls", "-q").out.split()
    vmd.ok("rm", "-f", vm)
    with open(os.path.join(volume_inspect(vmd, "kvol")["Mountpoint"], "f")) as f:
        assert f.read() == "before\nafter\n"
    vmd.ok("volume", "rm", "kvol")


def test_a_full_writable_layer_is_enospc_in_the_guest(vmd):
    """vm_writable_layer_size bounds the layer (applies to a VM's first start): the
    guest gets ENOSPC, the host's disk is untouched beyond it, the VM runs on."""
    vmd.ok("system", "settings", "set", "vm_writable_layer_size=64")
    try:
        vm = vmd.run_detached("--name", "full1", IMAGE, "sleep", "600")
        vmd.wait_status(vm, "running")
    finally:
        vmd.ok("system", "settings", "set", "vm_writable_layer_size=10240")
    p = vmd.hypr("exec", "full1", BB, "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=200")
    assert p.returncode != 0 and "No space left on device" in p.err, (p.returncode, p.err)
    layer = os.path.join(vmd.data_dir, "layers", vm + ".ext4")
    assert os.stat(layer).st_size == 64 << 20
    assert vmd.ok("exec", "full1", "echo", "still-up").out == "still-up\n"
    vmd.ok("rm", "-f", vm)
