"""`ferry load`: bring everything under a path into the cache before
anyone reads it (docs/control-api.md, "Datasets").

What a user relies on: after a load, a full read asks the under-store for
nothing and gets the same bytes; a job killed with its worker (kill -9)
resumes at the restart and finishes without fetching a page twice;
--bandwidth is a cap on what the job reads from the under-store; --verify
catches a page corrupted on disk and fetches it again; files that do not
fit, and files that vanish mid-job, are reported (exit 1), never silently
dropped; Ctrl-C leaves the job running and --stop stops it; bad input gets
a clear error.
"""
import json
import os
import signal
import subprocess
import time

from conftest import FERRY, page_files, page_hdr, rand_bytes, wait_for

KiB = 1024
MiB = 1 << 20


def tree(root, n, size, seed=0, sub="ds"):
    """n files of about size bytes under root/sub, in two directories."""
    files = {}
    for i in range(n):
        rel = f"{sub}/{'a' if i % 2 else 'b'}/f{i:04d}"
        data = rand_bytes(size + (i * 37) % 1000, seed + i)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = data
    return files


def ufs_read_bytes(w):
    return w.metric("ferry_ufs_read_bytes_total") or 0


def jobs(w):
    r = w.ctl("GET", "/v1/load")
    assert r.status_code == 200, r.text
    return r.json()["jobs"]


def job(w, jid):
    r = w.ctl("GET", "/v1/load", params={"id": jid})
    assert r.status_code == 200, r.text
    (j,) = r.json()["jobs"]
    return j


