#!/usr/bin/env bash
# bench/writes.sh quick|full: the write benchmark (bench/README.md 7.), run
# by bench/run.sh or alone.  The question: what does a write cost through
# ferry's S3 gateway, against the same client writing to the store itself,
# and is what was written through the cache then read from it?
#   1. local PUT throughput: one boto3 client (wput.py, THREADS requests in
#      flight) writing the same objects (a) to s3rver directly, (b) through
#      a ferry worker whose s3:// mount is that s3rver, write=through, (c)
#      the same, write=around, (d) the same, write=back: timed twice, until
#      the client's last PUT was acknowledged (acked) and until the worker's
#      GET /v1/writeback says the mount has nothing pending (drained, from
#      the first PUT), (e) through ferry onto a file:// mount (a local
#      directory, write=through): large objects (multipart, 8 MiB parts) and
#      small ones (one PutObject each); MB/s, objects/s, ratios ferry/direct;
#   2. read after write: after (b), one GET pass of what it wrote, which must
#      be served from ferry's cache (no under-store read), beside a GET pass
#      from s3rver of what (a) wrote;
#   3. cross-region checkpoint (root only: network namespaces and TUN): one
#      checkpoint file written with boto3 upload_file (its defaults: 8 MiB
#      parts, 10 in flight) to an s3rver across bench/wanlink.sh's emulated
#      WAN link, directly vs through a ferry worker next to the client,
#      write=through and write=back (acked, and drained as in 1.(d)); with,
#      for reference, the link's multi-stream limit (iperf3) and the local
#      disk's (the checkpoint copied with fsync); skipped with a line saying
#      so when not root.
# Passes alternate within each round (ROUNDS rounds; the report gives the
# median).  Every pass checks its preconditions (bench/precond.sh): the
# under-store's own files hold exactly what was sent (size of every object,
# SHA-256 of every large one and a sample of the small ones, read from
# s3rver's store or the directory, not through any server), ferry committed
# exactly the bytes written (ferry_ufs_write_bytes_total), the under-store
# received them (s3rver's read bytes, the link's bytes), write-through
# cached them and write-around did not, the direct pass bypassed ferry, the
# read-after-write pass read nothing from the under-store; a write-back pass
# is checked once drained: the bytes stored and committed as above, no
# upload failed, nothing pending (ferry_writeback_pending_objects and
# _bytes 0).  A violated one
# stops the run (exit 1) before any report.
# Writes bench/results/writes-<UTC date and time>-<mode>.md and a stable copy
# (latest-writes.md, latest-writes-quick.md); raw data in
# bench/work/runs/writes-<stamp>-<mode>/.  Listens on 127.0.0.1 (and in its
# own namespaces) on ports from WB_PORTS (default 31000-31999).  Every
# process, namespace and scratch directory made here is removed on exit.
set -euo pipefail
shopt -s inherit_errexit   # a failed $(metric ...) inside $(snap ...) stops the run too
MODE=${1:-quick}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
PY=/usr/bin/python3
FERRY=$ROOT/build/ferry
S3RVER=$ROOT/.deps/npm/node_modules/.bin/s3rver

