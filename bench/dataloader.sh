#!/usr/bin/env bash
# bench/dataloader.sh quick|full: a training job's input pipeline over the
# emulated cross-region link (bench/README.md 10.), run by bench/run.sh as
# the part `dataloader` or alone.  MLPerf Storage's question: with the data
# in a bucket in another region, how busy does the storage keep the
# accelerators?  A PyTorch DataLoader (bench/dlbench.py: 4 workers, batch 32,
# shuffled with a fixed seed) reads many small files whole; after each batch
# the job sleeps batch x DL_SAMPLE_MS (the emulated accelerator's step).
# Reported: samples/s, accelerator utilisation (compute time / wall time) and
# the time to the first batch, for
#   local       the files on the local disk (bench/work/dl-data/dl-N);
#   direct      s3fs over the link, no cache (no use_cache: every read is a
#               GET; the kernel's page cache dropped before the pass);
#   ferry cold  a fresh ferry worker (empty cache) and `ferry fuse`;
#   ferry warm  the same worker and mount again.
# The link: bench/wanlink.sh up in its own namespaces (ferry-dl-remote
# 198.18.0.1, ferry-dl-compute 198.18.0.2; 40 ms one way, 200 Mbit/s, the
# compute side's receive buffer capped: xregion.sh's link).  Remote: s3rver
# holding bucket dl (its own store, bench/work/dl-s3rver, uploaded once on
# the remote side's loopback) on a port picked free from DL_PORTS (default
# 33000-33999).  Every pass starts after the link is quiet and
# `sync; echo 3 > /proc/sys/vm/drop_caches`, and checks its preconditions
# (bench/precond.sh): local crossed nothing; direct carried the dataset over
# the link; ferry cold began on an empty cache and fetched the dataset
# (ferry_ufs_read_bytes_total >= its bytes: a cold pass that fetched nothing
# is a broken run); ferry warm fetched nothing.  A violated one stops the run
# (exit 1) before any report.
# Writes bench/results/dataloader-<UTC date and time>-<mode>.md and
# latest-dataloader[-quick].md; raw data in bench/work/runs/dataloader-<stamp>-<mode>/.
# Needs root (namespaces, TUN, FUSE, drop_caches): without it, says so and
# exits 0 (skipped).  Every mount, process and namespace made here is undone
# on exit.
set -euo pipefail
shopt -s inherit_errexit   # a failed $(ferry_metric ...) stops the run
MODE=${1:-quick}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
PY=/usr/bin/python3
FERRY=$ROOT/build/ferry
S3RVER=$ROOT/.deps/npm/node_modules/.bin/s3rver

