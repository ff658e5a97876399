"""Hostile and malformed input on raw sockets: bad request lines, huge or
too many headers, floods, slow clients, disconnects mid-body, path
traversal in every spelling, bad ranges, methods S3 does not have.  The
worker answers each with the right status, never serves a file outside
the mount, keeps serving others, and is alive at the end of each test
(the make_worker finalizer fails a test whose worker died)."""
import os
import socket
import struct
import threading
import time

import pytest
import requests

from conftest import PAGE, rand_bytes, raw_request, read_response, s3_error_code

SECRET = b"TOPSECRET-do-not-serve-0123456789"
OBJ = rand_bytes(5 * PAGE + 3, 99)


@pytest.fixture
def w(make_worker, tmp_path, data_dir):
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (data_dir / "obj.bin").write_bytes(OBJ)
    (data_dir / "sub").mkdir()
    (data_dir / "sub" / "inner.txt").write_bytes(b"inner")
    os.symlink(tmp_path / "secret.txt", data_dir / "link-out")
    os.symlink("../secret.txt", data_dir / "rel-link-out")
    os.symlink(tmp_path, data_dir / "dirlink")
    wk = make_worker(mounts={"data": data_dir})
    yield wk
    wk.assert_alive()


def get(w, target, extra=b"", method=b"GET", timeout=10):
    req = method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"
    return raw_request(w.s3_host, w.s3_port, req, timeout, head=(method == b"HEAD"))


# --- paths -----------------------------------------------------------------

BAD_KEYS = [
    b"/data/../secret.txt", b"/data/%2e%2e/secret.txt", b"/data/%2E%2E%2Fsecret.txt",
    b"/data/..%2fsecret.txt", b"/data/sub/../../secret.txt", b"/data/sub/%2e%2e/%2e%2e/secret.txt",
    b"/data//secret.txt", b"/data/sub//inner.txt", b"/data/./obj.bin", b"/data/sub/./inner.txt",
    b"/data/%2fetc%2fpasswd", b"/data/a%00b", b"/data/obj.bin%00", b"/data/%ff",
    b"/data/%c0%ae%c0%ae/secret.txt", b"/data/%e2%82", b"/data/a%01b", b"/data/%",
    b"/data/%zz", b"/data/..", b"/data/sub/..",
]


@pytest.mark.parametrize("target", BAD_KEYS, ids=[t.decode() for t in BAD_KEYS])
def test_traversal_and_invalid_keys_400(w, target):
    status, _, body = get(w, target)
    assert status == 400, (target, status, body[:200])
    assert SECRET not in body
    status, _, body = get(w, target, method=b"HEAD")
    assert status == 400


@pytest.mark.parametrize("target", [b"/data/sub/", b"/data/obj.bin/", b"/data/sub"])
def test_directory_keys_404(w, target):
    status, _, body = get(w, target)
    assert status == 404, (target, status)
    assert s3_error_code(body) == "NoSuchKey"


@pytest.mark.parametrize("target", [b"/data/link-out", b"/data/rel-link-out", b"/data/dirlink/secret.txt"])
def test_symlinks_out_of_the_mount_are_not_followed(w, target):
    status, _, body = get(w, target)
    assert status != 200 and 400 <= status < 600, (target, status)
    assert SECRET not in body
    r = w.ctl("GET", "/v1/data", params={"path": "/" + target.decode().lstrip("/")})
    assert r.status_code != 200 and SECRET not in r.content


def test_listing_never_shows_or_escapes(w):
    for prefix in ("../", "%2e%2e/", "sub/../", "./", "/"):
        r = requests.get(f"{w.s3_url}/data", params={"list-type": "2", "prefix": prefix}, timeout=10)
        assert r.status_code in (200, 400), prefix
        assert b"secret.txt" not in r.content
    r = requests.get(f"{w.s3_url}/data", params={"list-type": "2"}, timeout=10)
    assert r.status_code == 200
    assert b"secret" not in r.content.replace(b"dirlink", b"")


def test_control_api_paths(w):
    for p in ("/data/../secret.txt", "/data/%2e%2e/secret.txt", "/data//secret.txt", "data/obj.bin",
              "/data/sub/../../secret.txt", "/data/\x00x"):
        for ep in ("/v1/data", "/v1/stat", "/v1/list"):
            r = w.ctl("GET", ep, params={"path": p})
            assert r.status_code in (400, 404), (ep, p, r.status_code)
            assert SECRET not in r.content
    r = w.ctl("GET", "/v1/data?path=/data/obj.bin%00")
    assert r.status_code in (400, 404)


# --- ranges ----------------------------------------------------------------

@pytest.mark.parametrize("rng", [f"bytes={len(OBJ)}-", f"bytes={len(OBJ) + 10}-{len(OBJ) + 20}",
                                 "bytes=99999999999-"])
def test_range_past_end_416(w, rng):
    status, hdrs, body = get(w, b"/data/obj.bin", f"Range: {rng}\r\n".encode())
    assert status == 416
    assert hdrs["content-range"] == f"bytes */{len(OBJ)}"
    assert s3_error_code(body) == "InvalidRange"


@pytest.mark.parametrize("rng", ["bytes=abc", "bytes=5-2", "chars=0-1", "bytes=0-1,5-6", "bytes=--1",
                                 "bytes=", "bytes=-", "bytes=1-2-3", "bytes= 1-2x",
                                 "bytes=99999999999999999999999-"])
def test_malformed_range_is_ignored(w, rng):
    status, hdrs, body = get(w, b"/data/obj.bin", f"Range: {rng}\r\n".encode())
    assert status == 200, (rng, status)
    assert body == OBJ
    assert "content-range" not in hdrs


