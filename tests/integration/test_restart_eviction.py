"""Restart: mounts and pages survive SIGTERM and a new start on the same
cache dir.  Eviction: a small cache never holds more than its capacity
(by its own gauge and on disk) and still serves correct bytes."""
import threading
import time
from pathlib import Path

from conftest import PAGE, rand_bytes, s3_client


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
    return sum(p.stat().st_size for p in Path(cache_dir).rglob("*.pg") if p.is_file())


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
    assert cache_disk_bytes(w.cache_dir) > 512 * 1024
    w.args[w.args.index("--cache-size") + 1] = "512K"
    w.restart()
    assert w.metric("ferry_cache_used_bytes") <= 512 * 1024
    assert cache_disk_bytes(w.cache_dir) <= 512 * 1024
    for k, v in files.items():
        assert s3_client(w.s3_url).get_object(Bucket="data", Key=k)["Body"].read() == v
