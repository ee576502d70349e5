"""Image pulls from real registries (Debian's docker-registry) into hyprd's
squashfs image store, through grpcio and the hypr CLI.

Fixture images are built here from busybox-static as OCI layouts and pushed
with skopeo. Faults (dropped connections, corrupt blobs, bad credentials,
missing manifests, unknown platforms, a full disk) and malicious layers must
each end in a clear error and leave no image behind: no row, no directory,
no temp dir.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

import hypr_pb2
from conftest import HYPR_BIN, wait_for
from registry import (AuthProxy, OciLayout, Registry, busybox_base, make_tls, sha256,
                      squashfs_cat, squashfs_listing, squashfs_stat, tar_bytes)

pytestmark = pytest.mark.skipif(
    not all(shutil.which(b) for b in ("docker-registry", "skopeo", "unsquashfs", "rdsquashfs")),
    reason="needs docker-registry, skopeo, squashfs-tools and squashfs-tools-ng (make deps)")

PHASE = hypr_pb2.PullProgress.Phase


# ---- fixture images ------------------------------------------------------------------

def multi_layer_image(lay):
    l0 = busybox_base([
        {"name": "a", "type": "dir"},
        {"name": "a/keep", "data": b"keep"},
        {"name": "a/gone", "data": b"gone"},
        {"name": "a/dir", "type": "dir"},
        {"name": "a/dir/x", "data": b"x"},
        {"name": "o", "type": "dir", "mode": 0o750},
        {"name": "o/old1", "data": b"1"},
        {"name": "o/sub", "type": "dir"},
        {"name": "o/sub/old2", "data": b"2"},
        {"name": "etc/motd", "data": b"v1\n"},
        {"name": "srv", "type": "dir", "uid": 33, "gid": 33, "mode": 0o700},
        {"name": "srv/x", "data": b"xattr", "xattrs": {"user.hypr": "yes"}},
        {"name": "run", "type": "dir"},
        {"name": "run/fifo", "type": "fifo"},
    ])
    l1 = [
        {"name": "a/.wh.gone", "data": b""},
        {"name": "a/.wh.dir", "data": b""},
        {"name": "o", "type": "dir", "mode": 0o750},
        {"name": "o/.wh..wh..opq", "data": b""},
        {"name": "o/new", "data": b"new"},
        {"name": "etc/motd", "data": b"v2\n"},
    ]
    l2 = [
        {"name": "usr", "type": "dir"},
        {"name": "usr/bin", "type": "dir"},
        {"name": "usr/bin/env", "type": "symlink", "target": "/bin/busybox"},
        {"name": "top", "data": b"plain tar layer\n", "uid": 1000, "gid": 1000, "mode": 0o600},
    ]
    return lay.add_image([(l0, "gzip"), (l1, "gzip"), (l2, "none")])


def hardlink_image(lay):
    entries = busybox_base([{"name": "h", "type": "dir"}, {"name": "h/orig", "data": b"shared\n"}])
    entries += [{"name": "h/l%03d" % i, "type": "hardlink", "target": "h/orig"} for i in range(100)]
    entries += [{"name": "bin/%s" % n, "type": "hardlink", "target": "bin/busybox"}
                for n in ("cat", "echo", "true")]
    return lay.add_image([(entries, "gzip")])


def user_image(lay):
    cfg = {"User": "1000:1000", "Env": ["PATH=/bin", "GREETING=hello world"],
           "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo $GREETING"], "WorkingDir": "/home/app",
           "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Volumes": {"/data": {}},
           "Labels": {"org.opencontainers.image.title": "user-test"}}
    entries = busybox_base([{"name": "home", "type": "dir"},
                            {"name": "home/app", "type": "dir", "uid": 1000, "gid": 1000}])
    hist = [{"created": "2024-01-02T03:04:05Z", "created_by": "ADD rootfs"},
            {"created": "2024-01-02T03:04:06Z", "created_by": "USER app", "empty_layer": True}]
    return lay.add_image([(entries, "gzip")], config=cfg, history=hist)


def zstd_image(lay):
    return lay.add_image([(busybox_base([{"name": "zstd-marker", "data": b"zstd!\n"}]), "zstd")])


def arch_images(lay):
    m_amd, _ = lay.add_image([(busybox_base([{"name": "arch", "data": b"amd64\n"}]), "gzip")],
                             arch="amd64")
    m_arm, _ = lay.add_image([(busybox_base([{"name": "arch", "data": b"arm64\n"}]), "gzip")],
                             arch="arm64")
    return lay.add_index([(m_amd, {"os": "linux", "architecture": "amd64"}),
                          (m_arm, {"os": "linux", "architecture": "arm64", "variant": "v8"})])


def malicious_layer(kind):
    return {
        "dotdot": [{"name": "../../../tmp/hypr-escape-dotdot", "data": b"escaped"}],
        "absolute": [{"name": "/tmp/hypr-escape-absolute", "data": b"inside"}],
        "symlink": [{"name": "evil", "type": "symlink", "target": "/"},
                    {"name": "evil/tmp/hypr-escape-symlink", "data": b"inside"}],
        "hardlink": [{"name": "pw", "type": "hardlink", "target": "/etc/passwd"}],
        "whiteout": [{"name": "a/.wh...", "data": b""}],
    }[kind]


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    base = tempfile.mkdtemp(prefix="hypr-reg-")
    e = Env()
    e.base = base
    e.reg = Registry(os.path.join(base, "reg")).start()
    e.auth = Registry(os.path.join(base, "auth"), htpasswd=("hypr", "s3cret")).start()
    lay = OciLayout(os.path.join(base, "oci"))
    e.images = {}
    for name, fn in (("multi", multi_layer_image), ("hardlinks", hardlink_image),
                     ("user", user_image), ("zstd", zstd_image)):
        desc, info = fn(lay)
        lay.tag(desc, name)
        lay.push(name, "%s/test/%s:1" % (e.reg.host, name))
        e.images[name] = (desc, info)
    idx = arch_images(lay)
    lay.tag(idx, "multiarch")
    lay.push("multiarch", "%s/test/multiarch:1" % e.reg.host, all_platforms=True)
    e.images["multiarch"] = (idx, None)
    lay.push("user", "%s/private/user:1" % e.auth.host, creds=("hypr", "s3cret"))
    for kind in ("dotdot", "absolute", "symlink", "hardlink", "whiteout"):
        layers = [(busybox_base([{"name": "a", "type": "dir"}, {"name": "a/f", "data": b"f"}]),
                   "gzip"), (malicious_layer(kind), "gzip")]
        desc, _ = lay.add_image(layers)
        lay.tag(desc, "evil-" + kind)
        lay.push("evil-" + kind, "%s/evil/%s:1" % (e.reg.host, kind))
    e.layout = lay
    yield e
    e.reg.stop()
    e.auth.stop()
    shutil.rmtree(base, ignore_errors=True)


# ---- helpers ---------------------------------------------------------------------------

def pull(d, ref, platform="", timeout=60):
    msgs = list(d.rpc("PullImage")(hypr_pb2.PullImageRequest(reference=ref, platform=platform),
                                   timeout=timeout))
    assert msgs and msgs[-1].phase == PHASE.DONE, msgs[-1:] or "no messages"
    return msgs


def pull_error(d, ref, platform="", timeout=60):
    with pytest.raises(grpc.RpcError) as ei:
        list(d.rpc("PullImage")(hypr_pb2.PullImageRequest(reference=ref, platform=platform),
                                timeout=timeout))
    return ei.value


def assert_no_image(d):
    images = d.call("ListImages", all=True).images
    assert list(images) == [], [i.name for i in images]
    img_dir = os.path.join(d.data_dir, "images")
    left = os.listdir(img_dir) if os.path.isdir(img_dir) else []
    assert left == [], "left in the image store: %s" % left
    blobs = os.path.join(d.data_dir, "cache", "blobs", "sha256")
    if os.path.isdir(blobs):
        assert not [f for f in os.listdir(blobs) if ".partial-" in f]


def logged_after(d, first, then):
    """hyprd's log once it holds `then` somewhere after `first` (else None)."""
    text = d.log_text()
    i = text.find(first)
    return text if i >= 0 and then in text[i + len(first):] else None


