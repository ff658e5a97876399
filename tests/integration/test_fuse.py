"""`ferry fuse`: the worker's namespace as a POSIX mount (reads here;
writes in test_fuse_writes.py).

Each test starts a worker with a file:// mount "data" of a generated tree,
mounts it with `ferry fuse MNT --foreground` and drives it with ordinary
tools (ls, find, du, stat, cat, cp, md5sum) and Python: bytes must equal
the source, writes through --read-only fail with EROFS, a file changed in the under-store shows
its new bytes and never a mix of versions, a dead worker gives EIO quickly
and a restarted one is picked up without remounting, SIGTERM unmounts, and
a stale mount left by a killed process is recovered.  Every mount is taken
down in teardown (SIGTERM, then fusermount3 -u, then -uz).
"""
import ctypes
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import FERRY, free_port, rand_bytes, wait_for

FUSERMOUNT = shutil.which("fusermount3")
MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or FUSERMOUNT is None,
    reason="FUSE unavailable: needs /dev/fuse and fusermount3 (apt-get install fuse3)")


def mounted_at(mnt):
    """Is there a mount at mnt (from /proc/self/mountinfo, which never
    blocks on the file system itself)?"""
    mnt = os.path.realpath(mnt) if os.path.exists(mnt) else str(mnt)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            mp = fields[4].replace("\\040", " ")
            if mp == str(mnt):
                return True
    return False


def fusermount_u(mnt):
    for args in (["-u"], ["-u", "-z"]):
        if not mounted_at(mnt):
            return
        subprocess.run([FUSERMOUNT] + args + [str(mnt)], capture_output=True, timeout=10)


