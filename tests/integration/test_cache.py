"""The page cache: a second read makes no under-store request, hit bytes
count what was served from the cache, `ferry stat` reports what is cached,
metadata is re-checked after --sync-interval (and one response never mixes
two versions), corrupted pages are detected and refetched, and a cache
disk that is full or read-only does not stop correct reads.  A file
rewritten while a response is sent never yields a complete mixed body."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import CHUNK, FERRY, PAGE, make_mounted, page_files, page_hdr, rand_bytes


def test_second_read_makes_no_ufs_request(mounted):
    w = mounted.worker
    size = 3 * PAGE + 100
    data = rand_bytes(size, 31)
    mounted.put("hot/obj.bin", data)
    s3 = w.s3()
    m0 = mounted.mark()
    assert s3.get_object(Bucket="data", Key="hot/obj.bin")["Body"].read() == data
    reads1 = w.ufs_reads()
    assert reads1 == 4, f"a cold read of 4 pages made {reads1} UFS reads"
    if mounted.kind == "s3":
        assert mounted.ufs_gets("hot/obj.bin", m0) == 4
    st = w.wait_cached("/data/hot/obj.bin", size)
    assert st["size"] == size and st["cached_bytes"] == size
    hit1 = w.metric("ferry_cache_hit_bytes_total")
    miss1 = w.metric("ferry_cache_miss_bytes_total")
    # Pages fetched for this request count as misses even when the window
    # fetched them ahead of the reader.
    assert (hit1, miss1) == (0, size)

    m1 = mounted.mark()
    assert s3.get_object(Bucket="data", Key="hot/obj.bin")["Body"].read() == data
    rng = s3.get_object(Bucket="data", Key="hot/obj.bin", Range=f"bytes={PAGE - 3}-{2 * PAGE + 3}")
    assert rng["Body"].read() == data[PAGE - 3:2 * PAGE + 4]
    assert w.ufs_reads() == reads1
    assert w.metric("ferry_cache_hit_bytes_total") - hit1 == size + PAGE + 7
    assert w.metric("ferry_cache_miss_bytes_total") == miss1
    if mounted.kind == "s3":
        assert mounted.ufs_gets("hot/obj.bin", m1) == 0

    # The CLI agrees.
    p = w.cli("stat", "/data/hot/obj.bin")
    out = p.stdout.decode()
    assert f"cached_bytes: {size}" in out, out
    assert f"size: {size}" in out, out


def test_partial_read_caches_only_what_was_read(make_worker, data_dir):
    size = 40 * PAGE
    data = rand_bytes(size, 40)
    (data_dir / "big.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir}, args=["--read-ahead", "0", "--window", "1"])
    r = w.s3().get_object(Bucket="data", Key="big.bin", Range=f"bytes={10 * PAGE}-{10 * PAGE + 10}")
    assert r["Body"].read() == data[10 * PAGE:10 * PAGE + 11]
    st = w.wait_cached("/data/big.bin", PAGE)
    time.sleep(0.2)
    st = w.stat("/data/big.bin")
    assert st["cached_bytes"] == PAGE, st
    assert w.ufs_reads() == 1


def test_sync_interval_new_version_never_mixed(make_worker, data_dir):
    """Same size, new content, new mtime: within the sync interval the old
    bytes may be served, after it the new ones; a response is one or the
    other, even when only some pages of the old version were cached."""
    size = 4 * PAGE
    old = rand_bytes(size, 1)
    new = rand_bytes(size, 2)
    f = data_dir / "v.bin"
    f.write_bytes(old)
    os.utime(f, (1_600_000_000, 1_600_000_000))
    w = make_worker(mounts={"data": data_dir},
                    args=["--sync-interval", "1s", "--read-ahead", "0", "--window", "1"])
    s3 = w.s3()
    # Cache only page 0 of the old version.
    r = s3.get_object(Bucket="data", Key="v.bin", Range="bytes=0-99")
    assert r["Body"].read() == old[:100]
    etag_old = r["ETag"]
    # (On disk, not only in flight: see test_file_rewritten_during_a_read.)
    w.wait_cached("/data/v.bin", PAGE)
    f.write_bytes(new)
    os.utime(f, (1_600_000_100, 1_600_000_100))
    body = s3.get_object(Bucket="data", Key="v.bin")["Body"].read()
    assert body in (old, new), "one response mixed the old and the new version"
    time.sleep(1.5)
    r = s3.get_object(Bucket="data", Key="v.bin")
    assert r["Body"].read() == new
    assert r["ETag"] != etag_old
    # And the control API's data path agrees.
    assert w.ctl("GET", "/v1/data", params={"path": "/data/v.bin"}).content == new


def test_sync_interval_fully_cached_old_version(make_worker, data_dir):
    size = 3 * PAGE
    old = rand_bytes(size, 3)
    new = rand_bytes(size, 4)
    f = data_dir / "w.bin"
    f.write_bytes(old)
    os.utime(f, (1_600_000_000, 1_600_000_000))
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="w.bin")["Body"].read() == old
    f.write_bytes(new)
    os.utime(f, (1_600_000_050, 1_600_000_050))
    assert s3.get_object(Bucket="data", Key="w.bin")["Body"].read() in (old, new)
    time.sleep(1.5)
    assert s3.get_object(Bucket="data", Key="w.bin")["Body"].read() == new
    h = s3.head_object(Bucket="data", Key="w.bin")
    assert int(h["LastModified"].timestamp()) == 1_600_000_050


def flip_byte(path, off):
    with open(path, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x5A]))


def test_corrupted_page_is_refetched(make_worker, data_dir):
    size = 4 * PAGE
    data = rand_bytes(size, 12)
    (data_dir / "c.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="c.bin")["Body"].read() == data
    w.wait_cached("/data/c.bin", size)
    pages = page_files(w.cache_dir)
    assert len(pages) == 4, pages
    assert all(p.stat().st_size == PAGE + page_hdr() for p in pages), [p.stat().st_size for p in pages]
    flip_byte(pages[2], page_hdr() + 1000)
    reads = w.ufs_reads()
    assert s3.get_object(Bucket="data", Key="c.bin")["Body"].read() == data
    assert w.metric("ferry_page_checksum_failures_total") == 1
    assert w.ufs_reads() == reads + 1, "the corrupted page was not refetched (once)"
    # Refetched and cached again: the next read is all hits.
    assert s3.get_object(Bucket="data", Key="c.bin")["Body"].read() == data
    assert w.ufs_reads() == reads + 1
    assert w.metric("ferry_page_checksum_failures_total") == 1


def test_corrupted_page_after_restart(make_worker, data_dir):
    size = 2 * PAGE + 5
    data = rand_bytes(size, 13)
    (data_dir / "d.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir})
    assert w.s3().get_object(Bucket="data", Key="d.bin")["Body"].read() == data
    w.wait_cached("/data/d.bin", size)
    rc = w.stop()
    assert rc == 0
    pages = page_files(w.cache_dir)
    assert len(pages) == 3
    # The last page is short (5 bytes): corrupt its first data byte.
    last = min(pages, key=lambda p: p.stat().st_size)
    flip_byte(last, page_hdr())
    w.start()
    assert w.s3().get_object(Bucket="data", Key="d.bin")["Body"].read() == data
    assert w.metric("ferry_page_checksum_failures_total") == 1
    assert w.ufs_reads() == 1


def page_file(cache_dir, idx):
    """The page file of page idx (the cache holds one object's pages)."""
    (p,) = [p for p in page_files(cache_dir) if int(p.name.split("-")[2].split(".")[0], 16) == idx]
    return p


_PREAD_PY = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.ferry_connect.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.ferry_pread.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                            ctypes.c_int64]
lib.ferry_pread.restype = ctypes.c_ssize_t
lib.ferry_close.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
f = ctypes.c_void_p()
tok = sys.argv[3].encode() or None
assert lib.ferry_connect(sys.argv[2].encode(), tok, ctypes.byref(f)) == 0
n = int(sys.argv[6])
buf = ctypes.create_string_buffer(n)
got = lib.ferry_pread(f, sys.argv[4].encode(), buf, n, int(sys.argv[5]))
lib.ferry_close(ctypes.byref(f))
assert got >= 0, got
sys.stdout.buffer.write(buf.raw[:got])
"""


def libferry_pread(w, path, off, n):
    """ferry_pread through libferry (the build's libferry.so, by ctypes), as
    a program linked with it would read.  In a child process: a sanitizer
    build's library needs its runtime loaded first (LD_PRELOAD)."""
    so = str(FERRY.parent / "libferry.so")
    env = dict(os.environ)
    ldd = subprocess.run(["ldd", so], capture_output=True, text=True).stdout
    pre = [ln.split("=>")[1].split()[0] for ln in ldd.splitlines()
           if "=>" in ln and ("libasan" in ln or "libubsan" in ln)]
    if pre:
        env["LD_PRELOAD"] = " ".join(pre)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    token = w.credentials()[0] or ""
    p = subprocess.run([sys.executable, "-c", _PREAD_PY, so, w.ctl_addr, token, path,
                        str(off), str(n)], capture_output=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return p.stdout


def test_flipped_byte_is_never_served_gateway_data_libferry(make_worker, data_dir):
    """Pages are checked by 32 KiB chunk, by each read that touches them: a
    byte flipped on disk is found by the first read of its chunk, whatever
    the client (the S3 gateway, /v1/data, libferry), which gets the right
    bytes (the page fetched again) and the failure is counted.  A read of
    another chunk of the page neither checks nor drops it."""
    size = 5 * PAGE
    data = rand_bytes(size, 14)
    (data_dir / "f.bin").write_bytes(data)
    # No scrubber: each failure here is found by the read that is checked.
    w = make_worker(mounts={"data": data_dir}, args=["--scrub-rate", "0"])
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="f.bin")["Body"].read() == data
    w.wait_cached("/data/f.bin", size)
    assert len(page_files(w.cache_dir)) == 5
    H = page_hdr()

    def fails():
        return w.metric("ferry_page_checksum_failures_total") or 0

    def s3_range(a, n):
        r = s3.get_object(Bucket="data", Key="f.bin", Range=f"bytes={a}-{a + n - 1}")
        return r["Body"].read()

    # The S3 gateway.  Chunk 1 of page 1 is bad; a 4 KiB read of chunk 0
    # is served from the cache and checks nothing else.
    flip_byte(page_file(w.cache_dir, 1), H + CHUNK + 100)
    reads = w.ufs_reads()
    assert s3_range(PAGE + 10, 4096) == data[PAGE + 10:PAGE + 10 + 4096]
    assert fails() == 0 and w.ufs_reads() == reads
    # A 4 KiB read in chunk 1 (not even at the flipped byte) finds it.
    a = PAGE + CHUNK + 8000
    assert s3_range(a, 4096) == data[a:a + 4096]
    assert fails() == 1 and w.ufs_reads() == reads + 1

    # /v1/data, a range across the bad chunk of page 2 from a good one.
    flip_byte(page_file(w.cache_dir, 2), H + CHUNK + 5)
    a = 2 * PAGE + CHUNK - 300
    r = w.ctl("GET", "/v1/data", params={"path": "/data/f.bin"},
              headers={"Range": f"bytes={a}-{a + 999}"})
    assert r.status_code == 206 and r.content == data[a:a + 1000]
    assert fails() == 2 and w.ufs_reads() == reads + 2

    # libferry (ferry_pread, over /v1/data).
    flip_byte(page_file(w.cache_dir, 3), H + 7)
    assert libferry_pread(w, "/data/f.bin", 3 * PAGE, 4096) == data[3 * PAGE:3 * PAGE + 4096]
    assert fails() == 3 and w.ufs_reads() == reads + 3

    # A whole-object read with a bad chunk after good ones in page 4: the
    # good chunks go from the cache, the rest from the page fetched again.
    flip_byte(page_file(w.cache_dir, 4), H + CHUNK + 1)
    assert s3.get_object(Bucket="data", Key="f.bin")["Body"].read() == data
    assert fails() == 4 and w.ufs_reads() == reads + 4
    # Everything refetched is cached again, good.
    assert s3.get_object(Bucket="data", Key="f.bin")["Body"].read() == data
    assert fails() == 4 and w.ufs_reads() == reads + 4


def test_scrubber_drops_a_bad_page_nobody_reads(make_worker, data_dir):
    """The scrubber re-checks every cached page in the background at
    --scrub-rate: a byte flipped in a page nobody reads is found, the page
    dropped and counted; the next read fetches it again."""
    size = 4 * PAGE
    data = rand_bytes(size, 16)
    (data_dir / "s.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir}, args=["--scrub-rate", "1M"])
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="s.bin")["Body"].read() == data
    w.wait_cached("/data/s.bin", size)
    victim = page_file(w.cache_dir, 2)
    flip_byte(victim, page_hdr() + PAGE - 1)
    deadline = time.time() + 15
    while time.time() < deadline and (w.metric("ferry_page_checksum_failures_total") or 0) == 0:
        time.sleep(0.2)
    assert w.metric("ferry_page_checksum_failures_total") == 1
    # The walk follows the index's hash order, so the bad page may be the
    # first one checked: wait for a whole pass rather than assume an order.
    while time.time() < deadline and (w.metric("ferry_scrub_bytes_total") or 0) < size:
        time.sleep(0.2)
    assert w.metric("ferry_scrub_bytes_total") >= size
    assert not victim.exists()
    reads = w.ufs_reads()
    assert s3.get_object(Bucket="data", Key="s.bin")["Body"].read() == data
    assert w.ufs_reads() == reads + 1


def test_old_format_pages_are_checked_and_converted(make_worker, data_dir):
    """Pages of the old format (".pg": a 64-byte header, one CRC32C over the
    page) left by an older ferry are checked whole at their first read and
    rewritten in the new one; a bad one is never served."""
    import struct
    size = 3 * PAGE
    data = rand_bytes(size, 15)
    (data_dir / "o.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="o.bin")["Body"].read() == data
    w.wait_cached("/data/o.bin", size)
    assert w.stop() == 0
    # Rewrite each page as an older ferry wrote it.
    crc = _crc32c
    for p in page_files(w.cache_dir):
        raw = p.read_bytes()
        H = page_hdr()
        h, body = raw[:H], raw[H:]
        old = bytearray(64)
        old[0:8] = b"FERRYPG1"
        struct.pack_into("<II", old, 8, 1, len(body))
        old[16:40] = h[16:40]  # the key
        struct.pack_into("<II", old, 40, crc(body), PAGE)
        struct.pack_into("<I", old, 60, crc(bytes(old[:60])))
        q = p.with_suffix(".pg")
        q.write_bytes(bytes(old) + body)
        p.unlink()
    olds = sorted(w.cache_dir.rglob("*.pg"))
    assert len(olds) == 3
    flip_byte(olds[0], 64 + 5)
    w.args += ["--scrub-rate", "0"]  # found by the read, not the scrubber
    w.start()
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="o.bin")["Body"].read() == data
    assert w.metric("ferry_page_checksum_failures_total") == 1
    assert w.ufs_reads() == 1  # the bad one only
    assert not list(w.cache_dir.rglob("*.pg"))
    assert len(page_files(w.cache_dir)) == 3


def _crc32c(b, crc=0):
    """CRC32C (Castagnoli), bitwise: for building test pages."""
    crc ^= 0xFFFFFFFF
    tab = _crc32c.tab
    for x in b:
        crc = tab[(crc ^ x) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_crc32c.tab = _crc32c_table()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    d = tmp_path / "tmpfs"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)],
                       capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.decode().strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_cache_disk_full(make_worker, data_dir, tiny_tmpfs):
    objs = {f"f{i}.bin": rand_bytes(1024 * 1024 + 7 * i, 100 + i) for i in range(5)}
    for k, v in objs.items():
        (data_dir / k).write_bytes(v)
    # Capacity far beyond the 2 MiB disk: the disk fills before eviction.
    w = make_worker(mounts={"data": data_dir}, cache_dir=tiny_tmpfs / "cache", cache_size="64M")
    s3 = w.s3()
    for _ in range(2):
        for k, v in objs.items():
            assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
    assert w.metric("ferry_cache_write_errors_total") > 0
    assert w.stats()["write_errors"] > 0