case $MODE in
full)  N_FILES=3000 ;;
quick) N_FILES=600 ;;
*) echo "usage: $0 quick|full" >&2; exit 2 ;;
esac
# Developers' settings (any of them set: latest-dataloader* is left alone):
# DL_FILES, DL_FILE_KIB (128), DL_SAMPLE_MS (the accelerator's time per
# sample, 2), DL_WORKERS (4), DL_BATCH (32), DL_SEED (0), DL_FERRY_ARGS
# (options added to the worker), DL_PASSES (which passes: "local direct
# ferry", the default, or any of them; ferry is the cold and warm pair).
N_FILES=${DL_FILES:-$N_FILES}
FILE_KIB=${DL_FILE_KIB:-128}
SAMPLE_MS=${DL_SAMPLE_MS:-2}
WORKERS=${DL_WORKERS:-4}
BATCH=${DL_BATCH:-32}
SEED=${DL_SEED:-0}
DL_PORTS=${DL_PORTS:-33000-33999}
PORT_LO=${DL_PORTS%-*}; PORT_HI=${DL_PORTS#*-}
export WAN_REMOTE=${WAN_REMOTE:-ferry-dl-remote} WAN_COMPUTE=${WAN_COMPUTE:-ferry-dl-compute}
REMOTE_IP=198.18.0.1
BUCKET=dl
FILE_SIZE=$((FILE_KIB * 1024))
DATA_BYTES=$((N_FILES * FILE_SIZE))
PASSES=" ${DL_PASSES:-local direct ferry} "
has() { [[ $PASSES == *" $1 "* ]]; }
PREFIX=dl-$N_FILES-${FILE_KIB}k          # the dataset's directory, locally and in the bucket
# Any one pass at most: 4 readers at one file per 2 RTTs (80 ms) is ~25 files/s;
# s3fs without cache ~10/s; 5x that, and 120 s at least.
PASS_TIMEOUT=$(( N_FILES / 2 > 120 ? N_FILES / 2 : 120 ))

say() { printf '[bench-dataloader %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
if [ "$(id -u)" -ne 0 ]; then
	say "SKIPPED: the DataLoader benchmark needs root (network namespaces and TUN devices for the"
	say "emulated link, FUSE mounts, drop_caches).  Run it as root: sudo bench/dataloader.sh $MODE"
	exit 0
fi
for dev in /dev/net/tun /dev/fuse; do
	[ -c $dev ] || { say "SKIPPED: $dev is missing (no TUN or FUSE in this kernel or container)."; exit 0; }
done

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/dataloader-$STAMP-$MODE
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }
C=(nsenter --net="/run/netns/$WAN_COMPUTE")
R=(nsenter --net="/run/netns/$WAN_REMOTE")

# --- bookkeeping: every mount, process, the link and the cache, undone on exit ---
PIDS=()
MOUNTS=()
LINK_UP=0
MNT=$W/dl-mnt
CACHE=$W/dl-cache
unmount() {
	mountpoint -q "$1" 2>/dev/null || return 0
	fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || fusermount3 -uz "$1" 2>/dev/null ||
		umount -l "$1" 2>/dev/null || true
}
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
	local m p
	for m in "${MOUNTS[@]}"; do unmount "$m"; done
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	PIDS=(); MOUNTS=()
	[ $LINK_UP = 1 ] && "$ROOT/bench/wanlink.sh" down > /dev/null 2>&1
	LINK_UP=0
	rm -rf "$CACHE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A free TCP port on 127.0.0.1 from DL_PORTS (in the namespace given, if any).
free_port() {
	${1:-} $PY - "$PORT_LO" "$PORT_HI" <<'EOF'
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
ports = list(range(lo, hi + 1))
random.shuffle(ports)
for p in ports[:200]:
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    sys.exit(0)
sys.exit("bench-dataloader: no free port in %d-%d" % (lo, hi))
EOF
}
wait_http() { # url seconds [ns-runner]
	local i
	for i in $(seq $(($2 * 10))); do
		${3:-} curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "bench-dataloader: $1 did not answer within $2 s" >&2; return 1
}
wait_mount() { # dir pid seconds
	local i
	for _ in $(seq $(($3 * 10))); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-dataloader: nothing mounted at $1" >&2; return 1
}
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }

# --- tools ----------------------------------------------------------------------
section "preflight"
for t in s3fs fusermount3 nsenter ip iperf3 ping curl gcc node "$PY" "$S3RVER" "$FERRY"; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench-dataloader: $t not found (run scripts/install-deps.sh and make all)" >&2; exit 1; }
done
$PY -c 'import torch, boto3' 2>/dev/null ||
	{ echo "bench-dataloader: $PY lacks torch or boto3 (Debian: python3-torch python3-boto3)" >&2; exit 1; }
STALE=$(find "$ROOT/src" "$ROOT/include" -newer "$FERRY" -type f 2>/dev/null | wc -l)
[ "$STALE" = 0 ] || say "WARNING: $STALE files under src/ and include/ are newer than build/ferry: this run measures the binary as built (make all to rebuild)"
ulimit -n 65536 2>/dev/null || true
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy AWS_CA_BUNDLE
export NO_PROXY='*' no_proxy='*'

# --- dataset: generated once per size, reused ------------------------------------
XD=$W/dl-data
section "dataset: $N_FILES x $FILE_KIB KiB of random bytes in bench/work/dl-data/$PREFIX"
note "# $N_FILES files of $FILE_SIZE bytes (random), $DATA_BYTES bytes in all"
$PY - "$XD/$PREFIX" "$N_FILES" "$FILE_SIZE" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(n):
    p = os.path.join(d, "f-%05d.bin" % i)
    if not (os.path.isfile(p) and os.path.getsize(p) == size):
        with open(p + ".tmp", "wb") as f:
            f.write(os.urandom(size))
        os.rename(p + ".tmp", p)
EOF
[ "$(find "$XD/$PREFIX" -maxdepth 1 -type f | wc -l)" = "$N_FILES" ] ||
	{ echo "bench-dataloader: bench/work/dl-data/$PREFIX holds other files than the dataset's" >&2; exit 1; }
