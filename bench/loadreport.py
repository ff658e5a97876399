#!/usr/bin/python3
"""Turns one run of bench/load.sh into its Markdown report (stdout).

usage: loadreport.py RUNDIR

Reads RUNDIR/meta.env, results.tsv, precond.tsv, commands.txt and, when
present, samples-*.tsv (the link's and ferry's counters every half second
during the load passes), workers.tsv (each pass's counters per worker),
load-*.out (what `ferry load` printed), status-*.json, free*.json,
wanlink-stats.txt, ferry-log*.txt.  Measures nothing.

The run has a single-worker part (passes named "load", "read cold", "read
warm N", "read after-load N", "load bandwidth") and, in runs since the
3-worker variant was added, a cluster part (the same names with "3w": "load
3w", "read after-load 3w", "read warm 3w N", "load bandwidth 3w", "read cold
3w"); the report sets them side by side.

Every pass is checked again here against its precondition (bench/precond.sh),
from the counters recorded with it and from precond.tsv: a load pass and the
cold read started from an empty cache and fetched the dataset over the link
(a load pass also counted it in ferry_load_bytes_total and left its pages
cached), the warm and after-load reads fetched nothing.  A pass that fails
its check gets no ratio anywhere in the report, and the script exits 1.
The targets (load / the link's limit >= 0.9; achieved rate / --bandwidth cap
within 0.9-1.1) are reported, met or not; they do not fail the script.
"""
import csv
import json
import os
import re
import sys

run = sys.argv[1]
env = {}
for line in open(os.path.join(run, "meta.env")):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        env[k] = v
rows = list(csv.DictReader(open(os.path.join(run, "results.tsv")), delimiter="\t"))
pre = list(csv.DictReader(open(os.path.join(run, "precond.tsv")), delimiter="\t"))
out = []
w = out.append
lw = lambda k: env.get(k, "?")
DATA = int(env["data_bytes"])
PAGES = int(env["data_pages"])


def row(name):
    r = [x for x in rows if x["pass"] == name]
    return r[0] if r else None


def check(x):
    """The problems of one pass with its precondition, from its own row."""
    p = []
    need, slack = int(x["need"]), int(x["slack"])
    ufs, load, link = int(x["ufs_bytes"]), int(x["load_bytes"]), int(x["link_bytes"])
    role = x["role"]
    f = lambda v: "{:,}".format(v)
    if role == "direct" and link < need:
        p.append("direct, but only %s bytes crossed the link for %s read" % (f(link), f(need)))
    if role == "cold":
        if int(x["pages_before"]) != 0:
            p.append("cold, but the cache held %s pages when it began" % x["pages_before"])
        if ufs < need:
            p.append("cold, but ferry fetched %s of the %s bytes from the remote" % (f(ufs), f(need)))
        if link < need:
            p.append("cold, but only %s bytes crossed the link for %s" % (f(link), f(need)))
        if x["tool"] == "ferry-load":
            if load < need:
                p.append("a load pass, but ferry_load_bytes_total grew by %s, less than %s" % (f(load), f(need)))
            if int(x["pages_after"]) - int(x["pages_before"]) < PAGES:
                p.append("a load pass, but the cache gained %s pages, not the dataset's %s" % (
                    f(int(x["pages_after"]) - int(x["pages_before"])), f(PAGES)))
            if x["job_state"] != "done":
                p.append("the load job ended %s" % x["job_state"])
    if role == "warm":
        if ufs != 0:
            p.append("warm, but ferry fetched %s bytes from the remote" % f(ufs))
        if link > slack:
            p.append("warm, but %s bytes crossed the link (allowed %s for metadata)" % (f(link), f(slack)))
    return p


broken = {x["pass"]: check(x) for x in rows}
for c in pre:
    if c["verdict"] != "ok":
        broken.setdefault(c["pass"], []).append("%s check on %s: got %s, want %s, slack %s" % (
            c["role"], c["counter"], c["got"], c["want"], c["slack"]))
broken = {k: v for k, v in broken.items() if v}


def bad(*names):
    return [p for n in names for p in broken.get(n, [])]


def secs(x):
    return float(x["seconds"])


def mbs(x):
    return int(x["bytes"]) / secs(x) / 1e6


def fmt_s(v):
    return "{:,.1f} s".format(v) if v >= 10 else "{:,.2f} s".format(v)


def fmt_mb(v):
    return "{:,.1f}".format(v)


def target(ok):
    return "met" if ok else "**NOT met**"


def samples(tag):
    p = os.path.join(run, "samples-%s.tsv" % tag)
    if not os.path.exists(p):
        return []
    s = []
    for r in csv.DictReader(open(p), delimiter="\t"):
        s.append((float(r["t"]), int(r["link_rx"]), int(r["load_bytes"])))
    return s


