"""A cold read of an s3:// object costs one request to the under-store: a
ranged GET whose reply carries both the metadata (size from Content-Range,
ETag, Last-Modified) and the page holding the first byte asked for; no HEAD
first.  Counted in s3rver's own request log."""
import threading
import time

import botocore.exceptions
import pytest

from conftest import make_mounted, rand_bytes

PAGE = 64 * 1024


def _mounted(make_worker, tmp_path, request, **kw):
    return make_mounted("s3", make_worker, tmp_path, lambda: request.getfixturevalue("s3rver"), **kw)


def _mark(m):
    """Log lines are written when a response ends: let the PUTs land first."""
    m.s3rver.settle()
    return m.s3rver.mark()


def _obj_requests(m, key, since):
    m.s3rver.settle()
    want = f"/{m.src_bucket}/{m.prefix}{key}"
    return [r for r in m.s3rver.requests()[since:] if r[1] == want]


def _all_requests(m, since):
    m.s3rver.settle()
    return m.s3rver.requests()[since:]


def test_cold_get_small_object_one_request(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request)
    data = rand_bytes(5000, 1)
    m.put("small.bin", data)
    s3 = m.worker.s3()
    mark = _mark(m)
    stat0 = m.worker.metric("ferry_ufs_requests_total", op="stat") or 0
    assert s3.get_object(Bucket="data", Key="small.bin")["Body"].read() == data
    reqs = _all_requests(m, mark)
    assert [r[0] for r in reqs] == ["GET"], reqs
    assert reqs[0][1] == f"/{m.src_bucket}/pfx/small.bin" and reqs[0][3] == 206, reqs
    assert (m.worker.metric("ferry_ufs_requests_total", op="stat") or 0) == stat0
    # Warm: nothing reaches the under-store.
    mark = _mark(m)
    assert s3.get_object(Bucket="data", Key="small.bin")["Body"].read() == data
    assert _all_requests(m, mark) == []
    # HEAD still answers from the metadata the GET cached.
    h = s3.head_object(Bucket="data", Key="small.bin")
    assert h["ContentLength"] == len(data)
    assert _all_requests(m, mark) == []


def test_cold_ranged_get_mid_object(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request, args=["--read-ahead", "0", "--window", "1"])
    data = rand_bytes(6 * PAGE, 2)
    m.put("big.bin", data)
    s3 = m.worker.s3()
    mark = _mark(m)
    a, b = 2 * PAGE + 100, 4 * PAGE + 99
    r = s3.get_object(Bucket="data", Key="big.bin", Range=f"bytes={a}-{b}")
    assert r["Body"].read() == data[a:b + 1]
    assert r["ContentRange"] == f"bytes {a}-{b}/{len(data)}"
    reqs = _obj_requests(m, "big.bin", mark)
    assert all(q[0] == "GET" for q in reqs), reqs  # no HEAD
    assert len(reqs) == 3, reqs  # pages 2, 3, 4: one request each
    assert len(_all_requests(m, mark)) == 3


def test_concurrent_cold_gets_one_request(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request)
    data = rand_bytes(3 * PAGE + 17, 3)
    m.put("hot.bin", data)
    s3 = m.worker.s3(max_pool_connections=32)
    mark = _mark(m)
    reads0 = m.worker.ufs_reads() or 0
    start = threading.Barrier(16)
    out, errs = [], []

    def get():
        try:
            start.wait()
            out.append(s3.get_object(Bucket="data", Key="hot.bin", Range=f"bytes=0-{PAGE - 1}")["Body"].read())
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=get) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errs, errs
    assert out == [data[:PAGE]] * 16
    reqs = _all_requests(m, mark)
    assert [q[0] for q in reqs] == ["GET"], reqs
    assert (m.worker.ufs_reads() or 0) - reads0 == 1


def _no_such_key(s3, key):
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.get_object(Bucket="data", Key=key)
    return ei.value.response["Error"]["Code"]


def test_missing_key_one_request(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request)
    s3 = m.worker.s3()
    mark = _mark(m)
    assert _no_such_key(s3, "nope.bin") == "NoSuchKey"
    reqs = _all_requests(m, mark)
    assert len(reqs) == 1 and reqs[0][0] == "GET" and reqs[0][3] == 404, reqs
    # Cached: again costs nothing.
    assert _no_such_key(s3, "nope.bin") == "NoSuchKey"
    assert len(_all_requests(m, mark)) == 1
    # A "directory" (a prefix) is still no object to GET ...
    m.put("dir/x", b"x")
    assert _no_such_key(s3, "dir") == "NoSuchKey"
    # ... while stat (HEAD-path callers) still sees it as a directory.
    assert m.worker.stat("/data/dir")["is_dir"]


def test_zero_length_object(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request)
    m.put("empty.bin", b"")
    s3 = m.worker.s3()
    r = s3.get_object(Bucket="data", Key="empty.bin")
    assert r["Body"].read() == b"" and r["ContentLength"] == 0
    assert s3.get_object(Bucket="data", Key="empty.bin")["Body"].read() == b""
    assert m.worker.ctl("GET", "/v1/data", params={"path": "/data/empty.bin"}).content == b""


def test_changed_object_after_sync_interval(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request, args=["--sync-interval", "300ms"])
    old, new = rand_bytes(2 * PAGE + 5, 4), rand_bytes(2 * PAGE + 5, 5)
    m.put("v.bin", old)
    s3 = m.worker.s3()
    assert s3.get_object(Bucket="data", Key="v.bin")["Body"].read() == old
    m.put("v.bin", new)
    time.sleep(0.5)
    assert s3.get_object(Bucket="data", Key="v.bin")["Body"].read() == new
    time.sleep(0.5)
    assert s3.get_object(Bucket="data", Key="v.bin")["Body"].read() == new


def test_unchanged_after_sync_interval_is_a_head(make_worker, tmp_path, request):
    """Expired metadata with the page cached: a HEAD confirms the version;
    the page is not read again."""
    m = _mounted(make_worker, tmp_path, request, args=["--sync-interval", "300ms"])
    data = rand_bytes(3000, 7)
    m.put("u.bin", data)
    s3 = m.worker.s3()
    assert s3.get_object(Bucket="data", Key="u.bin")["Body"].read() == data
    m.worker.wait_cached("/data/u.bin", len(data))
    time.sleep(0.5)
    mark = _mark(m)
    assert s3.get_object(Bucket="data", Key="u.bin")["Body"].read() == data
    assert [q[0] for q in _obj_requests(m, "u.bin", mark)] == ["HEAD"]


def test_control_data_cold_read_one_request(make_worker, tmp_path, request):
    m = _mounted(make_worker, tmp_path, request)
    data = rand_bytes(1000, 6)
    m.put("c.bin", data)
    mark = _mark(m)
    r = m.worker.ctl("GET", "/v1/data", params={"path": "/data/c.bin"})
    assert r.status_code == 200 and r.content == data
    reqs = _all_requests(m, mark)
    assert [q[0] for q in reqs] == ["GET"], reqs
    # A directory through the control API is still EISDIR, and a missing
    # key still not found.
    m.put("d/y", b"y")
    assert m.worker.ctl("GET", "/v1/data", params={"path": "/data/d"}).status_code != 200
    assert m.worker.ctl("GET", "/v1/data", params={"path": "/data/none"}).status_code == 404