def cli(d, *args, check=True, timeout=120, env_extra=None, input=""):
    env = dict(os.environ, HYPR_HOST=d.socket)
    env.update(env_extra or {})
    p = subprocess.run([HYPR_BIN] + list(args), capture_output=True, text=True, timeout=timeout,
                       env=env, input=input)
    if check:
        assert p.returncode == 0, "hypr %s: %d\n%s%s" % (args, p.returncode, p.stdout, p.stderr)
    return p


def squashfs_of(img):
    return os.path.join(img.path, "rootfs.squashfs")


# ---- pulls ------------------------------------------------------------------------------

def test_pull_multi_layer_whiteouts_opaque(env, hyprd):
    desc, info = env.images["multi"]
    ref = "%s/test/multi:1" % env.reg.host
    msgs = pull(hyprd, ref)
    phases = [m.phase for m in msgs]
    for p in (PHASE.RESOLVING, PHASE.DOWNLOADING, PHASE.CONVERTING, PHASE.DONE):
        assert p in phases
    layer_msgs = [m for m in msgs if m.layers]
    assert {l.digest for l in layer_msgs[-1].layers} == {l["digest"] for l in info["layers"]}
    assert all(l.done_bytes == l.total_bytes for l in layer_msgs[-1].layers)
    done = msgs[-1]
    assert done.digest == desc["digest"]
    assert done.image_id == info["config"]["digest"].split(":")[1]

    img = hyprd.call("GetImage", id=ref).image
    assert img.name == "%s/test/multi" % env.reg.host and img.tag == "1"
    assert img.digest == desc["digest"] and img.id == done.image_id
    assert img.os == "linux" and img.architecture == "amd64"
    sq = squashfs_of(img)
    assert img.size_bytes == os.path.getsize(sq)
    ls = squashfs_listing(sq)
    for present in ("/a/keep", "/o/new", "/bin/busybox", "/etc/passwd", "/top", "/usr/bin/env",
                    "/dev/null", "/run/fifo", "/srv/x"):
        assert present in ls, present
    for absent in ("/a/gone", "/a/dir", "/a/dir/x", "/o/old1", "/o/sub", "/o/sub/old2",
                   "/a/.wh.gone", "/o/.wh..wh..opq"):
        assert absent not in ls, absent
    assert ls["/bin/sh"]["target"] == "busybox"
    assert ls["/usr/bin/env"]["target"] == "/bin/busybox"
    assert ls["/tmp"]["perm"] == "drwxrwxrwt"
    assert ls["/o"]["perm"] == "drwxr-x---"
    assert ls["/srv"]["owner"] == "33/33" and ls["/srv"]["perm"] == "drwx------"
    assert ls["/top"]["owner"] == "1000/1000" and ls["/top"]["perm"] == "-rw-------"
    assert ls["/dev/null"]["perm"].startswith("c")
    assert ls["/run/fifo"]["perm"].startswith("p")
    assert squashfs_cat(sq, "/etc/motd") == b"v2\n"
    with open("/bin/busybox", "rb") as f:
        assert squashfs_cat(sq, "/bin/busybox") == f.read()
    xattrs = subprocess.run(["rdsquashfs", "-x", "/srv/x", sq], capture_output=True,
                            text=True).stdout
    assert "user.hypr" in xattrs

    with open(os.path.join(img.path, "manifest.json")) as f:
        man = json.load(f)
    assert man["digest"] == desc["digest"]
    assert man["config_digest"] == info["config"]["digest"]
    assert man["layers"] == [l["digest"] for l in info["layers"]]
    assert man["size"] == img.size_bytes
    assert os.path.basename(img.path) == "127.0.0.1_%d_test_multi_1" % env.reg.port
    # layers are in the blob cache, verified
    for l in info["layers"]:
        assert os.path.exists(os.path.join(hyprd.data_dir, "cache", "blobs", "sha256",
                                           l["digest"].split(":")[1]))