def cli(w, *args, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    return subprocess.run([str(FERRY), "--worker", w.ctl_addr] + [str(a) for a in args],
                          capture_output=True, timeout=timeout, env=env)


def test_load_then_a_full_read_asks_the_store_for_nothing(make_worker, data_dir):
    files = tree(data_dir, 200, 20 * KiB)
    total = sum(len(v) for v in files.values())
    w = make_worker(mounts={"m": data_dir})
    p = cli(w, "load", "/m/ds")
    assert p.returncode == 0, p.stderr
    assert b"/m/ds: loaded" in p.stdout, p.stdout
    (j,) = jobs(w)
    assert j["state"] == "done" and j["path"] == "/m/ds"
    assert j["files_total"] == j["files_done"] == 200
    assert j["bytes_total"] == j["bytes_done"] == total
    assert j["bytes_fetched"] == total and j["files_failed"] == 0
    assert ufs_read_bytes(w) == total
    assert w.metric("ferry_load_bytes_total") == total
    reads = w.ufs_reads()
    s3 = w.s3()
    for rel, data in files.items():
        assert s3.get_object(Bucket="m", Key=rel)["Body"].read() == data
    assert w.ufs_reads() == reads, "a read after the load went to the under-store"
    # Loading again fetches nothing: every page is there.
    p = cli(w, "load", "/m/ds")
    assert p.returncode == 0, p.stderr
    (j,) = jobs(w)
    assert j["bytes_fetched"] == 0 and j["bytes_cached_before"] == total
    assert ufs_read_bytes(w) == total


def test_killed_worker_resumes_the_job_without_fetching_twice(make_worker, data_dir):
    files = tree(data_dir, 60, 40 * KiB, seed=7)
    total = sum(len(v) for v in files.values())
    w = make_worker(mounts={"m": data_dir})
    rate = 600 * KiB  # about 4 s for the whole tree
    r = w.ctl("POST", "/v1/load", params={"path": "/m/ds", "bandwidth": str(rate)})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    wait_for(lambda: job(w, jid)["bytes_done"] >= total // 4, 20, what="a quarter loaded")
    before = ufs_read_bytes(w)
    assert 0 < before < total
    w.kill()
    saved = json.loads((w.cache_dir / "loads" / f"{jid}.json").read_text())
    assert saved["state"] == "running" and saved["cursor"]
    w.start()
    wait_for(lambda: job(w, jid)["state"] != "running", 30, what="the resumed job to end")
    j = job(w, jid)
    assert j["state"] == "done", j
    assert j["files_done"] == j["files_total"] == 60 and j["bytes_done"] == total
    # Every page fetched once, over both lives of the worker.
    after = ufs_read_bytes(w)
    assert before + after == total, (before, after, total)
    reads = w.ufs_reads()
    s3 = w.s3()
    for rel, data in files.items():
        assert s3.get_object(Bucket="m", Key=rel)["Body"].read() == data
    assert w.ufs_reads() == reads


def test_bandwidth_is_a_cap(make_worker, data_dir):
    files = tree(data_dir, 30, 100 * KiB, seed=3)
    total = sum(len(v) for v in files.values())
    w = make_worker(mounts={"m": data_dir})
    rate = 1 * MiB
    t0 = time.monotonic()
    proc = subprocess.Popen([str(FERRY), "--worker", w.ctl_addr, "load", "/m/ds",
                             "--bandwidth", "1MB/s"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={k: v for k, v in os.environ.items() if not k.startswith("FERRY_")})
    samples = []  # (seconds, bytes fetched from the under-store)
    while proc.poll() is None and time.monotonic() - t0 < 30:
        samples.append((time.monotonic(), ufs_read_bytes(w)))
        time.sleep(0.1)
    out, err = proc.communicate(10)
    took = time.monotonic() - t0
    assert proc.returncode == 0, err
    # Over any window of 1 s or more, no more than the cap allows: the
    # window's worth, plus the half second of burst the bucket keeps and
    # one run paid for ahead (a quarter second), plus a page.
    for i, (ta, ba) in enumerate(samples):
        for tb, bb in samples[i + 1:]:
            if tb - ta >= 1.0:
                assert bb - ba <= rate * (tb - ta + 0.75) + 64 * KiB, \
                    ("over the cap", tb - ta, bb - ba)
    (j,) = jobs(w)
    assert j["bandwidth"] == rate and j["bytes_fetched"] == total
    # A cap: never faster (half a second of burst allowed); a slow machine
    # may only make it slower.
    assert took >= (total - rate / 2) / rate, (took, total)
    assert j["rate"] <= rate * 1.1, j


def test_verify_fetches_a_page_corrupted_on_disk_again(make_worker, data_dir):
    files = tree(data_dir, 6, 150 * KiB, seed=11)
    w = make_worker(mounts={"m": data_dir})
    assert cli(w, "load", "/m/ds").returncode == 0
    pages = page_files(w.cache_dir)
    assert pages
    victim = pages[len(pages) // 2]
    raw = bytearray(victim.read_bytes())
    raw[page_hdr() + 100] ^= 0x5A  # a byte of the data, after the header
    victim.write_bytes(bytes(raw))
    fails = w.metric("ferry_page_checksum_failures_total") or 0
    before = ufs_read_bytes(w)
    p = cli(w, "load", "/m/ds", "--verify")
    assert p.returncode == 0, p.stderr
    assert w.metric("ferry_page_checksum_failures_total") == fails + 1
    assert 0 < ufs_read_bytes(w) - before <= 64 * KiB  # that page only
    reads = w.ufs_reads()
    s3 = w.s3()
    for rel, data in files.items():
        assert s3.get_object(Bucket="m", Key=rel)["Body"].read() == data
    assert w.ufs_reads() == reads


def test_files_that_do_not_fit_are_reported(make_worker, data_dir):
    tree(data_dir, 20, 200 * KiB, seed=5)  # ~4 MB into a 1 MiB cache
    w = make_worker(mounts={"m": data_dir}, cache_size="1M")
    p = cli(w, "load", "/m/ds")
    assert p.returncode == 1, p
    assert b"not cached" in p.stderr, p.stderr
    (j,) = jobs(w)
    # What is in the cache at the end counts, not what was there right
    # after each read: 20 files of 200 KB, room for about 5 (a regression:
    # the count came from a look right after each read, which under load
    # could find every page still there and call the job "loaded").
    assert j["files_not_cached"] >= 15 and j["files_failed"] == 0, j
    assert "could be cached" in j["last_error"]


def test_a_file_that_vanishes_mid_job_is_a_failure(make_worker, data_dir):
    files = tree(data_dir, 40, 30 * KiB, seed=9)
    w = make_worker(mounts={"m": data_dir})
    r = w.ctl("POST", "/v1/load", params={"path": "/m/ds", "bandwidth": str(300 * KiB),
                                          "parallel": "1"})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    wait_for(lambda: job(w, jid)["files_done"] >= 1 and job(w, jid)["listing_done"], 20,
             what="the job under way")
    last = sorted(files)[-1]  # listed, read last
    (data_dir / last).unlink()
    wait_for(lambda: job(w, jid)["state"] != "running", 30, what="the job to end")
    j = job(w, jid)
    assert j["state"] == "failed" and j["files_failed"] == 1, j
    assert last in j["last_error"], j
    p = cli(w, "load", "--status")
    assert p.returncode == 0 and b"1 failed" in p.stdout, p.stdout


def test_ctrl_c_leaves_the_job_running_and_stop_stops_it(make_worker, data_dir):
    files = tree(data_dir, 40, 50 * KiB, seed=13)
    total = sum(len(v) for v in files.values())
    w = make_worker(mounts={"m": data_dir})
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    proc = subprocess.Popen([str(FERRY), "--worker", w.ctl_addr, "load", "/m/ds",
                             "--bandwidth", "500K"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    wait_for(lambda: jobs(w) and jobs(w)[0]["bytes_done"] > 0, 20, what="the job under way")
    proc.send_signal(signal.SIGINT)
    proc.wait(10)
    (j,) = jobs(w)
    assert j["state"] == "running"
    wait_for(lambda: jobs(w)[0]["bytes_done"] > j["bytes_done"], 10, what="the job going on")
    p = cli(w, "load", "--stop", "/m/ds")
    assert p.returncode == 0 and b"stopped" in p.stdout, p
    (j,) = jobs(w)
    assert j["state"] == "stopped" and j["bytes_done"] < total
    done = ufs_read_bytes(w)
    time.sleep(0.5)
    assert ufs_read_bytes(w) == done, "a stopped job went on reading"


def test_bad_input(make_worker, data_dir):
    tree(data_dir, 2, 1 * KiB)
    w = make_worker(mounts={"m": data_dir})
    for params, status in (({"path": "/nosuch/x"}, 404), ({"path": "/m/nosuch"}, 404),
                           ({"path": "/"}, 400), ({"path": "/m", "bandwidth": "fast"}, 400),
                           ({"path": "/m", "parallel": "0"}, 400),
                           ({"path": "/m", "parallel": "65"}, 400)):
        r = w.ctl("POST", "/v1/load", params=params)
        assert r.status_code == status, (params, r.text)
        assert r.json()["error"]
    assert w.ctl("DELETE", "/v1/load", params={"id": "0123456789abcdef"}).status_code == 404
    p = cli(w, "load", "/m/nosuch")
    assert p.returncode == 1 and b"No such file" in p.stderr, p
    p = cli(w, "load", "/m/ds", "--bandwidth", "fast")
    assert p.returncode == 2 and b"--bandwidth" in p.stderr, p
    p = cli(w, "load")
    assert p.returncode == 2, p
    assert jobs(w) == []
