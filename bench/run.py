#!/usr/bin/python3
"""P0 benchmark: gRPC round trip on hyprd's unix socket.

Starts a hyprd in temp dirs (run it in a network namespace: `make bench` does),
measures unary Health latency over 10,000 sequential calls through hypr's own C
client (bench/rpc_latency.c) and through grpcio against the same daemon, and the
daemon's idle VmRSS before and after. Prints a side-by-side table with the ratio
hypr/grpcio and the targets, and rewrites the "P0 — gRPC round trip" section of
docs/benchmarks.md.

Environment: HYPR_BUILD (build dir, default <repo>/build), BENCH_CALLS (10000).
"""

import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import benchdoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("HYPR_BUILD") or os.path.join(REPO, "build"))
HYPRD = os.path.join(BUILD, "src", "daemon", "hyprd")
CALLS = int(os.environ.get("BENCH_CALLS", "10000"))
WARMUP = 200
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## P0 — gRPC round trip"
P99_TARGET_US = 1000.0
RSS_TARGET_KB = 10 * 1024

GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20)]


def die(msg):
    print("bench: " + msg, file=sys.stderr)
    sys.exit(1)


def gen_protos(tmp):
    out = os.path.join(tmp, "pb2")
    os.mkdir(out)
    subprocess.run(["protoc", "--python_out=" + out, "-I", os.path.join(REPO, "api"),
                    os.path.join(REPO, "api", "hypr.proto")], check=True)
    sys.path.insert(0, out)


def c_client(tmp):
    """The meson-built rpc_latency, or (until bench/ is in the build) one compiled
    here from the build's static libraries."""
    built = os.path.join(BUILD, "bench", "rpc_latency")
    if os.access(built, os.X_OK):
        return built, "meson build"
    exe = os.path.join(tmp, "rpc_latency")
    libs = [os.path.join(BUILD, p) for p in
            ("src/rpc/libhypr-rpc.a", "api/libhypr-api.a", "src/common/libhypr-common.a")]
    for lib in libs:
        if not os.path.exists(lib):
            die("%s missing: build first (make build)" % lib)
    pkg = subprocess.run(["pkg-config", "--cflags", "--libs", "libuv", "libnghttp2",
                          "libprotobuf-c"], check=True, capture_output=True, text=True).stdout.split()
    cmd = ["cc", "-O2", "-std=gnu17", "-D_GNU_SOURCE", "-I", os.path.join(REPO, "src"),
           "-I", os.path.join(BUILD, "api"), "-I", os.path.join(REPO, "api"),
           os.path.join(REPO, "bench", "rpc_latency.c"), "-o", exe] + libs + pkg
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        die("compiling rpc_latency failed:\n" + p.stderr)
    return exe, "compiled by run.py (bench/ not in meson.build yet)"


def vm_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field + " not found")


