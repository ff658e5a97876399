"""Writes through the control API (PUT/DELETE /v1/data, POST /v1/rename)
with libferry's write calls, driven through the CLI (`ferry put`, `rm`,
`mv`, which are thin layers over ferry_create/ferry_write/ferry_commit,
ferry_unlink, ferry_rename), against a directory and against s3rver.

What a user relies on: the bytes put are what the under-store holds and
what every later read returns (a cache hit in write-through); nothing is
visible before the commit; errors carry the worker's reason (read-only
mount, rename across mounts, a missing object); writes on the control port
need what the gateway's writes need, and anonymous access never writes.
"""
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import FERRY, make_mounted, rand_bytes

AK, SK = "AKIDLIBWRITES", "libwrites-secret/+="
TOK = "libwrites-token-0123456789"
MiB = 1 << 20


def cli(w, *args, env=None, stdin=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    e.update(env or {})
    return subprocess.run([str(FERRY), "--worker", w.ctl_addr, *args], capture_output=True,
                          timeout=120, env=e, input=stdin)


@pytest.fixture(params=["file", "s3"])
def lm(request, make_worker, tmp_path):
    return make_mounted(request.param, make_worker, tmp_path,
                        lambda: request.getfixturevalue("s3rver"), args=["--control-token", TOK])


def src_get(m, key):
    if m.kind == "file":
        p = m.data_dir / key
        return p.read_bytes() if p.is_file() else None
    try:
        return m.s3rver.client.get_object(Bucket=m.src_bucket, Key=m.prefix + key)["Body"].read()
    except ClientError:
        return None


ENV = {"FERRY_TOKEN": TOK}


def test_put_cat_rm_mv(lm, tmp_path):
    w = lm.worker
    data = rand_bytes(3 * MiB + 17, 21)
    (tmp_path / "in.bin").write_bytes(data)
    p = cli(w, "put", str(tmp_path / "in.bin"), "/data/dir/obj.bin", env=ENV)
    assert p.returncode == 0, p.stderr
    assert src_get(lm, "dir/obj.bin") == data
    before = w.ufs_reads() if lm.kind == "file" else None
    assert cli(w, "cat", "/data/dir/obj.bin", env=ENV).stdout == data
    if before is not None:
        assert w.ufs_reads() == before  # written through: served from the cache
    # stdin, an empty object, an overwrite
    p = cli(w, "put", "-", "/data/dir/empty", env=ENV, stdin=b"")
    assert p.returncode == 0, p.stderr
    assert src_get(lm, "dir/empty") == b""
    p = cli(w, "put", "-", "/data/dir/obj.bin", env=ENV, stdin=b"short now")
    assert p.returncode == 0, p.stderr
    assert cli(w, "cat", "/data/dir/obj.bin", env=ENV).stdout == b"short now"
    # mv within the mount; across mounts: the reason, nothing moved
    p = cli(w, "mv", "/data/dir/obj.bin", "/data/moved.bin", env=ENV)
    assert p.returncode == 0, p.stderr
    assert src_get(lm, "moved.bin") == b"short now" and src_get(lm, "dir/obj.bin") is None
    assert cli(w, "cat", "/data/moved.bin", env=ENV).stdout == b"short now"
    assert cli(w, "stat", "/data/dir/obj.bin", env=ENV).returncode != 0
    # rm: gone for every read at once
    p = cli(w, "rm", "/data/moved.bin", "/data/dir/empty", env=ENV)
    assert p.returncode == 0, p.stderr
    assert src_get(lm, "moved.bin") is None
    p = cli(w, "cat", "/data/moved.bin", env=ENV)
    assert p.returncode != 0
    w.assert_alive()


def test_errors_carry_the_reason(make_worker, data_dir, tmp_path):
    (data_dir / "r.bin").write_bytes(b"r")
    w = make_worker(args=["--control-token", TOK])
    w.mount("ro", f"file://{data_dir}", readonly="true")
    (tmp_path / "rw").mkdir()
    w.mount("rw", f"file://{tmp_path / 'rw'}")
    p = cli(w, "put", "-", "/ro/new.bin", env=ENV, stdin=b"x")
    assert p.returncode != 0, p.stderr
    assert b"read-only" in p.stderr.lower() or b"readonly" in p.stderr.lower(), p.stderr
    assert not (data_dir / "new.bin").exists()
    p = cli(w, "rm", "/ro/r.bin", env=ENV)
    assert p.returncode != 0 and (data_dir / "r.bin").exists()
    p = cli(w, "mv", "/ro/r.bin", "/rw/r.bin", env=ENV)
    assert p.returncode != 0 and b"across mounts" in p.stderr, p.stderr
    p = cli(w, "mv", "/rw/missing", "/rw/x", env=ENV)
    assert p.returncode != 0 and b"missing" in p.stderr, p.stderr
    p = cli(w, "put", "-", "/rw/", env=ENV, stdin=b"x")
    assert p.returncode != 0
    p = cli(w, "put", "-", "/rw/../etc/x", env=ENV, stdin=b"x")
    assert p.returncode != 0
    p = cli(w, "put", "-", "/nosuch/x", env=ENV, stdin=b"x")
    assert p.returncode != 0 and b"no such mount" in p.stderr, p.stderr
    w.assert_alive()


def test_writes_need_credentials(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir},
                    args=["--s3-access-key", AK, "--s3-secret-key", SK, "--s3-anonymous"])
    # Anonymous reads are open (as the gateway's); writes never are.
    for method, params in (("PUT", {"path": "/data/x"}), ("DELETE", {"path": "/data/x"})):
        r = w.ctl(method, "/v1/data", auth=False, params=params, data=b"evil")
        assert r.status_code == 401, (method, r.status_code)
    r = w.ctl("POST", "/v1/rename", auth=False, params={"from": "/data/a", "to": "/data/b"})
    assert r.status_code == 401
    p = cli(w, "put", "-", "/data/x", stdin=b"evil")
    assert p.returncode != 0 and not (data_dir / "x").exists()
    # Signed by the worker's S3 keys (no token): allowed.
    p = cli(w, "put", "-", "/data/x", stdin=b"good",
            env={"FERRY_S3_ACCESS_KEY": AK, "FERRY_S3_SECRET_KEY": SK})
    assert p.returncode == 0, p.stderr
    assert (data_dir / "x").read_bytes() == b"good"