def test_cache_disk_read_only(make_worker, data_dir, tiny_tmpfs):
    a, b = rand_bytes(3 * PAGE, 1), rand_bytes(3 * PAGE + 1, 2)
    (data_dir / "a.bin").write_bytes(a)
    (data_dir / "b.bin").write_bytes(b)
    w = make_worker(mounts={"data": data_dir}, cache_dir=tiny_tmpfs / "cache", cache_size="1M")
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="a.bin")["Body"].read() == a
    p = subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], capture_output=True)
    assert p.returncode == 0, p.stderr
    try:
        for _ in range(2):
            assert s3.get_object(Bucket="data", Key="b.bin")["Body"].read() == b
            assert s3.get_object(Bucket="data", Key="a.bin")["Body"].read() == a
        assert w.metric("ferry_cache_write_errors_total") > 0
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_tmpfs)], capture_output=True)


def test_cached_bytes_for_s3_mount_after_partial_read(make_worker, tmp_path, request):
    m = make_mounted("s3", make_worker, tmp_path, lambda: request.getfixturevalue("s3rver"),
                     args=["--read-ahead", "0", "--window", "1"])
    data = rand_bytes(6 * PAGE, 66)
    m.put("p.bin", data)
    w = m.worker
    r = w.s3().get_object(Bucket="data", Key="p.bin", Range=f"bytes={PAGE}-{3 * PAGE - 1}")
    assert r["Body"].read() == data[PAGE:3 * PAGE]
    w.wait_cached("/data/p.bin", 2 * PAGE)
    time.sleep(0.2)
    assert w.stat("/data/p.bin")["cached_bytes"] == 2 * PAGE


