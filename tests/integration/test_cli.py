"""The ferry CLI and the control API it speaks: ls, stat, cat, mount,
unmount, mounts, stats; one-line errors with exit status 1; the control
token; metrics; and mount secrets, which are never shown or logged."""
import os
import stat as statmod
import subprocess

import pytest
import requests

from conftest import FERRY, PAGE, free_port, rand_bytes

BIG = rand_bytes(int(5.5 * PAGE), 5)


@pytest.fixture
def tree(data_dir):
    (data_dir / "big.bin").write_bytes(BIG)
    (data_dir / "empty").write_bytes(b"")
    (data_dir / "dir").mkdir()
    (data_dir / "dir" / "a.txt").write_bytes(b"aaa")
    (data_dir / "dir" / "b c.txt").write_bytes(b"bc")
    (data_dir / "dir" / "nested").mkdir()
    (data_dir / "dir" / "nested" / "n.txt").write_bytes(b"n")
    (data_dir / "many").mkdir()
    os.utime(data_dir / "big.bin", (1_700_000_000, 1_700_000_000))
    return data_dir


@pytest.fixture
def w(make_worker, tree):
    return make_worker(mounts={"data": tree})


def out(p):
    return p.stdout.decode()


def one_line_error(p):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_ls(w, tree):
    for i in range(1205):
        (tree / "many" / f"f{i:05d}").write_bytes(b"")
    assert [l.rstrip("/") for l in out(w.cli("ls", "/")).split()] == ["data"]
    names = [l.rstrip("/") for l in out(w.cli("ls", "/data")).splitlines()]
    assert names == ["big.bin", "dir", "empty", "many"]
    names = [l.rstrip("/") for l in out(w.cli("ls", "/data/dir/")).splitlines()]
    assert names == ["a.txt", "b c.txt", "nested"]
    # Beyond one page of the control API's listing (1,000 entries).
    names = out(w.cli("ls", "/data/many")).splitlines()
    assert names == [f"f{i:05d}" for i in range(1205)]


def test_ls_long(w):
    lines = out(w.cli("ls", "-l", "/data")).splitlines()
    rows = {l.split()[-1].rstrip("/"): l for l in lines}
    assert set(rows) == {"big.bin", "dir", "empty", "many"}
    assert rows["big.bin"].startswith("-") and f" {len(BIG)} " in rows["big.bin"]
    assert "2023-11-14 22:13:20" in rows["big.bin"]
    assert rows["dir"].startswith("d")
    assert rows["empty"].startswith("-") and " 0 " in rows["empty"]


def test_stat_and_cat(w):
    o = out(w.cli("stat", "/data/big.bin"))
    assert f"size: {len(BIG)}" in o
    assert "type: file" in o
    assert "mtime: 1700000000" in o
    assert "cached_bytes: 0" in o
    etag = w.s3().head_object(Bucket="data", Key="big.bin")["ETag"].strip('"')
    assert f"etag: {etag}" in o
    p = w.cli("cat", "/data/big.bin")
    assert p.stdout == BIG
    w.wait_cached("/data/big.bin", len(BIG))
    assert f"cached_bytes: {len(BIG)}" in out(w.cli("stat", "/data/big.bin"))
    p = w.cli("cat", "/data/dir/a.txt", "/data/dir/b c.txt", "/data/empty")
    assert p.stdout == b"aaabc"
    o = out(w.cli("stat", "/data/dir"))
    assert "type: directory" in o
    o = out(w.cli("stat", "/data/dir/a.txt", "/data/empty"))
    assert "size: 3" in o and "size: 0" in o


def test_stats(w):
    w.cli("cat", "/data/big.bin")
    w.wait_cached("/data/big.bin", len(BIG))
    o = out(w.cli("stats"))
    assert f"({len(BIG)} bytes)" in o  # miss / ufs read bytes
    s = w.stats()
    assert s["hit_bytes"] + s["miss_bytes"] == len(BIG)
    assert s["ufs_read_bytes"] == len(BIG)
    assert s["mounts"] == 1 and s["pages"] == 6
    w.cli("cat", "/data/big.bin")
    s2 = w.stats()
    assert s2["hit_bytes"] - s["hit_bytes"] == len(BIG)
    assert s2["ufs_read_bytes"] == len(BIG)
    assert "hit ratio:" in out(w.cli("stats"))


@pytest.mark.parametrize("args", [
    ("stat", "/data/nope"), ("cat", "/data/nope"), ("cat", "/data/dir"), ("ls", "/data/nope"),
    ("ls", "/nomount"), ("stat", "/nomount/x"), ("unmount", "/nomount"),
    ("mount", "/bad", "ftp://example/x"), ("mount", "/data", "file:///tmp"),
    ("mount", "/rel", "file://relative/dir"), ("cat", "/data/../etc/passwd"),
])
def test_errors_are_one_line_exit_1(w, args):
    line = one_line_error(w.cli(*args, check=False))
    assert line.startswith("ferry")


