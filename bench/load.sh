#!/usr/bin/env bash
# bench/load.sh quick|full: `ferry load` over the emulated cross-region link
# (bench/README.md 8.), run by bench/run.sh as the part `load` or alone.
# The question: how fast does `ferry load PATH` bring a remote dataset into
# an empty cache, against what the link gives many streams and against a
# training job's own first (cold) pass; is what it loaded then read with
# nothing fetched; and does --bandwidth hold the rate it is given?  With 1
# worker and with a cluster of 3, side by side in one run over one link.
#
#   - the link: bench/wanlink.sh up with its own namespaces (ferry-ld-remote
#     198.18.0.1, ferry-ld-compute 198.18.0.2; 40 ms one way, 200 Mbit/s,
#     the compute side's receive buffer capped: xregion.sh's link), RTT and
#     iperf3 1 and 8 streams measured first;
#   - remote: s3rver holding xregion.sh's Parquet dataset (bench/xduck.js
#     gen, LD_DATA_MIB MiB), in xregion.sh's store (bench/work/xr-s3rver,
#     bucket xr, uploaded once on the remote side's loopback, shared);
#   - compute: single ferry workers (a, b: passes 2-4), then a cluster of
#     three (c1-c3: passes 5-7), each with s3://xr/parquet-N mounted at /ld,
#     and the readers.  The cluster, as bench/cluster.sh's: etcd on a bridge
#     (here in the compute namespace, 10.79.0.1, ports from LD_PORTS), each
#     worker in its own namespace ($WAN_COMPUTE-w1..3, 10.79.0.11-13) with a
#     veth into the bridge, --etcd/--cluster bench-load, a control token and
#     the gateway's keys (S3RVER) from the environment; the compute namespace
#     routes the bridge over the link (and the remote routes 10.79.0.0/24
#     back), so all three share the one link, and each worker namespace's
#     tcp_rmem is capped as the compute side's.  The CLI and the reader run
#     in the compute namespace and reach the workers over the bridge.
# Passes, in this order, each after the link has been quiet and
# `sync; echo 3 > /proc/sys/vm/drop_caches`:
#   1. link: every 1 MiB range of the dataset, 8 at a time, with curl
#      straight from the remote s3rver (xregion.sh's curl8 reference: the
#      link's multi-stream limit for these bytes, s3rver included);
#   2. cold: a fresh worker (a), the dataset read once through its S3
#      gateway (bench/xread.py s3, boto3, one reader: xregion.sh's large S3
#      pass);
#   3. load: another fresh worker (b), `ferry load /ld` (the CLI, default
#      --parallel), timed until it exits 0; then the same reader on a
#      (warm) and on b (after-load: it must fetch nothing), in turn,
#      WARM_PASSES times each, both workers up, so that the two alternate
#      under the same background; a is stopped then;
#   4. bandwidth: on b, `ferry free /ld --force` (the cache checked empty by
#      ferry_cache_pages and `ferry du`), then `ferry load /ld --bandwidth R`
#      with R about half of pass 1's rate; the achieved rate (bytes fetched
#      over the time, from ferry_load_bytes_total, the link's counter and
#      the job's own figures) against R.
#   5. 3 workers, load: a fresh cluster (c1-c3, etcd); `ferry load /ld`
#      through the CLI against c1 (the job becomes the cluster's: every
#      member loads the blocks placement gives it), timed until it exits 0;
#      then the reader through c1's gateway: the first pass after the load
#      (it must fetch nothing), then WARM_PASSES warm passes on the same
#      cluster;
#   6. 3 workers, bandwidth: `ferry free /ld --force` (the CLI asks every
#      member), the cluster checked empty (every worker's ferry_cache_pages,
#      `ferry du` summed), then `ferry load /ld --bandwidth R` (the same R:
#      the CLI's job, each worker's part at R/3); achieved (the workers'
#      ferry_load_bytes_total summed, the link's counter) against R;
#   7. 3 workers, cold: `ferry free /ld --force` again, checked empty, and
#      the reader's cold pass through c1's gateway (the cluster's own cold
#      read, for the load's time against it).
#   The cluster's counters are its three workers' summed (each worker's in
#   workers.tsv); every pass's checks are as for one worker.
# Every pass checks its preconditions (bench/precond.sh) from ferry's and the
# link's counters read around it: the load passes are cold (the cache empty
# before, the dataset's bytes fetched over the link) and leave the dataset
# cached, the after-load and warm passes fetch nothing; a violated one stops
# the run (exit 1) before any report.  The targets (load / link >= 0.9,
# achieved / cap within 0.9-1.1) are reported, met or not; they do not stop
# the run.
# Writes bench/results/load-<UTC date and time>-<mode>.md (bench/loadreport.py:
# the 1- and 3-worker figures side by side) and a stable copy
# latest-load[-quick].md; raw data in bench/work/runs/load-<stamp>-<mode>/.
# Needs root (network namespaces, TUN): without it, says so and exits 0
# (skipped).  Ports in its namespaces (s3rver, etcd, the cluster's workers)
# come from LD_PORTS (default 32000-32999, picked free); every process (the
# workers first, etcd last), the namespaces made here (the link's two and
# the cluster's three) and the caches and etcd's data are removed on exit.
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
full)  DATA_MIB=1024; WARM_PASSES=5 ;;
quick) DATA_MIB=256;  WARM_PASSES=3 ;;
report) exec $PY "$ROOT/bench/loadreport.py" "${2:?usage: $0 report RUNDIR}" ;;
*) echo "usage: $0 quick|full (or: $0 report RUNDIR)" >&2; exit 2 ;;
esac
# Developers' settings (a run with any LD_* setting leaves latest-load* alone):
# LD_DATA_MIB the dataset's size; LD_LOAD_ARGS options added to both
# `ferry load` passes (e.g. "--parallel 16"); LD_FERRY_ARGS options to the
# worker (e.g. "--window 16"); LD_BW_FRACTION the cap as a fraction of
# pass 1's rate (default 0.5).
DATA_MIB=${LD_DATA_MIB:-$DATA_MIB}
BW_FRACTION=${LD_BW_FRACTION:-0.5}
LD_PORTS=${LD_PORTS:-32000-32999}
PORT_LO=${LD_PORTS%-*}; PORT_HI=${LD_PORTS#*-}
export WAN_REMOTE=${WAN_REMOTE:-ferry-ld-remote} WAN_COMPUTE=${WAN_COMPUTE:-ferry-ld-compute}
REMOTE_IP=198.18.0.1
BUCKET=xr                  # xregion.sh's bucket and store
MOUNT=ld                   # the worker's mount of s3://xr/parquet-N
PAGE=$((1024 * 1024))      # ferry's default --page-size
PASS_TIMEOUT=$((DATA_MIB < 256 ? 300 : DATA_MIB * 3 / 2))   # seconds: any one pass at most (>= 6x the cap pass at 25 MB/s)
SAMPLE_S=0.5               # the link's and ferry's counters during the load passes, every SAMPLE_S
# WARM_PASSES (above): warm and after-load reads, each; a pass takes about a
# second or less, so the report compares their medians.

say() { printf '[bench-load %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
if [ "$(id -u)" -ne 0 ]; then
	say "SKIPPED: the load benchmark needs root (network namespaces and TUN devices for the emulated"
	say "link, drop_caches).  Run it as root: sudo bench/load.sh $MODE"
	exit 0
fi
[ -c /dev/net/tun ] || { say "SKIPPED: /dev/net/tun is missing (no TUN in this kernel or container)."; exit 0; }

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/load-$STAMP-$MODE
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

# --- bookkeeping: every process, the link and the caches, undone on exit -----
PIDS=()
LINK_UP=0
N3=3                       # the cluster's workers (passes 5-7)
CACHES=("$W/ld-cache-a" "$W/ld-cache-b")   # the single workers' caches
for i in $(seq "$N3"); do CACHES+=("$W/ld-cache-c$i"); done   # the cluster's
CACHES+=("$W/ld-etcd")     # the cluster's etcd data
# The cluster's network (passes 5-7): a namespace per worker, each a veth
# into a bridge in the compute namespace, which routes to the link.
NS3=(); for i in $(seq "$N3"); do NS3+=("$WAN_COMPUTE-w$i"); done
BR3=ld3br
NET3=10.79.0               # 10.79.0.1: the bridge (etcd); 10.79.0.1I: worker I
ETCD_PID=""
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
	local p ns
	# Workers (and everything else) first, so that they leave the cluster
	# while etcd is up; etcd last.
	for p in "${PIDS[@]}"; do [ "$p" = "$ETCD_PID" ] || kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}" "$ETCD_PID"; do
		[ -n "$p" ] || continue
		[ "$p" = "$ETCD_PID" ] && { kill -TERM "$p" 2>/dev/null || true; }
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	PIDS=(); ETCD_PID=""
	# The workers' namespaces (their veths go with them; the bridge goes
	# with the compute namespace).
	for ns in "${NS3[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	[ $LINK_UP = 1 ] && "$ROOT/bench/wanlink.sh" down > /dev/null 2>&1
	LINK_UP=0
	rm -rf "${CACHES[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A free TCP port on 127.0.0.1 from LD_PORTS (in the namespace given, if any).
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
sys.exit("bench-load: no free port in %d-%d" % (lo, hi))
EOF
}
wait_http() { # url seconds [ns-runner]
	local i
	for i in $(seq $(($2 * 10))); do
		${3:-} curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "bench-load: $1 did not answer within $2 s" >&2; return 1
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }

# --- tools ----------------------------------------------------------------------
section "preflight"
for t in iperf3 ping nsenter ip curl node gcc etcd "$PY" "$S3RVER" "$FERRY"; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench-load: $t not found (run scripts/install-deps.sh and make all)" >&2; exit 1; }
done
$PY -c 'import boto3' || { echo "bench-load: $PY lacks boto3 (python3-boto3)" >&2; exit 1; }
[ -d "$ROOT/.deps/npm/node_modules/@duckdb/node-api" ] ||
	{ echo "bench-load: @duckdb/node-api missing in .deps/npm (run scripts/install-deps.sh)" >&2; exit 1; }
"$FERRY" load --help 2>&1 | grep -q -- '--bandwidth' ||
	{ echo "bench-load: $FERRY has no 'load --bandwidth' (make all)" >&2; exit 1; }
# The figures are build/ferry's; the report names the source revision, so a
# binary older than the sources it would be built from is said (run and report).
STALE=$(find "$ROOT/src" "$ROOT/include" -newer "$FERRY" -type f 2>/dev/null | wc -l)
[ "$STALE" = 0 ] || say "WARNING: $STALE files under src/ and include/ are newer than build/ferry: this run measures the binary as built (make all to rebuild)"
ulimit -n 65536 2>/dev/null || true
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy AWS_CA_BUNDLE
export NO_PROXY='*' no_proxy='*'

# --- dataset: xregion.sh's, generated once per size, reused ------------------------
XD=$W/xr-data
PQ=parquet-$DATA_MIB
section "dataset: ~$DATA_MIB MiB of Parquet in bench/work/xr-data/$PQ (xregion.sh's generator)"
if [ ! -f "$XD/$PQ/.done" ]; then
	rm -rf "$XD/$PQ"
	note "node bench/xduck.js gen bench/work/xr-data/$PQ $DATA_MIB"
	node "$ROOT/bench/xduck.js" gen "$XD/$PQ" "$DATA_MIB" > "$W/logs/ld-gen.log"
	touch "$XD/$PQ/.done"
