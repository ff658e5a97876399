"""The metadata cache: a listing refreshes the stat answers it confirms,
so browsing a big directory after the sync interval costs listings, not
one under-store stat per file; a version the listing shows as changed
replaces the old one."""
import os
import time

import requests

from conftest import rand_bytes


def ufs(w, op):
    return w.metric("ferry_ufs_requests_total", op=op)


def test_listing_refreshes_stats_after_sync_interval(make_worker, data_dir):
    for i in range(30):
        (data_dir / f"f{i:02d}.bin").write_bytes(b"x" * (i + 1))
    # The 30 HEADs after the listing must land within one sync interval of
    # it: 4 s leaves room for a loaded machine (1 s did not, in CI).
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "4s"])
    s3 = w.s3()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data")["Contents"]]
    assert len(keys) == 30
    for k in keys:
        s3.head_object(Bucket="data", Key=k)
    stats0 = ufs(w, "stat")
    time.sleep(4.5)  # every entry is now older than the sync interval
    lists0 = ufs(w, "list")
    s3.list_objects_v2(Bucket="data")
    assert ufs(w, "list") == lists0 + 1
    for k in keys:
        assert s3.head_object(Bucket="data", Key=k)["ContentLength"] == int(k[1:3]) + 1
    assert ufs(w, "stat") == stats0, "stats answered by the refreshing listing"


def test_listing_shows_new_version(make_worker, data_dir):
    f = data_dir / "v.bin"
    old, new = rand_bytes(4096, 1), rand_bytes(4096, 2)
    f.write_bytes(old)
    os.utime(f, (1_600_000_000, 1_600_000_000))
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "1s"])
    assert requests.get(f"{w.s3_url}/data/v.bin", timeout=10).content == old
    f.write_bytes(new)
    os.utime(f, (1_600_000_500, 1_600_000_500))
    time.sleep(1.5)
    etag = [o["ETag"] for o in w.s3().list_objects_v2(Bucket="data")["Contents"]][0]
    r = requests.get(f"{w.s3_url}/data/v.bin", timeout=10)
    assert r.content == new and r.headers["ETag"] == etag
