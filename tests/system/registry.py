"""Registry fixtures for the image system tests (and bench/pull.py).

* Registry: Debian's `docker-registry` on 127.0.0.1 with a free port, a temp
  storage dir and a config.yml written here; optionally behind htpasswd basic auth.
* AuthProxy: a small Python HTTP proxy in front of a registry that implements
  the bearer-token flow (it answers 401 with a Bearer challenge and runs the
  token endpoint itself) and can cut blob downloads mid-way.
* OciLayout: builds OCI image layouts from Python (tar layers, gzip/zstd,
  configs, manifests, indexes); push() copies them with skopeo.
"""

import base64
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import socket
import ssl
import socketserver
import subprocess
import tarfile
import threading
import time
import urllib.request

BUSYBOX = "/bin/busybox"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=15.0, ok=(200, 401), cafile=None):
    deadline = time.monotonic() + timeout
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1, context=ctx) as r:
                if r.status in ok:
                    return
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("%s not ready after %.0fs" % (url, timeout))
        time.sleep(0.05)


class Registry:
    """docker-registry serving a temp dir on 127.0.0.1:<free port>."""

    def __init__(self, base, htpasswd=None, tls=None):
        """tls: (certificate, key, ca) files: the registry serves HTTPS."""
        self.base = str(base)
        os.makedirs(self.base, exist_ok=True)
        self.storage = os.path.join(self.base, "storage")
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.user = self.password = None
        cfg = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
               "    rootdirectory: %s" % self.storage, "  delete:", "    enabled: true",
               "http:", "  addr: 127.0.0.1:%d" % self.port]
        self.tls = tls
        if tls:
            cfg += ["  tls:", "    certificate: %s" % tls[0], "    key: %s" % tls[1]]
        if htpasswd:
            self.user, self.password = htpasswd
            hp = os.path.join(self.base, "htpasswd")
            line = subprocess.run(["htpasswd", "-Bbn", self.user, self.password], check=True,
                                  capture_output=True, text=True).stdout.strip()
            with open(hp, "w") as f:
                f.write(line + "\n")
            cfg += ["auth:", "  htpasswd:", "    realm: hypr-test", "    path: %s" % hp]
        self.config = os.path.join(self.base, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(os.path.join(self.base, "registry.log"), "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        if self.tls:
            wait_http("https://%s/v2/" % self.host, cafile=self.tls[2])
        else:
            wait_http("http://%s/v2/" % self.host)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.log:
            self.log.close()
            self.log = None

    def blob_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256",
                            hexd[:2], hexd, "data")

    def creds_args(self, flag="--dest-creds"):
        return [flag, "%s:%s" % (self.user, self.password)] if self.user else []


# ---- a bearer-token / fault-injecting proxy -----------------------------------------

class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_GET(self):
        self.server.owner.handle(self, "GET")

    def do_HEAD(self):
        self.server.owner.handle(self, "HEAD")


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class AuthProxy:
    """Forwards to a registry. With `bearer`, requests need `Authorization: Bearer
    <token>`; /token hands one out (checking basic credentials when `creds` is
    set). With cut_blobs_after=N, every blob response is cut after N bytes."""

    def __init__(self, upstream, bearer=True, creds=None, cut_blobs_after=None, cut_count=None,
                 chunk_delay=0.0):
        self.upstream = upstream
        self.bearer = bearer
        self.creds = creds
        self.cut_blobs_after = cut_blobs_after
        self.cut_count = cut_count  # cut only the first N blob responses (None = all)
        self.chunk_delay = chunk_delay  # seconds between 16 KiB chunks of a blob
        self.ranges = []
        self.token = "tok-" + hashlib.sha256(os.urandom(16)).hexdigest()[:24]
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.token_requests = 0
        self.blob_requests = 0
        self.srv = _Server(("127.0.0.1", self.port), _ProxyHandler)
        self.srv.owner = self
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()

    def _reply(self, h, code, body=b"", headers=()):
        h.send_response(code)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body:
            h.wfile.write(body)

    def handle(self, h, method):
        if h.path.startswith("/token"):
            self.token_requests += 1
            if self.creds:
                want = "Basic " + base64.b64encode(("%s:%s" % self.creds).encode()).decode()
                if h.headers.get("Authorization") != want:
                    return self._reply(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                       [("Content-Type", "application/json")])
            body = json.dumps({"token": self.token, "expires_in": 300}).encode()
            return self._reply(h, 200, body, [("Content-Type", "application/json")])
        if self.bearer and h.headers.get("Authorization") != "Bearer " + self.token:
            chal = ('Bearer realm="http://%s/token",service="hypr-test"' % self.host)
            if h.path.startswith("/v2/") and h.path != "/v2/":
                repo = h.path[4:].rsplit("/", 2)[0]
                chal += ',scope="repository:%s:pull"' % repo
            return self._reply(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                               [("WWW-Authenticate", chal), ("Content-Type", "application/json")])
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        fwd = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range")}
        conn.request(method, h.path, headers=fwd)
        r = conn.getresponse()
        is_blob = "/blobs/sha256:" in h.path and method == "GET"
        cut = self.cut_blobs_after
        if is_blob:
            self.blob_requests += 1
            if h.headers.get("Range"):
                self.ranges.append(h.headers.get("Range"))
            if self.cut_count is not None and self.cut_count <= 0:
                cut = None
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("connection", "transfer-encoding", "keep-alive"):
                continue
            h.send_header(k, v)
        h.end_headers()
        remaining = cut if (is_blob and r.status in (200, 206)) else None
        while True:
            chunk = r.read(16 * 1024 if self.chunk_delay else 64 * 1024)
            if self.chunk_delay and is_blob:
                time.sleep(self.chunk_delay)
            if not chunk:
                break
            if remaining is not None:
                if len(chunk) >= remaining:
                    if self.cut_count is not None:
                        self.cut_count -= 1
                    h.wfile.write(chunk[:remaining])
                    h.wfile.flush()
                    h.close_connection = True
                    try:
                        h.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    conn.close()
                    return
                remaining -= len(chunk)
            h.wfile.write(chunk)
        conn.close()


# ---- OCI layouts built from Python -------------------------------------------------------

def make_tls(dirpath, ip="127.0.0.1"):
    """A throwaway CA and a server certificate for ip, signed by it (openssl CLI):
    returns (cert, key, ca_cert) paths."""
    os.makedirs(dirpath, exist_ok=True)
    p = lambda n: os.path.join(dirpath, n)  # noqa: E731
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=hypr test CA", "-keyout", p("ca.key"), "-out", p("ca.crt"))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % ip,
        "-keyout", p("server.key"), "-out", p("server.csr"))
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:%s\n" % ip)
    run("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey",
        p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("ext.cnf"),
        "-out", p("server.crt"))
    return p("server.crt"), p("server.key"), p("ca.crt")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries):
    """entries: list of dicts: name, type ('file','dir','symlink','hardlink','char',
    'fifo'), data (bytes), mode, uid, gid, target, xattrs, mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            t = e.get("type", "file")
            ti.mode = e.get("mode", 0o755 if t == "dir" else 0o644)
            ti.uid = e.get("uid", 0)
            ti.gid = e.get("gid", 0)
            ti.mtime = e.get("mtime", 1700000000)
            data = None
            if t == "file":
                data = e.get("data", b"")
                ti.size = len(data)
            elif t == "dir":
                ti.type = tarfile.DIRTYPE
            elif t == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = e["target"]
            elif t == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = e["target"]
            elif t == "char":
                ti.type = tarfile.CHRTYPE
                ti.devmajor, ti.devminor = e.get("dev", (1, 3))
            elif t == "fifo":
                ti.type = tarfile.FIFOTYPE
            if e.get("xattrs"):
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e["xattrs"].items()}
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def compress(data, how):
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True,
                              check=True).stdout
    return data


LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def busybox_base(extra=()):
    """The entries of a small busybox rootfs."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    entries = [
        {"name": "bin", "type": "dir"},
        {"name": "bin/busybox", "data": bb, "mode": 0o755},
        {"name": "bin/sh", "type": "symlink", "target": "busybox"},
        {"name": "bin/ls", "type": "symlink", "target": "/bin/busybox"},
        {"name": "etc", "type": "dir"},
        {"name": "etc/passwd", "data": b"root:x:0:0:root:/root:/bin/sh\n"
                                       b"app:x:1000:1000:app:/home/app:/bin/sh\n"},
        {"name": "etc/group", "data": b"root:x:0:\napp:x:1000:\n"},
        {"name": "tmp", "type": "dir", "mode": 0o1777},
        {"name": "dev", "type": "dir"},
        {"name": "dev/null", "type": "char", "dev": (1, 3), "mode": 0o666},
    ]
    return entries + list(extra)


