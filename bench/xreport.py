#!/usr/bin/python3
"""Turns one run of bench/xregion.sh into its Markdown report and chart.

usage: xreport.py RUNDIR [CHART.png]

Reads RUNDIR/meta.env, results.tsv, commands.txt, nginx.conf and, when
present, precond.tsv, perf-top.txt, perf-dso.txt, wanlink-stats.txt; prints
the report to stdout and, given CHART.png, draws MB/s per pass with gnuplot
(skipped, with a note in the report, when gnuplot is missing).  Measures
nothing.

Every pass is checked again here against its precondition (bench/precond.sh:
a cold pass fetched from the remote at least what it read, a warm pass
fetched nothing), from the counters recorded with it; a pass that fails its
check gets no ratio anywhere in the report, and the script exits 1.
"""
import csv
import os
import shutil
import statistics
import subprocess
import sys

run = sys.argv[1]
chart = sys.argv[2] if len(sys.argv) > 2 else ""
env = {}
for line in open(os.path.join(run, "meta.env")):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        env[k] = v
rows = list(csv.DictReader(open(os.path.join(run, "results.tsv")), delimiter="\t"))
out = []
w = out.append


def key(x):
    return (x["part"], x["system"], x["reader"], x["pass"])


def check(x):
    """The problems of one pass with its precondition, from its own row (runs
    before precond.tsv existed: ferry's bytes, pass 1 cold, later passes warm)."""
    probs = []
    role = x.get("role") or ""
    ferry = x["system"].startswith("ferry")
    if not role and ferry:
        role = "cold" if x["pass"] == "1" else "warm"
    need = int(x.get("need") or 0) or (int(x["bytes"]) if x["reader"] != "duck-two" else 0)
    ufs = int(x["ufs_bytes"])
    if ferry and role == "cold" and ufs < need:
        probs.append("cold, but ferry fetched %s of the %s bytes it read from the remote" % (
            "{:,}".format(ufs), "{:,}".format(need)))
    if ferry and role == "warm" and ufs != 0:
        probs.append("warm, but ferry fetched %s bytes from the remote" % "{:,}".format(ufs))
    if x.get("link_bytes"):
        link, slack = int(x["link_bytes"]), int(x.get("slack") or 0)
        if role in ("cold", "direct") and link < need:
            probs.append("%s, but only %s bytes crossed the link for %s read" % (
                role, "{:,}".format(link), "{:,}".format(need)))
        if role == "warm" and link > slack:
            probs.append("warm, but %s bytes crossed the link (allowed %s for metadata)" % (
                "{:,}".format(link), "{:,}".format(slack)))
        if role == "none" and link > 1 << 20:
            probs.append("%s bytes crossed the link during a pass that does not use it" % "{:,}".format(link))
    return probs


broken = {key(x): check(x) for x in rows}
# This run's own checks (bench/precond.sh), those before a pass included.
pc = os.path.join(run, "precond.tsv")
if os.path.exists(pc):
    for c in csv.DictReader(open(pc), delimiter="\t"):
        f = c["pass"].split()
        if c["verdict"] != "ok" and len(f) == 4:
            broken.setdefault(tuple(f), []).append("%s check on %s: got %s, want %s, slack %s" % (
                c["role"], c["counter"], c["got"], c["want"], c["slack"]))
broken = {k: v for k, v in broken.items() if v}


def bad(*xs):
    return [p for x in xs for p in broken.get(key(x), [])]

NAMES = {
    "direct-s3": "direct (boto3 -> remote S3)",
    "ferry-s3": "ferry (S3 gateway)",
    "nginx-cache": "nginx proxy_cache",
    "nginx-local": "nginx, local disk, loopback",
    "direct-s3fs": "direct (s3fs, no cache)",
    "ferry-fuse": "ferry (FUSE)",
    "s3fs-cache": "s3fs use_cache",
    "rclone": "rclone vfs-cache full",
    "local": "local disk",
}
READERS = {
    "s3": "boto3 get_object, every byte",
    "fs": "open/read, every byte",
    "duck-all": "DuckDB read_parquet, all columns",
    "duck-two": "DuckDB read_parquet, 2 columns (x, k)",
    "curl8": "curl, every 1 MiB range, 8 at a time",
}


