"""Datasets in a 3-worker cluster (etcd, loopback): `ferry load`, `du`,
`pin`, `free` through one worker's address act on every worker.

What a user relies on: a load asked of one worker makes every worker fetch
the blocks placement gives it, together, each page once, and a full read
afterwards through any worker asks the under-store for nothing; du sums
what every worker caches; a pin is on every worker; free drops the path on
every worker.
"""
import json
import time

from conftest import FERRY, rand_bytes, wait_for
from test_cluster import (anon_s3, cli, cluster_factory, metric, multi_files,  # noqa: F401
                          pages_of, put_files, s3_get, sha, ufs_bytes, wait_pages)


def dataset():
    """2,000 files: a few large ones (crossing pages and blocks), the rest
    small."""
    files = multi_files()
    for i in range(2000 - len(files)):
        files[f"small/s{i:04d}"] = rand_bytes(1000 + (i % 200) * 37, 9100 + i)
    return files


def test_a_load_of_2000_files_spreads_over_the_workers_and_a_read_then_asks_nothing(cluster_factory):
    c = cluster_factory("loopback")
    files = dataset()
    assert len(files) == 2000
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    total = sum(len(v) for v in files.values())
    total_pages = sum(pages_of(len(v)) for v in files.values())

    p = cli(ws[0], "load", "/data")
    assert "loaded" in p.stdout and "all the workers" in p.stdout, p.stdout
    per = [ufs_bytes(w) for w in ws]
    assert sum(per) == total, f"under-store bytes per worker {per}, data {total}"
    assert all(b > 0 for b in per), f"a worker loaded nothing: {per}"
    wait_pages(ws, total_pages)
    # Each worker's job counted its own share; together, everything.
    jobs = [w.ctl("GET", "/v1/load").json()["jobs"] for w in ws]
    assert all(len(j) == 1 and j[0]["state"] == "done" for j in jobs), jobs
    assert sum(j[0]["bytes_total"] for j in jobs) == total
    assert all(j[0]["files_total"] == len(files) for j in jobs)

    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    s3 = anon_s3(ws[1].s3_url)
    for key, data in files.items():
        assert sha(s3_get(s3, key)) == sha(data), key
    assert [metric(w, "ferry_ufs_requests_total", op="read") for w in ws] == reads

    # du through any worker sums the cluster: all of it cached, 3 holders.
    d = json.loads(cli(ws[2], "du", "-s", "--json", "/data").stdout)
    assert len(d["workers"]) == 3
    assert sum(x["cached_bytes"] for x in d["workers"]) == total
    assert all(x["total_bytes"] == total for x in d["workers"])
    text = cli(ws[2], "du", "/data").stdout
    last = text.strip().splitlines()[-1].split()
    assert last[-1] == "/data" and last[-2] == "3", text

    # free through one worker drops it on all of them.
    p = cli(ws[1], "free", "/data")
    assert "freed" in p.stdout, p.stdout
    wait_pages(ws, 0)
    before = sum(ufs_bytes(w) for w in ws)
    key = "small/s0007"
    assert s3_get(s3, key) == files[key]
    assert sum(ufs_bytes(w) for w in ws) == before + len(files[key])


def test_pin_and_ttl_go_to_every_worker(cluster_factory):
    c = cluster_factory("loopback")
    put_files(c.data_dir, {"keep/a": rand_bytes(5000, 1), "tmp/b": rand_bytes(5000, 2)})
    ws = [c.add() for _ in range(3)]
    cli(ws[0], "pin", "/data/keep")
    cli(ws[0], "ttl", "/data/tmp", "1h")
    for w in ws:
        rules = {r["path"]: r for r in w.ctl("GET", "/v1/policy").json()["rules"]}
        assert rules["keep"]["pin"] is True and rules["tmp"]["ttl"] == 3600, (w.ctl_addr, rules)
    p = cli(ws[2], "free", "/data", check=False)
    assert p.returncode == 1 and "pinned" in p.stderr, p
    cli(ws[1], "unpin", "/data/keep")
    cli(ws[1], "ttl", "/data/tmp", "--clear")
    for w in ws:
        assert w.ctl("GET", "/v1/policy").json()["rules"] == []


def _load_jobs(w):
    return w.ctl("GET", "/v1/load").json()["jobs"]


