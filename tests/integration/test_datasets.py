"""Datasets: pin, TTL, free, du, refresh and per-mount quotas
(docs/control-api.md, "Datasets").

What a user relies on: a pinned dataset stays cached whatever else is read
(no under-store read to get it back), and an unpinned one can be evicted
again; a pin that would take more than --pin-limit of the cache is refused
(507 PinLimit) and changes nothing; `free` drops what is cached under a
path now, without asking the under-store, and refuses pinned data unless
forced; a TTL drops cached data that long after it was cached, and a pin
wins over it; `du` reports the under-store's sizes next to what is cached
and pinned, per entry; `refresh` makes a file changed in the under-store
visible at once, not after --sync-interval; a mount's quota caps what that
mount caches, at the cost of its own pages and never another mount's;
rules and the catalog of what is cached survive a restart; bad input gets
a clear 4xx, never a rule.  The CLI says the same, with exit status 0, 1
(the worker refused: its reason on stderr) or 2 (usage).

Pages are 64 KiB and caches 1-4 MiB here, so eviction is easy to provoke;
under-store reads are counted by ferry_ufs_requests_total{op="read"}.
"""
import json
import os
import re
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import FERRY, PAGE, page_hdr, put_tree, rand_bytes, wait_for

KiB = 1024
MiB = 1 << 20


# --- helpers -------------------------------------------------------------------

def call(w, method, url, status=200, code=None, **params):
    """A control call with ?params; checks the status (and error code)."""
    r = w.ctl(method, url, params=params)
    assert r.status_code == status, f"{method} {url} {params}: {r.status_code} {r.text}"
    body = r.json()
    if code is not None:
        assert body.get("code") == code, body
        assert body.get("error"), body
    return body


def du(w, path, **params):
    return call(w, "GET", "/v1/du", path=path, **params)


def entries(d):
    return {e["name"]: e for e in d["entries"]}


def policy(w):
    """The rules, without the size each pin recorded (tested apart)."""
    return [{k: v for k, v in r.items() if k != "bytes"}
            for r in call(w, "GET", "/v1/policy")["rules"]]


def read_all(w, bucket, files):
    """Reads every file through the S3 gateway and checks its bytes."""
    s3 = w.s3()
    for k, v in files.items():
        got = s3.get_object(Bucket=bucket, Key=k)["Body"].read()
        assert got == v, f"/{bucket}/{k}: wrong bytes ({len(got)} of {len(v)})"


def cache_all(w, bucket, files):
    """Reads files and waits until each is cached whole (pages reach the
    disk just after the bytes reach the client)."""
    read_all(w, bucket, files)
    for k, v in files.items():
        w.wait_cached(f"/{bucket}/{k}", len(v))


def total(files):
    return sum(map(len, files.values()))


