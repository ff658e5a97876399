#!/usr/bin/env bash
# bench/xregion.sh quick|full: the cross-region benchmark (bench/README.md 4.).
# The question users ask of a cache like ferry: training data sits in a
# bucket in another region; how long does each pass over it take directly,
# through ferry (cold, then warm), and through the other ways of caching it?
#
#   - the link: bench/wanlink.sh up (namespaces ferry-xr-remote 198.18.0.1
#     and ferry-xr-compute 198.18.0.2 joined by bench/wanlink.c: 40 ms one
#     way, 200 Mbit/s, a bounded queue, the compute side's TCP receive
#     buffer capped), RTT and throughput measured before each part;
#   - remote: s3rver holding bucket xr: Parquet files (DuckDB, 32-128 MiB,
#     XR_DATA_MIB in all) and small files (16 KiB each);
#   - compute: ferry's worker (S3 gateway) and `ferry fuse`, s3fs without
#     cache (direct), s3fs use_cache, rclone --vfs-cache-mode full, nginx
#     proxy_cache, and the readers (bench/xread.py, bench/xduck.js);
#   - local limits: the same files read from the local disk, and served by
#     nginx from the local disk over loopback.
# Each pass starts after `sync; echo 3 > /proc/sys/vm/drop_caches` (a dataset
# larger than RAM: a warm pass reads the cache's disk, not memory), and checks
# its precondition from ferry's counters and the link's (bench/precond.sh):
# a cold pass started from an empty cache and fetched every byte it read over
# the link, a warm pass fetched nothing; a violated one stops the run.
# Writes bench/results/xregion-<UTC date and time>-<mode>.md, its chart
# (.png, gnuplot) and stable copies latest-xregion[-quick].{md,png}; raw data
# in bench/work/runs/xregion-<stamp>-<mode>/.  Needs root: without it, says
# so and exits 0 (skipped).  Every mount, process and namespace made here is
# undone on exit.
set -euo pipefail
MODE=${1:-quick}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
PY=/usr/bin/python3
FERRY=$ROOT/build/ferry
S3RVER=$ROOT/.deps/npm/node_modules/.bin/s3rver
export WAN_REMOTE=${WAN_REMOTE:-ferry-xr-remote} WAN_COMPUTE=${WAN_COMPUTE:-ferry-xr-compute}
REMOTE_IP=198.18.0.1
S3PORT=4568
REMOTE_URL=http://$REMOTE_IP:$S3PORT
BUCKET=xr

case $MODE in
full)  DATA_MIB=${XR_DATA_MIB:-1024}; N_SMALL=${XR_SMALL:-10000}; N_SMALL_FUSE=${XR_SMALL_FUSE:-1000}; PASSES=3; PASSES2=2 ;;
quick) DATA_MIB=${XR_DATA_MIB:-128};  N_SMALL=${XR_SMALL:-300};   N_SMALL_FUSE=${XR_SMALL_FUSE:-100};  PASSES=2; PASSES2=2 ;;
report) ;;
*) echo "usage: $0 quick|full (or: $0 report RUNDIR)" >&2; exit 2 ;;
esac
if [ "$MODE" = report ]; then
	exec $PY "$ROOT/bench/xreport.py" "${2:?usage: $0 report RUNDIR}" "${3:-}"
fi
# PASSES for the headline tables (DuckDB over FUSE, boto3 over S3) and the
# peers; PASSES2 for the others (full reads over FUSE, 2-column scans, small
# files), to keep a full run near half an hour.  Small files over FUSE: the
# first N_SMALL_FUSE of them (s3fs without cache takes ~75 ms a file).
SMALL_SIZE=16384
N_SMALL_FUSE=$((N_SMALL_FUSE < N_SMALL ? N_SMALL_FUSE : N_SMALL))
PEERS=(s3fs-cache rclone)
# XR_PARTS picks parts (developers): local s3 fuse peers profile (default:
# all; profile runs in full mode only).  XR_SELFTEST=prewarm|restart breaks
# the S3 part's cold or warm pass on purpose: the run must stop with
# PRECONDITION VIOLATED (a test of bench/precond.sh's checks).
PARTS=" ${XR_PARTS:-local s3 fuse peers profile} "
has() { [[ $PARTS == *" $1 "* ]]; }
SMALL_THREADS=32   # small files: many requests in flight, as a loader does
LARGE_THREADS=1    # large files: one reader, one file at a time, one stream

say() { printf '[bench-xregion %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
if [ "$(id -u)" -ne 0 ]; then
	say "SKIPPED: the cross-region benchmark needs root (network namespaces and TUN devices for the"
	say "emulated link, FUSE mounts, drop_caches).  Run it as root: sudo bench/xregion.sh $MODE"
	exit 0
fi
for dev in /dev/net/tun /dev/fuse; do
	[ -c $dev ] || { say "SKIPPED: $dev is missing (no TUN or FUSE in this kernel or container)."; exit 0; }
done

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/xregion-$STAMP-$MODE
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
# Every pass checks what it assumed of the caches (bench/precond.sh).
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }
# In the compute or the remote namespace (nsenter --net: the mount namespace
# stays the host's, so FUSE mounts made there are seen everywhere).  Arrays,
# not functions: a function run with & would be a subshell, and $! its pid.
C=(nsenter --net="/run/netns/$WAN_COMPUTE")
R=(nsenter --net="/run/netns/$WAN_REMOTE")