def test_load_survives_etcd_and_a_worker_killed_mid_job(cluster_factory):
    """etcd goes away and comes back, and a worker is SIGKILLed and
    restarted, while a cluster's load runs: every worker's job ends done,
    and every page was fetched from the under-store once."""
    c = cluster_factory("loopback")
    files = {f"d/f{i:03d}": rand_bytes(200_000 + i * 101, 500 + i) for i in range(60)}
    put_files(c.data_dir, files)
    ws = [c.add(fixed_ports=True) for _ in range(3)]
    total = sum(len(v) for v in files.values())
    total_pages = sum(pages_of(len(v)) for v in files.values())
    # About 4 s at 3 MB/s for the cluster (1 MB/s each).
    p = cli(ws[0], "load", "/data/d", "--bandwidth", "3M", "-d")
    job = p.stdout.strip()
    assert len(job) == 16, p.stdout  # one job, the cluster's
    wait_for(lambda: all(_load_jobs(w) and _load_jobs(w)[0]["bytes_done"] > 0 for w in ws), 20,
             what="every worker's job under way")
    c.etcd.kill()
    time.sleep(0.5)
    c.etcd.start()
    victim = ws[2]
    before = ufs_bytes(victim)
    c.kill(victim)
    victim.expect_death = False
    victim.start()
    c.wait_members(ws, timeout=20)
    wait_for(lambda: all(_load_jobs(w)[0]["state"] != "running" for w in ws), 40,
             what="every worker's job to end")
    states = [_load_jobs(w)[0] for w in ws]
    assert all(j["state"] == "done" and j["files_failed"] == 0 for j in states), states
    assert all(j["id"] == job for j in states), states
    per = [ufs_bytes(w) for w in ws]
    per[2] += before  # the killed worker's first life, read just before the kill
    # Never a page twice: at most the data.  (What the victim fetched
    # between that reading and the kill is not counted: at most a page per
    # loader in flight, 1 MiB pages here.)
    assert total - 8 * (1 << 20) <= sum(per) <= total, \
        f"under-store bytes per worker {per}, data {total}"
    wait_pages(ws, total_pages)
    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    s3 = anon_s3(ws[0].s3_url)
    for key, data in files.items():
        assert sha(s3_get(s3, key)) == sha(data), key
    assert [metric(w, "ferry_ufs_requests_total", op="read") for w in ws] == reads


