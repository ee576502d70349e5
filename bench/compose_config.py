#!/usr/bin/python3
"""P10 (loader part): `hypr compose config` of a 100-service file, against Debian's
docker-compose (v1) `config` of the same file in the same run.

The file is generated: 100 services, each with an image, two ports (short and long
syntax), environment (list and map), a named volume and a bind mount, a healthcheck,
depends_on the previous service, a network, labels, a deploy section, and YAML
anchors/merge keys shared by all; plus interpolated values from a .env file. Both
tools read it from the same directory with no daemon. Median of 7 runs each after one
warm-up. Target: hypr under 100 ms. Prints the table and rewrites the P10 section of
docs/benchmarks.md (BENCH_NO_DOC=1 leaves it).
"""

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchdoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(os.environ.get("HYPR_BUILD") or os.path.join(REPO, "build"))
HYPR = os.path.join(BUILD, "src", "cli", "hypr")
DOC = os.path.join(REPO, "docs", "benchmarks.md")
SECTION = "## P10 — compose config of a 100-service file"
SERVICES = 100
RUNS = 7
TARGET_MS = 100.0


def compose_file(n):
    out = ["x-common: &common",
           "  restart: unless-stopped",
           "  labels:",
           "    com.example.stack: bench",
           "  healthcheck:",
           "    test: [\"CMD\", \"wget\", \"-q\", \"-O-\", \"http://localhost/\"]",
           "    interval: 10s",
           "    timeout: 2s",
           "    retries: 3",
           "services:"]
    for i in range(n):
        out += ["  svc%d:" % i,
                "    <<: *common",
                "    image: ${REGISTRY:-127.0.0.1:5000}/app%d:${TAG:-1.0}" % (i % 7),
                "    command: [\"sh\", \"-c\", \"echo svc%d; sleep 3600\"]" % i,
                "    ports:",
                "      - \"127.0.0.1:%d:80\"" % (20000 + i),
                "      - target: 53",
                "        published: \"%d\"" % (30000 + i),
                "        protocol: udp",
                "    environment:",
                "      - SERVICE=svc%d" % i,
                "      - LEVEL=${LEVEL:-info}",
                "    volumes:",
                "      - data%d:/data" % i,
                "      - ./conf/svc%d:/etc/app:ro" % i,
                "    networks: [front, back]",
                "    deploy:",
                "      resources:",
                "        limits: {cpus: \"0.5\", memory: 256M}"]
        if i:
            out += ["    depends_on:",
                    "      svc%d:" % (i - 1),
                    "        condition: service_started"]
    out += ["networks:", "  front: {}", "  back:", "    internal: true", "volumes:"]
    out += ["  data%d: {}" % i for i in range(n)]
    return "\n".join(out) + "\n"


def median_ms(argv, cwd):
    def once():
        t = time.perf_counter()
        p = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = (time.perf_counter() - t) * 1000
        if p.returncode:
            sys.exit("bench: %s failed (%d): %s" % (" ".join(argv), p.returncode,
                                                     p.stderr.decode()[-2000:]))
        return dt
    once()
    return statistics.median(once() for _ in range(RUNS))


def main():
    if not os.path.exists(HYPR):
        sys.exit("bench: hypr not built: %s" % HYPR)
    peer = shutil.which("docker-compose")
    if not peer:
        sys.exit("bench: needs docker-compose (Debian's, from make deps)")
    tmp = tempfile.mkdtemp(prefix="hypr-bench-compose-")
    try:
        with open(os.path.join(tmp, "compose.yaml"), "w") as f:
            f.write(compose_file(SERVICES))
        with open(os.path.join(tmp, ".env"), "w") as f:
            f.write("TAG=2.1\nLEVEL=debug\n")
        # the same model through both: the service count is checked outside the timing
        for argv in ([HYPR, "compose", "config", "--services"],
                     [peer, "config", "--services"]):
            got = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
            if got.returncode or len(got.stdout.split()) != SERVICES:
                sys.exit("bench: %s did not list %d services: %s" % (argv[0], SERVICES,
                                                                      got.stderr[-1000:]))
        hypr_ms = median_ms([HYPR, "compose", "config", "--format", "json"], tmp)
        peer_ms = median_ms([peer, "config"], tmp)
        ver = subprocess.run([peer, "version", "--short"], capture_output=True,
                             text=True).stdout.strip()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    verdict = "PASS" if hypr_ms < TARGET_MS else "FAIL"
    rows = ["| measure | hypr | peer | peer is | ratio | target |",
            "|---|---:|---:|---|---:|---|",
            "| `compose config` of %d services (median of %d) | %.1f ms | %.1f ms | "
            "docker-compose %s `config` | %.3f | < %d ms: %s |"
            % (SERVICES, RUNS, hypr_ms, peer_ms, ver, hypr_ms / peer_ms, TARGET_MS, verdict)]
    table = "\n".join(rows)
    print(table)
    text = ("Measured %s on %s, %d CPUs. A generated file (anchors and merge keys, "
            "interpolation from .env, short and long ports, volumes, healthchecks, a "
            "depends_on chain, deploy limits); both tools load, interpolate, normalise and "
            "print it, no daemon. The up/scale part of P10 waits for the orchestrator.\n\n%s"
            % (time.strftime("%Y-%m-%d"), platform.processor() or platform.machine(),
               os.cpu_count(), table))
    if not os.environ.get("BENCH_NO_DOC"):
        benchdoc.update_section(DOC, SECTION, text)


if __name__ == "__main__":
    main()
