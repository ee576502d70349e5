"""`hypr ps --filter` and `hypr images --filter` against the real hyprd, which
evaluates the filters (Docker's keys and words): one key given twice is OR,
different keys are AND, every label= must match; status=/exited=/before=/since=
list stopped VMs without -a; a bad filter is exit 1 with the daemon's message
and nothing on stdout.

Three VMs are only created (CreateVM: no boot), two boot: one keeps running, one
exits 3. Images are imported from the busybox rootfs, a second apart (before=
and since= compare creation times).
"""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

import urllib.error
import urllib.request

from conftest import HYPR_BIN, Daemon, free_tcp_port, import_busybox, kill_hypervisors, wait_for

BOOT_TIMEOUT = 90


class Env:
    pass


def hypr(e, *args, timeout=BOOT_TIMEOUT + 30):
    return subprocess.run([HYPR_BIN, "-H", e.d.socket, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ok(e, *args):
    p = hypr(e, *args)
    assert p.returncode == 0, "hypr %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                       p.stderr)
    return p


def import_image(e, reference, cmd, **fields):
    img = e.d.call("ImportImage", source=e.rootfs, reference=reference, cmd=cmd,
                   timeout=120, **fields).image
    time.sleep(1.1)  # created_at has seconds: the next image is strictly younger
    return img.id


@pytest.fixture(scope="module")
def env(busybox_rootfs):
    base = tempfile.mkdtemp(prefix="hypr-flt-")  # short: unix socket paths <= 107 bytes
    e = Env()
    e.rootfs = busybox_rootfs
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    e.d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    e.d.start()
    try:
        e.img = {}
        e.img["busybox"] = import_busybox(e.d, busybox_rootfs).id
        time.sleep(1.1)
        e.img["web"] = import_image(e, "flt/web:1", ["sh"], labels={"tier": "web"},
                                    exposed_ports=["80/tcp"])
        e.img["db"] = import_image(e, "flt/db:2", ["sh"], labels={"tier": "db"})
        # hypr makes no untagged image yet (a new import of a tag replaces the old
        # image), so the store gets one the way a later untagging would leave it.
        e.img["old"] = "d0" * 32
        with sqlite3.connect(e.d.db, timeout=10) as db:
            db.execute("INSERT INTO images (id, name, tag, created_at) VALUES (?, ?, NULL, ?)",
                       (e.img["old"], "flt/db", int(time.time())))
        e.vm = {}

        def create(name, image, labels, ports):
            cfg = {"image": image, "name": name, "labels": labels, "ports": ports}
            e.vm[name] = e.d.call("CreateVM", config=cfg, timeout=60).vm.id

        create("web-one", "flt/web:1", {"app": "web", "env": "prod"},
               [{"host_port": 18080, "guest_port": 80, "protocol": "tcp"}])
        create("web-two", "flt/web:1", {"app": "web"},
               [{"host_port": 18090, "guest_port": 90, "protocol": "udp"}])
        create("db-one", "flt/db:2", {"app": "db"}, [])
        e.vm["runner"] = ok(e, "run", "-d", "-n", "runner", "busybox", "sleep", "3600").stdout.strip()
        p = hypr(e, "run", "-n", "failer", "busybox", "sh", "-c", "exit 3")
        assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
        e.vm["failer"] = e.d.call("GetVM", id="failer").vm.id
        yield e
        for vm in e.d.call("ListVms", all=True).vms:
            e.d.call("DeleteVM", id=vm.id, force=True, timeout=60)
        wait_for(lambda: not e.d.call("ListVms", all=True).vms, 60, "the VMs to go")
        e.d.stop_clean()
    finally:
        if e.d.alive():
            e.d.kill()
        kill_hypervisors(run)
        shutil.rmtree(base, ignore_errors=True)


def ps(e, *filters, all=False):
    """The names `hypr ps [-a] -f F...` lists."""
    args = ["ps", "--format", "json"] + (["-a"] if all else [])
    for f in filters:
        args += ["-f", f]
    return sorted(n for vm in json.loads(ok(e, *args).stdout) for n in
                  ([vm["Names"]] if isinstance(vm["Names"], str) else vm["Names"]))


def images(e, *filters):
    """The image IDs `hypr images -f F...` lists."""
    args = ["images", "-q", "--no-trunc"]
    for f in filters:
        args += ["-f", f]
    return sorted(set(line.split(":")[-1] for line in ok(e, *args).stdout.split()))


def ids(e, *names):
    return sorted(e.img[n] for n in names)


def test_ps_id_name_label(env):
    e = env
    assert ps(e) == ["runner"]
    assert ps(e, "name=web") == []  # created VMs are not up: -a lists them
    assert ps(e, "name=web", all=True) == ["web-one", "web-two"]
    assert ps(e, "name=web", "name=db", all=True) == ["db-one", "web-one", "web-two"]
    assert ps(e, "id=" + e.vm["web-two"][:10], all=True) == ["web-two"]
    assert ps(e, "label=app=web", all=True) == ["web-one", "web-two"]
    assert ps(e, "label=app", all=True) == ["db-one", "web-one", "web-two"]
    assert ps(e, "label=app=web", "label=env=prod", all=True) == ["web-one"]  # labels: AND
    assert ps(e, "label=app=web", "name=two", all=True) == ["web-two"]


def test_ps_status_and_exited_list_stopped_vms(env):
    e = env
    assert ps(e, "status=created") == ["db-one", "web-one", "web-two"]
    assert ps(e, "status=running") == ["runner"]
    assert ps(e, "status=exited") == ["failer"]
    assert ps(e, "status=stopped") == ["failer"]  # hypr's own word
    assert ps(e, "status=exited", "status=running") == ["failer", "runner"]
    assert ps(e, "status=created", "name=web") == ["web-one", "web-two"]
    assert ps(e, "exited=3") == ["failer"]
    assert ps(e, "exited=0") == []
    assert ps(e, "status=paused") == []


def test_ps_ancestor_publish_expose(env):
    e = env
    assert ps(e, "ancestor=flt/web:1", all=True) == ["web-one", "web-two"]
    assert ps(e, "ancestor=busybox", all=True) == ["failer", "runner"]
    assert ps(e, "ancestor=" + e.img["db"][:12], all=True) == ["db-one"]
    assert ps(e, "ancestor=flt/web:1", "ancestor=flt/db:2", all=True) == [
        "db-one", "web-one", "web-two"]
    assert ps(e, "ancestor=nosuch:1", all=True) == []
    assert ps(e, "publish=80", all=True) == ["web-one"]
    assert ps(e, "publish=80/udp", all=True) == []
    assert ps(e, "publish=85-95/udp", all=True) == ["web-two"]
    assert ps(e, "expose=80", all=True) == ["web-one", "web-two"]  # the image exposes 80/tcp
    assert ps(e, "expose=90/udp", all=True) == ["web-two"]  # published counts as exposed


def test_ps_before_and_since(env):
    e = env
    assert ps(e, "before=runner") == ["db-one", "web-one", "web-two"]
    assert ps(e, "since=db-one") == ["failer", "runner"]
    assert ps(e, "since=web-one", "before=" + e.vm["runner"][:12]) == ["db-one", "web-two"]
    p = hypr(e, "ps", "-f", "before=nosuch")
    assert p.returncode == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert "nosuch" in p.stderr


@pytest.mark.parametrize("args, message", [
    (["ps", "-f", "foo=bar"], "invalid filter 'foo'"),
    (["ps", "-f", "status"], "bad format of filter (expected name=value)"),
    (["ps", "-f", "status=foo"], "invalid filter 'status=foo'"),
    (["ps", "-a", "-f", "name=x", "-f", "exited=abc"], "invalid filter 'exited=abc'"),
    (["ps", "-f", "health=healthy"], "invalid filter 'health=healthy'"),
    (["images", "-f", "dangling=maybe"], "invalid filter 'dangling=maybe'"),
    (["images", "-f", "status=running"], "invalid filter 'status'"),
    (["images", "-f", "reference"], "bad format of filter (expected name=value)"),
])
def test_bad_filters_are_refused(env, args, message):
    p = hypr(env, *args)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout == ""
    assert message in p.stderr, p.stderr


def test_images_filters(env):
    e = env
    tagged = ids(e, "busybox", "web", "db")
    assert images(e, "dangling=false") == tagged
    assert images(e) == sorted(set(images(e, "dangling=true")) | set(tagged))
    assert images(e, "reference=flt/*") == ids(e, "web", "db")
    assert images(e, "reference=*:1") == []  # '*' does not cross '/', as in Docker
    assert images(e, "reference=*/*:1") == ids(e, "web")
    assert images(e, "reference=*:latest") == ids(e, "busybox")
    assert images(e, "reference=busy*") == ids(e, "busybox")
    assert images(e, "reference=busy*", "reference=flt/web*") == ids(e, "busybox", "web")
    assert images(e, "reference=flt/*", "label=tier=db") == ids(e, "db")
    assert images(e, "label=tier") == ids(e, "web", "db")
    assert images(e, "since=flt/web:1", "dangling=false") == ids(e, "db")
    assert images(e, "before=flt/web:1", "dangling=false") == ids(e, "busybox")


def test_images_dangling(env):
    """An untagged image is dangling; every other one is not."""
    e = env
    assert images(e, "dangling=true") == [e.img["old"]]
    assert images(e, "dangling=true", "label=tier") == []
    assert e.img["old"] not in images(e, "dangling=false")


def test_rest_filters_query(env):
    """The REST gateway fills ListVmsRequest.filters from ?filters= (repeatable)."""
    e = env
    port = free_tcp_port()
    e.d.call("UpdateSettings", settings={"rest_addr": "127.0.0.1:%d" % port})
    base = "http://127.0.0.1:%d" % port

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())
        except urllib.error.URLError:
            return None, None

    try:
        wait_for(lambda: get("/v1/health")[0] is not None, 10, "the REST gateway")
        status, body = get("/v1/vms?filters=status%3Dcreated&filters=name%3Done")
        assert status == 200, body
        assert sorted(v["name"] for v in body["vms"]) == ["db-one", "web-one"]
        status, body = get("/v1/images?filters=reference%3Dflt%2F%2A")
        assert status == 200, body
        assert sorted(i["id"] for i in body["images"]) == ids(e, "web", "db")
        status, body = get("/v1/vms?filters=foo%3Dbar")
        assert status == 400 and "invalid filter 'foo'" in body["message"], (status, body)
    finally:
        e.d.call("UpdateSettings", settings={"rest_addr": ""})