def test_a_hot_file_gains_replicas_under_8_readers(cluster_factory):
    """One small file read by 8 clients through a worker that does not hold
    it: past --hot-threshold reads/s its block is spread over more workers,
    each of which caches it (fetched once each), instead of one worker
    serving every read."""
    import threading
    c = cluster_factory("loopback")
    data = rand_bytes(100_000, 77)
    put_files(c.data_dir, {"hot.bin": data})
    hot = ["--hot-threshold", "20", "--hot-replicas", "2"]
    ws = [c.add(extra=hot) for _ in range(3)]
    # Which worker holds it: the one whose cache has it after one read.
    assert s3_get(anon_s3(ws[0].s3_url), "hot.bin") == data
    wait_pages(ws, 1)
    owner = next(w for w in ws if w.stats()["pages"] == 1)
    reader = next(w for w in ws if w is not owner)
    errors = []

    def read_loop():
        s3 = anon_s3(reader.s3_url)
        try:
            for _ in range(60):
                assert s3_get(s3, "hot.bin") == data
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    ts = [threading.Thread(target=read_loop) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    assert metric(reader, "ferry_hot_reads_total") > 0
    assert metric(reader, "ferry_hot_blocks") == 1
    assert metric(reader, "ferry_hot_replicas") == 2
    # ferry du shows it: the reader sees the file's one block hot.
    d = json.loads(cli(reader, "du", "-s", "--json", "/data/hot.bin").stdout)
    assert max(x["hot_blocks"] for x in d["workers"]) == 1, d
    last = cli(reader, "du", "/data/hot.bin").stdout.strip().splitlines()[-1].split()
    assert last[-3:] == ["1", "3", "/data/hot.bin"], last
    # Spread over all three: each caches the block, having fetched it once.
    wait_pages(ws, 3)
    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    assert reads == [1, 1, 1], reads
    # And each served some of the reads from its own cache.
    served = [metric(w, "ferry_cache_hit_bytes_total") for w in ws]
    assert all(n >= len(data) for n in served), served


def _rules(w):
    return {r["path"]: r for r in w.ctl("GET", "/v1/policy").json()["rules"]}


def test_a_worker_that_joins_later_takes_up_rules_and_the_running_load(cluster_factory):
    """Pins, TTLs and load jobs are the cluster's (kept in etcd): a worker
    that joins while a load runs applies the rules and loads its own share
    of the job, under the job's id; once every worker's part has ended,
    the job is done and a worker joining after that loads nothing."""
    c = cluster_factory("loopback")
    files = {f"d/f{i:03d}": rand_bytes(150_000 + i * 37, 800 + i) for i in range(48)}
    files["keep/a"] = rand_bytes(4000, 1)
    files["tmp/b"] = rand_bytes(4000, 2)
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(2)]
    cli(ws[0], "pin", "/data/keep")
    cli(ws[1], "ttl", "/data/tmp", "1h")
    # About 4 s for the cluster at 2 MB/s.
    job = cli(ws[0], "load", "/data/d", "--bandwidth", "2M", "-d").stdout.strip()
    assert len(job) == 16, job
    wait_for(lambda: all(_load_jobs(w) and _load_jobs(w)[0]["bytes_done"] > 0 for w in ws), 20,
             what="both workers' parts under way")
    late = c.add()
    rules = _rules(late)
    assert rules["keep"]["pin"] is True and rules["tmp"]["ttl"] == 3600, rules
    wait_for(lambda: _load_jobs(late), 10, what="the late worker to take up the job")
    assert _load_jobs(late)[0]["id"] == job
    ws.append(late)
    wait_for(lambda: all(_load_jobs(w)[0]["state"] != "running" for w in ws), 60,
             what="every worker's part to end")
    assert all(_load_jobs(w)[0]["state"] == "done" for w in ws), [_load_jobs(w) for w in ws]
    assert ufs_bytes(late) > 0, "the late worker loaded nothing of its share"
    # Everything sits where placement (three workers now) puts it.
    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    s3 = anon_s3(ws[1].s3_url)
    for key, data in files.items():
        if key.startswith("d/"):
            assert sha(s3_get(s3, key)) == sha(data), key
    assert [metric(w, "ferry_ufs_requests_total", op="read") for w in ws] == reads
    # The job is over: a fourth worker joining now does not load it.
    wait_for(lambda: "every worker's part ended: done" in "".join(w.log() for w in ws), 10,
             what="the job's record to be marked done")
    fourth = c.add()
    time.sleep(2)
    assert _load_jobs(fourth) == [], _load_jobs(fourth)
    assert "keep" in _rules(fourth)


def test_a_rule_removed_while_a_worker_was_down_is_gone_when_it_returns(cluster_factory):
    """A worker keeps the rules in its state dir too (for a start while etcd
    is down), but the cluster's are etcd's: an unpin made while it was
    stopped holds when it comes back, and a TTL made meanwhile applies."""
    c = cluster_factory("loopback")
    put_files(c.data_dir, {"keep/a": rand_bytes(5000, 1), "tmp/b": rand_bytes(5000, 2)})
    ws = [c.add() for _ in range(3)]
    cli(ws[0], "pin", "/data/keep")
    assert _rules(ws[2])["keep"]["pin"] is True
    assert ws[2].stop() == 0
    c.wait_members(ws[:2])
    cli(ws[0], "unpin", "/data/keep")
    cli(ws[1], "ttl", "/data/tmp", "2h")
    ws[2].start()
    c.wait_members(ws)
    rules = _rules(ws[2])
    assert "keep" not in rules and rules["tmp"]["ttl"] == 7200, rules
    # And it stays so across its own restart (its file was rewritten).
    assert ws[2].stop() == 0
    ws[2].start()
    c.wait_members(ws)
    assert list(_rules(ws[2])) == ["tmp"]