(cd "$XD" && ls "$PREFIX"/*) > "$RUN/keys.txt"

# --- the link ----------------------------------------------------------------------
section "link: bench/wanlink.sh up ($WAN_REMOTE, $WAN_COMPUTE)"
note "WAN_REMOTE=$WAN_REMOTE WAN_COMPUTE=$WAN_COMPUTE WAN_DELAY_MS=${WAN_DELAY_MS:-40} WAN_RATE=${WAN_RATE:-200M} WAN_RMEM=${WAN_RMEM:-2097152} ${WAN_QUEUE:+WAN_QUEUE=$WAN_QUEUE }bench/wanlink.sh up"
LINK_UP=1
"$ROOT/bench/wanlink.sh" up | tee "$RUN/link.txt"
# Bytes the compute side has received over the link (the remote s3rver's
# answers, headers included): every pass's under-store bytes, whoever
# fetched them.
link_rx() {
	ip -n "$WAN_COMPUTE" -s -j link show wan0 |
		$PY -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])'
}
settle() { # until nothing crosses the link (10 s at most)
	local a b
	a=$(link_rx)
	for _ in $(seq 50); do
		sleep 0.2
		b=$(link_rx)
		[ $((b - a)) -lt 4096 ] && return 0
		a=$b
	done
	say "the link was still busy 10 s after the last pass; going on (the pass's checks will tell)"
}

# --- remote: s3rver with the dataset in bucket dl ------------------------------------
S3PORT=$(free_port "${R[*]}")
REMOTE_URL=http://$REMOTE_IP:$S3PORT
section "remote: s3rver in $WAN_REMOTE ($REMOTE_URL), bucket $BUCKET in bench/work/dl-s3rver"
mkdir -p "$W/dl-s3rver"
note "nsenter --net=/run/netns/$WAN_REMOTE env NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/dl-s3rver -a 0.0.0.0 -p $S3PORT -s --configure-bucket $BUCKET"
"${R[@]}" env NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/dl-s3rver" -a 0.0.0.0 -p "$S3PORT" -s \
	--configure-bucket "$BUCKET" > "$W/logs/dl-s3rver.log" 2>&1 < /dev/null &
PIDS+=("$!")
wait_http "http://127.0.0.1:$S3PORT/" 30 "${R[*]}"
marker=$W/dl-s3rver/.uploaded-$PREFIX
if [ -f "$marker" ] && [ -z "$(find "$XD/$PREFIX" -newer "$marker" -type f -print -quit)" ] &&
	[ "$(cat "$marker")" -ge "$N_FILES" ]; then
	say "upload: $N_FILES objects ($PREFIX/) already in s3rver"
else
	say "upload: $N_FILES objects to s3rver (remote loopback)"
	xargs -n 100 -P 2 "${R[@]}" timeout 600 $PY "$ROOT/bench/s3upload.py" "http://127.0.0.1:$S3PORT" "$BUCKET" "$XD" \
		< "$RUN/keys.txt" > "$W/logs/dl-upload.log"
	echo "$N_FILES" > "$marker"
fi
note "nsenter --net=/run/netns/$WAN_REMOTE /usr/bin/python3 bench/s3upload.py http://127.0.0.1:$S3PORT $BUCKET bench/work/dl-data <keys>   # on the remote side's loopback; skipped when already there"
# Nothing else in the bucket's prefix (an earlier run's leftovers would be
# listed and read by the loader too).
n_remote=$("${R[@]}" $PY - "http://127.0.0.1:$S3PORT" "$BUCKET" "$PREFIX/" <<'EOF'
import sys, boto3
from botocore.config import Config
s3 = boto3.session.Session(aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
                           region_name="us-east-1").client(
    "s3", endpoint_url=sys.argv[1], config=Config(s3={"addressing_style": "path"}))
n = 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2], Prefix=sys.argv[3]):
    n += len(page.get("Contents", []))
print(n)
EOF
)
[ "$n_remote" = "$N_FILES" ] || { echo "bench-dataloader: s3rver holds $n_remote objects under $PREFIX/, not $N_FILES" >&2; exit 1; }

# --- machine and versions ---------------------------------------------------------
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
	echo "ferry_binary=build/ferry built $(date -u -r "$FERRY" +%Y-%m-%dT%H:%M:%SZ)"
	echo "ferry_stale=$STALE"
	echo "s3fs_version=$(s3fs --version 2>&1 | head -1 | sed 's/ with .*//')"
	echo "torch_version=$($PY -c 'import torch; print(torch.__version__)')"
	echo "python_version=$($PY --version 2>&1)"
	echo "s3rver_version=$(NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --version 2>&1 | tail -1)"
	echo "link=$(sed -n 's/^wanlink.sh: //p' "$RUN/link.txt")"
	echo "wan_delay_ms=${WAN_DELAY_MS:-40}"; echo "wan_rate=${WAN_RATE:-200M}"; echo "wan_rmem=${WAN_RMEM:-2097152}"
	echo "n_files=$N_FILES"; echo "file_size=$FILE_SIZE"; echo "data_bytes=$DATA_BYTES"
	echo "workers=$WORKERS"; echo "batch=$BATCH"; echo "sample_ms=$SAMPLE_MS"; echo "seed=$SEED"
} > "$RUN/meta.env"
section "link: RTT and throughput (bench/wanlink.sh measure)"
note "bench/wanlink.sh measure   # ping -c 10 -i 0.2 $REMOTE_IP; iperf3 -c $REMOTE_IP -R -t 4 -O 1 [-P 8] (iperf3 -s in $WAN_REMOTE)"
timeout 60 "$ROOT/bench/wanlink.sh" measure >> "$RUN/meta.env"
grep '^link_' "$RUN/meta.env" | tr '\n' ' '; echo