class FuseMount:
    """One `ferry fuse MNT --foreground` process."""

    def __init__(self, tmp_path, worker, mnt, args):
        self.tmp = Path(tmp_path)
        self.worker = worker
        self.mnt = Path(mnt)
        self.args = list(args)
        self.proc = None
        self.log_path = None
        self.expect_death = False
        self.preexec = None  # runs in the child before exec

    def start(self, timeout=15, expect="data"):
        try:
            self.mnt.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # a stale mount there (ENOTCONN): ferry fuse recovers it
        self.log_path = self.tmp / f"fuse-{int(time.time() * 1000)}.log"
        cmd = [str(FERRY), "--worker", self.worker.ctl_addr, "fuse", str(self.mnt),
               "--foreground"] + self.args
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=self.preexec)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"ferry fuse exited {self.proc.returncode}:\n{self.log()}")
            try:
                return mounted_at(self.mnt) and expect in os.listdir(self.mnt)
            except OSError:  # a stale mount being replaced
                return False
        wait_for(up, timeout, what=f"the mount at {self.mnt}")
        return self

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the process and returns its exit status."""
        self.expect_death = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def teardown(self):
        """Stops the process and unmounts; returns what went wrong, if
        anything (a crash, a non-zero exit on SIGTERM, sanitizer output)."""
        problems = []
        if self.proc is not None:
            if self.proc.poll() is not None and not self.expect_death:
                problems.append(f"ferry fuse died during the test (rc {self.proc.returncode})")
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(10)
                    if rc != 0:
                        problems.append(f"ferry fuse exited {rc} on SIGTERM")
                except subprocess.TimeoutExpired:
                    problems.append("ferry fuse did not exit within 10 s of SIGTERM")
                    self.proc.kill()
                    self.proc.wait(10)
        fusermount_u(self.mnt)
        log = self.log()
        if "AddressSanitizer" in log or "runtime error:" in log:
            problems.append("sanitizer report")
        if problems:
            problems.append(f"log:\n{log[-4000:]}")
        return problems


@pytest.fixture
def fuse_mount(make_worker, tmp_path):
    """fuse_mount(worker, args=[...]) -> a mounted FuseMount at tmp/mnt<N>."""
    mounts = []

    def make(worker, args=("--attr-timeout", "1"), mnt=None):
        m = FuseMount(tmp_path, worker, mnt or tmp_path / f"mnt{len(mounts)}", args)
        mounts.append(m)
        return m.start()

    yield make
    problems = []
    for m in reversed(mounts):  # the newest first: mountpoints may be reused
        problems += m.teardown()
    for m in mounts:
        if mounted_at(m.mnt):
            problems.append(f"{m.mnt} still mounted after teardown")
    if problems:
        pytest.fail("\n".join(problems))


SIZES = {
    "empty": 0,
    "one": 1,
    "page-1": 4095,
    "mib": MiB,
    "mib+1": MiB + 1,
    "sub/three.bin": 3 * MiB + 12345,
    "sub/deeper/small.txt": 100,
    "sub/deeper/half.bin": MiB // 2 + 7,
    "other dir/with space.bin": 70000,
}


@pytest.fixture
def tree(data_dir):
    files = {}
    for i, (rel, n) in enumerate(sorted(SIZES.items())):
        data = rand_bytes(n, 100 + i)
        p = data_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = data
    (data_dir / "emptydir").mkdir()
    return files


@pytest.fixture
def setup(make_worker, fuse_mount, data_dir, tree):
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    m = fuse_mount(w)
    return w, m, m.mnt / "data"


def md5(b):
    return hashlib.md5(b).hexdigest()


def run(*cmd, timeout=30):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd}: rc {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout.decode(errors="replace")


# --- the namespace through ordinary tools ------------------------------------

def test_tools_see_the_tree(setup, tree, data_dir, tmp_path):
    w, m, root = setup
    assert os.listdir(m.mnt) == ["data"]
    st = os.stat(m.mnt)  # writable (no --read-only): the owner may write
    assert oct(st.st_mode & 0o7777) == "0o755" and (st.st_mode & 0o170000) == 0o040000

    out = run("ls", "-lR", root)
    for rel in tree:
        assert os.path.basename(rel) in out
    assert "emptydir" in out

    found = run("find", root, "-type", "f").splitlines()
    assert sorted(os.path.relpath(p, root) for p in found) == sorted(tree)
    dirs = run("find", root, "-type", "d").splitlines()
    assert sorted(os.path.relpath(p, root) for p in dirs) == sorted(
        [".", "emptydir", "other dir", "sub", "sub/deeper"])

    du_kib = int(run("du", "-s", "-k", root).split()[0])
    total = sum(len(b) for b in tree.values())
    assert total // 1024 <= du_kib <= total // 1024 + 64, (du_kib, total)

    for rel, data in tree.items():
        fmt = run("stat", "-c", "%s|%a|%F|%h|%u|%g", root / rel).strip().split("|")
        assert fmt == [str(len(data)), "644", "regular empty file" if not data else "regular file",
                       "1", str(os.getuid()), str(os.getgid())], (rel, fmt)
        assert os.stat(root / rel).st_mtime == int(os.stat(data_dir / rel).st_mtime)
    st = os.stat(root / "sub")
    assert oct(st.st_mode & 0o7777) == "0o755" and os.path.isdir(root / "sub")

    # cat, cp and md5sum give the source's bytes.
    for rel in ["mib+1", "sub/three.bin", "other dir/with space.bin", "empty", "one"]:
        p = subprocess.run(["cat", str(root / rel)], capture_output=True, timeout=30)
        assert p.returncode == 0 and p.stdout == tree[rel], rel
        dst = tmp_path / "copy.bin"
        run("cp", root / rel, dst)
        assert dst.read_bytes() == tree[rel], rel
        assert run("md5sum", root / rel).split()[0] == md5(tree[rel]), rel

    # Inode numbers are stable per path and distinct.
    inos = {rel: os.stat(root / rel).st_ino for rel in tree}
    assert len(set(inos.values())) == len(inos)
    assert all(os.stat(root / rel).st_ino == ino for rel, ino in inos.items())

    with pytest.raises(FileNotFoundError):
        os.stat(root / "no-such-file")
    with pytest.raises(FileNotFoundError):
        os.stat(m.mnt / "no-such-mount")
    with pytest.raises(NotADirectoryError):
        os.listdir(root / "one")
    with pytest.raises(IsADirectoryError):
        open(root / "sub", "rb").read()

    sv = os.statvfs(m.mnt)
    assert sv.f_blocks * sv.f_frsize == 256 * MiB  # the worker's --cache-size
    assert not sv.f_flag & os.ST_RDONLY  # writable unless --read-only


def test_random_reads(setup, data_dir):
    w, m, root = setup
    data = rand_bytes(5 * MiB + 4321, 7)
    (data_dir / "rand.bin").write_bytes(data)
    rng = random.Random(42)
    with open(root / "rand.bin", "rb", buffering=0) as f:
        for i in range(200):
            if i % 4 == 0:  # straddle a 1 MiB boundary
                off = rng.randrange(1, 6) * MiB - rng.randrange(1, 5000)
            else:
                off = rng.randrange(0, len(data) + 100)
            n = rng.choice([1, 17, 4096, 65536, MiB - 1, MiB + 1, 2 * MiB + 3, rng.randrange(1, 300000)])
            f.seek(off)
            got = b""
            while len(got) < n:  # read() may return less; loop to EOF
                chunk = f.read(n - len(got))
                if not chunk:
                    break
                got += chunk
            assert got == data[off:off + n], (i, off, n, len(got))
    # And with os.pread on a second descriptor, page-cache cold reads too.
    fd = os.open(root / "rand.bin", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for off in [0, MiB - 1, MiB, 3 * MiB + 5, len(data) - 1, len(data), len(data) + 9]:
            assert os.pread(fd, 300000, off) == data[off:off + 300000], off
    finally:
        os.close(fd)


def test_parallel_readers(setup, tree):
    """Many readers at once (the session runs several threads)."""
    w, m, root = setup
    from concurrent.futures import ThreadPoolExecutor
    jobs = [rel for rel in tree for _ in range(4)]
    random.Random(3).shuffle(jobs)

    def check(rel):
        with open(root / rel, "rb") as f:
            got = f.read()
        return got == tree[rel]
    with ThreadPoolExecutor(8) as ex:
        assert all(ex.map(check, jobs))


def _libc_dir_api():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.restype = None
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.rewinddir.restype = None
    libc.rewinddir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    return libc


def _readdir_name(libc, d):
    ent = libc.readdir(d)
    if not ent:
        return None
    # struct dirent (glibc, 64-bit): d_ino 8, d_off 8, d_reclen 2, d_type 1, d_name
    return ctypes.string_at(ent + 19).decode()


def test_big_directory_lists_completely_in_order(setup, data_dir):
    w, m, root = setup
    big = data_dir / "big"
    big.mkdir()
    names = [f"f{i:05d}" for i in range(3000)]
    for i, n in enumerate(names):
        (big / n).write_bytes(b"x" * (i % 7))
    # Directory order (ls -f does not sort) is byte order, complete.
    listed = run("ls", "-f", root / "big").split()
    assert [n for n in listed if n not in (".", "..")] == names
    assert os.listdir(root / "big") == names
    with os.scandir(root / "big") as it:
        ents = list(it)
    assert [e.name for e in ents] == names and all(e.is_file() for e in ents)
    assert [e.stat().st_size for e in ents[:20]] == [i % 7 for i in range(20)]

    # Going back to an offset before the current page (seekdir, rewinddir)
    # restarts the listing and skips to it.
    libc = _libc_dir_api()
    d = libc.opendir(str(root / "big").encode())
    assert d
    try:
        seen, marks = [], {}
        while len(seen) < 2600:
            marks[len(seen)] = libc.telldir(d)
            n = _readdir_name(libc, d)
            assert n is not None
            seen.append(n)
        assert [n for n in seen if n not in (".", "..")] == names[:len(seen) - 2]
        libc.seekdir(d, marks[502])
        assert [_readdir_name(libc, d) for _ in range(5)] == names[500:505]
        libc.seekdir(d, marks[2402])
        assert [_readdir_name(libc, d) for _ in range(3)] == names[2400:2403]
        libc.rewinddir(d)
        rest = []
        while (n := _readdir_name(libc, d)) is not None:
            rest.append(n)
        assert [n for n in rest if n not in (".", "..")] == names
    finally:
        libc.closedir(d)


def test_xattrs(setup, tree):
    w, m, root = setup
    f = root / "sub/three.bin"
    assert sorted(os.listxattr(f)) == ["user.ferry.cached_bytes", "user.ferry.etag"]
    etag = os.getxattr(f, "user.ferry.etag").decode()
    assert etag and etag == w.stat("/data/sub/three.bin")["etag"]
    assert int(os.getxattr(f, "user.ferry.cached_bytes")) == 0
    assert (root / "sub/three.bin").read_bytes() == tree["sub/three.bin"]
    n = len(tree["sub/three.bin"])
    wait_for(lambda: int(os.getxattr(f, "user.ferry.cached_bytes")) == n, 10,
             what="cached_bytes == size after a full read")
    with pytest.raises(OSError) as e:
        os.getxattr(f, "user.other")
    assert e.value.errno == errno.ENODATA
    # No ACLs or security labels: "unsupported", so that ls -l stops asking
    # for every file (regression: two FUSE round trips per file made
    # `ls -l` of 10,000 entries 10x slower than local).
    for name in ("security.selinux", "system.posix_acl_access"):
        with pytest.raises(OSError) as e:
            os.getxattr(f, name)
        assert e.value.errno == errno.EOPNOTSUPP, name
    out = subprocess.run(["ls", "-l", str(root / "sub")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "three.bin" in out.stdout and not out.stderr
    with pytest.raises(OSError) as e:
        os.getxattr(root / "sub", "user.ferry.etag")
    assert e.value.errno == errno.ENODATA
    assert os.listxattr(root / "sub") == []
    with pytest.raises(OSError) as e:
        os.setxattr(f, "user.ferry.etag", b"x")
    assert e.value.errno == errno.EOPNOTSUPP  # ferry keeps no xattrs


def test_read_only_mount_writes_fail_with_erofs(make_worker, fuse_mount, data_dir, tree):
    """`ferry fuse --read-only`: a view that refuses every change."""
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    m = fuse_mount(w, args=("--attr-timeout", "1", "--read-only"))
    root = m.mnt / "data"
    st = os.stat(root / "one")
    assert oct(st.st_mode & 0o7777) == "0o444" and oct(os.stat(root).st_mode & 0o7777) == "0o555"
    assert os.statvfs(root).f_flag & os.ST_RDONLY

    def erofs(fn, *a):
        with pytest.raises(OSError) as e:
            fn(*a)
        assert e.value.errno == errno.EROFS, (fn, a, e.value)

    erofs(open, root / "one", "wb")
    erofs(open, root / "one", "r+b")
    erofs(open, root / "one", "ab")
    erofs(open, root / "new-file", "wb")
    erofs(os.open, root / "one", os.O_RDONLY | os.O_TRUNC)
    erofs(os.mkdir, root / "newdir")
    erofs(os.remove, root / "one")
    erofs(os.rmdir, root / "emptydir")
    erofs(os.rename, root / "one", root / "two")
    erofs(os.truncate, root / "one", 0)
    erofs(os.chmod, root / "one", 0o644)
    erofs(os.symlink, "one", root / "link")
    erofs(os.utime, root / "one", (1, 1))
    erofs(os.mkdir, m.mnt / "newmount")
    assert (root / "one").read_bytes() == tree["one"]


# --- versions -----------------------------------------------------------------

def _replace(path, data):
    """Atomically replaces the source file (the UFS never shows a mix)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_changed_file_shows_new_bytes_never_a_mix(setup, data_dir):
    w, m, root = setup
    src = data_dir / "v.bin"
    versions = [rand_bytes(2 * MiB, 1), rand_bytes(2 * MiB, 2), rand_bytes(3 * MiB + 777, 3),
                rand_bytes(MiB // 3, 4)]
    src.write_bytes(versions[0])
    assert (root / "v.bin").read_bytes() == versions[0]  # now in the page cache
    for old, new in zip(versions, versions[1:]):
        _replace(src, new)
        deadline = time.monotonic() + 10
        while True:
            try:
                got = (root / "v.bin").read_bytes()
            except OSError as e:
                assert e.errno == errno.EIO, e  # failing is allowed, mixing is not
                got = None
            assert got in (None, old, new), ("a mix of versions", len(got))
            if got == new:
                break
            assert time.monotonic() < deadline, "the new version never showed"
            time.sleep(0.1)
        # The bytes are new as soon as an open sees the new version (it
        # reads around the kernel's cache); the size the kernel reports may
        # lag by up to --attr-timeout (1 s here), then it must be the new one.
        deadline = time.monotonic() + 1 + 2
        while os.stat(root / "v.bin").st_size != len(new):
            assert time.monotonic() < deadline, "the size never caught up"
            time.sleep(0.05)


def _served(w):
    """Bytes of file data the worker has sent (from its cache or not)."""
    return sum(w.metric(n) or 0 for n in ("ferry_cache_hit_bytes_total",
                                          "ferry_cache_miss_bytes_total"))


def test_page_cache_kept_while_unchanged_dropped_on_change(setup, data_dir):
    w, m, root = setup
    src, f = data_dir / "k.bin", root / "k.bin"
    t = 1_700_000_000 * 10**9
    v1, v2 = rand_bytes(2 * MiB, 21), rand_bytes(2 * MiB, 22)
    src.write_bytes(v1)
    os.utime(src, ns=(t, t))
    assert f.read_bytes() == v1
    s0 = _served(w)
    assert f.read_bytes() == v1
    assert _served(w) == s0  # the second open read from the page cache
    # Same size, same mtime in seconds (all the kernel sees of a change):
    # only the new ETag can drop the cached pages.
    _replace(src, v2)
    os.utime(src, ns=(t + 5000, t + 5000))
    time.sleep(1.6)  # past the sync interval and the attribute timeout
    st = os.stat(f)
    assert (st.st_size, st.st_mtime) == (2 * MiB, t // 10**9)
    assert f.read_bytes() == v2
    s1 = _served(w)
    assert s1 > s0
    assert f.read_bytes() == v2
    assert _served(w) == s1


def test_stale_kernel_size_does_not_cut_reads(make_worker, fuse_mount, data_dir):
    """The kernel trusts a file's size for --attr-timeout; an open that
    finds a newer version reads it whole anyway (direct I/O)."""
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    # Read-only: on a writable mount the kernel asks again for the
    # attributes after every read (to update atime), so its size is never
    # stale there; this is the case where it can be.
    m = fuse_mount(w, args=["--attr-timeout", "30", "--read-only"])
    src, f = data_dir / "grow.bin", m.mnt / "data" / "grow.bin"
    v1, v2, v3 = rand_bytes(MiB, 31), rand_bytes(3 * MiB + 5, 32), rand_bytes(100, 33)
    src.write_bytes(v1)
    assert f.read_bytes() == v1
    # An open file keeps its inode (and so the kernel's cached size) from
    # being evicted under memory pressure, which would make the size fresh
    # and the test moot (it failed so in CI, on a loaded machine).
    keep = os.open(f, os.O_RDONLY)
    try:
        _replace(src, v2)
        time.sleep(1.6)
        assert os.stat(f).st_size == MiB  # the kernel's size is stale...
        assert f.read_bytes() == v2  # ...and the read is whole
        _replace(src, v3)
        time.sleep(1.6)
        assert f.read_bytes() == v3  # shrunk: no bytes past the new end
    finally:
        os.close(keep)


def test_open_file_is_pinned_to_its_version(setup, data_dir):
    """A file replaced while open: its reads fail rather than continue with
    the new version's bytes."""
    w, m, root = setup
    src = data_dir / "pinned.bin"
    a, b = rand_bytes(8 * MiB, 11), rand_bytes(8 * MiB, 12)
    src.write_bytes(a)
    fd = os.open(root / "pinned.bin", os.O_RDONLY)
    try:
        assert os.pread(fd, MiB, 0) == a[:MiB]
        _replace(src, b)
        time.sleep(1.6)  # past the worker's sync interval
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # drop read-ahead
        with pytest.raises(OSError) as e:
            os.pread(fd, MiB, 5 * MiB)
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert (root / "pinned.bin").read_bytes() == b  # a new open sees b
    assert "pinned.bin" in m.log()  # said once (rate-limited), not silent


# --- robustness ----------------------------------------------------------------

def test_worker_down_gives_eio_and_restart_is_survived(make_worker, fuse_mount, data_dir, tree):
    port = free_port()
    w = make_worker(mounts={"data": data_dir},
                    args=["--sync-interval", "1s", "--control-address", f"127.0.0.1:{port}"])
    assert w.ctl_port == port
    m = fuse_mount(w)
    root = m.mnt / "data"
    assert (root / "mib").read_bytes() == tree["mib"]

    w.kill()
    t0 = time.monotonic()
    for _ in range(20):
        with pytest.raises(OSError) as e:
            (root / "sub/three.bin").read_bytes()
        assert e.value.errno == errno.EIO
    assert time.monotonic() - t0 < 10
    time.sleep(1.2)  # attributes and names cached by the kernel expire
    with pytest.raises(OSError) as e:
        os.stat(root / "mib+1")
    assert e.value.errno == errno.EIO
    assert m.log().count("unreachable") == 1, m.log()  # one line, not one per request

    w.start()
    assert w.ctl_port == port
    assert wait_for(lambda: _read_or_none(root / "sub/three.bin"), 10,
                    what="reads to work again") == tree["sub/three.bin"]
    assert (root / "mib+1").read_bytes() == tree["mib+1"]
    assert mounted_at(m.mnt)
    assert "reachable again" in m.log()


def _read_or_none(p):
    try:
        return p.read_bytes()
    except OSError:
        return None


def test_sigterm_unmounts(make_worker, fuse_mount, data_dir, tree):
    w = make_worker(mounts={"data": data_dir})
    m = fuse_mount(w)
    assert (m.mnt / "data" / "one").read_bytes() == tree["one"]
    assert m.stop(signal.SIGTERM) == 0
    assert not mounted_at(m.mnt)
    assert "unmounted" in m.log()
    m2 = fuse_mount(w, mnt=m.mnt)  # and the mountpoint is usable again
    assert m2.stop(signal.SIGINT) == 0
    assert not mounted_at(m.mnt)


def test_sigint_unmounts_when_started_with_sigint_ignored(make_worker, tmp_path, data_dir, tree):
    """Regression: a shell starts a background job with SIGINT ignored,
    and libfuse installs its handlers only over the default action, so a
    `ferry fuse` started from a script with `&` ignored SIGINT for good
    (found as a hang of test_sigterm_unmounts in a backgrounded test run)."""
    w = make_worker(mounts={"data": data_dir})
    m = FuseMount(tmp_path, w, tmp_path / "mnt-ign", ["--attr-timeout", "1"])
    m.preexec = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        m.start()
        assert (m.mnt / "data" / "one").read_bytes() == tree["one"]
        assert m.stop(signal.SIGINT) == 0
        assert not mounted_at(m.mnt)
    finally:
        problems = m.teardown()
    assert not problems, problems


def test_stale_mount_is_recovered(make_worker, fuse_mount, data_dir, tree):
    w = make_worker(mounts={"data": data_dir})
    m = fuse_mount(w)
    m.stop(signal.SIGKILL)
    assert mounted_at(m.mnt)
    with pytest.raises(OSError) as e:
        os.listdir(m.mnt)
    assert e.value.errno == errno.ENOTCONN  # "Transport endpoint is not connected"
    m2 = fuse_mount(w, mnt=m.mnt)
    assert (m2.mnt / "data" / "mib").read_bytes() == tree["mib"]
    assert "stale mount" in m2.log()


def mounts_at(mnt):
    real = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split(" ")[4].replace("\\040", " ") == real)


def test_a_live_ferry_mount_is_not_stacked(make_worker, fuse_mount, data_dir, tree, tmp_path):
    w = make_worker(mounts={"data": data_dir})
    m = fuse_mount(w)
    assert mounts_at(m.mnt) == 1
    p = subprocess.run([str(FERRY), "--worker", w.ctl_addr, "fuse", str(m.mnt), "--foreground"],
                       capture_output=True, text=True, timeout=20)
    real = os.path.realpath(m.mnt)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == (f"ferry: fuse: {real} is already a ferry mount "
                                f"(unmount it first: fusermount3 -u {real})")
    assert mounts_at(m.mnt) == 1  # nothing stacked on it
    assert (m.mnt / "data" / "one").read_bytes() == tree["one"]  # and it still serves
    # Pointed at the S3 port by mistake: refused, nothing mounted.
    other = tmp_path / "other-mnt"
    other.mkdir()
    p = subprocess.run([str(FERRY), "--worker", f"{w.s3_host}:{w.s3_port}", "fuse", str(other),
                        "--foreground"], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1
    assert p.stderr.strip() == (f"ferry: fuse: {w.s3_host}:{w.s3_port} is not a ferry control API "
                                "(is it the S3 port?)")
    assert mounts_at(other) == 0


def test_daemonizes_without_foreground(make_worker, data_dir, tree, tmp_path):
    w = make_worker(mounts={"data": data_dir})
    mnt = tmp_path / "dmnt"
    mnt.mkdir()
    log = tmp_path / "daemon.log"
    try:
        p = subprocess.run([str(FERRY), "--worker", w.ctl_addr, "fuse", str(mnt),
                            "--log-file", str(log)], capture_output=True, timeout=20)
        assert p.returncode == 0, p.stderr
        assert mounted_at(mnt)  # up when the command returns
        assert (mnt / "data" / "mib").read_bytes() == tree["mib"]
        subprocess.run([FUSERMOUNT, "-u", str(mnt)], check=True, timeout=10)
        wait_for(lambda: "unmounted" in log.read_text(), 10, what="the daemon to exit")
    finally:
        fusermount_u(mnt)
    assert not mounted_at(mnt)
