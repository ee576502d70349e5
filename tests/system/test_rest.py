"""The REST gateway (rest_addr, 127.0.0.1:41001 by default): HTTP/1.1 + JSON in the
proto3 JSON mapping, driven with curl and Python's urllib/http.client (not our code),
against the real hyprd, whose gRPC API must agree with what REST shows."""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Daemon, free_tcp_port, import_busybox, wait_for
from registry import OciLayout, Registry, busybox_base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "api", "hypr.proto")
BOOT_TIMEOUT = 90


class Rest:
    def __init__(self, daemon, port):
        self.daemon = daemon
        self.port = port
        self.base = "http://127.0.0.1:%d" % port

    def curl(self, method, path, body=None, timeout=60):
        """(HTTP status, parsed JSON body) of a curl request, as a user would type it."""
        cmd = ["curl", "-sS", "--max-time", str(timeout), "-X", method, "-o", "-",
               "-w", "\n%{http_code}", self.base + path]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)
        assert p.returncode == 0, p.stderr
        text, _, code = p.stdout.rpartition("\n")
        return int(code), json.loads(text) if text.strip() else None

    def request(self, method, path, body=None, timeout=60, raw=None, headers=None):
        """urllib: (status, headers, body bytes); HTTP errors are returned, not raised."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict({"Content-Type": "application/json"},
                                                  **(headers or {})))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        assert headers["Content-Type"].startswith("application/json"), headers
        return status, json.loads(data)

    def vm(self, ident):
        status, body = self.json("GET", "/v1/vms/" + ident)
        assert status == 200, body
        return body["vm"]


def small_image(layout):
    desc, _ = layout.add_image([(busybox_base([{"name": "hello", "data": b"hi\n"}]), "gzip")])
    return desc


@pytest.fixture(scope="module")
def rest(busybox_rootfs):
    base = tempfile.mkdtemp(prefix="hypr-rest-")
    data, run = os.path.join(base, "data"), os.path.join(base, "run")
    os.makedirs(data)
    os.makedirs(run)
    reg = Registry(os.path.join(base, "reg")).start()
    lay = OciLayout(os.path.join(base, "oci"))
    lay.tag(small_image(lay), "small")
    lay.push("small", "%s/test/small:1" % reg.host)
    d = Daemon(data, run, os.path.join(base, "hyprd.log"))
    d.start()
    try:
        import_busybox(d, busybox_rootfs)
        port = free_tcp_port()
        d.call("UpdateSettings", settings={"rest_addr": "127.0.0.1:%d" % port,
                                           "insecure_registries": reg.host})
        r = Rest(d, port)
        r.registry = reg
        wait_for(lambda: port_open(port), 10, "the REST gateway on port %d" % port)
        yield r
    finally:
        for vm in d.call("ListVms", all=True).vms:
            d.call("DeleteVM", id=vm.id, force=True, timeout=60)
        d.stop_clean()
        reg.stop()
        shutil.rmtree(base, ignore_errors=True)


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_vm_lifecycle_over_rest_with_curl(rest):
    """POST /v1/vms, POST .../start, GET, GET /v1/vms, POST .../stop, DELETE: each answers
    the proto message in JSON (lowerCamelCase, enums by name) and the gRPC API sees the
    same VM: one implementation serves both."""
    code, body = rest.curl("POST", "/v1/vms", {"config": {
        "image": "busybox:latest", "name": "rest-vm", "cmd": ["sleep", "3600"],
        "memoryMb": 256, "labels": {"via": "rest"}}})
    assert code == 200, body
    vm = body["vm"]
    assert re.fullmatch(r"[0-9a-f]{64}", vm["id"]), vm
    assert vm["name"] == "rest-vm" and vm["status"] == "VM_STATUS_CREATED", vm
    assert vm["config"]["memoryMb"] == "256" and vm["config"]["labels"] == {"via": "rest"}, vm
    assert isinstance(vm["createdAt"], str) and int(vm["createdAt"]) > 0, vm  # int64: a string
    g = rest.daemon.call("GetVM", id="rest-vm").vm
    assert g.id == vm["id"] and g.config.labels["via"] == "rest"

    code, body = rest.curl("POST", "/v1/vms/rest-vm/start", timeout=BOOT_TIMEOUT)
    assert code == 200, body
    wait_for(lambda: rest.vm("rest-vm")["status"] == "VM_STATUS_RUNNING", BOOT_TIMEOUT,
             "rest-vm running")
    got = rest.vm(vm["id"][:12])  # an ID prefix works as with the CLI
    assert got["id"] == vm["id"] and got["ipAddress"], got
    code, body = rest.curl("GET", "/v1/vms")
    assert code == 200 and vm["id"] in [v["id"] for v in body["vms"]], body

    code, body = rest.curl("POST", "/v1/vms/rest-vm/stop", {"timeoutSeconds": 1}, timeout=60)
    assert code == 200, body
    assert body["vm"]["status"] in ("VM_STATUS_STOPPED", "VM_STATUS_FAILED"), body
    code, body = rest.curl("DELETE", "/v1/vms/rest-vm")
    assert code == 200 and body == {}, body
    code, body = rest.curl("GET", "/v1/vms/rest-vm")
    assert code == 404 and body["code"] == 5 and "rest-vm" in body["message"], body


@pytest.mark.parametrize("method,path,body,status,code,words", [
    ("GET", "/v1/vms/no-such-vm", None, 404, 5, ["no such VM"]),
    ("GET", "/v1/nothing/here", None, 404, 5, ["no REST route", "/v1/nothing/here"]),
    ("PUT", "/v1/vms", None, 405, 12, ["PUT", "/v1/vms"]),
    ("POST", "/v1/vms", {"config": {"image": "busybox:latest", "cpus": "many"}}, 400, 3,
     ["config.cpus"]),
    ("POST", "/v1/vms", {"config": {"image": "busybox:latest", "nope": 1}}, 400, 3,
     ["unknown field", "config.nope"]),
    ("POST", "/v1/vms", {"config": {"image": "busybox:latest", "name": "bad/name"}}, 400, 3,
     ["invalid VM name"]),
    ("PATCH", "/v1/settings", {"settings": {"stop_timeout": "forever"}}, 400, 3,
     ["stop_timeout"]),
    ("POST", "/v1/networks", {"name": "bad", "subnet": "10.1.0.0/99"}, 400, 3, ["subnet"]),
])
def test_errors_are_json_with_grpc_gateway_statuses(rest, method, path, body, status, code,
                                                    words):
    """Bad input gets grpc-gateway's HTTP status and a {"code", "message"} body a user can
    act on; nothing is created."""
    before = len(rest.daemon.call("ListVms", all=True).vms)
    got_status, got = rest.json(method, path, body)
    assert got_status == status and got["code"] == code, got
    for w in words:
        assert w in got["message"], (w, got)
    assert len(rest.daemon.call("ListVms", all=True).vms) == before


def test_bad_json_body_and_query(rest):
    """A body that is not JSON, and a query parameter of the wrong type, are 400s that
    say what is wrong (with the position for JSON)."""
    status, _, data = rest.request("POST", "/v1/vms", raw=b'{"config": {"image": ')
    body = json.loads(data)
    assert status == 400 and "invalid JSON body" in body["message"] and "line 1" in \
        body["message"], body
    status, body = rest.json("GET", "/v1/vms?all=perhaps")
    assert status == 400 and "all" in body["message"], body
    status, body = rest.json("GET", "/v1/vms?nope=1")
    assert status == 400 and "nope" in body["message"], body
    # A key that is not UTF-8 is quoted back as valid JSON (U+FFFD).
    status, body = rest.json("GET", "/v1/vms?%FF=1")
    assert status == 400 and "\ufffd" in body["message"], body
    status, _, data = rest.request("POST", "/v1/vms", raw=b"<xml/>",
                                   headers={"Content-Type": "text/xml"})
    assert status == 400 and "Content-Type" in json.loads(data)["message"]


def test_query_parameters_fill_the_request(rest):
    """GET /v1/vms lists running VMs; ?all=true (or ?all) adds stopped ones, as `ps -a`."""
    rest.daemon.call("CreateVM", config={"image": "busybox:latest", "name": "rest-created"})
    try:
        _, running = rest.json("GET", "/v1/vms")
        assert "rest-created" not in [v["name"] for v in running["vms"]], running
        for q in ("?all=true", "?all"):
            _, everything = rest.json("GET", "/v1/vms" + q)
            assert "rest-created" in [v["name"] for v in everything["vms"]], everything
    finally:
        rest.daemon.call("DeleteVM", id="rest-created", force=True)


def test_pull_streams_ndjson_progress(rest):
    """POST /v1/images/pull answers a chunked application/x-ndjson stream of
    {"result": PullProgress} lines ending in phase DONE; the image is then listed. A pull
    from a registry that is not there ends with an {"error": ...} line."""
    ref = "%s/test/small:1" % rest.registry.host
    conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=120)
    conn.request("POST", "/v1/images/pull", body=json.dumps({"reference": ref}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "application/x-ndjson"
    assert r.getheader("Transfer-Encoding") == "chunked"
    lines = [json.loads(l) for l in r.read().decode().splitlines() if l.strip()]
    conn.close()
    phases = [l["result"]["phase"] for l in lines]
    assert phases[0] == "RESOLVING" and phases[-1] == "DONE", phases
    image_id = lines[-1]["result"]["imageId"]
    assert re.fullmatch(r"(sha256:)?[0-9a-f]{64}", image_id), lines[-1]
    _, images = rest.json("GET", "/v1/images")
    assert image_id.split(":")[-1] in [i["id"] for i in images["images"]], images
    # The reference holds slashes and a colon: {id=**} takes them.
    status, got = rest.json("GET", "/v1/images/" + ref)
    assert status == 200 and got["image"]["id"] == image_id.split(":")[-1], got
    assert got["image"]["tag"] == "1" and got["image"]["name"].endswith("test/small"), got

    port = free_tcp_port()
    status, headers, data = rest.request("POST", "/v1/images/pull",
                                         {"reference": "127.0.0.1:%d/none/x:1" % port})
    lines = [json.loads(l) for l in data.decode().splitlines() if l.strip()]
    if status == 200:
        assert "error" in lines[-1] and lines[-1]["error"]["code"] == 14, lines
    else:
        assert status == 503 and lines[-1]["code"] == 14, lines


def test_events_stream_and_client_going_away(rest):
    """GET /v1/events streams events as they happen; closing the connection ends the
    subscription in hyprd (Health counts it)."""
    conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=30)
    conn.request("GET", "/v1/events?types=vm")
    r = conn.getresponse()
    assert r.status == 200
    wait_for(lambda: rest.daemon.call("Health").event_subscribers == 1, 10, "subscriber")
    rest.daemon.call("CreateVM", config={"image": "busybox:latest", "name": "rest-ev"})
    try:
        line = json.loads(read_chunk_line(r))
        assert line["result"]["type"] == "vm.created", line
    finally:
        conn.close()
        rest.daemon.call("DeleteVM", id="rest-ev", force=True)
    wait_for(lambda: rest.daemon.call("Health").event_subscribers == 0, 10,
             "the subscription to end with the connection")


def read_chunk_line(resp):
    """One NDJSON line from a chunked response that is still open."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = resp.read1(4096)
        assert chunk, "the stream ended before a line"
        buf += chunk
    return buf.decode().splitlines()[0]


