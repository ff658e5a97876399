"""write=back mounts: a write is acknowledged once it is durable on the
worker's disk, and uploaded to the under-store in the background.

What a user relies on: every acknowledged write reaches the under-store
byte for byte, in write order per key (the last write wins), also when the
store was down or hung during the writes, and when the worker was killed
with -9 and restarted before the uploads; until then GET, HEAD and LIST
through the gateway, libferry (the CLI) and FUSE already show the new
state; past --writeback-limit a write gets 503 SlowDown, never a silent
loss; `ferry writeback` says what is pending and why it is not uploaded;
an unmount that would drop pending writes is refused.
"""
import json
import os
import signal
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from conftest import FERRY, S3rver, free_port, rand_bytes, wait_for
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401 (fixture)

MiB = 1 << 20
# The store's calls give up fast here, so a stopped store costs seconds.
FAST = {"s3.deadline_ms": "3000", "s3.stall_ms": "1000", "s3.connect_timeout_ms": "1000"}


class PortS3rver(S3rver):
    """An s3rver on a fixed port and data dir, so that it can be killed and
    started again as the same store."""

    def __init__(self, workdir, port):
        super().__init__(workdir)
        self.fixed_port = port

    def start(self):
        import re
        from conftest import ANSI, S3RVER_BIN, S3RVER_KEY, s3_client
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"s3rver-{int(time.time() * 1000)}.log"
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider", FORCE_COLOR="1")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [str(S3RVER_BIN), "-d", str(self.dir / "data"), "-a", "127.0.0.1",
                 "-p", str(self.fixed_port)],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", ANSI.sub("", self._raw())),
                 timeout=30, what="s3rver to listen")
        self.port = self.fixed_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = s3_client(self.url, S3RVER_KEY, S3RVER_KEY)
        return self

    def freeze(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self):
        os.killpg(self.proc.pid, signal.SIGCONT)

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def store(tmp_path):
    s = PortS3rver(tmp_path / "s3rver", free_port()).start()
    yield s
    if s.proc and s.proc.poll() is None:
        os.killpg(s.proc.pid, signal.SIGCONT)
    s.stop()


def wb_status(w):
    r = w.ctl("GET", "/v1/writeback")
    assert r.status_code == 200, r.text
    return {m["mount"]: m for m in r.json()["mounts"]}


def drained(w, mount="ck", timeout=60):
    return wait_for(lambda: wb_status(w).get(mount, {}).get("objects", 1) == 0 or None,
                    timeout, what="write-back to drain")


def store_get(s3, bucket, key):
    try:
        return s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def back_worker(make_worker, s3, bucket, args=(), name="ck"):
    w = make_worker(args=["--writeback-parallel", "2"] + list(args))
    w.mount(name, f"s3://{bucket}", write="back", **s3.mount_options(**FAST))
    return w


def gw(w):
    return w.s3()  # one attempt: a SlowDown is seen, not retried


