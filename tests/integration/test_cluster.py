"""ferry's cluster mode, end to end: a real etcd and several real workers.

Every test starts its own etcd (free loopback ports, data in tmp_path) and
its own workers with a small placement block (--block-size 2M over 1 MiB
pages, so files of a few MiB span several blocks on different workers) and
a 2 s membership lease (deaths are noticed fast).  Workers that a test
restarts get explicit free ports so that they come back on the same
address.  The checks are on bytes (sha256 against the source), on each
worker's /metrics (UFS reads, forwarded bytes, members) and on what
`ferry workers` / `ferry mounts` print.

When run as root, the basic read and kill tests also run with every worker
in its own network namespace with its own 10.77.x.y address (veths into a
bridge, etcd on the bridge address), so nothing depends on one host.

Teardown stops workers (SIGTERM; a worker that died unasked or did not exit
0 fails the test), then etcd, then the namespaces; etcd and the workers also
die with pytest itself (PR_SET_PDEATHSIG).  Every load loop is bounded in
count and in time.
"""
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore import UNSIGNED

from conftest import FERRY, rand_bytes, s3_client, s3_config, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))
from cluster_harness import Etcd, NetLab, NsWorker, free_port  # noqa: E402

MiB = 1 << 20
BLOCK = 2 * MiB
PAGE = MiB
TOKEN = "cluster-test-token"
IS_ROOT = os.geteuid() == 0


def sha(b):
    return hashlib.sha256(b).hexdigest()


def anon_s3(url, **cfg):
    """A boto3 client that sends unsigned requests (the gateways run
    without keys on loopback, with --s3-anonymous in namespaces)."""
    cfg.setdefault("signature_version", UNSIGNED)
    return boto3.session.Session(region_name="us-east-1").client(
        "s3", endpoint_url=url, config=s3_config(**cfg))


def pages_of(n):
    return (n + PAGE - 1) // PAGE


# --- the cluster -------------------------------------------------------------