class OciLayout:
    """An OCI image layout dir; add_image() writes blobs and returns the manifest descriptor."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.refs = []

    def blob(self, data, media_type):
        d = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", d.split(":")[1]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def add_image(self, layers, config=None, arch="amd64", history=None, diff_ids=None):
        """layers: list of (entries, compression). Returns (manifest descriptor, info).
        diff_ids: what the config claims instead of the true ones (for fault tests)."""
        descs, true_ids = [], []
        for entries, how in layers:
            raw = entries if isinstance(entries, bytes) else tar_bytes(entries)
            true_ids.append(sha256(raw))
            descs.append(self.blob(compress(raw, how), LAYER_TYPES[how]))
        cfg = {
            "created": "2024-01-02T03:04:05Z",
            "architecture": arch,
            "os": "linux",
            "config": config or {},
            "rootfs": {"type": "layers", "diff_ids": true_ids if diff_ids is None else diff_ids},
            "history": history or [{"created": "2024-01-02T03:04:05Z",
                                    "created_by": "layer %d" % i} for i in range(len(layers))],
        }
        cdesc = self.blob(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json")
        man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": cdesc, "layers": descs}
        mdesc = self.blob(json.dumps(man).encode(), "application/vnd.oci.image.manifest.v1+json")
        return mdesc, {"config": cdesc, "layers": descs, "manifest": man, "cfg": cfg}

    def add_index(self, manifests):
        """manifests: list of (descriptor, platform dict)."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [dict(d, platform=p) for d, p in manifests]}
        return self.blob(json.dumps(idx).encode(), "application/vnd.oci.image.index.v1+json")

    def tag(self, desc, tag):
        d = dict(desc)
        d["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.refs.append(d)
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": self.refs}, f)

    def push(self, tag, dest, creds=None, all_platforms=False):
        # --preserve-digests: keep layers byte for byte (skopeo would otherwise gzip
        # uncompressed ones on the way to a registry).
        cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--insecure-policy",
               "--preserve-digests"]
        if all_platforms:
            cmd.append("--all")
        if creds:
            cmd += ["--dest-creds", "%s:%s" % creds]
        cmd += ["oci:%s:%s" % (self.path, tag), "docker://%s" % dest]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("skopeo copy failed: %s" % p.stderr)


def squashfs_listing(path):
    """{path: (perm string, owner, size or target)} from `unsquashfs -lln`."""
    p = subprocess.run(["unsquashfs", "-lln", "-d", "", path], capture_output=True, text=True,
                       check=True)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^([-dlcbps][-rwxsStT]{9}) (\S+)\s+(\d+,\s*\d+|\d+) (\S+) (\S+) ?(.*)$",
                     line)
        if not m:
            continue
        perm, owner, size, _date, _time, name = m.groups()
        target = None
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        name = "/" + name.lstrip("/") if name else "/"
        out[name] = {"perm": perm, "owner": owner, "size": size, "target": target}
    return out


def squashfs_cat(path, inner):
    p = subprocess.run(["rdsquashfs", "-c", inner, path], capture_output=True, check=True)
    return p.stdout


def squashfs_stat(path, inner):
    p = subprocess.run(["rdsquashfs", "-s", inner, path], capture_output=True, text=True,
                       check=True)
    st = {}
    for line in p.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            st[k.strip()] = v.strip()
    return st