# --- bookkeeping: every mount, process and the link, undone on exit ---------
PIDS=()
MOUNTS=()
LINK_UP=0
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
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { # url seconds [ns-runner]
	local i
	for i in $(seq $(($2 * 10))); do
		${3:-} curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "bench-xregion: $1 did not answer within $2 s" >&2; return 1
}
wait_mount() { # dir pid seconds
	local i
	for i in $(seq $(($3 * 10))); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench-xregion: nothing mounted at $1" >&2; return 1
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }

# --- tools ----------------------------------------------------------------------
section "preflight"
MISSING=()
for t in s3fs rclone nginx iperf3 ping gnuplot fusermount3 nsenter; do
	command -v "$t" >/dev/null 2>&1 || MISSING+=("$t")
done
if [ ${#MISSING[@]} -gt 0 ]; then
	echo "bench-xregion: missing ${MISSING[*]}: run scripts/install-deps.sh (it installs s3fs rclone nginx-light iperf3 iputils-ping gnuplot-nox fuse3)" >&2
	exit 1
fi
for t in "$PY" "$S3RVER" "$FERRY" node curl gcc; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench-xregion: $t not found (run make deps all)" >&2; exit 1; }
done
[ -d "$ROOT/.deps/npm/node_modules/@duckdb/node-api" ] ||
	{ echo "bench-xregion: @duckdb/node-api missing in .deps/npm (run scripts/install-deps.sh)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy AWS_CA_BUNDLE
export NO_PROXY='*' no_proxy='*'

# --- dataset: generated once per size, reused ------------------------------------
XD=$W/xr-data
PQ=parquet-$DATA_MIB
section "dataset: ~$DATA_MIB MiB of Parquet in bench/work/xr-data/$PQ, $N_SMALL x $((SMALL_SIZE / 1024)) KiB in bench/work/xr-data/small"
if [ ! -f "$XD/$PQ/.done" ]; then
	rm -rf "$XD/$PQ"
	note "node bench/xduck.js gen bench/work/xr-data/$PQ $DATA_MIB"
	node "$ROOT/bench/xduck.js" gen "$XD/$PQ" "$DATA_MIB" > "$W/logs/xr-gen.log"
	touch "$XD/$PQ/.done"
fi
$PY - "$XD/small" "$N_SMALL" "$SMALL_SIZE" <<'EOF'
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
(cd "$XD" && ls "$PQ"/*.parquet) > "$RUN/keys-large.txt"
for i in $(seq 0 $((N_SMALL - 1))); do printf 'small/f-%05d.bin\n' "$i"; done > "$RUN/keys-small.txt"
head -n "$N_SMALL_FUSE" "$RUN/keys-small.txt" > "$RUN/keys-smallfuse.txt"
LARGE_BYTES=$(cd "$XD" && cat "$RUN/keys-large.txt" | xargs stat -c %s | awk '{s += $1} END {print s}')
N_LARGE=$(wc -l < "$RUN/keys-large.txt")
SMALL_BYTES=$((N_SMALL * SMALL_SIZE))
note "# large: $N_LARGE Parquet files, $LARGE_BYTES bytes: $(cd "$XD" && xargs stat -c %s < "$RUN/keys-large.txt" | awk '{printf "%s%.0f", sep, $1 / 1048576; sep = ", "}') MiB"

# --- the link ----------------------------------------------------------------------
section "link: bench/wanlink.sh up"
note "WAN_DELAY_MS=${WAN_DELAY_MS:-40} WAN_RATE=${WAN_RATE:-200M} WAN_RMEM=${WAN_RMEM:-2097152} ${WAN_QUEUE:+WAN_QUEUE=$WAN_QUEUE }bench/wanlink.sh up"
"$ROOT/bench/wanlink.sh" up | tee "$RUN/link.txt"
LINK_UP=1
note "$(sed -n 's/^wanlink.sh: //p' "$RUN/link.txt")"
WL_PID=$(cat "$W/wanlink.pid")
# Bytes the compute side has received over the link (remote -> compute: data
# and answers from the remote s3rver, TCP/IP headers included): the
# under-store bytes of every pass, whatever system it measures.
link_rx() {
	ip -n "$WAN_COMPUTE" -s -j link show wan0 |
		$PY -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])'
}
# Waits until nothing crosses the link (10 s at most): a previous pass's
# read-ahead or a mount's background fetches would otherwise land in the
# next pass (and, fetched ahead, make it look faster).
settle() {
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

# --- remote: s3rver with the dataset in bucket xr -----------------------------------
section "remote: s3rver in $WAN_REMOTE ($REMOTE_URL), bucket $BUCKET in bench/work/xr-s3rver"
mkdir -p "$W/xr-s3rver"
note "nsenter --net=/run/netns/$WAN_REMOTE env NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/xr-s3rver -a 0.0.0.0 -p $S3PORT -s --configure-bucket $BUCKET"
"${R[@]}" env NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/xr-s3rver" -a 0.0.0.0 -p "$S3PORT" -s \
	--configure-bucket "$BUCKET" > "$W/logs/xr-s3rver.log" 2>&1 < /dev/null &
S3_PID=$!; PIDS+=("$S3_PID")
wait_http "http://127.0.0.1:$S3PORT/" 30 "${R[*]}"
upload() { # marker keyfile: uploads inside the remote namespace (loopback, not the link)
	local marker=$W/xr-s3rver/.uploaded-$1 dir
	dir=$XD/$(dirname "$(head -1 "$2")")
	if [ -f "$marker" ] && [ -z "$(find "$dir" -newer "$marker" -type f -print -quit)" ] &&
		[ "$(cat "$marker")" -ge "$(wc -l < "$2")" ]; then
		say "upload: $(wc -l < "$2") objects ($(basename "$dir")/) already in s3rver"
		return 0
	fi
	xargs "${R[@]}" $PY "$ROOT/bench/s3upload.py" "http://127.0.0.1:$S3PORT" "$BUCKET" "$XD" < "$2"
	wc -l < "$2" > "$marker"
}
note "nsenter --net=/run/netns/$WAN_REMOTE /usr/bin/python3 bench/s3upload.py http://127.0.0.1:$S3PORT $BUCKET bench/work/xr-data <keys>   # on the remote side's loopback; skipped when already there"
upload "$PQ" "$RUN/keys-large.txt"
upload small "$RUN/keys-small.txt"

# --- machine and versions -----------------------------------------------------------
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
	echo "s3fs_version=$(s3fs --version 2>&1 | head -1 | sed 's/ with .*//')"
	echo "rclone_version=$(rclone version 2>/dev/null | head -1)"
	echo "nginx_version=$(nginx -v 2>&1 | head -1)"
	echo "duckdb_version=$(node -e "console.log(require('$ROOT/.deps/npm/node_modules/@duckdb/node-api/package.json').version)")"
	echo "boto3_version=$($PY -c 'import boto3; print(boto3.__version__)')"
	echo "node_version=$(node --version)"
	echo "s3rver_version=$(NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --version 2>&1 | tail -1)"
	echo "link=$(sed -n 's/^wanlink.sh: //p' "$RUN/link.txt")"
	echo "wan_delay_ms=${WAN_DELAY_MS:-40}"; echo "wan_rate=${WAN_RATE:-200M}"; echo "wan_rmem=${WAN_RMEM:-2097152}"
	echo "n_large=$N_LARGE"; echo "large_bytes=$LARGE_BYTES"; echo "n_small=$N_SMALL"; echo "small_bytes=$SMALL_BYTES"
	echo "passes=$PASSES"; echo "passes2=$PASSES2"; echo "n_small_fuse=$N_SMALL_FUSE"; echo "small_threads=$SMALL_THREADS"; echo "large_threads=$LARGE_THREADS"
} > "$RUN/meta.env"
measure_link() { # label
	say "link before $1: RTT and throughput"
	"$ROOT/bench/wanlink.sh" measure | sed "s/^link_/link_$1_/" >> "$RUN/meta.env"
	grep "^link_$1_" "$RUN/meta.env" | tr '\n' ' '; echo
}
note "bench/wanlink.sh measure   # before each part: ping -c 10 -i 0.2 198.18.0.1; iperf3 -c 198.18.0.1 -R -t 4 -O 1 [-P 8] (iperf3 -s in $WAN_REMOTE)"

# --- the systems ------------------------------------------------------------------------
MNT=$W/xr-mnt
mkdir -p "$MNT"/{ferry,s3fs,s3fs-cache,rclone}
for m in ferry s3fs s3fs-cache rclone; do unmount "$MNT/$m"; done
echo "S3RVER:S3RVER" > "$W/xr-s3fs.passwd"; chmod 600 "$W/xr-s3fs.passwd"
export RCLONE_CONFIG_XR_TYPE=s3 RCLONE_CONFIG_XR_PROVIDER=Other RCLONE_CONFIG_XR_ENDPOINT=$REMOTE_URL \
	RCLONE_CONFIG_XR_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_XR_SECRET_ACCESS_KEY=S3RVER \
	RCLONE_CONFIG_XR_REGION=us-east-1 RCLONE_CONFIG_XR_FORCE_PATH_STYLE=true
FW_PID=""; FW_CTL=""; FW_S3=""; FF_PID=""
declare -A MPID=()

start_ferry() { # s3|fuse: a worker with an empty cache and s3://xr at /xr; with fuse, ferry fuse too
	rm -rf "$W/xr-cache"; mkdir -p "$W/xr-cache"
	local cmd=("$FERRY" worker --cache-dir "$W/xr-cache" --cache-size 16G
		--s3-address 127.0.0.1:0 --control-address 127.0.0.1:0 ${XR_FERRY_ARGS:-})
	[ -z "$FW_NOTED" ] && note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]#$ROOT/}   # fresh, empty cache before each cold pass"
	# Emptied here, not by the worker's own redirection: until the new
	# process opens it, it holds the previous worker's ready line, and
	# the loop below must not take that one's addresses for this one's.
	: > "$W/logs/xr-worker.out"
	"${C[@]}" "${cmd[@]}" >> "$W/logs/xr-worker.out" 2> "$W/logs/xr-worker.log" < /dev/null &
	FW_PID=$!; PIDS+=("$FW_PID"); FW_FRESH=1
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$W/logs/xr-worker.out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$FW_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench-xregion: ferry worker did not start; log:" >&2; tail -20 "$W/logs/xr-worker.log" >&2; exit 1
	fi
	FW_S3=${BASH_REMATCH[1]}; FW_CTL=${BASH_REMATCH[2]}
	cmd=("$FERRY" --worker "$FW_CTL" mount "/$BUCKET" "s3://$BUCKET" --option "s3.endpoint=$REMOTE_URL"
		--option s3.region=us-east-1 --option s3.access_key=S3RVER --option s3.secret_key=S3RVER
		--option s3.path_style=true)
	[ -z "$FW_NOTED" ] && note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]#$ROOT/}"
	"${C[@]}" "${cmd[@]}" > "$W/logs/xr-mount.out" 2>&1 || { cat "$W/logs/xr-mount.out" >&2; exit 1; }
	FW_NOTED=1
	# The S3 part reads through the gateway only: no FUSE mount of its
	# worker, so nothing on this machine can read through (and warm) its
	# cache behind the benchmark's back.
	[ "$1" = fuse ] || return 0
	cmd=("$FERRY" fuse "$MNT/ferry" --worker "$FW_CTL" --foreground)
	[ -z "$FF_NOTED" ] && note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//} &   # for the FUSE part"
	"${C[@]}" "${cmd[@]}" > "$W/logs/xr-fuse.log" 2>&1 < /dev/null &
	FF_PID=$!; PIDS+=("$FF_PID"); MOUNTS+=("$MNT/ferry")
	wait_mount "$MNT/ferry" "$FF_PID" 20 || { cat "$W/logs/xr-fuse.log" >&2; exit 1; }
	FF_NOTED=1
}
FW_NOTED=""; FF_NOTED=""; FW_FRESH=0
stop_ferry() {
	[ -n "$FF_PID" ] && { unmount "$MNT/ferry"; stop_pid "$FF_PID"; }
	[ -n "$FW_PID" ] && stop_pid "$FW_PID"
	FF_PID=""; FW_PID=""
	rm -rf "$W/xr-cache"
}
ferry_metric() { # name: sum over label sets (run in $(...): a failure fails the assignment, and set -e stops)
	local m
	kill -0 "$FW_PID" 2>/dev/null || { echo "bench-xregion: the ferry worker (pid $FW_PID) is gone; its log: bench/work/logs/xr-worker.log" >&2; tail -3 "$W/logs/xr-worker.log" >&2; exit 1; }
	m=$("${C[@]}" curl -sf --max-time 10 "http://$FW_CTL/metrics") ||
		{ echo "bench-xregion: ferry's /metrics did not answer" >&2; exit 1; }
	awk -v n="$1" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f\n", s}' <<< "$m"
}
declare -A NOTED=()
start_fuse() { # s3fs|s3fs-cache|rclone, with an empty cache
	local s=$1 cmd
	unmount "$MNT/$s"
	case $s in
	s3fs)  cmd=(s3fs "$BUCKET" "$MNT/s3fs" -f -o "url=$REMOTE_URL,use_path_request_style,passwd_file=$W/xr-s3fs.passwd,ro") ;;
	s3fs-cache)
		rm -rf "$W/xr-s3fs-cache"; mkdir -p "$W/xr-s3fs-cache"
		cmd=(s3fs "$BUCKET" "$MNT/s3fs-cache" -f -o "use_cache=$W/xr-s3fs-cache,url=$REMOTE_URL,use_path_request_style,passwd_file=$W/xr-s3fs.passwd,ro") ;;
	rclone)
		rm -rf "$W/xr-rclone-cache"; mkdir -p "$W/xr-rclone-cache"
		cmd=(rclone mount "xr:$BUCKET" "$MNT/rclone" --config /dev/null --read-only --vfs-cache-mode full
			--vfs-cache-max-size 16G --cache-dir "$W/xr-rclone-cache") ;;
	esac
	if [ -z "${NOTED[$s]:-}" ]; then
		[ $s = rclone ] && note "RCLONE_CONFIG_XR_TYPE=s3 RCLONE_CONFIG_XR_PROVIDER=Other RCLONE_CONFIG_XR_ENDPOINT=$REMOTE_URL RCLONE_CONFIG_XR_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_XR_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_XR_REGION=us-east-1 RCLONE_CONFIG_XR_FORCE_PATH_STYLE=true \\"
		note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//} &   # empty cache before each cold pass"
		NOTED[$s]=1
	fi
	"${C[@]}" "${cmd[@]}" > "$W/logs/xr-$s.log" 2>&1 < /dev/null &
	MPID[$s]=$!; PIDS+=("${MPID[$s]}"); MOUNTS+=("$MNT/$s")
	wait_mount "$MNT/$s" "${MPID[$s]}" 30 || { cat "$W/logs/xr-$s.log" >&2; exit 1; }
}
stop_fuse() {
	unmount "$MNT/$1"
	[ -n "${MPID[$1]:-}" ] && stop_pid "${MPID[$1]}"
	MPID[$1]=""
}