case $MODE in
full)  N_LARGE=16; N_SMALL=2000; ROUNDS=3; CKPT_MIB=1024 ;;
quick) N_LARGE=4;  N_SMALL=500;  ROUNDS=2; CKPT_MIB=256 ;;
report) exec $PY "$ROOT/bench/wreport.py" "${2:?usage: $0 report RUNDIR}" ;;
*) echo "usage: $0 quick|full (or: $0 report RUNDIR)" >&2; exit 2 ;;
esac
# Developers' sizes (a run with any WB_* setting leaves latest-writes* alone).
N_LARGE=${WB_N_LARGE:-$N_LARGE}; N_SMALL=${WB_N_SMALL:-$N_SMALL}
ROUNDS=${WB_ROUNDS:-$ROUNDS}; CKPT_MIB=${WB_CKPT_MIB:-$CKPT_MIB}
LARGE_SIZE=$((64 * 1024 * 1024))
SMALL_SIZE=$((64 * 1024))
PAGE=$((1024 * 1024))            # ferry's default --page-size
THREADS=${WB_THREADS:-4}         # the client's requests in flight, local part
CKPT_THREADS=10                  # boto3 upload_file's default max_concurrency
# WB_PARTS picks parts (developers): local xregion (default: both).
# WB_XR_MOUNT_ARGS adds options to the cross-region worker's mounts (e.g.
# "--option s3.deadline_ms=120000").
# WB_SELFTEST=corrupt|around breaks a pass on purpose, to test the checks:
# corrupt flips a byte of one object in s3rver's store after the first
# write-through pass, around mounts the write=around mount write=through;
# either run must stop with PRECONDITION VIOLATED.
PARTS=" ${WB_PARTS:-local xregion} "
has() { [[ $PARTS == *" $1 "* ]]; }
WB_PORTS=${WB_PORTS:-31000-31999}
PORT_LO=${WB_PORTS%-*}; PORT_HI=${WB_PORTS#*-}
export WAN_REMOTE=${WAN_REMOTE:-ferry-wb-remote} WAN_COMPUTE=${WAN_COMPUTE:-ferry-wb-compute}
REMOTE_IP=198.18.0.1
PASS_TIMEOUT=900                 # seconds: any one client run, at most

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/writes-$STAMP-$MODE
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"

say() { printf '[bench-writes %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }

# --- bookkeeping: every process, the link and the scratch dirs, undone on exit
PIDS=()
LINK_UP=0
SCRATCH=("$W/wb-s3rver" "$W/wb-cache" "$W/wb-file" "$W/wb-xr-s3rver" "$W/wb-xr-cache")
stop_pid() {
	local p=$1 q=() x
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
	PIDS=("${q[@]}")
}
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	PIDS=()
	[ $LINK_UP = 1 ] && "$ROOT/bench/wanlink.sh" down > /dev/null 2>&1
	LINK_UP=0
	rm -rf "${SCRATCH[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A free TCP port on 127.0.0.1 from WB_PORTS (in the namespace given, if any).
free_port() {
	${1:-} $PY - "$PORT_LO" "$PORT_HI" <<'EOF'
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
ports = list(range(lo, hi + 1))
random.shuffle(ports)
for p in ports[:200]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit("bench-writes: no free port in %d-%d" % (lo, hi))
EOF
}
wait_http() { # url seconds [ns-runner]
	local i
	for i in $(seq $(($2 * 10))); do
		${3:-} curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "bench-writes: $1 did not answer within $2 s" >&2; return 1
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }
TICK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime+stime, all threads
io_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/io"; }               # pid rchar|wchar

# --- tools ---------------------------------------------------------------
section "preflight"
for t in curl sha256sum node "$PY" "$S3RVER" "$FERRY"; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench-writes: $t not found (run scripts/install-deps.sh and make all)" >&2; exit 1; }
done
$PY -c 'import boto3' || { echo "bench-writes: $PY lacks boto3 (python3-boto3)" >&2; exit 1; }
XR_OK=0; XR_WHY=""
if has xregion; then
	if [ "$(id -u)" -ne 0 ]; then
		XR_WHY="needs root (network namespaces and TUN devices for the emulated link)"
	elif [ ! -c /dev/net/tun ]; then
		XR_WHY="/dev/net/tun is missing (no TUN in this kernel or container)"
	else
		for t in iperf3 ping nsenter ip; do
			command -v "$t" >/dev/null 2>&1 || XR_WHY="$t is missing (scripts/install-deps.sh installs it)"
		done
	fi
	[ -z "$XR_WHY" ] && XR_OK=1
	[ $XR_OK = 1 ] || say "SKIPPED: 3. the cross-region checkpoint $XR_WHY; parts 1 and 2 run.  Run as root for it: sudo bench/writes.sh $MODE"
else
	XR_WHY="not selected (WB_PARTS)"
fi
ulimit -n 65536 2>/dev/null || true
export NO_PROXY='*' no_proxy='*'
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy AWS_CA_BUNDLE

# --- dataset: bench/work/data, the same files as worker.sh's ------------------
DATA=$W/data
section "dataset: $N_LARGE x 64 MiB + $N_SMALL x 64 KiB of random bytes in bench/work/data"
mkdir -p "$DATA/large" "$DATA/small" "$DATA/ckpt"
for i in $(seq 0 $((N_LARGE - 1))); do printf 'large/obj-%02d.bin\n' "$i"; done > "$RUN/keys-large.txt"
for i in $(seq 0 $((N_SMALL - 1))); do printf 'small/img-%04d.bin\n' "$i"; done > "$RUN/keys-small.txt"
CKPT_KEY=ckpt/ckpt-${CKPT_MIB}M.bin
echo "$CKPT_KEY" > "$RUN/keys-ckpt.txt"
note "for each missing file F: head -c SIZE /dev/urandom > bench/work/data/F   # large/obj-NN.bin 64 MiB, small/img-NNNN.bin 64 KiB$([ $XR_OK = 1 ] && echo ", $CKPT_KEY $CKPT_MIB MiB")"
gen() { # key size
	local f=$DATA/$1
	if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$2" ]; then
		head -c "$2" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f"
	fi
}
while read -r k; do gen "$k" $LARGE_SIZE; done < "$RUN/keys-large.txt"
while read -r k; do gen "$k" $SMALL_SIZE; done < "$RUN/keys-small.txt"
[ $XR_OK = 1 ] && gen "$CKPT_KEY" $((CKPT_MIB * 1024 * 1024))
# SHA-256 of what is sent: every large object, every SAMPLE-th small one
# and the last (the under-store's copies of those are hashed after each pass).
SAMPLE=$(( N_SMALL / 50 > 1 ? N_SMALL / 50 : 1 ))
{
	cat "$RUN/keys-large.txt"
	awk -v s="$SAMPLE" -v n="$N_SMALL" '(NR - 1) % s == 0 || NR == n' "$RUN/keys-small.txt"
	[ $XR_OK = 1 ] && echo "$CKPT_KEY"
} > "$RUN/keys-sha.txt"
(cd "$DATA" && xargs sha256sum < "$RUN/keys-sha.txt") > "$RUN/sha256.txt"
LARGE_BYTES=$((N_LARGE * LARGE_SIZE))
SMALL_BYTES=$((N_SMALL * SMALL_SIZE))
CKPT_BYTES=$((CKPT_MIB * 1024 * 1024))

{
	echo "mode=$MODE"
	echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "host_nproc=$(nproc)"
	echo "host_cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"
	echo "host_mem=$(free -h | awk '/^Mem:/{print $2}')"
	echo "host_kernel=$(uname -srm)"
	echo "host_disk=$(df -hT "$W" | awk 'NR==2{print $1" "$2" ("$3" total, "$5" free)"}')"
	echo "ferry_rev=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src include 2>/dev/null || echo '+dirty')"
	echo "ferry_version=$($FERRY version 2>&1 | head -1)"
	echo "boto3_version=$($PY -c 'import boto3, botocore; print(boto3.__version__, "botocore", botocore.__version__)')"
	echo "node_version=$(node --version)"
	echo "s3rver_version=$(NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --version 2>&1 | tail -1)"
	echo "uid=$(id -u)"
	echo "n_large=$N_LARGE"; echo "n_small=$N_SMALL"; echo "large_size=$LARGE_SIZE"; echo "small_size=$SMALL_SIZE"
	echo "rounds=$ROUNDS"; echo "threads=$THREADS"; echo "sample=$SAMPLE"
	echo "ckpt_mib=$CKPT_MIB"; echo "ckpt_threads=$CKPT_THREADS"
	echo "xr_ok=$XR_OK"; echo "xr_why=$XR_WHY"
	echo "parts=${PARTS# }"
} > "$RUN/meta.env"

# --- a ferry worker -------------------------------------------------------------
# start_ferry NAME CACHEDIR [ns-runner]: sets F_PID, F_S3, F_CTL.  The worker
# binds ports from WB_PORTS; no S3 credentials (loopback: not checked).
start_ferry() {
	local name=$1 cache=$2 ns=${3:-} s3p ctlp
	rm -rf "$cache"; mkdir -p "$cache"
	s3p=$(free_port "$ns"); ctlp=$(free_port "$ns")
	[ "$s3p" != "$ctlp" ] || ctlp=$(free_port "$ns")
	local out=$W/logs/$name.out log=$W/logs/$name.log
	local cmd=("$FERRY" worker --cache-dir "$cache" --cache-size 16G
		--s3-address "127.0.0.1:$s3p" --control-address "127.0.0.1:$ctlp")
	note "${ns:+$ns }${cmd[*]//$ROOT\//}"
	: > "$out"
	$ns "${cmd[@]}" >> "$out" 2> "$log" < /dev/null &
	F_PID=$!; PIDS+=("$F_PID")
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$F_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench-writes: ferry worker $name did not start; log:" >&2; tail -20 "$log" >&2; exit 1
	fi
	F_S3=${BASH_REMATCH[1]}; F_CTL=${BASH_REMATCH[2]}
}
# The worker's counters a pass looks at, from one scrape of /metrics, as
# "k=v ..." (snap PID CTL [ns-runner]); a counter summed over its label sets,
# or one series when named with its labels.  A worker gone or not answering,
# or a metric missing, stops the run (inherit_errexit: from inside $(...) too).
SNAP=(ufs_write=ferry_ufs_write_bytes_total ufs_read=ferry_ufs_read_bytes_total
	'ufs_read_req=ferry_ufs_requests_total{op="read"}' 'ufs_stat_req=ferry_ufs_requests_total{op="stat"}'
	put=ferry_put_bytes_total pages=ferry_cache_pages s3err=ferry_s3_errors_total ufs_err=ferry_ufs_errors_total
	'part_ms=ferry_s3_request_duration_seconds_sum{op="UploadPart"}'
	'complete_ms=ferry_s3_request_duration_seconds_sum{op="CompleteMultipartUpload"}'
	'putobj_ms=ferry_s3_request_duration_seconds_sum{op="PutObject"}'
	wb_objects=ferry_writeback_pending_objects wb_bytes=ferry_writeback_pending_bytes
	wb_uploaded=ferry_writeback_uploaded_total wb_fail=ferry_writeback_failures_total)
snap() {
	local m x v out=""
	kill -0 "$1" 2>/dev/null || { echo "bench-writes: the ferry worker (pid $1) is gone; its log is in bench/work/logs/" >&2; exit 1; }
	m=$(${3:-} curl -sf --max-time 10 "http://$2/metrics") || { echo "bench-writes: http://$2/metrics did not answer" >&2; exit 1; }
	for x in "${SNAP[@]}"; do
		# *_ms: a sum of seconds, in milliseconds
		v=$(awk -v n="${x#*=}" -v k="${x%%=*}" '$1 == n || index($1, n "{") == 1 {s += $2; f = 1}
			END {if (!f) exit 1; printf "%.0f\n", k ~ /_ms$/ ? s * 1000 : s}' <<< "$m") ||
			{ echo "bench-writes: no metric ${x#*=} at http://$2/metrics" >&2; exit 1; }
		out+="${x%%=*}=$v "
	done
	v=$(cpu_ticks "$1")
	echo "${out}cpu=$v"
}
sv() { sed -n "s/.*\b$2=\([0-9]*\).*/\1/p" <<< "$1"; }  # a value of a snap
d() { echo $(( $(sv "$2" "$1") - $(sv "$3" "$1") )); }   # d KEY AFTER BEFORE

# One row per pass: what it moved, and its time.
RES=$RUN/results.tsv
printf 'part\tround\tkind\tsystem\top\tfiles\tbytes\tseconds\tferry_cpu_s\tstore_cpu_s\tufs_write\tufs_read\tufs_read_req\tcache_pages\tstore_rx\tstore_tx\tpart_s\tcomplete_s\tputobj_s\n' > "$RES"
# row PART ROUND KIND SYSTEM OP FILES BYTES SECS STORE_CPU_TICKS RX TX SNAP0 SNAP1: one line of results.tsv
row() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" \
		"$(calc "$(d cpu "${13}" "${12}") / $TICK")" "$(calc "$9 / $TICK")" "$(d ufs_write "${13}" "${12}")" "$(d ufs_read "${13}" "${12}")" \
		"$(d ufs_read_req "${13}" "${12}")" "$(d pages "${13}" "${12}")" "${10}" "${11}" \
		"$(calc "$(d part_ms "${13}" "${12}") / 1000")" "$(calc "$(d complete_ms "${13}" "${12}") / 1000")" "$(calc "$(d putobj_ms "${13}" "${12}") / 1000")" >> "$RES"
}
declare -A NOTED=()
# client OP ENDPOINT BUCKET PREFIX KEYS THREADS [ns] [DATADIR for get]: runs
# wput.py (bounded by PASS_TIMEOUT), prints "files bytes seconds".
client() {
	local op=$1 ep=$2 bucket=$3 prefix=$4 keys=$5 threads=$6 ns=${7:-} cmd
	cmd=(timeout "$PASS_TIMEOUT" $PY "$ROOT/bench/wput.py" "$op" "$ep" "$bucket" "$prefix")
	if [ "$op" = put ]; then cmd+=("$DATA"); fi
	cmd+=("$keys" "$threads")
	if [ "$op" = get ] && [ -n "${8:-}" ]; then cmd+=("$8"); fi
	if [ -z "${NOTED[$op-$ep-$(basename "$keys")]:-}" ]; then
		note "${ns:+$ns }$(echo "${cmd[*]}" | sed "s|$RUN/||g; s|$ROOT/||g")"
		NOTED[$op-$ep-$(basename "$keys")]=1
	fi
	$ns "${cmd[@]}" || { echo "bench-writes: wput.py $op to $ep/$bucket/$prefix failed" >&2; exit 1; }
}
# verify NAME KIND ROOT PREFIX KEYS: the under-store's own files hold what
# was sent (every object's size, the SHA-256 of those in sha256.txt).
verify() {
	local name=$1 n size_ok sampled sha_ok out
	out=$($PY "$ROOT/bench/wput.py" verify "$2" "$3" "$4" "$DATA" "$5" "$SAMPLE" "$RUN/sha256.txt") ||
		{ echo "bench-writes: verify $name failed" >&2; exit 1; }
	read -r n size_ok sampled sha_ok <<< "$out"
	precond "$name" stored "$n" "$size_ok" 0 "objects in the under-store's files ($2 ${3#$ROOT/}/$4) with the size sent"
	precond "$name" stored "$sampled" "$sha_ok" 0 "objects in the under-store's files with the SHA-256 sent (every large one; one small one in $SAMPLE, and the last)"
}
# drain_start CTL MOUNT [ns-runner]: starts, beside a write-back pass's
# client (which is run with WPUT_START=$RUN/t0 WPUT_END=$RUN/t1), the wait
# until the worker's GET /v1/writeback says MOUNT has nothing pending, in
# an answer to a request made after the client's last PUT was answered
# (PASS_TIMEOUT after that at most); sets DR_PID.  drain_wait NAME CTL MOUNT
# WORKER-LOG [ns-runner] then sets DR_SECS, the seconds from the first PUT
# to that answer (not in a subshell: it waits for DR_PID).  A mount that
# does not drain stops the run, with the worker's last answer and log lines.
declare -A DNOTED=()
drain_start() {
	local ns=${3:-}
	rm -f "$RUN/t0" "$RUN/t1" "$RUN/drain.out"
	if [ -z "${DNOTED[$1$2]:-}" ]; then
		note "${ns:+$ns }$PY bench/wput.py drain $1 $2 $((2 * PASS_TIMEOUT)) t1   # beside the write=back client (WPUT_START=t0 WPUT_END=t1): polls GET /v1/writeback until $2 has objects == 0"
		DNOTED[$1$2]=1
	fi
	$ns timeout $((2 * PASS_TIMEOUT + 30)) $PY "$ROOT/bench/wput.py" drain "$1" "$2" $((2 * PASS_TIMEOUT)) "$RUN/t1" \
		> "$RUN/drain.out" < /dev/null &
	DR_PID=$!; PIDS+=("$DR_PID")
}
drain_wait() {
	local name=$1 ctl=$2 mount=$3 log=$4 ns=${5:-} rc=0 q=() x
	wait "$DR_PID" || rc=$?
	for x in "${PIDS[@]}"; do [ "$x" = "$DR_PID" ] || q+=("$x"); done
	PIDS=("${q[@]}")
	if [ $rc != 0 ]; then
		{
			echo "bench-writes: $name: the write=back mount $mount did not drain (wput.py drain, above); the worker says:"
			$ns curl -s --max-time 5 "http://$ctl/v1/writeback" || true; echo
			$ns curl -s --max-time 5 "http://$ctl/metrics" | grep '^ferry_writeback_' || true
			echo "its log's last warnings and errors (${log#"$ROOT"/}):"
			awk '$2 != "info"' "$log" | tail -20
		} >&2
		exit 1
	fi
	DR_SECS=$(calc "$(head -1 "$RUN/drain.out") - $(cat "$RUN/t0")")
}
# wb_checks NAME NOBJ SNAP0 SNAP1: a write-back pass, drained: its NOBJ
# writes uploaded, none failed, nothing pending (SNAP1: after the drain).
wb_checks() {
	precond "$1" sent "$2" "$(d wb_uploaded "$4" "$3")" 0 "ferry's ferry_writeback_uploaded_total (uploads done)"
	precond "$1" idle 0 "$(d wb_fail "$4" "$3")" 0 "ferry's ferry_writeback_failures_total (failed upload attempts)"
	precond "$1" drained 0 "$(sv "$4" wb_objects)" 0 "ferry's ferry_writeback_pending_objects, once drained"
	precond "$1" drained 0 "$(sv "$4" wb_bytes)" 0 "ferry's ferry_writeback_pending_bytes, once drained"
}

# ==============================================================================
# 1. and 2.: local PUT throughput, read after write.
# ==============================================================================
if has local; then
section "local: s3rver on 127.0.0.1, a ferry worker with s3:// (through, around, back) and file:// mounts"
S3P=$(free_port)
rm -rf "$W/wb-s3rver" "$W/wb-file"; mkdir -p "$W/wb-s3rver" "$W/wb-file"
note "NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/wb-s3rver -a 127.0.0.1 -p $S3P -s --configure-bucket wbench"
NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/wb-s3rver" -a 127.0.0.1 -p "$S3P" -s \
	--configure-bucket wbench > "$W/logs/wb-s3rver.log" 2>&1 < /dev/null &
S3_PID=$!; PIDS+=("$S3_PID")
wait_http "http://127.0.0.1:$S3P/" 30
io_of "$S3_PID" rchar > /dev/null || { echo "bench-writes: cannot read /proc/$S3_PID/io" >&2; exit 1; }
start_ferry wb-worker "$W/wb-cache"
FP=$F_PID; FS3=$F_S3; FCTL=$F_CTL
S3O=(--option "s3.endpoint=http://127.0.0.1:$S3P" --option s3.region=us-east-1 --option s3.access_key=S3RVER
	--option s3.secret_key=S3RVER --option s3.path_style=true)
AROUND=around; [ "${WB_SELFTEST:-}" = around ] && { AROUND=through; say "WB_SELFTEST=around: the write=around mount is write=through"; }
for m in "/wt s3://wbench/through --option write=through" "/wa s3://wbench/around --option write=$AROUND" \
	"/wk s3://wbench/back --option write=back" "/wf file://$W/wb-file --option write=through"; do
	read -ra ma <<< "$m"
	cmd=("$FERRY" --worker "$FCTL" mount "${ma[@]}")
	[[ ${ma[1]} == s3://* ]] && cmd+=("${S3O[@]}")
	note "${cmd[*]//$ROOT\//}"
	"${cmd[@]}" >> "$W/logs/wb-mount.out" 2>&1 || { cat "$W/logs/wb-mount.out" >&2; exit 1; }
done
echo "loadavg_local_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
# Where each system's objects go: endpoint, bucket, prefix; and where they
# land in the under-store's files: kind, root, prefix.
declare -A EP=([direct]=http://127.0.0.1:$S3P [through]=http://$FS3 [around]=http://$FS3 [back]=http://$FS3 [file]=http://$FS3)
declare -A BK=([direct]=wbench [through]=wt [around]=wa [back]=wk [file]=wf)
declare -A VK=([direct]=s3rver [through]=s3rver [around]=s3rver [back]=s3rver [file]=file)
declare -A VR=([direct]=$W/wb-s3rver [through]=$W/wb-s3rver [around]=$W/wb-s3rver [back]=$W/wb-s3rver [file]=$W/wb-file)
declare -A VP=([direct]=wbench/direct [through]=wbench/through [around]=wbench/around [back]=wbench/back [file]=)
declare -A PF=([direct]=direct/ [through]= [around]= [back]= [file]=)   # the key prefix a pass writes under
SYSTEMS=(direct through around back file)

# put_pass ROUND KIND SYSTEM: one timed write of the KIND objects, its checks.
put_pass() {
	local r=$1 kind=$2 sys=$3 keys=$RUN/keys-$2.txt want nobj pages name="put $2 $3 round $1"
	want=$LARGE_BYTES; nobj=$N_LARGE; pages=$((N_LARGE * LARGE_SIZE / PAGE))
	[ "$kind" = small ] && { want=$SMALL_BYTES; nobj=$N_SMALL; pages=$N_SMALL; }
	local s0 s1 rx0 rx1 tx0 tx1 c0 c1 files bytes secs out t0 td dsecs op acked=""
	s0=$(snap "$FP" "$FCTL"); rx0=$(io_of "$S3_PID" rchar); tx0=$(io_of "$S3_PID" wchar); c0=$(cpu_ticks "$S3_PID")
	[ "$sys" = back ] && drain_start "$FCTL" /wk
	out=$(export WPUT_START=$RUN/t0 WPUT_END=$RUN/t1; client put "${EP[$sys]}" "${BK[$sys]}" "${PF[$sys]}r$r" "$keys" "$THREADS")
	read -r files bytes secs <<< "$out"
	if [ "$sys" = back ]; then
		# Acknowledged: the row of the client's time, and what ferry had
		# uploaded by then; then the wait until the mount has drained,
		# timed from the first PUT, and every check on the drained state.
		s1=$(snap "$FP" "$FCTL"); rx1=$(io_of "$S3_PID" rchar); tx1=$(io_of "$S3_PID" wchar); c1=$(cpu_ticks "$S3_PID")
		[ "$bytes" = "$want" ] && [ "$files" = "$nobj" ] || { echo "bench-writes: $name sent $files objects, $bytes bytes, not $nobj, $want" >&2; exit 1; }
		row local "$r" "$kind" "$sys" put "$files" "$bytes" "$secs" $((c1 - c0)) $((rx1 - rx0)) $((tx1 - tx0)) "$s0" "$s1"
		acked="acked after $secs s with $(sv "$s1" wb_objects) objects, $(sv "$s1" wb_bytes) bytes pending; "
		drain_wait "$name" "$FCTL" /wk "$W/logs/wb-worker.log"; dsecs=$DR_SECS
		op=drain
	else
		op=put; dsecs=$secs
	fi
	s1=$(snap "$FP" "$FCTL"); rx1=$(io_of "$S3_PID" rchar); tx1=$(io_of "$S3_PID" wchar); c1=$(cpu_ticks "$S3_PID")
	[ "$bytes" = "$want" ] && [ "$files" = "$nobj" ] || { echo "bench-writes: $name sent $files objects, $bytes bytes, not $nobj, $want" >&2; exit 1; }
	row local "$r" "$kind" "$sys" $op "$files" "$bytes" "$dsecs" $((c1 - c0)) $((rx1 - rx0)) $((tx1 - tx0)) "$s0" "$s1"
	PRECOND_DETAIL="the pass took $secs s; ${acked}${acked:+drained after $dsecs s; }ferry committed $(d ufs_write "$s1" "$s0") bytes, cached $(d pages "$s1" "$s0") pages; s3rver read $((rx1 - rx0)) bytes"
	if [ "${WB_SELFTEST:-}" = corrupt ] && [ "$sys" = through ]; then
		local f
		f=${VR[$sys]}/${VP[$sys]}/r$r/$(head -1 "$keys")._S3rver_object
		say "WB_SELFTEST=corrupt: flipping the first byte of ${f#$ROOT/}"
		$PY -c 'import sys; f = open(sys.argv[1], "r+b"); b = f.read(1); f.seek(0); f.write(bytes([b[0] ^ 1]))' "$f"
	fi
	verify "$name" "${VK[$sys]}" "${VR[$sys]}" "${VP[$sys]}/r$r" "$keys"
	local S3RX="bytes s3rver read (/proc/<s3rver>/io rchar)"
	case $sys in
	direct)
		precond "$name" sent "$want" $((rx1 - rx0)) 0 "$S3RX"
		precond "$name" idle 0 "$(d put "$s1" "$s0")" 0 "ferry's ferry_put_bytes_total (ferry is not in this pass's path)" ;;
	*)
		precond "$name" write "$want" "$(d ufs_write "$s1" "$s0")" 0 "ferry's ferry_ufs_write_bytes_total"
		precond "$name" idle 0 $(( $(d s3err "$s1" "$s0") + $(d ufs_err "$s1" "$s0") )) 0 "ferry's ferry_s3_errors_total + ferry_ufs_errors_total"
		if [ "$sys" = file ]; then
			precond "$name" idle 0 $((rx1 - rx0)) 65536 "$S3RX (a file:// pass does not use s3rver)"
		else
			precond "$name" sent "$want" $((rx1 - rx0)) 0 "$S3RX"
		fi
		if [ "$sys" = around ]; then
			precond "$name" idle 0 "$(d pages "$s1" "$s0")" 0 "ferry's ferry_cache_pages (write=around caches nothing)"
		else
			precond "$name" cached "$pages" "$(d pages "$s1" "$s0")" 0 "ferry's ferry_cache_pages (write=$sys: the pages written)"
		fi
		[ "$sys" = back ] && wb_checks "$name" "$nobj" "$s0" "$s1" ;;
	esac
	PRECOND_DETAIL=""
	if [ "$sys" = back ]; then
		say "$name: acked after $secs s ($(calc "$bytes / $secs / 1e6") MB/s, $(calc "$files / $secs") objects/s), drained after $dsecs s ($(calc "$bytes / $dsecs / 1e6") MB/s); stored bytes checked"
	else
		say "$name: $secs s, $(calc "$bytes / $secs / 1e6") MB/s, $(calc "$files / $secs") objects/s; stored bytes checked"
	fi
}
# get_pass ROUND KIND SYSTEM: read back what SYSTEM's put wrote (direct: from
# s3rver; through: from ferry, which must not read the under-store).
get_pass() {
	local r=$1 kind=$2 sys=$3 keys=$RUN/keys-$2.txt want nobj name="get $2 $3 round $1"
	want=$LARGE_BYTES; nobj=$N_LARGE
	[ "$kind" = small ] && { want=$SMALL_BYTES; nobj=$N_SMALL; }
	local s0 s1 rx0 rx1 tx0 tx1 c0 c1 files bytes secs out
	s0=$(snap "$FP" "$FCTL"); rx0=$(io_of "$S3_PID" rchar); tx0=$(io_of "$S3_PID" wchar); c0=$(cpu_ticks "$S3_PID")
	out=$(client get "${EP[$sys]}" "${BK[$sys]}" "${PF[$sys]}r$r" "$keys" "$THREADS" "" "$DATA")
	read -r files bytes secs <<< "$out"
	s1=$(snap "$FP" "$FCTL"); rx1=$(io_of "$S3_PID" rchar); tx1=$(io_of "$S3_PID" wchar); c1=$(cpu_ticks "$S3_PID")
	[ "$bytes" = "$want" ] && [ "$files" = "$nobj" ] || { echo "bench-writes: $name read $files objects, $bytes bytes, not $nobj, $want" >&2; exit 1; }
	row local "$r" "$kind" "$sys" get "$files" "$bytes" "$secs" $((c1 - c0)) $((rx1 - rx0)) $((tx1 - tx0)) "$s0" "$s1"
	# The window covers the timed read and the untimed second read that
	# compares every object's SHA-256 with its file's.
	PRECOND_DETAIL="the pass took $secs s (then every object read again to compare its SHA-256); ferry read $(d ufs_read "$s1" "$s0") bytes in $(d ufs_read_req "$s1" "$s0") requests from the under-store; s3rver wrote $((tx1 - tx0)) bytes"
	if [ "$sys" = direct ]; then
		precond "$name" direct "$want" $((tx1 - tx0)) 0 "bytes s3rver wrote (/proc/<s3rver>/io wchar)"
	else
		precond "$name" warm 0 "$(d ufs_read "$s1" "$s0")" 0 "ferry's ferry_ufs_read_bytes_total"
		precond "$name" warm 0 "$(d ufs_read_req "$s1" "$s0")" 0 "ferry's ferry_ufs_requests_total{op=\"read\"}"
		precond "$name" warm 0 "$(d ufs_stat_req "$s1" "$s0")" 0 "ferry's ferry_ufs_requests_total{op=\"stat\"} (the commit's stat is cached)"
		precond "$name" warm 0 $((tx1 - tx0)) 65536 "bytes s3rver wrote (/proc/<s3rver>/io wchar)"
	fi
	PRECOND_DETAIL=""
	say "$name: $secs s, $(calc "$bytes / $secs / 1e6") MB/s, $(calc "$files / $secs") objects/s; every object's SHA-256 equal"
}

for r in $(seq "$ROUNDS"); do
	section "local round $r of $ROUNDS: ${SYSTEMS[*]}, large then small; GETs after direct and through; back: until acked and until drained"
	for kind in large small; do
		for sys in "${SYSTEMS[@]}"; do
			put_pass "$r" "$kind" "$sys"
			case $sys in direct | through) get_pass "$r" "$kind" "$sys" ;; esac
		done
	done
	# What this round wrote is checked: out of the way (disk space), behind
	# the servers' backs (nothing reads it again).
	rm -rf "$W/wb-s3rver/wbench/"{direct,through,around,back}/"r$r" "$W/wb-file/r$r"
done
echo "loadavg_local_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
curl -s "http://$FCTL/metrics" > "$RUN/ferry-local-metrics.txt"
awk '$2 != "info"' "$W/logs/wb-worker.log" | tail -20 > "$RUN/ferry-local-log.txt"   # warnings and errors
stop_pid "$FP"; stop_pid "$S3_PID"
rm -rf "$W/wb-s3rver" "$W/wb-file" "$W/wb-cache"
fi

# ==============================================================================
# 3. Cross-region checkpoint (root).
# ==============================================================================
if [ $XR_OK = 1 ]; then
section "cross-region: bench/wanlink.sh up ($WAN_REMOTE, $WAN_COMPUTE)"
C=(nsenter --net="/run/netns/$WAN_COMPUTE")
R=(nsenter --net="/run/netns/$WAN_REMOTE")
note "WAN_REMOTE=$WAN_REMOTE WAN_COMPUTE=$WAN_COMPUTE WAN_DELAY_MS=${WAN_DELAY_MS:-40} WAN_RATE=${WAN_RATE:-200M} WAN_RMEM=${WAN_RMEM:-2097152} ${WAN_QUEUE:+WAN_QUEUE=$WAN_QUEUE }bench/wanlink.sh up"
LINK_UP=1
"$ROOT/bench/wanlink.sh" up | tee "$RUN/link.txt"
WL_PID=$(cat "$W/wanlink.pid")
echo "link=$(sed -n 's/^wanlink.sh: //p' "$RUN/link.txt")" >> "$RUN/meta.env"
echo "wan_delay_ms=${WAN_DELAY_MS:-40}" >> "$RUN/meta.env"; echo "wan_rate=${WAN_RATE:-200M}" >> "$RUN/meta.env"
# Bytes the compute side sent over the link (compute -> remote: the uploads,
# TCP/IP headers included).
link_tx() {
	ip -n "$WAN_COMPUTE" -s -j link show wan0 |
		$PY -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["bytes"])'
}
settle() { # until nothing crosses the link (10 s at most)
	local a b
	a=$(link_tx)
	for _ in $(seq 50); do
		sleep 0.2; b=$(link_tx)
		[ $((b - a)) -lt 4096 ] && return 0
		a=$b
	done
	say "the link was still busy 10 s after the last pass; going on (the pass's checks will tell)"
}
# The direction that matters here is compute -> remote (uploads): RTT, and
# iperf3 from the compute side (no -R), 1 stream and 4 (ferry's
# s3.upload_parallelism).  The compute side's receive-window cap
# (WAN_RMEM) does not apply to uploads: the receiver is the remote side.
say "link: RTT and upload throughput"
IPP=$(free_port "${R[*]}")
rtt=$("${C[@]}" ping -n -q -c 10 -i 0.2 "$REMOTE_IP" | sed -n 's|^rtt [^=]*= [0-9.]*/\([0-9.]*\)/.*|\1|p')
for P in 1 4; do
	"${R[@]}" iperf3 -s -1 -B "$REMOTE_IP" -p "$IPP" > /dev/null 2>&1 < /dev/null &
	ipid=$!
	sleep 0.3
	mbit=$(timeout 30 "${C[@]}" iperf3 -c "$REMOTE_IP" -p "$IPP" -t 3 -O 1 -P "$P" -J 2>/dev/null |
		$PY -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))') || mbit=?
	wait "$ipid" 2>/dev/null || true
	echo "link_up_${P}stream_mbit=$mbit" >> "$RUN/meta.env"