fi
(cd "$XD" && ls "$PQ"/*.parquet) > "$RUN/keys-store.txt"          # keys in the bucket
sed "s|^$PQ/||" "$RUN/keys-store.txt" > "$RUN/keys.txt"           # the same, under the mount /$MOUNT
N_FILES=$(wc -l < "$RUN/keys.txt")
DATA_BYTES=$(cd "$XD" && xargs stat -c %s < "$RUN/keys-store.txt" | awk '{s += $1} END {print s}')
DATA_PAGES=$(cd "$XD" && xargs stat -c %s < "$RUN/keys-store.txt" | awk -v p=$PAGE '{s += int(($1 + p - 1) / p)} END {print s}')
note "# $N_FILES Parquet files, $DATA_BYTES bytes ($DATA_PAGES pages of 1 MiB): $(cd "$XD" && xargs stat -c %s < "$RUN/keys-store.txt" | awk '{printf "%s%.0f", sep, $1 / 1048576; sep = ", "}') MiB"

# --- the link ----------------------------------------------------------------------
section "link: bench/wanlink.sh up ($WAN_REMOTE, $WAN_COMPUTE)"
note "WAN_REMOTE=$WAN_REMOTE WAN_COMPUTE=$WAN_COMPUTE WAN_DELAY_MS=${WAN_DELAY_MS:-40} WAN_RATE=${WAN_RATE:-200M} WAN_RMEM=${WAN_RMEM:-2097152} ${WAN_QUEUE:+WAN_QUEUE=$WAN_QUEUE }bench/wanlink.sh up"
# An earlier run's cluster namespaces, if it was killed (SIGKILL) before its
# cleanup (wanlink.sh up removes its own two).
for ns in "${NS3[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
LINK_UP=1
"$ROOT/bench/wanlink.sh" up | tee "$RUN/link.txt"
WL_PID=$(cat "$W/wanlink.pid")
# Bytes the compute side has received over the link (remote -> compute: the
# remote s3rver's answers, TCP/IP headers included): every pass's
# under-store bytes, whoever fetched them.
link_rx() {
	ip -n "$WAN_COMPUTE" -s -j link show wan0 |
		$PY -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])'
}
# Until nothing crosses the link (10 s at most): a previous pass's read-ahead
# must not land in the next.
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

# --- remote: s3rver with the dataset in bucket xr (xregion.sh's store) -----------------
S3PORT=$(free_port "${R[*]}")
REMOTE_URL=http://$REMOTE_IP:$S3PORT
section "remote: s3rver in $WAN_REMOTE ($REMOTE_URL), bucket $BUCKET in bench/work/xr-s3rver"
mkdir -p "$W/xr-s3rver"
note "nsenter --net=/run/netns/$WAN_REMOTE env NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/xr-s3rver -a 0.0.0.0 -p $S3PORT -s --configure-bucket $BUCKET"
"${R[@]}" env NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/xr-s3rver" -a 0.0.0.0 -p "$S3PORT" -s \
	--configure-bucket "$BUCKET" > "$W/logs/ld-s3rver.log" 2>&1 < /dev/null &
S3_PID=$!; PIDS+=("$S3_PID")
wait_http "http://127.0.0.1:$S3PORT/" 30 "${R[*]}"
# As xregion.sh's upload(): skipped when its marker says these keys are there
# and no file changed since; s3upload.py itself skips objects with the same md5.
marker=$W/xr-s3rver/.uploaded-$PQ
if [ -f "$marker" ] && [ -z "$(find "$XD/$PQ" -newer "$marker" -type f -print -quit)" ] &&
	[ "$(cat "$marker")" -ge "$N_FILES" ]; then
	say "upload: $N_FILES objects ($PQ/) already in s3rver"
else
	xargs "${R[@]}" timeout "$PASS_TIMEOUT" $PY "$ROOT/bench/s3upload.py" "http://127.0.0.1:$S3PORT" "$BUCKET" "$XD" < "$RUN/keys-store.txt"
	echo "$N_FILES" > "$marker"
fi
note "nsenter --net=/run/netns/$WAN_REMOTE /usr/bin/python3 bench/s3upload.py http://127.0.0.1:$S3PORT $BUCKET bench/work/xr-data <keys>   # on the remote side's loopback; skipped when already there"

# --- machine, versions, the link as measured ---------------------------------------
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
	echo "boto3_version=$($PY -c 'import boto3; print(boto3.__version__)')"
	echo "curl_version=$(curl --version | head -1 | cut -d' ' -f1-2)"
	echo "node_version=$(node --version)"
	echo "etcd_version=$(etcd --version 2>&1 | head -1)"
	echo "s3rver_version=$(NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --version 2>&1 | tail -1)"
	echo "link=$(sed -n 's/^wanlink.sh: //p' "$RUN/link.txt")"
	echo "wan_delay_ms=${WAN_DELAY_MS:-40}"; echo "wan_rate=${WAN_RATE:-200M}"; echo "wan_rmem=${WAN_RMEM:-2097152}"
	echo "n_files=$N_FILES"; echo "data_bytes=$DATA_BYTES"; echo "data_pages=$DATA_PAGES"; echo "data_mib=$DATA_MIB"
	echo "page=$PAGE"; echo "bw_fraction=$BW_FRACTION"; echo "warm_passes=$WARM_PASSES"; echo "sample_s=$SAMPLE_S"
	echo "load_args=${LD_LOAD_ARGS:-}"; echo "ferry_args=${LD_FERRY_ARGS:-}"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RUN/meta.env"
section "link: RTT and throughput (bench/wanlink.sh measure)"
note "bench/wanlink.sh measure   # ping -c 10 -i 0.2 $REMOTE_IP; iperf3 -c $REMOTE_IP -R -t 4 -O 1 [-P 8] (iperf3 -s in $WAN_REMOTE)"
timeout 60 "$ROOT/bench/wanlink.sh" measure >> "$RUN/meta.env"
say "link: $(grep '^link_' "$RUN/meta.env" | tr '\n' ' ')"

# --- the worker ----------------------------------------------------------------------
# Two workers, a and b, each with its own cache (bench/work/ld-cache-NAME):
# a reads the dataset itself (cold, warm), b loads it; both stay up so that
# their warm and after-load reads alternate under the same background.
# `use NAME` points FW_* (and so ferry_metric, fcli and the passes) at one,
# or (`use c`) at the cluster of passes 5-7: its counters summed over its
# workers, its CLI and reader at worker c1.
declare -A WPID=() WCTL=() WS3=()
FW_NAME=""; FW_PID=""; FW_CTL=""; FW_S3=""; FW_TOKEN=""
FW_CTLS=(); FW_PIDS=(); FW_NAMES=()
FW_NOTED=""; FW_FRESH=0
TOKEN3=bench-load-token    # the cluster's --control-token (from the environment, never a command line)
use() {
	FW_NAME=$1
	if [ "$1" = c ]; then
		FW_CTLS=(); FW_PIDS=(); FW_NAMES=()
		for i in $(seq "$N3"); do FW_CTLS+=("${WCTL[c$i]}"); FW_PIDS+=("${WPID[c$i]}"); FW_NAMES+=("c$i"); done
		FW_PID=${WPID[c1]}; FW_CTL=${WCTL[c1]}; FW_S3=${WS3[c1]}; FW_TOKEN=$TOKEN3
	else
		FW_PID=${WPID[$1]}; FW_CTL=${WCTL[$1]}; FW_S3=${WS3[$1]}; FW_TOKEN=""
		FW_CTLS=("$FW_CTL"); FW_PIDS=("$FW_PID"); FW_NAMES=("$1")
	fi
}
start_ferry() { # NAME: a worker with an empty cache and s3://xr/parquet-N at /ld; then use NAME
	local n=$1 cache=$W/ld-cache-$1
	rm -rf "$cache"; mkdir -p "$cache"
	local cmd=("$FERRY" worker --cache-dir "$cache" --cache-size 16G
		--s3-address 127.0.0.1:0 --control-address 127.0.0.1:0 ${LD_FERRY_ARGS:-})
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]//$ROOT\//}   # worker $n: $([ "$n" = a ] && echo "the cold and warm reads" || echo "the loads and the after-load reads")"
	# Emptied here: the loop below must not take an earlier worker's ready line.
	: > "$W/logs/ld-worker-$n.out"
	"${C[@]}" "${cmd[@]}" >> "$W/logs/ld-worker-$n.out" 2> "$W/logs/ld-worker-$n.log" < /dev/null &
	WPID[$n]=$!; PIDS+=("${WPID[$n]}"); FW_FRESH=1
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$W/logs/ld-worker-$n.out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "${WPID[$n]}" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench-load: ferry worker $n did not start; log:" >&2; tail -20 "$W/logs/ld-worker-$n.log" >&2; exit 1
	fi
	WS3[$n]=${BASH_REMATCH[1]}; WCTL[$n]=${BASH_REMATCH[2]}
	use "$n"
	cmd=("$FERRY" --worker "$FW_CTL" mount "/$MOUNT" "s3://$BUCKET/$PQ" --option "s3.endpoint=$REMOTE_URL"
		--option s3.region=us-east-1 --option s3.access_key=S3RVER --option s3.secret_key=S3RVER
		--option s3.path_style=true)
	[ -z "$FW_NOTED" ] && note "nsenter --net=/run/netns/$WAN_COMPUTE ${cmd[*]#$ROOT/}"
	"${C[@]}" "${cmd[@]}" > "$W/logs/ld-mount.out" 2>&1 || { cat "$W/logs/ld-mount.out" >&2; exit 1; }
	FW_NOTED=1
}
stop_ferry() { # NAME
	[ -n "${WPID[$1]:-}" ] && stop_pid "${WPID[$1]}"
	WPID[$1]=""
	[ "$FW_NAME" = "$1" ] && FW_PID=""
	rm -rf "$W/ld-cache-$1"
}
# --- the cluster (passes 5-7) ---------------------------------------------------------
# Three workers, c1..c3, each in its own namespace ($WAN_COMPUTE-wI, address
# 10.79.0.1I) with a veth into a bridge in the compute namespace (10.79.0.1),
# which routes them to the link: three machines of the compute region behind
# one cross-region link, as cluster.sh's workers sit behind its bridge; etcd
# on the bridge's address, as there; the CLI and the reader in the compute
# namespace reach the workers over the bridge.  Each worker's TCP receive
# buffer is capped as the compute namespace's is (wanlink.sh's WAN_RMEM), so
# one of its streams is limited as one of a single worker's.
CLUSTER3=bench-load        # --cluster
ETCD_URL=""
wait_for() { # SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds, every 0.1 s
	local secs=$1 what=$2
	shift 2
	for _ in $(seq $((secs * 10))); do "$@" && return 0; sleep 0.1; done
	echo "bench-load: $what: not within $secs s" >&2; return 1
}
cluster_net_up() {
	local i ns rm=${WAN_RMEM:-2097152}
	note "ip -n $WAN_COMPUTE link add $BR3 type bridge; ip -n $WAN_COMPUTE addr add $NET3.1/24 dev $BR3; ip -n $WAN_COMPUTE link set $BR3 up; ip netns exec $WAN_COMPUTE sysctl -w net.ipv4.ip_forward=1; ip -n $WAN_REMOTE route add $NET3.0/24 dev wan0   # the compute region's LAN, routed over the link"
	ip -n "$WAN_COMPUTE" link add "$BR3" type bridge
	ip -n "$WAN_COMPUTE" addr add "$NET3.1/24" dev "$BR3"
	ip -n "$WAN_COMPUTE" link set "$BR3" up
	ip netns exec "$WAN_COMPUTE" sysctl -q -w net.ipv4.ip_forward=1
	ip -n "$WAN_REMOTE" route add "$NET3.0/24" dev wan0
	for i in $(seq "$N3"); do
		ns=${NS3[$((i - 1))]}
		note "ip netns add $ns; ip -n $WAN_COMPUTE link add ld3w${i}h type veth peer name ld3w${i}n; ip -n $WAN_COMPUTE link set ld3w${i}n netns $ns; ip -n $WAN_COMPUTE link set ld3w${i}h master $BR3 up; ip -n $ns addr add $NET3.$((10 + i))/24 dev ld3w${i}n; ip -n $ns link set ld3w${i}n up; ip -n $ns link set lo up; ip -n $ns route add default via $NET3.1$([ "$rm" != 0 ] && echo "; ip netns exec $ns sysctl -w net.ipv4.tcp_rmem=\"4096 131072 $rm\"")"
		ip netns add "$ns"
		ip -n "$WAN_COMPUTE" link add "ld3w${i}h" type veth peer name "ld3w${i}n"
		ip -n "$WAN_COMPUTE" link set "ld3w${i}n" netns "$ns"
		ip -n "$WAN_COMPUTE" link set "ld3w${i}h" master "$BR3" up
		ip -n "$ns" addr add "$NET3.$((10 + i))/24" dev "ld3w${i}n"
		ip -n "$ns" link set "ld3w${i}n" up
		ip -n "$ns" link set lo up
		ip -n "$ns" route add default via "$NET3.1"
		if [ "$rm" != 0 ]; then ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_rmem="4096 131072 $rm"; fi
	done
	# Each worker's namespace reaches the remote (over the link: 80 ms).
	for ns in "${NS3[@]}"; do wait_for 10 "$ns reaching $REMOTE_IP" pings "$ns"; done
}
pings() { ip netns exec "$1" ping -c1 -W1 "$REMOTE_IP" > /dev/null 2>&1; }
start_cworker() { # I: worker cI, empty cache, joining the cluster
	local i=$1 n=c$1 ns=${NS3[$(($1 - 1))]} ip=$NET3.$((10 + $1)) sp cp cache=$W/ld-cache-c$1
	local NX=(nsenter --net="/run/netns/$ns")
	rm -rf "$cache"; mkdir -p "$cache"
	sp=$(free_port "${NX[*]}")
	for _ in $(seq 20); do cp=$(free_port "${NX[*]}"); [ "$cp" != "$sp" ] && break; done
	local cmd=("$FERRY" worker --cache-dir "$cache" --cache-size 16G
		--s3-address "$ip:$sp" --control-address "$ip:$cp" --advertise "$ip" --local-socket none
		--etcd "$ETCD_URL" --cluster "$CLUSTER3" ${LD_FERRY_ARGS:-})
	note "nsenter --net=/run/netns/$ns env FERRY_CONTROL_TOKEN=<token> FERRY_S3_ACCESS_KEY=S3RVER FERRY_S3_SECRET_KEY=S3RVER ${cmd[*]//$ROOT\//} &   # worker $n"
	: > "$W/logs/ld-worker-$n.out"
	FERRY_CONTROL_TOKEN=$TOKEN3 FERRY_S3_ACCESS_KEY=S3RVER FERRY_S3_SECRET_KEY=S3RVER \
		"${NX[@]}" "${cmd[@]}" >> "$W/logs/ld-worker-$n.out" 2> "$W/logs/ld-worker-$n.log" < /dev/null &
	WPID[$n]=$!; PIDS+=("${WPID[$n]}")
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$W/logs/ld-worker-$n.out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "${WPID[$n]}" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench-load: ferry worker $n did not start; log:" >&2; tail -20 "$W/logs/ld-worker-$n.log" >&2; exit 1
	fi
	WS3[$n]=${BASH_REMATCH[1]}; WCTL[$n]=${BASH_REMATCH[2]}
}
members_are() { # CTL N: the worker sees N members
	[ "$("${C[@]}" curl -sf --max-time 2 "http://$1/metrics" | awk '$1 == "ferry_cluster_members" {print $2}')" = "$2" ]
}
has_mount() { # CTL: the worker has /ld in its mount table
	"${C[@]}" env FERRY_TOKEN="$TOKEN3" "$FERRY" --worker "$1" mounts --json 2>/dev/null |
		$PY -c 'import json, sys; sys.exit(0 if any(m.get("name") == sys.argv[1] for m in json.load(sys.stdin)["mounts"]) else 1)' "$MOUNT"
}
# cluster_start: the network, etcd, three fresh workers that all see three
# members, /ld mounted through c1 (the cluster's mount table: every worker
# has it); then use c.
cluster_start() {
	local ep pp i
	cluster_net_up
	ep=$(free_port "${C[*]}")
	for _ in $(seq 20); do pp=$(free_port "${C[*]}"); [ "$pp" != "$ep" ] && break; done
	ETCD_URL=http://$NET3.1:$ep
	rm -rf "$W/ld-etcd"
	local ecmd=(etcd --name ld --data-dir "$W/ld-etcd" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL"
		--listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp"
		--initial-cluster "ld=http://127.0.0.1:$pp" --heartbeat-interval 50 --election-timeout 500
		--logger zap --log-level error)
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${ecmd[*]//$W\//bench/work/} &   # cluster.sh's etcd, on the bridge"
	"${C[@]}" "${ecmd[@]}" > "$W/logs/ld-etcd.log" 2>&1 < /dev/null &
	ETCD_PID=$!; PIDS+=("$ETCD_PID")
	wait_for 20 "etcd at $ETCD_URL/health" "${C[@]}" curl -sf -o /dev/null --max-time 1 "$ETCD_URL/health" ||
		{ tail -20 "$W/logs/ld-etcd.log" >&2; exit 1; }
	for i in $(seq "$N3"); do start_cworker "$i"; done
	for i in $(seq "$N3"); do
		wait_for 20 "worker c$i seeing $N3 members" members_are "${WCTL[c$i]}" "$N3" ||
			{ tail -20 "$W/logs/ld-worker-c$i.log" >&2; exit 1; }
	done
	use c
	local cmd=("$FERRY" --worker "$FW_CTL" mount "/$MOUNT" "s3://$BUCKET/$PQ" --option "s3.endpoint=$REMOTE_URL"
		--option s3.region=us-east-1 --option s3.access_key=S3RVER --option s3.secret_key=S3RVER
		--option s3.path_style=true)
	note "nsenter --net=/run/netns/$WAN_COMPUTE env FERRY_TOKEN=<token> ${cmd[*]#$ROOT/}   # through c1: the cluster's mount table (etcd); every worker's \`ferry mounts\` then has it"
	"${C[@]}" env FERRY_TOKEN="$TOKEN3" "${cmd[@]}" > "$W/logs/ld-mount.out" 2>&1 || { cat "$W/logs/ld-mount.out" >&2; exit 1; }
	for i in $(seq "$N3"); do
		wait_for 10 "worker c$i having /$MOUNT" has_mount "${WCTL[c$i]}" || exit 1
	done
	fcli workers --json > "$RUN/workers-3w.json"
	FW_FRESH=1
}
stop_cluster() {
	local i
	for i in $(seq "$N3"); do [ -n "${WPID[c$i]:-}" ] && stop_pid "${WPID[c$i]}"; WPID[c$i]=""; done
	[ -n "$ETCD_PID" ] && stop_pid "$ETCD_PID"
	ETCD_PID=""
	[ "$FW_NAME" = c ] && FW_PID=""
	for i in $(seq "$N3"); do rm -rf "$W/ld-cache-c$i"; done
	rm -rf "$W/ld-etcd"
}
metric_at() { # K name: worker FW_NAMES[K]'s metric, summed over its label sets; a worker gone or a metric missing stops the run
	local m k=$1 n=${FW_NAMES[$1]}
	kill -0 "${FW_PIDS[$k]}" 2>/dev/null || { echo "bench-load: ferry worker $n (pid ${FW_PIDS[$k]}) is gone; its log: bench/work/logs/ld-worker-$n.log" >&2; tail -3 "$W/logs/ld-worker-$n.log" >&2; exit 1; }
	m=$("${C[@]}" curl -sf --max-time 10 "http://${FW_CTLS[$k]}/metrics") ||
		{ echo "bench-load: ferry's /metrics did not answer (worker $n)" >&2; exit 1; }
	awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2; f = 1} END {if (!f) exit 1; printf "%.0f\n", s}' <<< "$m" ||
		{ echo "bench-load: no metric $2 at http://${FW_CTLS[$k]}/metrics" >&2; exit 1; }
}
ferry_metric() { # name: summed over its label sets and over the workers in use
	local k t=0 v
	for k in "${!FW_CTLS[@]}"; do v=$(metric_at "$k" "$1"); t=$((t + v)); done
	echo "$t"
}
# The ferry CLI, against this worker (the cluster: c1, with the token; the
# CLI asks every member where the command is the cluster's).
fcli() { "${C[@]}" env ${FW_TOKEN:+FERRY_TOKEN=$FW_TOKEN} "$FERRY" --worker "$FW_CTL" "$@"; }
# du_cached: the bytes `ferry du /ld` says are cached (a cluster: summed
# over its workers' answers).
du_cached() {
	fcli du "/$MOUNT" -s --json | $PY -c 'import json, sys
d = json.load(sys.stdin)
print(sum(w["cached_bytes"] for w in d["workers"]) if "workers" in d else d["cached_bytes"])'
}

# Samples, during a load pass, every SAMPLE_S: the time, the link's received
# bytes (/proc/net/dev in the compute namespace) and ferry's
# ferry_load_bytes_total (the cluster: summed over its workers); at most
# 2 x PASS_TIMEOUT / SAMPLE_S samples, and stopped (stop_pid) when the pass
# ends.
SMP_PID=""
sampler_start() { # OUT
	local urls="" c
	for c in "${FW_CTLS[@]}"; do urls+="${urls:+,}http://$c/metrics"; done
	"${C[@]}" timeout $((PASS_TIMEOUT + 30)) $PY - "$1" "$urls" "$SAMPLE_S" $((PASS_TIMEOUT * 4)) <<'EOF' &
import sys, time, urllib.request
out, urls, every, most = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3]), int(sys.argv[4])
def rx():
    for line in open("/proc/net/dev"):
        if line.strip().startswith("wan0:"):
            return int(line.split(":", 1)[1].split()[0])
    return -1
def load_bytes():
    t = 0
    for url in urls:
        try:
            m = urllib.request.urlopen(url, timeout=2).read().decode()
        except Exception:
            return -1
        v = [int(float(l.split()[-1])) for l in m.splitlines() if l.startswith("ferry_load_bytes_total")]
        if not v:
            return -1
        t += v[0]
    return t
with open(out, "w") as f:
    f.write("t\tlink_rx\tload_bytes\n")
    for _ in range(most):
        f.write("%.3f\t%d\t%d\n" % (time.time(), rx(), load_bytes()))
        f.flush()
        time.sleep(every)
EOF
	SMP_PID=$!; PIDS+=("$SMP_PID")
}

# --- the passes ------------------------------------------------------------------------
RES=$RUN/results.tsv
printf 'pass\ttool\tfiles\tbytes\tseconds\tufs_bytes\tload_bytes\tlink_bytes\tpages_before\tpages_after\trole\tneed\tslack\tjob_state\tjob_elapsed_s\tjob_bytes_done\tjob_bytes_fetched\tjob_bandwidth\tjob_parallel\treadahead_bytes\tt0\tt1\tworkers\n' > "$RES"
# Each pass's counters per worker (the cluster's passes: how the work split).
PERW=$RUN/workers.tsv
printf 'pass\tworker\tufs_bytes\tload_bytes\tpages_before\tpages_after\n' > "$PERW"
SLACK=$((1048576 + 4096 * N_FILES))   # a warm pass over the link: HEADs and a listing only
# begin NAME ROLE: settles, drops the page cache, reads the counters (the
# cold roles: checks the cache is empty first).  Sets P_* for end.
begin() {
	local k
	P_NAME=$1; P_ROLE=$2
	settle
	sync; echo 3 > /proc/sys/vm/drop_caches
	P_UFS0=0; P_LOAD0=0; P_PAGES0=0; P_RA0=0; P_W0=()
	if [ -n "$FW_PID" ]; then
		P_UFS0=$(ferry_metric ferry_ufs_read_bytes_total); P_LOAD0=$(ferry_metric ferry_load_bytes_total)
		P_PAGES0=$(ferry_metric ferry_cache_pages); P_RA0=$(ferry_metric ferry_readahead_bytes_total)
		for k in "${!FW_CTLS[@]}"; do
			P_W0[$k]="$(metric_at "$k" ferry_ufs_read_bytes_total) $(metric_at "$k" ferry_load_bytes_total) $(metric_at "$k" ferry_cache_pages)"
		done
	fi
	if [ "$P_ROLE" = cold ]; then
		PRECOND_DETAIL="ferry before the pass: $P_PAGES0 pages cached, $(du_cached) bytes cached under /$MOUNT (ferry du)"
		# A fresh worker's (cluster's) first pass: nothing may have gone through it yet.
		[ "$FW_FRESH" = 1 ] && precond "$P_NAME" empty 0 "$P_UFS0" 0 "ferry's ferry_ufs_read_bytes_total since it started$([ ${#FW_CTLS[@]} -gt 1 ] && echo ", summed over the ${#FW_CTLS[@]} workers")"
		precond "$P_NAME" empty 0 "$P_PAGES0" 0 "ferry's ferry_cache_pages$([ ${#FW_CTLS[@]} -gt 1 ] && echo ", summed over the ${#FW_CTLS[@]} workers")"
		precond "$P_NAME" empty 0 "$(du_cached)" 0 "cached_bytes of \`ferry du /$MOUNT -s --json\`$([ ${#FW_CTLS[@]} -gt 1 ] && echo " (every worker's, summed)")"
		PRECOND_DETAIL=""
	fi
	FW_FRESH=0
	P_LINK0=$(link_rx)
	P_T0=$(now)
}
# end TOOL FILES BYTES SECS [JOB-JSON]: reads the counters, records the row,
# checks the pass by its role.
end() {
	local tool=$1 files=$2 bytes=$3 secs=$4 job=${5:-} t1 link1 ufs1=0 load1=0 pages1=0 ra1=0 js=("" "" "" "" "" "" "") k nw=0 u0 l0 g0
	t1=$(now)
	link1=$(link_rx)
	if [ -n "$FW_PID" ]; then
		nw=${#FW_CTLS[@]}
		ufs1=$(ferry_metric ferry_ufs_read_bytes_total); load1=$(ferry_metric ferry_load_bytes_total)
		pages1=$(ferry_metric ferry_cache_pages); ra1=$(ferry_metric ferry_readahead_bytes_total)
		for k in "${!FW_CTLS[@]}"; do
			read -r u0 l0 g0 <<< "${P_W0[$k]}"
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$P_NAME" "${FW_NAMES[$k]}" $(( $(metric_at "$k" ferry_ufs_read_bytes_total) - u0 )) \
				$(( $(metric_at "$k" ferry_load_bytes_total) - l0 )) "$g0" "$(metric_at "$k" ferry_cache_pages)" >> "$PERW"
		done
	fi
	if [ -n "$job" ]; then
		read -ra js <<< "$($PY -c 'import json, sys; j = json.loads(sys.argv[1])
print(j["state"], j["elapsed_s"], j["bytes_done"], j["bytes_fetched"], j["bandwidth"], j["parallel"], j["files_done"])' "$job")"
	fi
	local dufs=$((ufs1 - P_UFS0)) dload=$((load1 - P_LOAD0)) dlink=$((link1 - P_LINK0))
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$P_NAME" "$tool" "$files" "$bytes" "$secs" \
		"$dufs" "$dload" "$dlink" "$P_PAGES0" "$pages1" "$P_ROLE" "$DATA_BYTES" "$SLACK" \
		"${js[0]}" "${js[1]}" "${js[2]}" "${js[3]}" "${js[4]}" "${js[5]}" $((ra1 - P_RA0)) "$P_T0" "$t1" "$nw" >> "$RES"
	PRECOND_DETAIL="the pass took $secs s; ferry fetched $dufs bytes (load jobs: $dload); $dlink bytes crossed the link; cache pages $P_PAGES0 -> $pages1"
	local LINK="bytes received over the link (wan0 in $WAN_COMPUTE)" ALL=""
	[ "$nw" -gt 1 ] && ALL=", summed over the $nw workers"
	case $P_ROLE in
	direct)
		precond "$P_NAME" direct "$DATA_BYTES" "$dlink" 0 "$LINK" ;;
	cold)
		precond "$P_NAME" cold "$DATA_BYTES" "$dufs" 0 "ferry's ferry_ufs_read_bytes_total$ALL"
		precond "$P_NAME" cold "$DATA_BYTES" "$dlink" 0 "$LINK"
		if [ -n "$job" ]; then
			# A load job: it counted what it fetched, and left the dataset cached.
			precond "$P_NAME" cold "$DATA_BYTES" "$dload" 0 "ferry's ferry_load_bytes_total$ALL"
			precond "$P_NAME" cached "$DATA_PAGES" $((pages1 - P_PAGES0)) 0 "ferry's ferry_cache_pages$ALL (the dataset's $DATA_PAGES pages)"
		fi ;;
	warm)
		precond "$P_NAME" warm 0 "$dufs" 0 "ferry's ferry_ufs_read_bytes_total$ALL"
		precond "$P_NAME" warm 0 "$dlink" "$SLACK" "$LINK" ;;
	esac
	PRECOND_DETAIL=""
	say "$P_NAME: $secs s, $(calc "$bytes / $secs / 1e6") MB/s; ferry fetched $(calc "$dufs / 1e6") MB (load jobs $(calc "$dload / 1e6") MB), the link carried $(calc "$dlink / 1e6") MB"
}
declare -A NOTED=()
# read_pass NAME ROLE: the reader (xread.py s3, one thread) through ferry's
# gateway (the cluster: worker c1's).
read_pass() {
	local out files bytes secs cmd=(timeout "$PASS_TIMEOUT" $PY "$ROOT/bench/xread.py" s3 "http://$FW_S3" "$MOUNT" "$RUN/keys.txt" 1)
	local nk=read; [ "$FW_NAME" = c ] && nk=read3
	[ -z "${NOTED[$nk]:-}" ] && { note "nsenter --net=/run/netns/$WAN_COMPUTE $(echo "${cmd[*]}" | sed "s|$RUN/||g; s|$ROOT/||g")   # the reader: boto3, every byte of every file, one at a time ($([ "$FW_NAME" = c ] && echo "the cluster: through worker c1's gateway" || echo "cold, warm, after-load"))"; NOTED[$nk]=1; }
	begin "$1" "$2"
	out=$("${C[@]}" "${cmd[@]}") || { echo "bench-load: $1: the reader failed" >&2; exit 1; }
	read -r files bytes secs <<< "$out"
	[ "$bytes" = "$DATA_BYTES" ] && [ "$files" = "$N_FILES" ] || { echo "bench-load: $1 read $files files, $bytes bytes, not $N_FILES, $DATA_BYTES" >&2; exit 1; }
	end xread "$files" "$bytes" "$secs"
}
# load_pass NAME [--bandwidth R]: `ferry load /ld`, timed from its start to
# its exit (0: everything loaded); the job's own figures from --status --json
# (the cluster: every worker's part, asked of each worker, summed).
load_pass() {
	local name=$1 rc=0 t0 t1 secs job la=() tag k
	shift
	if [ -n "${LD_LOAD_ARGS:-}" ]; then read -ra la <<< "$LD_LOAD_ARGS"; fi
	local cmd=(timeout "$PASS_TIMEOUT" "$FERRY" --worker "$FW_CTL" load "/$MOUNT" "$@" ${la[@]+"${la[@]}"})
	tag=${name// /-}
	note "nsenter --net=/run/netns/$WAN_COMPUTE ${FW_TOKEN:+env FERRY_TOKEN=<token> }${cmd[*]#$ROOT/}   # $name; then: ferry load --status --json$([ "$FW_NAME" = c ] && echo " (of each worker)")"
	begin "$name" cold
	sampler_start "$RUN/samples-$tag.tsv"
	t0=$(now)
	"${C[@]}" env ${FW_TOKEN:+FERRY_TOKEN=$FW_TOKEN} "${cmd[@]}" > "$RUN/load-$tag.out" 2>&1 < /dev/null || rc=$?
	t1=$(now)
	stop_pid "$SMP_PID"
	secs=$(calc "$t1 - $t0")
	# Each worker's answer (one worker: its own, as before).
	for k in "${!FW_CTLS[@]}"; do
		"${C[@]}" env ${FW_TOKEN:+FERRY_TOKEN=$FW_TOKEN} "$FERRY" --worker "${FW_CTLS[$k]}" load --status --json > "$RUN/status-$tag.w$k.json"
	done
	# The job of /ld on each (a new job of the same path replaces the old
	# one); several workers' parts summed: bytes add up, files are the
	# least any part did (each lists every file), the time the longest,
	# the state "done" only if every part's is.
	job=$($PY - "/$MOUNT" "$RUN/status-$tag.json" "${!FW_CTLS[@]}" <<PYEOF
import json, sys
path, out, ks = sys.argv[1], sys.argv[2], sys.argv[3:]
parts, raw = [], []
for k in ks:
    d = json.load(open("$RUN/status-$tag.w%s.json" % k))
    raw.append(d)
    js = [j for j in d["jobs"] if j["path"] == path]
    if len(js) != 1:
        sys.exit("bench-load: %d load jobs of %s in worker %s's --status --json" % (len(js), path, k))
    parts.append(js[0])
json.dump(raw[0] if len(raw) == 1 else {"workers": raw}, open(out, "w"))
if len(parts) == 1:
    print(json.dumps(parts[0]))
else:
    j = dict(parts[0])
    for f in ("bytes_done", "bytes_total", "bytes_fetched", "bandwidth", "files_failed", "files_not_cached"):
        j[f] = sum(p.get(f, 0) for p in parts)
    j["files_done"] = min(p["files_done"] for p in parts)
    j["elapsed_s"] = max(p["elapsed_s"] for p in parts)
    j["state"] = "done" if all(p["state"] == "done" for p in parts) else \
        "/".join(sorted(set(p["state"] for p in parts)))
    j["parts"] = len(parts)
    print(json.dumps(j))
PYEOF
)
	for k in "${!FW_CTLS[@]}"; do rm -f "$RUN/status-$tag.w$k.json"; done
	if [ $rc != 0 ]; then
		{
			echo "bench-load: $name: ferry load exited $rc after $secs s$([ $rc = 124 ] && echo " (killed at PASS_TIMEOUT=$PASS_TIMEOUT s)"); it printed:"
			tail -20 "$RUN/load-$tag.out"
			echo "ferry load --status --json: $job"
			for k in "${FW_NAMES[@]}"; do
				echo "worker $k's log's warnings and errors (bench/work/logs/ld-worker-$k.log):"
				awk '$2 != "info"' "$W/logs/ld-worker-$k.log" | tail -20
			done
		} >&2
		exit 1
	fi
	local files
	files=$($PY -c 'import json, sys; print(json.loads(sys.argv[1])["files_done"])' "$job")
	[ "$files" = "$N_FILES" ] || { echo "bench-load: $name: the job says $files files done, not $N_FILES: $job" >&2; exit 1; }
	end ferry-load "$files" "$DATA_BYTES" "$secs" "$job"
}

note "sync; echo 3 > /proc/sys/vm/drop_caches   # before every pass, once the link is quiet"
# ======================================================================================
section "1. the link's multi-stream limit: every 1 MiB range of the dataset, 8 at a time (curl, no cache)"
CFG=$RUN/curl8.cfg
: > "$CFG"
while read -r k; do
	sz=$(stat -c %s "$XD/$k")
	for p2 in $(seq 0 $(((sz - 1) / PAGE))); do
		[ -s "$CFG" ] && echo next >> "$CFG"
		printf 'url = "%s/%s/%s"\nrange = "%d-%d"\noutput = "/dev/null"\nfail\nwrite-out = "%%{size_download}\\n"\n' \
			"$REMOTE_URL" "$BUCKET" "$k" $((p2 * PAGE)) $((p2 * PAGE + PAGE - 1)) >> "$CFG"
	done
done < "$RUN/keys-store.txt"
note "nsenter --net=/run/netns/$WAN_COMPUTE curl -s --no-progress-meter --parallel --parallel-max 8 -K <one operation per 1 MiB range of every object under $REMOTE_URL/$BUCKET/$PQ/: url, range, output /dev/null, fail, write-out size_download>   # xregion.sh's curl8: the link's limit for these bytes"
begin "link curl8" direct
t0=$(now)
"${C[@]}" timeout "$PASS_TIMEOUT" curl -s --no-progress-meter --parallel --parallel-max 8 -K "$CFG" > "$RUN/curl8.out" ||
	{ echo "bench-load: curl8 failed" >&2; exit 1; }
t1=$(now)
got=$(awk '{s += $1} END {print s}' "$RUN/curl8.out")
[ "$got" = "$DATA_BYTES" ] || { echo "bench-load: curl8 read $got bytes, not $DATA_BYTES" >&2; exit 1; }
end curl8 "$N_FILES" "$DATA_BYTES" "$(calc "$t1 - $t0")"
LINK_BPS=$(calc "$DATA_BYTES / ($t1 - $t0)")

# ======================================================================================
section "2. a training job's first pass without load: a fresh worker (a), the dataset read cold"
start_ferry a
read_pass "read cold" cold

# ======================================================================================
section "3. ferry load /$MOUNT into an empty cache (another fresh worker, b); then the reader on a (warm) and b (after-load), in turn"
start_ferry b
load_pass "load"
for i in $(seq "$WARM_PASSES"); do
	use a; read_pass "read warm $i" warm
	use b; read_pass "read after-load $i" warm
done
stop_ferry a
use b

# ======================================================================================
# The cap: about BW_FRACTION of the link's rate in pass 1, in whole MiB/s
# (ferry's --bandwidth reads 'MB' as 2^20 bytes); the cap in bytes/s is that
# (in a cluster each part's "bandwidth" in the status JSON is its current
# share, recorded with the pass, not the cap).
BW_MIB=$(awk -v b="$LINK_BPS" -v f="$BW_FRACTION" 'BEGIN { m = int(b * f / 1048576 + 0.5); print (m < 1 ? 1 : m) }')
section "4. ferry free /$MOUNT --force, then ferry load /$MOUNT --bandwidth ${BW_MIB}MB/s (~$BW_FRACTION of the link's $(calc "$LINK_BPS / 1e6") MB/s)"
note "nsenter --net=/run/netns/$WAN_COMPUTE build/ferry --worker $FW_CTL free /$MOUNT --force   # then: ferry_cache_pages and ferry du /$MOUNT -s --json must say 0"
fcli free "/$MOUNT" --force --json > "$RUN/free.json"
say "free: $(cat "$RUN/free.json")"
load_pass "load bandwidth" --bandwidth "${BW_MIB}MB/s"
echo "bw_arg=${BW_MIB}MB/s" >> "$RUN/meta.env"
echo "link_bps_curl8=$LINK_BPS" >> "$RUN/meta.env"

"${C[@]}" curl -s --max-time 10 "http://$FW_CTL/metrics" > "$RUN/ferry-metrics.txt" || true
awk '$2 != "info"' "$W/logs/ld-worker-b.log" | tail -20 > "$RUN/ferry-log.txt"   # warnings and errors
grep ' load ' "$W/logs/ld-worker-b.log" | tail -20 > "$RUN/ferry-log-load.txt" || true
stop_ferry b

# ======================================================================================
# 5-7: the same over the same link with a cluster of three workers.
section "5. a fresh 3-worker cluster (etcd, every worker behind the one link): ferry load /$MOUNT through the CLI (every member loads its blocks); then the reader through c1's gateway: the first pass after the load, then $WARM_PASSES warm passes"
cluster_start
say "cluster: $N3 workers ($(for i in $(seq "$N3"); do printf '%s ' "c$i=${WCTL[c$i]}"; done)), etcd $ETCD_URL, block size $($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["block_size"])' "$RUN/workers-3w.json")"
echo "block_size_3w=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["block_size"])' "$RUN/workers-3w.json")" >> "$RUN/meta.env"
load_pass "load 3w"
read_pass "read after-load 3w" warm
for i in $(seq "$WARM_PASSES"); do read_pass "read warm 3w $i" warm; done

section "6. the cluster: ferry free /$MOUNT --force (every worker), then ferry load /$MOUNT --bandwidth ${BW_MIB}MB/s (the CLI: the cap shared by the $N3 workers)"
note "nsenter --net=/run/netns/$WAN_COMPUTE env FERRY_TOKEN=<token> build/ferry --worker $FW_CTL free /$MOUNT --force   # every member; then: ferry_cache_pages (every worker's) and ferry du /$MOUNT -s --json (summed) must say 0"
fcli free "/$MOUNT" --force --json > "$RUN/free-3w.json"
say "free: $(tr '\n' ' ' < "$RUN/free-3w.json")"
load_pass "load bandwidth 3w" --bandwidth "${BW_MIB}MB/s"

section "7. the cluster: ferry free /$MOUNT --force again, then the reader's cold pass through c1's gateway (the training job's first pass without load, on this cluster)"
fcli free "/$MOUNT" --force --json > "$RUN/free-3w-cold.json"
read_pass "read cold 3w" cold

for i in $(seq "$N3"); do "${C[@]}" curl -s --max-time 10 "http://${WCTL[c$i]}/metrics" > "$RUN/ferry-metrics-c$i.txt" || true; done
for i in $(seq "$N3"); do awk -v w="c$i" '$2 != "info" {print w ": " $0}' "$W/logs/ld-worker-c$i.log" | tail -10; done > "$RUN/ferry-log-3w.txt"
for i in $(seq "$N3"); do grep ' load ' "$W/logs/ld-worker-c$i.log" | sed "s/^/c$i: /" | tail -20; done > "$RUN/ferry-log-load-3w.txt" || true
stop_cluster

kill -USR1 "$WL_PID" 2>/dev/null; sleep 0.2
TICK=$(getconf CLK_TCK)
read -r wl_u wl_s <<< "$(sed 's/^.*) //' "/proc/$WL_PID/stat" | awk '{print $12, $13}')"
echo "wanlink_cpu=user $(calc "$wl_u / $TICK") s, system $(calc "$wl_s / $TICK") s" >> "$RUN/meta.env"
grep '^wanlink stats' "$W/logs/wanlink.log" | tail -2 > "$RUN/wanlink-stats.txt" || true
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"
cleanup

# ======================================================================================
section "report"
OUT=$ROOT/bench/results/load-$STAMP-$MODE.md
$PY "$ROOT/bench/loadreport.py" "$RUN" > "$OUT"
LATEST=latest-load; [ "$MODE" = quick ] && LATEST=latest-load-quick
# A developer's run with its own settings is not the mode's result.
if [ -z "${LD_DATA_MIB:-}${LD_LOAD_ARGS:-}${LD_FERRY_ARGS:-}${LD_BW_FRACTION:-}${WAN_RATE:-}${WAN_DELAY_MS:-}${WAN_RMEM:-}${WAN_QUEUE:-}" ]; then
	cp "$OUT" "$ROOT/bench/results/$LATEST.md"
	say "report: ${OUT#"$ROOT"/} (and bench/results/$LATEST.md), $(( $(date +%s) - T_START )) s in all"
else
	say "report: ${OUT#"$ROOT"/} ($LATEST.md left alone: LD_*/WAN_* settings in effect), $(( $(date +%s) - T_START )) s in all"
fi
sed -n '/^## Headline/,/^## /p' "$OUT" | sed '$d'