class Cluster:
    """etcd + workers, on loopback or one namespace per worker."""

    def __init__(self, tmp_path, topo, data_dir):
        self.tmp = Path(tmp_path)
        self.topo = topo
        self.data_dir = Path(data_dir)
        self.name = "t" + os.urandom(3).hex()
        self.workers = []
        self.lab = None
        self.etcd = None

    def start_etcd(self):
        host = "127.0.0.1"
        if self.topo == "netns":
            self.lab = NetLab().setup(0)
            host = self.lab.gateway
        self.etcd = Etcd(self.tmp / "etcd", host).start()
        return self

    def worker_args(self, host, s3_port=0, ctl_port=0, extra=()):
        a = ["--cache-size", "256M", "--page-size", "1M", "--block-size", "2M",
             "--lease-ttl", "2", "--etcd", self.etcd.url, "--cluster", self.name,
             "--s3-address", f"{host}:{s3_port}", "--control-address", f"{host}:{ctl_port}",
             "--mount", f"data=file://{self.data_dir.resolve()}"]
        if self.topo == "netns":
            a += ["--control-token", TOKEN, "--s3-anonymous"]
        return a + list(extra)

    def add(self, fixed_ports=False, extra=(), start=True, wait=True):
        """Starts one more worker; waits until every live worker sees all."""
        i = len(self.workers)
        ns = None
        if self.topo == "netns":
            ns = self.lab.add_namespace()
            host = self.lab.addr(i)
        else:
            host = "127.0.0.1"
        ports = (free_port(), free_port()) if fixed_ports else (0, 0)
        w = NsWorker(self.tmp, self.tmp / f"cache{i}", self.worker_args(host, *ports, extra), netns=ns)
        self.workers.append(w)
        if start:
            w.start()
            if wait:
                self.wait_members(self.live())
        return w

    def live(self):
        return [w for w in self.workers if w.alive()]

    def members(self, w):
        r = w.ctl("GET", "/v1/cluster", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_members(self, ws, timeout=20):
        """Until each worker in ws sees exactly ws as the members."""
        want = sorted(w.ctl_addr for w in ws)

        def ok():
            for w in ws:
                w.assert_alive()
                got = sorted(m["ctl"] for m in self.members(w)["members"])
                if got != want:
                    return False
            return True
        wait_for(ok, timeout, interval=0.1, what=f"every worker to see members {want}")

    def kill(self, w):
        w.expect_death = True
        w.kill()

    def teardown(self):
        problems = []
        for w in self.workers:
            if w.proc is None:
                continue
            if not w.stopped and not w.alive() and not w.expect_death:
                problems.append(f"worker {w.n} died during the test (rc {w.proc.returncode}); log:\n{w.log_tail()}")
                w.stopped = True
                continue
            try:
                rc = w.stop()
            except AssertionError as e:
                problems.append(str(e))
                continue
            if rc != 0 and not w.expect_death:
                problems.append(f"worker {w.n} exited {rc} on SIGTERM; log:\n{w.log_tail()}")
        for w in self.workers:
            log = w.log()
            if "AddressSanitizer" in log or "runtime error:" in log:
                problems.append(f"sanitizer report in worker {w.n}:\n{log[-4000:]}")
        if self.etcd:
            self.etcd.kill()
        if self.lab:
            problems += self.lab.teardown()
        return problems


@pytest.fixture
def cluster_factory(tmp_path):
    made = []

    def make(topo="loopback", data_dir=None):
        if topo == "netns" and not IS_ROOT:
            pytest.skip("network namespaces need root (ip netns); run the suite as root")
        d = Path(data_dir) if data_dir else tmp_path / "data"
        d.mkdir(exist_ok=True)
        c = Cluster(tmp_path, topo, d)
        made.append(c)
        return c.start_etcd()

    yield make
    problems = []
    for c in made:
        problems += c.teardown()
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture(params=["loopback", "netns"])
def topo(request):
    return request.param


def put_files(root, files):
    for rel, data in files.items():
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def metric(w, name, **labels):
    return w.metrics().get((name, frozenset(labels.items())), 0.0)


def msum(ws, name, **labels):
    return sum(metric(w, name, **labels) for w in ws)


def ufs_bytes(w):
    return metric(w, "ferry_ufs_read_bytes_total")


def s3_get(client, key, rng=None):
    kw = {"Range": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
    return client.get_object(Bucket="data", Key=key, **kw)["Body"].read()


def data_get(w, key, rng=None, timeout=30):
    h = {"Range": f"bytes={rng[0]}-{rng[1]}"} if rng else {}
    r = w.ctl("GET", "/v1/data", params={"path": f"/data/{key}"}, headers=h, timeout=timeout)
    assert r.status_code == (206 if rng else 200), f"{w.ctl_url} {key} {rng}: {r.status_code} {r.text[:200]}"
    return r.content


def wait_pages(ws, n, timeout=15):
    """Pages go to disk after their bytes went out: waits until the
    workers hold n pages between them."""
    return wait_for(lambda: sum(w.stats()["pages"] for w in ws) == n, timeout,
                    interval=0.1, what=f"{n} pages cached across the cluster "
                    f"(now {[w.stats()['pages'] for w in ws]})")


def cli(w, *args, check=True, timeout=30):
    cmd = [str(FERRY), "--worker", w.ctl_addr]
    if w.credentials()[0]:
        cmd += ["--token", TOKEN]
    p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert p.returncode == 0, f"ferry {args}: rc {p.returncode}: {p.stderr}"
    return p


# Files spanning several 2 MiB blocks, with ends off page and block edges.
MULTI = {
    "a/five.bin": 5 * MiB + 123,
    "nine.bin": 9 * MiB,
    "b/c/two-plus.bin": 2 * MiB + 1,
    "small.txt": 1000,
    "seven.bin": 7 * MiB - 7,
}


def multi_files():
    return {k: rand_bytes(n, 7000 + i) for i, (k, n) in enumerate(sorted(MULTI.items()))}


def crossing_ranges(size):
    """Ranges that cross block (and page) boundaries, within size."""
    out = []
    for b in range(BLOCK, size, BLOCK):
        out.append((b - 5, min(size - 1, b + 5)))
        out.append((b - PAGE - 3, min(size - 1, b + PAGE + 3)))
    if size > 2 * BLOCK + 10:
        out.append((BLOCK - 1, 2 * BLOCK))       # one byte, a block, one byte
        out.append((17, size - 18))              # almost everything
    return out


# --- 1 and 11: every gateway serves every byte; the UFS is read once -------

def test_reads_through_every_worker(cluster_factory, topo):
    c = cluster_factory(topo)
    files = multi_files()
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    total = sum(len(v) for v in files.values())
    total_pages = sum(pages_of(len(v)) for v in files.values())

    for w in ws:
        s3 = anon_s3(w.s3_url)
        for key, data in files.items():
            assert sha(s3_get(s3, key)) == sha(data), f"{key} through {w.s3_url}"
            assert sha(data_get(w, key)) == sha(data), f"{key} through {w.ctl_url}/v1/data"
            for a, b in crossing_ranges(len(data)):
                assert s3_get(s3, key, (a, b)) == data[a:b + 1], f"{key} [{a},{b}] via S3 of {w.s3_url}"
                assert data_get(w, key, (a, b)) == data[a:b + 1], f"{key} [{a},{b}] via /v1/data of {w.ctl_url}"

    # Each page was read from the UFS once, by its block's owner, however
    # many workers served it; and it is cached once.
    per = [ufs_bytes(w) for w in ws]
    assert sum(per) == total, f"UFS bytes per worker {per}, data {total}"
    reqs = [metric(w, "ferry_ufs_requests_total", op="read") for w in ws]
    assert sum(reqs) == total_pages, f"UFS reads per worker {reqs}, pages {total_pages}"
    wait_pages(ws, total_pages)
    # every worker forwarded what it does not hold, and served what it does
    fwd = [metric(w, "ferry_cluster_forwarded_bytes_total") for w in ws]
    assert all(f > 0 for f in fwd), f"forwarded bytes per worker {fwd}"
    assert all(metric(w, "ferry_cluster_members") == 3 for w in ws)
    assert all(metric(w, "ferry_cluster_etcd_up") == 1 for w in ws)


# --- 3 and 11: SIGKILL of a worker under load --------------------------------

class Readers:
    """n threads reading random files in a loop through the given S3
    endpoints, checking every byte; bounded by max_each reads per thread
    and by stop()."""

    def __init__(self, urls, files, n=8, max_each=400, ranged=False):
        self.files = files
        self.keys = sorted(files)
        self.digests = {k: sha(v) for k, v in files.items()}
        self.urls = urls
        self.n = n
        self.max_each = max_each
        self.ranged = ranged
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.done = []      # (start time, end time)
        self.failures = []  # (start time, url, key, what)
        self.threads = []

    def _run(self, t):
        rnd = random.Random(t)
        url = self.urls[t % len(self.urls)]
        client = anon_s3(url, read_timeout=30)
        for _ in range(self.max_each):
            if self.halt.is_set():
                return
            key = rnd.choice(self.keys)
            t0 = time.monotonic()
            try:
                if self.ranged and rnd.random() < 0.5:
                    n = len(self.files[key])
                    a = rnd.randrange(n)
                    b = rnd.randrange(a, n)
                    ok = s3_get(client, key, (a, b)) == self.files[key][a:b + 1]
                else:
                    ok = sha(s3_get(client, key)) == self.digests[key]
                what = None if ok else "wrong bytes"
            except Exception as e:  # noqa: BLE001 -- every failure counts
                what = f"{type(e).__name__}: {e}"
            with self.lock:
                if what:
                    self.failures.append((t0, url, key, what))
                else:
                    self.done.append((t0, time.monotonic()))

    def start(self):
        for t in range(self.n):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def count(self, since=None):
        with self.lock:
            return len([d for d in self.done if since is None or d[0] >= since])

    def wait_count(self, n, since=None, timeout=30):
        def enough():
            if not any(th.is_alive() for th in self.threads):
                raise AssertionError(f"readers finished early: {self.count(since)} reads, "
                                     f"failures {self.failures[:5]}")
            return self.count(since) >= n
        wait_for(enough, timeout, interval=0.05, what=f"{n} reads")

    def stop(self):
        self.halt.set()
        for th in self.threads:
            th.join(60)
        assert not any(th.is_alive() for th in self.threads), "a reader thread hung"


def kill_files(n=16):
    # about two blocks each, ends off block edges
    return {f"k/{i:02d}.bin": rand_bytes(BLOCK + MiB + 4099 * i, 9000 + i) for i in range(n)}


def test_sigkill_during_reads(cluster_factory, topo):
    c = cluster_factory(topo)
    files = kill_files()
    put_files(c.data_dir, files)
    a, b, victim = [c.add() for _ in range(3)]
    total_pages = sum(pages_of(len(v)) for v in files.values())
    s3a = anon_s3(a.s3_url)
    for k, v in files.items():  # warm: every block cached on its owner
        assert s3_get(s3a, k) == v
    wait_pages([a, b, victim], total_pages)
    assert victim.stats()["pages"] > 0, "the victim owns no block: nothing to test"

    rd = Readers([a.s3_url, b.s3_url], files, n=8, max_each=1500, ranged=True).start()
    try:
        rd.wait_count(24)
        t_kill = time.monotonic()
        c.kill(victim)
        c.wait_members([a, b], timeout=15)  # lease 2 s
        t_gone = time.monotonic()
        # reads go on after the death is noticed, and past the 3 s a failed
        # peer is skipped for
        rd.wait_count(40, since=t_kill)
        rd.wait_count(24, since=t_gone + 3.5, timeout=30)
    finally:
        rd.stop()
    assert rd.failures == [], f"{len(rd.failures)} failed reads, first: {rd.failures[:5]}"
    # The kill was felt: survivors asked the dead worker and moved on.
    errs = msum([a, b], "ferry_cluster_peer_errors_total")
    fails = msum([a, b], "ferry_cluster_failovers_total")
    assert errs >= 1 and fails >= 1, f"peer errors {errs}, failovers {fails}: the dead worker was never asked"
    print(f"reads: {rd.count()} ({rd.count(t_kill)} after the kill), noticed in "
          f"{t_gone - t_kill:.1f}s, peer errors {errs}, failovers {fails}")


# --- 4: the killed worker comes back with its cache ---------------------------

def test_killed_worker_restarts_with_its_pages(cluster_factory):
    c = cluster_factory()
    files = kill_files(12)
    put_files(c.data_dir, files)
    a, b = c.add(), c.add()
    v = c.add(fixed_ports=True)
    vid = c.members(v)["self"]
    total_pages = sum(pages_of(len(x)) for x in files.values())
    for w in (a, b, v):
        s3 = anon_s3(w.s3_url)
        for k, x in files.items():
            assert s3_get(s3, k) == x
    wait_pages([a, b, v], total_pages)
    v_pages = v.stats()["pages"]
    assert v_pages > 0, "the victim owns no block: nothing to test"
    old_addr = (v.ctl_addr, v.s3_url)

    c.kill(v)
    c.wait_members([a, b], timeout=15)
    v.expect_death = False
    v.start()
    assert (v.ctl_addr, v.s3_url) == old_addr
    assert c.members(v)["self"] == vid, "the restarted worker has a new id"
    c.wait_members([a, b, v])
    assert v.stats()["pages"] == v_pages, "pages lost over the restart"

    for w in (v, a):  # its own gateway, and a peer forwarding to it
        s3 = anon_s3(w.s3_url)
        for k, x in files.items():
            assert sha(s3_get(s3, k)) == sha(x), f"{k} through {w.s3_url} after the restart"
    for k, x in files.items():
        assert sha(data_get(v, k)) == sha(x)
    assert ufs_bytes(v) == 0, "the restarted worker read the UFS for pages it had cached"
    hit = metric(v, "ferry_cache_hit_bytes_total")
    assert hit >= v_pages * PAGE * 0.5, f"hit bytes {hit} for {v_pages} cached pages"


# --- 7: the mount table is the cluster's -------------------------------------

def mount_names(w):
    r = w.ctl("GET", "/v1/mounts", timeout=5)
    assert r.status_code == 200, r.text
    j = r.json()
    ms = j["mounts"] if isinstance(j, dict) else j
    return {m["name"].lstrip("/"): m for m in ms}


def test_cluster_wide_mounts(cluster_factory, tmp_path, s3rver):
    c = cluster_factory()
    extra = tmp_path / "extra"
    extra.mkdir()
    blob = rand_bytes(5 * MiB + 3, 77)
    (extra / "x.bin").write_bytes(blob)
    a, b, cc = c.add(), c.add(fixed_ports=True), c.add()

    r = a.ctl("POST", "/v1/mounts", json={"name": "extra", "uri": f"file://{extra}", "options": {}})
    assert r.status_code == 200, r.text
    for w in (b, cc):
        wait_for(lambda: "extra" in mount_names(w), 5, interval=0.1,
                 what=f"mount /extra on {w.ctl_addr}")
        assert anon_s3(w.s3_url).get_object(Bucket="extra", Key="x.bin")["Body"].read() == blob
    # a second mount of the same name through another worker is refused
    r = cc.ctl("POST", "/v1/mounts", json={"name": "extra", "uri": f"file://{tmp_path}", "options": {}})
    assert r.status_code >= 400, r.text
    assert mount_names(a)["extra"]["uri"] == f"file://{extra}"

    # it survives a restart of b (same ports)
    assert b.restart() is b
    c.wait_members([a, b, cc])
    assert "extra" in mount_names(b)
    r = b.ctl("GET", "/v1/data", params={"path": "/extra/x.bin"})
    assert r.status_code == 200 and sha(r.content) == sha(blob)

    # unmount through cc: gone everywhere
    r = cc.ctl("DELETE", "/v1/mounts/extra")
    assert r.status_code in (200, 204), r.text
    for w in (a, b, cc):
        wait_for(lambda: "extra" not in mount_names(w), 5, interval=0.1,
                 what=f"/extra gone from {w.ctl_addr}")
    assert "data" in mount_names(b)

    # a secret given to one worker is never shown by any
    secret = "Sekr1t-" + os.urandom(6).hex()
    bucket = s3rver.new_bucket()
    opts = s3rver.mount_options()
    opts["s3.secret_key"] = secret
    r = a.ctl("POST", "/v1/mounts", json={"name": "sec", "uri": f"s3://{bucket}/p", "options": opts})
    assert r.status_code == 200, r.text
    assert secret not in r.text
    for w in (a, b, cc):
        wait_for(lambda: "sec" in mount_names(w), 5, interval=0.1, what=f"/sec on {w.ctl_addr}")
        got = w.ctl("GET", "/v1/mounts").text
        assert secret not in got and "s3.secret_key" in got, got
        out = cli(w, "mounts")
        assert "sec" in out.stdout and secret not in out.stdout + out.stderr, out.stdout
        for path in ("/v1/cluster", "/v1/stats", "/metrics"):
            assert secret not in w.ctl("GET", path).text, path
        assert secret not in w.log(), f"worker {w.n} logged the secret"


def test_mount_check_is_made_once_by_the_worker_asked(cluster_factory, s3rver):
    """A new mount is checked by the worker the client asked: a bucket that
    does not exist is refused before it reaches etcd, so no worker has it;
    one made with "check": false reaches the others, which never check
    what they replay (a store may not be there yet)."""
    c = cluster_factory()
    a, b = c.add(), c.add()
    opts = s3rver.mount_options(**{"s3.retries": "0"})
    r = a.ctl("POST", "/v1/mounts", json={"name": "nb", "uri": "s3://nosuch-bucket-c1",
                                          "options": opts})
    assert r.status_code == 502 and r.json()["code"] == "MountCheckFailed", r.text
    assert "NoSuchBucket" in r.json()["error"]
    nowhere = {"s3.endpoint": "http://nosuch-host.invalid:9", "s3.retries": "0"}
    r = a.ctl("POST", "/v1/mounts", json={"name": "nh", "uri": "s3://bkt", "options": nowhere,
                                          "check": False})
    assert r.status_code == 200, r.text
    wait_for(lambda: "nh" in mount_names(b), 5, interval=0.1, what=f"/nh on {b.ctl_addr}")
    assert "nb" not in mount_names(a) and "nb" not in mount_names(b)
    # b restarts: restored from its table and etcd, again unchecked.
    assert b.restart() is b
    assert "nh" in mount_names(b)


# --- 9: ferry workers ----------------------------------------------------------

def workers_rows(w):
    p = cli(w, "workers")
    rows = {}
    for line in p.stdout.splitlines():
        f = line.split()
        if len(f) >= 4 and re.match(r"^[0-9a-f]{8}\*?$", f[0]):
            rows[f[1]] = f[3]
    return p.stdout, rows


def test_ferry_workers(cluster_factory):
    c = cluster_factory()
    ws = [c.add() for _ in range(3)]
    out, rows = workers_rows(ws[0])
    assert rows == {w.ctl_addr: "up" for w in ws}, out
    assert re.search(r"cluster \S+: 3 worker\(s\), block size 2 MiB, etcd up", out), out
    assert out.count("*") == 1, out  # self is marked once

    c.kill(ws[2])
    dead = ws[2].ctl_addr
    states = []

    def gone():
        o, r = workers_rows(ws[0])
        states.append(r.get(dead))
        return r.get(dead) is None and o
    out = wait_for(gone, 15, interval=0.2, what="the dead worker to leave `ferry workers`")
    assert set(workers_rows(ws[1])[1]) == {ws[0].ctl_addr, ws[1].ctl_addr}
    # before it was gone, it was only ever shown unreachable
    assert set(s for s in states if s) <= {"unreachable"}, states
    assert "2 worker(s)" in out


# --- 2 and 5: placement spreads blocks over the members ------------------------

def small_files(prefix, n, seed):
    # one block each (far smaller than a block)
    return {f"{prefix}/{i:04d}.txt": rand_bytes(3000 + i % 97, seed + i) for i in range(n)}


def ufs_shares(ws, before, n):
    reqs = [metric(w, "ferry_ufs_requests_total", op="read") - before.get(w.n, 0) for w in ws]
    assert sum(reqs) == n, f"UFS reads {reqs} for {n} one-page files"
    return [r / n for r in reqs]


def read_all(client, files):
    for k, v in files.items():
        assert s3_get(client, k) == v, k


def test_placement_spreads_files(cluster_factory):
    c = cluster_factory()
    files = small_files("p", 300, 100)
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    read_all(anon_s3(ws[0].s3_url), files)
    shares = ufs_shares(ws, {}, len(files))
    print(f"UFS-read shares of 300 one-block files over 3 workers: {[round(s, 3) for s in shares]}")
    assert all(0.2 <= s <= 0.47 for s in shares), shares
    # read again through another gateway: placement is the same everywhere
    read_all(anon_s3(ws[1].s3_url), files)
    assert sum(ufs_bytes(w) for w in ws) == sum(len(v) for v in files.values())


def test_fourth_worker_takes_a_quarter(cluster_factory):
    c = cluster_factory()
    old = small_files("old", 200, 300)  # enough that 0.4 is > 4 sigma above 1/4
    new = small_files("new", 300, 500)
    put_files(c.data_dir, {**old, **new})
    ws = [c.add() for _ in range(3)]
    read_all(anon_s3(ws[0].s3_url), old)
    d = c.add()  # waits until all four see four members
    ws.append(d)
    before = {w.n: metric(w, "ferry_ufs_requests_total", op="read") for w in ws}
    read_all(anon_s3(ws[1].s3_url), new)
    shares = ufs_shares(ws, before, len(new))
    print(f"UFS-read shares of 300 new files over 4 workers: {[round(s, 3) for s in shares]}")
    assert 0.12 <= shares[3] <= 0.38, shares
    assert all(0.12 <= s <= 0.38 for s in shares), shares
    # the old files: only those the newcomer now owns are read again (by it)
    before = {w.n: metric(w, "ferry_ufs_requests_total", op="read") for w in ws}
    read_all(anon_s3(ws[2].s3_url), old)
    moved = [metric(w, "ferry_ufs_requests_total", op="read") - before[w.n] for w in ws]
    assert moved[:3] == [0, 0, 0], f"old files re-read by old workers: {moved}"
    assert moved[3] < 0.4 * len(old), f"the newcomer took {moved[3]} of {len(old)} old files"


# --- 6: etcd stopped and killed while reads go on -----------------------------

def live_registrations(c):
    """Worker keys in etcd held by a lease with time left (an expired lease
    shows 0 or less until etcd revokes it, and its keys with it)."""
    regs = c.etcd.leases(f"/ferry/{c.name}/workers/")
    return sorted(k for k, lease in regs.items() if lease and c.etcd.lease_ttl(lease) > 0)


def settled(c, ws, fence_dir, timeout=20):
    """Waits until etcd holds every worker in ws under a live lease and each
    worker has seen etcd's history up to then: a mount created afterwards
    (events come in revision order) is on every worker, and each one's
    view is ws."""
    wait_for(lambda: len(live_registrations(c)) == len(ws), timeout, interval=0.1,
             what=f"{len(ws)} registrations under live leases in etcd "
                  f"(now {c.etcd.leases(f'/ferry/{c.name}/workers/')})")
    name = "fence" + os.urandom(3).hex()
    r = ws[0].ctl("POST", "/v1/mounts", json={"name": name, "uri": f"file://{fence_dir}", "options": {}})
    assert r.status_code == 200, r.text
    for w in ws:
        wait_for(lambda: name in mount_names(w), timeout, interval=0.05, what=f"/{name} on {w.ctl_addr}")
    c.wait_members(ws, timeout=timeout)


def test_etcd_outage_under_reads(cluster_factory, tmp_path):
    c = cluster_factory()
    files = kill_files(8)
    put_files(c.data_dir, files)
    ws = [c.add() for _ in range(3)]
    read_all(anon_s3(ws[0].s3_url), files)
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_bytes(b"after the outage\n")

    rd = Readers([w.s3_url for w in ws], files, n=6, max_each=3000, ranged=True).start()
    try:
        rd.wait_count(12)
        # frozen longer than the lease
        t0 = time.monotonic()
        c.etcd.signal(signal.SIGSTOP)
        wait_for(lambda: time.monotonic() - t0 > 3 and rd.count(t0) >= 20, 30,
                 what="reads while etcd is stopped")
        assert all(metric(w, "ferry_cluster_members") == 3 for w in ws), \
            "a worker dropped members while etcd was stopped"
        c.etcd.signal(signal.SIGCONT)
        # Frozen past the TTL, every lease has expired by etcd's clock: on
        # waking, etcd revokes them (every worker's key goes, and the views
        # drop those members, as they must) and each worker registers again.
        # The views showed three members all through the freeze, so seeing
        # three now proves nothing: wait until etcd holds all three under
        # live leases and every worker has watched etcd's history past that
        # point (a fence mount made after it), so that the views are the
        # settled ones when etcd dies.
        settled(c, ws, other)
        # killed, then restarted on the same ports and data dir
        t1 = time.monotonic()
        c.etcd.kill()
        wait_for(lambda: all(metric(w, "ferry_cluster_etcd_up") == 0 for w in ws), 20,
                 interval=0.1, what="workers to notice etcd is gone")
        wait_for(lambda: time.monotonic() - t1 > 3 and rd.count(t1) >= 20, 30,
                 what="reads while etcd is dead")
        assert all(metric(w, "ferry_cluster_members") == 3 for w in ws), \
            "a worker dropped members while etcd was down"
        t2 = time.monotonic()
        c.etcd.start()
        wait_for(lambda: all(metric(w, "ferry_cluster_etcd_up") == 1 for w in ws), 20,
                 interval=0.1, what="workers to see etcd again")
        c.wait_members(ws, timeout=20)
        rd.wait_count(20, since=t2)
    finally:
        rd.stop()
    assert rd.failures == [], f"{len(rd.failures)} failed reads, first: {rd.failures[:5]}"
    regs = c.etcd.range_prefix(f"/ferry/{c.name}/workers/")
    assert len(regs) == 3, f"etcd holds {len(regs)} registrations: {list(regs)}"
    out, rows = workers_rows(ws[1])
    assert rows == {w.ctl_addr: "up" for w in ws}, out
    assert "etcd up" in out, out
    r = ws[2].ctl("POST", "/v1/mounts", json={"name": "other", "uri": f"file://{other}", "options": {}})
    assert r.status_code == 200, r.text
    for w in ws:
        wait_for(lambda: "other" in mount_names(w), 5, interval=0.1, what=f"/other on {w.ctl_addr}")
        got = anon_s3(w.s3_url).get_object(Bucket="other", Key="o.txt")["Body"].read()
        assert got == b"after the outage\n"
    print(f"reads: {rd.count()} in all, {rd.count(t0) - rd.count(t1)} with etcd stopped, "
          f"{rd.count(t1) - rd.count(t2)} with etcd dead")


# --- 8: replicas -----------------------------------------------------------------

def test_replicas_spread_a_hot_file(cluster_factory, tmp_path):
    c = cluster_factory()
    hot_dir = tmp_path / "hot"
    hot_dir.mkdir()
    hot = rand_bytes(BLOCK - 12345, 4242)  # one block
    (hot_dir / "hot.bin").write_bytes(hot)
    # a longer lease: the failover below happens before the view changes
    ws = [c.add(extra=["--lease-ttl", "6"]) for _ in range(3)]
    cli(ws[0], "mount", "/rep", f"file://{hot_dir}", "--option", "replicas=2")
    for w in ws:
        wait_for(lambda: "rep" in mount_names(w), 5, interval=0.1, what=f"/rep on {w.ctl_addr}")
    assert c.members(ws[1])["replicas"].get("rep") == 2, c.members(ws[1])

    def fwd(w):
        return metric(w, "ferry_cluster_forwarded_bytes_total")

    # Which worker is not a replica: the one that forwards.
    for w in ws:
        before = fwd(w)
        r = w.ctl("GET", "/v1/data", params={"path": "/rep/hot.bin"})
        assert r.status_code == 200 and r.content == hot
        w.forwarded_hot = fwd(w) - before
    non = [w for w in ws if w.forwarded_hot > 0]
    assert len(non) == 1, f"forwarded bytes {[w.forwarded_hot for w in ws]}: want exactly one non-replica"
    n = non[0]
    reps = [w for w in ws if w is not n]
    # both replicas read the UFS once each (they cache it independently)
    assert [ufs_bytes(w) for w in reps] == [len(hot)] * 2, [ufs_bytes(w) for w in ws]
    assert ufs_bytes(n) == 0

    hit0 = {w.n: metric(w, "ferry_cache_hit_bytes_total") for w in reps}
    s3 = anon_s3(n.s3_url)
    for _ in range(20):
        assert s3.get_object(Bucket="rep", Key="hot.bin")["Body"].read() == hot
    served = [metric(w, "ferry_cache_hit_bytes_total") - hit0[w.n] for w in reps]
    print(f"hot file: 20 reads through the non-replica, served by the replicas: {served}")
    assert all(s >= 3 * len(hot) for s in served), f"hit bytes per replica {served}"
    assert sum(ufs_bytes(w) for w in ws) == 2 * len(hot), "the hot file was read from the UFS again"

    # One replica dies: the other serves, nobody reads the UFS, as long as
    # the view still holds the dead one (views only lose it from then on,
    # so each read checked after it completed used such a view).
    dead, alive = reps
    c.kill(dead)
    ufs0 = ufs_bytes(n) + ufs_bytes(alive)
    checked = 0
    for _ in range(12):
        got = s3.get_object(Bucket="rep", Key="hot.bin")["Body"].read()
        assert got == hot
        if dead.ctl_addr not in [m["ctl"] for m in c.members(n)["members"]]:
            break
        checked += 1
        assert ufs_bytes(n) + ufs_bytes(alive) == ufs0, "a read went to the UFS though a replica had the data"
    assert checked >= 4, f"only {checked} reads before the view dropped the dead replica"
    assert metric(n, "ferry_cluster_peer_errors_total") >= 1, "the dead replica was never asked"


# --- 10: FUSE over libferry reads straight from the owners ----------------------

def fuse_unavailable():
    if not IS_ROOT:
        return "FUSE tests need root here (mounting /dev/fuse)"
    import shutil
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        return "FUSE unavailable: needs /dev/fuse and fusermount3 (apt-get install fuse3)"
    return None


def read_via_fs(path):
    with open(path, "rb") as f:
        return f.read()


def test_fuse_reads_from_owners_and_survives_deaths(cluster_factory, tmp_path):
    why = fuse_unavailable()
    if why:
        pytest.skip(why)
    from test_fuse import FuseMount, mounted_at  # the same mount helper as test_fuse.py

    c = cluster_factory()
    first = {f"f/{i}.bin": rand_bytes(5 * MiB + 1000 * i + 1, 600 + i) for i in range(4)}
    later = {f"g/{i}.bin": rand_bytes(5 * MiB + 999 * i + 7, 700 + i) for i in range(4)}
    last = {f"h/{i}.bin": rand_bytes(4 * MiB + 555 * i + 3, 800 + i) for i in range(4)}
    put_files(c.data_dir, {**first, **later, **last})
    ws = [c.add() for _ in range(3)]
    a = ws[0]
    fm = FuseMount(tmp_path, a, tmp_path / "mnt", ["--attr-timeout", "1"])
    try:
        fm.start()
        root = fm.mnt / "data"
        for k, v in first.items():
            assert sha(read_via_fs(root / k)) == sha(v), k
        fwd_a = metric(a, "ferry_cluster_block_reads_total", where="forwarded")
        local = [metric(w, "ferry_cluster_block_reads_total", where="local") for w in ws]
        print(f"after reading through FUSE: A forwarded {fwd_a} block reads; local block reads {local}")
        assert fwd_a <= 1, f"worker A forwarded {fwd_a} block reads: libferry did not go to the owners"
        assert sum(ufs_bytes(w) for w in ws) == sum(len(v) for v in first.values())
        owners = [w for w in ws[1:] if ufs_bytes(w) > 0]
        assert owners, "no block of 12 placed on B or C"
        victim = owners[0]
        survivor = [w for w in ws[1:] if w is not victim][0]

        # A (the worker given to ferry fuse) and an owner die: files never
        # read before (no kernel page cache) still read, at once and after
        # the deaths are noticed.
        c.kill(a)
        c.kill(victim)
        for k, v in later.items():
            assert sha(read_via_fs(root / k)) == sha(v), f"{k} right after the kills"
        c.wait_members([survivor], timeout=15)
        for k, v in last.items():
            assert sha(read_via_fs(root / k)) == sha(v), f"{k} after the view changed"
        assert mounted_at(fm.mnt)
    finally:
        problems = fm.teardown()
    assert not problems, problems


# --- writes: read-after-write through every worker ---------------------------

def test_read_after_write_through_every_worker(cluster_factory):
    """A write or delete through one worker is seen at once through every
    other (the writer tells its peers, POST /v1/invalidate), though each
    had the old version cached and the sync interval is long."""
    c = cluster_factory()
    old = {"w/obj.bin": rand_bytes(3 * PAGE + 5, 71), "w/gone.bin": rand_bytes(PAGE, 72)}
    put_files(c.data_dir, old)
    ws = [c.add(extra=["--sync-interval", "5m"]) for _ in range(3)]
    clients = [anon_s3(w.s3_url) for w in ws]
    for s3 in clients:  # every worker has the old versions in its caches
        for key, data in old.items():
            assert s3_get(s3, key) == data
    new = rand_bytes(2 * PAGE + 9, 73)
    clients[0].put_object(Bucket="data", Key="w/obj.bin", Body=new)
    clients[0].put_object(Bucket="data", Key="w/sub/fresh.bin", Body=b"fresh")
    clients[0].delete_object(Bucket="data", Key="w/gone.bin")
    for i, s3 in enumerate(clients):
        assert s3_get(s3, "w/obj.bin") == new, f"worker {i}"
        assert s3.head_object(Bucket="data", Key="w/obj.bin")["ContentLength"] == len(new)
        assert s3_get(s3, "w/sub/fresh.bin") == b"fresh"
        with pytest.raises(Exception) as e:
            s3.head_object(Bucket="data", Key="w/gone.bin")
        assert "404" in str(e.value), f"worker {i}: {e.value}"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix="w/")["Contents"]]
        assert keys == ["w/obj.bin", "w/sub/fresh.bin"], f"worker {i}: {keys}"
        assert data_get(ws[i], "w/obj.bin") == new
    assert msum(ws, "ferry_cluster_announce_misses_total") == 0
    # A peer that is down is not told, and that is counted, not fatal.
    c.kill(ws[2])
    clients[0].put_object(Bucket="data", Key="w/obj.bin", Body=b"v3")
    assert s3_get(clients[1], "w/obj.bin") == b"v3"
    assert (c.data_dir / "w" / "obj.bin").read_bytes() == b"v3"