def pinned_ok(v, files):
    """The worker's own pinned-bytes figure (ferry_pinned_bytes, the pin
    reply) counts its pages on disk: the data, and at most a page header
    per page (du's figures are data bytes)."""
    pages = sum(-(-len(d) // PAGE) for d in files.values())
    return total(files) <= v <= total(files) + page_hdr(PAGE) * pages


def two_mounts(tmp_path, make_worker, a_files, b_files, **kw):
    a, b = tmp_path / "a", tmp_path / "b"
    put_tree(a, a_files)
    put_tree(b, b_files)
    return make_worker(mounts={"a": a, "b": b}, **kw)


# A dataset of ~5 pages and a "rest of the world" of 1.6 MiB: through a
# 1 MiB cache, reading the rest evicts everything that is not pinned.
DS = {"ds/part-0": rand_bytes(2 * PAGE + 11, 1), "ds/part-1": rand_bytes(PAGE + 7, 2),
      "ds/sub/part-2": rand_bytes(PAGE - 5, 3)}
REST = {f"r{i}.bin": rand_bytes(200_000 + i, 10 + i) for i in range(8)}


# --- pin ----------------------------------------------------------------------

def test_pin_survives_eviction_by_another_mount(make_worker, tmp_path):
    sibling = {"ds2/s.bin": rand_bytes(PAGE, 9)}  # a prefix of it is "ds", not "ds/"
    w = two_mounts(tmp_path, make_worker, dict(DS, **sibling), REST, cache_size="1M")
    cap = w.metric("ferry_cache_capacity_bytes")
    assert cap == MiB
    # Pinned before anything is cached: the pin holds what is cached later.
    r = call(w, "POST", "/v1/pin", path="/a/ds")
    assert r["ok"] is True and r["pinned_bytes"] == 0
    assert policy(w) == [{"mount": "a", "path": "ds", "pin": True, "ttl": 0}]
    cache_all(w, "a", DS)
    cache_all(w, "a", sibling)
    d = du(w, "/a/ds", summary="1")
    assert (d["total_bytes"], d["cached_bytes"], d["pinned_bytes"]) == (total(DS),) * 3
    assert du(w, "/a/ds2", summary="1")["pinned_bytes"] == 0
    assert pinned_ok(w.metric("ferry_pinned_bytes"), DS)
    assert pinned_ok(w.metric("ferry_mount_pinned_bytes", mount="a"), DS)
    assert w.metric("ferry_mount_pinned_bytes", mount="b") == 0

    # 1.6 MiB of mount b, twice, through the 1 MiB cache.
    for _ in range(2):
        read_all(w, "b", REST)
    assert w.metric("ferry_cache_evicted_bytes_total") >= total(REST)
    assert w.metric("ferry_cache_used_bytes") <= cap

    d = du(w, "/a/ds", summary="1")
    assert (d["cached_bytes"], d["pinned_bytes"], d["cached_objects"]) == (total(DS), total(DS), 3)
    wait_for(lambda: du(w, "/a/ds2", summary="1")["cached_bytes"] == 0, 10,
             what="the unpinned sibling to be evicted")
    before = w.ufs_reads()
    read_all(w, "a", DS)
    assert w.ufs_reads() == before, "pinned data was read from the under-store again"


def test_unpin_makes_data_evictable_again(make_worker, tmp_path):
    w = two_mounts(tmp_path, make_worker, DS, REST, cache_size="1M")
    # Pinned after it was cached: the pin applies to what is cached now.
    cache_all(w, "a", DS)
    assert pinned_ok(call(w, "POST", "/v1/pin", path="/a/ds")["pinned_bytes"], DS)
    assert du(w, "/a/ds", summary="1")["pinned_bytes"] == total(DS)

    r = call(w, "DELETE", "/v1/pin", path="/a/ds")
    assert r["ok"] is True
    assert policy(w) == []
    assert du(w, "/a/ds", summary="1")["pinned_bytes"] == 0
    assert w.metric("ferry_pinned_bytes") == 0
    # Still cached until something needs the room.
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == total(DS)
    call(w, "DELETE", "/v1/pin", status=404, code="NoSuchPin", path="/a/ds")

    read_all(w, "b", REST)
    # The oldest pages go first: all of the dataset, read before 1.6 MiB of b.
    wait_for(lambda: du(w, "/a/ds", summary="1")["cached_bytes"] == 0, 10,
             what="the unpinned dataset to be evicted")
    before = w.ufs_reads()
    read_all(w, "a", DS)
    assert w.ufs_reads() - before == 6, "the unpinned dataset was not read again"


def test_pin_over_the_limit_is_refused(make_worker, tmp_path):
    files = {"big/x.bin": rand_bytes(600_000, 20),
             "s1/x.bin": rand_bytes(300_000, 21), "s2/x.bin": rand_bytes(300_000, 22)}
    put_tree(tmp_path / "a", files)
    # The limit: 50% of 1 MiB, about 512 KiB.
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="1M", args=["--pin-limit", "50"])

    # Nothing of it cached yet: the size in the under-store counts.
    r = call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a/big")
    msg = r["error"]
    assert "/a/big" in msg, msg
    assert len(re.findall(r"\d+(?:\.\d+)? ?(?:B|KiB|MiB)\b", msg)) >= 2, f"sizes not named: {msg}"
    assert policy(w) == []

    # 300 KB pinned and cached, 300 KB more would pass the limit.
    call(w, "POST", "/v1/pin", path="/a/s1")
    cache_all(w, "a", {"s1/x.bin": files["s1/x.bin"]})
    assert pinned_ok(w.metric("ferry_pinned_bytes"), {"s1/x.bin": files["s1/x.bin"]})
    call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a/s2")
    call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a")
    assert policy(w) == [{"mount": "a", "path": "s1", "pin": True, "ttl": 0}]
    # Pinning a pinned path again asks for nothing more.
    call(w, "POST", "/v1/pin", path="/a/s1")

    # The room is back once s1 is unpinned.
    call(w, "DELETE", "/v1/pin", path="/a/s1")
    call(w, "POST", "/v1/pin", path="/a/s2")
    assert policy(w) == [{"mount": "a", "path": "s2", "pin": True, "ttl": 0}]


def test_pin_limit_counts_pins_not_yet_cached(make_worker, tmp_path):
    """Pinning datasets before reading them (the usual order) cannot pin
    more than --pin-limit of the cache once they are read."""
    files = {f"s{i}/x.bin": rand_bytes(500_000, 25 + i) for i in range(3)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="1M")  # limit: 80%
    limit = MiB // 100 * 80
    call(w, "POST", "/v1/pin", path="/a/s0")
    # 500 KB pinned by a rule (not cached yet) + 500 KB more > 819 KiB.
    call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a/s1")
    call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a/s2")
    read_all(w, "a", files)
    assert w.metric("ferry_pinned_bytes") <= limit


def test_a_pin_inside_a_pin_still_counts_once_the_outer_one_goes(make_worker, tmp_path):
    """A pin made inside a pinned path holds nothing more while the outer
    pin stands; once the outer pin goes, the inner one's data is counted
    again, so pins cannot pass the limit by being made in that order."""
    files = {"ds/in/x.bin": rand_bytes(300_000, 40), "ds/y.bin": rand_bytes(200_000, 41),
             "z/x.bin": rand_bytes(300_000, 42)}
    put_tree(tmp_path / "a", files)
    # The limit: 50% of 1 MiB, about 512 KiB.
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="1M", args=["--pin-limit", "50"])
    call(w, "POST", "/v1/pin", path="/a/ds")       # 500 KB
    call(w, "POST", "/v1/pin", path="/a/ds/in")    # inside it: nothing more
    call(w, "DELETE", "/v1/pin", path="/a/ds")     # the inner 300 KB still pinned
    # 300 KB + 300 KB would pass 512 KiB.
    r = call(w, "POST", "/v1/pin", status=507, code="PinLimit", path="/a/z")
    assert "/a/z" in r["error"], r
    assert [x["path"] for x in policy(w)] == ["ds/in"]
    # Pinning the outer path again takes only what the inner one does not hold.
    call(w, "POST", "/v1/pin", path="/a/ds")