def sel(part, system, reader):
    r = [x for x in rows if x["part"] == part and x["system"] == system and x["reader"] == reader]
    return sorted(r, key=lambda x: int(x["pass"]))


def secs(x):
    return float(x["seconds"])


def mbs(x):
    return int(x["bytes"]) / float(x["seconds"]) / 1e6


def fmt_s(v):
    return "{:,.1f} s".format(v) if v >= 10 else "{:,.2f} s".format(v)


def fmt_mb(v):
    return "{:,.0f}".format(v) if v >= 10 else "{:,.1f}".format(v)


def warm_mean(r):
    """Mean MB/s of the warm passes (pass 2 and later)."""
    ws = [mbs(x) for x in r[1:]]
    return statistics.mean(ws) if ws else 0


def seed_table(part, reader, direct, ferry, dname, fname):
    """The seed's form: run, direct, ferry, speedup; the average of all runs."""
    d, f = sel(part, direct, reader), sel(part, ferry, reader)
    if not d or not f:
        return None
    w("| Run | %s | %s | Speedup |" % (dname, fname))
    w("|---|---:|---:|---:|")
    sp = []
    for a, b in zip(d, f):
        label = "%s — %s" % (a["pass"], "cold cache" if a["pass"] == "1" else "warm cache")
        s = None if bad(a, b) else secs(a) / secs(b)
        sp.append(s)
        w("| %s | %s (%s MB/s) | %s (%s MB/s) | %s |" % (label, fmt_s(secs(a)), fmt_mb(mbs(a)),
                                                   fmt_s(secs(b)), fmt_mb(mbs(b)),
                                                   "%.2fx" % s if s is not None else "not reported"))
    ufs = [int(x["ufs_bytes"]) for x in f]
    if bad(*d, *f):
        w("")
        w("**Not reported: %s.**  No speedup is given for a pass that did not measure what "
          "it claims.  Bytes ferry fetched from the remote in each run: %s." % (
              "; ".join(bad(*d, *f)), ", ".join("{:,}".format(u) for u in ufs)))
        w("")
        return None
    da, fa = statistics.mean(map(secs, d)), statistics.mean(map(secs, f))
    w("| Average (all runs) | %s | %s | %.2fx overall |" % (fmt_s(da), fmt_s(fa), da / fa))
    warm = statistics.mean(sp[1:]) if len(sp) > 1 else 0
    w("")
    w("Cold speedup **%.2fx**, warm cache speedup **%.2fx** (mean of the warm runs).  "
      "Bytes ferry fetched from the remote in each run: %s (cold: the whole dataset; warm: none, "
      "as every pass's check requires)." % (
          sp[0], warm, ", ".join("{:,.0f} MB".format(u / 1e6) for u in ufs)))
    w("")
    return sp[0], warm


lw = lambda k: env.get(k, "?")
w("# ferry cross-region benchmark (%s)" % env["mode"])
w("")
w("Generated by `bench/xregion.sh %s` on %s.  A \"remote region\" (network namespace `%s`, "
  "s3rver) and a \"compute region\" (namespace `%s`: ferry, the other caches and the readers) "
  "joined by `bench/wanlink` (a userspace WAN emulator: %s ms one way, %s bit/s each way, a "
  "bounded tail-drop queue; the compute side's TCP receive buffer capped at %s bytes, so one "
  "stream cannot fill the line).  Data: %d Parquet files, %s bytes in all (DuckDB, random values), "
  "and %s small files of %s KiB.  Every pass starts after `sync; echo 3 > /proc/sys/vm/drop_caches` "
  "(a dataset larger than memory: warm passes read each cache's disk).  Passes: %s for the headline "
  "tables (DuckDB over FUSE, boto3 over S3) and the peers, %s for full reads over FUSE, 2-column scans and "
  "small files (over FUSE: the first %s small files)." % (
      env["mode"], env["date_utc"], "ferry-xr-remote", "ferry-xr-compute", lw("wan_delay_ms"),
      lw("wan_rate"), lw("wan_rmem"), int(env["n_large"]), "{:,}".format(int(env["large_bytes"])),
      "{:,}".format(int(env["n_small"])), int(env["small_bytes"]) // int(env["n_small"]) // 1024,
      env["passes"], env["passes2"], "{:,}".format(int(env["n_small_fuse"]))))
