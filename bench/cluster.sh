#!/usr/bin/env bash
# bench/cluster.sh quick|full: the cluster benchmarks (issue 4; bench/README.md).
#   1. aggregate warm GET throughput of 1, 2 and 3 workers, with one wrk
#      spreading its connections over every worker's gateway, and the share
#      of bytes that crossed a worker hop;
#   2. the latency a non-owner gateway adds: the same small objects through
#      their owner's gateway and through another worker's gateway;
#   3. failover: a reader of worker B's objects through worker A while B is
#      killed (SIGKILL), cut off (its link down) and hung (SIGSTOP).
# Each worker runs in its own network namespace with its own address (a veth
# into a bridge of the root namespace, 10.78.S.0/24), etcd in the root
# namespace on the bridge address; clients run in the root namespace.  The
# under-store is a local directory mounted as file:// by every worker (a
# real cluster would share it over the network).  Needs root; without it,
# says so and exits 0.
# Writes bench/results/cluster-<UTC date and time>-<mode>.md and a stable copy
# (latest-cluster.md for full, latest-cluster-quick.md for quick).  Work files
# live under bench/work/ (git-ignored); the dataset is generated once there.
# Every process, namespace, veth and the bridge made here are removed on exit
# (also on failure or interrupt).
set -euo pipefail
MODE=${1:-quick}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
PY=/usr/bin/python3
FERRY=$ROOT/build/ferry

case $MODE in
# N_LARGE x LARGE_MIB MiB objects for throughput, N_SMALL x 64 KiB for latency
# and failover; DUR: seconds per throughput run, LDUR per latency run.
full)  N_LARGE=16; LARGE_MIB=64; N_SMALL=240; DUR=10; ROUNDS=3; LDUR=5; LROUNDS=2 ;;
quick) N_LARGE=6;  LARGE_MIB=32; N_SMALL=90;  DUR=4;  ROUNDS=1; LDUR=2; LROUNDS=1 ;;
*) echo "usage: $0 quick|full" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/cluster.sh: skipped: it needs root (network namespaces, veth pairs, a bridge); run it as root"
	exit 0
fi
LARGE_SIZE=$((LARGE_MIB * 1024 * 1024))
SMALL_SIZE=$((64 * 1024))
BLOCK=16M
BLOCK_BYTES=$((16 * 1024 * 1024))
CONNS_PER_GW=4            # wrk connections per worker gateway (throughput)
MAXN=3                    # workers at most
TOKEN=bench-cluster-token # --control-token: the same on every worker
LEASE_TTL=5               # the worker's default --lease-ttl (not passed)

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/cluster-$STAMP-$MODE
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
# Every pass checks what it assumed of the caches (bench/precond.sh).
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"

say() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }
die() { echo "bench/cluster.sh: $*" >&2; exit 1; }