def test_keep_alive_and_pipelining(rest):
    """Several requests on one connection (keep-alive) and two sent back to back before
    reading (pipelining) are each answered, in order."""
    conn = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=30)
    for _ in range(3):
        conn.request("GET", "/v1/health")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "healthy"
    conn.close()
    with socket.create_connection(("127.0.0.1", rest.port), timeout=30) as s:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                  b"GET /v1/vms/nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    statuses = re.findall(rb"^HTTP/1\.1 (\d+)", data, re.M)
    assert statuses == [b"200", b"404"], data


def test_web_pages_cannot_drive_hyprd(rest):
    """A browser's cross-site POST (it carries Origin) and a DNS-rebound name (Host is
    not a loopback name) are refused with 403 before anything runs; curl's requests,
    with neither problem, pass."""
    before = len(rest.daemon.call("ListVms", all=True).vms)
    form = b'{"config": {"image": "busybox:latest", "name": "csrf"}}'
    status, _, data = rest.request("POST", "/v1/vms", raw=form, headers={
        "Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert status == 403 and json.loads(data)["code"] == 7, data
    status, _, data = rest.request("GET", "/v1/vms", headers={"Host": "evil.example:%d"
                                                               % rest.port})
    assert status == 403 and "Host" in json.loads(data)["message"], data
    assert len(rest.daemon.call("ListVms", all=True).vms) == before
    status, _, _ = rest.request("GET", "/v1/health", headers={"Host": "localhost:%d"
                                                               % rest.port})
    assert status == 200


def test_openapi_document_lists_every_route(rest):
    """/v1/openapi.json is valid JSON, OpenAPI 3, with a path for every REST: line of
    api/hypr.proto and an operation for every RPC but the client streams; every $ref
    resolves."""
    status, doc = rest.json("GET", "/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3."), doc.get("openapi")
    proto = open(PROTO).read()
    routes = re.findall(r"//\s*REST:\s*(\w+)\s+(\S+)", proto)
    assert len(routes) >= 35, routes
    for verb, path in routes:
        oa = re.sub(r"\{(\w+)=\*\*\}", r"{\1}", path)
        assert verb.lower() in doc["paths"].get(oa, {}), (verb, path)
    rpcs = re.findall(r"rpc (\w+)\((stream )?\w+\)", proto)
    ops = {op["operationId"] for p in doc["paths"].values() for op in p.values()}
    for name, client_stream in rpcs:
        if not client_stream:
            assert name in ops, name
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs and all(r in doc["components"]["schemas"] for r in refs), \
        [r for r in refs if r not in doc["components"]["schemas"]]


def test_rest_addr_moves_and_turns_off(rest):
    """PATCH /v1/settings rest_addr moves the gateway at once; "" turns it off (the gRPC
    API stays); setting it back brings it back."""
    new = free_tcp_port()
    status, body = rest.json("PATCH", "/v1/settings",
                             {"settings": {"rest_addr": "127.0.0.1:%d" % new}})
    assert status == 200, body
    try:
        wait_for(lambda: port_open(new) and not port_open(rest.port), 10, "the move")
        rest.daemon.call("UpdateSettings", settings={"rest_addr": ""})
        wait_for(lambda: not port_open(new), 10, "the gateway to close")
        assert rest.daemon.call("Health").status == "healthy"
        assert not port_open(rest.port)
    finally:
        rest.daemon.call("UpdateSettings", settings={"rest_addr": "127.0.0.1:%d" % rest.port})
        wait_for(lambda: port_open(rest.port), 10, "the gateway back")
    status, body = rest.json("GET", "/v1/health")
    assert status == 200 and body["status"] == "healthy"
