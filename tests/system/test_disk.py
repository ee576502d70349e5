"""`hypr system df` and `hypr system prune` against the real hyprd: what df counts
(images with their layer blobs, VMs, logs), and that prune removes what nothing
uses -- stopped VMs, idle networks, unused images and the blobs no image
references any more, orphan files -- while it never touches a running VM, its
image, its blobs, its files, its network, or the blobs of a pull in flight.

Images are built here from busybox-static and pushed to a local registry; they
share a base layer, so a blob that stays because another image needs it is seen.
One VM boots for the whole module.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading

import pytest

import hypr_pb2
from conftest import HYPR_BIN, Daemon, kill_hypervisors, wait_for
from registry import AuthProxy, OciLayout, Registry, busybox_base

pytestmark = pytest.mark.skipif(
    not all(shutil.which(b) for b in ("docker-registry", "skopeo")),
    reason="needs docker-registry and skopeo (make deps)")

BOOT_TIMEOUT = 90
FAKE_ID = "f" * 64  # a VM that never existed here: its files are orphans


class Env:
    pass


def marker_layer(name):
    return [{"name": name, "data": ("%s\n" % name).encode()}]


@pytest.fixture(scope="module")
def env():
    base = tempfile.mkdtemp(prefix="hypr-df-")  # short: unix socket paths <= 107 bytes
    e = Env()
    e.reg = Registry(os.path.join(base, "reg")).start()
    lay = OciLayout(os.path.join(base, "oci"))
    common = busybox_base([{"name": "bin/sleep", "type": "symlink", "target": "busybox"}])
    e.info = {}
    for name in ("keep", "drop", "extra"):
        desc, info = lay.add_image([(common, "gzip"), (marker_layer(name), "gzip")])
        lay.tag(desc, name)
        lay.push(name, "%s/df/%s:1" % (e.reg.host, name))
        e.info[name] = info
    # An incompressible layer of its own, downloaded slowly through a proxy.
    big = [{"name": "big.bin", "data": os.urandom(512 * 1024)}]
    desc, info = lay.add_image([(common, "gzip"), (big, "none")])
    lay.tag(desc, "slow")
    lay.push("slow", "%s/df/slow:1" % e.reg.host)
    e.info["slow"] = info
    e.ref = {n: "%s/df/%s:1" % (e.reg.host, n) for n in ("keep", "drop", "extra")}
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    e.d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    e.d.start()
    try:
        yield e
        for vm in e.d.call("ListVms", all=True).vms:
            e.d.call("DeleteVM", id=vm.id, force=True, timeout=60)
        wait_for(lambda: not e.d.call("ListVms", all=True).vms, 60, "the VMs to go")
        e.d.stop_clean()
    finally:
        if e.d.alive():
            e.d.kill()
        kill_hypervisors(run)
        e.reg.stop()
        shutil.rmtree(base, ignore_errors=True)


def hypr(e, *args, check=True, timeout=BOOT_TIMEOUT + 30):
    p = subprocess.run([HYPR_BIN, "-H", e.d.socket, *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, "hypr %s -> %d\n%s%s" % (" ".join(args), p.returncode,
                                                           p.stdout, p.stderr)
    return p


def blob_path(e, digest):
    return os.path.join(e.d.data_dir, "cache", "blobs", "sha256", digest.split(":", 1)[1])


def layers(e, name):
    return [l["digest"] for l in e.info[name]["layers"]]


def dir_size(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def cache_size(e):
    d = os.path.join(e.d.data_dir, "cache", "blobs", "sha256")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def image(e, name):
    return e.d.call("GetImage", id=e.ref[name]).image


def df_rows(e):
    return {r["Type"]: r for r in json.loads(hypr(e, "system", "df", "--format", "json").stdout)}


def human(n):
    """hypr's (and Docker's) decimal sizes: 512B, 1.50kB, 12.3MB, 123GB."""
    units, v, u = ["B", "kB", "MB", "GB", "TB"], float(n), 0
    while v >= 1000 and u + 1 < len(units):
        v /= 1000
        u += 1
    if u == 0:
        return "%dB" % n
    return ("%.2f%s" if v < 10 else "%.1f%s" if v < 100 else "%.0f%s") % (v, units[u])


def section(out, title):
    """The lines under a `Deleted ...:` title of prune's output (until the blank line)."""
    m = re.search(r"^%s\n(.*?)\n\n" % re.escape(title), out, re.S | re.M)
    return m.group(1).split("\n") if m else []