w("")
w("The link as measured before each part (ping 10 x; iperf3 remote -> compute, 4 s after 1 s omitted):")
w("")
w("| before | RTT min / avg / max ms | iperf3 1 stream Mbit/s | 8 streams Mbit/s |")
w("|---|---|---:|---:|")
for p in ("s3", "fuse", "peers"):
    if "link_%s_rtt_ms_avg" % p in env:
        w("| %s | %s / %s / %s | %s | %s |" % (p, lw("link_%s_rtt_ms_min" % p), lw("link_%s_rtt_ms_avg" % p),
                                         lw("link_%s_rtt_ms_max" % p), lw("link_%s_iperf_1stream_mbit" % p),
                                         lw("link_%s_iperf_8stream_mbit" % p)))
w("")
w("## Headline")
w("")
heads = []
for part, rd, a, b, an, bn, title in [
        ("large", "duck-all", "direct-s3fs", "ferry-fuse", "Direct (s3fs)", "ferry (FUSE)",
         "FUSE, DuckDB `read_parquet` of all columns (the stand-in for Ray Data's `read_parquet`)"),
        ("large", "s3", "direct-s3", "ferry-s3", "Direct (boto3)", "ferry (S3 API)",
         "S3 API, boto3 reading every byte")]:
    d, f = sel(part, a, rd), sel(part, b, rd)
    if d and f and bad(*d, *f):
        heads.append("- %s: **not reported**: %s." % (title, "; ".join(bad(*d, *f))))
        continue
    if d and f and rd == "s3" and sel("large", "direct-s3", "curl8"):
        ref = sel("large", "direct-s3", "curl8")[0]
        heads.append("- The link with 8 parallel 1 MiB ranged GETs and no cache (curl): %s MB/s; one boto3 stream: "
                     "%s MB/s; ferry's cold pass: %s MB/s." % (fmt_mb(mbs(ref)), fmt_mb(mbs(d[0])), fmt_mb(mbs(f[0]))))
    if d and f:
        c = secs(d[0]) / secs(f[0])
        wm = statistics.mean(secs(x) / secs(y) for x, y in zip(d[1:], f[1:])) if len(d) > 1 else 0
        heads.append("- %s: cold **%.2fx**, warm **%.2fx** (%s -> %s per pass cold, %s warm)." % (
            title, c, wm, fmt_s(secs(d[0])), fmt_s(secs(f[0])),
            fmt_s(statistics.mean(map(secs, f[1:]))) if len(f) > 1 else "-"))
lim = {}
for rd, sysn in (("fs", "local"), ("duck-all", "local"), ("s3", "nginx-local")):
    r = sel("large", sysn, rd)
    if r:
        lim[rd] = mbs(r[0])
for rd, sysn, ln in (("fs", "ferry-fuse", "local disk (open/read)"), ("duck-all", "ferry-fuse", "DuckDB on the local files"),
                     ("s3", "ferry-s3", "nginx serving the local files")):
    r = sel("large", sysn, rd)
    if r and bad(*r):
        continue
    if r and rd in lim and len(r) > 1:
        heads.append("- ferry warm, %s: %s MB/s = **%.2f** of the limit on this machine (%s: %s MB/s)." % (
            READERS[rd], fmt_mb(warm_mean(r)), warm_mean(r) / lim[rd], ln, fmt_mb(lim[rd])))
for h in heads:
    w(h)
w("")
if chart:
    w("![MB/s per pass](%s)" % os.path.basename(chart))
    w("")

w("## Cross-region: FUSE")
w("")
for rd in ("duck-all", "fs", "duck-two"):
    if sel("large", "direct-s3fs", rd):
        w("### %s" % READERS[rd])
        w("")
        seed_table("large", rd, "direct-s3fs", "ferry-fuse", "Direct (s3fs, no cache)", "ferry (FUSE)")