def test_pull_twice_is_a_noop(env, hyprd):
    ref = "%s/test/zstd:1" % env.reg.host
    first = pull(hyprd, ref)
    img = hyprd.call("GetImage", id=ref).image
    mtime = os.stat(squashfs_of(img)).st_mtime_ns
    second = pull(hyprd, ref)
    assert second[-1].image_id == first[-1].image_id
    assert PHASE.DOWNLOADING not in [m.phase for m in second]
    assert PHASE.CONVERTING not in [m.phase for m in second]
    assert os.stat(squashfs_of(img)).st_mtime_ns == mtime
    assert len(hyprd.call("ListImages", all=True).images) == 1
    assert squashfs_cat(squashfs_of(img), "/zstd-marker") == b"zstd!\n"


def test_pull_hard_link_heavy_layer(env, hyprd):
    ref = "%s/test/hardlinks:1" % env.reg.host
    pull(hyprd, ref)
    sq = squashfs_of(hyprd.call("GetImage", id=ref).image)
    st = squashfs_stat(sq, "/h/l042")
    assert st["Hard link count"] == "101"
    assert st["Inode number"] == squashfs_stat(sq, "/h/orig")["Inode number"]
    assert squashfs_stat(sq, "/bin/cat")["Hard link count"] == "4"
    assert squashfs_cat(sq, "/h/l099") == b"shared\n"


def test_pull_multi_arch_index(env, hyprd):
    ref = "%s/test/multiarch:1" % env.reg.host
    pull(hyprd, ref, platform="linux/arm64")
    img = hyprd.call("GetImage", id=ref).image
    assert img.architecture == "arm64"
    assert img.digest == env.images["multiarch"][0]["digest"]  # the index digest
    assert squashfs_cat(squashfs_of(img), "/arch") == b"arm64\n"
    # the host platform (amd64 here) replaces it under the same tag
    pull(hyprd, ref)
    img2 = hyprd.call("GetImage", id=ref).image
    assert img2.architecture == "amd64" and img2.id != img.id
    assert squashfs_cat(squashfs_of(img2), "/arch") == b"amd64\n"
    assert len(hyprd.call("ListImages", all=True).images) == 1


def test_pull_unknown_platform(env, hyprd):
    err = pull_error(hyprd, "%s/test/multiarch:1" % env.reg.host, platform="linux/s390x")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "linux/s390x" in err.details() and "linux/arm64/v8" in err.details()
    assert_no_image(hyprd)