done
echo "link_rtt_ms_avg=$rtt" >> "$RUN/meta.env"
note "nsenter --net=/run/netns/$WAN_COMPUTE ping -c 10 -i 0.2 $REMOTE_IP; iperf3 -c $REMOTE_IP -t 3 -O 1 -P {1,4}   # uploads (iperf3 -s in $WAN_REMOTE)"
say "link: RTT $rtt ms, upload $(sed -n 's/^link_up_1stream_mbit=//p' "$RUN/meta.env") Mbit/s (1 stream), $(sed -n 's/^link_up_4stream_mbit=//p' "$RUN/meta.env") Mbit/s (4 streams)"

XP=$(free_port "${R[*]}")
rm -rf "$W/wb-xr-s3rver"; mkdir -p "$W/wb-xr-s3rver"
note "nsenter --net=/run/netns/$WAN_REMOTE env NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/wb-xr-s3rver -a 0.0.0.0 -p $XP -s --configure-bucket ckpt"
"${R[@]}" env NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/wb-xr-s3rver" -a 0.0.0.0 -p "$XP" -s \
	--configure-bucket ckpt > "$W/logs/wb-xr-s3rver.log" 2>&1 < /dev/null &
XS3_PID=$!; PIDS+=("$XS3_PID")
wait_http "http://127.0.0.1:$XP/" 30 "${R[*]}"
start_ferry wb-xr-worker "$W/wb-xr-cache" "${C[*]}"
XFP=$F_PID; XFS3=$F_S3; XFCTL=$F_CTL
xa=()
if [ -n "${WB_XR_MOUNT_ARGS:-}" ]; then read -ra xa <<< "$WB_XR_MOUNT_ARGS"; fi
echo "xr_mount_args=${WB_XR_MOUNT_ARGS:-}" >> "$RUN/meta.env"
for m in "/ckpt s3://ckpt/ferry --option write=through" "/ckptb s3://ckpt/back --option write=back"; do
	read -ra ma <<< "$m"
	cmd=("$FERRY" --worker "$XFCTL" mount "${ma[@]}"
		--option "s3.endpoint=http://$REMOTE_IP:$XP" --option s3.region=us-east-1 --option s3.access_key=S3RVER
		--option s3.secret_key=S3RVER --option s3.path_style=true ${xa[@]+"${xa[@]}"})
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//}"
	"${C[@]}" "${cmd[@]}" >> "$W/logs/wb-xr-mount.out" 2>&1 || { cat "$W/logs/wb-xr-mount.out" >&2; exit 1; }