# --- the systems ------------------------------------------------------------------
mkdir -p "$MNT"/{ferry,s3fs}
for m in ferry s3fs; do unmount "$MNT/$m"; done
echo "S3RVER:S3RVER" > "$W/dl-s3fs.passwd"; chmod 600 "$W/dl-s3fs.passwd"
FW_PID=""; FW_CTL=""; FF_PID=""; S3FS_PID=""
start_ferry() { # a worker with an empty cache, s3://dl at /dl, and ferry fuse at $MNT/ferry
	rm -rf "$CACHE"; mkdir -p "$CACHE"
	local cmd=("$FERRY" worker --cache-dir "$CACHE" --cache-size 4G
		--s3-address 127.0.0.1:0 --control-address 127.0.0.1:0 ${DL_FERRY_ARGS:-})
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//}   # fresh, empty cache"
	: > "$W/logs/dl-worker.out"
	"${C[@]}" "${cmd[@]}" >> "$W/logs/dl-worker.out" 2> "$W/logs/dl-worker.log" < /dev/null &
	FW_PID=$!; PIDS+=("$FW_PID")
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$W/logs/dl-worker.out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$FW_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench-dataloader: ferry worker did not start; log:" >&2; tail -20 "$W/logs/dl-worker.log" >&2; exit 1
	fi
	FW_CTL=${BASH_REMATCH[2]}
	cmd=("$FERRY" --worker "$FW_CTL" mount "/$BUCKET" "s3://$BUCKET" --option "s3.endpoint=$REMOTE_URL"
		--option s3.region=us-east-1 --option s3.access_key=S3RVER --option s3.secret_key=S3RVER
		--option s3.path_style=true)
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//}"
	"${C[@]}" timeout 60 "${cmd[@]}" > "$W/logs/dl-mount.out" 2>&1 || { cat "$W/logs/dl-mount.out" >&2; exit 1; }
	cmd=("$FERRY" fuse "$MNT/ferry" --worker "$FW_CTL" --foreground)
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//} &"
	"${C[@]}" "${cmd[@]}" > "$W/logs/dl-fuse.log" 2>&1 < /dev/null &
	FF_PID=$!; PIDS+=("$FF_PID"); MOUNTS+=("$MNT/ferry")
	wait_mount "$MNT/ferry" "$FF_PID" 20 || { cat "$W/logs/dl-fuse.log" >&2; exit 1; }
}
stop_ferry() {
	[ -n "$FF_PID" ] && { unmount "$MNT/ferry"; stop_pid "$FF_PID"; }
	[ -n "$FW_PID" ] && stop_pid "$FW_PID"
	FF_PID=""; FW_PID=""
	rm -rf "$CACHE"
}
ferry_metric() { # name: summed over its label sets
	local m
	kill -0 "$FW_PID" 2>/dev/null || { echo "bench-dataloader: the ferry worker (pid $FW_PID) is gone; its log: bench/work/logs/dl-worker.log" >&2; tail -3 "$W/logs/dl-worker.log" >&2; exit 1; }
	m=$("${C[@]}" curl -sf --max-time 10 "http://$FW_CTL/metrics") ||
		{ echo "bench-dataloader: ferry's /metrics did not answer" >&2; exit 1; }
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f\n", s}' <<< "$m"
}
start_s3fs() { # no use_cache: s3fs keeps no copy of the data (stat cache only: metadata)
	local cmd=(s3fs "$BUCKET" "$MNT/s3fs" -f -o "url=$REMOTE_URL,use_path_request_style,passwd_file=$W/dl-s3fs.passwd,ro")
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//} &   # no use_cache: no data cache"
	"${C[@]}" "${cmd[@]}" > "$W/logs/dl-s3fs.log" 2>&1 < /dev/null &
	S3FS_PID=$!; PIDS+=("$S3FS_PID"); MOUNTS+=("$MNT/s3fs")
	wait_mount "$MNT/s3fs" "$S3FS_PID" 30 || { cat "$W/logs/dl-s3fs.log" >&2; exit 1; }
}
stop_s3fs() { unmount "$MNT/s3fs"; [ -n "$S3FS_PID" ] && stop_pid "$S3FS_PID"; S3FS_PID=""; }