def test_image_config_fields_and_history(env, hyprd):
    ref = "%s/test/user:1" % env.reg.host
    pull(hyprd, ref)
    img = hyprd.call("GetImage", id=ref).image
    assert img.user == "1000:1000"
    assert list(img.entrypoint) == ["/bin/sh", "-c"]
    assert list(img.cmd) == ["echo $GREETING"]
    assert list(img.env) == ["PATH=/bin", "GREETING=hello world"]
    assert img.workdir == "/home/app"
    assert sorted(img.exposed_ports) == ["53/udp", "8080/tcp"]
    assert list(img.volumes) == ["/data"]
    assert dict(img.labels) == {"org.opencontainers.image.title": "user-test"}
    assert list(img.repo_tags) == [ref]
    assert img.created_at == 1704164645  # the config's "created" (2024-01-02T03:04:05Z), not the pull
    listed = hyprd.call("ListImages").images
    assert len(listed) == 1 and listed[0].user == "1000:1000"
    hist = hyprd.call("GetImageHistory", id=ref).history
    assert [h.created_by for h in hist] == ["USER app", "ADD rootfs"]
    assert hist[0].empty_layer and not hist[1].empty_layer and hist[1].size_bytes > 0
    inspect = json.loads(cli(hyprd, "image", "inspect", ref).stdout)
    assert inspect[0]["Config"]["User"] == "1000:1000"
    assert inspect[0]["Config"]["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert inspect[0]["RepoTags"] == [ref]
    assert inspect[0]["Created"].startswith("2024-01-02T03:04:05"), inspect[0]["Created"]


def test_cli_pull_images_rmi(env, hyprd):
    ref = "%s/test/zstd:1" % env.reg.host
    p = cli(hyprd, "pull", ref)
    assert "Status: Downloaded newer image for %s" % ref in p.stdout
    assert "Digest: sha256:" in p.stdout
    p = cli(hyprd, "pull", ref)
    assert "Image is up to date" in p.stdout
    out = cli(hyprd, "images").stdout
    assert "test/zstd" in out and " 1 " in out
    img = hyprd.call("GetImage", id=ref).image
    assert os.path.isdir(img.path)
    p = cli(hyprd, "rmi", ref)
    assert "Deleted: sha256:%s" % img.id in p.stdout
    assert not os.path.exists(img.path)
    assert_no_image(hyprd)
    p = cli(hyprd, "rmi", ref, check=False)
    assert p.returncode != 0 and "no such image" in p.stderr


def test_delete_refused_while_a_vm_uses_it(env, hyprd):
    import sqlite3
    ref = "%s/test/zstd:1" % env.reg.host
    pull(hyprd, ref)
    img = hyprd.call("GetImage", id=ref).image
    db = sqlite3.connect(hyprd.db, timeout=10)
    db.execute("INSERT INTO vms (id, name, image, image_id, status) VALUES (?, ?, ?, ?, ?)",
               ("ab" * 32, "user-of-image", ref, img.id, "stopped"))
    db.commit()
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("DeleteImage", id=ref)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "user-of-image" in ei.value.details()
    assert os.path.isdir(img.path)
    hyprd.call("DeleteImage", id=ref, force=True)
    assert not os.path.exists(img.path)
    db.execute("DELETE FROM vms")
    db.commit()
    db.close()


def test_events_published(env, hyprd):
    ref = "%s/test/zstd:1" % env.reg.host
    before = hyprd.health().event_subscribers
    stream = hyprd.rpc("SubscribeEvents")(hypr_pb2.SubscribeEventsRequest(), timeout=60)
    got = []

    def reader():
        try:
            for ev in stream:
                got.append(ev.type)
                if ev.type == "image.deleted":
                    return
        except grpc.RpcError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    # Events are not replayed: the pull must come after hyprd registered the subscriber.
    wait_for(lambda: hyprd.health().event_subscribers > before, 10, "the event subscription")
    pull(hyprd, ref)
    hyprd.call("DeleteImage", id=ref)
    t.join(10)
    stream.cancel()
    assert "image.pulled" in got and "image.deleted" in got


# ---- authentication -----------------------------------------------------------------------

def write_docker_config(path, host, user, password):
    os.makedirs(path, exist_ok=True)
    auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"auths": {host: {"auth": auth}}}, f)


def test_basic_auth(env, daemons, short_tmp):
    ref = "%s/private/user:1" % env.auth.host
    good = str(short_tmp / "good")
    write_docker_config(good, env.auth.host, "hypr", "s3cret")
    bad = str(short_tmp / "bad")
    write_docker_config(bad, "http://%s" % env.auth.host, "hypr", "wrong")
    none = str(short_tmp / "none")
    os.makedirs(none)

    d = daemons.start(env={"DOCKER_CONFIG": none})
    err = pull_error(d, ref)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "requires credentials" in err.details()
    assert_no_image(d)
    d.stop_clean()

    d = daemons.start(env={"DOCKER_CONFIG": bad})
    err = pull_error(d, ref)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()
    assert "denied" in err.details() or "credentials" in err.details()
    assert_no_image(d)
    d.stop_clean()

    d = daemons.start(env={"DOCKER_CONFIG": good})
    pull(d, ref)
    assert d.call("GetImage", id=ref).image.user == "1000:1000"


def test_bearer_token_flow(env, daemons, short_tmp):
    proxy = AuthProxy(env.reg.host, bearer=True, creds=("tokenuser", "tokenpass")).start()
    try:
        ref = "%s/test/zstd:1" % proxy.host
        cfg = str(short_tmp / "cfg")
        write_docker_config(cfg, proxy.host, "tokenuser", "tokenpass")
        d = daemons.start(env={"DOCKER_CONFIG": cfg})
        pull(d, ref)
        assert proxy.token_requests >= 1
        assert squashfs_cat(squashfs_of(d.call("GetImage", id=ref).image),
                            "/zstd-marker") == b"zstd!\n"
        d.stop_clean()
        badcfg = str(short_tmp / "badcfg")
        write_docker_config(badcfg, proxy.host, "tokenuser", "nope")
        d = daemons.start(env={"DOCKER_CONFIG": badcfg})
        err = pull_error(d, ref)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authentication failed" in err.details()
        assert_no_image(d)
    finally:
        proxy.stop()


def read_config(path):
    with open(os.path.join(path, "config.json")) as f:
        return json.load(f)