# --- free -----------------------------------------------------------------------

def test_free_drops_cached_data_and_refuses_pinned(make_worker, tmp_path):
    files = dict(DS)
    files["other/o.bin"] = rand_bytes(PAGE + 1, 30)
    siblings = {"ds2/x.bin": rand_bytes(100, 31), "ds.bin": rand_bytes(200, 32)}
    files.update(siblings)
    a = tmp_path / "a"
    put_tree(a, files)
    w = make_worker(mounts={"a": a}, cache_size="2M")
    cache_all(w, "a", files)
    used0 = w.stats()["used_bytes"]
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == total(DS)

    # Works without the under-store: the directory is gone meanwhile.
    a.rename(tmp_path / "a.away")
    r = call(w, "POST", "/v1/free", path="/a/ds")
    (tmp_path / "a.away").rename(a)
    assert r["ok"] is True and r["freed_bytes"] == total(DS) and r["pinned_kept_bytes"] == 0
    assert r["worker"]
    d = du(w, "/a", summary="1")
    assert d["cached_bytes"] == len(files["other/o.bin"]) + total(siblings)
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == 0
    assert w.stats()["used_bytes"] <= used0 - total(DS)

    # The next read goes to the under-store again, with the same bytes;
    # what was not freed does not.
    before = w.ufs_reads()
    read_all(w, "a", {"other/o.bin": files["other/o.bin"]})
    read_all(w, "a", siblings)
    assert w.ufs_reads() == before
    cache_all(w, "a", DS)
    assert w.ufs_reads() - before == 6  # 3 + 2 + 1 pages
    # Freeing it again frees what was read again.
    assert call(w, "POST", "/v1/free", path="/a/ds/sub")["freed_bytes"] == len(DS["ds/sub/part-2"])
    assert call(w, "POST", "/v1/free", path="/a/ds/sub")["freed_bytes"] == 0

    # Pinned: refused when the path is pinned, holds a pin or is under one.
    cache_all(w, "a", DS)
    call(w, "POST", "/v1/pin", path="/a/ds/sub")
    for p in ("/a/ds/sub", "/a/ds", "/a", "/a/ds/sub/part-2"):
        r = call(w, "POST", "/v1/free", status=409, code="Pinned", path=p)
        assert p in r["error"], r
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == total(DS)
    # An unpinned sibling can be freed next to the pin.
    assert call(w, "POST", "/v1/free", path="/a/ds/part-0")["freed_bytes"] == len(DS["ds/part-0"])
    r = call(w, "POST", "/v1/free", path="/a/ds", force="1")
    assert r["freed_bytes"] == total(DS) - len(DS["ds/part-0"])
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == 0
    # The pin stays, and holds what is cached next.
    assert policy(w) == [{"mount": "a", "path": "ds/sub", "pin": True, "ttl": 0}]
    cache_all(w, "a", {"ds/sub/part-2": DS["ds/sub/part-2"]})
    assert du(w, "/a/ds/sub", summary="1")["pinned_bytes"] == len(DS["ds/sub/part-2"])


