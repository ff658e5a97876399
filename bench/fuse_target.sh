# bench/fuse_target.sh: sourced by `bench/fuse.sh target` (after its
# preflight; uses its helpers): issue 13's FUSE targets, ferry against the
# local disk with the kernel page cache dropped before every timed pass
# (`sync; echo 3 > /proc/sys/vm/drop_caches`), ferry's own cache warm, every
# chunk checked (ferry fuse's local reads check each 32 KiB chunk they read):
#   - fio 4 KiB random reads, 1 and 8 jobs, TARGET_DUR s each;
#   - fio 1 MiB sequential reads, one pass: 1 job over every large file, and
#     8 jobs with a file each;
#   - 10,000 files of 64 KiB read whole by 8 threads (readfiles.py), files/s;
#   - `find` over a tree of 100,000 empty files (100 directories of 1,000):
#     a first run and, right after it, the second (the one the target names).
# ferry is one worker with bench/work/fuse-data mounted as file:// at /t (so
# the tree needs no upload) and `ferry fuse`; with FERRY_OLD=<binary>, a
# second `ferry fuse` of that binary over the same worker is measured in the
# same run, each of its passes right before ferry's ("before" and "after"
# side by side).  Systems take turns per case and round (TARGET_ROUNDS,
# default 2), so load from elsewhere falls on all of them alike.  Every
# timed ferry pass must fetch nothing (ferry_ufs_read_bytes_total unmoved).
# Writes bench/results/fuse-target-<stamp>.md and latest-fuse-target.md.
T_ROUNDS=${TARGET_ROUNDS:-2}
T_DUR=${TARGET_DUR:-5}
T_NL=8
T_LMIB=128
T_NDIR=100
T_NPER=1000
FD=$W/fuse-data
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/fuse-target-$STAMP
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }

section "dataset: $T_NL x $T_LMIB MiB in fuse-data/target, 10,000 x 64 KiB in fuse-data/small, $((T_NDIR * T_NPER)) empty files in fuse-data/tree"
$PY - "$FD" "$T_NL" $((T_LMIB * 1048576)) "$T_NDIR" "$T_NPER" <<'EOF'
import os, sys
fd, nl, lsize, nd, nper = sys.argv[1], *map(int, sys.argv[2:6])
def gen(path, size):
    if os.path.isfile(path) and os.path.getsize(path) == size:
        return 0
    with open(path + ".tmp", "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    os.rename(path + ".tmp", path)
    return 1
for d in ("target", "small", "tree"):
    os.makedirs(os.path.join(fd, d), exist_ok=True)
made = sum(gen(os.path.join(fd, "target", "obj-%02d.bin" % i), lsize) for i in range(nl))
made += sum(gen(os.path.join(fd, "small", "f-%05d.bin" % i), 65536) for i in range(10000))
for i in range(nd):
    d = os.path.join(fd, "tree", "d%03d" % i)
    os.makedirs(d, exist_ok=True)
    if len(os.listdir(d)) != nper:
        for j in range(nper):
            open(os.path.join(d, "f%04d" % j), "a").close()
        made += nper
print("bench-fuse: target dataset: %d files written, the rest reused" % made)
EOF
note "/usr/bin/python3 - <<gen   # os.urandom: target/obj-NN.bin ($T_NL x $T_LMIB MiB), small/f-NNNNN.bin (10,000 x 64 KiB); tree/dNNN/fNNNN empty"
n=$(find "$FD/small" -maxdepth 1 -type f | wc -l)
[ "$n" = 10000 ] || { echo "bench-fuse: $FD/small holds $n files, not 10000" >&2; exit 1; }
n=$(find "$FD/tree" | wc -l)
[ "$n" = $((T_NDIR * T_NPER + T_NDIR + 1)) ] || { echo "bench-fuse: $FD/tree holds $n entries" >&2; exit 1; }
# A file:// listing is not kept while its directory is being written.
sleep 3

{
	echo "mode=target"
	echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host_nproc=$(nproc)"
	echo "host_cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
	echo "host_mem=$(free -h | awk '/^Mem:/{print $2}')"
	echo "host_kernel=$(uname -srm)"
	echo "host_disk=$(df -hT "$W" | awk 'NR==2{print $1" "$2}')"
	echo "ferry_rev=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty')"
	echo "ferry=$FERRY"
	echo "ferry_old=${FERRY_OLD:-}"
	echo "fio_version=$(fio --version)"
	echo "fuse_version=$(fusermount3 -V 2>&1 | head -1)"
	echo "rounds=$T_ROUNDS"; echo "dur=$T_DUR"; echo "n_large=$T_NL"; echo "large_mib=$T_LMIB"
	echo "tree=$((T_NDIR * T_NPER))"
} > "$RUN/meta.env"

# --- one worker, one or two FUSE clients ---------------------------------------
PIDS=(); MOUNTS=()
MNT=$W/fuse-tmnt
section "ferry: a worker with file://bench/work/fuse-data at /t"
rm -rf "$W/fuse-tcache"; mkdir -p "$W/fuse-tcache"
cmd=("$FERRY" worker --cache-dir "$W/fuse-tcache" --cache-size 8G --s3-address 127.0.0.1:0 --control-address 127.0.0.1:0)
note "${cmd[*]#$ROOT/}"
: > "$W/logs/fuse-tworker.out"
"${cmd[@]}" >> "$W/logs/fuse-tworker.out" 2> "$W/logs/fuse-tworker.log" < /dev/null &
PIDS+=("$!")
line=""
for _ in $(seq 200); do
	line=$(head -1 "$W/logs/fuse-tworker.out" 2>/dev/null || true)
	[ -n "$line" ] && break
	sleep 0.1
done
[[ $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]] ||
	{ echo "bench-fuse: the worker did not start" >&2; tail "$W/logs/fuse-tworker.log" >&2; exit 1; }
FW_CTL=${BASH_REMATCH[2]}
note "ferry --worker CTL mount /t file://bench/work/fuse-data"
"$FERRY" --worker "$FW_CTL" mount /t "file://$FD" > "$W/logs/fuse-tmount.out" 2>&1 ||
	{ cat "$W/logs/fuse-tmount.out" >&2; exit 1; }
declare -A BIN=([ferry]=$FERRY)
SYS=(local)
[ -n "${FERRY_OLD:-}" ] && { BIN[ferry-old]=$FERRY_OLD; SYS+=(ferry-old); }
SYS+=(ferry)
declare -A DIR=([local]=$FD)
for s in "${SYS[@]}"; do
	[ "$s" = local ] && continue
	m=$MNT/$s; mkdir -p "$m"; unmount "$m"
	note "${BIN[$s]#$ROOT/} fuse $m --worker CTL --foreground &   # $s"
	"${BIN[$s]}" fuse "$m" --worker "$FW_CTL" --foreground > "$W/logs/fuse-t$s.log" 2>&1 < /dev/null &
	p=$!; PIDS+=("$p"); MOUNTS+=("$m")
	wait_mount "$m" "$p" 20 || { cat "$W/logs/fuse-t$s.log" >&2; exit 1; }
	DIR[$s]=$m/t
done
ufs() {
	curl -sf --max-time 10 "http://$FW_CTL/metrics" | awk '$1 == "ferry_ufs_read_bytes_total" {print $2; f = 1} END {if (!f) print 0}'
}
LARGE=(); for i in $(seq 0 $((T_NL - 1))); do LARGE+=("target/obj-$(printf %02d "$i").bin"); done

section "warm-up: every file read once through ferry (fills its cache), the tree listed through each mount"
note "cat DIR/target/* DIR/small/* > /dev/null; find DIR/tree > /dev/null   # through each ferry mount"
for s in "${SYS[@]}"; do
	[ "$s" = local ] && continue
	d=${DIR[$s]}
	for k in "${LARGE[@]}"; do cat "$d/$k" > /dev/null; done
	(cd "$d/small" && find . -type f -print0 | xargs -0 -P8 -n200 cat > /dev/null)
	n=$(find "$d/tree" | wc -l)
	[ "$n" = $((T_NDIR * T_NPER + T_NDIR + 1)) ] || { echo "bench-fuse: $s lists $n entries under tree" >&2; exit 1; }
	[ "$(md5sum < "$d/${LARGE[0]}" | cut -d' ' -f1)" = "$(md5sum < "$FD/${LARGE[0]}" | cut -d' ' -f1)" ] ||
		{ echo "bench-fuse: md5 mismatch through $s" >&2; exit 1; }
done
DATASET=$((T_NL * T_LMIB * 1048576 + 10000 * 65536))
precond "ferry warm-up" cold "$DATASET" "$(ufs)" 0 "ferry's ferry_ufs_read_bytes_total since it started"

cat > "$RUN/readfiles.py" <<'EOF'
# generated by bench/fuse.sh target: read every file of DIR whole with
# THREADS threads; print files, bytes, seconds.
import os, sys, time
from concurrent.futures import ThreadPoolExecutor
d, threads = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(d))
def read(name):
    n = 0
    with open(os.path.join(d, name), "rb", buffering=0) as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += len(b)
t0 = time.monotonic()
with ThreadPoolExecutor(threads) as ex:
    total = sum(ex.map(read, names, chunksize=64))