if sel("smallfuse", "direct-s3fs", "fs"):
    w("### small files: the first %s, listed then read whole (open/read), %s threads" % (
        "{:,}".format(int(env["n_small_fuse"])), env["small_threads"]))
    w("")
    seed_table("smallfuse", "fs", "direct-s3fs", "ferry-fuse", "Direct (s3fs, no cache)", "ferry (FUSE)")
w("MB/s for the DuckDB scans is the dataset's size over the time (a 2-column scan reads only those "
  "columns' chunks, about a fifth of the bytes).")
w("")
w("## Cross-region: S3 API")
w("")
w("### %s, %s reader" % (READERS["s3"], env["large_threads"]))
w("")
ref = sel("large", "direct-s3", "curl8")
if ref:
    w("Reference, no cache: the remote read with ferry's default request pattern but without ferry "
      "(curl, every 1 MiB range, 8 in flight, `--parallel-max 8`): %s, %s MB/s: what the link and "
      "s3rver give 8 streams in this run." % (fmt_s(secs(ref[0])), fmt_mb(mbs(ref[0]))))
    w("")
seed_table("large", "s3", "direct-s3", "ferry-s3", "Direct (boto3)", "ferry (S3 API)")
if sel("small", "direct-s3", "s3"):
    w("### small files: boto3 get_object of every file, %s threads" % env["small_threads"])
    w("")
    seed_table("small", "s3", "direct-s3", "ferry-s3", "Direct (boto3)", "ferry (S3 API)")

w("## Peers on the same link and data")
w("")
w("Seconds per pass, each from an empty cache (pass 1 is cold); the ratio is the peer's time over ferry's "
  "on the same access path and reader (above 1: ferry faster).")
w("")
w("| path | system | reader | seconds per pass | warm MB/s | time / ferry's, cold | warm |")
w("|---|---|---|---|---:|---:|---:|")
peer_rows = [("S3", "nginx-cache", "s3", "large", "ferry-s3"), ("S3", "nginx-cache", "s3", "small", "ferry-s3"),
             ("FUSE", "s3fs-cache", "fs", "large", "ferry-fuse"), ("FUSE", "rclone", "fs", "large", "ferry-fuse"),
             ("FUSE", "direct-s3fs", "fs", "large", "ferry-fuse"), ("S3", "direct-s3", "s3", "large", "ferry-s3")]
for path, s, rd, part, fs_ in peer_rows:
    r, f = sel(part, s, rd), sel(part, fs_, rd)
    if not r or not f:
        continue
    if bad(*r, *f):
        w("| %s | %s | %s%s | %s | - | not reported | not reported |" % (
            path, NAMES[s], READERS[rd], " (small files)" if part.startswith("small") else "",
            ", ".join(fmt_s(secs(x)) for x in r)))
        continue
    fw = statistics.mean(map(secs, f[1:])) if len(f) > 1 else 0
    pw = statistics.mean(map(secs, r[1:])) if len(r) > 1 else 0
    w("| %s | %s | %s%s | %s | %s | %.2f | %s |" % (
        path, NAMES[s], READERS[rd], " (small files)" if part.startswith("small") else "",
        ", ".join(fmt_s(secs(x)) for x in r), fmt_mb(warm_mean(r)), secs(r[0]) / secs(f[0]),
        "%.2f" % (pw / fw) if fw else "-"))
w("")

w("## Limits on this machine (same run)")
w("")
w("The same bytes without the link or a cache: the local files read directly, and served by nginx "
  "from the local disk over loopback (the S3 reader against nginx's URL for the same keys); one pass "
  "each, after drop_caches.  ferry's warm MB/s (mean of its warm passes) as a fraction of it.")