# --- multipart uploads: any worker takes any request of an upload --------------

AK, SK = "AKIDCLUSTERMPU", "cluster-mpu-secret/+="

NEWER_PARTS = """
import sys
import boto3
from botocore.config import Config
url, ak, sk, key, uid, path = sys.argv[1:7]
s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                           region_name="us-east-1").client("s3", endpoint_url=url,
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                  retries={"total_max_attempts": 1}))
data = open(path, "rb").read()
# New botocore sends each part aws-chunked, with a checksum trailer.
print(s3.upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=2, Body=data,
                     ChecksumAlgorithm="CRC32")["ETag"])
"""


def test_multipart_requests_go_to_any_worker(cluster_factory, tmp_path):
    """An upload lives on the worker that created it; a request for it that
    reaches another worker is relayed there unchanged (that worker checks
    the signature), so a client behind a load balancer can send each part
    anywhere.  An upload whose worker is gone says so."""
    c = cluster_factory()
    tok = tmp_path / "token"
    tok.write_text("cluster-mpu-token\n")
    tok.chmod(0o600)
    ws = [c.add(extra=["--s3-access-key", AK, "--s3-secret-key", SK,
                       "--control-token-file", str(tok)]) for _ in range(3)]
    s3 = [s3_client(w.s3_url, AK, SK) for w in ws]
    key = "mp/spread.bin"
    parts = [rand_bytes(5 * MiB + 1, 81), rand_bytes(5 * MiB, 82), rand_bytes(1234, 83)]
    uid = s3[0].create_multipart_upload(Bucket="data", Key=key, ContentType="x/spread")["UploadId"]
    tags = {1: s3[1].upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=1,
                                 Body=parts[0])["ETag"]}
    from test_clients import newer_python
    py = newer_python()
    if py:
        (tmp_path / "p2.bin").write_bytes(parts[1])
        (tmp_path / "p2.py").write_text(NEWER_PARTS)
        p = subprocess.run([py, str(tmp_path / "p2.py"), ws[2].s3_url, AK, SK, key, uid,
                            str(tmp_path / "p2.bin")], capture_output=True, timeout=120,
                           env=dict(os.environ, PYTHONNOUSERSITE="1"))
        assert p.returncode == 0, p.stderr.decode()[-3000:]
        tags[2] = p.stdout.decode().split()[-1]
    else:
        tags[2] = s3[2].upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=2,
                                    Body=parts[1])["ETag"]
    tags[3] = s3[0].upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=3,
                                Body=parts[2])["ETag"]
    assert tags[1] == '"%s"' % hashlib.md5(parts[0]).hexdigest()
    assert tags[2] == '"%s"' % hashlib.md5(parts[1]).hexdigest()
    lp = s3[2].list_parts(Bucket="data", Key=key, UploadId=uid)
    assert [(p["PartNumber"], p["Size"]) for p in lp["Parts"]] == \
        [(1, len(parts[0])), (2, len(parts[1])), (3, len(parts[2]))]
    # Parts are staged only where the upload lives.
    assert [len(list((w.cache_dir / "uploads").glob("*/0000*"))) for w in ws] == [3, 0, 0]
    # A wrong signature is refused (by the worker asked, before any relay;
    # the holder checks the relayed request's signature again).
    bad = s3_client(ws[1].s3_url, AK, "not-the-secret")
    with pytest.raises(Exception) as ei:
        bad.upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=3, Body=b"x")
    assert "SignatureDoesNotMatch" in str(ei.value)
    r = s3[1].complete_multipart_upload(Bucket="data", Key=key, UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": tags[n]} for n in (1, 2, 3)]})
    data = b"".join(parts)
    assert (c.data_dir / key).read_bytes() == data
    for i, cl in enumerate(s3):
        assert s3_get(cl, key) == data, f"worker {i}"
        assert cl.head_object(Bucket="data", Key=key)["ETag"] == r["ETag"]
    assert [len(list((w.cache_dir / "uploads").glob("*"))) for w in ws] == [0, 0, 0]
    # Abort through another worker; then the upload is gone everywhere.
    uid2 = s3[1].create_multipart_upload(Bucket="data", Key="mp/aborted.bin")["UploadId"]
    s3[1].upload_part(Bucket="data", Key="mp/aborted.bin", UploadId=uid2, PartNumber=1, Body=b"a")
    # An empty part, relayed (its Content-Length: 0 reaches the holder).
    e = s3[0].upload_part(Bucket="data", Key="mp/aborted.bin", UploadId=uid2, PartNumber=2, Body=b"")
    assert e["ETag"] == '"%s"' % hashlib.md5(b"").hexdigest()
    assert [p["Size"] for p in s3[2].list_parts(Bucket="data", Key="mp/aborted.bin",
                                                 UploadId=uid2)["Parts"]] == [1, 0]
    s3[2].abort_multipart_upload(Bucket="data", Key="mp/aborted.bin", UploadId=uid2)
    for cl in s3:
        with pytest.raises(Exception) as ei:
            cl.list_parts(Bucket="data", Key="mp/aborted.bin", UploadId=uid2)
        assert "NoSuchUpload" in str(ei.value)
    # The worker holding an upload is gone: the others say so.
    uid3 = s3[2].create_multipart_upload(Bucket="data", Key="mp/orphan.bin")["UploadId"]
    c.kill(ws[2])
    c.wait_members(ws[:2])
    with pytest.raises(Exception) as ei:
        s3[0].upload_part(Bucket="data", Key="mp/orphan.bin", UploadId=uid3, PartNumber=1, Body=b"o")
    assert "NoSuchUpload" in str(ei.value) and "no worker of the cluster" in str(ei.value)
    assert not (c.data_dir / "mp" / "aborted.bin").exists()
