"""Restart: mounts and pages survive SIGTERM (even mid-transfer) and
SIGKILL, and a new start on the same cache dir serves them.  Eviction: a
small cache never holds more than its capacity (by its own gauge and on
disk) and still serves correct bytes."""
import socket
import threading
import time
from pathlib import Path

from conftest import PAGE, rand_bytes, s3_client, wait_for


def test_restart_keeps_mounts_and_pages(make_worker, data_dir, s3rver):
    files = {f"dir/f{i}.bin": rand_bytes(PAGE * (i + 1) + i, 200 + i) for i in range(3)}
    for k, v in files.items():
        p = data_dir / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(v)
    bucket = s3rver.new_bucket()
    objs = {f"o{i}.bin": rand_bytes(2 * PAGE + i, 300 + i) for i in range(2)}
    for k, v in objs.items():
        s3rver.client.put_object(Bucket=bucket, Key="p/" + k, Body=v)

    w = make_worker(mounts={"files": data_dir})
    w.mount("remote", f"s3://{bucket}/p", **s3rver.mount_options())
    s3 = w.s3()
    for k, v in files.items():
        assert s3.get_object(Bucket="files", Key=k)["Body"].read() == v
    for k, v in objs.items():
        assert s3.get_object(Bucket="remote", Key=k)["Body"].read() == v
    for k, v in files.items():
        w.wait_cached(f"/files/{k}", len(v))
    for k, v in objs.items():
        w.wait_cached(f"/remote/{k}", len(v))
    used = w.metric("ferry_cache_used_bytes")
    assert used > 0
    mounts_before = w.ctl("GET", "/v1/mounts").json()

    # Restart with no --mount: the table comes back from the cache dir.
    assert w.stop() == 0
    assert (w.cache_dir / "mounts.json").exists()
    w.drop_mount_args()
    w.start()
    assert w.ctl("GET", "/v1/mounts").json() == mounts_before
    names = {b["Name"] for b in w.s3().list_buckets()["Buckets"]}
    assert names == {"files", "remote"}
    assert w.metric("ferry_cache_used_bytes") == used
    mark = s3rver.mark()
    s3 = w.s3()
    for k, v in files.items():
        assert s3.get_object(Bucket="files", Key=k)["Body"].read() == v
    for k, v in objs.items():
        assert s3.get_object(Bucket="remote", Key=k)["Body"].read() == v
    assert w.ufs_reads() == 0, "pages were not served from the cache after restart"
    total = sum(map(len, files.values())) + sum(map(len, objs.values()))
    assert w.metric("ferry_cache_hit_bytes_total") == total
    assert w.metric("ferry_cache_miss_bytes_total") == 0
    s3rver.settle()
    for k in objs:
        assert s3rver.gets(bucket, "p/" + k, mark) == []
    for k, v in files.items():
        assert w.stat(f"/files/{k}")["cached_bytes"] == len(v)


def test_unmount_is_persisted(make_worker, data_dir):
    (data_dir / "x").write_bytes(b"x")
    other = data_dir.parent / "other"
    other.mkdir()
    w = make_worker(mounts={"data": data_dir})
    w.mount("second", f"file://{other}")
    r = w.ctl("DELETE", "/v1/mounts/data")
    assert r.status_code == 200, r.text
    # Started without --mount: only "second" remains.
    w.drop_mount_args()
    w.restart()
    names = [m["name"] for m in w.ctl("GET", "/v1/mounts").json()["mounts"]]
    assert names == ["second"]


def cache_disk_bytes(cache_dir):
    return sum(p.stat().st_size for p in Path(cache_dir).rglob("*.pg2") if p.is_file())


def test_eviction_keeps_within_capacity(make_worker, data_dir):
    cap = 1024 * 1024
    files = {f"e{i}.bin": rand_bytes(1024 * 1024 - 5 * i, 400 + i) for i in range(4)}
    for k, v in files.items():
        (data_dir / k).write_bytes(v)
    w = make_worker(mounts={"data": data_dir}, cache_size="1M")
    assert w.metric("ferry_cache_capacity_bytes") == cap

    over = []
    stop = threading.Event()

    def watch():
        # Samples the gauge while reads run (bounded: stops with the test).
        end = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < end:
            used = w.metric("ferry_cache_used_bytes")
            if used > cap:
                over.append(used)
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        s3 = w.s3()
        for rnd in range(2):
            for k, v in files.items():
                assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
                assert w.metric("ferry_cache_used_bytes") <= cap
                assert cache_disk_bytes(w.cache_dir) <= cap
    finally:
        stop.set()
        t.join(10)
    assert not over, f"ferry_cache_used_bytes above capacity: {over[:5]}"
    evicted = w.metric("ferry_cache_evicted_bytes_total")
    assert evicted > 0
    # Everything read twice (8 MiB through a 1 MiB cache): at least ~7 MiB left.
    assert evicted >= 6 * 1024 * 1024
    assert w.stats()["evicted_bytes"] == evicted