w("")
w("| reader | data | limit | limit MB/s | ferry warm MB/s | ferry / limit |")
w("|---|---|---|---:|---:|---:|")
for rd, part, ls_, fs_ in (("fs", "large", "local", "ferry-fuse"), ("duck-all", "large", "local", "ferry-fuse"),
                           ("duck-two", "large", "local", "ferry-fuse"), ("s3", "large", "nginx-local", "ferry-s3"),
                           ("fs", "smallfuse", "local", "ferry-fuse"), ("s3", "small", "nginx-local", "ferry-s3")):
    l_, f = sel(part, ls_, rd), sel(part, fs_, rd)
    if not l_ or len(f) < 2 or bad(*l_, *f):
        continue
    w("| %s | %s | %s | %s | %s | %.2f |" % (READERS[rd], part, NAMES[ls_], fmt_mb(mbs(l_[0])), fmt_mb(warm_mean(f)),
                                           warm_mean(f) / mbs(l_[0])))
w("")

if os.path.exists(os.path.join(run, "perf-dso.txt")):
    w("## Where ferry's time goes (perf)")
    w("")
    w("`perf record -a -g -F 999` during one more warm full read through the FUSE mount (%s s; not in the "
      "tables), reported for the three processes of the read (%s; kernel work done on their behalf is in "
      "their samples): the number of samples of each (999 per second per busy CPU), then each one's top symbols (percentages of "
      "that process's samples); last, the whole machine by command during the read (other work on the "
      "machine included; `swapper` is idle time)." % (lw("perf_read_seconds"), lw("perf_pids")))
    w("")
    w("```")
    w(open(os.path.join(run, "perf-dso.txt")).read().rstrip())
    for who, title in (("reader", "the reader (python3)"), ("worker", "ferry's worker"), ("fuse", "ferry fuse")):
        f = os.path.join(run, "perf-%s.txt" % who)
        if os.path.exists(f):
            w("")
            w("# %s" % title)
            w(open(f).read().rstrip())
    if os.path.exists(os.path.join(run, "perf-all.txt")):
        w("")
        w("# the whole machine, by command")
        w(open(os.path.join(run, "perf-all.txt")).read().rstrip())
    w("```")
    w("")

w("## All passes")
w("")
w("Each pass's precondition (bench/precond.sh), checked as it ran and again here: *cold* (the first pass "
  "of a cache that started empty) fetched at least what it read, *warm* fetched nothing (ferry's own count: "
  "0 bytes; the link: no more than an allowance for metadata requests), *direct* (no cache) had every byte "
  "cross the link, *none* (local) had nothing cross it.  Link bytes: what the compute side received over "
  "the link during the pass, TCP/IP headers included.")
w("")
w("| part | system | reader | pass | files | bytes | seconds | MB/s | ferry's bytes from the remote | link bytes | role | check |")
w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
for x in rows:
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        x["part"], NAMES[x["system"]], x["reader"], x["pass"], x["files"], "{:,}".format(int(x["bytes"])),
        x["seconds"], fmt_mb(mbs(x)),
        "{:,}".format(int(x["ufs_bytes"])) if x["system"].startswith("ferry") else "",
        "{:,}".format(int(x["link_bytes"])) if x.get("link_bytes") else "",
        x.get("role", ""), "ok" if not broken.get(key(x)) else "**VIOLATED**: " + "; ".join(broken[key(x)])))
w("")
if os.path.exists(os.path.join(run, "wanlink-stats.txt")):
    w("wanlink's counters at the end (a>b is remote -> compute); its CPU time over the run: %s." % lw("wanlink_cpu"))
    w("")
    w("```")
    w(open(os.path.join(run, "wanlink-stats.txt")).read().rstrip())
    w("```")
    w("")

w("## Machine and versions")
w("")
for k in ["host_cpu", "host_nproc", "host_mem", "host_kernel", "host_disk", "ferry_rev", "ferry_version",
          "s3fs_version", "rclone_version", "nginx_version", "duckdb_version", "boto3_version", "node_version",
          "s3rver_version", "link"]:
    w("- %s: %s" % (k, env.get(k, "")))
