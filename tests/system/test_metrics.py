"""The /metrics endpoint (metrics_addr, 127.0.0.1:41002 by default): Prometheus text
0.0.4, OpenMetrics on request, promtool-clean, scraped by a real Prometheus server.
The tests without "vm" in their name boot nothing."""
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import free_tcp_port, wait_for
from test_vms import BOOT_TIMEOUT, IMAGE, vmd  # noqa: F401  (vmd is a fixture)

FAMILIES = [
    "hypr_vms", "hypr_rpc_duration_seconds", "hypr_rpc_in_flight",
    "hypr_vm_boot_duration_seconds", "hypr_vm_boot_phase_seconds",
    "hypr_vm_network_receive_bytes_total", "hypr_vm_network_transmit_bytes_total",
    "hypr_vm_cpu_seconds_total", "hypr_vm_memory_bytes", "hypr_image_pull_bytes_total",
    "hypr_image_pulls_total", "hypr_builds_total", "hypr_build_duration_seconds",
    "hypr_build_cache_hits_total", "hypr_images", "hypr_volumes", "hypr_networks",
    "hypr_stacks", "hypr_dns_queries_total", "hypr_port_forward_bytes_total",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    "process_start_time_seconds",
]
STATUSES = ["created", "booting", "running", "stopping", "stopped", "failed"]


def enable_metrics(daemon):
    port = free_tcp_port()
    daemon.call("UpdateSettings", settings={"metrics_addr": "127.0.0.1:%d" % port})
    return port


def get(port, path="/metrics", method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def scrape_ready(port):
    try:
        return get(port)[0] == 200
    except OSError:
        return False


@pytest.fixture
def metrics(hyprd):
    port = enable_metrics(hyprd)
    wait_for(lambda: scrape_ready(port), 10, "/metrics on port %d" % port)
    return hyprd, port


def test_families_and_content_type(metrics):
    d, port = metrics
    d.health()  # an RPC, so hypr_rpc_duration_seconds has a sample
    status, ctype, text = get(port)
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    for fam in FAMILIES:
        assert "# TYPE %s " % fam in text, fam
        assert "# HELP %s " % fam in text, fam
    for st in STATUSES:
        assert 'hypr_vms{status="%s"} 0' % st in text
    assert 'hypr_rpc_duration_seconds_count{method="Health",code="OK"}' in text
    assert "# EOF" not in text


def test_promtool_accepts_the_exposition(metrics):
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed (Debian package prometheus; make deps)")
    d, port = metrics
    d.health()
    # promtool reads the 0.0.4 text only (OpenMetrics counters' family names look
    # HELP-less to it); lint findings go to stderr with rc 3, a parse error is rc 1.
    text = get(port)[2]
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_openmetrics_negotiation(metrics):
    _, port = metrics
    status, ctype, text = get(
        port, headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
    assert status == 200
    assert ctype.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    assert "# TYPE hypr_image_pulls counter" in text
    assert 'hypr_image_pulls_total{result="success"} 0' in text


def test_other_paths_404_other_methods_405_head_works(metrics):
    _, port = metrics
    assert get(port, "/")[0] == 404
    assert get(port, "/metricsx")[0] == 404
    assert get(port, method="POST")[0] == 405
    assert get(port, method="DELETE")[0] == 405
    status, ctype, body = get(port, method="HEAD")
    assert status == 200 and ctype.startswith("text/plain") and body == ""


def test_keep_alive_serves_several_scrapes_on_one_connection(metrics):
    _, port = metrics
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(3):
            c.request("GET", "/metrics")
            r = c.getresponse()
            assert r.status == 200
            assert "hypr_vms" in r.read().decode()
    finally:
        c.close()


def test_metrics_addr_moves_and_turns_off(metrics):
    d, port = metrics
    new = free_tcp_port()
    d.call("UpdateSettings", settings={"metrics_addr": "127.0.0.1:%d" % new})
    wait_for(lambda: scrape_ready(new), 10, "/metrics on the new port")
    d.call("UpdateSettings", settings={"metrics_addr": ""})
    wait_for(lambda: not scrape_ready(new), 10, "/metrics to go away")
    with pytest.raises(Exception):
        d.call("UpdateSettings", settings={"metrics_addr": "nonsense"})


# ---- a real Prometheus server ------------------------------------------------------------

class Prometheus:
    def __init__(self, target_port):
        self.dir = tempfile.mkdtemp(prefix="hypr-prom-")
        self.port = free_tcp_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: hyprd\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % target_port)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + cfg,
             "--storage.tsdb.path=" + os.path.join(self.dir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=self.log)

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except OSError:
            return None
        res = body.get("data", {}).get("result", [])
        return float(res[0]["value"][1]) if res else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus_for():
    if not shutil.which("prometheus"):
        pytest.skip("prometheus not installed (Debian package prometheus; make deps)")
    servers = []

    def start(port):
        servers.append(Prometheus(port))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def test_prometheus_server_reads_the_status_gauge_back(metrics, prometheus_for):
    _, port = metrics
    prom = prometheus_for(port)
    wait_for(lambda: prom.query('hypr_vms{status="created"}') == 0, 60,
             "Prometheus to scrape hypr_vms", interval=0.5)
    wait_for(lambda: prom.query('up{job="hyprd"}') == 1, 30, "the target up", interval=0.5)


# ---- with a VM (boots one: run by hand) --------------------------------------------------

def test_vm_running_shows_through_prometheus(vmd, prometheus_for):  # noqa: F811
    port = enable_metrics(vmd.daemon)
    wait_for(lambda: scrape_ready(port), 10, "/metrics on port %d" % port)
    prom = prometheus_for(port)
    wait_for(lambda: prom.query('hypr_vms{status="running"}') == 0, 60,
             "Prometheus to scrape hypr_vms", interval=0.5)
    before = prom.query("hypr_vm_boot_duration_seconds_count") or 0
    vm_id = vmd.run_detached("-n", "metrics-vm", IMAGE, "sleep", "3600")
    try:
        vmd.wait_status(vm_id, "running")
        wait_for(lambda: prom.query('hypr_vms{status="running"}') == 1, BOOT_TIMEOUT,
                 "hypr_vms{status=running} = 1 in Prometheus", interval=0.5)
        wait_for(lambda: (prom.query("hypr_vm_boot_duration_seconds_count") or 0) > before, 30,
                 "hypr_vm_boot_duration_seconds_count to increment", interval=0.5)
        # kestrel's guest metrics arrive on their own interval: wait for the VM's sample.
        wait_for(lambda: 'hypr_vm_cpu_seconds_total{vm="metrics-vm"}' in get(port)[2], 60,
                 "the VM's guest metrics")
    finally:
        vmd.rm_all()