def test_put_acked_then_uploaded_file_store(make_worker, tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    w = make_worker()
    w.mount("ck", f"file://{d}", write="back")
    c = w.s3()
    big = rand_bytes(3 * MiB + 17, 1)
    c.put_object(Bucket="ck", Key="run7/step-1.pt", Body=big)
    c.put_object(Bucket="ck", Key="run7/meta.json", Body=b"{}", ContentType="application/json")
    assert c.get_object(Bucket="ck", Key="run7/step-1.pt")["Body"].read() == big
    drained(w)
    assert (d / "run7" / "step-1.pt").read_bytes() == big
    assert (d / "run7" / "meta.json").read_bytes() == b"{}"
    m = w.metrics()
    assert m[("ferry_put_requests_total", frozenset({("mode", "back")}))] == 2
    assert m[("ferry_writeback_pending_objects", frozenset())] == 0
    assert m[("ferry_writeback_uploaded_total", frozenset())] == 2
    # The read after the upload is served from the cache: no under-store read.
    reads = w.ufs_reads()
    assert c.get_object(Bucket="ck", Key="run7/step-1.pt")["Body"].read() == big
    assert w.ufs_reads() == reads


def test_get_that_spans_the_upload_of_its_object_gets_every_byte(make_worker, tmp_path):
    """Regression: CI saw a GET of a just-written object lose its last page
    (IncompleteRead) when the upload finished mid-response: the pages it had
    not sent yet moved to the store's version, and the fetch of the rest
    asked the store for the staged ETag, which it never had."""
    d = tmp_path / "store"
    d.mkdir()
    w = make_worker(args=["--writeback-bandwidth", "4M"])
    w.mount("ck", f"file://{d}", write="back")
    c = w.s3()
    big = rand_bytes(32 * MiB + 17, 3)
    c.put_object(Bucket="ck", Key="ckpt.pt", Body=big)
    body = c.get_object(Bucket="ck", Key="ckpt.pt")["Body"]
    first = body.read(MiB)
    # The upload (about 8 s at 4 MiB/s) ends while most of the body is
    # still to be sent: more than the socket buffers hold.
    assert wb_status(w)["ck"]["objects"] == 1
    drained(w)
    assert first + body.read() == big
    assert (d / "ckpt.pt").read_bytes() == big


def test_store_hung_then_back(make_worker, store):
    bucket = store.new_bucket()
    store.client.put_object(Bucket=bucket, Key="old.bin", Body=b"old")
    store.client.put_object(Bucket=bucket, Key="gone.bin", Body=b"gone")
    w = back_worker(make_worker, store, bucket)
    c = gw(w)
    assert c.get_object(Bucket="ck", Key="old.bin")["Body"].read() == b"old"
    store.freeze()
    try:
        objs = {f"ckpt/shard-{i:02d}.bin": rand_bytes(200_000 + i, 10 + i) for i in range(6)}
        t0 = time.monotonic()
        for k, v in objs.items():
            c.put_object(Bucket="ck", Key=k, Body=v)
        c.put_object(Bucket="ck", Key="old.bin", Body=b"new")
        c.delete_object(Bucket="ck", Key="gone.bin")
        # Acknowledged from local disk, not after store timeouts.
        assert time.monotonic() - t0 < 10
        # Read-after-write while the store is hung: GET, HEAD, LIST.
        for k, v in objs.items():
            assert c.get_object(Bucket="ck", Key=k)["Body"].read() == v
        assert c.head_object(Bucket="ck", Key="ckpt/shard-03.bin")["ContentLength"] == 200_003
        assert c.get_object(Bucket="ck", Key="old.bin")["Body"].read() == b"new"
        with pytest.raises(ClientError) as ei:
            c.head_object(Bucket="ck", Key="gone.bin")
        assert ei.value.response["Error"]["Code"] in ("404", "NoSuchKey")
        # The CLI (libferry) sees it too.
        p = w.cli("cat", "/ck/ckpt/shard-01.bin")
        assert p.stdout == objs["ckpt/shard-01.bin"]
        # What is pending, and why.
        st = wait_for(lambda: (lambda s: s if s["failures"] > 0 else None)(wb_status(w)["ck"]),
                      30, what="an upload to fail")
        assert st["objects"] == 8 and st["bytes"] == sum(len(v) for v in objs.values()) + 3
        assert st["last_error"]
        out = w.cli("writeback").stdout.decode()
        assert "/ck" in out and " 8 " in out
        p = w.cli("writeback", "--wait", "--timeout", "1", check=False)
        assert p.returncode == 1
        assert b"8 write(s) still not in the under-store" in p.stderr
        assert b"last error: /ck: " in p.stderr
    finally:
        store.thaw()
    drained(w, timeout=90)
    for k, v in objs.items():
        assert store_get(store, bucket, k) == v
    assert store_get(store, bucket, "old.bin") == b"new"
    assert store_get(store, bucket, "gone.bin") is None
    assert "takes writes again" in w.log()


def test_kill9_with_writes_pending_then_restart(make_worker, store):
    bucket = store.new_bucket()
    w = back_worker(make_worker, store, bucket)
    c = gw(w)
    store.kill()  # refusing connections
    objs = {f"o{i}.bin": rand_bytes(50_000 * (i + 1), 40 + i) for i in range(8)}
    objs["big.bin"] = rand_bytes(5 * MiB + 3, 99)
    for k, v in objs.items():
        c.put_object(Bucket="ck", Key=k, Body=v)
    # Overwrites: the last one must win.
    c.put_object(Bucket="ck", Key="o1.bin", Body=b"second")
    objs["o1.bin"] = b"second"
    # (The first o1.bin may be in an upload attempt still: it goes when
    # that fails, replaced.)
    wait_for(lambda: wb_status(w)["ck"]["objects"] == len(objs) or None, 30,
             what="the replaced write to go")
    w.expect_death = True
    w.kill()
    store.start()
    w.expect_death = False
    w.drop_mount_args()
    w.start()
    c = gw(w)
    # Before and after the uploads, the bytes read are the written ones.
    assert c.get_object(Bucket="ck", Key="big.bin")["Body"].read() == objs["big.bin"]
    p = w.cli("writeback", "/ck", "--wait", "--timeout", "90", timeout=120)
    assert b"every write is in its under-store" in p.stdout
    for k, v in objs.items():
        assert store_get(store, bucket, k) == v, k
    assert "staged by an earlier run" in w.log()


def test_limit_answers_slowdown_never_loses(make_worker, store):
    bucket = store.new_bucket()
    w = back_worker(make_worker, store, bucket, args=["--writeback-limit", "1M"])
    c = gw(w)
    store.freeze()
    try:
        a = rand_bytes(600_000, 5)
        b = rand_bytes(600_000, 6)
        c.put_object(Bucket="ck", Key="a.bin", Body=a)
        with pytest.raises(ClientError) as ei:
            c.put_object(Bucket="ck", Key="b.bin", Body=b)
        assert ei.value.response["Error"]["Code"] == "SlowDown"
        assert "staging is full" in ei.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as ei:
            c.put_object(Bucket="ck", Key="huge.bin", Body=b"x" * (1 << 20 + 1))
        assert ei.value.response["Error"]["Code"] == "EntityTooLarge"
        with pytest.raises(ClientError):
            c.head_object(Bucket="ck", Key="b.bin")  # refused: nothing of it
        # The same through the control API (libferry's put).
        src = w.tmp / "b.src"
        src.write_bytes(b)
        p = w.cli("put", src, "/ck/b.bin", check=False)
        assert p.returncode != 0 and b"staging is full" in p.stderr
    finally:
        store.thaw()
    drained(w, timeout=90)
    c.put_object(Bucket="ck", Key="b.bin", Body=b)
    drained(w, timeout=90)
    assert store_get(store, bucket, "a.bin") == a
    assert store_get(store, bucket, "b.bin") == b


def test_unmount_refused_while_pending(make_worker, store):
    bucket = store.new_bucket()
    w = back_worker(make_worker, store, bucket)
    store.freeze()
    try:
        gw(w).put_object(Bucket="ck", Key="x", Body=b"x")
        p = w.cli("unmount", "/ck", check=False)
        assert p.returncode != 0 and b"not yet in its under-store" in p.stderr
    finally:
        store.thaw()
    drained(w)
    w.cli("unmount", "/ck")
    assert store_get(store, bucket, "x") == b"x"


def test_write_back_is_refused_in_a_cluster_and_bad_values(make_worker, tmp_path):
    w = make_worker()
    r = w.ctl("POST", "/v1/mounts", json={"name": "x", "uri": f"file://{tmp_path}",
                                          "options": {"write": "later"}})
    assert r.status_code == 400 and "back" in r.json()["error"]
    # One staging area per under-store: a second write=back mount of the
    # same URI is refused (it would upload the first one's writes).
    r = w.ctl("POST", "/v1/mounts", json={"name": "a", "uri": f"file://{tmp_path}",
                                          "options": {"write": "back"}})
    assert r.status_code == 200, r.text
    r = w.ctl("POST", "/v1/mounts", json={"name": "b", "uri": f"file://{tmp_path}",
                                          "options": {"write": "back"}})
    assert r.status_code == 400 and "already a write=back mount (/a)" in r.json()["error"]
    w.s3().put_object(Bucket="a", Key="k", Body=b"still uploads")
    drained(w, "a")
    assert (tmp_path / "k").read_bytes() == b"still uploads"
    p = subprocess.run([str(FERRY), "worker", "--writeback-limit", "lots"],
                       capture_output=True, timeout=30)
    assert p.returncode == 2 and b"--writeback-limit" in p.stderr


def list_all(c, **kw):
    """Every key and common prefix of a listing, page by page."""
    keys, prefixes, tok = [], [], None
    for _ in range(50):
        a = dict(kw, Bucket="ck")
        if tok:
            a["ContinuationToken"] = tok
        page = c.list_objects_v2(**a)
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page.get("IsTruncated"):
            return keys, prefixes
        tok = page["NextContinuationToken"]
    raise AssertionError("listing did not end")


def test_listing_shows_pending_writes_and_deletes(make_worker, store):
    bucket = store.new_bucket()
    for k in ["a/1", "a/2", "b", "d/x", "e"]:
        store.client.put_object(Bucket=bucket, Key=k, Body=b"s-" + k.encode())
    # Uploads at 20 KB/s: what is written below stays pending for seconds.
    w = back_worker(make_worker, store, bucket, args=["--writeback-bandwidth", "20K"])
    c = gw(w)
    for k in ["a/0", "a/3", "c/new", "c/deeper/z", "e", "f"]:
        c.put_object(Bucket="ck", Key=k, Body=rand_bytes(100_000, len(k)))
    c.delete_object(Bucket="ck", Key="b")
    c.delete_object(Bucket="ck", Key="d/x")
    want = ["a/0", "a/1", "a/2", "a/3", "c/deeper/z", "c/new", "e", "f"]
    for mk in (1000, 2, 1):
        assert list_all(c, MaxKeys=mk) == (want, []), mk
        assert list_all(c, MaxKeys=mk, Delimiter="/") == (["e", "f"], ["a/", "c/"]), mk
        assert list_all(c, MaxKeys=mk, Prefix="a/") == (["a/0", "a/1", "a/2", "a/3"], []), mk
        assert list_all(c, MaxKeys=mk, Prefix="c/", Delimiter="/") == (["c/new"], ["c/deeper/"]), mk
    assert list_all(c, StartAfter="a/2") == (want[3:], [])
    # The CLI lists through libferry and the control API.
    out = w.cli("ls", "/ck/c").stdout.decode()
    assert "new" in out and "deeper" in out
    # All of it was answered while the writes were still pending.
    assert wb_status(w)["ck"]["objects"] == 8


@pytest.mark.skipif(not os.path.exists("/dev/fuse") or FUSERMOUNT is None,
                    reason="FUSE unavailable")
def test_fuse_writes_on_a_write_back_mount(make_worker, store, fuse_mount):  # noqa: F811
    bucket = store.new_bucket()
    w = back_worker(make_worker, store, bucket, args=["--writeback-bandwidth", "1M"],
                    name="data")  # what the fuse fixture waits for
    fm = fuse_mount(w)
    root = fm.mnt / "data"
    data = rand_bytes(3 * MiB + 5, 77)
    with open(root / "model.pt", "wb") as f:
        f.write(data)
    assert (root / "model.pt").read_bytes() == data
    assert "model.pt" in os.listdir(root)
    assert w.metric("ferry_put_requests_total", mode="back") == 1
    drained(w, "data", timeout=90)
    assert store_get(store, bucket, "model.pt") == data
    assert (root / "model.pt").read_bytes() == data
    assert json.loads(w.cli("writeback", "--json").stdout)["mounts"][0]["objects"] == 0


def test_two_clients_writing_one_key(make_worker, store):
    """Racing writers of one key: the store ends with one whole body, the
    one every read through ferry returns (no mix, no older one after it)."""
    import threading
    bucket = store.new_bucket()
    w = back_worker(make_worker, store, bucket)
    bodies = [rand_bytes(150_000 + i, 200 + i) for i in range(4)]
    errors = []

    def writer(i):
        c = gw(w)
        try:
            for _ in range(15):
                c.put_object(Bucket="ck", Key="hot.bin", Body=bodies[i])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))
    ts = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    got = gw(w).get_object(Bucket="ck", Key="hot.bin")["Body"].read()
    assert got in bodies
    drained(w, timeout=90)
    assert store_get(store, bucket, "hot.bin") == got
    assert gw(w).get_object(Bucket="ck", Key="hot.bin")["Body"].read() == got
