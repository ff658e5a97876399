#!/usr/bin/python3
"""Failover timing for bench/cluster.sh: reads objects owned by worker B
through worker A's S3 gateway without pause, breaks B (SIGKILL, SIGSTOP, or
its link taken down), and times what the readers see.

usage: cluster_failover.py --gateway HOST:PORT --metrics URL --members N
         --paths FILE --data DIR --action kill|stop|linkdown --pid PID
         [--link DEV] [--ranges FILE] [--pre S] [--post S] [--min-after S]
         [--cap S] [--timeline FILE]

--paths: one S3 path a line (/mount/key), each a small object owned by B;
its bytes are DATA/key.  --ranges: lines "PATH OFFSET LENGTH", byte ranges
(blocks) owned by B of larger objects, read over and over by a second
process so that B breaks while one of its blocks is being streamed (a
mid-stream failover); every range is compared with the file.

The small-object reader is one connection, one request at a time; each read
is timed with time.monotonic() (system-wide, so the two processes and the
break share a clock) and its body compared byte for byte with the file.
A thread polls A's /metrics (its own connection, every 50 ms) for
ferry_cluster_members.  The break happens after --pre seconds of reading;
reading stops when A's view has dropped B and --post more seconds passed
with every read fast (under 0.5 s; so a stall is followed by --post seconds
of normal reads), and at least --min-after seconds after the break, or at
--cap seconds after the break whatever happened.  Prints one JSON object (the figures);
every read goes to --timeline as TSV.

Single process plus one child (the range reader) and one thread (metrics);
memory is bounded by the objects' and ranges' sizes (the expected bytes are
held in memory to compare).
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time


def conn_to(hostport, timeout):
    host, port = hostport.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def get(c, path, headers=None):
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    return r.status, body


def range_reader(gateway, ranges, data, t_stop, q):
    """Child process: read B-owned blocks through A again and again."""
    c = conn_to(gateway, 120)
    recs = []
    i = 0
    while time.monotonic() < t_stop.value:
        path, off, ln = ranges[i % len(ranges)]
        i += 1
        key = path.split("/", 2)[2]
        with open(os.path.join(data, key), "rb") as f:
            want = os.pread(f.fileno(), ln, off)
        t0 = time.monotonic()
        try:
            st, body = get(c, path, {"Range": f"bytes={off}-{off + ln - 1}"})
            ok = st == 206 and body == want
            err = "" if ok else f"status {st}, {len(body)} bytes, equal={body == want}"
        except Exception as e:  # any failure is what we count
            ok, err = False, f"{type(e).__name__}: {e}"
            c.close()
            c = conn_to(gateway, 120)
        recs.append((t0, time.monotonic(), ok, err))
    q.put(recs)


def members_of(c):
    st, body = get(c, "/metrics")
    if st != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith("ferry_cluster_members "):
            return int(float(line.split()[1]))
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--metrics", required=True, help="A's control HOST:PORT")
    ap.add_argument("--members", type=int, required=True, help="members before the break")
    ap.add_argument("--paths", required=True)
    ap.add_argument("--ranges")
    ap.add_argument("--data", required=True)
    ap.add_argument("--action", choices=["kill", "stop", "linkdown"], required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--link", help="host-side veth of B (linkdown)")
    ap.add_argument("--pre", type=float, default=1.5)
    ap.add_argument("--post", type=float, default=2.0)
    ap.add_argument("--min-after", type=float, default=0.0)
    ap.add_argument("--cap", type=float, default=40.0)
    ap.add_argument("--timeline")
    a = ap.parse_args()

    paths = [l.strip() for l in open(a.paths) if l.strip()]
    if not paths:
        sys.exit("cluster_failover: no paths")
    want = {}
    for p in paths:
        with open(os.path.join(a.data, p.split("/", 2)[2]), "rb") as f:
            want[p] = f.read()
    ranges = []
    if a.ranges:
        for l in open(a.ranges):
            if l.strip():
                p, o, n = l.split()
                ranges.append((p, int(o), int(n)))

    # Membership poller.
    mem = {"drop": None, "samples": 0, "errors": 0}
    stop_poll = threading.Event()

    def poll():
        c = conn_to(a.metrics, 2)
        while not stop_poll.is_set():
            try:
                n = members_of(c)
                mem["samples"] += 1
                if n is not None and n < a.members and mem["drop"] is None:
                    mem["drop"] = time.monotonic()
                    mem["members_after"] = n
            except Exception:
                mem["errors"] += 1
                c.close()
                c = conn_to(a.metrics, 2)
            stop_poll.wait(0.05)

    c0 = conn_to(a.metrics, 2)
    n0 = members_of(c0)
    c0.close()
    if n0 != a.members:
        sys.exit(f"cluster_failover: A sees {n0} members, expected {a.members}")

    t_stop = mp.Value("d", time.monotonic() + a.pre + a.cap + 5)
    q = mp.Queue()
    child = None
    if ranges:
        child = mp.Process(target=range_reader, args=(a.gateway, ranges, a.data, t_stop, q))
        child.start()
    th = threading.Thread(target=poll, daemon=True)
    th.start()

    c = conn_to(a.gateway, 120)
    recs = []  # (t0, t1, ok, path, err)
    t_begin = time.monotonic()
    t_break = None
    t_slow = 0.0  # end of the latest read that took 0.5 s or more
    i = 0
    while True:
        now = time.monotonic()
        if t_break is None and now - t_begin >= a.pre:
            if a.action == "kill":
                t_break = time.monotonic()
                os.kill(a.pid, signal.SIGKILL)
            elif a.action == "stop":
                t_break = time.monotonic()
                os.kill(a.pid, signal.SIGSTOP)
            else:
                tb0 = time.monotonic()
                subprocess.run(["ip", "link", "set", "dev", a.link, "down"], check=True)
                t_break = (tb0 + time.monotonic()) / 2
        if t_break is not None:
            after = now - t_break
            if after >= a.cap:
                break
            if (mem["drop"] is not None and after >= a.min_after
                    and now - max(mem["drop"], t_slow) >= a.post):
                break
        p = paths[i % len(paths)]
        i += 1
        t0 = time.monotonic()
        try:
            st, body = get(c, p)
            ok = st == 200 and body == want[p]
            err = "" if ok else f"status {st}, {len(body)} bytes, equal={body == want[p]}"
        except Exception as e:
            ok, err = False, f"{type(e).__name__}: {e}"
            c.close()
            c = conn_to(a.gateway, 120)
        t1 = time.monotonic()
        if t1 - t0 >= 0.5:
            t_slow = t1
        recs.append((t0, t1, ok, p, err))
    stop_poll.set()
    th.join(3)
    rrecs = []
    if child:
        t_stop.value = 0
        rrecs = q.get(timeout=180)
        child.join(10)

    # --- figures --------------------------------------------------------
    tb = t_break
    before = [r for r in recs if r[1] <= tb]
    after = [r for r in recs if r[1] > tb]
    started_after_ok = [r for r in recs if r[0] >= tb and r[2]]
    first_any_ok = min((r[1] for r in after if r[2]), default=None)
    lat = lambda r: r[1] - r[0]
    # Longest wait between consecutive successful completions around the
    # break (from the last success before it): what an application stalls.
    oks = [r[1] for r in recs if r[2]]
    gap, gap_at = 0.0, None
    prev = None
    for t in oks:
        if prev is not None and t > tb - 1 and t - prev > gap:
            gap, gap_at = t - prev, prev - tb
        prev = t
    slow = sorted(after, key=lat, reverse=True)[:3]
    out = {
        "action": a.action,
        "reads": len(recs),
        "reads_before": len(before),
        "reads_after": len(after),
        "failed": sum(1 for r in recs if not r[2]),
        "failed_examples": [f"{r[3]}: {r[4]}" for r in recs if not r[2]][:5],
        "rate_before_per_s": len(before) / max(1e-9, tb - t_begin),
        "first_ok_after_s": None if first_any_ok is None else first_any_ok - tb,
        "first_ok_started_after_s": None if not started_after_ok else started_after_ok[0][1] - tb,
        "in_flight_at_break": sum(1 for r in recs if r[0] < tb < r[1]),
        "longest_read_s": max((lat(r) for r in after), default=0.0),
        "slow_reads": sum(1 for r in after if lat(r) >= 0.5),
        "longest_read_started_s": None if not slow else slow[0][0] - tb,
        "longest_gap_s": gap,
        "longest_gap_from_s": gap_at,
        "median_read_before_ms": 1000 * sorted(lat(r) for r in before)[len(before) // 2] if before else None,
        "members_drop_s": None if mem["drop"] is None else mem["drop"] - tb,
        "members_after": mem.get("members_after"),
        "metrics_samples": mem["samples"],
        "observed_s": recs[-1][1] - tb if recs else 0.0,
    }
    if mem["drop"] is not None:
        late = [r for r in recs if r[0] >= max(mem["drop"], t_slow)]
        if len(late) > 1:
            out["rate_after_drop_per_s"] = len(late) / max(1e-9, late[-1][1] - late[0][0])
    if child:
        rb = [r for r in rrecs if r[1] > tb]
        out.update({
            "range_reads": len(rrecs),
            "range_reads_after": len(rb),
            "range_failed": sum(1 for r in rrecs if not r[2]),
            "range_failed_examples": [r[3] for r in rrecs if not r[2]][:5],
            "range_in_flight_at_break": sum(1 for r in rrecs if r[0] < tb < r[1]),
            "range_longest_s": max((r[1] - r[0] for r in rb), default=0.0),
            "range_median_before_s": sorted(r[1] - r[0] for r in rrecs if r[1] <= tb)[
                len([r for r in rrecs if r[1] <= tb]) // 2] if any(r[1] <= tb for r in rrecs) else None,
        })
    if a.timeline:
        with open(a.timeline, "w") as f:
            f.write("reader\tstart_s\tend_s\tok\tpath\terror\n")
            for r in recs:
                f.write(f"small\t{r[0] - tb:.6f}\t{r[1] - tb:.6f}\t{int(r[2])}\t{r[3]}\t{r[4]}\n")
            for r in rrecs:
                f.write(f"range\t{r[0] - tb:.6f}\t{r[1] - tb:.6f}\t{int(r[2])}\t\t{r[3]}\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