# --- TTL ----------------------------------------------------------------------

def test_ttl_drops_data_after_it_and_a_pin_wins(make_worker, tmp_path):
    files = {"tmp/keep.bin": rand_bytes(PAGE + 3, 40), "tmp/t0.bin": rand_bytes(2 * PAGE, 41),
             "tmp/t1.bin": rand_bytes(1000, 42), "other/o.bin": rand_bytes(PAGE, 43)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="2M")
    r = call(w, "POST", "/v1/ttl", path="/a/tmp", ttl="3")
    assert r == {"ok": True, "ttl": 3}
    call(w, "POST", "/v1/pin", path="/a/tmp/keep.bin")
    assert policy(w) == [{"mount": "a", "path": "tmp", "pin": False, "ttl": 3},
                         {"mount": "a", "path": "tmp/keep.bin", "pin": True, "ttl": 0}]
    # The pinned file first: when the later ones are gone, its TTL ended too.
    cache_all(w, "a", {"tmp/keep.bin": files["tmp/keep.bin"]})
    cache_all(w, "a", files)
    d = du(w, "/a/tmp")
    assert d["cached_bytes"] == len(files["tmp/keep.bin"]) + 2 * PAGE + 1000

    wait_for(lambda: entries(du(w, "/a/tmp"))["t0.bin"]["cached_bytes"] == 0 and
             entries(du(w, "/a/tmp"))["t1.bin"]["cached_bytes"] == 0, 8, 0.1,
             what="the TTL to drop /a/tmp")
    e = entries(du(w, "/a/tmp"))
    assert e["keep.bin"]["cached_bytes"] == e["keep.bin"]["pinned_bytes"] == len(files["tmp/keep.bin"])
    assert du(w, "/a/other", summary="1")["cached_bytes"] == PAGE
    assert w.metric("ferry_ttl_freed_bytes_total") == 2 * PAGE + 1000
    assert w.stats()["ttl_freed_bytes"] == 2 * PAGE + 1000
    # Dropped means read again from the under-store, with the same bytes.
    before = w.ufs_reads()
    read_all(w, "a", files)
    assert w.ufs_reads() - before == 3

    # Cleared: the rule is gone; clearing it again finds none.
    assert call(w, "DELETE", "/v1/ttl", path="/a/tmp") == {"ok": True, "ttl": 0}
    call(w, "DELETE", "/v1/ttl", status=404, code="NoSuchTtl", path="/a/tmp")
    assert policy(w) == [{"mount": "a", "path": "tmp/keep.bin", "pin": True, "ttl": 0}]