done
# For reference, the local disk's speed for the checkpoint: its file copied
# onto the worker's disk (the filesystem of its cache and write-back
# staging), fsync'd, once.
sync
t0=$(now)
dd if="$DATA/$CKPT_KEY" of="$W/wb-xr-cache/dd-ref.tmp" bs=8M conv=fsync status=none
t1=$(now)
rm -f "$W/wb-xr-cache/dd-ref.tmp"
echo "xr_local_disk_s=$(calc "$t1 - $t0")" >> "$RUN/meta.env"
note "dd if=bench/work/data/$CKPT_KEY of=bench/work/wb-xr-cache/dd-ref.tmp bs=8M conv=fsync   # local-disk reference"
say "local disk: the checkpoint copied with fsync in $(calc "$t1 - $t0") s ($(calc "$CKPT_BYTES / ($t1 - $t0) / 1e6") MB/s)"
echo "loadavg_xr_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
declare -A XEP=([direct]=http://$REMOTE_IP:$XP [ferry]=http://$XFS3 [back]=http://$XFS3)
declare -A XBK=([direct]=ckpt [ferry]=ckpt [back]=ckptb)
declare -A XPF=([direct]=direct [ferry]= [back]=)
declare -A XVP=([direct]=ckpt/direct [ferry]=ckpt/ferry [back]=ckpt/back)
for r in $(seq "$ROUNDS"); do
	for sys in direct ferry back; do
		name="checkpoint $sys round $r"
		settle
		s0=$(snap "$XFP" "$XFCTL" "${C[*]}"); l0=$(link_tx); c0=$(cpu_ticks "$XS3_PID")
		[ $sys = back ] && drain_start "$XFCTL" /ckptb "${C[*]}"
		out=$(export WPUT_START=$RUN/t0 WPUT_END=$RUN/t1; client put "${XEP[$sys]}" "${XBK[$sys]}" "${XPF[$sys]:+${XPF[$sys]}/}r$r" "$RUN/keys-ckpt.txt" "$CKPT_THREADS" "${C[*]}")
		read -r files bytes secs <<< "$out"
		s1=$(snap "$XFP" "$XFCTL" "${C[*]}"); l1=$(link_tx); c1=$(cpu_ticks "$XS3_PID")
		[ "$bytes" = "$CKPT_BYTES" ] || { echo "bench-writes: $name sent $bytes bytes, not $CKPT_BYTES" >&2; exit 1; }
		row xregion "$r" ckpt "$sys" put "$files" "$bytes" "$secs" $((c1 - c0)) $((l1 - l0)) 0 "$s0" "$s1"
		acked=""; dsecs=$secs
		if [ $sys = back ]; then
			# Acknowledged (the row above: what had crossed by then); the
			# checks below are on the drained state.
			acked="acked after $secs s with $(sv "$s1" wb_bytes) bytes pending and $((l1 - l0)) bytes over the link; "
			drain_wait "$name" "$XFCTL" /ckptb "$W/logs/wb-xr-worker.log" "${C[*]}"; dsecs=$DR_SECS
			s1=$(snap "$XFP" "$XFCTL" "${C[*]}"); l1=$(link_tx); c1=$(cpu_ticks "$XS3_PID")
			row xregion "$r" ckpt "$sys" drain "$files" "$bytes" "$dsecs" $((c1 - c0)) $((l1 - l0)) 0 "$s0" "$s1"
		fi
		PRECOND_DETAIL="the pass took $secs s; ${acked}${acked:+drained after $dsecs s; }$((l1 - l0)) bytes crossed the link; ferry committed $(d ufs_write "$s1" "$s0") bytes"
		verify "$name" s3rver "$W/wb-xr-s3rver" "${XVP[$sys]}/r$r" "$RUN/keys-ckpt.txt"
		precond "$name" sent "$CKPT_BYTES" $((l1 - l0)) 0 "bytes sent over the link (wan0 in $WAN_COMPUTE, tx)"
		if [ $sys = direct ]; then
			precond "$name" idle 0 "$(d put "$s1" "$s0")" 0 "ferry's ferry_put_bytes_total (ferry is not in this pass's path)"
		else
			precond "$name" write "$CKPT_BYTES" "$(d ufs_write "$s1" "$s0")" 0 "ferry's ferry_ufs_write_bytes_total"
			precond "$name" cached $((CKPT_BYTES / PAGE)) "$(d pages "$s1" "$s0")" 0 "ferry's ferry_cache_pages (write=$([ $sys = back ] && echo back || echo through))"
		fi
		[ $sys = back ] && wb_checks "$name" 1 "$s0" "$s1"
		PRECOND_DETAIL=""
		if [ $sys = back ]; then
			say "$name: acked after $secs s ($(calc "$bytes / $secs / 1e6") MB/s), drained after $dsecs s ($(calc "$bytes / $dsecs / 1e6") MB/s); $(calc "($l1 - $l0) / 1e6") MB over the link; stored bytes checked"
		else
			say "$name: $secs s, $(calc "$bytes / $secs / 1e6") MB/s; $(calc "($l1 - $l0) / 1e6") MB over the link; stored bytes checked"
		fi
		rm -rf "$W/wb-xr-s3rver/${XVP[$sys]}/r$r"
	done
done
echo "loadavg_xr_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
"${C[@]}" curl -s "http://$XFCTL/metrics" > "$RUN/ferry-xr-metrics.txt"
kill -USR1 "$WL_PID" 2>/dev/null; sleep 0.2
grep '^wanlink stats' "$W/logs/wanlink.log" | tail -2 > "$RUN/wanlink-stats.txt" || true
fi
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"
cleanup

# ==============================================================================
section "report"
OUT=$ROOT/bench/results/writes-$STAMP-$MODE.md
$PY "$ROOT/bench/wreport.py" "$RUN" > "$OUT"
LATEST=latest-writes; [ "$MODE" = quick ] && LATEST=latest-writes-quick
if [ -z "${WB_PARTS:-}${WB_THREADS:-}${WB_SELFTEST:-}${WB_XR_MOUNT_ARGS:-}${WAN_RATE:-}${WAN_DELAY_MS:-}${WB_N_LARGE:-}${WB_N_SMALL:-}${WB_ROUNDS:-}${WB_CKPT_MIB:-}" ]; then
	cp "$OUT" "$ROOT/bench/results/$LATEST.md"
	say "report: ${OUT#"$ROOT"/} (and bench/results/$LATEST.md), $(( $(date +%s) - T_START )) s in all"
else
	say "report: ${OUT#"$ROOT"/} ($LATEST.md left alone: WB_* settings in effect), $(( $(date +%s) - T_START )) s in all"
fi
sed -n '/^## Headline/,/^## Passes/p' "$OUT" | sed '$d'