def test_login_pull_logout(env, daemons, short_tmp):
    """hypr login checks the credentials against the registry, then stores them where
    hyprd reads them; hypr logout removes them again; other config keys are kept."""
    cfg = str(short_tmp / "docker")
    os.makedirs(cfg)
    other = {"auths": {"other.example:5000": {"auth": "eDp5"}}, "psFormat": "table"}
    with open(os.path.join(cfg, "config.json"), "w") as f:
        json.dump(other, f)
    d = daemons.start(env={"DOCKER_CONFIG": cfg})
    host, ref = env.auth.host, "%s/private/user:1" % env.auth.host
    denv = {"DOCKER_CONFIG": cfg}

    p = cli(d, "login", "-u", "hypr", "--password-stdin", host, check=False, env_extra=denv,
            input="wrong\n")
    assert p.returncode == 1 and "unauthorized" in p.stderr.lower(), p.stderr
    assert "Login Succeeded" not in p.stdout
    assert read_config(cfg) == other
    p = cli(d, "login", "-u", "hypr", host, check=False, env_extra=denv)
    assert p.returncode == 1 and "non TTY" in p.stderr
    assert read_config(cfg) == other

    p = cli(d, "login", "-u", "hypr", "--password-stdin", host, env_extra=denv,
            input="s3cret\n")
    assert "Login Succeeded" in p.stdout
    conf = read_config(cfg)
    assert conf["psFormat"] == "table" and "other.example:5000" in conf["auths"]
    assert base64.b64decode(conf["auths"][host]["auth"]) == b"hypr:s3cret"
    assert os.stat(os.path.join(cfg, "config.json")).st_mode & 0o777 == 0o600
    pull(d, ref)
    assert d.call("GetImage", id=ref).image.user == "1000:1000"

    p = cli(d, "logout", host, env_extra=denv)
    assert "Removing login credentials for %s" % host in p.stdout
    conf = read_config(cfg)
    assert host not in conf["auths"] and conf["psFormat"] == "table"
    assert "other.example:5000" in conf["auths"]
    assert "Not logged in to %s" % host in cli(d, "logout", host, env_extra=denv).stdout
    cli(d, "rmi", ref)
    err = pull_error(d, ref)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "requires credentials: run hypr login" in err.details(), err.details()


def test_login_wrong_password_leaves_config_untouched(env, daemons, short_tmp):
    """hypr login with a wrong password: the daemon's check fails, so the CLI exits 1
    with one clear error line and writes nothing (an existing config.json keeps its
    bytes, a missing one is not created); the password is nowhere in the output."""
    cfg = str(short_tmp / "docker")
    os.makedirs(cfg)
    path = os.path.join(cfg, "config.json")
    text = '{"auths": {"%s": {"auth": "eDp5"}}, "psFormat": "table"}' % env.auth.host
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    before = os.stat(path)
    d = daemons.start()
    denv = {"DOCKER_CONFIG": cfg}
    p = cli(d, "login", "-u", "hypr", "--password-stdin", env.auth.host, check=False,
            env_extra=denv, input="wrongpass\n")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    assert "unauthorized" in lines[0] and "incorrect username or password" in lines[0], p.stderr
    assert p.stdout == "" and "wrongpass" not in p.stderr
    with open(path) as f:
        assert f.read() == text
    after = os.stat(path)
    assert (after.st_mtime_ns, after.st_ino, after.st_mode) == (
        before.st_mtime_ns, before.st_ino, before.st_mode)
    assert os.listdir(cfg) == ["config.json"]

    empty = str(short_tmp / "empty")
    p = cli(d, "login", "-u", "hypr", "-p", "wrongpass", env.auth.host, check=False,
            env_extra={"DOCKER_CONFIG": empty})
    assert p.returncode == 1 and "unauthorized" in p.stderr, p.stderr
    assert not os.path.exists(empty)


def test_login_bearer_token_registry(env, hyprd, short_tmp):
    proxy = AuthProxy(env.reg.host, bearer=True, creds=("tokenuser", "tokenpass")).start()
    try:
        cfg = str(short_tmp / "docker")
        denv = {"DOCKER_CONFIG": cfg}
        p = cli(hyprd, "login", "-u", "tokenuser", "-p", "nope", proxy.host, check=False,
                env_extra=denv)
        assert p.returncode == 1 and "unauthorized" in p.stderr.lower(), p.stderr
        assert not os.path.exists(os.path.join(cfg, "config.json"))
        p = cli(hyprd, "login", "-u", "tokenuser", "-p", "tokenpass", proxy.host,
                env_extra=denv)
        assert "Login Succeeded" in p.stdout
        assert "--password-stdin" in p.stderr  # the warning about -p
        auth = read_config(cfg)["auths"][proxy.host]["auth"]
        assert base64.b64decode(auth) == b"tokenuser:tokenpass"
        assert proxy.token_requests >= 1
    finally:
        proxy.stop()


def test_anonymous_bearer_token(env, hyprd):
    proxy = AuthProxy(env.reg.host, bearer=True).start()
    try:
        pull(hyprd, "%s/test/zstd:1" % proxy.host)
        assert proxy.token_requests >= 1
    finally:
        proxy.stop()


# ---- faults -----------------------------------------------------------------------------------

def test_manifest_not_found(env, hyprd):
    err = pull_error(hyprd, "%s/test/multi:does-not-exist" % env.reg.host)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "does-not-exist" in err.details()
    err = pull_error(hyprd, "%s/no/such-repo:1" % env.reg.host)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert_no_image(hyprd)


def test_invalid_reference(hyprd):
    err = pull_error(hyprd, "Not/A/Valid:ref:")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid reference" in err.details()


def test_registry_unreachable(hyprd):
    from registry import free_port
    err = pull_error(hyprd, "127.0.0.1:%d/x/y:1" % free_port())
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "unreachable" in err.details()
    assert_no_image(hyprd)