# --- buckets, methods, sub-resources --------------------------------------

def test_unknown_bucket_and_key(w):
    for target in (b"/nosuch/x", b"/nosuch", b"/nosuch?list-type=2"):
        status, _, body = get(w, target)
        assert status == 404, target
        assert s3_error_code(body) == "NoSuchBucket"
    status, _, body = get(w, b"/data/nokey")
    assert status == 404 and s3_error_code(body) == "NoSuchKey"
    status, _, body = get(w, b"/data/nokey", method=b"HEAD")
    assert status == 404 and body == b""
    status, _, body = get(w, b"/Data/obj.bin")
    assert status in (400, 404)
    assert OBJ[:64] not in body


@pytest.mark.parametrize("method,code,status", [
    (b"POST", "NotImplemented", 501),
    (b"PATCH", "MethodNotAllowed", 405), (b"BREW", "MethodNotAllowed", 405),
])
def test_methods(w, method, code, status, data_dir):
    got, _, resp = raw_request(w.s3_host, w.s3_port, method +
                               b" /data/new.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert got == status, (method, got)
    assert s3_error_code(resp) == code
    got, _, resp = get(w, b"/data/obj.bin", method=method)
    assert got == status, (method, got)
    assert not (data_dir / "new.bin").exists()
    assert (data_dir / "obj.bin").read_bytes() == OBJ


@pytest.mark.parametrize("q", [b"tagging", b"versions", b"policy", b"versionId=1", b"partNumber=1"])
def test_unbuilt_subresources_501(w, q):
    # A bucket's policy and tags are answered as for a bucket without one
    # (test_s3_gateway_semantics); on an object they are not built.
    targets = [b"/data/obj.bin?" + q] + ([] if q in (b"tagging", b"policy") else [b"/data?" + q])
    for target in targets + [b"/data?policy&cors"]:
        status, _, body = get(w, target)
        assert status == 501, (target, status)
        assert s3_error_code(body) == "NotImplemented"


# --- protocol ----------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /data/obj.bin\r\n\r\n", b"GET /data/obj.bin HTTP/1.1 extra\r\n\r\n",
    b"GET /data/obj.bin HTTP/1.1\r\nNoColonHere\r\n\r\n", b"GET /data/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
])
def test_malformed_requests_400(w, raw):
    status, _, _ = raw_request(w.s3_host, w.s3_port, raw)
    assert status == 400, raw


def test_huge_header_431(w):
    status, _, _ = raw_request(w.s3_host, w.s3_port,
                               b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert status == 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    status, _, _ = raw_request(w.s3_host, w.s3_port, b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431
    status, _, _ = raw_request(w.s3_host, w.s3_port, b"GET /data/" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (400, 414, 431)


def test_pipelined_requests(w):
    with socket.create_connection((w.s3_host, w.s3_port), timeout=10) as s:
        s.sendall(b"GET /data/sub/inner.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"HEAD /data/obj.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n")
        assert read_response(s)[2] == b"inner"
        st, h, _ = read_response(s, head=True)
        assert st == 200 and h["content-length"] == str(len(OBJ))
        assert read_response(s)[2] == OBJ[:10]


def served_ok(w, n, deadline_s):
    """n GETs on fresh connections, each answered right within deadline_s."""
    for _ in range(n):
        t0 = time.monotonic()
        r = requests.get(w.s3_url + "/data/sub/inner.txt", timeout=deadline_s)
        assert r.status_code == 200 and r.content == b"inner"
        assert time.monotonic() - t0 < deadline_s


def test_bad_request_flood_does_not_starve_others(w):
    stop = threading.Event()
    sent = [0]

    def flood():
        end = time.monotonic() + 8
        while not stop.is_set() and time.monotonic() < end and sent[0] < 20000:
            try:
                with socket.create_connection((w.s3_host, w.s3_port), timeout=2) as s:
                    s.sendall(b"XXXX YYYY\r\n" * 50 + b"\r\n")
                    s.recv(100)
            except OSError:
                pass
            sent[0] += 1

    ts = [threading.Thread(target=flood) for _ in range(4)]
    for t in ts:
        t.start()
    try:
        time.sleep(0.3)
        served_ok(w, 30, 5)
    finally:
        stop.set()
        for t in ts:
            t.join(15)
    assert sent[0] > 50
    w.assert_alive()
    served_ok(w, 3, 5)


def test_slow_loris_does_not_block_others(w):
    socks = []
    try:
        for _ in range(64):
            s = socket.create_connection((w.s3_host, w.s3_port), timeout=5)
            s.sendall(b"GET /data/obj.bin HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for s in socks:
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    pass
            served_ok(w, 2, 3)
            time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    w.assert_alive()


def test_client_disconnects_mid_transfer(w, data_dir):
    big = rand_bytes(16 * 1024 * 1024 + 5, 1616)
    (data_dir / "big.bin").write_bytes(big)
    for i in range(8):
        s = socket.create_connection((w.s3_host, w.s3_port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        rng = b"" if i % 2 == 0 else b"Range: bytes=%d-\r\n" % (i * 100_000)
        s.sendall(b"GET /data/big.bin HTTP/1.1\r\nHost: x\r\n" + rng + b"\r\n")
        got = 0
        while got < 100_000:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        # RST rather than FIN, the rudest way to go.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    w.assert_alive()
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="big.bin")["Body"].read() == big
    assert s3.get_object(Bucket="data", Key="obj.bin")["Body"].read() == OBJ