NGX=$W/xr-nginx
NG_PID=""
start_nginx() { # in the compute namespace: :8480 proxy_cache in front of the remote, :8481 the local files
	rm -rf "$NGX"; mkdir -p "$NGX/tmp" "$NGX/cache"
	cat > "$NGX/nginx.conf" <<EOF
# generated by bench/xregion.sh
user root root;
worker_processes auto;
daemon off;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	default_type application/octet-stream;
	client_body_temp_path $NGX/tmp/body;
	proxy_temp_path $NGX/tmp/proxy;
	fastcgi_temp_path $NGX/tmp/fastcgi;
	uwsgi_temp_path $NGX/tmp/uwsgi;
	scgi_temp_path $NGX/tmp/scgi;
	proxy_cache_path $NGX/cache levels=1:2 keys_zone=xr:32m max_size=16g inactive=1d use_temp_path=off;
	upstream remote { server $REMOTE_IP:$S3PORT; keepalive 64; }
	server {
		# The S3 path's caching proxy: GETs of objects are cached by path;
		# the client's Host header goes upstream so its signature holds.
		listen 127.0.0.1:8480;
		location / {
			proxy_pass http://remote;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$http_host;
			proxy_cache xr;
			proxy_cache_key \$uri;
			proxy_cache_valid 200 1d;
			proxy_cache_lock on;
			proxy_cache_lock_timeout 300s;
			proxy_max_temp_file_size 0;
			proxy_read_timeout 300s;
		}
	}
	server {
		# The local limit: the same files from the local disk, same URLs.
		listen 127.0.0.1:8481;
		location /$BUCKET/ { alias $XD/; }
	}
}
EOF
	"${C[@]}" nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" > "$W/logs/xr-nginx.out" 2>&1 < /dev/null &
	NG_PID=$!; PIDS+=("$NG_PID")
	wait_http "http://127.0.0.1:8481/$BUCKET/$(head -1 "$RUN/keys-large.txt")" 10 "${C[*]}"
}