def test_eviction_with_parallel_readers(make_worker, data_dir):
    files = {f"p{i}.bin": rand_bytes(8 * PAGE + i, 500 + i) for i in range(8)}
    for k, v in files.items():
        (data_dir / k).write_bytes(v)
    w = make_worker(mounts={"data": data_dir}, cache_size="512K")
    s3 = w.s3()
    errors = []

    def reader(k, v):
        try:
            for _ in range(3):
                if s3.get_object(Bucket="data", Key=k)["Body"].read() != v:
                    errors.append(f"{k}: wrong bytes")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{k}: {e!r}")

    ts = [threading.Thread(target=reader, args=kv) for kv in files.items()]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    assert w.metric("ferry_cache_used_bytes") <= 512 * 1024
    assert cache_disk_bytes(w.cache_dir) <= 512 * 1024
    assert w.metric("ferry_cache_evicted_bytes_total") > 0


def test_restart_with_smaller_capacity_evicts_to_fit(make_worker, data_dir):
    files = {f"s{i}.bin": rand_bytes(4 * PAGE, 600 + i) for i in range(4)}
    for k, v in files.items():
        (data_dir / k).write_bytes(v)
    w = make_worker(mounts={"data": data_dir}, cache_size="4M")
    s3 = w.s3()
    for k, v in files.items():
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
    wait_for(lambda: cache_disk_bytes(w.cache_dir) > 512 * 1024, what="pages on disk")
    w.args[w.args.index("--cache-size") + 1] = "512K"
    w.restart()
    assert w.metric("ferry_cache_used_bytes") <= 512 * 1024
    assert cache_disk_bytes(w.cache_dir) <= 512 * 1024
    for k, v in files.items():
        assert s3_client(w.s3_url).get_object(Bucket="data", Key=k)["Body"].read() == v


def slow_readers(w, key, n):
    """n raw connections that request key and read only a little of it."""
    socks = []
    for i in range(n):
        s = socket.create_connection((w.s3_host, w.s3_port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(f"GET /data/{key} HTTP/1.1\r\nHost: x\r\nRange: bytes={i * 3 * PAGE}-\r\n\r\n".encode())
        s.recv(4096)
        socks.append(s)
    return socks


def test_sigterm_during_transfers_then_restart(make_worker, data_dir):
    big = rand_bytes(8 * 1024 * 1024 + 3, 888)
    (data_dir / "big.bin").write_bytes(big)
    w = make_worker(mounts={"data": data_dir})
    socks = slow_readers(w, "big.bin", 6)
    try:
        t0 = time.monotonic()
        assert w.stop(timeout=15) == 0
        assert time.monotonic() - t0 < 15
    finally:
        for s in socks:
            s.close()
    w.start()
    s3 = w.s3()
    assert s3.get_object(Bucket="data", Key="big.bin")["Body"].read() == big
    assert w.metric("ferry_page_checksum_failures_total") == 0


def test_sigkill_mid_fill_then_restart(make_worker, data_dir):
    files = {f"k{i}.bin": rand_bytes(2 * 1024 * 1024 + i, 900 + i) for i in range(4)}
    for k, v in files.items():
        (data_dir / k).write_bytes(v)
    w = make_worker(mounts={"data": data_dir})
    errors = []

    def reader(k):
        try:
            w.s3().get_object(Bucket="data", Key=k)["Body"].read()
        except Exception as e:  # noqa: BLE001 - the worker is killed under it
            errors.append(e)

    ts = [threading.Thread(target=reader, args=(k,)) for k in files]
    for t in ts:
        t.start()
    time.sleep(0.05)
    w.kill()
    for t in ts:
        t.join(30)
    # Whatever was on disk when it died, a restart serves correct bytes.
    w.start()
    s3 = w.s3()
    for k, v in files.items():
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
    for k, v in files.items():
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
    assert w.metric("ferry_cache_used_bytes") <= w.metric("ferry_cache_capacity_bytes")


def test_two_cache_dirs_each_within_its_capacity(make_worker, data_dir, tmp_path):
    files = {f"m{i}.bin": rand_bytes(PAGE * 8 + i, 700 + i) for i in range(6)}
    for k, v in files.items():
        (data_dir / k).write_bytes(v)
    second = tmp_path / "second-cache"
    w = make_worker(mounts={"data": data_dir}, cache_size="512K",
                    args=["--cache-dir", f"{second}:768K"])
    assert w.metric("ferry_cache_capacity_bytes") == 512 * 1024 + 768 * 1024
    s3 = w.s3()
    for k, v in files.items():
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == v
    time.sleep(0.3)
    assert cache_disk_bytes(w.cache_dir) <= 512 * 1024
    assert cache_disk_bytes(second) <= 768 * 1024
    assert cache_disk_bytes(w.cache_dir) > 0 and cache_disk_bytes(second) > 0
    assert w.metric("ferry_cache_used_bytes") <= 1280 * 1024
    w.restart()
    assert w.metric("ferry_cache_used_bytes") > 0
    # Newest first: the last file read is still cached, in either dir.
    for k, v in reversed(list(files.items())):
        assert w.s3().get_object(Bucket="data", Key=k)["Body"].read() == v
    assert w.metric("ferry_cache_hit_bytes_total") >= len(files["m5.bin"])
