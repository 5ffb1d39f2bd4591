#!/usr/bin/env python3
"""The daemon's HTTP API at scale: response times, body sizes and RSS.

Generates JOBS job files in folders of 100 (due six months from now, so
no process runs), starts `driftcron run` on them as a folder source, waits for
the apply, then asks each endpoint three times, printing every time (the
first of the snapshot-backed ones builds the shared snapshot) and the
daemon's RSS after each endpoint, then after three more rounds of every
large read.

    cargo build --release
    python3 bench/api_at_scale.py [--jobs 50000] [--bin target/release/driftcron]

Python 3 standard library only.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# Days 1-6 of the month six months from now: never due while it runs.
_MONTH = (time.gmtime().tm_mon + 5) % 12 + 1
SCHEDULES = [
    f"0 3 1 {_MONTH} *",
    f"30 2 2 {_MONTH} *",
    f"0 4 3 {_MONTH} *",
    f"15 5 4 {_MONTH} *",
    f"0 9 5 {_MONTH} *",
    f"45 1 6 {_MONTH} *",
]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
ENDPOINTS = [
    "/api/v1/status",
    "/api/v1/jobs/team0001/job01",
    "/metrics",
    "/api/v1/drift",
    "/",
    "/api/v1/jobs",
    "/api/v1/state",
]
LARGE = ["/metrics", "/api/v1/drift", "/", "/api/v1/jobs", "/api/v1/state"]


def generate(root, jobs):
    with open(os.path.join(root, "driftcron.toml"), "w") as f:
        f.write(f"[limits]\nmax_jobs = {jobs + 1000}\n")
    for t in range((jobs + 99) // 100):
        d = os.path.join(root, f"team{t:04}")
        os.makedirs(d)
        with open(os.path.join(d, "_defaults.toml"), "w") as f:
            f.write(
                f'timezone = "{ZONES[t % 4]}"\nlabels = {{ team = "team{t}" }}\n'
                'kill_grace = "20s"\n'
            )
        for j in range(min(100, jobs - t * 100)):
            i = t * 100 + j
            with open(os.path.join(d, f"job{j:02}.toml"), "w") as f:
                f.write(
                    f'description = "Job {i}: nightly work for shard {i % 97}"\n'
                    f'schedule = "{SCHEDULES[i % 6]}"\n'
                    f'command = ["/usr/bin/env", "true", "--shard", "{i % 97}"]\n'
                    f'timeout = "{5 + i % 50}m"\nretries = {i % 3}\n'
                    f'labels = {{ shard = "s{i % 97}" }}\n'
                )


def get(port, path):
    """(seconds, body bytes) of one GET, the body read in full."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
    return elapsed, len(body)


def total_jobs(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/status")
    status = json.loads(conn.getresponse().read())
    conn.close()
    return status.get("jobs", {}).get("total")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50_000)
    ap.add_argument("--bin", default="target/release/driftcron")
    ap.add_argument("--port", type=int, default=18787)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "schedules")
        os.makedirs(root)
        generate(root, a.jobs)
        log = open(os.path.join(tmp, "log"), "w")
        daemon = subprocess.Popen(
            [binary, "run", "--source", "folder", "--path", root,
             "--listen", f"127.0.0.1:{a.port}", "--state-dir", os.path.join(tmp, "state")],
            cwd=tmp, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            t0 = time.monotonic()
            while True:
                if daemon.poll() is not None:
                    sys.exit(f"the daemon exited: see {log.name}")
                try:
                    if total_jobs(a.port) == a.jobs:
                        break
                except (OSError, ValueError):
                    pass
                if time.monotonic() - t0 > 300:
                    sys.exit("no apply of every job within 300 s")
                time.sleep(0.5)
            applied_s = time.monotonic() - t0
            time.sleep(2)
            print(f"{a.jobs} jobs applied in {applied_s:.1f} s; RSS {rss_mb(daemon.pid):.0f} MB")
            print(f"  {'endpoint':30} {'1st ms':>8} {'2nd ms':>8} {'3rd ms':>8} {'median':>8} {'body KB':>10} {'RSS MB':>7}")
            for ep in ENDPOINTS:
                runs = [get(a.port, ep) for _ in range(3)]
                ms = [r[0] * 1000 for r in runs]
                print(
                    f"  {ep:30} {ms[0]:8.1f} {ms[1]:8.1f} {ms[2]:8.1f} {statistics.median(ms):8.1f} "
                    f"{runs[-1][1] / 1024:10.1f} {rss_mb(daemon.pid):7.0f}"
                )
            for _ in range(3):
                for ep in LARGE:
                    get(a.port, ep)
            print(f"after three more rounds of every large read: RSS {rss_mb(daemon.pid):.0f} MB")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()


if __name__ == "__main__":
    main()