def test_ttl_counts_from_when_data_was_cached(make_worker, tmp_path):
    """A TTL set on data cached earlier counts from when it was cached; a
    restart neither forgets the rule nor restarts the clock."""
    files = {"t/x.bin": rand_bytes(PAGE + 1, 45)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"})
    cache_all(w, "a", files)
    call(w, "POST", "/v1/ttl", path="/a/t", ttl="2s")
    wait_for(lambda: w.stat("/a/t/x.bin")["cached_bytes"] == 0, 8, 0.1,
             what="data cached before the TTL to be dropped")
    # Longer, so that the restart surely comes first.
    call(w, "POST", "/v1/ttl", path="/a/t", ttl="4s")
    cache_all(w, "a", files)
    w.restart()
    wait_for(lambda: w.stat("/a/t/x.bin")["cached_bytes"] == 0, 10, 0.1,
             what="the TTL to drop data cached before the restart")
    assert w.metric("ferry_ttl_freed_bytes_total") == PAGE + 1


def test_ttl_durations(make_worker, data_dir):
    w = make_worker(mounts={"a": data_dir})
    for text, secs in (("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800),
                       ("1h30m", 5400), ("2", 2)):
        assert call(w, "POST", "/v1/ttl", path="/a/x", ttl=text) == {"ok": True, "ttl": secs}, text
        assert policy(w) == [{"mount": "a", "path": "x", "pin": False, "ttl": secs}]
    for bad in ("5parsecs", "abc", "", "0", "-5s", "1x", "20000d"):
        call(w, "POST", "/v1/ttl", status=400, code="BadRequest", path="/a/y", ttl=bad)
    call(w, "POST", "/v1/ttl", status=400, code="BadRequest", path="/a/y")  # no ?ttl=
    assert policy(w) == [{"mount": "a", "path": "x", "pin": False, "ttl": 2}]


def test_ttl_clear_where_only_a_pin_is(make_worker, data_dir):
    """DELETE /v1/ttl on a path that has a pin but no TTL: 404 NoSuchTtl,
    and the pin stays."""
    w = make_worker(mounts={"a": data_dir})
    call(w, "POST", "/v1/pin", path="/a/x")
    call(w, "DELETE", "/v1/ttl", status=404, code="NoSuchTtl", path="/a/x")
    assert policy(w) == [{"mount": "a", "path": "x", "pin": True, "ttl": 0}]


# --- quota --------------------------------------------------------------------

def test_quota_caps_a_mount_with_its_own_pages(make_worker, tmp_path):
    other = {f"o{i}.bin": rand_bytes(100_000 + i, 50 + i) for i in range(3)}
    many = {f"d/q{i}.bin": rand_bytes(150_000 + i, 60 + i) for i in range(12)}  # 1.8 MB
    put_tree(tmp_path / "o", other)
    put_tree(tmp_path / "q", many)
    quota = 512 * KiB
    # 4 MiB of cache: room for all of it, so only the quota evicts.
    w = make_worker(mounts={"o": tmp_path / "o"}, cache_size="4M")
    w.mount("q", f"file://{tmp_path / 'q'}", quota="512K")
    assert w.metric("ferry_mount_quota_bytes", mount="q") == quota
    assert w.metric("ferry_mount_quota_bytes", mount="o") == 0
    assert {m["mount"]: m["quota_bytes"] for m in w.stats()["per_mount"]} == {"o": 0, "q": quota}
    cache_all(w, "o", other)

    for rnd in range(2):
        for k, v in many.items():
            read_all(w, "q", {k: v})
            assert w.metric("ferry_mount_cached_bytes", mount="q") <= quota
            assert du(w, "/q", summary="1")["cached_bytes"] <= quota
    # The quota is used, not just kept: it holds more than half of it.
    wait_for(lambda: du(w, "/q", summary="1")["cached_bytes"] >= quota // 2, 10,
             what="the mount to cache up to its quota")
    assert w.metric("ferry_quota_evicted_bytes_total") >= total(many)
    # The other mount lost nothing.
    d = du(w, "/o", summary="1")
    assert (d["cached_bytes"], d["cached_objects"]) == (total(other), 3)
    before = w.ufs_reads()
    read_all(w, "o", other)
    assert w.ufs_reads() == before
    assert w.metric("ferry_cache_used_bytes") <= total(other) + quota + 8 * PAGE
    # The quota is part of the mount: it holds after a restart.
    w.restart()
    assert w.metric("ferry_mount_quota_bytes", mount="q") == quota
    assert w.metric("ferry_mount_cached_bytes", mount="q") <= quota
    read_all(w, "q", many)
    assert w.metric("ferry_mount_cached_bytes", mount="q") <= quota
    assert du(w, "/o", summary="1")["cached_bytes"] == total(other)


# --- du -----------------------------------------------------------------------

def test_du_reports_sizes_cached_and_pinned(make_worker, tmp_path):
    files = {"ds/README": b"read me\n",
             "ds/train/f0": rand_bytes(3 * PAGE + 5, 70), "ds/train/f1": rand_bytes(PAGE, 71),
             "ds/train/f2": rand_bytes(10, 72),
             "ds/val/v0": rand_bytes(4 * PAGE, 73), "ds/val/deep/v1": rand_bytes(777, 74),
             "zz.bin": rand_bytes(5, 75)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"}, args=["--read-ahead", "0", "--window", "1"])
    d = du(w, "/a/ds")
    assert d["path"] == "/a/ds" and d["worker"]
    ds_total = total(files) - 5
    assert (d["total_bytes"], d["cached_bytes"], d["pinned_bytes"], d["objects"],
            d["cached_objects"]) == (ds_total, 0, 0, 6, 0)
    assert [e["name"] for e in d["entries"]] == ["README", "train/", "val/"]

    # train/f0 and f2 whole, one page of val/v0, and train/ pinned.
    call(w, "POST", "/v1/pin", path="/a/ds/train")
    cache_all(w, "a", {"ds/train/f0": files["ds/train/f0"], "ds/train/f2": files["ds/train/f2"]})
    r = w.s3().get_object(Bucket="a", Key="ds/val/v0", Range="bytes=0-99")
    assert r["Body"].read() == files["ds/val/v0"][:100]
    w.wait_cached("/a/ds/val/v0", PAGE)

    d = du(w, "/a/ds")
    train_cached = 3 * PAGE + 5 + 10
    assert (d["total_bytes"], d["cached_bytes"], d["pinned_bytes"], d["objects"],
            d["cached_objects"]) == (ds_total, train_cached + PAGE, train_cached, 6, 2)
    e = entries(d)
    assert list(e) == ["README", "train/", "val/"]
    assert e["README"] == {"name": "README", "total_bytes": 8, "cached_bytes": 0,
                           "pinned_bytes": 0, "objects": 1, "cached_objects": 0, "hot_blocks": 0}
    assert e["train/"] == {"name": "train/", "total_bytes": 4 * PAGE + 15,
                           "cached_bytes": train_cached, "pinned_bytes": train_cached,
                           "objects": 3, "cached_objects": 2, "hot_blocks": 0}
    assert e["val/"] == {"name": "val/", "total_bytes": 4 * PAGE + 777, "cached_bytes": PAGE,
                         "pinned_bytes": 0, "objects": 2, "cached_objects": 0, "hot_blocks": 0}

    # One level down; the summary; the mount itself (a trailing / is the same path).
    e = entries(du(w, "/a/ds/val"))
    assert list(e) == ["deep/", "v0"]
    assert (e["deep/"]["total_bytes"], e["v0"]["cached_bytes"]) == (777, PAGE)
    s = du(w, "/a/ds", summary="1")
    assert s["entries"] == [] and s["total_bytes"] == ds_total and s["cached_bytes"] == train_cached + PAGE
    root = du(w, "/a/")
    assert [x["name"] for x in root["entries"]] == ["ds/", "zz.bin"]
    assert root["total_bytes"] == total(files) and root["objects"] == 7
    # An empty directory prefix: zeros, no entries.
    empty = du(w, "/a/nothing/here")
    assert (empty["total_bytes"], empty["objects"], empty["entries"]) == (0, 0, [])
    assert w.metric("ferry_cached_objects") == 3


def test_du_of_a_file(make_worker, tmp_path):
    """du of one object: its own counts, and one entry that is the object
    (not a directory)."""
    put_tree(tmp_path / "a", {"x/f1": rand_bytes(100_000, 80)})
    w = make_worker(mounts={"a": tmp_path / "a"})
    d = du(w, "/a/x/f1")
    assert (d["total_bytes"], d["objects"]) == (100_000, 1)
    names = [e["name"] for e in d["entries"]]
    assert len(names) == 1 and not names[0].endswith("/"), names


# --- refresh ------------------------------------------------------------------

def test_refresh_shows_a_changed_file_at_once(make_worker, tmp_path):
    a = tmp_path / "a"
    old, new = rand_bytes(2 * PAGE + 1, 90), rand_bytes(3 * PAGE + 77, 91)
    put_tree(a, {"d/f.bin": old, "d/g.bin": b"g"})
    os.utime(a / "d" / "f.bin", (1_600_000_000, 1_600_000_000))
    w = make_worker(mounts={"a": a}, args=["--sync-interval", "1h"])
    s3 = w.s3()
    cache_all(w, "a", {"d/f.bin": old})
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="a", Prefix="d/")["Contents"]] == \
        ["d/f.bin", "d/g.bin"]

    (a / "d" / "f.bin").write_bytes(new)
    os.utime(a / "d" / "f.bin", (1_600_000_100, 1_600_000_100))
    (a / "d" / "h.bin").write_bytes(b"hh")
    (a / "d" / "g.bin").unlink()
    # Within the sync interval the worker trusts what it knows...
    assert s3.head_object(Bucket="a", Key="d/f.bin")["ContentLength"] == len(old)
    assert s3.get_object(Bucket="a", Key="d/f.bin")["Body"].read() == old

    r = call(w, "POST", "/v1/refresh", path="/a/d")
    assert r["ok"] is True and r["expired"] >= 1 and r["worker"]
    # ...and after a refresh it asks again: new size, time, bytes, listing.
    h = s3.head_object(Bucket="a", Key="d/f.bin")
    assert h["ContentLength"] == len(new)
    assert int(h["LastModified"].timestamp()) == 1_600_000_100
    assert s3.get_object(Bucket="a", Key="d/f.bin")["Body"].read() == new
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="a", Prefix="d/")["Contents"]] == \
        ["d/f.bin", "d/h.bin"]
    assert w.stat("/a/d/f.bin")["size"] == len(new)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="a", Key="d/g.bin")
    assert e.value.response["Error"]["Code"] in ("404", "NoSuchKey")


