#!/usr/bin/python3
"""Idle-connection flood: does one address holding thousands of idle
connections hurt another client of the S3 gateway?

Starts a worker (FERRY, default build/ferry) with a directory mounted, warms
one 64 KiB object, then measures another client's GETs (from 127.0.0.1: on
one keep-alive connection opened before the flood, and on a new connection
per GET) twice: alone, and while --conns idle connections from 127.0.0.2
are held open (they send nothing).
Prints p50/p99 latency and the failures (a 503 or a broken connection) of
each, and the worker's connection counters.

    bench/idleflood.py [--ferry build/ferry] [--conns 5000] [--gets 2000]
                       [--worker-arg=--max-connections-per-client=100000]

Needs 2 x conns descriptors (raised to the hard limit here; the worker
inherits it).  Loopback only; the worker and its files are removed at exit.
"""
import argparse
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJ = os.urandom(64 * 1024)


def start_worker(ferry, tmp, extra):
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    with open(os.path.join(data, "obj.bin"), "wb") as f:
        f.write(OBJ)
    log = open(os.path.join(tmp, "worker.log"), "wb")
    p = subprocess.Popen([ferry, "worker", "--cache-dir", os.path.join(tmp, "cache"),
                          "--cache-size", "256M", "--s3-address", "127.0.0.1:0",
                          "--control-address", "127.0.0.1:0", "--local-socket", "none",
                          "--mount", "data=file://" + data] + extra,
                         stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    line = p.stdout.readline().decode()
    m = re.match(r"ferry worker ready s3=([0-9.]+):(\d+) control=([0-9.]+):(\d+)", line)
    if not m:
        p.kill()
        sys.exit(f"worker did not start: {line!r}; see {tmp}/worker.log")
    return p, (m.group(1), int(m.group(2))), (m.group(3), int(m.group(4)))


def connect_from(addr, src):
    """A connection from src; the port is chosen at connect(), not at
    bind() (IP_BIND_ADDRESS_NO_PORT): bind's search for a port that is
    free on every address slows down by seconds once thousands are used."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
    s.settimeout(10)
    try:
        s.bind((src, 0))
        s.connect(addr)
    except OSError:
        s.close()
        raise
    return s


def get(addr, conn=None):
    """One GET of the object; (seconds, ok)."""
    t0 = time.perf_counter()
    c = conn or http.client.HTTPConnection(*addr, timeout=10)
    try:
        c.request("GET", "/data/obj.bin")
        r = c.getresponse()
        ok = r.status == 200 and r.read() == OBJ
    except (OSError, http.client.HTTPException):
        ok = False
        c.close()  # http.client reconnects on the next request
    finally:
        if conn is None:
            c.close()
    return time.perf_counter() - t0, ok


def measure(addr, keep, n):
    """n GETs on the keep-alive connection keep, n on new connections,
    interleaved; {kind: (latencies, failures)}."""
    out = {"keep-alive": ([], 0), "new conn": ([], 0)}
    for _ in range(n):
        for kind, conn in (("keep-alive", keep), ("new conn", None)):
            dt, ok = get(addr, conn)
            lat, fail = out[kind]
            if ok:
                lat.append(dt)
            out[kind] = (lat, fail + (not ok))
    return out


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def report(label, res):
    for kind, (lat, fail) in res.items():
        print(f"  {label:<18} {kind:<10} p50 {pct(lat, 50) * 1e3:7.2f} ms   "
              f"p99 {pct(lat, 99) * 1e3:7.2f} ms   ok {len(lat):5d}   failed {fail}")


def metrics(ctl):
    try:
        c = http.client.HTTPConnection(*ctl, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except OSError as e:
        return f"(metrics: {e})"
    want = ("ferry_connections_open{server=\"s3\"}", "ferry_connections_idle{server=\"s3\"}",
            "ferry_connections_shed_total", "ferry_connections_rejected_total")
    got = dict(l.rsplit(" ", 1) for l in text.splitlines() if l and not l.startswith("#"))
    return ", ".join(f"{k} {got.get(k, 'n/a')}" for k in want)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ferry", default=os.path.join(ROOT, "build", "ferry"))
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--src", default="127.0.0.2", help="the flood's source address")
    ap.add_argument("--worker-arg", action="append", default=[],
                    help="an extra worker option, e.g. --worker-arg=--max-connections-per-client=100000")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * a.conns + 1000
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"needs {need} descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    tmp = tempfile.mkdtemp(prefix="ferry-idleflood-")
    p = None
    socks = []
    try:
        p, s3, ctl = start_worker(a.ferry, tmp, a.worker_arg)
        print(f"worker {a.ferry} {' '.join(a.worker_arg)} (pid {p.pid}), S3 {s3[0]}:{s3[1]}; "
              f"{a.gets} GETs of 64 KiB per kind and phase")
        for _ in range(20):  # warm the cache and the code paths
            get(s3)
        # the client's keep-alive connection is older than the flood
        keep = http.client.HTTPConnection(*s3, timeout=10)
        report("no flood", measure(s3, keep, a.gets))

        t0 = time.monotonic()
        refused = 0
        for _ in range(a.conns):
            try:
                socks.append(connect_from(s3, a.src))
            except OSError:
                refused += 1
        print(f"  flood: {a.conns} connections from {a.src} opened in "
              f"{time.monotonic() - t0:.2f} s ({refused} failed to connect)")
        report(f"{a.conns} idle conns", measure(s3, keep, a.gets))
        keep.close()
        print(f"  flood lasted {time.monotonic() - t0:.2f} s (the header timeout is 20 s)")
        print(f"  worker: {metrics(ctl)}")
    finally:
        for s in socks:
            s.close()
        if p:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