# --- the readers, one timed pass each ------------------------------------------------
RES=$RUN/results.tsv
printf 'part\tsystem\treader\tpass\tfiles\tbytes\tseconds\tufs_bytes\trole\tneed\tlink_bytes\tslack\n' > "$RES"
declare -A READER_NOTED=()
# pass PART SYSTEM READER N: drop caches, run the reader for SYSTEM, record.
pass() {
	local part=$1 sys=$2 rd=$3 n=$4 keys out ufs0=0 ufs1=0 cmd=() base files bytes secs
	case $part in small) keys=$RUN/keys-small.txt ;; smallfuse) keys=$RUN/keys-smallfuse.txt ;; *) keys=$RUN/keys-large.txt ;; esac
	local threads=$LARGE_THREADS; [[ $part == small* ]] && threads=$SMALL_THREADS
	case $sys in
	direct-s3) base=$REMOTE_URL ;;
	ferry-s3) base=http://$FW_S3 ;;
	nginx-cache) base=http://127.0.0.1:8480 ;;
	nginx-local) base=http://127.0.0.1:8481 ;;
	direct-s3fs) base=$MNT/s3fs ;;
	ferry-fuse) base=$MNT/ferry/$BUCKET ;;
	s3fs-cache) base=$MNT/s3fs-cache ;;
	rclone) base=$MNT/rclone ;;
	local) base=$XD ;;
	esac
	case $rd in
	s3) cmd=($PY "$ROOT/bench/xread.py" s3 "$base" "$BUCKET" "$keys" "$threads") ;;
	fs) cmd=($PY "$ROOT/bench/xread.py" fs "$base" "$keys" "$threads") ;;
	duck-all|duck-two) cmd=(node "$ROOT/bench/xduck.js" scan "$base/$PQ/*.parquet" "${rd#duck-}") ;;
	curl8) # the link's reference: every 1 MiB range, 8 at a time (ferry's default window and page size)
		local k sz p2 cfg=$RUN/curl8.cfg
		: > "$cfg"
		while read -r k; do
			sz=$(stat -c %s "$XD/$k")
			for p2 in $(seq 0 $(((sz - 1) / 1048576))); do
				[ -s "$cfg" ] && echo next >> "$cfg"
				printf 'url = "%s/%s/%s"\nrange = "%d-%d"\noutput = "/dev/null"\nfail\nwrite-out = "%%{size_download}\\n"\n' \
					"$base" "$BUCKET" "$k" $((p2 * 1048576)) $((p2 * 1048576 + 1048575)) >> "$cfg"
			done
		done < "$keys"
		cmd=(sh -c 'n=$(wc -l < "$1"); t0=$(date +%s.%N); curl -s --no-progress-meter --parallel --parallel-max 8 -K "$2" > "$3"; t1=$(date +%s.%N); echo "$n $(awk "{s += \$1} END {print s}" "$3") $(awk "BEGIN {print $t1 - $t0}")"' sh "$keys" "$cfg" "$RUN/curl8.out") ;;
	esac
	if [ "$rd" = curl8 ] && [ -z "${READER_NOTED[$rd-$part]:-}" ]; then
		note "nsenter --net=/run/netns/$WAN_COMPUTE curl -s --no-progress-meter --parallel --parallel-max 8 -K <one operation per 1 MiB range of every large object under $base/$BUCKET: url, range, output /dev/null, fail, write-out size_download>   # the link's reference"
		READER_NOTED[$rd-$part]=1
	fi
	if [ -z "${READER_NOTED[$rd-$part]:-}" ]; then
		note "nsenter --net=/run/netns/$WAN_COMPUTE $(echo "${cmd[*]}" | sed "s|$RUN/||g; s|$ROOT/||g")   # $part/$rd, e.g. $sys"
		READER_NOTED[$rd-$part]=1
	fi
	# What the pass reads (the bytes it must have fetched when cold), how
	# many objects (the metadata allowance of a warm pass), and its role.
	local want=$LARGE_BYTES nobj=$N_LARGE role link0 link1 name="$part $sys $rd $n"
	[ "$part" = small ] && { want=$SMALL_BYTES; nobj=$N_SMALL; }
	[ "$part" = smallfuse ] && { want=$((N_SMALL_FUSE * SMALL_SIZE)); nobj=$N_SMALL_FUSE; }
	local need=$want
	[ "$rd" = duck-two ] && need=$((want / 10)) # at least a tenth: its 2 of 6 columns are about a fifth
	local slack=$((1048576 + 4096 * nobj + 512 * N_SMALL)) # HEADs and listings only
	case $sys in
	local|nginx-local) role=none ;;
	direct-*) role=direct ;;
	*) role=warm; [ "$n" = 1 ] && role=cold ;;
	esac
	settle
	sync; echo 3 > /proc/sys/vm/drop_caches
	if [[ $sys == ferry-* ]]; then
		ufs0=$(ferry_metric ferry_ufs_read_bytes_total)
		if [ "$FW_FRESH" = 1 ]; then
			# Its first pass: nothing may have gone through this worker yet.
			local pages reqs hit miss
			pages=$(ferry_metric ferry_cache_pages); reqs=$(ferry_metric ferry_s3_requests_total)
			hit=$(ferry_metric ferry_cache_hit_bytes_total); miss=$(ferry_metric ferry_cache_miss_bytes_total)
			PRECOND_DETAIL="ferry before the pass: $pages pages cached; since it started: $reqs S3 requests, $hit + $miss bytes served (nothing in this script reads through it before this pass)"
			precond "$name" empty 0 "$ufs0" 0 "ferry's ferry_ufs_read_bytes_total since it started"
			precond "$name" empty 0 "$pages" 0 "ferry's ferry_cache_pages"
			PRECOND_DETAIL=""
			FW_FRESH=0
		fi
	fi
	link0=$(link_rx)
	out=$("${C[@]}" "${cmd[@]}") || { echo "bench-xregion: $part $sys $rd pass $n failed" >&2; exit 1; }
	link1=$(link_rx)
	if [[ $sys == ferry-* ]]; then ufs1=$(ferry_metric ferry_ufs_read_bytes_total); fi
	case $rd in
	s3|fs|curl8) read -r files bytes secs <<< "$out"
		[ "$bytes" = "$want" ] || { echo "bench-xregion: $sys read $bytes bytes, not $want" >&2; exit 1; } ;;
	*) read -r rows secs <<< "$out"; files=$N_LARGE; bytes=$LARGE_BYTES
		[ -z "${ROWS:-}" ] && ROWS=$rows
		[ "$rows" = "$ROWS" ] || { echo "bench-xregion: $sys DuckDB counted $rows rows, not $ROWS" >&2; exit 1; } ;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$sys" "$rd" "$n" "$files" "$bytes" "$secs" $((ufs1 - ufs0)) \
		"$role" "$need" $((link1 - link0)) "$slack" >> "$RES"
	# The pass's preconditions: ferry's own count of the bytes it fetched
	# (exact: no slack when warm), and the bytes that crossed the link
	# (every system; headers and metadata requests included).
	PRECOND_DETAIL="the pass took $secs s; ferry fetched $((ufs1 - ufs0)) bytes; $((link1 - link0)) bytes crossed the link"
	case $role in
	none) precond "$name" none 0 $((link1 - link0)) 1048576 "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	warm)
		[[ $sys == ferry-* ]] && precond "$name" warm 0 $((ufs1 - ufs0)) 0 "ferry's ferry_ufs_read_bytes_total"
		precond "$name" warm 0 $((link1 - link0)) "$slack" "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	*)
		[[ $sys == ferry-* ]] && precond "$name" "$role" "$need" $((ufs1 - ufs0)) 0 "ferry's ferry_ufs_read_bytes_total"
		precond "$name" "$role" "$need" $((link1 - link0)) 0 "bytes received over the link (wan0 in $WAN_COMPUTE)" ;;
	esac
	PRECOND_DETAIL=""
	say "$part $sys $rd pass $n: $secs s, $(calc "$bytes / $secs / 1e6") MB/s$([[ $sys == ferry-* ]] && echo ", from the remote $(calc "($ufs1 - $ufs0) / 1e6") MB")"
}
passes() { local i; for i in $(seq "$PASSES"); do pass "$@" "$i"; done; }
passes2() { local i; for i in $(seq "$PASSES2"); do pass "$@" "$i"; done; }