# --- restart ------------------------------------------------------------------

def test_restart_keeps_rules_and_catalog(make_worker, tmp_path):
    files = {"keep/k.bin": rand_bytes(2 * PAGE + 9, 100), "tmp/t.bin": rand_bytes(PAGE, 101),
             "other/o.bin": rand_bytes(3 * PAGE - 1, 102)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="2M")
    call(w, "POST", "/v1/pin", path="/a/keep")
    call(w, "POST", "/v1/ttl", path="/a/tmp", ttl="1h")
    rules = policy(w)
    assert rules == [{"mount": "a", "path": "keep", "pin": True, "ttl": 0},
                     {"mount": "a", "path": "tmp", "pin": False, "ttl": 3600}]
    cache_all(w, "a", files)

    w.restart()
    assert (w.cache_dir / "policy.json").exists()
    assert (w.cache_dir / "pagestore.catalog").exists()
    assert policy(w) == rules
    d = du(w, "/a/keep", summary="1")
    assert d["pinned_bytes"] == d["cached_bytes"] == len(files["keep/k.bin"])
    assert pinned_ok(w.metric("ferry_pinned_bytes"), {"k": files["keep/k.bin"]})
    assert du(w, "/a", summary="1")["cached_bytes"] == total(files)
    # The catalog knows which path each cached page belongs to.
    r = call(w, "POST", "/v1/free", path="/a/other")
    assert r["freed_bytes"] == len(files["other/o.bin"])
    call(w, "POST", "/v1/free", status=409, code="Pinned", path="/a/keep")
    assert w.ufs_reads() == 0
    read_all(w, "a", files)
    assert w.ufs_reads() == 3, "only the freed file is read from the under-store"


