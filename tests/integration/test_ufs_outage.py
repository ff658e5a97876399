"""A cache keeps serving what it holds when its under-store is down.

Regression for the review's finding: once the sync interval passed with the
store down, cached objects answered 503 after ~60 s (store refusing
connections) or 152 s per request (store hung: 5 attempts x 30 s).  Now an
expired answer is served again while the store fails (stale-if-error, a
metric, one log line per outage), an uncached read fails within the s3://
backend's deadline (seconds), and users who prefer errors set
--stale-if-error 0.  Each case runs through the S3 gateway, libferry (the
CLI) and FUSE, against a private s3rver that is stopped (SIGSTOP: hung),
killed (refusing connections) or replaced by a server answering 503."""
import http.server
import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import FERRY, S3rver, rand_bytes, wait_for
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401 (a fixture)

# The store's calls give up fast here, so a test waits seconds, not the
# defaults' 20 s deadline.
FAST = {"s3.deadline_ms": "3000", "s3.stall_ms": "1000", "s3.connect_timeout_ms": "1000"}
A = rand_bytes(300_000, 1)
B = rand_bytes(5_000, 2)


class Outage:
    def __init__(self, tmp_path, make_worker, stale="24h"):
        self.s3 = S3rver(tmp_path / "s3rver").start()
        bucket = self.s3.new_bucket()
        self.s3.client.put_object(Bucket=bucket, Key="a.bin", Body=A)
        self.s3.client.put_object(Bucket=bucket, Key="b.bin", Body=B)
        self.w = make_worker(args=["--sync-interval", "1s", "--stale-if-error", stale])
        self.w.mount("data", f"s3://{bucket}", **self.s3.mount_options(**FAST))
        self.gw = requests.Session()
        assert self.get("a.bin").content == A  # cached
        self.w.wait_cached("/data/a.bin", len(A))

    def get(self, key, timeout=30):
        return self.gw.get(f"{self.w.s3_url}/data/{key}", timeout=timeout)

    def expire(self):
        time.sleep(1.3)  # past --sync-interval: every answer must be asked again

    def stale(self):
        return self.w.metric("ferry_metadata_stale_total") or 0

    def close(self):
        if self.s3.proc and self.s3.proc.poll() is None:
            os.killpg(self.s3.proc.pid, signal.SIGCONT)
        self.s3.stop()


@pytest.fixture
def outage(tmp_path, make_worker):
    made = []

    def make(**kw):
        o = Outage(tmp_path / f"o{len(made)}", make_worker, **kw)
        made.append(o)
        return o

    yield make
    for o in made:
        o.close()


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def check_cached_served(o, max_s):
    """The cached object: its bytes, within max_s, served stale."""
    before = o.stale()
    r, dt = timed(lambda: o.get("a.bin"))
    assert r.status_code == 200 and r.content == A, (r.status_code, r.text[:300])
    assert dt < max_s, dt
    assert o.stale() > before
    # Again, at once: no wait for the store this time.
    r, dt = timed(lambda: o.get("a.bin"))
    assert r.status_code == 200 and r.content == A
    assert dt < 2.0, dt


def check_uncached_fails_fast(o, max_s, why):
    r, dt = timed(lambda: o.get("b.bin"))
    assert r.status_code == 503, (r.status_code, r.text[:300])
    assert dt < max_s, dt
    p = o.w.cli("cat", "/data/b.bin", check=False)
    assert p.returncode != 0
    assert re.search(why, p.stderr.decode()), p.stderr


def test_hung_store_cached_objects_still_served(outage):
    o = outage()
    os.killpg(o.s3.proc.pid, signal.SIGSTOP)
    o.expire()
    # The first request waits out one deadline (3 s here), then the kept
    # answer; the rest are served without waiting.
    check_cached_served(o, 8.0)
    assert o.w.cli("cat", "/data/a.bin").stdout == A  # libferry
    check_uncached_fails_fast(o, 10.0, "no answer|timed out")
    log = o.w.log()
    assert log.count("does not answer") == 1, log[-3000:]
    # The store comes back: everything is served, and the log says so.
    os.killpg(o.s3.proc.pid, signal.SIGCONT)
    wait_for(lambda: o.get("b.bin").status_code == 200, timeout=20, what="b.bin after SIGCONT")
    assert o.get("b.bin").content == B
    wait_for(lambda: "answers again" in o.w.log(), timeout=10, what="the recovery log line")


def test_refusing_store_cached_objects_still_served(outage):
    o = outage()
    o.s3.stop()  # killed: the port refuses connections
    o.expire()
    check_cached_served(o, 5.0)
    assert o.w.cli("cat", "/data/a.bin").stdout == A
    check_uncached_fails_fast(o, 6.0, "Failed to connect")


class _Always503(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        body = b"<Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _answer

    def log_message(self, *a):
        pass


def test_store_answering_503_cached_objects_still_served(outage):
    o = outage()
    port = o.s3.port
    o.s3.stop()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Always503)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        o.expire()
        check_cached_served(o, 6.0)
        check_uncached_fails_fast(o, 6.0, "ServiceUnavailable|HTTP 503")
    finally:
        srv.shutdown()
        srv.server_close()


def test_stale_if_error_zero_answers_the_error(outage):
    o = outage(stale="0")
    o.s3.stop()
    o.expire()
    r, dt = timed(lambda: o.get("a.bin"))
    assert r.status_code == 503 and dt < 6.0, (r.status_code, dt)
    assert (o.w.metric("ferry_metadata_stale_total") or 0) == 0


@pytest.mark.skipif(not os.path.exists("/dev/fuse") or FUSERMOUNT is None, reason="FUSE unavailable")
def test_fuse_reads_cached_file_with_store_down(outage, fuse_mount):
    o = outage()
    path = fuse_mount(o.w).mnt / "data" / "a.bin"
    assert path.read_bytes() == A
    os.killpg(o.s3.proc.pid, signal.SIGSTOP)
    o.expire()
    t0 = time.monotonic()
    # A fresh open: the kernel asks ferry fuse for the attributes again
    # (attr timeout 1 s), which asks the worker, whose store is hung.
    p = subprocess.run(["cat", str(path)], capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == A, p.stderr
    assert time.monotonic() - t0 < 10.0