# --- one timed pass ---------------------------------------------------------------------
RES=$RUN/results.tsv
printf 'system\tdir\tsamples\tbytes\twall_s\tcompute_s\tutilisation\tsteady_utilisation\tsamples_per_s\tfirst_batch_s\tlist_s\tquarter_rates\tufs_bytes\tlink_bytes\trole\n' > "$RES"
LOADER=("$PY" "$ROOT/bench/dlbench.py" --workers "$WORKERS" --batch "$BATCH" --sample-ms "$SAMPLE_MS" --seed "$SEED"
	--expect-files "$N_FILES" --expect-bytes "$DATA_BYTES")
note "sync; echo 3 > /proc/sys/vm/drop_caches   # before every pass, after the link is quiet"
note "nsenter --net=/run/netns/$WAN_COMPUTE ${LOADER[*]//$ROOT\//} DIR   # each pass; DIR below"
# pass SYSTEM ROLE DIR: drop caches, run the loader over DIR, check, record.
pass() {
	local sys=$1 role=$2 dir=$3 out ufs0=0 ufs1=0 link0 link1 name="dataloader $1"
	local slack=$((1048576 + 4096 * N_FILES))   # metadata requests (HEADs, listings) only
	note "# $sys: DIR=${dir#"$ROOT"/}"
	settle
	sync; echo 3 > /proc/sys/vm/drop_caches
	if [[ $sys == ferry-* ]]; then
		ufs0=$(ferry_metric ferry_ufs_read_bytes_total)
		if [ "$role" = cold ]; then
			local pages
			pages=$(ferry_metric ferry_cache_pages)
			PRECOND_DETAIL="ferry before the pass: $pages pages cached, $ufs0 bytes fetched since it started"
			precond "$name" empty 0 "$ufs0" 0 "ferry's ferry_ufs_read_bytes_total since it started"
			precond "$name" empty 0 "$pages" 0 "ferry's ferry_cache_pages"
			PRECOND_DETAIL=""
		fi
	fi
	link0=$(link_rx)
	out=$("${C[@]}" timeout "$PASS_TIMEOUT" "${LOADER[@]}" "$dir" 2> "$RUN/pass-$sys.err") ||
		{ echo "bench-dataloader: the $sys pass failed (or ran past $PASS_TIMEOUT s):" >&2; tail -5 "$RUN/pass-$sys.err" >&2; exit 1; }
	link1=$(link_rx)
	[[ $sys == ferry-* ]] && ufs1=$(ferry_metric ferry_ufs_read_bytes_total)
	echo "$out" > "$RUN/pass-$sys.json"
	local ufs=$((ufs1 - ufs0)) link=$((link1 - link0))
	$PY - "$sys" "$dir" "$ufs" "$link" "$role" "$out" >> "$RES" <<'EOF'
import json, sys
s, d, ufs, link, role, out = sys.argv[1:7]
r = json.loads(out)
print("\t".join(str(x) for x in [s, d, r["samples"], r["bytes"], r["wall_s"], r["compute_s"], r["utilisation"],
                                  r["steady_utilisation"], r["samples_per_s"], r["first_batch_s"], r["list_s"],
                                  "/".join("%.1f" % q for q in r.get("quarter_rates", [])) or "-", ufs, link, role]))
EOF
	PRECOND_DETAIL="the pass: $out; ferry fetched $ufs bytes; $link bytes crossed the link"
	case $role in
	none) precond "$name" none 0 "$link" 1048576 "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	direct) precond "$name" direct "$DATA_BYTES" "$link" 0 "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	cold)
		precond "$name" cold "$DATA_BYTES" "$ufs" 0 "ferry's ferry_ufs_read_bytes_total"
		precond "$name" cold "$DATA_BYTES" "$link" 0 "bytes received over the link (wan0 in $WAN_COMPUTE)"
		# A cold pass fetches each file once: more than a tenth over the
		# dataset is read amplification, reported (not a stop).
		[ "$ufs" -le $((DATA_BYTES + DATA_BYTES / 10)) ] ||
			say "NOTE: the cold pass fetched $ufs bytes for a dataset of $DATA_BYTES ($(calc "$ufs / $DATA_BYTES")x)" ;;
	warm)
		precond "$name" warm 0 "$ufs" 0 "ferry's ferry_ufs_read_bytes_total"
		precond "$name" warm 0 "$link" "$slack" "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	esac
	PRECOND_DETAIL=""
	say "$sys: $($PY -c 'import json,sys; r=json.loads(sys.argv[1]); print("%.1f samples/s, utilisation %.3f, first batch %.3f s, wall %.2f s" % (r["samples_per_s"], r["utilisation"], r["first_batch_s"], r["wall_s"]))' "$out"); ferry fetched $(calc "$ufs / 1e6") MB, the link carried $(calc "$link / 1e6") MB"
}

