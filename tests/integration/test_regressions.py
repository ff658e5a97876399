"""Regression tests, each named after what broke (found in review)."""
import json
import os
import socket
import threading
import time

import pytest
import requests

from conftest import page_files, rand_bytes, wait_for

PAGE = 64 * 1024


def test_unopenable_page_file_is_refetched_not_a_spin(make_worker, data_dir):
    """A page file the store cannot open (here a symlink loop) once made the
    read path spin at 100% CPU and block shutdown; it must be dropped and
    fetched again."""
    data = rand_bytes(3 * PAGE, 71)
    (data_dir / "o.bin").write_bytes(data)
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="o.bin")["Body"].read() == data
    pages = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(page_files(w.cache_dir)),
                     what="3 page files")
    victim = pages[1]
    victim.unlink()
    os.symlink(victim.name, victim)  # points at itself: open() fails with ELOOP
    before = w.ufs_reads()
    r = requests.get(f"{w.s3_url}/data/o.bin", timeout=20)
    assert r.status_code == 200 and r.content == data
    assert w.ufs_reads() == before + 1
    w.assert_alive()


def test_slow_clients_do_not_starve_other_reads(make_worker, data_dir):
    """Clients that stop reading used to pin the fetch buffers (the
    --max-inflight budget) and stall every other uncached read."""
    big = rand_bytes(4 * 1024 * 1024, 72)
    for i in range(2):
        (data_dir / f"big{i}.bin").write_bytes(big)
    small = rand_bytes(100_000, 73)
    (data_dir / "small.bin").write_bytes(small)
    w = make_worker(mounts={"data": data_dir}, page_size="1M",
                    args=["--max-inflight", "2", "--window", "1", "--read-ahead", "0"])
    host, port = w.s3_url.split("//")[1].split(":")
    stalled = []
    for i in range(2):
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET /data/big{i}.bin HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        stalled.append(s)  # and never read
    time.sleep(1.0)
    t0 = time.monotonic()
    r = requests.get(f"{w.s3_url}/data/small.bin", timeout=15)
    assert r.status_code == 200 and r.content == small
    assert time.monotonic() - t0 < 10
    for s in stalled:
        s.close()
    w.assert_alive()


def test_mount_that_fails_at_restart_is_kept(make_worker, tmp_path):
    """A persisted mount whose directory is missing at start used to be
    dropped from mounts.json by the next mount change."""
    d1 = tmp_path / "d1"
    d1.mkdir()
    (d1 / "f.txt").write_bytes(b"hello")
    d2 = tmp_path / "d2"
    d2.mkdir()
    w = make_worker(mounts={"nas": d1})
    w.drop_mount_args()
    w.stop()
    d1.rename(tmp_path / "d1-away")
    w.start()
    mounts = {m["name"]: m for m in w.ctl("GET", "/v1/mounts").json()["mounts"]}
    assert mounts["nas"]["state"] == "error"
    r = requests.get(f"{w.s3_url}/nas/f.txt", timeout=10)
    assert r.status_code == 503
    w.mount("other", f"file://{d2}")
    state = json.loads((w.cache_dir / "mounts.json").read_text())
    assert {m["name"] for m in state["mounts"]} == {"nas", "other"}


def test_listing_cache_keys_do_not_collide(make_worker, data_dir):
    """prefix=k + start-after=a| and prefix=k|a used to share a cache key."""
    for k in ("k|a1", "k|a2", "kz"):
        (data_dir / k).write_bytes(b"x")
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    a = s3.list_objects_v2(Bucket="data", Prefix="k", StartAfter="a|")
    assert [o["Key"] for o in a.get("Contents", [])] == ["kz", "k|a1", "k|a2"]  # byte order
    b = s3.list_objects_v2(Bucket="data", Prefix="k|a")
    assert [o["Key"] for o in b.get("Contents", [])] == ["k|a1", "k|a2"]


def test_nul_in_query_value_is_refused(make_worker, data_dir):
    """prefix=a%00zz used to be read as prefix=a."""
    (data_dir / "ab").write_bytes(b"x")
    w = make_worker(mounts={"data": data_dir})
    r = requests.get(f"{w.s3_url}/data?list-type=2&prefix=a%00zz", timeout=10)
    assert r.status_code == 400 and b"InvalidArgument" in r.content


def test_dot_prefix_lists_dot_files(make_worker, data_dir):
    """A prefix is a string: "." must list ".hidden"; a complete "./"
    segment matches nothing (empty listing, not an error)."""
    (data_dir / ".hidden").write_bytes(b"x")
    (data_dir / "visible").write_bytes(b"y")
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    r = s3.list_objects_v2(Bucket="data", Prefix=".")
    assert [o["Key"] for o in r.get("Contents", [])] == [".hidden"]
    r = s3.list_objects_v2(Bucket="data", Prefix="./")
    assert r["KeyCount"] == 0 and "Contents" not in r
