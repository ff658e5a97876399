"""Writes through `ferry fuse`: each change is staged on this host and goes
to the worker (and its under-store) at close() or fsync(), whose return
value is the under-store's answer.  Driven by ordinary tools (dd, cp -r,
rsync, mv) and Python (sequential, random and appending writes, truncate,
torch.save), against a file:// mount and an s3rver one.

What a user relies on: the bytes written are the bytes the under-store
holds and every later read returns; nothing is visible elsewhere before
close(); a refused write (a readonly=true mount) fails close() with EROFS
and leaves nothing; renames, removals and mkdir behave as on a local disk
within the limits docs/architecture.md states.
"""
import errno
import os
import shutil
import subprocess

import pytest

from conftest import FERRY, make_mounted, rand_bytes
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401 (fixture)

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or FUSERMOUNT is None,
    reason="FUSE unavailable: needs /dev/fuse and fusermount3 (apt-get install fuse3)")


def src_get(m, key):
    if m.kind == "file":
        p = m.data_dir / key
        return p.read_bytes() if p.is_file() else None
    from botocore.exceptions import ClientError
    try:
        return m.s3rver.client.get_object(Bucket=m.src_bucket, Key=m.prefix + key)["Body"].read()
    except ClientError:
        return None


@pytest.fixture(params=["file", "s3"])
def fm(request, make_worker, fuse_mount, tmp_path):  # noqa: F811
    m = make_mounted(request.param, make_worker, tmp_path,
                     lambda: request.getfixturevalue("s3rver"))
    m.fuse = fuse_mount(m.worker)
    m.root = m.fuse.mnt / "data"
    return m


def test_sequential_random_append_truncate(fm):
    root = fm.root
    data = rand_bytes(5 * MiB + 123, 31)
    with open(root / "seq.bin", "wb") as f:
        for i in range(0, len(data), MiB):
            f.write(data[i:i + MiB])
        # Not visible anywhere before close(): not in the store.
        assert src_get(fm, "seq.bin") is None
    assert src_get(fm, "seq.bin") == data
    assert (root / "seq.bin").read_bytes() == data
    assert os.stat(root / "seq.bin").st_size == len(data)
    # A rewrite in the middle keeps the rest.
    with open(root / "seq.bin", "r+b") as f:
        f.seek(2 * MiB + 5)
        f.write(b"X" * 1000)
    want = data[:2 * MiB + 5] + b"X" * 1000 + data[2 * MiB + 1005:]
    assert src_get(fm, "seq.bin") == want
    with open(root / "seq.bin", "ab") as f:
        f.write(b"tail")
    want += b"tail"
    assert src_get(fm, "seq.bin") == want
    # Random order, holes, read back while open.
    with open(root / "rand.bin", "w+b") as f:
        f.seek(300000)
        f.write(b"B" * 100)
        f.seek(0)
        f.write(b"A" * 10)
        f.seek(0)
        got = f.read()
        assert got == b"A" * 10 + b"\0" * (300000 - 10) + b"B" * 100
        assert os.fstat(f.fileno()).st_size == 300100
    assert src_get(fm, "rand.bin") == got
    os.truncate(root / "rand.bin", 10)
    assert src_get(fm, "rand.bin") == b"A" * 10
    with open(root / "rand.bin", "r+b") as f:
        f.truncate(3)
    assert src_get(fm, "rand.bin") == b"A" * 3
    with open(root / "rand.bin", "wb"):
        pass  # O_TRUNC, no write: empty
    assert src_get(fm, "rand.bin") == b""
    # dd with fsync.
    subprocess.run(["dd", "if=/dev/zero", f"of={root / 'dd.bin'}", "bs=1M", "count=3",
                    "conv=fsync", "status=none"], check=True, timeout=60)
    assert src_get(fm, "dd.bin") == b"\0" * (3 * MiB)