def state(e):
    """What a prune must not have touched, for before/after comparisons."""
    vms = {v.id: v.status for v in e.d.call("ListVms", all=True).vms}
    nets = sorted(n.name for n in e.d.call("ListNetworks").networks)
    imgs = sorted(i.id for i in e.d.call("ListImages", all=True).images)
    blobs = sorted(os.listdir(os.path.join(e.d.data_dir, "cache", "blobs", "sha256")))
    return vms, nets, imgs, blobs


def test_df_counts_and_prune_keeps_what_is_in_use(env):
    e = env
    for name in ("keep", "drop", "extra"):
        hypr(e, "pull", e.ref[name], timeout=120)
    hypr(e, "network", "create", "busy")
    hypr(e, "network", "create", "idle")
    vm_id = hypr(e, "run", "-d", "-n", "keeper", "--network", "busy", e.ref["keep"], "sleep",
                 "3600").stdout.strip()
    wait_for(lambda: e.d.call("GetVM", id=vm_id).vm.status == hypr_pb2.VM_STATUS_RUNNING,
             BOOT_TIMEOUT, "the VM to run", interval=0.25)
    stopped = e.d.call("CreateVM", config=hypr_pb2.VMConfig(image=e.ref["keep"],
                                                            name="idle-vm")).vm.id

    # ---- df: the images' directories plus every cached blob; in use = a VM's image
    dirs = {n: dir_size(image(e, n).path) for n in ("keep", "drop", "extra")}
    blob = {d: os.path.getsize(blob_path(e, d)) for n in e.ref for d in layers(e, n)}
    rows = df_rows(e)
    assert list(rows) == ["Images", "VMs", "Local Volumes", "Build Cache", "Logs"]
    img = rows["Images"]
    assert (img["TotalCount"], img["Active"]) == ("3", "1")
    assert img["SizeBytes"] == sum(dirs.values()) + sum(blob.values())
    unused = dirs["drop"] + dirs["extra"] + blob[layers(e, "drop")[1]] + blob[
        layers(e, "extra")[1]]
    assert img["ReclaimableBytes"] == unused  # the shared base layer stays: keep needs it
    pct = unused * 100 // img["SizeBytes"]
    assert img["Reclaimable"] == "%s (%d%%)" % (human(unused), pct)
    assert (rows["VMs"]["TotalCount"], rows["VMs"]["Active"]) == ("2", "1")
    assert int(rows["Logs"]["Active"]) >= 1  # the running VM's console log

    table = hypr(e, "system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[1].split()[:3] == ["Images", "3", "1"]
    assert table[1].endswith("(%d%%)" % pct)

    verbose = json.loads(hypr(e, "system", "df", "-v", "--format", "json").stdout)
    by_id = {i["ID"]: i for i in verbose["Images"]}
    assert by_id[image(e, "keep").id]["VMs"] == 2 and by_id[image(e, "drop").id]["VMs"] == 0
    shared = {b["Digest"]: b["Images"] for b in verbose["Blobs"]}
    assert shared[layers(e, "keep")[0]] == 3 and shared[layers(e, "drop")[1]] == 1
    assert {v["ID"]: v["Running"] for v in verbose["VMs"]} == {vm_id: True, stopped: False}
    assert any(l["VM"] == vm_id and l["VMState"] == "running" for l in verbose["Logs"])
    text = hypr(e, "system", "df", "-v").stdout
    for title in ("Images space usage:", "Layer blobs space usage:", "VMs space usage:",
                  "Local Volumes space usage:", "Build cache usage: 0B", "Logs space usage:"):
        assert title in text
    row = r"^%s\s+1\s+%s\s" % (re.escape(e.ref["keep"].rsplit(":", 1)[0]), image(e, "keep").id[:12])
    assert re.search(row, text, re.M), text

    # ---- nothing is older than 24 hours, and a bad filter deletes nothing
    before = state(e)
    p = hypr(e, "system", "prune", "-a", "-f", "--filter", "until=24h")
    assert p.stdout == "Total reclaimed space: 0B\n"
    assert state(e) == before
    p = hypr(e, "system", "prune", "-a", "-f", "--filter", "until=abc", check=False)
    assert p.returncode != 0 and "invalid filter 'until=abc'" in p.stderr, p.stderr
    assert p.stdout == ""
    assert state(e) == before

    # ---- rmi leaves the blobs (df still counts them); prune -a takes them
    hypr(e, "rmi", e.ref["drop"])
    assert os.path.exists(blob_path(e, layers(e, "drop")[1]))
    assert df_rows(e)["Images"]["SizeBytes"] == dirs["keep"] + dirs["extra"] + sum(blob.values())
    orphans = [os.path.join(e.d.data_dir, "logs", FAKE_ID + ".log"),
               os.path.join(e.d.run_dir, FAKE_ID + ".initrd")]
    for path in orphans:
        with open(path, "wb") as f:
            f.write(b"x" * 1000)
    own_files = [os.path.join(e.d.data_dir, "logs", n)
                 for n in os.listdir(os.path.join(e.d.data_dir, "logs")) if vm_id in n]
    own_files += [os.path.join(e.d.run_dir, n) for n in os.listdir(e.d.run_dir) if vm_id in n]
    assert own_files
    extra = image(e, "extra")
    stopped_files = sum(os.path.getsize(os.path.join(dp, n))
                        for dp in (os.path.join(e.d.data_dir, "logs"), e.d.run_dir)
                        for n in os.listdir(dp) if stopped in n)

    p = hypr(e, "system", "prune", "-a", "-f")
    out = p.stdout
    assert section(out, "Deleted VMs:") == [stopped], out
    assert section(out, "Deleted Networks:") == ["idle"], out
    assert section(out, "Deleted Images:") == ["untagged: %s" % e.ref["extra"],
                                               "deleted: sha256:%s" % extra.id], out
    assert "Deleted layer blobs: 2\n" in out
    assert "Deleted orphan files and build cache entries: 2\n" in out
    reclaimed = (stopped_files + dirs["extra"] + blob[layers(e, "drop")[1]] +
                 blob[layers(e, "extra")[1]] + 2000)
    assert out.endswith("Total reclaimed space: %s\n" % human(reclaimed)), out

    for gone in [blob_path(e, layers(e, "drop")[1]), blob_path(e, layers(e, "extra")[1]),
                 extra.path] + orphans:
        assert not os.path.exists(gone), gone
    for kept in [blob_path(e, d) for d in layers(e, "keep")] + own_files:
        assert os.path.exists(kept), kept
    assert image(e, "keep").id
    assert e.d.call("GetVM", id=vm_id).vm.status == hypr_pb2.VM_STATUS_RUNNING
    assert "busy" in [n.name for n in e.d.call("ListNetworks").networks]
    after = df_rows(e)["Images"]
    assert after["SizeBytes"] == dirs["keep"] + sum(blob[d] for d in layers(e, "keep"))
    assert (after["TotalCount"], after["Active"]) == ("1", "1")

    hypr(e, "rm", "-f", vm_id, timeout=60)
    hypr(e, "network", "rm", "busy")


def test_label_filters_prune_only_what_they_match(env):
    e = env
    if not e.d.call("ListImages").images:
        hypr(e, "pull", e.ref["keep"], timeout=120)
    cfg = dict(image=e.ref["keep"])
    labeled = e.d.call("CreateVM", config=hypr_pb2.VMConfig(
        name="labeled", labels={"team": "x"}, **cfg)).vm.id
    plain = e.d.call("CreateVM", config=hypr_pb2.VMConfig(name="plain", **cfg)).vm.id
    orphan = os.path.join(e.d.data_dir, "logs", FAKE_ID + ".log")
    with open(orphan, "wb") as f:
        f.write(b"x" * 10)

    out = hypr(e, "system", "prune", "-f", "--filter", "label=team=x").stdout
    assert section(out, "Deleted VMs:") == [labeled], out
    assert "Deleted Images:" not in out  # tagged images are not dangling without -a
    # An orphan file has no labels: label= never matches it.
    assert os.path.exists(orphan)
    assert [v.id for v in e.d.call("ListVms", all=True).vms] == [plain]

    out = hypr(e, "system", "prune", "-f", "--filter", "label!=team").stdout
    assert section(out, "Deleted VMs:") == [plain], out
    assert not os.path.exists(orphan)
    assert image(e, "keep").id


def test_prune_leaves_the_blobs_of_a_pull_in_flight(env):
    e = env
    proxy = AuthProxy(e.reg.host, bearer=False, chunk_delay=0.1).start()
    try:
        ref = "%s/df/slow:1" % proxy.host
        big = layers(e, "slow")[1]
        partial = blob_path(e, big) + ".partial"
        result = {}

        def pull():
            result["p"] = hypr(e, "pull", ref, check=False, timeout=120)
        t = threading.Thread(target=pull)
        t.start()
        wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) > 0, 60,
                 "the slow layer's download to start")
        hypr(e, "system", "prune", "-a", "-f")
        assert os.path.exists(partial)
        t.join(120)
        assert not t.is_alive()
        p = result["p"]
        assert p.returncode == 0, p.stdout + p.stderr
        assert os.path.exists(blob_path(e, big))
        assert e.d.call("GetImage", id=ref).image.id
    finally:
        proxy.stop()