# ======================================================================================
section "passes: $N_FILES files, DataLoader($WORKERS workers, batch $BATCH, shuffle seed $SEED), $SAMPLE_MS ms a sample"
if has local; then
	pass local none "$XD/$PREFIX"
fi
if has direct; then
	start_s3fs
	pass direct-s3fs direct "$MNT/s3fs/$PREFIX"
	stop_s3fs
fi
if has ferry; then
	start_ferry
	pass ferry-cold cold "$MNT/ferry/$BUCKET/$PREFIX"
	pass ferry-warm warm "$MNT/ferry/$BUCKET/$PREFIX"
	echo "ferry_cache_pages_after=$(ferry_metric ferry_cache_pages)" >> "$RUN/meta.env"
	stop_ferry
fi
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"
cleanup

# ======================================================================================
section "report"
OUT=$ROOT/bench/results/dataloader-$STAMP-$MODE
$PY - "$RUN" > "$OUT.md" <<'EOF'
import csv, os, sys
run = sys.argv[1]
env = {}
for line in open(os.path.join(run, "meta.env")):
    if "=" in line:
        k, v = line.rstrip("\n").split("=", 1)
        env[k] = v
rows = {r["system"]: r for r in csv.DictReader(open(os.path.join(run, "results.tsv")), delimiter="\t")}
checks = list(csv.DictReader(open(os.path.join(run, "precond.tsv")), delimiter="\t"))
f = lambda r, k: float(r[k])
mb = int(env["data_bytes"]) / 1e6
print("# DataLoader benchmark (%s, %s)\n" % (env["mode"], env["date_utc"]))
print("A PyTorch DataLoader (`bench/dlbench.py`: %s workers, batch %s, shuffled with seed %s) reads %s files of %d KiB "
      "(%.1f MB) whole; after each batch the job sleeps %s ms a sample (the emulated accelerator).  "
      "Utilisation = compute time / wall time (MLPerf Storage's accelerator utilisation), wall time from the "
      "loader's iterator to the last batch (worker start-up included); steady = after the first batch.  "
      "The link: %s ms one way, WAN_RATE %s (`bench/wanlink.sh`), measured RTT %s ms, iperf3 %s Mbit/s (1 stream), "
      "%s Mbit/s (8 streams).  ferry %s (%s).\n"
      % (env["workers"], env["batch"], env["seed"], env["n_files"], int(env["file_size"]) // 1024, mb, env["sample_ms"],
         env["wan_delay_ms"], env["wan_rate"], env.get("link_rtt_ms_avg", "?"), env.get("link_iperf_1stream_mbit", "?"),
         env.get("link_iperf_8stream_mbit", "?"), env["ferry_rev"], env["ferry_binary"]))