note "sync; echo 3 > /proc/sys/vm/drop_caches   # before every pass"
# ======================================================================================
# Local limits first (no link involved): the bytes from the local disk.
section "local limits: the files on the local disk, and nginx serving them on loopback"
start_nginx
note "nsenter --net=/run/netns/$WAN_COMPUTE nginx -p bench/work/xr-nginx -c bench/work/xr-nginx/nginx.conf   # config in the report"
if has local; then
pass large local fs 1
pass large local duck-all 1
pass large local duck-two 1
pass large nginx-local s3 1
pass small local fs 1
pass smallfuse local fs 1
pass small nginx-local s3 1
fi

# ======================================================================================
section "S3 API, large files: direct (boto3 -> remote s3rver), ferry's gateway, nginx proxy_cache"
if has s3; then
measure_link s3
start_ferry s3
pass large direct-s3 curl8 1
passes large direct-s3 s3
case ${XR_SELFTEST:-} in
prewarm) # a test of the checks: the cold pass below is not cold, and the run must stop
	say "XR_SELFTEST=prewarm: reading the large files through ferry before its cold pass"
	"${C[@]}" $PY "$ROOT/bench/xread.py" s3 "http://$FW_S3" "$BUCKET" "$RUN/keys-large.txt" 1 > /dev/null ;;
