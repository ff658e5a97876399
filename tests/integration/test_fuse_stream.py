"""Streamed writes through `ferry fuse`: a new file written strictly in
order from offset 0 goes to the worker while it is written (libferry's
FERRY_CREATE_STREAM: one PUT with a chunked body that follows the staged
file), so close() only ends the body and waits for the under-store's
commit.  Any other pattern falls back to the staged upload at close.

What a user relies on: the bytes written are the bytes the under-store
holds; a write that stops being sequential still ends exactly right; a
writer killed before close, or a client that dies mid-stream, leaves no
object and no partial file in the under-store; a refused write still fails
close() with the under-store's error.  The file:// under-store writes a
body into a hidden ".ferry-tmp.*" file next to its destination, which is
how these tests see the bytes arrive before close().
"""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import make_mounted, rand_bytes, wait_for
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401 (fixture)

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or FUSERMOUNT is None,
    reason="FUSE unavailable: needs /dev/fuse and fusermount3 (apt-get install fuse3)")


def tmp_files(d):
    """The under-store's temporary files under d: {path: size}."""
    out = {}
    for root, _dirs, files in os.walk(d):
        for n in files:
            if n.startswith(".ferry-tmp."):
                p = os.path.join(root, n)
                try:
                    out[p] = os.stat(p).st_size
                except FileNotFoundError:
                    pass
    return out


def streamed_bytes(d):
    t = tmp_files(d)
    return max(t.values()) if t else 0


@pytest.fixture
def fmount(make_worker, fuse_mount, data_dir):  # noqa: F811
    w = make_worker(mounts={"data": data_dir})
    m = fuse_mount(w)
    m.root = m.mnt / "data"
    m.data_dir = data_dir
    return m


def test_sequential_write_streams_before_close(fmount):
    """The worker has most of a sequential file while the writer still
    holds it open (on the staged path nothing arrives before close())."""
    data = rand_bytes(64 * MiB, 71)
    f = open(fmount.root / "big.bin", "wb")
    try:
        for i in range(0, len(data), MiB):
            f.write(data[i:i + MiB])
        f.flush()
        # Still open: the under-store's temporary file holds nearly all.
        wait_for(lambda: streamed_bytes(fmount.data_dir) >= 60 * MiB, timeout=60,
                 what="the streamed bytes in the under-store before close()")
        assert not (fmount.data_dir / "big.bin").exists()
    finally:
        f.close()
    assert (fmount.data_dir / "big.bin").read_bytes() == data
    assert tmp_files(fmount.data_dir) == {}
    assert (fmount.root / "big.bin").read_bytes() == data