def steady(tag, lo=0.1, hi=0.9):
    """The link's rate between the moments 10% and 90% of what crossed during
    the pass had crossed (start and end effects left out): bytes/s, or None."""
    s = samples(tag)
    if len(s) < 4:
        return None
    base, total = s[0][1], s[-1][1] - s[0][1]
    if total <= 0:
        return None

    def when(frac):
        goal = base + frac * total
        for (t0, b0, _), (t1, b1, _) in zip(s, s[1:]):
            if b1 >= goal:
                return t0 + (t1 - t0) * ((goal - b0) / (b1 - b0) if b1 > b0 else 0)
        return s[-1][0]
    ta, tb = when(lo), when(hi)
    return (hi - lo) * total / (tb - ta) if tb > ta else None


def profile(tag, step=1.0):
    """MB/s over the link in each STEP seconds of the pass (from the samples)."""
    s = samples(tag)
    if len(s) < 2:
        return ""
    v, t_next, last = [], s[0][0] + step, s[0]
    for x in s[1:]:
        if x[0] >= t_next - 1e-3:
            v.append((x[1] - last[1]) / (x[0] - last[0]) / 1e6)
            last, t_next = x, x[0] + step
    return " ".join("%.1f" % y for y in v)


def passes(pattern):
    return [x for x in rows if re.fullmatch(pattern, x["pass"])]