def test_tree_copy_rename_remove(fm, tmp_path):
    src = tmp_path / "src"
    files = {"a.txt": b"a" * 10, "d1/b.bin": rand_bytes(200000, 32), "d1/d2/c.bin": rand_bytes(7, 33)}
    for rel, b in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b)
    root = fm.root
    p = subprocess.run(["cp", "-r", str(src), str(root / "copy")], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for rel, b in files.items():
        assert src_get(fm, f"copy/{rel}") == b, rel
    p = subprocess.run(["diff", "-r", str(src), str(root / "copy")], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    # rsync: a temporary name, then a rename into place.
    if shutil.which("rsync"):
        p = subprocess.run(["rsync", "-r", str(src) + "/", str(root / "synced")],
                           capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr
        for rel, b in files.items():
            assert src_get(fm, f"synced/{rel}") == b, rel
    # mkdir: there at once (for this client), and a file lands in it.
    os.mkdir(root / "newdir")
    assert os.path.isdir(root / "newdir") and os.listdir(root / "newdir") == []
    with pytest.raises(FileExistsError):
        os.mkdir(root / "newdir")
    (root / "newdir" / "f").write_bytes(b"f")
    assert src_get(fm, "newdir/f") == b"f"
    os.mkdir(root / "gone")
    os.rmdir(root / "gone")
    assert not os.path.exists(root / "gone")
    # rename a file within the mount; mv of a directory (EXDEV: mv copies)
    os.rename(root / "copy" / "a.txt", root / "moved.txt")
    assert src_get(fm, "moved.txt") == files["a.txt"] and src_get(fm, "copy/a.txt") is None
    assert (root / "moved.txt").read_bytes() == files["a.txt"]
    subprocess.run(["mv", str(root / "copy" / "d1"), str(root / "d1moved")], check=True, timeout=60)
    assert src_get(fm, "d1moved/d2/c.bin") == files["d1/d2/c.bin"]
    assert src_get(fm, "copy/d1/d2/c.bin") is None
    # remove
    with pytest.raises(OSError) as e:
        os.rmdir(root / "d1moved")
    assert e.value.errno == errno.ENOTEMPTY
    os.remove(root / "moved.txt")
    assert src_get(fm, "moved.txt") is None and not os.path.exists(root / "moved.txt")
    shutil.rmtree(root / "d1moved")
    assert src_get(fm, "d1moved/b.bin") is None
    fm.worker.assert_alive()


def test_kept_listing_shows_this_mounts_changes(fm):
    """ferry fuse lets the kernel keep a directory's listing across opens
    (cache_readdir + keep_cache, for the attribute timeout).  A change made
    through the same mount shows in the next listing at once: a file
    written (and uploaded at close), renamed, removed, a directory that got
    a file and lost it again."""
    root = fm.root
    os.mkdir(root / "k")
    (root / "k" / "a").write_bytes(b"a")
    (root / "other").write_bytes(b"o")
    for _ in range(3):  # listed, then listed again from what the kernel kept
        assert sorted(os.listdir(root / "k")) == ["a"]
    (root / "k" / "b").write_bytes(b"b")
    assert sorted(os.listdir(root / "k")) == ["a", "b"]
    os.rename(root / "k" / "a", root / "k" / "c")
    assert sorted(os.listdir(root / "k")) == ["b", "c"]
    os.remove(root / "k" / "b")
    assert sorted(os.listdir(root / "k")) == ["c"]
    # (An empty mkdir'd directory is this client's alone and not listed in
    # its parent; one holding a file is.)
    os.mkdir(root / "k" / "sub")
    (root / "k" / "sub" / "f").write_bytes(b"f")
    assert sorted(os.listdir(root / "k")) == ["c", "sub"]
    os.remove(root / "k" / "sub" / "f")
    os.rmdir(root / "k" / "sub")
    assert sorted(os.listdir(root / "k")) == ["c"]
    # A rewrite of an existing file keeps the name; its new size shows.
    (root / "k" / "c").write_bytes(b"cc")
    assert sorted(os.listdir(root / "k")) == ["c"]
    assert os.stat(root / "k" / "c").st_size == 2
    assert src_get(fm, "k/c") == b"cc" and src_get(fm, "k/a") is None
    assert "other" in os.listdir(root)
    fm.worker.assert_alive()


def test_refused_close_reports_the_error(make_worker, fuse_mount, tmp_path, data_dir):  # noqa: F811
    (data_dir / "keep.bin").write_bytes(b"keep")
    w = make_worker()
    w.mount("data", f"file://{data_dir}", readonly="true")
    m = fuse_mount(w)
    f = open(m.mnt / "data" / "new.bin", "wb")
    f.write(b"x" * 1000)
    with pytest.raises(OSError) as e:
        f.close()  # the worker refused: close() says so
    assert e.value.errno == errno.EROFS
    assert not (data_dir / "new.bin").exists()
    fd = os.open(m.mnt / "data" / "keep.bin", os.O_WRONLY)
    os.write(fd, b"evil")
    with pytest.raises(OSError) as e:
        os.fsync(fd)
    assert e.value.errno == errno.EROFS
    try:
        os.close(fd)
    except OSError:
        pass
    assert (data_dir / "keep.bin").read_bytes() == b"keep"
    with pytest.raises(OSError) as e:
        os.remove(m.mnt / "data" / "keep.bin")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError) as e:
        open(m.mnt / "new-at-root", "wb")
    assert e.value.errno in (errno.EPERM, errno.EACCES)


TORCH_SCRIPT = """
import sys, torch
path = sys.argv[1]
state = {"w": torch.arange(1_000_000, dtype=torch.float32), "step": 1000}
torch.save(state, path)
back = torch.load(path)
assert torch.equal(back["w"], state["w"]) and back["step"] == 1000
print("ok")
"""


def test_torch_save_and_load(make_worker, fuse_mount, data_dir, tmp_path):  # noqa: F811
    p = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True, timeout=120)
    if p.returncode != 0:
        pytest.skip("no torch for /usr/bin/python3")
    w = make_worker(mounts={"data": data_dir})
    m = fuse_mount(w)
    (tmp_path / "t.py").write_text(TORCH_SCRIPT)
    os.makedirs(m.mnt / "data" / "ckpt", exist_ok=True)
    p = subprocess.run(["/usr/bin/python3", str(tmp_path / "t.py"), str(m.mnt / "data" / "ckpt" / "step-1000.pt")],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert (data_dir / "ckpt" / "step-1000.pt").stat().st_size > 4_000_000
    # The CLI reads the same bytes back through the worker.
    out = subprocess.run([str(FERRY), "--worker", w.ctl_addr, "cat", "/data/ckpt/step-1000.pt"],
                         capture_output=True, timeout=60).stdout
    assert out == (data_dir / "ckpt" / "step-1000.pt").read_bytes()
