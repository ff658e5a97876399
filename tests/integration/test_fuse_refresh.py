"""`ferry refresh` reaches a `ferry fuse` mount's kernel caches.

What a user relies on: with a long sync interval (the worker trusts what
it was told for an hour) and a long attribute timeout (the kernel trusts
names and sizes as long), a file changed in the under-store, a new file
and a removed one show through the FUSE mount within a couple of seconds
of `ferry refresh PATH`, with the new bytes, never a mix; a path not
refreshed keeps its cached answer.
"""
import os
import time

from conftest import rand_bytes, wait_for
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401 (fixture)


def _replace(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_refresh_shows_changes_through_fuse_at_once(make_worker, fuse_mount, data_dir):
    (data_dir / "d").mkdir()
    old = rand_bytes(100_000, 1)
    other_old = rand_bytes(5_000, 2)
    (data_dir / "d" / "f.bin").write_bytes(old)
    (data_dir / "d" / "gone.txt").write_bytes(b"bye")
    (data_dir / "e.bin").write_bytes(other_old)
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1h"])
    m = fuse_mount(w, args=("--attr-timeout", "3600"))
    root = m.mnt / "data"
    assert (root / "d" / "f.bin").read_bytes() == old
    assert sorted(os.listdir(root / "d")) == ["f.bin", "gone.txt"]
    assert (root / "e.bin").read_bytes() == other_old
    assert not (root / "d" / "new.txt").exists()  # a negative entry, cached

    new = rand_bytes(150_000, 3)
    _replace(data_dir / "d" / "f.bin", new)
    (data_dir / "d" / "gone.txt").unlink()
    (data_dir / "d" / "new.txt").write_bytes(b"hello")
    _replace(data_dir / "e.bin", rand_bytes(6_000, 4))
    time.sleep(1.5)
    # Nobody said anything: the cached answers stand.
    assert os.stat(root / "d" / "f.bin").st_size == len(old)
    assert (root / "d" / "f.bin").read_bytes() == old

    assert not (root / "d" / "new.txt").exists()  # the kernel's negative entry
    w.cli("refresh", "/data/d")
    # First the name the kernel held as absent (nothing else asked about
    # it since: only the refresh can tell the kernel).
    wait_for(lambda: (root / "d" / "new.txt").exists(), 5,
             what="the new file through FUSE")
    wait_for(lambda: os.stat(root / "d" / "f.bin").st_size == len(new), 5,
             what="the new size through FUSE")
    assert (root / "d" / "f.bin").read_bytes() == new
    wait_for(lambda: sorted(os.listdir(root / "d")) == ["f.bin", "new.txt"], 5,
             what="the new listing through FUSE")
    assert (root / "d" / "new.txt").read_bytes() == b"hello"
    assert not (root / "d" / "gone.txt").exists()
    # Not under the path refreshed: still the cached version.
    assert os.stat(root / "e.bin").st_size == len(other_old)
    assert (root / "e.bin").read_bytes() == other_old