def test_connection_dropped_mid_blob_resumes(env, hyprd):
    proxy = AuthProxy(env.reg.host, bearer=False, cut_blobs_after=200_000, cut_count=1).start()
    try:
        ref = "%s/test/multi:1" % proxy.host
        pull(hyprd, ref)
        assert proxy.ranges and proxy.ranges[0].startswith("bytes=200000-"), proxy.ranges
        with open("/bin/busybox", "rb") as f:
            assert squashfs_cat(squashfs_of(hyprd.call("GetImage", id=ref).image),
                                "/bin/busybox") == f.read()
    finally:
        proxy.stop()


def test_registry_stopped_mid_blob(env, hyprd):
    proxy = AuthProxy(env.reg.host, bearer=False, cut_blobs_after=100_000).start()
    try:
        t0 = time.monotonic()
        err = pull_error(hyprd, "%s/test/multi:1" % proxy.host)
        assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
        assert "download failed after 5 attempts" in err.details()
        assert time.monotonic() - t0 < 30
        assert_no_image(hyprd)
    finally:
        proxy.stop()


def test_blob_digest_mismatch(env, hyprd, short_tmp):
    # A registry of its own whose stored layer bytes are then corrupted in place.
    reg = Registry(str(short_tmp / "corrupt")).start()
    try:
        desc, info = env.images["zstd"]
        env.layout.push("zstd", "%s/test/corrupt:1" % reg.host)
        layer = info["layers"][0]["digest"]
        path = reg.blob_path(layer)
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0xFF]))
        err = pull_error(hyprd, "%s/test/corrupt:1" % reg.host)
        assert err.code() == grpc.StatusCode.DATA_LOSS, err.details()
        assert "digest mismatch" in err.details() and layer in err.details()
        assert_no_image(hyprd)
        assert not os.path.exists(os.path.join(hyprd.data_dir, "cache", "blobs", "sha256",
                                               layer.split(":")[1]))
    finally:
        reg.stop()


@pytest.mark.parametrize("how", ["gzip", "zstd", "none"])
def test_diff_id_mismatch(env, hyprd, how):
    """A layer whose uncompressed content is not what the config's diff_ids say (the
    blob digests all match): DATA_LOSS naming the layer and both digests; nothing
    stored. A config with a diff_id too few is refused as well."""
    good = busybox_base([{"name": "etc/motd", "data": b"hello\n"}])
    other = tar_bytes([{"name": "x", "data": b"not the layer"}])
    layers = [(good, "gzip"), ([{"name": "data/f", "data": b"payload" * 1000}], how)]
    desc, info = env.layout.add_image(layers)
    lie = list(info["cfg"]["rootfs"]["diff_ids"])
    lie[1] = sha256(other)
    bad, _ = env.layout.add_image(layers, diff_ids=lie)
    env.layout.tag(bad, "baddiff-" + how)
    env.layout.push("baddiff-" + how, "%s/test/baddiff-%s:1" % (env.reg.host, how))
    err = pull_error(hyprd, "%s/test/baddiff-%s:1" % (env.reg.host, how))
    assert err.code() == grpc.StatusCode.DATA_LOSS, err.details()
    layer = info["layers"][1]["digest"]
    assert layer[:19] in err.details() and lie[1] in err.details(), err.details()
    assert "diff_id" in err.details(), err.details()
    assert_no_image(hyprd)
    short, _ = env.layout.add_image(layers, diff_ids=lie[:1])
    env.layout.tag(short, "shortdiff-" + how)
    env.layout.push("shortdiff-" + how, "%s/test/shortdiff-%s:1" % (env.reg.host, how))
    err = pull_error(hyprd, "%s/test/shortdiff-%s:1" % (env.reg.host, how))
    assert "1 diff_ids for 2 layers" in err.details(), err.details()
    assert_no_image(hyprd)


def test_tls_registry_through_certs_d(env, hyprd, short_tmp):
    """A registry serving HTTPS with a private CA: Docker's certs.d layout
    (<registry_certs_dir>/<host:port>/ca.crt) makes hypr use TLS with that CA, even on
    loopback; without it the pull fails with a clear error and stores nothing; a wrong
    CA is a certificate error."""
    cert, key, ca = make_tls(str(short_tmp / "tls"))
    reg = Registry(str(short_tmp / "tlsreg"), tls=(cert, key, ca)).start()
    try:
        env.layout.push("zstd", "%s/test/tls:1" % reg.host)
        ref = "%s/test/tls:1" % reg.host
        # No CA configured: a loopback registry is spoken to in plain HTTP, which fails.
        err = pull_error(hyprd, ref)
        assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN,
                              grpc.StatusCode.FAILED_PRECONDITION), err
        assert reg.host in err.details() and "ca.crt" in err.details(), err.details()
        assert_no_image(hyprd)
        # A CA that did not sign the server's certificate.
        other = make_tls(str(short_tmp / "othertls"))[2]
        certs = short_tmp / "certs.d"
        (certs / reg.host).mkdir(parents=True)
        shutil.copy(other, certs / reg.host / "ca.crt")
        hyprd.call("UpdateSettings", settings={"registry_certs_dir": str(certs)})
        err = pull_error(hyprd, ref)
        assert "certificate" in err.details().lower(), err.details()
        assert_no_image(hyprd)
        # The right CA: the pull works over HTTPS.
        shutil.copy(ca, certs / reg.host / "ca.crt")
        list(hyprd.rpc("PullImage")(hypr_pb2.PullImageRequest(reference=ref), timeout=120))
        names = [i.name for i in hyprd.call("ListImages").images]
        assert any("test/tls" in n for n in names), names
    finally:
        reg.stop()


