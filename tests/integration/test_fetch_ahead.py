"""Directory fetch-ahead (src/worker/dirahead.c): once a reader has read a
few small files of one directory, the worker fetches the rest of it in the
background, so the reads that follow are hits: the under-store is not asked
again.  Bounded: --fetch-ahead caps the directories fetched whole, a larger
one is fetched only a window ahead; 0 turns it off."""
import time

from conftest import make_mounted, rand_bytes, wait_for

KiB = 1024
PAGE = 64 * KiB


def tree(root, n, size, seed, sub="ds"):
    d = root / sub
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(n):
        name = f"{sub}/s{i:04d}.bin"
        data = rand_bytes(size + i, seed + i)
        (root / name).write_bytes(data)
        files[name] = data
    return files


def ufs_requests(w):
    return sum(w.metric("ferry_ufs_requests_total", op=op) or 0 for op in ("read", "stat", "list"))


def cached_files(w, files):
    return sum(1 for k, v in files.items() if w.stat(f"/data/{k}")["cached_bytes"] >= len(v))


def test_a_walked_directory_is_fetched_ahead_and_then_read_from_the_cache(make_worker, data_dir):
    files = tree(data_dir, 40, 100 * KiB, seed=100)
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    keys = sorted(files)
    # A shuffled reader: four files from the middle of the listing.
    for k in (keys[17], keys[3], keys[30], keys[9]):
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    wait_for(lambda: cached_files(w, files) == len(files), 20, what="the directory fetched ahead")
    assert w.metric("ferry_readahead_bytes_total") >= sum(len(files[k]) for k in keys[:3])
    reads = w.ufs_reads()
    stats = w.metric("ferry_ufs_requests_total", op="stat") or 0
    for k in reversed(keys):
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k], k
    assert w.ufs_reads() == reads  # every one a hit: no byte read again
    # A GET answers the headers stored with the object, which a listing
    # does not give; the fetch of its first page brought them, so no GET
    # asked for them (a regression: each asked once, with a stat).
    assert (w.metric("ferry_ufs_requests_total", op="stat") or 0) == stats
    before = ufs_requests(w)
    for k in keys:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k], k
    assert ufs_requests(w) == before  # now nothing is asked of the under-store


def test_objects_fetched_ahead_from_s3_answer_their_headers_without_a_stat(
        make_worker, tmp_path, s3rver):
    """An s3:// store: the fetch of an object's first page brings the headers
    stored with it, so a GET of an object fetched ahead answers them (the
    listing did not say them) without asking the store anything."""
    m = make_mounted("s3", make_worker, tmp_path, lambda: s3rver)
    files = {}
    for i in range(12):
        k = f"ds/h{i:02d}.json"
        files[k] = rand_bytes(20 * KiB + i, 400 + i)
        s3rver.client.put_object(Bucket=m.src_bucket, Key=m.prefix + k, Body=files[k],
                                 ContentType="application/x-ferry-%d" % i, Metadata={"n": str(i)})
    s3 = m.worker.s3()
    keys = sorted(files)
    for k in keys[:4]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    wait_for(lambda: cached_files(m.worker, files) == len(files), 20,
             what="the directory fetched ahead")
    before = ufs_requests(m.worker)
    for k in keys[4:]:
        r = s3.get_object(Bucket="data", Key=k)
        assert r["Body"].read() == files[k]
        i = int(k[-7:-5])
        assert r["ContentType"] == "application/x-ferry-%d" % i and r["Metadata"] == {"n": str(i)}
    assert ufs_requests(m.worker) == before


def test_fetch_ahead_0_fetches_nothing_ahead(make_worker, data_dir):
    files = tree(data_dir, 20, 100 * KiB, seed=200)
    w = make_worker(mounts={"data": data_dir}, args=["--fetch-ahead", "0"])
    s3 = w.s3()
    keys = sorted(files)
    for k in keys[:6]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    time.sleep(1.5)
    assert cached_files(w, files) == 6
    reads = w.ufs_reads()
    assert s3.get_object(Bucket="data", Key=keys[10])["Body"].read() == files[keys[10]]
    assert w.ufs_reads() > reads


def test_a_directory_over_the_bound_is_fetched_a_window_ahead(make_worker, data_dir):
    """120 files of 100 KB (12 MB) against --fetch-ahead 2M: not whole, a
    window of 64 files past what was read, sliding as the reader goes on."""
    files = tree(data_dir, 120, 100 * KiB, seed=300)
    w = make_worker(mounts={"data": data_dir}, args=["--fetch-ahead", "2M"])
    s3 = w.s3()
    keys = sorted(files)
    for k in keys[:4]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    wait_for(lambda: cached_files(w, files) >= 4 + 60, 20, what="a window fetched ahead")
    time.sleep(1)
    n = cached_files(w, files)
    # Bounded: at most 64 files fetched beyond the 4 read, not all 120.
    assert n <= 4 + 4 + 64, n
    # The reader goes on in order: the window slides and the rest comes.
    for k in keys[4:]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k], k
    assert w.metric("ferry_readahead_bytes_total") >= 60 * 100 * KiB


def test_big_files_and_other_directories_are_left_alone(make_worker, data_dir):
    """Only small files (at most 4 pages) count and are fetched; a reader of
    big files gets the read-ahead of each file, not of its directory."""
    big = {f"big/b{i}.bin": rand_bytes(5 * PAGE, 400 + i) for i in range(6)}
    for k, v in big.items():
        (data_dir / k).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / k).write_bytes(v)
    small = tree(data_dir, 10, 10 * KiB, seed=500, sub="other")
    w = make_worker(mounts={"data": data_dir})
    s3 = w.s3()
    for k in sorted(big)[:5]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == big[k]
    time.sleep(1.5)
    last = sorted(big)[5]
    assert w.stat(f"/data/{last}")["cached_bytes"] == 0
    assert cached_files(w, small) == 0


def test_a_directory_being_read_keeps_its_stat_answers_fresh(make_worker, data_dir):
    """Files' stat answers come from the directory's listing and expire with
    it (--sync-interval); while readers go on reading the directory, the
    walker lists it again before that, so no read waits for a HEAD of its
    own: one LIST a sync interval instead of a stat per file (a regression:
    the DataLoader benchmark's epochs slowed to one round trip per file
    once a minute had passed)."""
    files = tree(data_dir, 20, 50 * KiB, seed=600)
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "10s"])
    s3 = w.s3()
    keys = sorted(files)
    for k in keys[:4]:
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    wait_for(lambda: cached_files(w, files) == len(files), 20, what="the directory fetched ahead")
    for k in keys:  # each GET's headers asked once (see the first test)
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
    stats = w.metric("ferry_ufs_requests_total", op="stat") or 0
    lists = w.metric("ferry_ufs_requests_total", op="list") or 0
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 14 and i < 5000:  # past the answers' first expiry
        k = keys[i % len(keys)]
        assert s3.get_object(Bucket="data", Key=k)["Body"].read() == files[k]
        i += 1
        time.sleep(0.05)
    assert (w.metric("ferry_ufs_requests_total", op="stat") or 0) == stats
    assert (w.metric("ferry_ufs_requests_total", op="list") or 0) > lists