t1 = time.monotonic()
print(len(names), total, "%.6f" % (t1 - t0))
EOF

RES=$RUN/target.tsv
printf 'round\tcase\tsystem\tvalue\tunit\n' > "$RES"
fio_bw() { # fio JSON -> read bytes/s (checks it read something)
	$PY -c '
import json, sys
r = json.load(open(sys.argv[1]))["jobs"][0]["read"]
assert r["io_bytes"] > 0, "fio read nothing"
print(r["bw_bytes"])' "$1"
}
FIO_COMMON=(--readonly --ioengine=psync --direct=0 --invalidate=0 --group_reporting --output-format=json)
note "sync; echo 3 > /proc/sys/vm/drop_caches   # before every timed pass of every system"
note "fio --name=r4k --filename=DIR/target/obj-00.bin:...:obj-07.bin --rw=randread --bs=4k --numjobs={1,8} --time_based --runtime=$T_DUR ${FIO_COMMON[*]}"
note "fio --name=seq1 --filename=DIR/target/obj-00.bin:...:obj-07.bin --rw=read --bs=1m --numjobs=1 ${FIO_COMMON[*]}   # one pass, 1 GiB"
note "fio ${FIO_COMMON[*]} --rw=read --bs=1m --name=s0 --filename=DIR/target/obj-00.bin ... --name=s7 --filename=DIR/target/obj-07.bin   # 8 jobs, a file each"
note "/usr/bin/python3 readfiles.py DIR/small 8"
note "find DIR/tree > /dev/null; find DIR/tree > /dev/null   # both timed (date +%s.%N); the second is the target's"
run_case() { # case system dir: one timed pass; prints "value unit"
	local c=$1 s=$2 d=$3 files="" out=$RUN/fio-$1-$2-$round.json
	for k in "${LARGE[@]}"; do files+="${files:+:}$d/$k"; done
	case $c in
	rand4k-1 | rand4k-8)
		fio --name=r4k --filename="$files" --rw=randread --bs=4k --numjobs="${c#rand4k-}" \
			--time_based --runtime="$T_DUR" "${FIO_COMMON[@]}" > "$out" 2> "$out.err" || { cat "$out.err" >&2; exit 1; }
		echo "$(fio_bw "$out") B/s" ;;
	seq1m-1)
		fio --name=seq1 --filename="$files" --rw=read --bs=1m --numjobs=1 "${FIO_COMMON[@]}" > "$out" 2> "$out.err" ||
			{ cat "$out.err" >&2; exit 1; }
		echo "$(fio_bw "$out") B/s" ;;
	seq1m-8)
		local a=("${FIO_COMMON[@]}" --rw=read --bs=1m)
		for k in "${LARGE[@]}"; do a+=(--name="s-${k##*/}" --filename="$d/$k"); done
		fio "${a[@]}" > "$out" 2> "$out.err" || { cat "$out.err" >&2; exit 1; }
		echo "$(fio_bw "$out") B/s" ;;
	small)
		local nf nb secs
		read -r nf nb secs <<< "$($PY "$RUN/readfiles.py" "$d/small" 8)"
		[ "$nf" = 10000 ] && [ "$nb" = $((10000 * 65536)) ] || { echo "bench-fuse: $s read $nf files, $nb bytes" >&2; exit 1; }
		echo "$(calc "$nf / $secs") files/s" ;;
	find)
		local t0 t1 t2 n1 n2
		t0=$(now); n1=$(find "$d/tree" | wc -l); t1=$(now); n2=$(find "$d/tree" | wc -l); t2=$(now)
		[ "$n1" = $((T_NDIR * T_NPER + T_NDIR + 1)) ] && [ "$n2" = "$n1" ] || { echo "bench-fuse: find on $s: $n1, $n2 entries" >&2; exit 1; }
		echo "$(calc "$t1 - $t0") $(calc "$t2 - $t1") s" ;;
	esac
}
CASES=(rand4k-1 rand4k-8 seq1m-1 seq1m-8 small find)
for round in $(seq "$T_ROUNDS"); do
	for c in "${CASES[@]}"; do
		for s in "${SYS[@]}"; do
			sync; echo 3 > /proc/sys/vm/drop_caches
			u0=$(ufs)
			read -r v v2 unit <<< "$(run_case "$c" "$s" "${DIR[$s]}")"
			[ "$s" = local ] || precond "$s $c round $round" warm 0 $(( $(ufs) - u0 )) 0 "ferry's ferry_ufs_read_bytes_total"
			if [ "$c" = find ]; then
				printf '%s\tfind1\t%s\t%s\ts\n%s\tfind2\t%s\t%s\ts\n' "$round" "$s" "$v" "$round" "$s" "$v2" >> "$RES"
				say "round $round $s find: first $v s, second $v2 s"
			else
				printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$c" "$s" "$v" "$v2" >> "$RES"
				say "round $round $s $c: $v $v2"
			fi
		done
	done