def test_disk_full(env, daemons, short_tmp):
    data = str(short_tmp / "tiny")
    os.makedirs(data)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1700k", "tmpfs", data], check=True)
    try:
        d = daemons.start(data_dir=data)
        err = pull_error(d, "%s/test/multi:1" % env.reg.host)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
        assert "No space left on device" in err.details()
        assert_no_image(d)
        d.stop_clean()
    finally:
        subprocess.run(["umount", "-l", data])


def test_cancel_mid_download_leaves_nothing(env, hyprd):
    proxy = AuthProxy(env.reg.host, bearer=False, chunk_delay=0.05).start()
    try:
        call = hyprd.rpc("PullImage")(
            hypr_pb2.PullImageRequest(reference="%s/test/multi:1" % proxy.host), timeout=60)
        for m in call:
            if m.phase == PHASE.DOWNLOADING and any(l.done_bytes for l in m.layers):
                break
        call.cancel()
        wait_for(lambda: hyprd.health().active_calls == 1, 10, "the pull call to end")
        # The call ends at once; the pull's worker stops when it sees the cancel:
        # its downloads end (hyprd logs their timing, after the cancel) and it
        # returns before staging anything. Only then is absence proof.
        log = wait_for(lambda: logged_after(hyprd, "cancelled by the client", "pull: blobs in"),
                       10, "the cancelled pull's downloads to stop")
        assert "squashfs written" not in log
        assert_no_image(hyprd)
    finally:
        proxy.stop()


def test_leftover_temp_dirs_cleaned_at_start(daemons):
    d = daemons.make()
    os.makedirs(os.path.join(d.data_dir, "images", ".tmp-abc123", "x"))
    blobs = os.path.join(d.data_dir, "cache", "blobs", "sha256")
    os.makedirs(blobs)
    open(os.path.join(blobs, "f" * 64 + ".partial-1-0x1"), "w").close()
    d.start()
    assert os.listdir(os.path.join(d.data_dir, "images")) == []
    assert os.listdir(blobs) == []


# ---- malicious layers -------------------------------------------------------------------------

def test_malicious_dotdot_rejected(env, hyprd):
    err = pull_error(hyprd, "%s/evil/dotdot:1" % env.reg.host)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "escapes the image root" in err.details()
    assert not os.path.exists("/tmp/hypr-escape-dotdot")
    assert_no_image(hyprd)


def test_malicious_absolute_path_contained(env, hyprd):
    ref = "%s/evil/absolute:1" % env.reg.host
    pull(hyprd, ref)
    assert not os.path.exists("/tmp/hypr-escape-absolute")
    ls = squashfs_listing(squashfs_of(hyprd.call("GetImage", id=ref).image))
    assert "/tmp/hypr-escape-absolute" in ls


def test_malicious_symlink_to_root_contained(env, hyprd):
    ref = "%s/evil/symlink:1" % env.reg.host
    pull(hyprd, ref)
    assert not os.path.exists("/tmp/hypr-escape-symlink")
    ls = squashfs_listing(squashfs_of(hyprd.call("GetImage", id=ref).image))
    assert ls["/evil"]["target"] == "/"
    assert "/tmp/hypr-escape-symlink" in ls  # written inside the image's own /tmp


def test_malicious_hardlink_to_etc_passwd(env, hyprd):
    # The image's /etc/passwd exists (busybox base): the link is to that file, inside.
    ref = "%s/evil/hardlink:1" % env.reg.host
    pull(hyprd, ref)
    sq = squashfs_of(hyprd.call("GetImage", id=ref).image)
    assert squashfs_cat(sq, "/pw") == squashfs_cat(sq, "/etc/passwd")
    assert squashfs_stat(sq, "/pw")["Hard link count"] == "2"
    with open("/etc/passwd", "rb") as f:
        assert squashfs_cat(sq, "/pw") != f.read()


def test_malicious_hardlink_outside_rejected(env, hyprd):
    lay = env.layout
    desc, _ = lay.add_image([([{"name": "pw", "type": "hardlink", "target": "/etc/shadow"}],
                              "gzip")])
    lay.tag(desc, "evil-hardlink-missing")
    lay.push("evil-hardlink-missing", "%s/evil/hardlink-missing:1" % env.reg.host)
    err = pull_error(hyprd, "%s/evil/hardlink-missing:1" % env.reg.host)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not exist in the image" in err.details()
    assert_no_image(hyprd)


def test_malicious_whiteout_of_dotdot_rejected(env, hyprd):
    err = pull_error(hyprd, "%s/evil/whiteout:1" % env.reg.host)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'whiteout of ".."' in err.details()
    assert_no_image(hyprd)


# ---- import -------------------------------------------------------------------------------------