w("- total run time: %s s" % env.get("total_seconds", "?"))
w("")
w("## Commands")
w("")
w("```")
w(open(os.path.join(run, "commands.txt")).read().strip())
w("```")
w("")
if os.path.exists(os.path.join(run, "nginx.conf")):
    w("nginx's config (proxy_cache on :8480, the local files on :8481):")
    w("")
    w("```nginx")
    w(open(os.path.join(run, "nginx.conf")).read().strip())
    w("```")
    w("")
w("## Caveats")
w("")
w("- One machine with %s cores plays both regions: the remote s3rver, the link emulator, the caches and "
  "the readers share them, and other work may run at the same time; compare the ratios measured in "
  "the same run, not absolute figures across runs." % env["host_nproc"])
w("- The large-file readers are one process reading one file at a time (one stream, as `cat` or a "
  "single data-loader worker would); DuckDB uses its 2 threads.  A client that opens many streams itself "
  "gets more from the direct path (see iperf3's 8 streams above); ferry opens them for any client.")
w("- s3rver is the remote store: its own speed (node.js, one process) is part of every cold figure.")
w("- Raw data: `bench/work/runs/%s/`." % os.path.basename(run))

# --- chart ---------------------------------------------------------------------------
if chart:
    groups = [("large", "direct-s3", "s3", "direct S3"), ("large", "ferry-s3", "s3", "ferry S3"),
              ("large", "nginx-cache", "s3", "nginx cache"), ("large", "direct-s3fs", "duck-all", "s3fs DuckDB"),
              ("large", "ferry-fuse", "duck-all", "ferry DuckDB"), ("large", "direct-s3fs", "fs", "s3fs read"),
              ("large", "ferry-fuse", "fs", "ferry read"), ("large", "s3fs-cache", "fs", "s3fs-cache read"),
              ("large", "rclone", "fs", "rclone read")]
    n = int(env["passes"])
    dat = os.path.join(run, "chart.dat")
    with open(dat, "w") as f:
        f.write("system " + " ".join('"pass %d%s"' % (i + 1, " (cold)" if i == 0 else " (warm)") for i in range(n)) + "\n")
        for part, s, rd, label in groups:
            r = sel(part, s, rd)
            if r:
                f.write('"%s" %s\n' % (label, " ".join("%.2f" % mbs(x) for x in r[:n]) + " -" * (n - len(r[:n]))))
        limits = []
        for rd, s, label in (("fs", "local", "local disk read"), ("s3", "nginx-local", "nginx local")):
            r = sel("large", s, rd)
            if r:
                limits.append((label, mbs(r[0])))
    if shutil.which("gnuplot"):
        gp = """set terminal pngcairo size 1100,560 noenhanced font ",10"
set output "%s"
set title "ferry cross-region benchmark (%s): MB/s per pass, %s bytes, %s ms one way, %s bit/s"
set datafile missing "-"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [1:*]
set ylabel "MB/s (log scale)"
set xtics rotate by -25 scale 0
set key top left
set grid ytics
%s
plot "%s" using 2:xtic(1) title columnheader(2)%s
""" % (chart, env["mode"], "{:,}".format(int(env["large_bytes"])), lw("wan_delay_ms"), lw("wan_rate"),
            "\n".join('set label "%s: %.0f MB/s" at graph 0.99, graph %.2f right' % (l, v, 0.95 - 0.05 * i)
                      for i, (l, v) in enumerate(limits)),
            dat, "".join(", '' using %d title columnheader(%d)" % (i + 2, i + 2) for i in range(1, n)))
        open(os.path.join(run, "chart.gp"), "w").write(gp)
        p = subprocess.run(["gnuplot", os.path.join(run, "chart.gp")], capture_output=True, text=True)
        if p.returncode != 0:
            print("xreport: gnuplot failed: " + p.stderr.strip(), file=sys.stderr)
    else:
        print("xreport: gnuplot is missing (scripts/install-deps.sh installs gnuplot-nox): no chart",
              file=sys.stderr)

print("\n".join(out))
if broken:
    print("xreport: preconditions violated, so those passes have no ratio in the report: " + "; ".join(
        "%s: %s" % (" ".join(k), "; ".join(v)) for k, v in sorted(broken.items())), file=sys.stderr)
    sys.exit(1)
