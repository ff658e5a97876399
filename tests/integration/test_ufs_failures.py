"""Under-store failures: a closed port, a server that answers 500s or
garbage, one that lies about sizes or ETags, and one that is slow.  The
client always gets either the right bytes or a clean S3 error, within the
configured timeouts, and the worker keeps serving its other mounts."""
import http.server
import threading
import time
from email.utils import formatdate

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import PAGE, free_port, rand_bytes, s3_error_code

FAST_FAIL = {"s3.retries": "1", "s3.connect_timeout_ms": "500", "s3.timeout_ms": "2000",
             "s3.region": "us-east-1", "s3.path_style": "true",
             "s3.access_key": "AKIDFAKE", "s3.secret_key": "fake-secret"}
OBJ = rand_bytes(3 * PAGE + 7, 303)
ETAG = '"0123456789abcdef0123456789abcdef"'


class FakeS3(http.server.BaseHTTPRequestHandler):
    """Bucket "bkt", objects under "p/"; behaviour chosen by the key."""
    protocol_version = "HTTP/1.1"
    stop = None  # threading.Event, set at teardown
    log = None   # list of (method, path)

    def log_message(self, *a):
        pass

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def object_headers(self, size):
        return [("ETag", ETAG), ("Last-Modified", formatdate(1_600_000_000, usegmt=True)),
                ("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")], size

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        FakeS3.log.append((self.command, self.path))
        path, _, query = self.path.partition("?")
        if path in ("/bkt", "/bkt/"):
            if "garbage-list" in query or "prefix=p%2Fgarbage" in query or "prefix=p/garbage" in query:
                return self.send(200, b"<<<this is not xml &&&", [("Content-Type", "application/xml")])
            if "prefix=p%2Ferr" in query or "prefix=p/err" in query:
                return self.send(500, b"<Error><Code>InternalError</Code></Error>")
            return self.send(200, b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
                             b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name>'
                             b"<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>",
                             [("Content-Type", "application/xml")])
        key = path[len("/bkt/p/"):]
        err = b"<Error><Code>InternalError</Code><Message>boom</Message></Error>"
        if key == "err500":
            return self.send(500, err)
        if key == "denied":
            return self.send(403, b"<Error><Code>AccessDenied</Code></Error>")
        if key == "missing":
            return self.send(404, b"<Error><Code>NoSuchKey</Code></Error>")
        if key == "garbage-head":
            return self.send(200, b"", [("Content-Length-Typo", "x")]) if self.command == "HEAD" \
                else self.send(500, err)
        hdrs, size = self.object_headers(len(OBJ))
        if self.command == "HEAD":
            self.send_response(200)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return
        # GET with a Range.
        rng = self.headers.get("Range", "")
        a, b = 0, len(OBJ) - 1
        if rng.startswith("bytes="):
            x, _, y = rng[6:].partition("-")
            a, b = int(x), min(int(y), len(OBJ) - 1) if y else len(OBJ) - 1
        part = OBJ[a:b + 1]
        cr = [("Content-Range", f"bytes {a}-{b}/{len(OBJ)}")]
        if key == "readfail":
            return self.send(500, err)
        if key == "wrong-etag":
            # A store that ignores If-Match and answers another version
            # for every range but the first: the first page's reply sets
            # the version, the second page's contradicts it.
            tag = '"ffffffffffffffffffffffffffffffff"' if a == 0 else '"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"'
            return self.send(206, part, cr + [("ETag", tag)])
        if key == "short":
            self.send_response(206)
            self.send_header("ETag", ETAG)
            self.send_header("Content-Range", cr[0][1])
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part[: len(part) // 2])
            self.close_connection = True
            return
        if key == "ignores-range":
            return self.send(200, OBJ, [("ETag", ETAG)])
        if key == "too-long":
            return self.send(206, part + b"extra-bytes" * 100, cr + [("ETag", ETAG)])
        if key == "slow":
            FakeS3.stop.wait(10)
            return self.send(206, part, cr + [("ETag", ETAG)])
        if key == "ok":
            return self.send(206, part, cr + [("ETag", ETAG)])
        return self.send(404, b"<Error><Code>NoSuchKey</Code></Error>")


class QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the worker hanging up on a slow answer is expected here


@pytest.fixture
def fake_s3():
    FakeS3.stop = threading.Event()
    FakeS3.log = []
    srv = QuietServer(("127.0.0.1", 0), FakeS3)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    FakeS3.stop.set()
    srv.shutdown()
    srv.server_close()
    t.join(10)


@pytest.fixture
def w(make_worker, data_dir):
    (data_dir / "fine.bin").write_bytes(b"fine")
    return make_worker(mounts={"files": data_dir}, args=["--sync-interval", "500ms"])


def timed_get(w, bucket, key, limit):
    t0 = time.monotonic()
    r = requests.get(f"{w.s3_url}/{bucket}/{key}", timeout=limit + 30)
    took = time.monotonic() - t0
    assert took < limit, f"GET /{bucket}/{key} took {took:.1f}s"
    return r


def test_closed_port_503_fast_and_others_unaffected(w):
    port = free_port()
    w.mount("dead", "s3://bkt/p", check=False,
            **dict(FAST_FAIL, **{"s3.endpoint": f"http://127.0.0.1:{port}"}))
    results = []

    def other():
        for _ in range(10):
            results.append(requests.get(f"{w.s3_url}/files/fine.bin", timeout=10).content)

    t = threading.Thread(target=other)
    t.start()
    r = timed_get(w, "dead", "some/key", 30)
    t.join(30)
    assert r.status_code == 503
    assert s3_error_code(r.content) == "ServiceUnavailable"
    assert results == [b"fine"] * 10
    r = requests.get(f"{w.s3_url}/dead", params={"list-type": "2"}, timeout=30)
    assert r.status_code == 503 and s3_error_code(r.content) == "ServiceUnavailable"
    with pytest.raises(ClientError) as ei:
        w.s3().get_object(Bucket="dead", Key="x")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # The control API and CLI say so too, with one line.
    p = w.cli("stat", "/dead/x", check=False)
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1
    assert requests.get(f"{w.s3_url}/files/fine.bin", timeout=10).content == b"fine"


@pytest.mark.parametrize("key,status,code", [
    ("err500", 503, "ServiceUnavailable"),
    ("readfail", 503, "ServiceUnavailable"),
    ("wrong-etag", 503, "ServiceUnavailable"),
    ("denied", 403, "AccessDenied"),
    ("missing", 404, "NoSuchKey"),
])
def test_ufs_errors_map_to_s3_errors(w, fake_s3, key, status, code):
    w.mount("fake", "s3://bkt/p", **dict(FAST_FAIL, **{"s3.endpoint": fake_s3}))
    r = timed_get(w, "fake", key, 20)
    assert r.status_code == status, (key, r.status_code, r.content[:300])
    assert s3_error_code(r.content) == code
    assert OBJ[:64] not in r.content


def test_garbage_list_and_head(w, fake_s3):
    w.mount("fake", "s3://bkt/p", **dict(FAST_FAIL, **{"s3.endpoint": fake_s3}))
    r = requests.get(f"{w.s3_url}/fake", params={"list-type": "2", "prefix": "garbage"}, timeout=30)
    assert 500 <= r.status_code < 600 and s3_error_code(r.content) is not None
    r = requests.get(f"{w.s3_url}/fake", params={"list-type": "2", "prefix": "err"}, timeout=30)
    assert 500 <= r.status_code < 600 and s3_error_code(r.content) is not None
    r = requests.get(f"{w.s3_url}/fake", params={"list-type": "2", "prefix": "nothing"}, timeout=30)
    assert r.status_code == 200 and b"<KeyCount>0</KeyCount>" in r.content
    r = timed_get(w, "fake", "garbage-head", 20)
    assert r.status_code != 200 or r.content == b""
    assert requests.get(f"{w.s3_url}/files/fine.bin", timeout=10).content == b"fine"


@pytest.mark.parametrize("key", ["short", "ignores-range", "too-long", "ok"])
def test_lying_ufs_right_bytes_or_error(w, fake_s3, key):
    """A UFS that sends fewer or more bytes than asked: the client gets the
    right bytes or an error, never wrong bytes presented as the object."""
    w.mount("fake", "s3://bkt/p", **dict(FAST_FAIL, **{"s3.endpoint": fake_s3}))
    for _ in range(2):
        try:
            r = requests.get(f"{w.s3_url}/fake/{key}", timeout=30)
        except requests.exceptions.RequestException:
            continue  # cut short mid-body: an error the client sees
        if r.status_code == 200:
            assert r.content == OBJ, f"{key}: wrong bytes with status 200"
        else:
            assert r.status_code >= 500 and s3_error_code(r.content), (key, r.status_code)
    if key == "ok":
        assert requests.get(f"{w.s3_url}/fake/ok", timeout=30).content == OBJ
    w.assert_alive()


def test_slow_ufs_times_out(w, fake_s3):
    opts = dict(FAST_FAIL, **{"s3.endpoint": fake_s3, "s3.timeout_ms": "1500", "s3.retries": "0"})
    w.mount("fake", "s3://bkt/p", **opts)
    r = timed_get(w, "fake", "slow", 9)
    assert r.status_code == 503 and s3_error_code(r.content) == "ServiceUnavailable"
    # A range of a slow object: same.
    t0 = time.monotonic()
    r = requests.get(f"{w.s3_url}/fake/slow", headers={"Range": "bytes=0-10"}, timeout=30)
    assert time.monotonic() - t0 < 9 and r.status_code == 503
    assert requests.get(f"{w.s3_url}/files/fine.bin", timeout=10).content == b"fine"