# --- bad input ----------------------------------------------------------------

CALLS = [("POST", "/v1/pin", {}), ("DELETE", "/v1/pin", {}), ("POST", "/v1/ttl", {"ttl": "1h"}),
         ("DELETE", "/v1/ttl", {}), ("POST", "/v1/free", {}), ("POST", "/v1/free", {"force": "1"}),
         ("GET", "/v1/du", {}), ("GET", "/v1/du", {"summary": "1"}), ("POST", "/v1/refresh", {})]


def test_bad_paths_and_options_are_refused(make_worker, data_dir):
    (data_dir / "f").write_bytes(b"f")
    w = make_worker(mounts={"a": data_dir})
    for method, url, extra in CALLS:
        for p, status, code in (("/nosuch/x", 404, "NoSuchMount"), ("/nosuch", 404, "NoSuchMount"),
                                ("/", 400, None), ("a/f", 400, None), ("", 400, None)):
            call(w, method, url, status=status, code=code, path=p, **extra)
        r = w.ctl(method, url, params=extra)  # no ?path=
        assert r.status_code == 400, (method, url, r.text)
        assert r.json()["error"]
    call(w, "DELETE", "/v1/pin", status=404, code="NoSuchPin", path="/a/f")
    call(w, "DELETE", "/v1/ttl", status=404, code="NoSuchTtl", path="/a/f")
    assert policy(w) == []

    for q in ("abc", "0", "-1M", "12parsecs"):
        r = w.ctl("POST", "/v1/mounts", json={"name": "q", "uri": f"file://{data_dir}",
                                              "options": {"quota": q}})
        assert r.status_code == 400, (q, r.text)
        assert "quota" in r.json()["error"], r.text
    assert [m["name"] for m in w.ctl("GET", "/v1/mounts").json()["mounts"]] == ["a"]


def test_dataset_calls_need_the_control_token(make_worker, data_dir):
    (data_dir / "f").write_bytes(b"f")
    w = make_worker(mounts={"a": data_dir}, args=["--control-token", "tok-0123456789abcdef"])
    for method, path, extra in (("POST", "/v1/pin", {}), ("POST", "/v1/ttl", {"ttl": "1h"}),
                                ("POST", "/v1/free", {}), ("POST", "/v1/refresh", {})):
        r = w.ctl(method, path, auth=False, params=dict(extra, path="/a"))
        assert r.status_code == 401, (method, path, r.status_code, r.text)
    r = w.ctl("POST", "/v1/pin", auth=False, params={"path": "/a"},
              headers={"Authorization": "Bearer wrong-token-0000000000"})
    assert r.status_code == 401
    assert policy(w) == []
    call(w, "POST", "/v1/pin", path="/a")
    assert policy(w) == [{"mount": "a", "path": "", "pin": True, "ttl": 0}]


# --- the CLI ------------------------------------------------------------------