done
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
cleanup

OUT=$ROOT/bench/results/fuse-target-$STAMP.md
$PY - "$RUN" > "$OUT" <<'EOF'
import csv, os, statistics, sys
run = sys.argv[1]
env = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(run, "meta.env")) if "=" in l)
rows = list(csv.DictReader(open(os.path.join(run, "target.tsv")), delimiter="\t"))
systems = [s for s in ("local", "ferry-old", "ferry") if any(r["system"] == s for r in rows)]
cases = [("rand4k-1", "fio 4 KiB random, 1 job", "MB/s", 0.8),
         ("rand4k-8", "fio 4 KiB random, 8 jobs", "MB/s", 0.8),
         ("seq1m-1", "fio 1 MiB sequential, 1 job (one pass, 1 GiB)", "MB/s", 0.8),
         ("seq1m-8", "fio 1 MiB sequential, 8 jobs (a 128 MiB file each)", "MB/s", 0.8),
         ("small", "10,000 x 64 KiB, 8 threads", "files/s", 0.8),
         ("find1", "find, 100,000 entries, first run", "s", None),
         ("find2", "find, 100,000 entries, second run", "s", 1.5)]
val = {}
for r in rows:
    val.setdefault((r["case"], r["system"]), []).append(float(r["value"]))
med = {k: statistics.median(v) for k, v in val.items()}
out = []
w = out.append
w("# ferry FUSE against the local disk, page cache dropped (issue 13's targets)")
w("")
w("Generated by `bench/fuse.sh target` on %s. Before every timed pass of every system: "
  "`sync; echo 3 > /proc/sys/vm/drop_caches`; ferry's own cache holds everything (no timed pass "
  "fetched a byte: `ferry_ufs_read_bytes_total` checked around each), and every chunk ferry reads "
  "is checked against its CRC32C. The systems take turns per case, %s rounds; each figure is the "
  "median of the rounds (each round's in brackets). ferry: %s%s." % (
  env["date_utc"], env["rounds"], env["ferry"].split("/")[-2] + "/ferry" if "/" in env["ferry"] else env["ferry"],
  "; ferry-old: `%s`" % env["ferry_old"] if env.get("ferry_old") else ""))
w("")
hdr = "| case | target | " + " | ".join(systems) + " | " + " | ".join("%s/local" % s for s in systems if s != "local") + " |"
w(hdr)
w("|---|---|" + "---:|" * (2 * len(systems) - 1))
for c, name, unit, tgt in cases:
    cells = []
    for s in systems:
        v = val.get((c, s), [])
        m = med.get((c, s))
        if m is None:
            cells.append("-")
            continue
        f = (lambda x: "%.0f" % (x / 1e6)) if unit == "MB/s" else (lambda x: "{:,.0f}".format(x)) if unit == "files/s" else (lambda x: "%.2f" % x)
        cells.append("%s (%s)" % (f(m), ", ".join(f(x) for x in v)))
    ratios = []
    for s in systems:
        if s == "local":
            continue
        a, b = med.get((c, s)), med.get((c, "local"))
        ratios.append("%.2f" % (a / b) if a and b else "-")
    t = "-" if tgt is None else (">= %.1fx" % tgt if unit != "s" else "<= %.1fx" % tgt)
    w("| %s (%s) | %s | %s | %s |" % (name, unit, t, " | ".join(cells), " | ".join(ratios)))
w("")
w("Ratios are ferry's figure over local's: for MB/s and files/s above 1 is faster, for `find` "
  "seconds below 1 is faster.")
w("")
w("## Machine")
w("")
for k in ("host_cpu", "host_nproc", "host_mem", "host_kernel", "host_disk", "ferry_rev", "fio_version", "fuse_version",
          "total_seconds", "loadavg_end"):
    w("- %s: %s" % (k, env.get(k, "")))
w("- The machine is shared (2 cores for fio, the FUSE daemon and the worker, and whatever else runs): "
  "compare the columns of one run, not figures across runs.")
w("")
w("## Commands")
w("")
w("```")
w(open(os.path.join(run, "commands.txt")).read().strip())
w("```")
print("\n".join(out))
EOF
cp "$OUT" "$ROOT/bench/results/latest-fuse-target.md"
say "report: ${OUT#"$ROOT"/}"
sed -n '/^| case/,/^$/p' "$OUT"