def test_file_rewritten_during_a_read_is_never_mixed(make_worker, data_dir):
    """The file changes while a response is being sent: the client gets
    the whole old object, the whole new one, or a response cut short (an
    error it can see), never a complete body mixing the two."""
    size = 48 * PAGE
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "200ms", "--read-ahead", "0",
                                                     "--window", "1"])
    outcomes = []
    for i in range(4):
        old, new = rand_bytes(size, 2 * i), rand_bytes(size, 2 * i + 1)
        f = data_dir / f"rw{i}.bin"
        f.write_bytes(old)
        os.utime(f, (1_600_000_000 + i, 1_600_000_000 + i))
        if i % 2:
            # Half of it cached beforehand.
            w.s3().get_object(Bucket="data", Key=f"rw{i}.bin", Range=f"bytes=0-{size // 2}")["Body"].read()
        r = requests.get(f"{w.s3_url}/data/rw{i}.bin", stream=True, timeout=30)
        assert r.status_code == 200
        got = b""
        cut = False
        try:
            it = r.raw.stream(PAGE, decode_content=False)
            got += next(it)
            f.write_bytes(new)
            os.utime(f, (1_700_000_000 + i, 1_700_000_000 + i))
            for chunk in it:
                got += chunk
                time.sleep(0.002)
        except Exception:  # noqa: BLE001 - a cut-short response is an allowed outcome
            cut = True
        finally:
            r.close()
        if cut or len(got) < size:
            assert len(got) < size
            outcomes.append("cut")
        else:
            assert got in (old, new), f"rw{i}: a complete response mixed two versions"
            outcomes.append("old" if got == old else "new")
        time.sleep(0.3)
        assert w.s3().get_object(Bucket="data", Key=f"rw{i}.bin")["Body"].read() == new
    assert len(outcomes) == 4
    w.assert_alive()