def _tmp_sizes(d):
    return [p.stat().st_size for p in d.rglob(".ferry-tmp.*")]


@pytest.mark.parametrize("auth", ["token", "sigv4"])
def test_put_from_a_pipe_streams(make_worker, data_dir, auth):
    """`ferry put - PATH` (ferry_create with FERRY_CREATE_STREAM): the
    worker has the bytes while the producer is still writing; a put killed
    mid-stream commits nothing and leaves no temporary file."""
    from conftest import wait_for
    if auth == "token":
        w = make_worker(mounts={"data": data_dir}, args=["--control-token", TOK])
        env = ENV
    else:
        w = make_worker(mounts={"data": data_dir},
                        args=["--s3-access-key", AK, "--s3-secret-key", SK])
        env = {"FERRY_S3_ACCESS_KEY": AK, "FERRY_S3_SECRET_KEY": SK}
    e = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    e.update(env)
    data = rand_bytes(16 * MiB, 91)
    for kill in (False, True):
        key = "killed.bin" if kill else "piped.bin"
        p = subprocess.Popen([str(FERRY), "--worker", w.ctl_addr, "put", "-", f"/data/{key}"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        try:
            p.stdin.write(data)
            p.stdin.flush()
            # The pipe is still open: the under-store has most of it.
            wait_for(lambda: max(_tmp_sizes(data_dir), default=0) >= 12 * MiB, timeout=60,
                     what="the piped bytes in the under-store before the end")
            assert not (data_dir / key).exists()
            if kill:
                p.kill()
            else:
                p.stdin.close()
            rc = p.wait(60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if kill:
            wait_for(lambda: _tmp_sizes(data_dir) == [], timeout=30,
                     what="the cut put's temporary file to go")
            assert not (data_dir / key).exists()
        else:
            assert rc == 0, p.stderr.read()
            assert (data_dir / key).read_bytes() == data
            assert _tmp_sizes(data_dir) == []
