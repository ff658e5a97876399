"""Real programs on the `ferry fuse` mount: fio, a PyTorch DataLoader and
DuckDB, each checked against the same program reading the source directory.

Each test starts a worker with a file:// mount "data" of a generated source
directory and mounts it with `ferry fuse` (the fixtures of test_fuse.py).
fio reads a 64 MiB file it wrote itself with CRC32C verify headers every
4 KiB (sequential and random, 4 KiB and 256 KiB blocks, 1 and 4 jobs): a
wrong or misplaced byte fails the job.  The DataLoader reads 2,000 small
files from worker processes; every (path, sha256) must equal the source's,
and a second epoch, with the kernel's page cache dropped, must be served
without a single new read of the under-store.  DuckDB (the npm package
@duckdb/node-api) aggregates and projects three Parquet files; the answers
must equal those over the source directory.  A program that is not
installed (scripts/install-deps.sh installs them all) skips its test.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import rand_bytes, wait_for
from test_fuse import FUSERMOUNT, fuse_mount  # noqa: F401  (fuse_mount is a fixture)

MiB = 1 << 20
HELPERS = Path(__file__).resolve().parent / "helpers"
SYS_PYTHON = "/usr/bin/python3"
FIO = shutil.which("fio")
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or FUSERMOUNT is None,
    reason="FUSE unavailable: needs /dev/fuse and fusermount3 (apt-get install fuse3)")


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def proc(cmd, timeout, cwd=None):
    return subprocess.run([str(c) for c in cmd], capture_output=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def mounted_dir(make_worker, fuse_mount, data_dir):
    """mounted_dir() -> (worker, root of mount "data" on the FUSE mount);
    call it once the source directory holds what the test needs."""
    def make():
        w = make_worker(mounts={"data": data_dir}, cache_size="512M")
        m = fuse_mount(w)
        return w, m.mnt / "data"
    return make


# --- fio ---------------------------------------------------------------------

FIO_SIZE = "64m"
# Verify headers (CRC32C, offset, length) every 4 KiB, so that reads of any
# multiple of 4 KiB, in any order, check every byte they read and its place.
FIO_VERIFY = ["--verify=crc32c", "--verify_interval=4096", "--verify_fatal=1",
              "--verify_state_save=0"]


def fio(cwd, *args, timeout=90):
    return proc([FIO, "--ioengine=psync", "--direct=0", f"--size={FIO_SIZE}"] + FIO_VERIFY
                + list(args), timeout, cwd=cwd)


def fio_read(cwd, path, rw, bs, jobs):
    """A verifying read job; returns (ok, read bytes, what went wrong)."""
    p = fio(cwd, "--name=r", f"--filename={path}", f"--rw={rw}", f"--bs={bs}",
            f"--numjobs={jobs}", "--runtime=30", "--time_based=0", "--group_reporting",
            "--output-format=json")
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0 or "verify" in err or "bad header" in err:
        return False, 0, f"rc {p.returncode}: {err[-2000:]}"
    job = json.loads(p.stdout)["jobs"][0]
    if job["error"] != 0:
        return False, 0, f"job error {job['error']}"
    return True, job["read"]["io_bytes"], ""


@pytest.mark.skipif(FIO is None, reason="fio not installed (scripts/install-deps.sh)")
@pytest.mark.parametrize("bs", ["4k", "256k"])
@pytest.mark.parametrize("rw", ["read", "randread"])
def test_fio_verified_reads(mounted_dir, data_dir, tmp_path, rw, bs):
    src = data_dir / "fio.bin"
    p = fio(tmp_path, "--name=gen", f"--filename={src}", "--rw=write", "--bs=256k",
            "--do_verify=0")
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert src.stat().st_size == 64 * MiB

    # The check is live: the same job fails on a copy with one byte changed.
    bad = tmp_path / "corrupt.bin"
    shutil.copyfile(src, bad)
    with open(bad, "r+b") as f:
        f.seek(37 * MiB + 1234)
        b = f.read(1)
        f.seek(37 * MiB + 1234)
        f.write(bytes([b[0] ^ 0x5A]))
    ok, _, _ = fio_read(tmp_path, bad, rw, bs, 1)
    assert not ok, "fio verification did not notice a corrupted byte"
    bad.unlink()

    w, root = mounted_dir()
    for jobs in (1, 4):
        for name, path in (("source", src), ("mount", root / "fio.bin")):
            ok, n, why = fio_read(tmp_path, path, rw, bs, jobs)
            assert ok, f"fio {rw} bs={bs} jobs={jobs} on the {name}: {why}"
            assert n >= 64 * MiB, f"fio read only {n} bytes on the {name}"
    assert w.ufs_reads() > 0
    assert sha256_file(root / "fio.bin") == sha256_file(src)


# --- PyTorch DataLoader --------------------------------------------------------

N_FILES = 2000
CLASSES = 10


def torch_probe():
    try:
        p = proc([SYS_PYTHON, HELPERS / "torch_epoch.py", "--probe"], 60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if p.returncode == 0 else p.stderr.decode(errors="replace").strip().splitlines()[-1:]


def torch_epoch(root, *flags):
    p = proc([SYS_PYTHON, HELPERS / "torch_epoch.py", root] + list(flags), 120)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return json.loads(p.stdout)["items"]


def test_torch_dataloader_two_epochs(mounted_dir, data_dir):
    why = torch_probe()
    if why is not None:
        pytest.skip(f"PyTorch unusable with {SYS_PYTHON} (apt-get install python3-torch): {why}")
    rng = random.Random(7)
    total = 0
    for i in range(N_FILES):
        d = data_dir / "train" / f"class{i % CLASSES:02d}"
        d.mkdir(parents=True, exist_ok=True)
        n = rng.randrange(4096, 16385)
        (d / f"img{i:05d}.bin").write_bytes(rand_bytes(n, 1000 + i))
        total += n

    want = torch_epoch(data_dir / "train")
    assert len(want) == N_FILES
    want_set = {tuple(x) for x in want}
    assert len(want_set) == N_FILES

    w, root = mounted_dir()
    reads0 = w.ufs_reads() or 0
    first = torch_epoch(root / "train")
    assert len(first) == N_FILES, "an item was read twice or not at all"
    assert {tuple(x) for x in first} == want_set
    assert w.ufs_reads() - reads0 >= N_FILES, "the first epoch did not read the under-store"

    # Pages reach the cache after the bytes reached the client: wait for all.
    wait_for(lambda: (w.metric("ferry_cache_pages") or 0) >= N_FILES, 30,
             what=f"{N_FILES} pages cached")
    reads1 = w.ufs_reads()
    hits1 = w.metric("ferry_cache_hit_bytes_total") or 0
    second = torch_epoch(root / "train", "--drop-page-cache")
    assert {tuple(x) for x in second} == want_set
    assert [x[0] for x in second] != [x[0] for x in first], "the loader did not shuffle"
    assert w.ufs_reads() == reads1, "the second epoch read the under-store again"
    # ...and it did reach the worker (the kernel's page cache was dropped).
    assert (w.metric("ferry_cache_hit_bytes_total") or 0) - hits1 >= total


# --- DuckDB over Parquet -----------------------------------------------------

DUCKDB_JS = HELPERS / "duckdb_query.js"
ROWS = 200000


def duckdb(*stmts, timeout=90):
    p = proc([NODE, DUCKDB_JS, json.dumps(list(stmts))], timeout)
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    return json.loads(p.stdout)["results"]


def duckdb_probe():
    if NODE is None:
        return "node not installed"
    try:
        p = proc([NODE, DUCKDB_JS, "--probe"], 60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if p.returncode == 0 else p.stderr.decode(errors="replace").strip()[-300:]


def sql_str(p):
    return "'" + str(p).replace("'", "''") + "'"


def test_duckdb_parquet(mounted_dir, data_dir):
    why = duckdb_probe()
    if why is not None:
        pytest.skip(f"@duckdb/node-api unusable (scripts/install-deps.sh installs it "
                    f"into .deps/npm): {why}")
    duckdb(*[f"COPY (SELECT i AS a, 'row-' || i::VARCHAR || repeat('x', (i % 17)::INTEGER) AS b, "
             f"i * 0.25 AS c FROM range({k * ROWS}, {(k + 1) * ROWS}) t(i)) "
             f"TO {sql_str(data_dir / f'part{k}.parquet')} (FORMAT PARQUET)"
             for k in range(3)])
    assert sorted(os.listdir(data_dir)) == ["part0.parquet", "part1.parquet", "part2.parquet"]

    def queries(d):
        src = f"read_parquet({sql_str(Path(d) / '*.parquet')})"
        return [f"SELECT count(*), sum(a), sum(hash(b)) FROM {src}",
                f"SELECT a, b FROM {src} WHERE a % 7919 = 0 ORDER BY a",
                f"SELECT count(*), min(a), max(a), sum(c) FROM {src} WHERE b LIKE '%xxxxxxxxxxxxxxxx'"]

    want = duckdb(*queries(data_dir))
    n = 3 * ROWS
    assert want[0][0][:2] == [str(n), str(n * (n - 1) // 2)]
    assert len(want[1]) == (n + 7918) // 7919

    w, root = mounted_dir()
    got = duckdb(*queries(root))
    assert got == want
    assert w.ufs_reads() > 0
    # Warm: the same answers again, now from the cache.
    assert duckdb(*queries(root)) == want