def cli(w, *args, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    pre = ["--worker", w.ctl_addr] + (["--token", token] if token else [])
    return subprocess.run([str(FERRY)] + pre + [str(a) for a in args], capture_output=True,
                          timeout=60, env=env)


def ok(p):
    assert p.returncode == 0, f"rc {p.returncode}, stderr {p.stderr!r}"
    return p.stdout.decode()


def refused(p, *words):
    err = p.stderr.decode()
    assert p.returncode == 1, f"rc {p.returncode}, stdout {p.stdout!r}, stderr {err!r}"
    for word in words:
        assert word.lower() in err.lower(), err
    return err


def test_cli_pin_unpin_free(make_worker, tmp_path):
    files = {"ds/a.bin": rand_bytes(PAGE + 1, 110), "big/b.bin": rand_bytes(900_000, 111)}
    put_tree(tmp_path / "a", files)
    tok = "cli-token-0123456789abcdef"
    w = make_worker(mounts={"a": tmp_path / "a"}, cache_size="1M",
                    args=["--control-token", tok])
    ok(cli(w, "pin", "/a/ds", token=tok))
    listing = ok(cli(w, "pin", "--list", token=tok))
    assert "/a/ds" in listing, listing
    assert {"rules": [{k: v for k, v in r.items() if k != "bytes"} for r in
                      json.loads(ok(cli(w, "pin", "--list", "--json", token=tok)))["rules"]]} == \
        {"rules": [{"mount": "a", "path": "ds", "pin": True, "ttl": 0}]}
    refused(cli(w, "pin", "/a/big", token=tok), "pin limit")
    cache_all(w, "a", {"ds/a.bin": files["ds/a.bin"]})
    refused(cli(w, "free", "/a/ds", token=tok), "pinned")
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == PAGE + 1
    ok(cli(w, "free", "/a/ds", "--force", token=tok))
    assert du(w, "/a/ds", summary="1")["cached_bytes"] == 0
    ok(cli(w, "unpin", "/a/ds", token=tok))
    refused(cli(w, "unpin", "/a/ds", token=tok), "not pinned")
    assert policy(w) == []
    # Without the token the worker refuses, and the CLI says so.
    p = cli(w, "pin", "/a/ds")
    assert p.returncode == 1 and p.stderr, p
    assert policy(w) == []
    # Usage: no path.
    assert cli(w, "pin", token=tok).returncode == 2
    assert cli(w, "free", token=tok).returncode == 2


def test_cli_ttl_du_refresh(make_worker, tmp_path):
    files = {"ds/train/x.bin": rand_bytes(2 * PAGE, 120), "ds/val/y.bin": rand_bytes(300, 121)}
    put_tree(tmp_path / "a", files)
    w = make_worker(mounts={"a": tmp_path / "a"})
    p = cli(w, "ttl", "/a/ds", "5parsecs")
    assert p.returncode == 2 and b"5parsecs" in p.stderr, p
    assert policy(w) == []
    ok(cli(w, "ttl", "/a/ds", "1h30m"))
    assert policy(w) == [{"mount": "a", "path": "ds", "pin": False, "ttl": 5400}]
    assert "/a/ds" in ok(cli(w, "ttl", "--list"))
    ok(cli(w, "ttl", "/a/ds", "--clear"))
    assert policy(w) == []
    refused(cli(w, "ttl", "/a/ds", "--clear"))
    refused(cli(w, "du", "/nosuch/x"), "no such mount")

    cache_all(w, "a", {"ds/train/x.bin": files["ds/train/x.bin"]})
    assert json.loads(ok(cli(w, "du", "/a/ds", "--json"))) == du(w, "/a/ds")
    assert json.loads(ok(cli(w, "du", "/a/ds", "-s", "--json"))) == du(w, "/a/ds", summary="1")
    text = ok(cli(w, "du", "/a/ds"))
    assert "train/" in text and "val/" in text, text
    summary = ok(cli(w, "du", "-s", "/a/ds"))
    assert "train/" not in summary and summary.strip(), summary
    ok(cli(w, "refresh", "/a/ds"))


def test_cli_json_answers(make_worker, data_dir):
    """--json, where a command offers it, prints the worker's answer; where
    it does not (unpin, refresh: nothing to show), it is a usage error, not
    silently ignored."""
    (data_dir / "f").write_bytes(b"f")
    w = make_worker(mounts={"a": data_dir})
    assert json.loads(ok(cli(w, "free", "/a", "--json")))["freed_bytes"] == 0
    ok(cli(w, "pin", "/a"))
    for cmd in ("unpin", "refresh"):
        p = cli(w, cmd, "/a", "--json")
        assert p.returncode == 2 and b"unknown option '--json'" in p.stderr, p
    ok(cli(w, "unpin", "/a"))
    ok(cli(w, "refresh", "/a"))