def test_the_pin_limit_counts_each_workers_share(cluster_factory):
    """In a cluster a pin holds, on each worker, the blocks placement gives
    that worker: 48 MB pinned over three workers with a 25.6 MB limit each
    (10% of 256 MB) fits, though it is more than one worker's limit; 40 MB
    more would not fit on at least one, and the refusal names it."""
    c = cluster_factory("loopback")
    kib = 512 * 1024
    files = {f"a/f{i:03d}": rand_bytes(kib, 3000 + i) for i in range(96)}
    files.update({f"b/f{i:03d}": rand_bytes(kib, 4000 + i) for i in range(80)})
    put_files(c.data_dir, files)
    ws = [c.add(extra=["--pin-limit", "10"]) for _ in range(3)]
    cli(ws[0], "pin", "/data/a")
    for w in ws:
        assert _rules(w)["a"]["pin"] is True
    p = cli(ws[1], "pin", "/data/b", check=False)
    assert p.returncode == 1, p
    assert "pin limit" in p.stderr and "worker 127.0.0.1:" in p.stderr, p.stderr
    for w in ws:
        assert "b" not in _rules(w)
    # Unpinned, the room is back: b alone fits.
    cli(ws[2], "unpin", "/data/a")
    cli(ws[2], "pin", "/data/b")
    assert list(_rules(ws[0])) == ["b"]


def test_load_with_replicas_2_survives_the_loss_of_a_worker(cluster_factory):
    """`ferry load --replicas 2` caches each block on its first two workers
    in placement order (the mount keeps replicas=1): the under-store is
    read twice over, and once a worker is lost, everything is read through
    the others with nothing asked of the under-store."""
    c = cluster_factory("loopback")
    files = {f"r/f{i:02d}": rand_bytes(300_000 + i * 1001, 600 + i) for i in range(30)}
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    total = sum(len(v) for v in files.values())
    total_pages = sum(pages_of(len(v)) for v in files.values())
    p = cli(ws[0], "load", "/data/r", "--replicas", "2")
    assert "loaded" in p.stdout, p.stdout
    assert sum(ufs_bytes(w) for w in ws) == 2 * total
    wait_pages(ws, 2 * total_pages)
    assert all(_load_jobs(w)[0]["replicas"] == 2 for w in ws)
    p = cli(ws[0], "load", "/data/r", "--replicas", "0", check=False)
    assert p.returncode == 2 and "--replicas" in p.stderr, p
    victim = ws[2]
    c.kill(victim)
    live = ws[:2]
    c.wait_members(live, timeout=20)
    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in live]
    s3 = anon_s3(ws[0].s3_url)
    for key, data in files.items():
        assert sha(s3_get(s3, key)) == sha(data), key
    assert [metric(w, "ferry_ufs_requests_total", op="read") for w in live] == reads


def test_a_clusters_bandwidth_cap_holds_across_all_workers(cluster_factory):
    """--bandwidth caps the whole job: the three workers' under-store reads
    together stay under it over every window of 1 s or more, also after
    the parts that placement gave fewer bytes have ended and the others
    take up their share."""
    import subprocess
    c = cluster_factory("loopback")
    files = {f"bw/f{i:02d}": rand_bytes(100_000 + i * 313, 700 + i) for i in range(45)}
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    total = sum(len(v) for v in files.values())
    rate = 1536 * 1024
    t0 = time.monotonic()
    proc = subprocess.Popen([str(FERRY), "--worker", ws[0].ctl_addr, "load", "/data/bw",
                             "--bandwidth", "1536K"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    samples = []
    while proc.poll() is None and time.monotonic() - t0 < 60:
        samples.append((time.monotonic(), sum(ufs_bytes(w) for w in ws)))
        time.sleep(0.1)
    out, err = proc.communicate(10)
    took = time.monotonic() - t0
    assert proc.returncode == 0, err
    assert sum(ufs_bytes(w) for w in ws) == total
    # Each worker's bucket keeps half a second of its share and pays a run
    # ahead; a share changes when a part starts or ends.
    for i, (ta, ba) in enumerate(samples):
        for tb, bb in samples[i + 1:]:
            if tb - ta >= 1.0:
                assert bb - ba <= rate * (tb - ta + 1.0) + 3 * 64 * 1024, \
                    ("over the cap", tb - ta, bb - ba)
    assert took >= (total - rate) / rate, (took, total)
    jobs = [_load_jobs(w)[0] for w in ws]
    assert all(j["state"] == "done" for j in jobs), jobs