def test_hits_and_misses_count_what_clients_asked_for(make_worker, data_dir):
    """Regression (hardening issue, item 16): read-ahead was counted as
    hits, so one cold and one warm read of a file showed 87.5%.  A cold
    sequential read is all misses, whatever read-ahead fetched for it; the
    warm read is all hits; read-ahead shows apart."""
    size = 4 << 20
    data = rand_bytes(size, 16)
    (data_dir / "seq.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir})  # 64 KiB pages, read-ahead 8
    s0 = w.stats()
    step = 256 << 10
    got = b""
    for off in range(0, size, step):  # sequential ranges, as FUSE reads
        r = w.ctl("GET", "/v1/data", params={"path": "/data/seq.bin"},
                  headers={"Range": f"bytes={off}-{off + step - 1}"})
        assert r.status_code == 206
        got += r.content
    assert got == data
    w.wait_cached("/data/seq.bin", size)
    s1 = w.stats()
    assert s1["miss_bytes"] - s0["miss_bytes"] == size
    assert s1["hit_bytes"] - s0["hit_bytes"] == 0
    assert s1["readahead_bytes"] - s0["readahead_bytes"] > 0
    assert s1["ufs_read_bytes"] - s0["ufs_read_bytes"] == size
    assert w.ctl("GET", "/v1/data", params={"path": "/data/seq.bin"}).content == data
    s2 = w.stats()
    assert s2["hit_bytes"] - s1["hit_bytes"] == size
    assert s2["miss_bytes"] == s1["miss_bytes"]
    assert "read-ahead bytes:" in w.cli("stats").stdout.decode()