# --- bookkeeping: every process, namespace, link made here ------------------
TAG=fcl$$                 # names: namespaces $TAG-wI, veths ${TAG}wIh/n, bridge ${TAG}br
BR=${TAG}br
PIDS=()
NETNS=()
CDIR=$W/cluster-$$        # caches, etcd data, outputs of this run
ETCD_PID=""
cleanup() {
	local p ns
	set +e # cleanup goes on whatever fails
	# Workers first (they revoke their leases as they leave), etcd last.
	for p in "${PIDS[@]}"; do
		[ "$p" = "$ETCD_PID" ] && continue
		kill -CONT "$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}" "$ETCD_PID"; do
		[ -n "$p" ] || continue
		if [ "$p" = "$ETCD_PID" ]; then kill -0 "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null; fi
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
	for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	NETNS=()
	# Deleting a namespace deletes its veth end and so the pair; the
	# host ends are removed here too in case a namespace was never made.
	for p in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${TAG}(w[0-9]+h|br)$" || true); do
		ip link del "$p" 2>/dev/null || true
	done
	[ -n "${CLUSTER_KEEP:-}" ] || rm -rf "$CDIR" # CLUSTER_KEEP=1: keep logs for a post-mortem
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pid() {
	local p=$1 q=() x
	kill -CONT "$p" 2>/dev/null || true
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
	PIDS=("${q[@]}")
}
# Leftovers of an earlier run of this script that died without cleaning
# up (SIGKILL): names carry that run's pid; only dead runs' are removed.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^fcl[0-9]+-w[0-9]+$' || true); do
	p=${ns#fcl}; p=${p%%-*}
	kill -0 "$p" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^fcl[0-9]+(w[0-9]+h|br)$' || true); do
	p=${l#fcl}; p=${p%%[wb]*}
	kill -0 "$p" 2>/dev/null || ip link del "$l" 2>/dev/null || true
done
for d in "$W"/cluster-[0-9]*; do
	[ -d "$d" ] || continue
	p=${d##*/cluster-}
	[[ $p =~ ^[0-9]+$ ]] && ! kill -0 "$p" 2>/dev/null && rm -rf "$d"
done

# --- tools -----------------------------------------------------------------
section "preflight"
for t in ip etcd wrk curl gcc md5sum cmp "$PY" /usr/bin/time; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found (scripts/install-deps.sh installs etcd and wrk)"
done
if [ ! -x "$FERRY" ] || [ ! -f "$ROOT/build/libferry_core.a" ]; then
	note "make"
	say "build/ferry is missing: make"
	make -C "$ROOT" -j2 >/dev/null
fi
"$FERRY" worker --help 2>&1 | grep -q -- '--etcd' || die "build/ferry has no cluster mode (--etcd): rebuild with make"
OWNER=$W/cluster_owner
if [ ! -x "$OWNER" ] || [ "$ROOT/bench/cluster_owner.c" -nt "$OWNER" ] || [ "$ROOT/build/libferry_core.a" -nt "$OWNER" ]; then
	note "gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude -Isrc -o bench/work/cluster_owner bench/cluster_owner.c build/libferry_core.a -lpthread"
	gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Iinclude -Isrc -o "$OWNER" \
		"$ROOT/bench/cluster_owner.c" "$ROOT/build/libferry_core.a" -lpthread
fi
ulimit -n 65536 2>/dev/null || true
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy
export NO_PROXY='*' no_proxy='*'

# --- dataset: generated once, reused -----------------------------------------
DATA=$W/cluster-data
LDIR=large$LARGE_MIB
section "dataset: $N_LARGE x $LARGE_MIB MiB + $N_SMALL x 64 KiB of random bytes in bench/work/cluster-data"
mkdir -p "$DATA/$LDIR" "$DATA/small"
LARGE_KEYS=(); SMALL_KEYS=()
for i in $(seq 0 $((N_LARGE - 1))); do LARGE_KEYS+=("$LDIR/obj-$(printf %02d "$i").bin"); done
for i in $(seq 0 $((N_SMALL - 1))); do SMALL_KEYS+=("small/img-$(printf %04d "$i").bin"); done
note "for each missing file: head -c $LARGE_SIZE /dev/urandom > bench/work/cluster-data/$LDIR/obj-NN.bin;" \
	"head -c $SMALL_SIZE /dev/urandom > bench/work/cluster-data/small/img-NNNN.bin"
gen() { # key size
	local f=$DATA/$1
	if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$2" ]; then
		head -c "$2" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f"
	fi
}
for k in "${LARGE_KEYS[@]}"; do gen "$k" $LARGE_SIZE; done
for k in "${SMALL_KEYS[@]}"; do gen "$k" $SMALL_SIZE; done
declare -A MD5
for k in "${LARGE_KEYS[@]}"; do
	m=$DATA/.md5-${k//\//_}
	if [ ! -f "$m" ] || [ "$DATA/$k" -nt "$m" ]; then md5sum < "$DATA/$k" | cut -d' ' -f1 > "$m"; fi
	MD5[$k]=$(cat "$m")
done
LARGE_BYTES=$((N_LARGE * LARGE_SIZE))

# --- network: a bridge, one namespace + veth per worker ----------------------
section "network: bridge $BR, namespaces $TAG-w1..w$MAXN"
used=$(ip -4 -o addr show 2>/dev/null | awk '{print $4}')
SUB=""
for s in $(seq 0 255); do
	grep -q "^10\.78\.$s\." <<< "$used" || { SUB=$s; break; }
done
[ -n "$SUB" ] || die "no free 10.78.x.0/24 subnet"
NET=10.78.$SUB
BRIP=$NET.1
note "ip link add $BR type bridge; ip addr add $BRIP/24 dev $BR; ip link set $BR up"
ip link add "$BR" type bridge
ip addr add "$BRIP/24" dev "$BR"
ip link set "$BR" up
declare -A NS WIP VETH
for i in $(seq "$MAXN"); do
	NS[$i]=$TAG-w$i; WIP[$i]=$NET.$((10 + i)); VETH[$i]=${TAG}w${i}h
	note "ip netns add ${NS[$i]}; ip link add ${VETH[$i]} type veth peer name ${TAG}w${i}n;" \
		"ip link set ${TAG}w${i}n netns ${NS[$i]}; ip link set ${VETH[$i]} master $BR up;" \
		"ip -n ${NS[$i]} addr add ${WIP[$i]}/24 dev ${TAG}w${i}n; ip -n ${NS[$i]} link set ${TAG}w${i}n up; ip -n ${NS[$i]} link set lo up"
	ip netns add "${NS[$i]}"; NETNS+=("${NS[$i]}")
	ip link add "${VETH[$i]}" type veth peer name "${TAG}w${i}n"
	ip link set "${TAG}w${i}n" netns "${NS[$i]}"
	ip link set "${VETH[$i]}" master "$BR" up
	ip -n "${NS[$i]}" addr add "${WIP[$i]}/24" dev "${TAG}w${i}n"
	ip -n "${NS[$i]}" link set "${TAG}w${i}n" up
	ip -n "${NS[$i]}" link set lo up
done
for i in $(seq "$MAXN"); do
	for _ in $(seq 50); do ping -c1 -W1 "${WIP[$i]}" >/dev/null 2>&1 && break; sleep 0.1; done
done

# --- etcd ------------------------------------------------------------------------
section "etcd on $BRIP"
free_port() { $PY -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
mkdir -p "$CDIR"
EPORT=$(free_port "$BRIP"); PPORT=$(free_port 127.0.0.1)
ETCD_URL=http://$BRIP:$EPORT
ECMD=(etcd --name bench --data-dir "$CDIR/etcd" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL"
	--listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT"
	--initial-cluster "bench=http://127.0.0.1:$PPORT" --heartbeat-interval 50 --election-timeout 500
	--logger zap --log-level error)
note "${ECMD[*]//$W\//bench/work/}"
"${ECMD[@]}" > "$W/logs/cluster-etcd.log" 2>&1 < /dev/null &
ETCD_PID=$!; PIDS+=("$ETCD_PID")
for _ in $(seq 100); do curl -sf --max-time 1 "$ETCD_URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf --max-time 1 "$ETCD_URL/health" >/dev/null || { tail -20 "$W/logs/cluster-etcd.log" >&2; die "etcd did not start"; }

# --- machine and versions ------------------------------------------------------
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
	echo "etcd_version=$(etcd --version 2>&1 | head -1)"
	echo "wrk_version=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "curl_version=$(curl --version | head -1 | cut -d' ' -f1-2)"
	echo "python_version=$($PY --version 2>&1)"
	echo "uid=$(id -u)"
	echo "n_large=$N_LARGE"; echo "large_size=$LARGE_SIZE"; echo "n_small=$N_SMALL"; echo "small_size=$SMALL_SIZE"
	echo "dur=$DUR"; echo "rounds=$ROUNDS"; echo "ldur=$LDUR"; echo "lrounds=$LROUNDS"
	echo "block=$BLOCK"; echo "block_bytes=$BLOCK_BYTES"; echo "conns_per_gw=$CONNS_PER_GW"; echo "lease_ttl=$LEASE_TTL"
	echo "net=$NET.0/24"; echo "bridge_ip=$BRIP"
	echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RUN/meta.env"

# --- workers -------------------------------------------------------------------
# Three clusters side by side, "bench-n1" (1 worker), "bench-n2" (2) and
# "bench-n3" (3), so that the throughput runs can alternate between them and
# share whatever else the machine does meanwhile.  Worker I of cluster N
# (key "N,I") runs in namespace I, on ports 9000+10N (S3) and 9001+10N
# (control); its cache is $CDIR/nN-wI.
declare -A WPID S3 CTL IDS
rm -f "$W"/logs/cluster-n*-w*.out "$W"/logs/cluster-n*-w*.log
start_worker() { # N I: (re)start worker I of cluster N (a kept cache dir keeps its id and pages)
	local n=$1 i=$2 ns=${NS[$2]} ip=${WIP[$2]}
	local out=$W/logs/cluster-n$1-w$2.out log=$W/logs/cluster-n$1-w$2.log
	mkdir -p "$CDIR/n$n-w$i"
	local cmd=("$FERRY" worker --cache-dir "$CDIR/n$n-w$i" --cache-size 8G
		--s3-address "$ip:$((9000 + 10 * n))" --control-address "$ip:$((9001 + 10 * n))" --advertise "$ip"
		--s3-anonymous --local-socket none
		--etcd "$ETCD_URL" --cluster "bench-n$n" --block-size "$BLOCK"
		--mount "bench=file://$DATA")
	note "ip netns exec $ns $(echo "${cmd[*]}" | sed "s|$CDIR|bench/work/cluster-PID|g; s|$ROOT/||g") &"
	: > "$out"
	# The token from the environment: never on a command line.
	FERRY_CONTROL_TOKEN=$TOKEN ip netns exec "$ns" "${cmd[@]}" >> "$out" 2>> "$log" < /dev/null &
	local pid=$!
	WPID[$n,$i]=$pid; PIDS+=("$pid")
	local line=""
	for _ in $(seq 200); do
		line=$(head -1 "$out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		tail -20 "$log" >&2; die "worker $i of cluster bench-n$n did not start (log above)"
	fi
	S3[$n,$i]=${BASH_REMATCH[1]}; CTL[$n,$i]=${BASH_REMATCH[2]}
}
metric() { # ctl name  (sums all label sets)
	curl -s --max-time 5 "http://$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f\n", s}'
}
metric_l() { # ctl 'name{labels}'
	curl -s --max-time 5 "http://$1/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}
wait_members() { # N SECONDS I...: workers I of cluster N all see N members
	local n=$1 secs=$2 i ok; shift 2
	for _ in $(seq $((secs * 20))); do
		ok=1
		for i in "$@"; do [ "$(metric "${CTL[$n,$i]}" ferry_cluster_members)" = "$n" ] || { ok=0; break; }; done
		[ $ok = 1 ] && return 0
		sleep 0.05
	done
	return 1
}
# Bytes cluster N's workers have fetched from the under-store, all together;
# any worker that does not answer stops the run (in $(...): the assignment fails).
ufs_sum() { # N
	local i v t=0
	for i in $(seq "$1"); do
		v=$(curl -sf --max-time 5 "http://${CTL[$1,$i]}/metrics" | awk '$1 == "ferry_ufs_read_bytes_total" {print $2}') ||
			{ echo "bench/cluster.sh: worker $i of bench-n$1 does not answer /metrics" >&2; exit 1; }
		[ -n "$v" ] || { echo "bench/cluster.sh: worker $i of bench-n$1: no ferry_ufs_read_bytes_total" >&2; exit 1; }
		t=$((t + v))
	done
	echo "$t"
}
UFS_COUNTER="the workers' ferry_ufs_read_bytes_total, summed"
self_id() { curl -sf --max-time 5 -H "Authorization: Bearer $TOKEN" "http://$1/v1/cluster" | $PY -c 'import json,sys; print(json.load(sys.stdin)["self"])'; }
TICK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0; }
# /proc/stat's cpu line: user+nice, system, irq+softirq, steal, total (ticks).
cpu_stat() { awk '/^cpu /{print $2+$3, $4, $7+$8, $9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }
# owners N < "mount block path" lines: "path block i0 i1 .." with cluster N's
# worker numbers (1-based) in placement order, owner first.
owners() {
	local n=$1 ids=() i
	for i in $(seq "$n"); do ids+=("${IDS[$n,$i]}"); done
	"$OWNER" "${ids[@]}" | awk '{printf "%s %s", $1, $2; for (i = 3; i <= NF; i++) printf " %d", $i + 1; printf "\n"}'
}

section "workers: clusters bench-n1, bench-n2, bench-n3 (1, 2 and 3 workers), one namespace per worker"
for n in $(seq "$MAXN"); do
	for i in $(seq "$n"); do start_worker "$n" "$i"; done
done
for n in $(seq "$MAXN"); do
	wait_members "$n" 20 $(seq "$n") || die "the workers of bench-n$n did not all see $n members within 20 s"
	for i in $(seq "$n"); do IDS[$n,$i]=$(self_id "${CTL[$n,$i]}"); done
done

# ===========================================================================
# 1. Aggregate warm throughput, 1..3 workers.
# ===========================================================================
section "throughput: warm-up, every object through every gateway of each cluster, md5 checked"
WARM=$RUN/warm.tsv
printf 'n\tgateway\tseconds\tbytes\tmd5_ok\n' > "$WARM"
PLACE=$RUN/placement.tsv
printf 'what\tn\tworker\towned_blocks\texpected_bytes\tufs_bytes\n' > "$PLACE"
printf "/bench/%s\n" "${LARGE_KEYS[@]}" > "$RUN/large.paths"
cp "$ROOT/bench/cluster_paths.lua" "$RUN/"
note "curl -sf http://<gateway G>/bench/<key> | md5sum   # every large object through every gateway of the cluster in turn (the first pass warms), equal to the file's"
declare -A U0
for n in $(seq "$MAXN"); do
	for i in $(seq "$n"); do U0[$n,$i]=$(metric "${CTL[$n,$i]}" ferry_ufs_read_bytes_total); done
	# Fresh workers: nothing cached yet.
	u0=$(ufs_sum "$n")
	precond "warm-up bench-n$n" empty 0 "$u0" 0 "$UFS_COUNTER, since they started"
	for g in $(seq "$n"); do
		u0=$(ufs_sum "$n")
		t0=$(now); ok=1
		for k in "${LARGE_KEYS[@]}"; do
			got=$(curl -sf "http://${S3[$n,$g]}/bench/$k" | md5sum | cut -d' ' -f1)
			[ "$got" = "${MD5[$k]}" ] || { ok=0; echo "bench: md5 mismatch for $k via worker $g of bench-n$n" >&2; }
		done
		t1=$(now)
		printf '%s\t%s\t%s\t%s\t%s\n' "$n" "$g" "$(calc "$t1 - $t0")" "$LARGE_BYTES" "$ok" >> "$WARM"
		[ $ok = 1 ] || die "wrong bytes through worker $g of bench-n$n (a ferry bug: logs in bench/work/logs/cluster-n$n-w*.log)"
		# Through the first gateway the cluster is cold: every byte is
		# fetched (once, by its block's owner); through the others, warm.
		if [ "$g" = 1 ]; then
			u1=$(ufs_sum "$n")
			precond "warm-up bench-n$n gateway $g" cold "$LARGE_BYTES" $((u1 - u0)) 0 "$UFS_COUNTER"
		else
			u1=$(ufs_sum "$n")
			precond "warm-up bench-n$n gateway $g" warm 0 $((u1 - u0)) 0 "$UFS_COUNTER"
		fi
	done
	say "bench-n$n: every md5 equal through each of its $n gateway(s)"
	# Placement check: each worker read from the UFS exactly the blocks
	# placement gives it (bench/cluster_owner, the workers' own code).
	for k in "${LARGE_KEYS[@]}"; do
		for b in $(seq 0 $(((LARGE_SIZE - 1) / BLOCK_BYTES))); do echo "bench $b $k"; done
	done | owners "$n" > "$RUN/owners-large-n$n.txt"
	for i in $(seq "$n"); do
		nb=$(awk -v i="$i" '$3 == i' "$RUN/owners-large-n$n.txt" | wc -l)
		u=$(metric "${CTL[$n,$i]}" ferry_ufs_read_bytes_total)
		printf 'large\t%s\t%s\t%s\t%s\t%s\n' "$n" "$i" "$nb" $((nb * BLOCK_BYTES)) $((u - U0[$n,$i])) >> "$PLACE"
	done
done

section "throughput: wrk over every gateway, clusters in turn, $ROUNDS round(s) of $DUR s"
TPUT=$RUN/tput.tsv
printf 'n\tround\trequests\tbytes\tduration_us\terrors\tstatus_errors\ttimeouts\tp50_us\tp99_us\tfwd_bytes\tlocal_blocks\tfwd_blocks\tufs_bytes\tworkers_cpu_s\twrk_cpu_s\tcpu_user\tcpu_system\tcpu_irq\tcpu_steal\tcpu_ticks\tloadavg\n' > "$TPUT"
TPW=$RUN/tput-workers.tsv
printf 'n\tround\tworker\tget_requests\tfwd_bytes\tcpu_s\n' > "$TPW"
echo "loadavg_tput_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
declare -A F0 L0 B0 UU0 C0 G0
for r in $(seq "$ROUNDS"); do
	for n in $(seq "$MAXN"); do
		GWS=""; for i in $(seq "$n"); do GWS+="${GWS:+,}${S3[$n,$i]}"; done
		cmd=(wrk -t"$n" -c$((n * CONNS_PER_GW)) -d "${DUR}s" --timeout 30s -s "$RUN/cluster_paths.lua" "http://${S3[$n,1]}" -- "$RUN/large.paths")
		[ "$r" = 1 ] && note "CLUSTER_GATEWAYS=$GWS ${cmd[*]//$RUN\//}   # bench-n$n: thread k and its $CONNS_PER_GW connections go to gateway k"
		for i in $(seq "$n"); do
			F0[$i]=$(metric "${CTL[$n,$i]}" ferry_cluster_forwarded_bytes_total)
			L0[$i]=$(metric_l "${CTL[$n,$i]}" 'ferry_cluster_block_reads_total{where="local"}')
			B0[$i]=$(metric_l "${CTL[$n,$i]}" 'ferry_cluster_block_reads_total{where="forwarded"}')
			UU0[$i]=$(metric "${CTL[$n,$i]}" ferry_ufs_read_bytes_total)
			G0[$i]=$(metric_l "${CTL[$n,$i]}" 'ferry_s3_requests_total{op="GetObject"}')
			C0[$i]=$(cpu_ticks "${WPID[$n,$i]}")
		done
		read -r su0 ss0 si0 st0 tt0 <<< "$(cpu_stat)"
		out=$RUN/wrk-tput-n$n-$r.txt
		CLUSTER_GATEWAYS=$GWS /usr/bin/time -f 'WRKCPU %U %S' -o "$RUN/wrk-tput-n$n-$r.time" "${cmd[@]}" > "$out" 2>&1 ||
			{ cat "$out" >&2; die "wrk failed"; }
		read -r su1 ss1 si1 st1 tt1 <<< "$(cpu_stat)"
		la=$(cut -d' ' -f1 /proc/loadavg)
		fwd=0; lb=0; fb=0; ub=0; cpu=0
		for i in $(seq "$n"); do
			kill -0 "${WPID[$n,$i]}" 2>/dev/null || die "worker $i of bench-n$n died during the throughput run"
			f=$(( $(metric "${CTL[$n,$i]}" ferry_cluster_forwarded_bytes_total) - F0[$i] ))
			c=$(( $(cpu_ticks "${WPID[$n,$i]}") - C0[$i] ))
			gq=$(( $(metric_l "${CTL[$n,$i]}" 'ferry_s3_requests_total{op="GetObject"}') - G0[$i] ))
			fwd=$((fwd + f)); cpu=$((cpu + c))
			lb=$((lb + $(metric_l "${CTL[$n,$i]}" 'ferry_cluster_block_reads_total{where="local"}') - L0[$i]))
			fb=$((fb + $(metric_l "${CTL[$n,$i]}" 'ferry_cluster_block_reads_total{where="forwarded"}') - B0[$i]))
			ub=$((ub + $(metric "${CTL[$n,$i]}" ferry_ufs_read_bytes_total) - UU0[$i]))
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$i" "$gq" "$f" "$(calc "$c / $TICK")" >> "$TPW"
		done
		res=$(grep '^WRKRESULT' "$out") || { cat "$out" >&2; die "no result from wrk"; }
		read -r requests bytes duration_us errors status_errors timeouts p50_us _ p99_us _ _ _ \
			<<< "$(sed 's/^WRKRESULT //; s/[a-z0-9_]*=//g' <<< "$res")"
		wcpu=$(awk '/^WRKCPU/{print $2 + $3}' "$RUN/wrk-tput-n$n-$r.time")
		# A warm run: nothing came from the under-store.
		precond "throughput bench-n$n round $r" warm 0 "$ub" 0 "$UFS_COUNTER"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "$requests" "$bytes" "$duration_us" \
			"$errors" "$status_errors" "$timeouts" "$p50_us" "$p99_us" "$fwd" "$lb" "$fb" "$ub" "$(calc "$cpu / $TICK")" "$wcpu" \
			$((su1 - su0)) $((ss1 - ss0)) $((si1 - si0)) $((st1 - st0)) $((tt1 - tt0)) "$la" >> "$TPUT"
		say "bench-n$n round $r: $(calc "$bytes / $duration_us / 1000") GB/s, hop share $(calc "$fwd / ($bytes + 1)")," \
			"workers' CPU $(calc "$cpu / $TICK") s, wrk CPU $wcpu s, machine busy $(calc "1 - ($tt1 - $tt0 - ($su1 - $su0) - ($ss1 - $ss0) - ($si1 - $si0) - ($st1 - $st0)) / ($tt1 - $tt0)")"
	done
done
echo "loadavg_tput_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
# The smaller clusters are done: stop them, leaving bench-n3 alone.
for n in $(seq $((MAXN - 1))); do
	for i in $(seq "$n"); do stop_pid "${WPID[$n,$i]}"; done
done

# ===========================================================================
# 2. Latency of a hop: small objects through their owner vs another worker.
# ===========================================================================
N=$MAXN
section "hop latency: $N_SMALL x 64 KiB, wrk -t1 -c1, owner's gateway vs a non-owner's (bench-n$N)"
for k in "${SMALL_KEYS[@]}"; do echo "bench 0 $k"; done | owners "$N" > "$RUN/owners-small.txt"
for i in $(seq "$N"); do
	awk -v i="$i" '$3 == i {print "/bench/" $1}' "$RUN/owners-small.txt" > "$RUN/small-owned-$i.paths"
	[ -s "$RUN/small-owned-$i.paths" ] || die "no small object is owned by worker $i (raise N_SMALL)"
	U0[$N,$i]=$(metric "${CTL[$N,$i]}" ferry_ufs_read_bytes_total)
done
# Warm (one curl, one connection, through gateway 1), then every object
# through every gateway compared with its file.
cfg=$RUN/warm-small.curl; : > "$cfg"
for k in "${SMALL_KEYS[@]}"; do printf 'url = "http://%s/bench/%s"\noutput = "/dev/null"\n' "${S3[$N,1]}" "$k" >> "$cfg"; done
note "curl -sf -K <url/output pairs: every small object through gateway 1>   # warm-up"
u0=$(ufs_sum "$N")
curl -sf -K "$cfg"
# The small objects had not been read: that read fetched every one of them.
u1=$(ufs_sum "$N")
precond "hop latency warm-up" cold $((N_SMALL * SMALL_SIZE)) $((u1 - u0)) 0 "$UFS_COUNTER"
for i in $(seq "$N"); do
	nb=$(wc -l < "$RUN/small-owned-$i.paths")
	u=$(metric "${CTL[$N,$i]}" ferry_ufs_read_bytes_total)
	printf 'small\t%s\t%s\t%s\t%s\t%s\n' "$N" "$i" "$nb" $((nb * SMALL_SIZE)) $((u - U0[$N,$i])) >> "$PLACE"
done
OUTD=$CDIR/out
u0=$(ufs_sum "$N")
for g in $(seq "$N"); do
	rm -rf "$OUTD"; mkdir -p "$OUTD/small"
	cfg=$RUN/check-small-$g.curl; : > "$cfg"
	for k in "${SMALL_KEYS[@]}"; do printf 'url = "http://%s/bench/%s"\noutput = "%s/%s"\n' "${S3[$N,$g]}" "$k" "$OUTD" "$k" >> "$cfg"; done
	curl -sf -K "$cfg"
	# Only this run's objects: the directory may hold more from a full run.
	for k in "${SMALL_KEYS[@]}"; do
		cmp -s "$DATA/$k" "$OUTD/$k" || die "small object $k through gateway $g differs from its file (a ferry bug)"
	done
done
rm -rf "$OUTD"
u1=$(ufs_sum "$N")
precond "hop latency check reads" warm 0 $((u1 - u0)) 0 "$UFS_COUNTER"
note "curl -sf -K <every small object through gateway G into a dir>; cmp each object with its file   # for each gateway: all equal"
LAT=$RUN/lat.tsv
printf 'round\tgateway\tkind\towner\trequests\tduration_us\terrors\tstatus_errors\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\tmean_us\tfwd_bytes\n' > "$LAT"
echo "loadavg_lat_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
for r in $(seq "$LROUNDS"); do
	for g in $(seq "$N"); do
		kinds=(owner hop); [ $(((r + g) % 2)) = 1 ] && kinds=(hop owner)
		for kind in "${kinds[@]}"; do
			o=$g; [ $kind = hop ] && o=$((g % N + 1))
			cmd=(wrk -t1 -c1 -d "${LDUR}s" --timeout 30s -s "$RUN/cluster_paths.lua" "http://${S3[$N,$g]}" -- "$RUN/small-owned-$o.paths")
			[ "$r$g" = 11 ] && note "${cmd[*]//$RUN\//}   # $kind: objects owned by worker $o through worker $g's gateway (every gateway, both kinds)"
			f0=$(metric "${CTL[$N,$g]}" ferry_cluster_forwarded_bytes_total)
			u0=$(ufs_sum "$N")
			out=$RUN/wrk-lat-$r-$g-$kind.txt
			"${cmd[@]}" > "$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
			f1=$(metric "${CTL[$N,$g]}" ferry_cluster_forwarded_bytes_total)
			# Latency of cached objects: nothing fetched from the under-store.
			u1=$(ufs_sum "$N")
			precond "hop latency round $r gateway $g $kind" warm 0 $((u1 - u0)) 0 "$UFS_COUNTER"
			res=$(grep '^WRKRESULT' "$out") || { cat "$out" >&2; die "no result from wrk"; }
			read -r requests _ duration_us errors status_errors _ p50 p90 p99 p999 mx mean \
				<<< "$(sed 's/^WRKRESULT //; s/[a-z0-9_]*=//g' <<< "$res")"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$g" "$kind" "$o" "$requests" "$duration_us" \
				"$errors" "$status_errors" "$p50" "$p90" "$p99" "$p999" "$mx" "$mean" $((f1 - f0)) >> "$LAT"
			say "round $r gateway $g $kind (owner $o): p50 $p50 us, p99 $p99 us, $(calc "$requests * 1000000 / $duration_us") req/s"
		done
	done
done
echo "loadavg_lat_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"

# ===========================================================================
# 3. Failover: worker 1 (A) serves worker 2's (B) objects while B breaks.
# ===========================================================================
section "failover: reads of worker 2's objects through worker 1 while worker 2 breaks"
A=1; B=2
cp "$RUN/small-owned-$B.paths" "$RUN/failover.paths"
# Blocks of the large objects owned by B (at most 4): streamed while B breaks.
awk -v b="$B" -v bs="$BLOCK_BYTES" -v sz="$LARGE_SIZE" '$3 == b {
	off = $2 * bs; len = sz - off; if (len > bs) len = bs
	print "/bench/" $1, off, len }' "$RUN/owners-large-n$N.txt" | head -4 > "$RUN/failover.ranges"
[ -s "$RUN/failover.ranges" ] || die "worker $B owns no block of the large objects"
echo "failover_small_objects=$(wc -l < "$RUN/failover.paths")" >> "$RUN/meta.env"
echo "failover_ranges=$(wc -l < "$RUN/failover.ranges")" >> "$RUN/meta.env"
declare -A FA0
for act in kill linkdown stop; do
	wait_members "$N" 30 $(seq "$N") || die "bench-n$N is not back to $N members before '$act'"
	# What the failover measures starts warm: worker B's objects are in
	# its cache and served from there through A (read once here, checked:
	# nothing fetched from the under-store).
	u0=$(ufs_sum "$N")
	while read -r pth; do curl -sf --max-time 30 -o /dev/null "http://${S3[$N,$A]}$pth" || die "probe read of $pth through worker $A failed before '$act'"; done < "$RUN/failover.paths"
	while read -r pth off len; do
		curl -sf --max-time 30 -o /dev/null -r "$off-$((off + len - 1))" "http://${S3[$N,$A]}$pth" || die "probe read of $pth through worker $A failed before '$act'"
	done < "$RUN/failover.ranges"
	u1=$(ufs_sum "$N")
	precond "failover $act: probe before the break" warm 0 $((u1 - u0)) 0 "$UFS_COUNTER"
	say "failover: $act worker $B"
	for c in failovers_total peer_errors_total forwarded_bytes_total; do FA0[$c]=$(metric "${CTL[$N,$A]}" ferry_cluster_$c); done
	fcmd=("$PY" "$ROOT/bench/cluster_failover.py" --gateway "${S3[$N,$A]}" --metrics "${CTL[$N,$A]}" --members "$N"
		--paths "$RUN/failover.paths" --ranges "$RUN/failover.ranges" --data "$DATA" --action "$act"
		--pid "${WPID[$N,$B]}" --link "${VETH[$B]}" --pre 1.5 --post 2 --cap 40 --timeline "$RUN/failover-$act.tsv")
	note "$(echo "${fcmd[*]}" | sed "s|$RUN/||g; s|$ROOT/||g; s|--pid ${WPID[$N,$B]}|--pid <worker 2's pid>|")"
	"${fcmd[@]}" > "$RUN/failover-$act.json" 2> "$RUN/failover-$act.err" ||
		{ cat "$RUN/failover-$act.err" >&2; die "the failover client failed ($act)"; }
	for c in failovers_total peer_errors_total forwarded_bytes_total; do
		echo "failover_${act}_$c=$(( $(metric "${CTL[$N,$A]}" ferry_cluster_$c) - FA0[$c] ))" >> "$RUN/meta.env"
	done
	say "$act: $(cat "$RUN/failover-$act.json")"
	# Bring B back: a killed worker is restarted (same cache dir: same id
	# and pages), a cut link is raised, a stopped worker continued; the
	# time until A sees B again is recorded.
	t0=$(now)
	case $act in
	kill)
		wait "${WPID[$N,$B]}" 2>/dev/null || true
		q=(); for x in "${PIDS[@]}"; do [ "$x" = "${WPID[$N,$B]}" ] || q+=("$x"); done; PIDS=("${q[@]}")
		start_worker "$N" "$B"
		note "# after kill: worker 2 started again with the same command (same cache dir, so the same id)" ;;
	linkdown)
		ip link set dev "${VETH[$B]}" up
		note "# linkdown: the client ran 'ip link set dev ${VETH[$B]} down' at the break; then: ip link set dev ${VETH[$B]} up" ;;
	stop)
		kill -CONT "${WPID[$N,$B]}"
		note "# stop: the client sent SIGSTOP at the break; then: kill -CONT <worker 2's pid>" ;;
	esac
	if wait_members "$N" 30 "$A"; then
		echo "failover_${act}_rejoin_s=$(calc "$(now) - $t0")" >> "$RUN/meta.env"
		sleep 3 # A skips a peer that failed for 3 s (ROUTER_SUSPECT_MS): let that lapse
	else
		echo "failover_${act}_rejoin_s=none within 30 s" >> "$RUN/meta.env"
		if [ "$act" != kill ]; then stop_pid "${WPID[$N,$B]}"; start_worker "$N" "$B"; fi
	fi
done
for i in $(seq "$N"); do
	kill -0 "${WPID[$N,$i]}" 2>/dev/null || die "worker $i is gone at the end"
	curl -s --max-time 5 "http://${CTL[$N,$i]}/metrics" > "$RUN/metrics-w$i.txt"
done
grep -h ' warn \| error ' "$W/logs/cluster-n$N-w$A.log" > "$RUN/worker-$A-warnings.log" || true
echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"

# ===========================================================================
section "report"
OUT=$ROOT/bench/results/cluster-$STAMP-$MODE.md
$PY "$ROOT/bench/cluster_report.py" "$RUN" > "$OUT"
LATEST=latest-cluster.md; [ "$MODE" = quick ] && LATEST=latest-cluster-quick.md
cp "$OUT" "$ROOT/bench/results/$LATEST"
say "report: ${OUT#"$ROOT"/} (and bench/results/$LATEST), $(( $(date +%s) - T_START )) s in all"
sed -n '/^## Headline/,/^## Machine/p' "$OUT" | sed '$d'