restart) # a test of the checks: pass 2 below runs on a fresh worker, so it is not warm
	pass large ferry-s3 s3 1
	say "XR_SELFTEST=restart: a fresh worker before the warm pass"
	stop_ferry; start_ferry s3; FW_FRESH=0
	pass large ferry-s3 s3 2 ;;
esac
passes large ferry-s3 s3
passes large nginx-cache s3
section "S3 API, small files"
passes2 small direct-s3 s3
passes2 small ferry-s3 s3
passes2 small nginx-cache s3
stop_ferry
fi
stop_pid "$NG_PID"

# ======================================================================================
section "FUSE, large files: direct (s3fs, no cache) and ferry fuse; DuckDB scans and full reads"
if has fuse; then
measure_link fuse
start_fuse s3fs
for rd in duck-all fs duck-two; do
	p=passes2; [ $rd = duck-all ] && p=passes
	$p large direct-s3fs "$rd"
	start_ferry fuse
	$p large ferry-fuse "$rd"
	stop_ferry
done
section "FUSE, small files: the first $N_SMALL_FUSE"
passes2 smallfuse direct-s3fs fs
start_ferry fuse
passes2 smallfuse ferry-fuse fs
stop_ferry
stop_fuse s3fs
fi

# ======================================================================================
section "peers on the same link: ${PEERS[*]} (full reads)"
if has peers; then
measure_link peers
for s in "${PEERS[@]}"; do
	start_fuse "$s"
	passes large "$s" fs
	stop_fuse "$s"