if env.get("ferry_stale", "0") != "0":
    print("**%s files under src/ and include/ are newer than build/ferry: the figures are that binary's.**\n" % env["ferry_stale"])
names = [("local", "local disk"), ("direct-s3fs", "direct (s3fs, no cache)"), ("ferry-cold", "ferry cold (`ferry fuse`)"),
         ("ferry-warm", "ferry warm (same mount)")]
print("## Results\n")
print("| pass | samples/s | utilisation | steady utilisation | first batch (s) | wall (s) | compute (s) | listing (s) | fetched by ferry (MB) | over the link (MB) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
quart = []
for k, label in names:
    r = rows.get(k)
    if not r:
        continue
    print("| %s | %.1f | %.3f | %.3f | %.3f | %.2f | %.2f | %.3f | %s | %.2f |" % (
        label, f(r, "samples_per_s"), f(r, "utilisation"), f(r, "steady_utilisation"), f(r, "first_batch_s"),
        f(r, "wall_s"), f(r, "compute_s"), f(r, "list_s"),
        ("%.2f" % (int(r["ufs_bytes"]) / 1e6)) if k.startswith("ferry") else "-", int(r["link_bytes"]) / 1e6))
    quart.append("| %s | %s |" % (label, " | ".join(r["quarter_rates"].split("/")) if r["quarter_rates"] != "-" else "- | - | - | -"))
print("\nDelivery rate (samples/s) by quarter of the pass's batches after the first (the loader's rate, "
      "compute included; a rate that falls as the pass goes on shows here):\n")
print("| pass | 1st | 2nd | 3rd | 4th |")
print("|---|---:|---:|---:|---:|")
print("\n".join(quart))
print("\n## Ratios\n")
pairs = [(a, b, label) for a, b, label in [
    ("ferry-cold", "direct-s3fs", "ferry cold / direct"), ("ferry-warm", "local", "ferry warm / local"),
    ("direct-s3fs", "local", "direct / local"), ("ferry-cold", "local", "ferry cold / local")] if a in rows and b in rows]
if pairs:
    print("| ratio | samples/s | utilisation |")
    print("|---|---:|---:|")
else:
    print("None: this run did not have both passes of any pair (DL_PASSES).")
for a, b, label in pairs:
    print("| %s | %.2f | %.2f |" % (label, f(rows[a], "samples_per_s") / f(rows[b], "samples_per_s"),
                                    f(rows[a], "utilisation") / f(rows[b], "utilisation")))
print("\n## Preconditions (`bench/precond.sh`)\n")
print("| pass | role | want | got | slack | counter | verdict |")
print("|---|---|---:|---:|---:|---|---|")
for c in checks:
    print("| %s | %s | %s | %s | %s | %s | %s |" % (c["pass"], c["role"], c["want"], c["got"], c["slack"], c["counter"], c["verdict"]))
print("\n## Machine and versions\n")
for k in ["host_cpu", "host_nproc", "host_mem", "host_kernel", "host_disk", "ferry_rev", "ferry_version", "ferry_binary",
          "s3fs_version", "torch_version", "python_version", "s3rver_version", "link", "total_seconds"]:
    if k in env:
        print("- %s: %s" % (k, env[k]))
print("\n## Commands\n\n```")
print(open(os.path.join(run, "commands.txt")).read().strip())
print("```")
EOF
LATEST=latest-dataloader; [ "$MODE" = quick ] && LATEST=latest-dataloader-quick
if [ -z "${DL_FILES:-}${DL_FILE_KIB:-}${DL_SAMPLE_MS:-}${DL_WORKERS:-}${DL_BATCH:-}${DL_SEED:-}${DL_FERRY_ARGS:-}${DL_PASSES:-}" ]; then
	cp "$OUT.md" "$ROOT/bench/results/$LATEST.md"
	say "report: ${OUT#"$ROOT"/}.md (and bench/results/$LATEST.md), $(( $(date +%s) - T_START )) s in all"
else
	say "report: ${OUT#"$ROOT"/}.md ($LATEST.md left alone: DL_* settings in effect), $(( $(date +%s) - T_START )) s in all"
fi
sed -n '/^## Results/,/^## Preconditions/p' "$OUT.md" | sed '$d'