def test_import_tar_and_directory(env, hyprd, short_tmp):
    from registry import tar_bytes, compress
    tarball = str(short_tmp / "rootfs.tar.gz")
    with open(tarball, "wb") as f:
        f.write(compress(tar_bytes(busybox_base([{"name": "imported", "data": b"yes\n"}])),
                         "gzip"))
    resp = hyprd.call("ImportImage", source=tarball, reference="imported:v1",
                      entrypoint=["/bin/sh"], env=["A=1"], user="1000", exposed_ports=["80/tcp"],
                      labels={"k": "v"}, timeout=60)
    img = resp.image
    assert img.name == "docker.io/library/imported" and img.tag == "v1"
    assert list(img.entrypoint) == ["/bin/sh"] and img.user == "1000"
    assert dict(img.labels) == {"k": "v"}
    assert squashfs_cat(squashfs_of(img), "/imported") == b"yes\n"
    assert hyprd.call("GetImage", id="imported:v1").image.id == img.id

    root = short_tmp / "rootdir"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("dir-import\n")
    os.link(root / "etc" / "hostname", root / "etc" / "hn2")
    os.symlink("etc/hostname", root / "hn")
    img2 = hyprd.call("ImportImage", source=str(root), reference="fromdir", timeout=60).image
    sq = squashfs_of(img2)
    assert squashfs_cat(sq, "/etc/hostname") == b"dir-import\n"
    assert squashfs_stat(sq, "/etc/hn2")["Hard link count"] == "2"
    assert squashfs_listing(sq)["/hn"]["target"] == "etc/hostname"
    cli(hyprd, "image", "import", tarball, "cli-imported:2")
    assert "cli-imported" in cli(hyprd, "images").stdout
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("ImportImage", source="/nonexistent/x.tar", reference="x", timeout=30)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND


# ---- CreateVM / RunVM pull a missing image ------------------------------------------------

RUN_PHASE = hypr_pb2.RunVMEvent.Phase


def test_create_vm_pulls_missing_image(env, hyprd):
    ref = "%s/test/zstd:1" % env.reg.host
    vm = hyprd.call("CreateVM", config=hypr_pb2.VMConfig(image=ref, name="pulled"),
                    timeout=60).vm
    img = hyprd.call("GetImage", id=ref).image
    assert vm.image_id == img.id and vm.name == "pulled"
    assert vm.status == hypr_pb2.VM_STATUS_CREATED
    assert squashfs_cat(squashfs_of(img), "/zstd-marker") == b"zstd!\n"
    assert [v.name for v in hyprd.call("ListVms", all=True).vms] == ["pulled"]
    # a second CreateVM finds the image in the store: no second pull
    vm2 = hyprd.call("CreateVM", config=hypr_pb2.VMConfig(image=ref, name="again"), timeout=30).vm
    assert vm2.image_id == img.id
    for name in ("pulled", "again"):
        hyprd.call("DeleteVM", id=name)
    assert list(hyprd.call("ListVms", all=True).vms) == []


def test_create_and_run_vm_pull_failure_creates_nothing(env, hyprd):
    ref = "%s/test/multi:no-such-tag" % env.reg.host
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("CreateVM", config=hypr_pb2.VMConfig(image=ref), timeout=60)
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-tag" in ei.value.details()
    with pytest.raises(grpc.RpcError) as ei:
        list(hyprd.rpc("RunVM")(hypr_pb2.RunVMRequest(config=hypr_pb2.VMConfig(image=ref)),
                                timeout=60))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-tag" in ei.value.details()
    assert list(hyprd.call("ListVms", all=True).vms) == []
    assert_no_image(hyprd)
    # an invalid config fails before anything is pulled
    with pytest.raises(grpc.RpcError) as ei:
        hyprd.call("CreateVM", config=hypr_pb2.VMConfig(image="%s/test/zstd:1" % env.reg.host,
                                                         name="bad name"), timeout=30)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_no_image(hyprd)


def test_run_vm_streams_pull_then_boots(env, hyprd):
    """RunVM of an image not in the store: PULLING events with layer progress, then the
    VM is created, boots and runs; `hypr run` prints the pull and the workload's output."""
    ref = "%s/test/hardlinks:1" % env.reg.host
    cfg = hypr_pb2.VMConfig(image=ref, cmd=["echo", "hi"], auto_remove=True)
    events = list(hyprd.rpc("RunVM")(hypr_pb2.RunVMRequest(config=cfg), timeout=180))
    phases = [e.phase for e in events]
    # PULLING (one or more), then CREATED, BOOTING, RUNNING, each once and in order
    n_pull = phases.count(RUN_PHASE.PULLING)
    assert n_pull >= 1 and phases[:n_pull] == [RUN_PHASE.PULLING] * n_pull, phases
    assert phases[n_pull:] == [RUN_PHASE.CREATED, RUN_PHASE.BOOTING, RUN_PHASE.RUNNING], phases
    booting = events[n_pull + 1].vm
    assert booting.id == events[n_pull].vm.id and booting.status == hypr_pb2.VM_STATUS_BOOTING
    assert events[-1].vm.status == hypr_pb2.VM_STATUS_RUNNING
    pulling = [e.pull for e in events if e.phase == RUN_PHASE.PULLING]
    assert any(p.layers and p.layers[0].total_bytes > 0 for p in pulling)
    img = hyprd.call("GetImage", id=ref).image
    assert pulling[-1].phase == PHASE.DONE and pulling[-1].image_id == img.id
    created = [e for e in events if e.phase == RUN_PHASE.CREATED]
    assert created and created[0].vm.image_id == img.id
    wait_for(lambda: list(hyprd.call("ListVms", all=True).vms) == [], 120, "the --rm VM to go")

    hyprd.call("DeleteImage", id=ref)
    p = cli(hyprd, "run", "--rm", ref, "echo", "hi", timeout=180)
    assert p.stdout == "hi\n", p.stdout + p.stderr
    assert "Unable to find image '%s' locally" % ref in p.stderr
    assert hyprd.call("GetImage", id=ref).image.id
