"""`ferry fuse` zero-copy local reads: the worker on the same host hands the
FUSE client the page files' descriptors over its Unix socket
(<state dir>/ferry.sock), with the CRC32C of each chunk they hold, and the
client reads the bytes from them, checking every chunk it reads, instead
of copying every byte through HTTP.

Checked: warm reads are served from descriptors (ferry_local_fd_reads_total
{result="ok"} grows, no /v1/data request is made) with bytes equal to the
source; cold reads go through HTTP once and are local afterwards; a file
changed in the under-store shows new bytes, never a mix; with
`--local-socket none` reads go through HTTP; a killed and restarted worker
is picked up again; a byte flipped in a page file is never handed to an
application (the client's check fails, it reads through HTTP, where the
worker drops the page and fetches it again); a client of the old protocol
is refused; the client's cache of descriptors keeps to its budget (from
RLIMIT_NOFILE), evicting the least recently used, and closes idle ones.
"""
import errno
import os
import random
import socket
import stat
import struct
import time

import pytest

from conftest import CHUNK, free_port, page_files, page_hdr, rand_bytes, wait_for
from test_cache import _crc32c, flip_byte
from test_fuse import MiB, _replace, fuse_mount, md5  # noqa: F401 (fixture)
from test_fuse import pytestmark  # noqa: F401 (skip without FUSE)

SIZES = {"a.bin": 3 * MiB + 12345, "b.bin": MiB, "c.bin": 70000,
         "sub/d.bin": 2 * MiB - 1, "sub/e.bin": 5 * MiB + 7}


def counters(w):
    m = w.metrics()

    def get(name, **labels):
        return m.get((name, frozenset(labels.items())), 0)
    return {"ok": get("ferry_local_fd_reads_total", result="ok"),
            "miss": get("ferry_local_fd_reads_total", result="miss"),
            "stale": get("ferry_local_fd_reads_total", result="stale"),
            "error": get("ferry_local_fd_reads_total", result="error"),
            "http": get("ferry_control_data_requests_total"),
            "hit": get("ferry_cache_hit_bytes_total")}


def drop_kernel_cache(p):
    """Drops the kernel's cached pages of one file of the mount, so that
    the next read reaches ferry fuse."""
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_checked(root, files, rng):
    """Whole files and random ranges, compared with the source."""
    for rel, data in files.items():
        drop_kernel_cache(root / rel)
        assert md5((root / rel).read_bytes()) == md5(data), rel
    for _ in range(40):
        rel = rng.choice(sorted(files))
        data = files[rel]
        off = rng.randrange(0, len(data))
        n = rng.randrange(1, 2 * MiB)
        drop_kernel_cache(root / rel)
        fd = os.open(root / rel, os.O_RDONLY)
        try:
            got = os.pread(fd, n, off)
        finally:
            os.close(fd)
        assert got == data[off:off + n], (rel, off, n)


@pytest.fixture
def files(data_dir):
    out = {}
    for i, (rel, n) in enumerate(sorted(SIZES.items())):
        p = data_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        out[rel] = rand_bytes(n, 500 + i)
        p.write_bytes(out[rel])
    return out


def warm(w, files):
    """Caches every file through the control API (not the mount)."""
    for rel, data in files.items():
        r = w.ctl("GET", "/v1/data", params={"path": f"/data/{rel}"})
        assert r.status_code == 200 and r.content == data
        w.wait_cached(f"/data/{rel}", len(data))


def test_warm_reads_are_served_from_page_files(make_worker, fuse_mount, data_dir, files):
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    r = w.ctl("GET", "/v1/local")
    assert r.status_code == 200, r.text
    sock = r.json()["socket"]
    assert sock == str(w.cache_dir / "ferry.sock")
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    warm(w, files)
    m = fuse_mount(w)
    root = m.mnt / "data"
    c0 = counters(w)
    read_checked(root, files, random.Random(1))
    c1 = counters(w)
    assert c1["ok"] > c0["ok"] + 40
    assert c1["http"] == c0["http"], "a warm read went through HTTP"
    assert c1["miss"] == c0["miss"] and c1["error"] == c0["error"]
    assert c1["hit"] - c0["hit"] >= sum(len(d) for d in files.values())
    assert "each chunk checked" in m.log()