def test_unreachable_worker(tmp_path):
    port = free_port()
    p = subprocess.run([str(FERRY), "--worker", f"127.0.0.1:{port}", "ls", "/"],
                       capture_output=True, timeout=30)
    line = one_line_error(p)
    assert f"127.0.0.1:{port}" in line
    p = subprocess.run([str(FERRY), "stats"], capture_output=True, timeout=30,
                       env=dict(os.environ, FERRY_WORKER=f"127.0.0.1:{port}"))
    assert f"127.0.0.1:{port}" in one_line_error(p)


def test_worker_env_var(w):
    p = subprocess.run([str(FERRY), "ls", "/data/dir"], capture_output=True, timeout=30,
                       env=dict(os.environ, FERRY_WORKER=w.ctl_addr))
    assert p.returncode == 0 and "a.txt" in out(p)


def test_mount_unmount_mounts(w, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_bytes(b"other")
    p = w.cli("mount", "/extra", f"file://{other}")
    assert "/extra" in out(p)
    assert w.cli("cat", "/extra/o.txt").stdout == b"other"
    assert w.s3().get_object(Bucket="extra", Key="o.txt")["Body"].read() == b"other"
    o = out(w.cli("mounts"))
    assert "/extra" in o and f"file://{other}" in o and "/data" in o
    one_line_error(w.cli("mount", "/extra", f"file://{other}", check=False))
    w.cli("unmount", "/extra")
    assert "/extra" not in out(w.cli("mounts"))
    r = requests.get(f"{w.s3_url}/extra/o.txt", timeout=10)
    assert r.status_code == 404 and b"NoSuchBucket" in r.content
    one_line_error(w.cli("unmount", "/extra", check=False))


def test_mount_s3_via_cli(w, s3rver):
    bucket = s3rver.new_bucket()
    data = rand_bytes(2 * PAGE + 9, 9)
    s3rver.client.put_object(Bucket=bucket, Key="prefix/x/y.bin", Body=data)
    opts = []
    for k, v in s3rver.mount_options().items():
        opts += ["--option", f"{k}={v}"]
    w.cli("mount", "/train", f"s3://{bucket}/prefix", *opts)
    assert w.cli("cat", "/train/x/y.bin").stdout == data
    assert [l.rstrip("/") for l in out(w.cli("ls", "/train")).splitlines()] == ["x"]
    assert w.s3().get_object(Bucket="train", Key="x/y.bin")["Body"].read() == data


def test_control_token(make_worker, tree, tmp_path):
    tok = "tok-0123456789"
    w = make_worker(mounts={"data": tree}, args=["--control-token", tok])
    other = tmp_path / "o"
    other.mkdir()
    body = {"name": "o", "uri": f"file://{other}", "options": {}}
    for hdrs in ({}, {"Authorization": "Bearer wrong-token-xx"}, {"Authorization": tok},
                 {"Authorization": f"Bearer {tok}x"}, {"Authorization": f"Basic {tok}"}):
        r = w.ctl("POST", "/v1/mounts", json=body, headers=hdrs, auth=False)
        assert r.status_code == 401, hdrs
        r = w.ctl("DELETE", "/v1/mounts/data", headers=hdrs, auth=False)
        assert r.status_code == 401, hdrs
    assert [m["name"] for m in w.ctl("GET", "/v1/mounts").json()["mounts"]] == ["data"]
    # Reads need the token too (docs/control-api.md, "Access").
    one_line_error(w.cli("cat", "/data/dir/a.txt", check=False))
    assert w.cli("--token", tok, "cat", "/data/dir/a.txt").stdout == b"aaa"
    one_line_error(w.cli("mount", "/o", f"file://{other}", check=False))
    w.cli("--token", tok, "mount", "/o", f"file://{other}")
    p = subprocess.run([str(FERRY), "--worker", w.ctl_addr, "unmount", "/o"], capture_output=True,
                       timeout=30, env=dict(os.environ, FERRY_TOKEN=tok))
    assert p.returncode == 0, p.stderr
    r = w.ctl("DELETE", "/v1/mounts/data", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200
    # A short token is refused at start.
    p = subprocess.run([str(FERRY), "worker", "--cache-dir", str(tmp_path / "c2"), "--s3-address",
                        "127.0.0.1:0", "--control-address", "127.0.0.1:0", "--control-token", "short"],
                       capture_output=True, timeout=20)
    assert p.returncode != 0 and b"ready" not in p.stdout


def test_control_api(w):
    assert w.ctl("GET", "/healthz").text.strip() == "ok"
    r = w.ctl("GET", "/v1/data", params={"path": "/data/big.bin"}, headers={"Range": f"bytes={PAGE}-{2 * PAGE}"})
    assert r.status_code == 206 and r.content == BIG[PAGE:2 * PAGE + 1]
    assert r.headers["Content-Range"] == f"bytes {PAGE}-{2 * PAGE}/{len(BIG)}"
    r = w.ctl("GET", "/v1/data", params={"path": "/data/big.bin"}, headers={"Range": f"bytes={len(BIG)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(BIG)}"
    assert w.ctl("GET", "/v1/data", params={"path": "/data/big.bin"}).content == BIG
    st = w.stat("/data/dir")
    assert st["is_dir"] is True
    st = w.stat("/data/big.bin")
    assert st["size"] == len(BIG) and st["mtime"] == 1_700_000_000 and st["is_dir"] is False
    lst = w.ctl("GET", "/v1/list", params={"path": "/data/dir"}).json()
    assert [e["name"] for e in lst["entries"]] == ["a.txt", "b c.txt", "nested"]
    assert lst["truncated"] is False
    assert w.ctl("GET", "/v1/nope").status_code == 404
    assert w.ctl("GET", "/v1/stat", params={"path": "/data/nope"}).status_code == 404
    for bad in (b"not json", b"[1,2]", b'{"name": 5, "uri": "file:///tmp"}', b'{"name": "x"}',
                b'{"name": "x", "uri": "file:///tmp", "options": {"k": 1}}', b"{" * 5000):
        r = w.ctl("POST", "/v1/mounts", data=bad, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, bad[:40]
    r = w.ctl("POST", "/v1/mounts", data=b"x" * (2 * 1024 * 1024))
    assert r.status_code in (400, 413)
    w.assert_alive()


METRIC_NAMES = [
    "ferry_cache_hit_bytes_total", "ferry_cache_miss_bytes_total", "ferry_ufs_read_bytes_total",
    "ferry_cache_used_bytes", "ferry_cache_capacity_bytes", "ferry_cache_evicted_bytes_total",
    "ferry_page_checksum_failures_total", "ferry_cache_write_errors_total",
]


def test_metrics(w):
    w.s3().get_object(Bucket="data", Key="big.bin")["Body"].read()
    w.s3().list_objects_v2(Bucket="data")
    w.wait_cached("/data/big.bin", len(BIG))
    m = w.metrics()
    names = {k[0] for k in m}
    for n in METRIC_NAMES:
        assert n in names, n
    for op in ("stat", "list", "read"):
        assert ("ferry_ufs_requests_total", frozenset({("op", op)})) in m
    assert m[("ferry_ufs_requests_total", frozenset({("op", "read")}))] == 6
    assert m[("ferry_ufs_read_bytes_total", frozenset())] == len(BIG)
    assert m[("ferry_cache_capacity_bytes", frozenset())] == 256 * 1024 * 1024
    assert m[("ferry_cache_used_bytes", frozenset())] >= len(BIG)
    cnt = m[("ferry_s3_request_duration_seconds_count", frozenset({("op", "GetObject")}))]
    inf = m[("ferry_s3_request_duration_seconds_bucket", frozenset({("op", "GetObject"), ("le", "+Inf")}))]
    assert cnt == inf == 1
    assert m[("ferry_s3_request_duration_seconds_count", frozenset({("op", "ListObjectsV2")}))] == 1
    assert m[("ferry_s3_request_duration_seconds_sum", frozenset({("op", "GetObject")}))] > 0


SECRET = "SUPERSECRET-9f8e7d6c5b4a"
TOKEN_SECRET = "SESSIONTOKENSECRET-1a2b3c"


def test_mount_secrets_never_shown(make_worker, tree, s3rver):
    w = make_worker(mounts={"data": tree}, args=["--log-level", "debug"])
    bucket = s3rver.new_bucket()
    s3rver.client.put_object(Bucket=bucket, Key="p/k.bin", Body=b"k")
    opts = s3rver.mount_options(**{"s3.secret_key": SECRET, "s3.session_token": TOKEN_SECRET,
                                   "s3.retries": "0"})
    args = []
    for k, v in opts.items():
        args += ["--option", f"{k}={v}"]
    w.cli("mount", "/sec", f"s3://{bucket}/p", *args)
    # (s3rver may or may not check the signature: either way the worker
    # logs at debug level what it does.)
    r = requests.get(f"{w.s3_url}/sec/k.bin", timeout=30)
    requests.get(f"{w.s3_url}/sec", params={"list-type": "2"}, timeout=30)
    w.cli("stat", "/sec/k.bin", check=False)
    p = w.cli("mounts")
    api = w.ctl("GET", "/v1/mounts").text
    metrics = w.ctl("GET", "/metrics").text
    stat = w.ctl("GET", "/v1/stat", params={"path": "/sec/k.bin"}).text
    for where, text in (("ferry mounts", out(p) + p.stderr.decode()), ("/v1/mounts", api),
                        ("/metrics", metrics), ("/v1/stat", stat), ("log", w.log()),
                        ("s3 error", r.text)):
        assert SECRET not in text, where
        assert TOKEN_SECRET not in text, where
    assert "<redacted>" in api and "<redacted>" in out(p)
    assert s3rver.url in api  # the rest is shown
    # Persisted for restarts, readable by the worker's user only.
    mj = w.cache_dir / "mounts.json"
    assert statmod.S_IMODE(mj.stat().st_mode) == 0o600
    w.restart()
    assert SECRET not in w.ctl("GET", "/v1/mounts").text
    assert "/sec" in out(w.cli("mounts"))
    assert SECRET not in w.log()