def test_dd_streams_byte_exact(fmount, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(rand_bytes(64 * MiB + 4321, 72))
    p = subprocess.run(["dd", f"if={src}", f"of={fmount.root / 'dd.bin'}", "bs=1M",
                        "status=none"], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (fmount.data_dir / "dd.bin").read_bytes() == src.read_bytes()
    assert tmp_files(fmount.data_dir) == {}


@pytest.mark.parametrize("how", ["overwrite", "gap", "truncate"])
def test_out_of_order_falls_back_exactly(fmount, how):
    """Streaming, then a write that is not at the end: the stream is
    abandoned (nothing committed, no temporary file left) and close()
    uploads the staged file, which is exactly what was written."""
    data = bytearray(rand_bytes(8 * MiB, 73))
    f = open(fmount.root / "fb.bin", "wb")
    f.write(data)
    f.flush()
    wait_for(lambda: streamed_bytes(fmount.data_dir) > 0, timeout=30,
             what="the stream to start")
    if how == "overwrite":
        f.seek(1000)
        f.write(b"Z" * 5000)
        data[1000:6000] = b"Z" * 5000
        f.seek(0, os.SEEK_END)
        f.write(b"tail")
        data += b"tail"
    elif how == "gap":
        f.seek(len(data) + 100)
        f.write(b"after a hole")
        data += b"\0" * 100 + b"after a hole"
    else:
        f.truncate(3 * MiB)
        del data[3 * MiB:]
    f.flush()
    # The abandoned stream leaves nothing behind in the under-store.
    wait_for(lambda: tmp_files(fmount.data_dir) == {}, timeout=30,
             what="the abandoned stream's temporary file to go")
    assert not (fmount.data_dir / "fb.bin").exists()
    f.close()
    assert (fmount.data_dir / "fb.bin").read_bytes() == bytes(data)
    assert tmp_files(fmount.data_dir) == {}


def test_s3_streamed_and_abandoned_are_exact(make_worker, fuse_mount, tmp_path, s3rver):  # noqa: F811
    """Against an S3 under-store (a body of unknown length: a multipart
    upload of 8 MiB parts): a streamed file, and one whose stream is
    abandoned after several parts went up, both end byte-exact."""
    m = make_mounted("s3", make_worker, tmp_path, lambda: s3rver)
    root = fuse_mount(m.worker).mnt / "data"

    def get(key):
        return m.s3rver.client.get_object(Bucket=m.src_bucket, Key=m.prefix + key)["Body"].read()
    a = rand_bytes(20 * MiB + 17, 79)
    with open(root / "a.bin", "wb") as f:
        for i in range(0, len(a), MiB):
            f.write(a[i:i + MiB])
    assert get("a.bin") == a
    b = bytearray(rand_bytes(20 * MiB, 80))
    with open(root / "b.bin", "wb") as f:
        f.write(b)
        f.flush()
        f.seek(1000)
        f.write(b"Z" * 5000)
        b[1000:6000] = b"Z" * 5000
    assert get("b.bin") == bytes(b)


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
chunk = os.urandom(1 << 20)
for _ in range(int(sys.argv[2])):
    os.write(fd, chunk)
print("written", flush=True)
sys.stdin.read()  # holds the file open until killed
"""


def test_writer_killed_mid_stream_leaves_nothing(fmount):
    """kill -9 of the writing process: the kernel still closes its file
    (a FLUSH), but a writer that died of a signal publishes nothing."""
    p = subprocess.Popen([sys.executable, "-c", WRITER, str(fmount.root / "killed.bin"), "16"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"written\n"
        wait_for(lambda: streamed_bytes(fmount.data_dir) >= 8 * MiB, timeout=30,
                 what="the stream to carry the bytes")
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    wait_for(lambda: tmp_files(fmount.data_dir) == {}, timeout=30,
             what="the killed writer's temporary file to go")
    # Nothing published: neither in the under-store nor through the worker.
    assert not (fmount.data_dir / "killed.bin").exists()
    assert not os.path.exists(fmount.root / "killed.bin")


STAGED_WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, b"late" * 1000, 100000)  # not in order: staged
os.pwrite(fd, b"early" * 1000, 0)
print("written", flush=True)
sys.stdin.read()
"""


def test_writer_killed_staged_leaves_nothing(fmount):
    """The same for a file that never streamed: the kernel's close of a
    killed writer's file publishes nothing (it used to upload the part
    written).  A later ordinary write of the same name still works."""
    p = subprocess.Popen([sys.executable, "-c", STAGED_WRITER, str(fmount.root / "cut.bin")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"written\n"
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # The kernel waits for the killed writer's FLUSH before its exit ends
    # (wait() returned); an upload there would be done by now.
    with open(fmount.root / "probe.bin", "wb") as f:
        f.write(b"probe")
    assert (fmount.data_dir / "probe.bin").read_bytes() == b"probe"
    assert not (fmount.data_dir / "cut.bin").exists()
    assert not os.path.exists(fmount.root / "cut.bin")
    with open(fmount.root / "cut.bin", "wb") as f:
        f.write(b"whole")
    assert (fmount.data_dir / "cut.bin").read_bytes() == b"whole"


def test_client_killed_mid_stream_leaves_nothing(fmount):
    """The FUSE client itself dies mid-stream (close never comes): the
    worker sees the body cut and commits nothing."""
    fd = os.open(fmount.root / "lost.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for _ in range(16):
            os.write(fd, rand_bytes(MiB, 74))
        wait_for(lambda: streamed_bytes(fmount.data_dir) >= 8 * MiB, timeout=30,
                 what="the stream to carry the bytes")
        fmount.stop(signal.SIGKILL)
        wait_for(lambda: tmp_files(fmount.data_dir) == {}, timeout=30,
                 what="the cut stream's temporary file to go")
        assert not (fmount.data_dir / "lost.bin").exists()
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def test_streamed_write_refused_fails_close(make_worker, fuse_mount, data_dir):  # noqa: F811
    """A streamed file the under-store refuses: close() says so."""
    w = make_worker()
    w.mount("data", f"file://{data_dir}", readonly="true")
    m = fuse_mount(w)
    f = open(m.mnt / "data" / "big.bin", "wb")
    f.write(rand_bytes(8 * MiB, 75))
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EROFS
    assert not (data_dir / "big.bin").exists()
    assert tmp_files(data_dir) == {}


def test_streamed_commit_refused_fails_close(fmount):
    """The under-store refuses a streamed body at its commit (O_EXCL, and
    the name appeared meanwhile): close() gets that answer, EEXIST, and
    the other writer's file stays."""
    data = rand_bytes(6 * MiB, 82)
    fd = os.open(fmount.root / "excl.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        os.write(fd, data)
        wait_for(lambda: streamed_bytes(fmount.data_dir) > 0, timeout=30,
                 what="the stream to start")
        (fmount.data_dir / "excl.bin").write_bytes(b"theirs")
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
    assert e.value.errno == errno.EEXIST
    assert (fmount.data_dir / "excl.bin").read_bytes() == b"theirs"
    assert tmp_files(fmount.data_dir) == {}


def test_fsync_mid_stream_commits_then_rewrites(fmount):
    """fsync() of a streamed file commits what was written so far; later
    writes make the next close() upload the whole file again."""
    a, b = rand_bytes(4 * MiB, 76), rand_bytes(3 * MiB, 77)
    with open(fmount.root / "fs.bin", "wb") as f:
        f.write(a)
        f.flush()
        os.fsync(f.fileno())
        assert (fmount.data_dir / "fs.bin").read_bytes() == a
        f.write(b)
    assert (fmount.data_dir / "fs.bin").read_bytes() == a + b
    assert tmp_files(fmount.data_dir) == {}


@pytest.mark.parametrize("pace_ms", [0, 20])
def test_close_latency_streamed_vs_staged(make_worker, fuse_mount, data_dir, tmp_path, monkeypatch,  # noqa: F811
                                          pace_ms):
    """Not a pass/fail bound on speed: prints the time from the last write
    to close() returning for a 256 MiB file written 1 MiB at a time (as
    fast as it goes, or one every pace_ms, as a serializer would), streamed
    and staged ($FERRY_STREAM=0 in the client's environment)."""
    if not os.environ.get("FERRY_BENCH_STREAM"):
        pytest.skip("set FERRY_BENCH_STREAM=1 to measure")
    w = make_worker(mounts={"data": data_dir})
    chunk = rand_bytes(MiB, 78)
    out = {}
    for mode in ("stream", "staged"):
        if mode == "staged":
            monkeypatch.setenv("FERRY_STREAM", "0")
        m = fuse_mount(w, mnt=tmp_path / f"mnt-{mode}")
        f = open(m.mnt / "data" / f"{mode}.bin", "wb", buffering=0)
        t0 = time.monotonic()
        for i in range(256):
            f.write(chunk)
            if pace_ms:
                time.sleep(max(0.0, t0 + (i + 1) * pace_ms / 1000 - time.monotonic()))
        t1 = time.monotonic()
        sent = streamed_bytes(data_dir)
        f.close()
        t2 = time.monotonic()
        out[mode] = (t1 - t0, t2 - t1, sent)
        assert (data_dir / f"{mode}.bin").stat().st_size == 256 * MiB
    for mode, (wr, cl, sent) in out.items():
        print(f"\npace {pace_ms} ms, {mode}: writes {wr:.2f} s, last write -> close() {cl:.2f} s "
              f"({sent / MiB:.0f} MiB in the under-store at the last write)")


def test_write_back_mount_streamed_then_uploaded(make_worker, fuse_mount, tmp_path):  # noqa: F811
    """A write=back mount stages the streamed body on the worker (its
    length known only at the end) and uploads it exactly."""
    d = tmp_path / "store"
    d.mkdir()
    w = make_worker()
    w.mount("data", f"file://{d}", write="back")
    m = fuse_mount(w)
    data = rand_bytes(12 * MiB + 5, 81)
    with open(m.mnt / "data" / "step.pt", "wb") as f:
        for i in range(0, len(data), MiB):
            f.write(data[i:i + MiB])
    wait_for(lambda: (d / "step.pt").is_file() and (d / "step.pt").stat().st_size == len(data),
             timeout=60, what="the write-back upload")
    assert (d / "step.pt").read_bytes() == data


def test_write_back_file_read_back_while_and_after_its_upload(make_worker, fuse_mount, tmp_path):  # noqa: F811
    """Regression: torch.save then torch.load over FUSE on a write=back
    mount failed with EIO ("changed while open"): the open pinned the staged
    version, and the upload made the same bytes the store's version.  A
    reader pinned to the staged version gets them under either."""
    d = tmp_path / "store"
    d.mkdir()
    w = make_worker(args=["--writeback-bandwidth", "2M"])
    w.mount("data", f"file://{d}", write="back")
    m = fuse_mount(w)
    data = rand_bytes(8 * MiB + 5, 82)
    (m.mnt / "data" / "ck.pt").write_bytes(data)
    with open(m.mnt / "data" / "ck.pt", "rb") as f:
        assert f.read(MiB) == data[:MiB]  # the staged version, the upload under way
        staged = w.stat("/data/ck.pt")["etag"]
        assert not (d / "ck.pt").exists()
        # Uploaded, and the worker answers the store's version now.
        wait_for(lambda: w.stat("/data/ck.pt")["etag"] != staged, timeout=60,
                 what="the write-back upload")
        assert f.read() == data[MiB:]
    assert (m.mnt / "data" / "ck.pt").read_bytes() == data