def test_cold_reads_go_through_http_then_local(make_worker, fuse_mount, data_dir, files):
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    m = fuse_mount(w)
    root = m.mnt / "data"
    c0 = counters(w)
    for rel, data in files.items():
        assert (root / rel).read_bytes() == data
    c1 = counters(w)
    assert c1["miss"] > c0["miss"] and c1["http"] > c0["http"]
    for rel, data in files.items():
        w.wait_cached(f"/data/{rel}", len(data))
    read_checked(root, files, random.Random(2))
    c2 = counters(w)
    assert c2["ok"] > c1["ok"] + 40
    assert c2["http"] == c1["http"], "a read of cached pages went through HTTP"


def test_changed_file_shows_new_bytes_never_a_mix(make_worker, fuse_mount, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    m = fuse_mount(w)
    root = m.mnt / "data"
    src = data_dir / "v.bin"
    versions = [rand_bytes(2 * MiB, 1), rand_bytes(2 * MiB, 2), rand_bytes(3 * MiB + 777, 3),
                rand_bytes(MiB // 3, 4)]
    src.write_bytes(versions[0])
    assert (root / "v.bin").read_bytes() == versions[0]
    w.wait_cached("/data/v.bin", len(versions[0]))
    ok0 = counters(w)["ok"]
    drop_kernel_cache(root / "v.bin")
    assert (root / "v.bin").read_bytes() == versions[0]  # from the page files
    assert counters(w)["ok"] > ok0
    for old, new in zip(versions, versions[1:]):
        _replace(src, new)
        deadline = time.monotonic() + 10
        while True:
            try:
                drop_kernel_cache(root / "v.bin")
                got = (root / "v.bin").read_bytes()
            except OSError as e:
                assert e.errno == errno.EIO, e  # failing is allowed, mixing is not
                got = None
            assert got in (None, old, new), ("a mix of versions", len(got))
            if got == new:
                break
            assert time.monotonic() < deadline, "the new version never showed"
            time.sleep(0.1)
        # The new version, once cached, is read locally too.
        w.wait_cached("/data/v.bin", len(new))
        ok = counters(w)["ok"]
        drop_kernel_cache(root / "v.bin")
        assert (root / "v.bin").read_bytes() == new
        assert counters(w)["ok"] > ok


def test_an_open_file_changed_underneath_fails_rather_than_mixes(make_worker, fuse_mount, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    m = fuse_mount(w)
    root = m.mnt / "data"
    src = data_dir / "pinned.bin"
    a, b = rand_bytes(4 * MiB, 11), rand_bytes(4 * MiB, 12)
    src.write_bytes(a)
    assert (root / "pinned.bin").read_bytes() == a
    w.wait_cached("/data/pinned.bin", len(a))
    fd = os.open(root / "pinned.bin", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, MiB, 0) == a[:MiB]
        _replace(src, b)
        time.sleep(1.6)  # past the worker's sync interval
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with pytest.raises(OSError) as e:
            os.pread(fd, MiB, 2 * MiB)
        assert e.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert counters(w)["stale"] >= 1  # the local path said so, not HTTP
    assert (root / "pinned.bin").read_bytes() == b


def test_local_socket_none_reads_through_http(make_worker, fuse_mount, data_dir, files):
    w = make_worker(mounts={"data": data_dir},
                    args=["--sync-interval", "1s", "--local-socket", "none"])
    assert w.ctl("GET", "/v1/local").status_code == 404
    assert not (w.cache_dir / "ferry.sock").exists()
    warm(w, files)
    m = fuse_mount(w)
    root = m.mnt / "data"
    c0 = counters(w)
    read_checked(root, files, random.Random(3))
    c1 = counters(w)
    assert c1["http"] > c0["http"]
    assert c1["ok"] == c1["miss"] == c1["stale"] == c1["error"] == 0
    assert "reading through HTTP" in m.log()


def test_explicit_socket_path_and_stop_removes_it(make_worker, data_dir, tmp_path):
    sock = tmp_path / "s" / "my.sock"
    sock.parent.mkdir()
    w = make_worker(mounts={"data": data_dir}, args=["--local-socket", str(sock)])
    assert w.ctl("GET", "/v1/local").json()["socket"] == str(sock)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert w.stop() == 0
    assert not sock.exists()


def test_worker_killed_and_restarted(make_worker, fuse_mount, data_dir, files):
    port = free_port()
    w = make_worker(mounts={"data": data_dir},
                    args=["--sync-interval", "1s", "--control-address", f"127.0.0.1:{port}"])
    warm(w, files)
    m = fuse_mount(w)
    root = m.mnt / "data"
    read_checked(root, {"b.bin": files["b.bin"]}, random.Random(4))
    assert counters(w)["ok"] > 0
    w.kill()  # leaves its socket file behind
    with pytest.raises(OSError) as e:
        drop_kernel_cache(root / "a.bin")  # the open itself fails
        (root / "a.bin").read_bytes()
    assert e.value.errno == errno.EIO
    w.start()
    assert w.ctl_port == port

    def read_a():
        try:
            drop_kernel_cache(root / "a.bin")
            return (root / "a.bin").read_bytes()
        except OSError:
            return None
    assert wait_for(read_a, 10, what="reads to work again") == files["a.bin"]
    # The restarted worker (a new process id) serves descriptors again.
    def local_again():
        ok = counters(w)["ok"]
        drop_kernel_cache(root / "sub/d.bin")
        assert (root / "sub/d.bin").read_bytes() == files["sub/d.bin"]
        return counters(w)["ok"] > ok
    wait_for(local_again, 10, what="local reads from the restarted worker")
    read_checked(root, files, random.Random(5))
    assert mounted_at_ok(m)


def mounted_at_ok(m):
    from test_fuse import mounted_at
    return mounted_at(m.mnt)


# --- the socket's protocol, driven directly ----------------------------------

REQ = struct.Struct("<IIIIqq16s")
ANS = struct.Struct("<IIiIqII")
SEG = struct.Struct("<qqqqII")
MAGIC_REQ, MAGIC_ANS = 0x3252514c, 0x3252414c  # protocol 2
MAGIC_REQ_V1, MAGIC_ANS_V1 = 0x4652514c, 0x4652414c


def ask(sock, wid, path, etag, off, n, crcs_out=None):
    p, e = path.encode(), etag.encode()
    sock.sendall(REQ.pack(MAGIC_REQ, len(p), len(e), 0, off, n, wid) + p + e)
    msg, fds, _, _ = socket.recv_fds(sock, ANS.size + 32 * SEG.size + 256 * 4, 32)
    assert len(msg) >= ANS.size, msg
    magic, status, err, nseg, covered, ncrc, chunk = ANS.unpack_from(msg)
    assert magic == MAGIC_ANS
    want = ANS.size + nseg * SEG.size + 4 * ncrc
    while len(msg) < want:
        msg += sock.recv(want - len(msg))
    segs = [SEG.unpack_from(msg, ANS.size + i * SEG.size) for i in range(nseg)]
    crcs = list(struct.unpack_from(f"<{ncrc}I", msg, ANS.size + nseg * SEG.size))
    if crcs_out is not None:
        crcs_out[:] = [chunk, crcs]
    return status, err, covered, [(fd, (s[0], s[1])) for fd, s in zip(fds, segs)]


def test_socket_protocol(make_worker, data_dir, files):
    w = make_worker(mounts={"data": data_dir})
    loc = w.ctl("GET", "/v1/local").json()
    wid = bytes.fromhex(loc["id"])
    data = files["a.bin"]
    warm(w, {"a.bin": data})
    etag = w.stat("/data/a.bin")["etag"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(loc["socket"])
    # ok: the descriptors hold exactly the bytes (64 KiB pages: 17 pieces).
    off, n = 100000, MiB
    extra = []
    status, err, covered, pieces = ask(s, wid, "/data/a.bin", etag, off, n, extra)
    assert (status, covered, len(pieces)) == (0, n, 17)
    chunk, crcs = extra
    assert chunk == CHUNK
    got = b""
    ci = 0
    for fd, (foff, ln) in pieces:
        got += os.pread(fd, ln, foff)
        # The CRCs are those of the chunks holding the bytes, in order.
        hdr = page_hdr()
        c0, c1 = (foff - hdr) // CHUNK, (foff - hdr + ln - 1) // CHUNK
        for c in range(c0, c1 + 1):
            size = os.fstat(fd).st_size
            whole = os.pread(fd, min(CHUNK, size - hdr - c * CHUNK), hdr + c * CHUNK)
            assert _crc32c(whole) == crcs[ci], (foff, c)
            ci += 1
        os.close(fd)
    assert ci == len(crcs)
    assert got == data[off:off + n]
    # More pages than one answer carries: a prefix, the client asks again.
    status, err, covered, pieces = ask(s, wid, "/data/a.bin", etag, 0, 3 * MiB)
    assert status == 0 and len(pieces) == 32 and covered == 32 * 65536
    for fd, _ in pieces:
        os.close(fd)
    # Past the end: nothing.
    assert ask(s, wid, "/data/a.bin", etag, len(data), 10)[:3] == (0, 0, 0)
    # Another version, another process, a page not cached, no such file.
    assert ask(s, wid, "/data/a.bin", "other", 0, 10)[0] == 2
    assert ask(s, bytes(16), "/data/a.bin", etag, 0, 10)[0] == 3
    assert ask(s, wid, "/data/b.bin", w.stat("/data/b.bin")["etag"], 0, 10)[0] == 1
    status, err, _, _ = ask(s, wid, "/data/nope.bin", "", 0, 10)
    assert status == 4 and err == -errno.ENOENT
    status, err, _, _ = ask(s, wid, "/data/../etc/passwd", "", 0, 10)
    assert status == 4 and err < 0
    c = counters(w)
    assert (c["ok"], c["stale"], c["miss"]) == (3, 1, 1)
    # Bounds: over 4 MiB asked, or a path over 4 KiB, closes the connection.
    for bad in (REQ.pack(MAGIC_REQ, 11, 0, 0, 0, 5 * MiB, wid) + b"/data/a.bin",
                REQ.pack(MAGIC_REQ, 5000, 0, 0, 0, 10, wid),
                REQ.pack(0x12345678, 11, 0, 0, 0, 10, wid) + b"/data/a.bin"):
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.settimeout(10)
        b.connect(loc["socket"])
        b.sendall(bad)
        try:
            assert b.recv(100) == b""  # closed, no answer
        except ConnectionResetError:
            pass  # closed with our bytes unread
        b.close()
    s.close()
    # A client of protocol 1 (it would not check chunks) is refused with
    # an error it understands (it then reads through HTTP), and closed.
    assert loc["protocol"] == 2
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.settimeout(10)
    b.connect(loc["socket"])
    b.sendall(REQ.pack(MAGIC_REQ_V1, 11, 0, 0, 0, 10, wid) + b"/data/a.bin")
    old = struct.Struct("<IIiIq")
    msg = b.recv(100)
    assert len(msg) == old.size
    assert old.unpack(msg) == (MAGIC_ANS_V1, 4, -errno.EPROTONOSUPPORT, 0, 0)
    assert b.recv(100) == b""
    b.close()
    w.assert_alive()
    assert "protocol 1" in w.log()


def test_flipped_byte_in_a_page_file_is_never_read(make_worker, fuse_mount, data_dir):
    """The worker hands out descriptors without reading the pages; the
    client checks every chunk it reads from them.  A byte flipped on disk:
    a 4 KiB read of its chunk through the mount returns the right bytes
    (the client's check failed, it read through HTTP, where the worker found
    the page bad, dropped it and fetched it again), and it is counted; a
    read of another page stays local."""
    data = rand_bytes(8 * MiB // 8, 77)  # 1 MiB: 16 pages of 64 KiB
    (data_dir / "x.bin").write_bytes(data)
    # No scrubber: the failure here is the client's to find.
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s", "--scrub-rate", "0"])
    warm(w, {"x.bin": data})
    m = fuse_mount(w)
    root = m.mnt / "data"
    page = 64 * 1024
    (victim,) = [p for p in page_files(w.cache_dir)
                 if int(p.name.split("-")[2].split(".")[0], 16) == 5]
    flip_byte(victim, page_hdr() + CHUNK + 1000)  # page 5, chunk 1

    def pread(off, n):
        drop_kernel_cache(root / "x.bin")
        fd = os.open(root / "x.bin", os.O_RDONLY)
        try:
            return os.pread(fd, n, off)
        finally:
            os.close(fd)

    c0 = counters(w)
    a = 5 * page + CHUNK + 20000
    assert pread(a, 4096) == data[a:a + 4096]
    c1 = counters(w)
    assert w.metric("ferry_page_checksum_failures_total") == 1
    assert c1["http"] > c0["http"], "the bad chunk was not read through HTTP"
    assert c1["ok"] > c0["ok"], "the read did not try the page file first"
    assert "failed its CRC" in m.log()
    # Another page: local, no HTTP.
    a = 9 * page + 100
    assert pread(a, 4096) == data[a:a + 4096]
    c2 = counters(w)
    assert c2["http"] == c1["http"] and c2["ok"] > c1["ok"]
    # The whole file, the refetched page included.
    drop_kernel_cache(root / "x.bin")
    assert (root / "x.bin").read_bytes() == data
    assert w.metric("ferry_page_checksum_failures_total") == 1


def test_flipped_byte_behind_a_cached_descriptor_is_never_read(make_worker, fuse_mount, data_dir):
    """ferry fuse keeps the descriptors and chunk CRCs the worker gave for a
    granule (1 MiB) for the later reads of the same open, so those reads
    make no exchange.  A byte flipped in a page file after its descriptor
    was cached: the read through that open still returns the right bytes
    (the chunk fails its check against the cached CRC, the read goes
    through HTTP, where the worker drops and refetches the page), and the
    cached descriptors are dropped: the next read asks the worker again."""
    data = rand_bytes(MiB, 78)  # one granule: 16 pages of 64 KiB
    (data_dir / "y.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s", "--scrub-rate", "0"])
    warm(w, {"y.bin": data})
    m = fuse_mount(w)
    root = m.mnt / "data"
    page = 64 * 1024
    fd = os.open(root / "y.bin", os.O_RDONLY)
    try:
        t0 = time.monotonic()
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        a = 5 * page + 100
        assert os.pread(fd, 4096, a) == data[a:a + 4096]  # caches the granule
        c0 = counters(w)
        assert c0["ok"] >= 1
        (victim,) = [p for p in page_files(w.cache_dir)
                     if int(p.name.split("-")[2].split(".")[0], 16) == 5]
        flip_byte(victim, page_hdr() + CHUNK + 1000)  # page 5, chunk 1
        b = 5 * page + CHUNK + 20000
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, 4096, b) == data[b:b + 4096]
        c1 = counters(w)
        took = time.monotonic() - t0
        assert w.metric("ferry_page_checksum_failures_total") == 1
        assert c1["http"] > c0["http"], "the bad chunk was not read through HTTP"
        # Within the cache's trust (2 s), that read made no exchange: the
        # chunk was checked against the cached CRC.  (A slower run asked
        # the worker again, which is the uncached path tested above.)
        if took < 1.5:
            assert c1["ok"] == c0["ok"], "the read did not use the cached descriptor"
        assert "failed its CRC" in m.log()
        # The entry went with the failure: the next read asks the worker,
        # and is local again (page 9 is good).
        c = 9 * page + 100
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert os.pread(fd, 4096, c) == data[c:c + 4096]
        c2 = counters(w)
        assert c2["ok"] > c1["ok"] and c2["http"] == c1["http"]
    finally:
        os.close(fd)
    drop_kernel_cache(root / "y.bin")
    assert (root / "y.bin").read_bytes() == data
    assert w.metric("ferry_page_checksum_failures_total") == 1


def test_descriptor_cache_keeps_to_its_budget_and_sweeps(make_worker, data_dir, files, tmp_path):
    """ferry fuse keeps at most (RLIMIT_NOFILE - 256) / 2 page file
    descriptors cached: with a limit of 290, 17, room for one granule of
    16 pages (64 KiB) and not two, so reading ~11 MiB evicts from the LRU
    end at nearly every granule.  Every byte is right, the reads stay
    local, and the descriptors go once idle for LFDC_KEEP_MS (5 s)."""
    from test_fuse import FuseMount
    import resource
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    warm(w, files)
    m = FuseMount(tmp_path, w, tmp_path / "mnt-fds", ["--attr-timeout", "1"])
    m.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (290, 290))
    try:
        m.start()
        root = m.mnt / "data"

        def page_fds():
            n = 0
            for fd in os.listdir(f"/proc/{m.proc.pid}/fd"):
                try:
                    n += os.readlink(f"/proc/{m.proc.pid}/fd/{fd}").endswith(".pg2")
                except OSError:
                    pass  # closed meanwhile
            return n
        c0 = counters(w)
        read_checked(root, files, random.Random(3))
        c1 = counters(w)
        # A read still in flight (the kernel's read-ahead may outlive the
        # read() that started it; CI saw 48 = 3 granules) holds its
        # granule's descriptors until it ends: what stays, well before the
        # 5 s idle sweep, is the cache's.
        held = wait_for(lambda: (lambda n: n if 1 <= n <= 17 else None)(page_fds()), 2,
                        interval=0.05, what="at most 17 page descriptors held")
        assert 1 <= held <= 17, held
        assert c1["ok"] > c0["ok"] + 40 and c1["http"] == c0["http"]
        wait_for(lambda: page_fds() == 0, 15, what="the idle descriptors to be closed")
    finally:
        problems = m.teardown()
    assert not problems, "\n".join(problems)