def percentiles(lat_ns):
    s = sorted(lat_ns)
    n = len(s)

    def pct(p):
        rank = max(1, min(n, int(-(-p * n // 100))))
        return s[rank - 1] / 1000.0

    return {"min_us": s[0] / 1000.0, "mean_us": sum(s) / n / 1000.0, "p50_us": pct(50),
            "p90_us": pct(90), "p99_us": pct(99), "p999_us": pct(99.9), "max_us": s[-1] / 1000.0}


def start_daemon(tmp):
    import grpc
    import hypr_pb2
    data, run = os.path.join(tmp, "data"), os.path.join(tmp, "run")
    os.mkdir(data)
    os.mkdir(run)
    log = open(os.path.join(tmp, "hyprd.log"), "wb")
    env = dict(os.environ)
    env.pop("HYPR_LOG", None)
    proc = subprocess.Popen([HYPRD, "--data-dir", data, "--run-dir", run, "--foreground"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                            start_new_session=True)
    sock = os.path.join(run, "hypr.sock")
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            die("hyprd exited with %d:\n%s" % (proc.returncode, open(log.name).read()[-3000:]))
        if os.path.exists(sock):
            try:
                with grpc.insecure_channel("unix:" + sock) as ch:
                    h = ch.unary_unary("/hypr.v1.HyprService/Health",
                                       request_serializer=hypr_pb2.HealthRequest.SerializeToString,
                                       response_deserializer=hypr_pb2.HealthResponse.FromString)
                    if h(hypr_pb2.HealthRequest(), timeout=1).status == "healthy":
                        return proc, sock, log
            except grpc.RpcError:
                pass
        if time.monotonic() > deadline:
            proc.kill()
            die("hyprd not ready after 15s")
        time.sleep(0.02)


def wait_idle(sock, timeout=10):
    """Waits until the daemon reports only the probing call active."""
    import grpc
    import hypr_pb2
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel("unix:" + sock) as ch:
        h = ch.unary_unary("/hypr.v1.HyprService/Health",
                           request_serializer=hypr_pb2.HealthRequest.SerializeToString,
                           response_deserializer=hypr_pb2.HealthResponse.FromString)
        while h(hypr_pb2.HealthRequest(), timeout=5).active_calls > 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)


def bench_c(exe, sock):
    p = subprocess.run([exe, sock, str(CALLS), str(WARMUP)], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        die("rpc_latency failed (%d): %s" % (p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def bench_grpcio(sock):
    import grpc
    import hypr_pb2
    with grpc.insecure_channel("unix:" + sock, options=GRPC_OPTIONS) as ch:
        h = ch.unary_unary("/hypr.v1.HyprService/Health",
                           request_serializer=hypr_pb2.HealthRequest.SerializeToString,
                           response_deserializer=hypr_pb2.HealthResponse.FromString)
        req = hypr_pb2.HealthRequest()
        for _ in range(WARMUP):
            h(req, timeout=10)
        lat = []
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(CALLS):
            t0 = clock()
            r = h(req, timeout=10)
            lat.append(clock() - t0)
            if r.status != "healthy":
                die("grpcio Health answered %r" % r.status)
        total = clock() - start
    res = percentiles(lat)
    res.update(client="grpcio", calls=CALLS, calls_per_s=CALLS * 1e9 / total)
    return res


def machine_note():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    import grpc
    return ("%s, %d CPUs, %.1f GiB RAM, Linux %s, %s; grpcio %s (Python %s); "
            "daemon and clients in a private network namespace, unix socket"
            % (cpu, os.cpu_count(), mem_kb / 1048576, platform.release(),
               platform.freedesktop_os_release().get("PRETTY_NAME", "")
               if hasattr(platform, "freedesktop_os_release") else "",
               grpc.__version__, platform.python_version()))


def fmt_us(v):
    return "%.1f µs" % v


def table(c, g, rss_before, rss_after, hwm):
    rows = [("| metric | hypr C client | grpcio | hypr/grpcio | target |"),
            ("|---|---:|---:|---:|---|")]
    for key, label in (("p50_us", "Health p50"), ("p90_us", "Health p90"),
                       ("p99_us", "Health p99"), ("p999_us", "Health p99.9"),
                       ("mean_us", "Health mean")):
        target = ""
        if key == "p99_us":
            target = "< 1 ms: hypr %s, grpcio %s" % (
                "PASS" if c[key] < P99_TARGET_US else "FAIL",
                "PASS" if g[key] < P99_TARGET_US else "FAIL")
        rows.append("| %s | %s | %s | %.2f | %s |" % (label, fmt_us(c[key]), fmt_us(g[key]),
                                                       c[key] / g[key], target))
    rows.append("| calls/s (sequential) | %.0f | %.0f | %.2f | |"
                % (c["calls_per_s"], g["calls_per_s"], c["calls_per_s"] / g["calls_per_s"]))
    for label, kb in (("hyprd VmRSS idle, before", rss_before),
                      ("hyprd VmRSS idle, after %d calls" % (2 * (CALLS + WARMUP)), rss_after)):
        rows.append("| %s | %.1f MB | | | < 10 MB: %s |"
                    % (label, kb / 1024, "PASS" if kb < RSS_TARGET_KB else "FAIL"))
    rows.append("| hyprd VmHWM (peak) | %.1f MB | | | |" % (hwm / 1024))
    return "\n".join(rows)


def update_doc(text):
    benchdoc.update_section(DOC, SECTION, text)


def main():
    if not os.access(HYPRD, os.X_OK):
        die("%s not built (make build)" % HYPRD)
    tmp = tempfile.mkdtemp(prefix="hypr-bench-")
    proc = None
    try:
        gen_protos(tmp)
        exe, how = c_client(tmp)
        proc, sock, log = start_daemon(tmp)
        wait_idle(sock)
        rss_before = vm_kb(proc.pid, "VmRSS")
        c = bench_c(exe, sock)
        g = bench_grpcio(sock)
        wait_idle(sock)
        rss_after = vm_kb(proc.pid, "VmRSS")
        hwm = vm_kb(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
        log.close()
        if rc != 0:
            die("hyprd exited with %d after SIGTERM" % rc)
        proc = None

        tbl = table(c, g, rss_before, rss_after, hwm)
        when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        note = machine_note()
        print("P0 — gRPC round trip: unary Health, %d sequential calls per client "
              "(after %d warm-up), one connection, unix socket" % (CALLS, WARMUP))
        print(tbl)
        print("C client: %s. %s. %s" % (how, when, note))
        update_doc(
            "Unary `Health` round trip over hyprd's unix socket: %d sequential calls per "
            "client on one connection after %d warm-up calls, both clients against the same "
            "daemon (default log level). hypr C client = `bench/rpc_latency.c` "
            "(src/rpc client); grpcio = Python grpcio. Ratio < 1 means hypr's client is "
            "faster. RSS is `VmRSS` of hyprd from /proc, idle.\n\n%s\n\n"
            "Run: %s. Machine: %s.\n" % (CALLS, WARMUP, tbl, when, note))
        print("updated %s" % os.path.relpath(DOC, os.getcwd()))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


# The other benchmarks live in their own scripts; `make bench` runs them all, in order:
# P1/P2 VM boot, kestrel size, hypervisor memory; P1b run --rm of a Debian image
# against busybox; P3 image pull + convert; P7 DNS (hyprd vs dnsmasq); P10 compose
# config (hypr vs docker-compose); P11 volume I/O; P13 VM records and re-adoption;
# P12 /metrics scrape CPU (hyprd vs prometheus's own /metrics).
SCRIPTS = ["vm_boot.py", "run_rm.py", "pull.py", "dns.py", "compose_config.py", "volumes.py",
           "records.py", "metrics.py"]


def run_script(name):
    p = subprocess.run([sys.executable, os.path.join(REPO, "bench", name)])
    if p.returncode != 0:
        die("bench/%s failed (%d)" % (name, p.returncode))


if __name__ == "__main__":
    main()
    for script in SCRIPTS:
        run_script(script)
