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

from conftest import rand_bytes, wait_for
from test_cluster import (anon_s3, cli, cluster_factory, metric, multi_files,  # noqa: F401
                          pages_of, put_files, s3_get, sha, ufs_bytes, wait_pages)


def dataset():
    files = multi_files()
    for i in range(120):
        files[f"small/s{i:03d}"] = rand_bytes(3000 + i * 17, 9100 + i)
    return files


def test_load_spreads_over_the_workers_and_a_read_then_asks_nothing(cluster_factory):
    c = cluster_factory("loopback")
    files = dataset()
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
    key = "small/s007"
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
    # Spread over all three: each caches the block, having fetched it once.
    wait_pages(ws, 3)
    reads = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    assert reads == [1, 1, 1], reads
    # And each served some of the reads from its own cache.
    served = [metric(w, "ferry_cache_hit_bytes_total") for w in ws]
    assert all(n >= len(data) for n in served), served
