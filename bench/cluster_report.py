#!/usr/bin/python3
"""Writes the markdown report of one bench/cluster.sh run to stdout.

usage: cluster_report.py RUNDIR

RUNDIR (bench/work/runs/cluster-<stamp>-<mode>) holds what cluster.sh
recorded: meta.env (key=value: machine, versions, counters), commands.txt,
warm.tsv, placement.tsv, tput.tsv (one wrk run a row), tput-workers.tsv (one
worker of one run a row), lat.tsv (one wrk run a row), failover-<action>.json
(cluster_failover.py's figures), worker-1-warnings.log and precond.tsv (each
pass's precondition check, bench/precond.sh).  Nothing here measures
anything; it only tabulates.

The preconditions are checked again from the recorded counters (the
throughput runs fetched nothing from the under-store); when one does not
hold, the report gives no headline, says why, and the script exits 1.
"""
import csv
import json
import os
import statistics
import sys


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
    return env


def load_tsv(path):
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt(x, nd=2):
    return f"{x:,.{nd}f}"


def ms(s, nd=1):
    return "-" if s is None else f"{1000 * s:,.{nd}f} ms"


def secs(s, nd=2):
    return "-" if s is None else f"{s:,.{nd}f} s"


def main():
    run = sys.argv[1]
    env = load_env(os.path.join(run, "meta.env"))
    tput = load_tsv(os.path.join(run, "tput.tsv"))
    tpw = load_tsv(os.path.join(run, "tput-workers.tsv"))
    place = load_tsv(os.path.join(run, "placement.tsv"))
    warm = load_tsv(os.path.join(run, "warm.tsv"))
    lat = load_tsv(os.path.join(run, "lat.tsv"))
    fo = {}
    for act in ("kill", "linkdown", "stop"):
        p = os.path.join(run, f"failover-{act}.json")
        if os.path.exists(p):
            with open(p) as f:
                fo[act] = json.load(f)
            # Reads flow again (rerouted) at the end of the last small read
            # of 0.5 s or more after the break; with none, at the first
            # read started after the break.  (A read that B answered just as
            # it was stopped is not a rerouted one.)
            t = os.path.join(run, f"failover-{act}.tsv")
            ends = []
            if os.path.exists(t):
                for r in load_tsv(t):
                    a0, a1 = float(r["start_s"]), float(r["end_s"])
                    if r["reader"] == "small" and a1 > 0 and a1 - a0 >= 0.5:
                        ends.append(a1)
            fo[act]["flowing_again_s"] = max(ends) if ends else fo[act]["first_ok_started_after_s"]
    with open(os.path.join(run, "commands.txt")) as f:
        commands = f.read().strip()
    warnings = ""
    p = os.path.join(run, "worker-1-warnings.log")
    if os.path.exists(p):
        with open(p) as f:
            warnings = f.read().strip()
    mode = env["mode"]
    rounds, lrounds = int(env["rounds"]), int(env["lrounds"])
    large, small = int(env["large_size"]), int(env["small_size"])
    n_large, n_small = int(env["n_large"]), int(env["n_small"])
    block = int(env["block_bytes"])
    ttl = env["lease_ttl"]
    nproc = env["host_nproc"]
    ns = sorted({int(r["n"]) for r in tput})
    out = []
    w = out.append

    # ---- throughput figures per worker count ------------------------------
    tp = {}
    for n in ns:
        rows = sorted((r for r in tput if int(r["n"]) == n), key=lambda r: int(r["round"]))
        gbps = [int(r["bytes"]) / int(r["duration_us"]) / 1000 for r in rows]
        gb = sum(int(r["bytes"]) for r in rows) / 1e9
        fwd = sum(int(r["fwd_bytes"]) for r in rows)
        byts = sum(int(r["bytes"]) for r in rows)
        tt = sum(int(r["cpu_ticks"]) for r in rows)
        # Expected hop share: each gateway forwards the blocks it does not
        # own; weighted by the requests each gateway answered.
        owned = {int(r["worker"]): int(r["owned_blocks"]) for r in place
                 if r["what"] == "large" and int(r["n"]) == n}
        total_blocks = sum(owned.values())
        req = {}
        for r in tpw:
            if int(r["n"]) == n:
                req[int(r["worker"])] = req.get(int(r["worker"]), 0) + int(r["get_requests"])
        sreq = sum(req.values())
        exp = (sum(q * (1 - owned.get(g, 0) / total_blocks) for g, q in req.items()) / sreq
               if sreq and total_blocks else None)
        tp[n] = {
            "gbps": gbps, "med": statistics.median(gbps),
            "share": fwd / byts if byts else 0.0, "exp": exp,
            "wcpu_gb": sum(float(r["workers_cpu_s"]) for r in rows) / gb,
            "kcpu_gb": sum(float(r["wrk_cpu_s"]) for r in rows) / gb,
            "user": sum(int(r["cpu_user"]) for r in rows) / tt,
            "sys": sum(int(r["cpu_system"]) for r in rows) / tt,
            "irq": sum(int(r["cpu_irq"]) for r in rows) / tt,
            "steal": sum(int(r["cpu_steal"]) for r in rows) / tt,
            "err": sum(int(r["errors"]) + int(r["status_errors"]) + int(r["timeouts"]) for r in rows),
            "p50": statistics.median(int(r["p50_us"]) for r in rows) / 1000,
            "p99": statistics.median(int(r["p99_us"]) for r in rows) / 1000,
            "ufs": sum(int(r["ufs_bytes"]) for r in rows),
            "loadavg": ", ".join(r["loadavg"] for r in rows),
            "req": req, "owned": owned, "total_blocks": total_blocks,
        }
    base = tp[ns[0]]["med"]

    # ---- latency: owner vs hop, pooled over gateways and rounds ----------
    def pooled(kind, key):
        return statistics.median(float(r[key]) for r in lat if r["kind"] == kind) / 1000

    lsum = {k: {q: pooled(k, q) for q in ("p50_us", "p90_us", "p99_us", "p999_us", "mean_us")}
            for k in ("owner", "hop")}

    # ---- preconditions: recorded as each pass ran, and the timed runs' own counts
    broken = [f"throughput bench-n{r['n']} round {r['round']}: {int(r['ufs_bytes']):,} bytes from the under-store"
              for r in tput if int(r["ufs_bytes"]) != 0]
    if os.path.exists(os.path.join(run, "precond.tsv")):
        broken += [f"{c['pass']}: {c['role']} check on {c['counter']}: got {c['got']}, want {c['want']}, "
                   f"slack {c['slack']}" for c in load_tsv(os.path.join(run, "precond.tsv")) if c["verdict"] != "ok"]
    if broken:
        w(f"# ferry cluster benchmark: {mode} run, {env['date_utc']}")
        w("")
        w("## Headline")
        w("")
        w("**Not reported: preconditions violated** (" + "; ".join(broken) + ").")
        print("\n".join(out))
        print("cluster_report.py: preconditions violated: " + "; ".join(broken), file=sys.stderr)
        sys.exit(1)

    # ---- headline ------------------------------------------------------------
    w(f"# ferry cluster benchmark: {mode} run, {env['date_utc']}")
    w("")
    w(f"Generated by `bench/cluster.sh {mode}`; what each part measures is in bench/README.md "
      "and below.  Units: GB/s = 10^9 bytes/s; ms = milliseconds; objects are "
      f"{large // 1048576} MiB ({large:,} bytes) and 64 KiB; placement block {env['block']} "
      f"({block:,} bytes).")
    w("")
    w(f"**Read this first:** every worker, etcd and every client of this run share one machine's "
      f"{nproc} cores (and other jobs ran on it meanwhile: load averages below).  Aggregate "
      "throughput cannot grow with workers here as it would across hosts: each worker added brings "
      "no CPU, only more hops (a forwarded byte crosses the bridge twice and is copied through the "
      "gateway's user space, where a local one goes by sendfile).  The CPU per GB figures are the "
      "ones to judge scaling by: on separate hosts each worker brings its own cores, and the cost "
      "per byte is what decides how far a cluster goes.")
    w("")
    w("## Headline")
    w("")
    tl = " / ".join(f"**{fmt(tp[n]['med'])}**" for n in ns)
    w(f"- Aggregate warm GET throughput of {', '.join(str(n) for n in ns)} worker(s) ({large // 1048576} MiB "
      f"objects, wrk with {env['conns_per_gw']} connections per gateway, spread over every gateway): "
      f"{tl} GB/s (median of {rounds} round(s)); share of bytes that crossed a worker hop: "
      + " / ".join(f"{tp[n]['share']:.2f}" for n in ns)
      + "; workers' CPU per GB served: " + " / ".join(f"{tp[n]['wcpu_gb']:.2f} s" for n in ns) + ".")
    w(f"- Hop latency, 64 KiB objects, one connection, one request at a time (wrk `-t1 -c1`): through the "
      f"owner's gateway p50 **{lsum['owner']['p50_us']:.3f} ms**, p99 {lsum['owner']['p99_us']:.3f} ms; "
      f"through a non-owner's gateway p50 **{lsum['hop']['p50_us']:.3f} ms**, p99 {lsum['hop']['p99_us']:.3f} ms: "
      f"a hop adds **{lsum['hop']['p50_us'] - lsum['owner']['p50_us']:.3f} ms** at p50, "
      f"{lsum['hop']['p99_us'] - lsum['owner']['p99_us']:.3f} ms at p99 (medians over "
      f"{len(lat) // 2} runs of each kind).")
    names = {"kill": "SIGKILL", "linkdown": "link down (host gone)", "stop": "SIGSTOP (hung worker)"}
    for act, f in fo.items():
        rf = f.get("range_failed", 0)
        w(f"- Failover, worker B {names[act]} while A serves B's objects: B's objects served again (rerouted) "
          f"**{ms(f['flowing_again_s'])}** after the break, longest read **{ms(f['longest_read_s'])}**"
          f"{'' if f.get('range_reads') is None else ' (16 MiB block streams: ' + ms(f['range_longest_s']) + ')'}, "
          f"failed reads **{f['failed'] + rf}** of {f['reads'] + f.get('range_reads', 0):,}; A's view dropped B "
          f"after **{secs(f['members_drop_s'])}** (lease TTL {ttl} s).")
    w("")

    # ---- machine ---------------------------------------------------------------
    w("## Machine and versions")
    w("")
    w(f"- CPU: {env['host_cpu']}, {nproc} cores (nproc); memory {env['host_mem']}; kernel {env['host_kernel']}")
    w(f"- bench/work on: {env['host_disk']}")
    w(f"- ferry {env['ferry_rev']} (`{env['ferry_version']}`); {env['etcd_version']}; {env['wrk_version']}; "
      f"{env['curl_version']}; {env['python_version']}")
    w(f"- Run as uid {env['uid']} (root is needed for the namespaces).  Load average (1/5/15 min) at the start: "
      f"{env['loadavg_start']}; at the end: {env.get('loadavg_end', '-')}.")
    w(f"- Whole run: {env.get('total_seconds', '-')} s.")
    w("")
    w("## Setup")
    w("")
    w(f"- Network: a bridge in the root namespace ({env['bridge_ip']}/24 on it) and one network namespace per "
      f"worker, joined to the bridge by a veth pair, with its own address ({env['net'].rsplit('.', 1)[0]}.11, .12, .13).  "
      "Workers bind their own address only (S3 gateway and control API), with `--control-token` (the same on "
      "all) and `--s3-anonymous`, and advertise it; nothing assumes one host except the shared data directory.")
    w(f"- etcd {env['etcd_version'].split()[-1]}: one member in the root namespace, client URL on the bridge "
      "address.  Three clusters live side by side in it, `bench-n1`, `bench-n2` and `bench-n3` (1, 2 and 3 "
      "workers; worker I of each in namespace I, on its own ports), so that the throughput runs alternate "
      "between them; the smaller two are stopped after the throughput runs.")
    w(f"- Under-store: bench/work/cluster-data (local disk), mounted by every worker as `bench` "
      f"(`--mount bench=file://...`, a cluster-wide mount): {n_large} x {large // 1048576} MiB and "
      f"{n_small} x 64 KiB files of random bytes.  In a real cluster it would be shared storage.")
    w(f"- Workers: default settings (1 MiB pages, `--page-verify always`), `--block-size {env['block']}`, "
      f"lease TTL {ttl} s (the default), replicas 1 (the default): each block lives on one worker, and a "
      "gateway that does not own a block streams it from the owner's control API.")
    w("- Clients run in the root namespace and reach the workers over the bridge.")
    w("")

    # ---- 1. throughput -----------------------------------------------------------
    w("## 1. Aggregate warm throughput, 1 to 3 workers")
    w("")
    w(f"Before timing, every large object was read through every gateway of each cluster (the first pass warms "
      f"the owners' caches) and its md5 compared with the file's: all equal.  Then one wrk run per cluster and "
      f"round, `-t<workers> -c<{env['conns_per_gw']} x workers>`, {env['dur']} s, thread k and its "
      f"{env['conns_per_gw']} connections on gateway k (bench/cluster_paths.lua; each thread cycles through all "
      f"{n_large} objects from its own offset); the clusters alternate within each round.  GB/s counts every "
      "byte wrk received (headers are ~200 bytes per 33-67 MB answer).  Hop share: bytes the gateways streamed "
      "from peers (`ferry_cluster_forwarded_bytes_total`, summed over the workers) over the bytes served; "
      "expected: what placement predicts from the blocks each gateway owns, weighted by the GETs each gateway "
      "answered.  Workers' CPU: user + system time of the worker processes (all threads) from /proc; wrk's from "
      "`/usr/bin/time`.  Machine CPU: the whole machine's /proc/stat over the run, other jobs included; "
      "irq = hardware + soft interrupts (where the kernel's veth and bridge forwarding mostly runs, charged to "
      "no process).")
    w("")
    hdr = "| workers | " + " | ".join(f"round {i + 1}" for i in range(rounds)) + \
        " | median GB/s | vs 1 worker | hop share (expected) | workers' CPU s/GB | wrk CPU s/GB | machine CPU busy: user / sys / irq | wrk p50 / p99 per GET | errors | load (1 min) |"
    w(hdr)
    w("|" + "---|" * (hdr.count("|") - 1))
    for n in ns:
        t = tp[n]
        exp = "-" if t["exp"] is None else f"{t['exp']:.2f}"
        w(f"| {n} | " + " | ".join(fmt(g) for g in t["gbps"]) +
          f" | **{fmt(t['med'])}** | {t['med'] / base:.2f} | {t['share']:.2f} ({exp}) | {t['wcpu_gb']:.3f} | "
          f"{t['kcpu_gb']:.3f} | {100 * t['user']:.0f}% / {100 * t['sys']:.0f}% / {100 * t['irq']:.0f}% | "
          f"{t['p50']:,.0f} / {t['p99']:,.0f} ms | {t['err']} | {t['loadavg']} |")
    w("")
    ufs = sum(t["ufs"] for t in tp.values())
    w(f"Under-store bytes read by the workers during the timed runs: {ufs:,} (0: every byte came from the "
      "owners' page caches).  Each pass's precondition (bench/precond.sh) was checked as it ran: the first "
      "read of each cluster's data through its first gateway started from empty caches and fetched every "
      "byte once; every later pass (the other gateways' reads, each throughput and latency run, the probe "
      "before each failover scenario) fetched none.")
    w("")
    w("Per worker, over all rounds (GETs its gateway answered, bytes it streamed from peers for them, its CPU):")
    w("")
    w("| workers | worker | blocks owned | GETs answered | bytes from peers | CPU s |")
    w("|---|---|---|---|---|---|")
    for n in ns:
        for i in sorted(tp[n]["req"]):
            rows = [r for r in tpw if int(r["n"]) == n and int(r["worker"]) == i]
            w(f"| {n} | {i} | {tp[n]['owned'].get(i, 0)} of {tp[n]['total_blocks']} | "
              f"{sum(int(r['get_requests']) for r in rows):,} | {sum(int(r['fwd_bytes']) for r in rows):,} | "
              f"{sum(float(r['cpu_s']) for r in rows):.2f} |")
    w("")
    w("Placement check: the blocks bench/cluster_owner.c (which links the workers' own placement code) gives "
      "each worker, against the bytes each worker read from the under-store while the cluster was warmed "
      "(large objects) or the small objects were first read:")
    w("")
    w("| objects | workers | worker | blocks owned (computed) | bytes expected | bytes read from the UFS | equal |")
    w("|---|---|---|---|---|---|---|")
    for r in place:
        eq = "yes" if r["expected_bytes"] == r["ufs_bytes"] else "**no**"
        w(f"| {r['what']} | {r['n']} | {r['worker']} | {r['owned_blocks']} | {int(r['expected_bytes']):,} | "
          f"{int(r['ufs_bytes']):,} | {eq} |")
    w("")
    w("Warm-up and check passes (one curl per object, one at a time, md5 of each compared):")
    w("")
    w("| workers | through gateway | seconds | MB/s | md5 |")
    w("|---|---|---|---|---|")
    for r in warm:
        w(f"| {r['n']} | {r['gateway']} | {float(r['seconds']):.2f} | "
          f"{int(r['bytes']) / float(r['seconds']) / 1e6:,.0f} | {'all equal' if r['md5_ok'] == '1' else '**MISMATCH**'} |")
    w("")

    # ---- 2. latency -------------------------------------------------------------
    w("## 2. Latency of a hop: owner's gateway vs a non-owner's")
    w("")
    w(f"The {n_small} small objects (64 KiB, one block each) were read once through gateway 1 (which warmed "
      "their owners) and then through every gateway into files compared with the originals: all equal.  For "
      f"each gateway g: wrk `-t1 -c1` ({env['ldur']} s) GETs the objects owned by g through g (**owner**), and "
      "the objects owned by the next worker through g (**hop**: g streams each from its owner's control API); "
      f"the two alternate, {lrounds} round(s).  Latency is wrk's, per request, in ms.  Forwarded bytes: "
      "g's `ferry_cluster_forwarded_bytes_total` over the run (0 for owner runs: nothing crossed a hop).")
    w("")
    w("| round | gateway | kind | objects owned by | req/s | p50 | p90 | p99 | p99.9 | max | forwarded bytes | errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in lat:
        rps = int(r["requests"]) * 1e6 / int(r["duration_us"])
        w(f"| {r['round']} | {r['gateway']} | {r['kind']} | worker {r['owner']} | {rps:,.0f} | "
          f"{int(r['p50_us']) / 1000:.3f} | {int(r['p90_us']) / 1000:.3f} | {int(r['p99_us']) / 1000:.3f} | "
          f"{int(r['p999_us']) / 1000:.3f} | {int(r['max_us']) / 1000:.3f} | {int(r['fwd_bytes']):,} | "
          f"{int(r['errors']) + int(r['status_errors'])} |")
    w("")
    w("Summary (median over the runs of each kind):")
    w("")
    w("| | p50 | p90 | p99 | p99.9 | mean |")
    w("|---|---|---|---|---|---|")
    for k in ("owner", "hop"):
        s = lsum[k]
        w(f"| {k} | {s['p50_us']:.3f} | {s['p90_us']:.3f} | {s['p99_us']:.3f} | {s['p999_us']:.3f} | {s['mean_us']:.3f} |")
    s0, s1 = lsum["owner"], lsum["hop"]
    w(f"| **hop - owner** | **{s1['p50_us'] - s0['p50_us']:+.3f}** | {s1['p90_us'] - s0['p90_us']:+.3f} | "
      f"**{s1['p99_us'] - s0['p99_us']:+.3f}** | {s1['p999_us'] - s0['p999_us']:+.3f} | {s1['mean_us'] - s0['mean_us']:+.3f} |")
    w("")
    w("The tails (p99 and beyond) on this shared 2-core machine mostly measure other jobs' scheduling; "
      "the p50 difference is the hop's own cost: a second HTTP request (gateway to owner, over the bridge), "
      "the owner's page read and CRC check, and the bytes copied through the gateway's user space.")
    w("")

    # ---- 3. failover -------------------------------------------------------------
    w("## 3. Failover: time from a worker's breakage to reads rerouted")
    w("")
    w(f"Cluster bench-n3.  A = worker 1, B = worker 2.  The reader (bench/cluster_failover.py, in the root "
      f"namespace) GETs the {env.get('failover_small_objects', '?')} small objects B owns through A's gateway, "
      "one connection, one request at a time, comparing every body with the file; a second process reads "
      f"the {env.get('failover_ranges', '?')} blocks of 16 MiB that B owns of the large objects (Range GETs, "
      "at most 4) through A in a loop, also compared byte for byte, so that B breaks while A is streaming one of its blocks.  "
      "A thread polls A's /metrics every 50 ms for `ferry_cluster_members`.  After 1.5 s of reading, B is "
      "broken; reading goes on until A's view has dropped B and 2 s of normal reads followed the last slow "
      "one (cap 40 s).  Between scenarios B is brought back and the reader waits until A sees 3 members again "
      "plus 3 s (A skips a peer that failed for 3 s).")
    w("")
    w("- **kill**: `kill -KILL` B's process.  Its namespace and address remain, so connections to it are "
      "refused at once (RST): this is a crashed process on a live host.  B is then started again with the "
      "same command and cache directory (so the same id).")
    w("- **linkdown**: `ip link set <B's host-side veth> down`; B keeps running, cut off.  Packets to B "
      "vanish, no RST: this is a host that died or a partition.  Then the link is raised again.")
    w("- **stop**: `kill -STOP` B.  The kernel still accepts connections to it and acknowledges data, but "
      "nothing answers: a hung worker.  Then `kill -CONT`.")
    w("")
    acts = [a for a in ("kill", "linkdown", "stop") if a in fo]
    w("| | " + " | ".join(acts) + " |")
    w("|---|" + "---|" * len(acts))

    def row(label, fn):
        w(f"| {label} | " + " | ".join(fn(fo[a], a) for a in acts) + " |")

    row("reads of B's small objects, before / after the break", lambda f, a: f"{f['reads_before']:,} / {f['reads_after']:,}")
    row("read rate before the break", lambda f, a: f"{f['rate_before_per_s']:,.0f}/s (median {f['median_read_before_ms']:.2f} ms)")
    row("(a) first small read started after the break served, after", lambda f, a: f"**{ms(f['first_ok_started_after_s'])}**")
    row("(a) reads rerouted: the last small read of 0.5 s or more ended (or, with none, (a) above), after",
        lambda f, a: f"**{ms(f['flowing_again_s'])}**")
    row("(b) longest small read after the break (starting at)", lambda f, a: f"**{ms(f['longest_read_s'])}** (+{ms(f['longest_read_started_s'])})")
    row("small reads of 0.5 s or more", lambda f, a: f"{f['slow_reads']}")
    row("longest gap between two served small reads", lambda f, a: ms(f["longest_gap_s"]))
    row("(c) failed small reads (error or wrong bytes)", lambda f, a: f"**{f['failed']}**")
    row("16 MiB block reads, in flight at the break / after it", lambda f, a: f"{f.get('range_in_flight_at_break', '-')} / {f.get('range_reads_after', '-')}")
    row("16 MiB block read: median before / longest after", lambda f, a: f"{ms(f.get('range_median_before_s'))} / **{ms(f.get('range_longest_s'))}**")
    row("(c) failed 16 MiB block reads", lambda f, a: f"**{f.get('range_failed', '-')}**")
    row(f"(d) A's view drops B (`ferry_cluster_members` 3 -> 2), after", lambda f, a: f"**{secs(f['members_drop_s'])}**")
    row("small read rate once B is out of the view", lambda f, a: "-" if f.get("rate_after_drop_per_s") is None else f"{f['rate_after_drop_per_s']:,.0f}/s")
    row("A's `ferry_cluster_failovers_total` / `peer_errors_total` over the scenario",
        lambda f, a: f"{int(env.get(f'failover_{a}_failovers_total', 0)):,} / {int(env.get(f'failover_{a}_peer_errors_total', 0)):,}")
    row("B back in A's view after it was restarted / relinked / continued", lambda f, a: secs(
        float(env[f"failover_{a}_rejoin_s"])) if env.get(f"failover_{a}_rejoin_s", "").replace(".", "").isdigit()
        else env.get(f"failover_{a}_rejoin_s", "-"))
    w("")
    fails = [x for a in acts for x in fo[a]["failed_examples"] + fo[a].get("range_failed_examples", [])]
    if fails:
        w("Failed reads (examples):")
        w("")
        for x in fails[:10]:
            w(f"- `{x}`")
        w("")
    w("How to read it:")
    w("")
    w(f"- The view change (d) follows B's lease: B's key in etcd expires {ttl} s after B's last keep-alive, so "
      f"(d) is at most the TTL and less by however long before the break B had last renewed.  A dead process "
      "(kill) is routed around long before that: A's first attempt at B fails at once, A marks B failed for 3 s "
      "and reads the block from the next worker in the block's hash order (or the under-store itself).  "
      "Until the view drops B, each read of a B-owned block whose next candidate is A itself still tries B "
      "once more before reading here (the router's second pass); that is what the failovers counter counts, "
      "and it is cheap only because the refusal is immediate.")
    w("- When B stops answering without refusing (linkdown, stop), a read that A had already sent to B (or "
      "sends on a kept-alive connection) waits for the router's stall timeout: 10 s without a byte.  A block "
      "stream that stalls midway waited longer here (the 16 MiB column): libcurl's low-speed check "
      "(`CURLOPT_LOW_SPEED_LIMIT` 1 byte/s over `CURLOPT_LOW_SPEED_TIME` 10 s) averages the transfer speed over "
      "its last few seconds, so a stream that was fast until it stalled only counts as slow some seconds after "
      "the stall, and the 10 s start from there.  After the first timeout B is skipped (and soon out of the "
      "view), so one reader sees one stall, not one per read.")
    w("- Reads after the view change go to B's successors in each block's hash order; with replicas 1 they "
      "were not cached there, so the first reads of each object after the break come from the under-store "
      "(here a local disk: fast).")
    w("")
    if warnings:
        lines = warnings.splitlines()
        kinds = {}
        for l in lines:
            k = l.split("): ", 1)[1] if "): " in l else l.split("  ", 1)[-1]
            kinds[k] = kinds.get(k, 0) + 1
        w(f"Worker A's log over the three scenarios: {len(lines):,} warning lines, by message: "
          + "; ".join(f"`{k}` x {v:,}" for k, v in sorted(kinds.items(), key=lambda x: -x[1]))
          + ".  The first three and the last five:")
        w("")
        w("```")
        w("\n".join(lines[:3] + (["..."] if len(lines) > 8 else []) + lines[max(3, len(lines) - 5):]))
        w("```")
        w("")

    # ---- commands -----------------------------------------------------------------
    w("## Commands")
    w("")
    w("Every command this run executed to set up and measure, in order (`bench/work/cluster-PID` is the "
      "run's scratch directory; addresses as in this run):")
    w("")
    w("```")
    w(commands)
    w("```")
    w("")
    w("bench/cluster_paths.lua (the wrk script), bench/cluster_failover.py (the failover reader) and "
      "bench/cluster_owner.c (placement) are in the repository.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