done
fi

# ======================================================================================
if [ "$MODE" = full ] && has profile && command -v perf >/dev/null 2>&1; then
	section "profile: perf record of ferry's worker and ferry fuse during a warm full read"
	start_ferry fuse
	"${C[@]}" $PY "$ROOT/bench/xread.py" fs "$MNT/ferry/$BUCKET" "$RUN/keys-large.txt" 1 > /dev/null  # cold, fills the cache
	precond "profile fill" cold "$LARGE_BYTES" "$(ferry_metric ferry_ufs_read_bytes_total)" 0 "ferry's ferry_ufs_read_bytes_total"
	settle
	sync; echo 3 > /proc/sys/vm/drop_caches
	ufs0=$(ferry_metric ferry_ufs_read_bytes_total)
	# System-wide (-a), then reported for the three processes of the read:
	# the reader, ferry's worker and ferry fuse; kernel time spent on their
	# behalf (FUSE, page cache, copies) is in their samples.
	perf record -q -a -g -F 999 -o "$RUN/perf.data" > "$W/logs/xr-perf.log" 2>&1 &
	PERF_PID=$!; PIDS+=("$PERF_PID")
	sleep 1
	t0=$(now)
	"${C[@]}" $PY "$ROOT/bench/xread.py" fs "$MNT/ferry/$BUCKET" "$RUN/keys-large.txt" 1 > "$RUN/perf-read.txt" &
	RD_PID=$!
	wait "$RD_PID"
	t1=$(now)
	kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true
	precond "profile read" warm 0 $(( $(ferry_metric ferry_ufs_read_bytes_total) - ufs0 )) 0 "ferry's ferry_ufs_read_bytes_total"
	q=(); for x in "${PIDS[@]}"; do [ "$x" = "$PERF_PID" ] || q+=("$x"); done; PIDS=("${q[@]}")
	note "perf record -a -g -F 999   # during one more warm full read through the FUSE mount ($(calc "$t1 - $t0") s), reported for the reader, the worker and ferry fuse:"
	note "perf report --pid <reader>,<worker>,<ferry fuse> --no-children --percentage relative --sort pid,dso; and per process: --pid P --sort dso,sym"
	echo "perf_pids=reader $RD_PID, worker $FW_PID, ferry fuse $FF_PID" >> "$RUN/meta.env"
	for x in "reader $RD_PID" "worker $FW_PID" "fuse $FF_PID"; do
		perf report -i "$RUN/perf.data" --stdio --no-children --percentage relative --pid "${x#* }" \
			--sort dso,sym -g none 2>/dev/null | grep -E '^ +[0-9]' | head -12 > "$RUN/perf-${x% *}.txt" || true
	done
	for x in "reader $RD_PID" "worker $FW_PID" "fuse $FF_PID"; do
		echo "${x% *}: $(perf script -i "$RUN/perf.data" -F pid --pid "${x#* }" 2>/dev/null | grep -c .) samples"
	done > "$RUN/perf-dso.txt"
	perf report -i "$RUN/perf.data" --stdio --no-children --sort comm -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -12 > "$RUN/perf-all.txt" || true
	echo "perf_read_seconds=$(calc "$t1 - $t0")" >> "$RUN/meta.env"
	stop_ferry
fi

kill -USR1 "$WL_PID" 2>/dev/null; sleep 0.2
TICK=$(getconf CLK_TCK)
read -r wl_u wl_s <<< "$(sed 's/^.*) //' "/proc/$WL_PID/stat" | awk '{print $12, $13}')"
echo "wanlink_cpu=user $(calc "$wl_u / $TICK") s, system $(calc "$wl_s / $TICK") s" >> "$RUN/meta.env"
grep '^wanlink stats' "$W/logs/wanlink.log" | tail -2 > "$RUN/wanlink-stats.txt" || true
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"
cp "$NGX/nginx.conf" "$RUN/nginx.conf"
cleanup

# ======================================================================================
section "report"
OUT=$ROOT/bench/results/xregion-$STAMP-$MODE
$PY "$ROOT/bench/xreport.py" "$RUN" "$OUT.png" > "$OUT.md"
LATEST=latest-xregion; [ "$MODE" = quick ] && LATEST=latest-xregion-quick
# A developer's run with its own sizes or parts is not the mode's result.
if [ -z "${XR_DATA_MIB:-}${XR_SMALL:-}${XR_SMALL_FUSE:-}${XR_PARTS:-}${XR_FERRY_ARGS:-}${XR_SELFTEST:-}" ]; then
	cp "$OUT.md" "$ROOT/bench/results/$LATEST.md"
	[ -f "$OUT.png" ] && cp "$OUT.png" "$ROOT/bench/results/$LATEST.png"
	sed -i "s|($(basename "$OUT").png)|($LATEST.png)|" "$ROOT/bench/results/$LATEST.md"
	say "report: ${OUT#"$ROOT"/}.md (and bench/results/$LATEST.md, .png), $(( $(date +%s) - T_START )) s in all"
else
	say "report: ${OUT#"$ROOT"/}.md ($LATEST.md left alone: XR_* settings in effect), $(( $(date +%s) - T_START )) s in all"
fi
sed -n '/^## Headline/,/^## /p' "$OUT.md" | sed '$d'