def median_row(xs):
    """The pass of median MB/s (the lower middle of an even count)."""
    return sorted(xs, key=mbs)[(len(xs) - 1) // 2] if xs else None


def window_max(tag, span):
    """The largest rate over the link in any SPAN seconds of the pass (from
    the samples; windows between samples): bytes/s, or None."""
    s = samples(tag)
    best = None
    for i, a in enumerate(s):
        for b in s[i + 1:]:
            if b[0] - a[0] >= span - 1e-3:
                r = (b[1] - a[1]) / (b[0] - a[0])
                best = r if best is None or r > best else best
                break
    return best


link = row("link curl8")


class Part:
    """One worker count's passes: the single workers (1) or the cluster (3)."""

    def __init__(self, n, sfx):
        self.n, self.sfx = n, sfx
        self.cold, self.load, self.bw = row("read cold" + sfx), row("load" + sfx), row("load bandwidth" + sfx)
        if n == 1:
            self.warms, self.afters = passes(r"read warm \d+"), passes(r"read after-load \d+")
        else:
            self.warms, self.afters = passes(r"read warm 3w \d+"), passes(r"read after-load 3w( \d+)?")
        self.WN = [x["pass"] for x in self.warms]
        self.AN = [x["pass"] for x in self.afters]
        self.warm, self.after = median_row(self.warms), median_row(self.afters)
        self.tag = "load" + sfx.replace(" ", "-")
        self.bwtag = "load-bandwidth" + sfx.replace(" ", "-")
        # The cap is what was asked (--bandwidth N MB/s, MB = 2^20 bytes): in
        # a cluster each worker's job shows its current share, which changes
        # as parts start and end, so their sum is not the cap.
        m = re.match(r"(\d+)MB/s$", lw("bw_arg") or "")
        self.cap = int(m.group(1)) * 1048576 if m and self.bw else 0

    def present(self):
        return self.load is not None

    def r_link(self):
        if not (self.load and link) or bad(self.load["pass"], "link curl8"):
            return None
        return mbs(self.load) / mbs(link)

    def r_cold(self):
        """The load's time over the cold pass's (same bytes)."""
        if not (self.load and self.cold) or bad(self.load["pass"], self.cold["pass"]):
            return None
        return secs(self.load) / secs(self.cold)

    def r_after(self):
        if not (self.after and self.warm) or bad(*self.AN, *self.WN):
            return None
        return mbs(self.after) / mbs(self.warm)

    def r_cap(self):
        """(by ferry_load_bytes_total, by the link) over the cap."""
        if not self.bw or bad(self.bw["pass"]) or self.cap <= 0:
            return None
        return (int(self.bw["load_bytes"]) / secs(self.bw) / self.cap,
                int(self.bw["link_bytes"]) / secs(self.bw) / self.cap)


P1, P3 = Part(1, ""), Part(3, " 3w")
PARTS = [p for p in (P1, P3) if p.present()]
iperf8 = float(env["link_iperf_8stream_mbit"]) * 1e6 / 8 if env.get("link_iperf_8stream_mbit", "") not in ("", "?") else None
iperf1 = float(env["link_iperf_1stream_mbit"]) * 1e6 / 8 if env.get("link_iperf_1stream_mbit", "") not in ("", "?") else None
perw = []
if os.path.exists(os.path.join(run, "workers.tsv")):
    perw = list(csv.DictReader(open(os.path.join(run, "workers.tsv")), delimiter="\t"))
BLOCK = int(env["block_size_3w"]) if env.get("block_size_3w", "").isdigit() else None


def wlabel(p):
    return "1 worker" if p.n == 1 else "%d workers" % p.n


w("# ferry load benchmark (%s)" % env["mode"])
w("")
w("Generated by `bench/load.sh %s` on %s (ferry %s).  A \"remote region\" (network namespace `%s`, s3rver) "
  "and a \"compute region\" (namespace `%s`: the ferry workers and the readers) joined by `bench/wanlink` (%s ms "
  "one way, %s bit/s each way, a bounded tail-drop queue; the compute side's TCP receive buffer capped at %s "
  "bytes, so one stream cannot fill the line): the link of the cross-region benchmark (`xregion.sh`).  Data: "
  "xregion.sh's Parquet dataset, %d files, %s bytes (%s pages of 1 MiB), in bucket `xr` under `parquet-%s/`; "
  "the workers mount `s3://xr/parquet-%s` at `/ld`.  Every pass starts once the link has been quiet for 0.2 s, "
  "after `sync; echo 3 > /proc/sys/vm/drop_caches`." % (
      env["mode"], env["date_utc"], lw("ferry_rev"), "ferry-ld-remote", "ferry-ld-compute", lw("wan_delay_ms"),
      lw("wan_rate"), lw("wan_rmem"), int(env["n_files"]), "{:,}".format(DATA), "{:,}".format(PAGES),
      lw("data_mib"), lw("data_mib")))
w("")
if P3.present():
    w("**1 and 3 workers, side by side in one run, over the same link**: first single workers (passes 2-4: "
      "worker a reads cold then warm, worker b loads, then a capped load), then a fresh cluster of three "
      "(passes 5-7: workers c1, c2, c3 with etcd, each in its own namespace of the compute region behind a "
      "bridge that routes them all over the one link, so the link is the cluster's shared bottleneck as in a "
      "real cross-region setup; each worker's TCP receive buffer capped as the compute side's; block size %s; "
      "`ferry load` through the CLI, which starts the job on c1 and every member loads the blocks placement "
      "gives it; the reader through c1's S3 gateway).  The cluster's counters are the three workers' summed." % (
          "{:,} bytes".format(BLOCK) if BLOCK else "the default"))
else:
    w("**One worker**: this run has no 3-worker (cluster) part.")
w("")
if env.get("ferry_stale", "0") not in ("", "0"):
    w("**Note: %s files under `src/` and `include/` were newer than `build/ferry` (%s) when this ran: the figures "
      "are that binary's, not necessarily revision %s's.**" % (env["ferry_stale"], lw("ferry_binary"), lw("ferry_rev")))
    w("")
w("The link as measured first (ping 10 x; iperf3 remote -> compute, 4 s after 1 s omitted): RTT %s / %s / %s ms "
  "(min / avg / max), iperf3 %s Mbit/s with 1 stream, %s Mbit/s with 8 streams." % (
      lw("link_rtt_ms_min"), lw("link_rtt_ms_avg"), lw("link_rtt_ms_max"), lw("link_iperf_1stream_mbit"),
      lw("link_iperf_8stream_mbit")))
w("")

# --- headline ------------------------------------------------------------------------
w("## Headline")
w("")
heads = []
for P in PARTS:
    who = "" if P.n == 1 else " on the %d-worker cluster" % P.n
    load, cold, after, warm, bw = P.load, P.cold, P.after, P.warm, P.bw
    if load and link and cold:
        b = bad(load["pass"], "link curl8", cold["pass"])
        if b:
            heads.append("- `ferry load`%s into an empty cache: **not reported**: %s." % (who, "; ".join(b)))
        else:
            r = mbs(load) / mbs(link)
            heads.append("- `ferry load /ld`%s into an empty cache: %s (%s MB/s) = **%.2f** of the link's multi-stream "
                         "limit for the same bytes (curl, 8 ranged GETs in flight: %s, %s MB/s; target >= 0.9: %s)%s; "
                         "the job's own time %s s.  Against a training job's cold pass (boto3 through %s, one "
                         "reader): %s (%s MB/s), so the load took **%.2f** of the cold pass's time." % (
                             who, fmt_s(secs(load)), fmt_mb(mbs(load)), r, fmt_s(secs(link)), fmt_mb(mbs(link)),
                             target(r >= 0.9),
                             "; %.2f of iperf3's 8 streams (%s MB/s, no s3rver)" % (mbs(load) * 1e6 / iperf8, fmt_mb(iperf8 / 1e6))
                             if iperf8 else "", load["job_elapsed_s"],
                             "ferry" if P.n == 1 else "c1's gateway on the same cluster, after `ferry free`",
                             fmt_s(secs(cold)), fmt_mb(mbs(cold)), secs(load) / secs(cold)))
    if after and warm:
        b = bad(*P.AN, *P.WN)
        if b:
            heads.append("- The read after the load%s: **not reported**: %s." % (who, "; ".join(b)))
        elif P.n == 1:
            heads.append("- The same reader after the load (median of %d passes): %s (%s MB/s), fetching %s bytes from "
                         "the remote in all %d (at most %s bytes crossed the link in one, metadata); **%.2f** of a warm "
                         "pass's rate (median of %d: %s, %s MB/s, on the worker that had read the dataset itself; the "
                         "passes in turn, pass by pass the ratio's median is %.2f)." % (
                             len(P.afters), fmt_s(secs(after)), fmt_mb(mbs(after)),
                             "{:,}".format(sum(int(x["ufs_bytes"]) for x in P.afters)), len(P.afters),
                             "{:,}".format(max(int(x["link_bytes"]) for x in P.afters)), mbs(after) / mbs(warm),
                             len(P.warms), fmt_s(secs(warm)), fmt_mb(mbs(warm)),
                             sorted(mbs(b) / mbs(a) for a, b in zip(P.warms, P.afters))[(min(len(P.warms), len(P.afters)) - 1) // 2]))
        else:
            heads.append("- On the cluster, the first pass after the load (through c1's gateway): %s (%s MB/s), "
                         "fetching %s bytes from the remote (the three workers' counters; %s bytes crossed the "
                         "link, metadata); **%.2f** of a warm pass's rate on the same cluster (median of the %d "
                         "passes that followed it: %s, %s MB/s)." % (
                             fmt_s(secs(after)), fmt_mb(mbs(after)),
                             "{:,}".format(sum(int(x["ufs_bytes"]) for x in P.afters)),
                             "{:,}".format(max(int(x["link_bytes"]) for x in P.afters)), mbs(after) / mbs(warm),
                             len(P.warms), fmt_s(secs(warm)), fmt_mb(mbs(warm))))
    if bw:
        b = bad(bw["pass"])
        cap = P.cap
        if b:
            heads.append("- `ferry load --bandwidth %s`%s: **not reported**: %s." % (lw("bw_arg"), who, "; ".join(b)))
        elif cap > 0:
            rl, rk = P.r_cap()
            heads.append("- `ferry load --bandwidth %s`%s (the cap: %s bytes/s = %s MB/s, %.2f of the link's limit above%s) "
                         "on an emptied cache: %s MB/s fetched (ferry_load_bytes_total%s over the command's %s) = **%.2f** "
                         "of the cap, %.2f by the link's counter (TCP/IP headers included); target 0.9-1.1: %s." % (
                             lw("bw_arg"), who, "{:,}".format(cap), fmt_mb(cap / 1e6),
                             cap / (mbs(link) * 1e6) if link else 0,
                             "" if P.n == 1 else "; shared by the workers' parts still running",
                             fmt_mb(int(bw["load_bytes"]) / secs(bw) / 1e6),
                             "" if P.n == 1 else ", the three workers'", fmt_s(secs(bw)), rl, rk,
                             target(0.9 <= rl <= 1.1 and 0.9 <= rk <= 1.1)))
            m1, m5 = window_max(P.bwtag, 1.0), window_max(P.bwtag, 5.0)
            if m1 and m5:
                heads.append("  Over shorter spans: the link carried up to %s MB/s over its busiest 1 s (**%.2fx** "
                             "the cap) and %s MB/s over its busiest 5 s (%.2fx) during the capped load." % (
                                 fmt_mb(m1 / 1e6), m1 / cap, fmt_mb(m5 / 1e6), m5 / cap))
if not P3.present():
    heads.append("- Not measured in this run: `ferry load` on a 3-worker cluster (each worker loading the blocks it owns).")
for h in heads:
    w(h)
w("")


def f2(v):
    return "%.2f" % v if v is not None else "not reported"


if P3.present():
    w("### 1 and 3 workers")
    w("")
    w("The ratios above, side by side (the same link, the same bytes, one run).")
    w("")
    w("| figure | 1 worker | 3 workers | target |")
    w("|---|---:|---:|---|")

    def cells(fn):
        return [fn(P) for P in (P1, P3)]

    w("| `ferry load`: seconds (MB/s) | %s |" % " | ".join(
        "%s (%s)" % (fmt_s(secs(P.load)), fmt_mb(mbs(P.load))) if P.load and not bad(P.load["pass"]) else "not reported"
        for P in (P1, P3)) + " - |")
    w("| load / the link's limit (curl, 8 streams) | %s | >= 0.9 |" % " | ".join(
        "**%s**" % f2(P.r_link()) for P in (P1, P3)))
    w("| load time / the cold read's time | %s | - |" % " | ".join(
        f2(P.r_cold()) + (" (cold read through the worker)" if P.n == 1 else " (cold read through c1, same cluster)")
        for P in (P1, P3)))
    w("| after-load read / warm read (MB/s) | %s | - |" % " | ".join(
        f2(P.r_after()) + (" (medians, %d each)" % len(P.afters) if P.n == 1 else
                           " (the first pass after the load / median of %d warm)" % len(P.warms))
        for P in (P1, P3)))
    w("| `--bandwidth` achieved / cap (ferry_load_bytes_total) | %s | 0.9-1.1 |" % " | ".join(
        "**%s**" % f2(P.r_cap()[0] if P.r_cap() else None) for P in (P1, P3)))
    w("| `--bandwidth` achieved / cap (the link's counter) | %s | 0.9-1.1 |" % " | ".join(
        f2(P.r_cap()[1] if P.r_cap() else None) for P in (P1, P3)))
    for span in (5.0, 1.0):
        w("| the link's busiest %.0f s during the capped load / cap | %s | - |" % (span, " | ".join(
            f2(window_max(P.bwtag, span) / P.cap) if P.r_cap() and window_max(P.bwtag, span) else "not reported"
            for P in (P1, P3))))
    w("")

# --- load vs the link and the cold pass ---------------------------------------------
w("## `ferry load` against the link's limit and a cold pass")
w("")
w("The same %s bytes each time.  *link*: xregion.sh's reference, every 1 MiB range fetched from the remote "
  "s3rver with `curl --parallel --parallel-max 8` (no cache: what the link and s3rver give 8 streams); *cold "
  "read*: a fresh worker, the dataset read once through its S3 gateway by one boto3 reader (`xread.py s3`, "
  "files in turn), as xregion.sh's cold pass; *load*: another fresh worker, `ferry load /ld` (default "
  "`--parallel` %s: objects loaded at once, each in reads of up to 8 pages), timed from the command's start "
  "to its exit; *load, the job's time*: the job's own `elapsed_s` (`ferry load --status --json`; the CLI polls "
  "it every 0.5 s when not on a terminal, so it exits up to 0.5 s after the job ends)." % (
      "{:,}".format(DATA), P1.load["job_parallel"] if P1.load else "?"))
if P3.present():
    w("")
    w("*3 workers*: a fresh cluster, `ferry load /ld` through the CLI (each worker's part: `--parallel` %s, the "
      "blocks placement gives it); the job's time is the longest part's.  Its *cold read* ran last, after `ferry "
      "free /ld --force` emptied the cluster (checked: no page, `ferry du` 0): the same workers, so their metadata "
      "(stat) caches may still have held the files' entries; the data all came over the link (checked).  Its "
      "`/ cold read` is against that cluster's cold read." % (P3.load["job_parallel"] or "?"))
w("")
w("| pass | workers | seconds | MB/s | / link | / cold read (same workers) | bytes from the remote (ferry) | link bytes |")
w("|---|---:|---:|---:|---:|---:|---:|---:|")


def ratio(a, b, *names):
    return "not reported" if bad(*names) else "%.2f" % (a / b)


if iperf8:
    w("| iperf3, 8 streams (no s3rver) | - | - | %s | %s | - | - | - |" % (
        fmt_mb(iperf8 / 1e6), ratio(iperf8 / 1e6, mbs(link), "link curl8") if link else "-"))
if iperf1:
    w("| iperf3, 1 stream (no s3rver) | - | - | %s | %s | - | - | - |" % (
        fmt_mb(iperf1 / 1e6), ratio(iperf1 / 1e6, mbs(link), "link curl8") if link else "-"))
lines = [(link, "link: curl, 8 ranged GETs in flight", None, "-")]
for P in PARTS:
    lines += [(P.cold, "cold read (boto3 through ferry%s)" % ("" if P.n == 1 else ", c1's gateway"), P, P.n),
              (P.load, "ferry load", P, P.n)]
for x, label, P, n in lines:
    if not x:
        continue
    w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        label, n, x["seconds"], fmt_mb(mbs(x)), ratio(mbs(x), mbs(link), x["pass"], "link curl8") if link else "-",
        ratio(mbs(x), mbs(P.cold), x["pass"], P.cold["pass"]) if P and P.cold else "-",
        "{:,}".format(int(x["ufs_bytes"])) if x["tool"] != "curl8" else "-", "{:,}".format(int(x["link_bytes"]))))
    if P and x is P.load and x["job_elapsed_s"]:
        js = float(x["job_elapsed_s"])
        v = DATA / js / 1e6
        w("| ferry load, the job's time | %s | %s | %s | %s | %s | - | - |" % (
            n, x["job_elapsed_s"], fmt_mb(v), ratio(v, mbs(link), x["pass"], "link curl8") if link else "-",
            ratio(v, mbs(P.cold), x["pass"], P.cold["pass"]) if P.cold else "-"))
w("")
for P in PARTS:
    st = steady(P.tag)
    if st and not bad(P.load["pass"]):
        w("Over the link during the load, %s (from its counter every 0.5 s): %s MB/s between the moments 10%% and "
          "90%% of its bytes had crossed (start and end left out).  MB/s each second: %s." % (
              wlabel(P), fmt_mb(st / 1e6), profile(P.tag)))
        w("")


def split_table(names):
    """Each cluster worker's share of the passes NAMES (workers.tsv)."""
    ws = sorted(set(r["worker"] for r in perw if r["pass"] in names))
    if not ws:
        return
    w("| pass | %s |" % " | ".join("%s: from the remote (load bytes), pages" % x for x in ws))
    w("|---|%s" % ("---:|" * len(ws)))
    for nm in names:
        rs = {r["worker"]: r for r in perw if r["pass"] == nm}
        if not rs:
            continue
        w("| %s | %s |" % (nm, " | ".join(
            "%s (%s), %s" % ("{:,}".format(int(rs[x]["ufs_bytes"])), "{:,}".format(int(rs[x]["load_bytes"])),
                             int(rs[x]["pages_after"]) - int(rs[x]["pages_before"])) if x in rs else "-" for x in ws)))
    w("")


if P3.present() and perw:
    w("How the cluster's passes split over its workers (each worker's `ferry_ufs_read_bytes_total` and "
      "`ferry_load_bytes_total` during the pass, and the pages it gained): placement gives each worker whole "
      "blocks of %s, so with few blocks the shares are uneven, and a load ends when the busiest worker's part "
      "does." % ("{:,} bytes".format(BLOCK) if BLOCK else "the block size"))
    w("")
    split_table([x["pass"] for x in (P3.load, P3.bw, P3.cold) if x])

# --- after the load -------------------------------------------------------------------
w("## Reading after the load")
w("")
w("The cold-read reader again, on the worker the load filled (*after-load*: worker b), and on the worker that "
  "had read the dataset itself in the cold pass (*warm*: worker a); both workers up, their passes in turn (a, b, "
  "a, b, ...), each after drop_caches, so both read their cache's disk under the same background.  Both must "
  "fetch nothing: ferry's `ferry_ufs_read_bytes_total` "
  "exactly 0, the link no more than %s bytes (HEADs and a listing)." % "{:,}".format(int(P1.after["slack"]) if P1.after else 0))
if P3.present():
    w("")
    w("*3 workers*: right after the cluster's load, the reader through c1's gateway (blocks c2 and c3 hold come "
      "through c1 from them): *after-load 3w*, the first pass after the load; then *warm 3w*, %d more passes on "
      "the same cluster.  The same checks, on the three workers' counters summed." % len(P3.warms))
w("")
w("| pass | workers | seconds | MB/s | bytes from the remote (ferry) | link bytes | / warm (median, same workers) |")
w("|---|---:|---:|---:|---:|---:|---:|")
for P in PARTS:
    for x in P.warms + P.afters:
        w("| %s%s | %s | %s | %s | %s | %s | %s |" % (
            x["pass"], " (median)" if (x is P.warm or x is P.after) and P.n == 1 else "", P.n, x["seconds"],
            fmt_mb(mbs(x)), "{:,}".format(int(x["ufs_bytes"])), "{:,}".format(int(x["link_bytes"])),
            ratio(mbs(x), mbs(P.warm), x["pass"], *P.WN) if P.warm else "-"))
w("")
if P1.warm and P1.after and not bad(*P1.AN, *P1.WN):
    pr = [mbs(b) / mbs(a) for a, b in zip(P1.warms, P1.afters)]
    w("1 worker, after-load / warm: the medians' ratio **%.2f**; pass by pass (each after-load pass over the warm "
      "pass just before it): %s, median %.2f.  A pass takes a few seconds at most here, so single passes move with "
      "whatever else the machine does." % (mbs(P1.after) / mbs(P1.warm), ", ".join("%.2f" % x for x in pr),
                                          sorted(pr)[(len(pr) - 1) // 2]))
    w("")
if P3.present() and P3.r_after() is not None:
    ws = sorted(mbs(x) for x in P3.warms)
    w("3 workers, the first pass after the load / the warm passes' median: **%.2f** (the warm passes ranged "
      "%s-%s MB/s: one pass after the load is one sample)." % (P3.r_after(), fmt_mb(ws[0]), fmt_mb(ws[-1])))
    w("")

# --- the cap --------------------------------------------------------------------------
for P in PARTS:
    bw, cap, load = P.bw, P.cap, P.load
    if not bw:
        continue
    w("## `--bandwidth`, %s" % wlabel(P))
    w("")
    fj = os.path.join(run, "free.json" if P.n == 1 else "free-3w.json")
    fr = open(fj).read().strip().replace("\n", " ") if os.path.exists(fj) else "?"
    if P.n == 1:
        w("After the read above, `ferry free /ld --force` (%s), the cache checked empty (`ferry_cache_pages` 0 and "
          "`ferry du /ld` 0 bytes cached: the pass's *empty* checks), then `ferry load /ld --bandwidth %s`: about "
          "%s of the link's rate above, in whole MiB/s (ferry reads `MB` in `--bandwidth` as 2^20 bytes); the cap "
          "in bytes/s is what was asked: **%s** (%s MB/s).  The achieved rate is the bytes fetched over "
          "the time, each way it can be counted:" % (
              fr, lw("bw_arg"), lw("bw_fraction"), "{:,}".format(cap), fmt_mb(cap / 1e6)))
    else:
        w("On the cluster, after its reads above: `ferry free /ld --force` through the CLI, which asks every member "
          "(%s), the cluster checked empty (`ferry_cache_pages` 0 on every worker, `ferry du /ld` 0 bytes cached "
          "summed over them), then `ferry load /ld --bandwidth %s` through the CLI: the job's cap is shared, each "
          "worker's part at an equal share of it among the parts still running (a part that ends leaves its share "
          "to the others); the cap is what was asked: **%s** bytes/s (%s MB/s).  The achieved rate, the three workers' bytes fetched over the time, each way it can "
          "be counted:" % (fr, lw("bw_arg"), "{:,}".format(cap), fmt_mb(cap / 1e6)))
    w("")
    w("| bytes | over | bytes | seconds | MB/s | / cap |")
    w("|---|---|---:|---:|---:|---:|")
    ok = not bad(bw["pass"])
    sm = "" if P.n == 1 else ", summed over the workers"
    figs = [("ferry_load_bytes_total" + sm, "the command's time", int(bw["load_bytes"]), secs(bw)),
            ("ferry_ufs_read_bytes_total" + sm, "the command's time", int(bw["ufs_bytes"]), secs(bw)),
            ("the link's received bytes (headers included)", "the command's time", int(bw["link_bytes"]), secs(bw))]
    if bw["job_elapsed_s"]:
        figs.append(("the job's bytes_fetched" + ("" if P.n == 1 else " (every part's)"),
                     "the job's elapsed_s" + ("" if P.n == 1 else " (the longest part's)"),
                     int(bw["job_bytes_fetched"]), float(bw["job_elapsed_s"])))
    for what, over, b, s in figs:
        w("| %s | %s | %s | %s | %s | %s |" % (what, over, "{:,}".format(b), "%.2f" % s, fmt_mb(b / s / 1e6),
                                            "%.3f" % (b / s / cap) if ok and cap else "not reported"))
    st = steady(P.bwtag)
    if st and ok and cap:
        w("| the link's received bytes, 10%% -> 90%% of the pass | the time between | - | - | %s | %.3f |" % (
            fmt_mb(st / 1e6), st / cap))
    for span in (1.0, 5.0):
        m = window_max(P.bwtag, span)
        if m and ok and cap:
            w("| the link's received bytes, the busiest %.0f s | %.0f s | - | - | %s | %.3f |" % (
                span, span, fmt_mb(m / 1e6), m / cap))
    w("")
    if ok and cap:
        rl, rk = P.r_cap()
        w("Target: achieved / cap within 0.9-1.1 by ferry_load_bytes_total (%.3f) and by the link (%.3f): %s.  "
          "Without the cap the same load ran at %s MB/s (%.2fx the capped rate)." % (
              rl, rk, target(0.9 <= rl <= 1.1 and 0.9 <= rk <= 1.1), fmt_mb(mbs(load)) if load else "-",
              mbs(load) * 1e6 / (DATA / secs(bw)) if load else 0))
        w("")
    if P.n > 1 and perw:
        rs = [r for r in perw if r["pass"] == bw["pass"]]
        if rs and ok and cap:
            share = cap / len(rs)
            mx = max(int(r["load_bytes"]) for r in rs)
            w("Each part loads at its third of the cap (%s MB/s) whatever its share of the bytes: the parts' "
              "bytes were %s, so the busiest part alone needed %.1f s at its rate, and the others were done "
              "before it.  Achieved / cap with such a split is at most mean share / largest share = %.2f." % (
                  fmt_mb(share / 1e6), ", ".join("{:,}".format(int(r["load_bytes"])) for r in rs), mx / share,
                  (sum(int(r["load_bytes"]) for r in rs) / len(rs)) / mx if mx else 0))
            w("")
    if bw.get("readahead_bytes"):
        w("Of the bytes the capped load fetched, %s (%.0f%%) were fetched by the workers' read-ahead "
          "(`ferry_readahead_bytes_total`: pages beyond what the loader's reads asked for, fetched as the reads "
          "are sequential), %s without the cap." % (
              "{:,}".format(int(bw["readahead_bytes"])), 100.0 * int(bw["readahead_bytes"]) / max(1, int(bw["ufs_bytes"])),
              "{:,}".format(int(load["readahead_bytes"])) if load and load.get("readahead_bytes") else "?"))
        w("")
    p = profile(P.bwtag)
    if p:
        w("MB/s over the link each second of the capped load: %s." % p)
        w("")

# --- what ferry load printed ------------------------------------------------------------
for P in PARTS:
    for tag, title in ((P.tag, "ferry load /ld"), (P.bwtag, "ferry load /ld --bandwidth %s" % lw("bw_arg"))):
        f = os.path.join(run, "load-%s.out" % tag)
        if os.path.exists(f):
            w("`%s`, %s, printed (not on a terminal: a line every 10 s, and the last):" % (title, wlabel(P)))
            w("")
            w("```")
            w(open(f).read().rstrip())
            w("```")
            w("")
            s = os.path.join(run, "status-%s.json" % tag)
            if os.path.exists(s):
                w("and `ferry load --status --json` after it%s: `%s`" % (
                    "" if P.n == 1 else " (asked of each worker: `{\"workers\": [its answers]}`)", open(s).read().strip()))
                w("")

# --- every pass and check -------------------------------------------------------------------
w("## All passes")
w("")
w("Each pass's precondition (bench/precond.sh), checked as it ran and again here: *direct* (no cache) had "
  "every byte cross the link; *cold* (the cold reads and the loads) began with an empty cache (*empty*: "
  "`ferry_cache_pages` 0, `ferry du` 0 bytes cached, a fresh worker's (cluster's) under-store counter 0) and "
  "fetched the dataset from the remote (ferry's `ferry_ufs_read_bytes_total`, the link; a load also "
  "`ferry_load_bytes_total`), and a load left the dataset's pages cached (*cached*); *warm* fetched nothing.  "
  "The cluster's passes: its three workers' counters summed.  "
  "Link bytes: what the compute side received over the link during the pass, TCP/IP headers included.")
w("")
w("| pass | workers | tool | files | bytes | seconds | MB/s | ferry from the remote | of which read-ahead | ferry load bytes | link bytes | cache pages before -> after | role | check |")
w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
for x in rows:
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s -> %s | %s | %s |" % (
        x["pass"], x.get("workers") or ("-" if x["tool"] == "curl8" else "1"),
        x["tool"], x["files"], "{:,}".format(int(x["bytes"])), x["seconds"], fmt_mb(mbs(x)),
        "{:,}".format(int(x["ufs_bytes"])) if x["tool"] != "curl8" else "-",
        "{:,}".format(int(x.get("readahead_bytes") or 0)) if x["tool"] != "curl8" else "-",
        "{:,}".format(int(x["load_bytes"])) if x["tool"] != "curl8" else "-",
        "{:,}".format(int(x["link_bytes"])), x["pages_before"], x["pages_after"], x["role"],
        "ok" if not broken.get(x["pass"]) else "**VIOLATED**: " + "; ".join(broken[x["pass"]])))
w("")
w("Every check (precond.tsv):")
w("")
w("| pass | role | want | got | slack | counter | verdict |")
w("|---|---|---:|---:|---:|---|---|")
for c in pre:
    w("| %s | %s | %s | %s | %s | %s | %s |" % (c["pass"], c["role"], "{:,}".format(int(c["want"])),
                                            "{:,}".format(int(c["got"])), "{:,}".format(int(c["slack"])),
                                            c["counter"], c["verdict"] if c["verdict"] == "ok" else "**VIOLATED**"))
w("")
if os.path.exists(os.path.join(run, "wanlink-stats.txt")):
    w("wanlink's counters at the end (a>b is remote -> compute); its CPU time over the run: %s." % lw("wanlink_cpu"))
    w("")
    w("```")
    w(open(os.path.join(run, "wanlink-stats.txt")).read().rstrip())
    w("```")
    w("")
for fn, title in (("ferry-log.txt", "The single worker b's last warnings and errors (its log, not info lines):"),
                  ("ferry-log-3w.txt", "The cluster's workers' last warnings and errors (their logs, not info lines; "
                                       "10 at most each):")):
    lg = os.path.join(run, fn)
    if os.path.exists(lg) and open(lg).read().strip():
        w(title)
        w("")
        w("```")
        w(open(lg).read().rstrip())
        w("```")
        w("")

w("## Machine and versions")
w("")
for k in ["host_cpu", "host_nproc", "host_mem", "host_kernel", "host_disk", "ferry_rev", "ferry_version", "ferry_binary",
          "boto3_version", "curl_version", "node_version", "s3rver_version", "etcd_version", "link", "loadavg_start",
          "loadavg_end"]:
    w("- %s: %s" % (k, env.get(k, "")))
if env.get("load_args") or env.get("ferry_args"):
    w("- LD_LOAD_ARGS: `%s`; LD_FERRY_ARGS: `%s`" % (env.get("load_args", ""), env.get("ferry_args", "")))
w("- total run time: %s s" % env.get("total_seconds", "?"))
w("")
w("## Commands")
w("")
w("```")
w(open(os.path.join(run, "commands.txt")).read().strip())
w("```")
w("")
w("## Caveats")
w("")
if P3.present():
    w("- The cluster's three workers run on the same machine as everything else, each in its own network "
      "namespace behind a bridge of the compute namespace: the link is the one shared bottleneck, as in a real "
      "cross-region setup, but they share the machine's %s cores and disk, so their own work (forwarding blocks "
      "between them, checksums) competes with s3rver, the link emulator and the reader." % lw("host_nproc"))
    w("- The cluster's after-load figure is one pass (the first after the load), its warm figure the median of "
      "the passes that followed on the same cluster: unlike the single workers', they do not alternate with "
      "another worker's.")
    w("- The cluster's cold read ran after its loads, on the same workers once `ferry free` had emptied their "
      "caches, not on fresh workers: their metadata caches may have answered its HEADs.")
else:
    w("- One worker.  The 3-worker variant (a cluster in which each worker loads the blocks placement gives it) "
      "is not in this run.")
w("- One machine with %s cores plays both regions: s3rver (node.js, one process), the link emulator, the workers "
  "and the readers share them, and other work may run at the same time (load average at the start and end "
  "above); compare the ratios measured in the same run rather than absolute figures across runs." % lw("host_nproc"))
w("- The link's limit is measured with the same bytes and the same remote store (curl, 8 ranged GETs in flight), "
  "so s3rver's own speed is in it, as it is in the load; iperf3 (no s3rver) is given beside it.")
w("- The command's time includes the listing, the CLI's start and its 0.5 s polling of the job; the job's "
  "`elapsed_s` does not include the polling.")
w("- The link's counter includes TCP/IP headers (about 3-4%% over the payload at a 1500-byte MTU) and the "
  "requests' HTTP headers, so rates from it read a little above ferry's.")
w("- Raw data: `bench/work/runs/%s/`." % os.path.basename(os.path.normpath(run)))

print("\n".join(out))
if broken:
    print("loadreport: preconditions violated, so those passes have no ratio in the report: " + "; ".join(
        "%s: %s" % (k, "; ".join(v)) for k, v in sorted(broken.items())), file=sys.stderr)
    sys.exit(1)
