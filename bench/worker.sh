#!/usr/bin/env bash
# bench/worker.sh quick|full: the single-node worker benchmarks (bench/README.md
# 1. and 2.), run by bench/run.sh or alone.
#   1. warm GET throughput: ferry's S3 gateway vs nginx serving the same files
#      from the same disk, measured side by side (alternating) with wrk;
#   2. cold pass: ferry in front of s3rver behind bench/slowproxy (a modelled
#      long-haul link) vs one direct stream from that same link.
# Writes bench/results/worker-<UTC date and time>-<mode>.md and a stable copy
# (latest-worker.md for full, latest-worker-quick.md for quick).  Work files
# live under bench/work/ (git-ignored); the dataset is generated once there.
# Everything listens on 127.0.0.1 on free ports; every process started here is
# stopped on exit.  Needs no root, except to apt-get wrk if it is missing.
set -euo pipefail
MODE=${1:-quick}
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
PY=/usr/bin/python3
FERRY=$ROOT/build/ferry
S3RVER=$ROOT/.deps/npm/node_modules/.bin/s3rver

case $MODE in
full)  N_LARGE=16; N_SMALL=2000; DUR=10; ROUNDS=3 ;;
quick) N_LARGE=4;  N_SMALL=500;  DUR=4;  ROUNDS=2 ;;
*) echo "usage: $0 quick|full" >&2; exit 2 ;;
esac
LARGE_SIZE=$((64 * 1024 * 1024))
SMALL_SIZE=$((64 * 1024))
CONCS=("-t2 -c4" "-t2 -c16")
# The modelled link of the cold pass.
PROXY_RATE=${PROXY_RATE:-20M}    # per connection, bytes/s (decimal)
PROXY_TOTAL=${PROXY_TOTAL:-200M} # all connections together
PROXY_DELAY=${PROXY_DELAY:-20}   # one-way, ms
# Extra options for the cold-pass worker, e.g. FERRY_COLD_ARGS="--window 16".
COLD_ARGS=(); [ -n "${FERRY_COLD_ARGS:-}" ] && read -ra COLD_ARGS <<< "$FERRY_COLD_ARGS"

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
RUN=$W/runs/$STAMP-$MODE
mkdir -p "$RUN" "$W/logs" "$ROOT/bench/results"
CMDS=$RUN/commands.txt
: > "$CMDS"
T_START=$(date +%s)
# Every pass checks what it assumed of the caches (bench/precond.sh).
. "$ROOT/bench/precond.sh"
precond_init "$RUN/precond.tsv"

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# Records a command line for the report (and shows it).
note() { printf '%s\n' "$*" >> "$CMDS"; }
section() { printf '\n# %s\n' "$*" >> "$CMDS"; say "$*"; }

# --- process bookkeeping: every background process we start, by pid ------
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pid() {
	local p=$1 q=() x
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	for x in "${PIDS[@]}"; do [ "$x" = "$p" ] || q+=("$x"); done
	PIDS=("${q[@]}")
}
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url, seconds
	local i
	for i in $(seq $(($2 * 10))); do
		curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.1
	done
	echo "bench: $1 did not answer within $2 s" >&2; return 1
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }  # floating point, no bc needed

# --- tools ---------------------------------------------------------------
section "preflight"
if ! command -v wrk >/dev/null 2>&1; then
	SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
	say "wrk is missing: $SUDO apt-get install -y wrk"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
for t in wrk nginx curl gcc md5sum "$PY" "$S3RVER" "$FERRY"; do
	command -v "$t" >/dev/null 2>&1 || { echo "bench: $t not found (run make deps all)" >&2; exit 1; }
done
$PY -c 'import boto3' || { echo "bench: $PY lacks boto3 (python3-boto3)" >&2; exit 1; }
NGINX=$(command -v nginx)
if [ ! -x "$W/slowproxy" ] || [ "$ROOT/bench/slowproxy.c" -nt "$W/slowproxy" ]; then
	note "gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -Wall -Wextra -Werror -o bench/work/slowproxy bench/slowproxy.c"
	gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -Wall -Wextra -Wno-unused-parameter -Werror \
		-o "$W/slowproxy" "$ROOT/bench/slowproxy.c"
fi
ulimit -n 65536 2>/dev/null || true
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
unset HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy

# --- dataset: generated once, reused ---------------------------------------
section "dataset: $N_LARGE x 64 MiB + $N_SMALL x 64 KiB of random bytes in bench/work/data"
DATA=$W/data
mkdir -p "$DATA/large" "$DATA/small"
LARGE_KEYS=(); SMALL_KEYS=()
for i in $(seq 0 $((N_LARGE - 1))); do LARGE_KEYS+=("large/obj-$(printf %02d "$i").bin"); done
for i in $(seq 0 $((N_SMALL - 1))); do SMALL_KEYS+=("small/img-$(printf %04d "$i").bin"); done
note "for each missing file F: head -c $LARGE_SIZE /dev/urandom > bench/work/data/large/obj-NN.bin;" \
	"head -c $SMALL_SIZE /dev/urandom > bench/work/data/small/img-NNNN.bin"
gen() { # key size
	local f=$DATA/$1
	if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$2" ]; then
		head -c "$2" /dev/urandom > "$f.tmp" && mv "$f.tmp" "$f"
	fi
}
for k in "${LARGE_KEYS[@]}"; do gen "$k" $LARGE_SIZE; done
for k in "${SMALL_KEYS[@]}"; do gen "$k" $SMALL_SIZE; done
# md5 of each large object, kept beside the data (generated with it).
MD5DIR=$W/md5; mkdir -p "$MD5DIR"
for k in "${LARGE_KEYS[@]}"; do
	m=$MD5DIR/${k//\//_}.md5
	if [ ! -f "$m" ] || [ "$DATA/$k" -nt "$m" ]; then md5sum < "$DATA/$k" | cut -d' ' -f1 > "$m"; fi
done
md5_of() { cat "$MD5DIR/${1//\//_}.md5"; }
LARGE_BYTES=$((N_LARGE * LARGE_SIZE))

# --- machine and versions --------------------------------------------------
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
	echo "nginx_version=$($NGINX -v 2>&1 | head -1)"
	echo "wrk_version=$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
	echo "curl_version=$(curl --version | head -1 | cut -d' ' -f1-2)"
	echo "node_version=$(node --version)"
	echo "s3rver_version=$(NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" --version 2>&1 | tail -1)"
	echo "uid=$(id -u)"
	echo "n_large=$N_LARGE"; echo "n_small=$N_SMALL"; echo "dur=$DUR"; echo "rounds=$ROUNDS"
	echo "proxy_rate=$PROXY_RATE"; echo "proxy_total=$PROXY_TOTAL"; echo "proxy_delay=$PROXY_DELAY"
} > "$RUN/meta.env"

# --- ferry workers ---------------------------------------------------------
# start_ferry NAME CACHEDIR ARGS...: sets F_PID, F_S3 and F_CTL.
start_ferry() {
	local name=$1 cache=$2; shift 2
	rm -rf "$cache"; mkdir -p "$cache"
	local out=$W/logs/$name.out log=$W/logs/$name.log
	local cmd=("$FERRY" worker --cache-dir "$cache" --cache-size 8G
		--s3-address 127.0.0.1:0 --control-address 127.0.0.1:0 "$@")
	note "${cmd[*]#$ROOT/}"
	# Emptied here, not by the new process's redirection: until it opens
	# the file, the file holds an earlier worker's ready line (a previous
	# run's), which the loop below must not take for this one's.
	: > "$out"
	"${cmd[@]}" >> "$out" 2> "$log" < /dev/null &
	F_PID=$!; PIDS+=("$F_PID")
	local i line=""
	for i in $(seq 200); do
		line=$(head -1 "$out" 2>/dev/null || true)
		[ -n "$line" ] && break
		kill -0 "$F_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ ! $line =~ ^ferry\ worker\ ready\ s3=([0-9.:]+)\ control=([0-9.:]+)$ ]]; then
		echo "bench: ferry worker $name did not start; log:" >&2; tail -20 "$log" >&2; exit 1
	fi
	F_S3=${BASH_REMATCH[1]}; F_CTL=${BASH_REMATCH[2]}
}
metric() { # ctl name  (sums all label sets; in $(...), a worker that does not answer fails the assignment)
	local m
	m=$(curl -sf --max-time 10 "http://$1/metrics") || { echo "bench: http://$1/metrics did not answer" >&2; exit 1; }
	awk -v n="$2" '$1 == n || index($1, n "{") == 1 {s += $2} END {printf "%.0f\n", s}' <<< "$m"
}
metric_l() { # ctl 'name{labels}'
	curl -s "http://$1/metrics" | awk -v n="$2" '$1 == n {print $2; f=1} END {if (!f) print 0}'
}
# A fresh worker's cache must be empty before its first (cold) read.
require_empty() { # name ctl
	precond "$1" empty 0 "$(metric "$2" ferry_ufs_read_bytes_total)" 0 "ferry's ferry_ufs_read_bytes_total since it started"
	precond "$1" empty 0 "$(metric "$2" ferry_cache_pages)" 0 "ferry's ferry_cache_pages"
}

# ===========================================================================
# 1. Warm GET throughput: nginx vs ferry on the same files, same disk.
# ===========================================================================
section "warm: nginx and ferry serving bench/work/data"
NG=$W/nginx; mkdir -p "$NG/tmp"
NG_PORT=$(free_port)
USER_LINE=""; [ "$(id -u)" -eq 0 ] && USER_LINE="user $(id -un) $(id -gn);"
cat > "$NG/nginx.conf" <<EOF
# generated by bench/worker.sh
$USER_LINE
worker_processes auto;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000000;
	keepalive_timeout 300s;
	default_type application/octet-stream;
	client_body_temp_path $NG/tmp/body;
	proxy_temp_path $NG/tmp/proxy;
	fastcgi_temp_path $NG/tmp/fastcgi;
	uwsgi_temp_path $NG/tmp/uwsgi;
	scgi_temp_path $NG/tmp/scgi;
	server {
		listen 127.0.0.1:$NG_PORT;
		location /data/ { alias $DATA/; }
	}
}
EOF
note "nginx -p bench/work/nginx -c bench/work/nginx/nginx.conf   # config in the report"
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" > "$W/logs/nginx.out" 2>&1 < /dev/null &
NG_PID=$!; PIDS+=("$NG_PID")
wait_http "http://127.0.0.1:$NG_PORT/data/${LARGE_KEYS[0]}" 10
NG_URL=http://127.0.0.1:$NG_PORT/data
# Default page verification is 'always' (CRC32C of every page on every read).
start_ferry ferry-always "$W/cache-always" --mount "bench=file://$DATA"
FA_PID=$F_PID; FA_S3=$F_S3; FA_CTL=$F_CTL
start_ferry ferry-once "$W/cache-once" --mount "bench=file://$DATA" --page-verify once
FO_PID=$F_PID; FO_S3=$F_S3; FO_CTL=$F_CTL
declare -A URL=([nginx]=$NG_URL [ferry]=http://$FA_S3/bench [ferry-once]=http://$FO_S3/bench)
SERVERS=(nginx ferry ferry-once)

# Warm: every object read once through each server (one curl, one connection).
# For ferry that read is the cold pass that fills its cache: from an empty
# cache, every byte fetched from the under-store (file://).
declare -A SCTL=([ferry]=$FA_CTL [ferry-once]=$FO_CTL)
for s in "${SERVERS[@]}"; do
	cfg=$RUN/warm-$s.curl; : > "$cfg"
	for k in "${LARGE_KEYS[@]}" "${SMALL_KEYS[@]}"; do printf 'url = "%s/%s"\noutput = "/dev/null"\n' "${URL[$s]}" "$k" >> "$cfg"; done
	note "curl -sf -K <list of url/output pairs: every object under ${URL[$s]}>   # warm-up read"
	[ -n "${SCTL[$s]:-}" ] && require_empty "warm-up $s" "${SCTL[$s]}"
	t0=$(now); curl -sf -K "$cfg"; t1=$(now)
	[ -n "${SCTL[$s]:-}" ] && precond "warm-up $s" cold $((LARGE_BYTES + N_SMALL * SMALL_SIZE)) \
		"$(metric "${SCTL[$s]}" ferry_ufs_read_bytes_total)" 0 "ferry's ferry_ufs_read_bytes_total"
	say "warm-up read through $s: $(calc "$t1 - $t0") s"
	# The bytes must be real: md5 of the first and last large object.
	for k in "${LARGE_KEYS[0]}" "${LARGE_KEYS[-1]}"; do
		got=$(curl -sf "${URL[$s]}/$k" | md5sum | cut -d' ' -f1)
		[ "$got" = "$(md5_of "$k")" ] || { echo "bench: md5 mismatch for $k via $s" >&2; exit 1; }
	done
	note "curl -sf ${URL[$s]}/${LARGE_KEYS[0]} | md5sum   # and ${LARGE_KEYS[-1]}: equal to the file's"
done
echo "md5_checked_warm=2 large objects per server, all equal" >> "$RUN/meta.env"
for s in ferry ferry-once; do
	ctl=$FA_CTL; [ $s = ferry-once ] && ctl=$FO_CTL
	echo "warm_${s//-/_}_ufs_read_before=$(metric_l "$ctl" 'ferry_ufs_requests_total{op="read"}')" >> "$RUN/meta.env"
	echo "warm_${s//-/_}_hit_before=$(metric "$ctl" ferry_cache_hit_bytes_total)" >> "$RUN/meta.env"
done

cat > "$RUN/paths.lua" <<'EOF'
-- generated by bench/worker.sh: GET the paths listed in the file named after
-- "--", round robin, each wrk thread from its own offset; print totals.
local paths, n, i = {}, 0, 0
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("tid", threads)
end
function init(args)
	for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
	i = ((tid or 1) - 1) * math.floor(n / 2)
end
function request()
	i = i % n + 1
	return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("WRKRESULT requests=%d bytes=%d duration_us=%d errors=%d status_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
		summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write,
		e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF
for s in "${SERVERS[@]}"; do
	prefix=/data; [ "$s" != nginx ] && prefix=/bench
	printf "$prefix/%s\n" "${LARGE_KEYS[@]}" > "$RUN/large-$s.paths"
	printf "$prefix/%s\n" "${SMALL_KEYS[@]}" > "$RUN/small-$s.paths"
done

# CPU time (user + system, all threads) the server spent: nginx's master
# and workers, or the ferry process.  Less sensitive than throughput to
# whatever else the machine runs at the time.
TICK=$(getconf CLK_TCK)
cpu_ticks() { # pid: utime+stime of it and its child processes, in ticks
	local c t=0 v
	for c in "$1" $(pgrep -P "$1" || true); do
		v=$(sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}
declare -A SPID=([nginx]=$NG_PID [ferry]=$FA_PID [ferry-once]=$FO_PID)
echo "loadavg_warm_start=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
WARM=$RUN/warm.tsv
printf 'kind\tconc\tserver\tround\trequests\tbytes\tduration_us\terrors\tstatus_errors\ttimeouts\tp50_us\tp99_us\tcpu_s\tufs_bytes\n' > "$WARM"
for kind in large small; do
	for conc in "${CONCS[@]}"; do
		for r in $(seq "$ROUNDS"); do
			for s in "${SERVERS[@]}"; do
				base=${URL[$s]%/*}
				read -ra cargs <<< "$conc"
				cmd=(wrk "${cargs[@]}" -d "${DUR}s" --timeout 30s -s "$RUN/paths.lua" "$base" -- "$RUN/$kind-$s.paths")
				[ "$r" = 1 ] && note "${cmd[*]//$RUN\//}"
				out=$RUN/wrk-$kind-${conc// /}-$s-$r.txt
				cpu0=$(cpu_ticks "${SPID[$s]}")
				u0=0; if [ -n "${SCTL[$s]:-}" ]; then u0=$(metric "${SCTL[$s]}" ferry_ufs_read_bytes_total); fi
				if ! "${cmd[@]}" > "$out" 2>&1 || ! kill -0 "$NG_PID" "$FA_PID" "$FO_PID" 2>/dev/null; then
					cat "$out" >&2
					for x in ferry-always ferry-once; do echo "--- $x log:" >&2; tail -5 "$W/logs/$x.log" >&2; done
					echo "bench: wrk failed or a server is gone (nginx $NG_PID, ferry $FA_PID, ferry-once $FO_PID)" >&2
					exit 1
				fi
				cpu1=$(cpu_ticks "${SPID[$s]}")
				cpu_s=$(calc "($cpu1 - $cpu0) / $TICK")
				# A warm run: ferry served it all from its cache (nginx has
				# no cache: it reads the files each time, as designed).
				u1=0; if [ -n "${SCTL[$s]:-}" ]; then u1=$(metric "${SCTL[$s]}" ferry_ufs_read_bytes_total); fi
				[ -n "${SCTL[$s]:-}" ] && precond "warm $kind $conc $s round $r" warm 0 $((u1 - u0)) 0 "ferry's ferry_ufs_read_bytes_total"
				res=$(grep '^WRKRESULT' "$out") || { cat "$out" >&2; exit 1; }
				read -r requests bytes duration_us errors status_errors timeouts p50_us p99_us \
					<<< "$(sed 's/^WRKRESULT //; s/[a-z0-9_]*=//g' <<< "$res")"
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$conc" "$s" "$r" \
					"$requests" "$bytes" "$duration_us" "$errors" "$status_errors" "$timeouts" "$p50_us" "$p99_us" "$cpu_s" $((u1 - u0)) >> "$WARM"
				say "$kind $conc $s round $r: $(calc "$bytes / $duration_us / 1000") GB/s, $(calc "$requests * 1000000 / $duration_us") req/s, server CPU $cpu_s s"
			done
		done
	done
done
echo "loadavg_warm_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/meta.env"
for s in ferry ferry-once; do
	ctl=$FA_CTL; [ $s = ferry-once ] && ctl=$FO_CTL
	echo "warm_${s//-/_}_ufs_read_after=$(metric_l "$ctl" 'ferry_ufs_requests_total{op="read"}')" >> "$RUN/meta.env"
	echo "warm_${s//-/_}_hit_after=$(metric "$ctl" ferry_cache_hit_bytes_total)" >> "$RUN/meta.env"
done
cp "$NG/nginx.conf" "$RUN/nginx.conf"
stop_pid "$NG_PID"; stop_pid "$FA_PID"; stop_pid "$FO_PID"
rm -rf "$W/cache-always" "$W/cache-once"

# ===========================================================================
# 2. Cold pass over a modelled long-haul link.
# ===========================================================================
section "cold: s3rver behind slowproxy (per connection $PROXY_RATE B/s, total $PROXY_TOTAL B/s, +$PROXY_DELAY ms each way)"
S3P=$(free_port)
mkdir -p "$W/s3rver"
note "NODE_OPTIONS=--openssl-legacy-provider .deps/npm/node_modules/.bin/s3rver -d bench/work/s3rver -a 127.0.0.1 -p $S3P -s --configure-bucket bench"
NODE_OPTIONS=--openssl-legacy-provider "$S3RVER" -d "$W/s3rver" -a 127.0.0.1 -p "$S3P" -s \
	--configure-bucket bench > "$W/logs/s3rver.log" 2>&1 < /dev/null &
S3_PID=$!; PIDS+=("$S3_PID")
wait_http "http://127.0.0.1:$S3P/" 20
note "/usr/bin/python3 bench/s3upload.py http://127.0.0.1:$S3P bench bench/work/data <keys>   # skips objects already there with the same md5"
$PY "$ROOT/bench/s3upload.py" "http://127.0.0.1:$S3P" bench "$DATA" "${LARGE_KEYS[@]}"

PXCMD=("$W/slowproxy" -u "127.0.0.1:$S3P" -r "$PROXY_RATE" -t "$PROXY_TOTAL" -d "$PROXY_DELAY")
note "${PXCMD[*]#$ROOT/}"
"${PXCMD[@]}" > "$W/logs/slowproxy.out" 2> "$W/logs/slowproxy.log" < /dev/null &
PX_PID=$!; PIDS+=("$PX_PID")
for _ in $(seq 50); do grep -q listening "$W/logs/slowproxy.out" 2>/dev/null && break; sleep 0.1; done
PX=$(sed -n 's/^slowproxy listening //p' "$W/logs/slowproxy.out")
[ -n "$PX" ] || { echo "bench: slowproxy did not start" >&2; cat "$W/logs/slowproxy.log" >&2; exit 1; }
proxy_stats() { # -> "connections max_concurrent bytes_down"
	local before
	before=$(grep -c '^slowproxy stats' "$W/logs/slowproxy.log" || true)
	kill -USR1 "$PX_PID"
	for _ in $(seq 50); do
		[ "$(grep -c '^slowproxy stats' "$W/logs/slowproxy.log" || true)" -gt "$before" ] && break; sleep 0.05
	done
	grep '^slowproxy stats' "$W/logs/slowproxy.log" | tail -1 |
		sed 's/.*connections=\([0-9]*\) max_concurrent=\([0-9]*\) bytes_up=[0-9]* bytes_down=\([0-9]*\)/\1 \2 \3/'
}

COLD=$RUN/cold.tsv
printf 'pass\tkey\tbytes\tseconds\tconnects\tmd5_ok\n' > "$COLD"
OUTD=$W/out; rm -rf "$OUTD"; mkdir -p "$OUTD"
# cold_read PASS BASEURL: one curl process, one connection, every large
# object in turn; records per-object time, checks every object's md5.
cold_read() {
	local pass=$1 base=$2 cfg=$RUN/cold-$1.curl k i=0
	: > "$cfg"
	for k in "${LARGE_KEYS[@]}"; do printf 'url = "%s/%s"\noutput = "%s/%s-%d"\n' "$base" "$k" "$OUTD" "$pass" $((i++)) >> "$cfg"; done
	note "curl -sf -K <url/output pairs for the ${#LARGE_KEYS[@]} large objects under $base> -w '%{size_download} %{time_total} %{num_connects}\\n'   # $pass"
	local t0 t1
	t0=$(now)
	curl -sf -K "$cfg" -w '%{size_download} %{time_total} %{num_connects}\n' > "$RUN/cold-$pass.out"
	t1=$(now)
	echo "cold_${pass//-/_}_wall=$(calc "$t1 - $t0")" >> "$RUN/meta.env"
	i=0
	while read -r size secs conns; do
		k=${LARGE_KEYS[$i]}
		local ok=0
		[ "$(md5sum < "$OUTD/$pass-$i" | cut -d' ' -f1)" = "$(md5_of "$k")" ] && ok=1
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$pass" "$k" "$size" "$secs" "$conns" "$ok" >> "$COLD"
		[ $ok = 1 ] || { echo "bench: md5 mismatch for $k ($pass)" >&2; exit 1; }
		rm -f "$OUTD/$pass-$i"
		i=$((i + 1))
	done < "$RUN/cold-$pass.out"
	[ $i = ${#LARGE_KEYS[@]} ] || { echo "bench: $pass read $i of ${#LARGE_KEYS[@]} objects" >&2; exit 1; }
	say "$pass: $(calc "$t1 - $t0") s for $LARGE_BYTES bytes, every md5 equal"
}

read -r c0 _ d0 <<< "$(proxy_stats)"
cold_read direct "http://$PX/bench"
read -r c1 m1 d1 <<< "$(proxy_stats)"
printf 'cold_direct_proxy_conns=%s\ncold_direct_proxy_max_concurrent=%s\n' $((c1 - c0)) "$m1" >> "$RUN/meta.env"
echo "cold_direct_proxy_bytes=$((d1 - d0))" >> "$RUN/meta.env"
PROXY_COUNTER="bytes slowproxy passed downstream (headers included)"
precond "cold direct" direct "$LARGE_BYTES" $((d1 - d0)) 0 "$PROXY_COUNTER"

# Reference, not ferry: what the link gives 8 streams of 1 MiB ranged GETs
# (ferry's default --window 8 and page size), one curl, --parallel-max 8.
par_read() {
	local cfg=$RUN/cold-link-8x1MiB.curl k i=0 p pages=$((LARGE_SIZE / 1048576)) t0 t1 conns
	: > "$cfg"
	for k in "${LARGE_KEYS[@]}"; do
		for p in $(seq 0 $((pages - 1))); do
			# range is not a per-URL option: each transfer is its own
			# operation ("next"), with its own fail and write-out.
			[ -s "$cfg" ] && echo next >> "$cfg"
			printf 'url = "http://%s/bench/%s"\nrange = "%d-%d"\noutput = "%s/par-%02d-%04d"\nfail\nwrite-out = "%%{num_connects}\\n"\n' \
				"$PX" "$k" $((p * 1048576)) $((p * 1048576 + 1048575)) "$OUTD" "$i" "$p" >> "$cfg"
		done
		i=$((i + 1))
	done
	note "curl -s --no-progress-meter --parallel --parallel-max 8 -K <one operation (url, range, output, fail, write-out) per 1 MiB range of the ${#LARGE_KEYS[@]} large objects under http://$PX/bench, separated by 'next'>   # link-8x1MiB"
	t0=$(now)
	curl -s --no-progress-meter --parallel --parallel-max 8 -K "$cfg" > "$RUN/cold-link.out"
	t1=$(now)
	echo "cold_link_8x1MiB_wall=$(calc "$t1 - $t0")" >> "$RUN/meta.env"
	conns=$(awk '{s += $1} END {print s}' "$RUN/cold-link.out")
	i=0
	for k in "${LARGE_KEYS[@]}"; do
		local ok=0 size sum parts
		parts=$(printf '%s/par-%02d-' "$OUTD" "$i")
		size=$(cat "$parts"* | wc -c)
		sum=$(cat "$parts"* | md5sum | cut -d' ' -f1)
		[ "$sum" = "$(md5_of "$k")" ] && ok=1
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' link-8x1MiB "$k" "$size" 0 "$([ $i = 0 ] && echo "$conns" || echo 0)" "$ok" >> "$COLD"
		[ $ok = 1 ] || { echo "bench: md5 mismatch for $k (link-8x1MiB)" >&2; exit 1; }
		rm -f "$parts"*
		i=$((i + 1))
	done
	say "link-8x1MiB: $(calc "$t1 - $t0") s for $LARGE_BYTES bytes, every md5 equal"
}
par_read
read -r c2 m2 d2 <<< "$(proxy_stats)"
echo "cold_link_proxy_bytes=$((d2 - d1))" >> "$RUN/meta.env"
precond "cold link-8x1MiB" direct "$LARGE_BYTES" $((d2 - d1)) 0 "$PROXY_COUNTER"
# A fresh worker, empty cache, default read-path settings.
{
	printf 'cold_link_proxy_conns=%s\ncold_link_proxy_max_concurrent=%s\n' $((c2 - c1)) "$m2"
	echo "loadavg_cold_start=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "cold_ferry_args=${COLD_ARGS[*]}"
} >> "$RUN/meta.env"
start_ferry ferry-cold "$W/cache-cold" "${COLD_ARGS[@]}"
FC_PID=$F_PID; FC_S3=$F_S3; FC_CTL=$F_CTL
MOUNT=("$FERRY" --worker "$FC_CTL" mount /bench s3://bench --option "s3.endpoint=http://$PX"
	--option s3.region=us-east-1 --option s3.access_key=S3RVER --option s3.secret_key=S3RVER
	--option s3.path_style=true)
note "${MOUNT[*]#$ROOT/}"
"${MOUNT[@]}" > "$W/logs/mount.out" 2>&1 || { cat "$W/logs/mount.out" >&2; exit 1; }
snap() { # prefix: ferry UFS and cache counters, proxy counters
	{
		echo "$1_ufs_read_req=$(metric_l "$FC_CTL" 'ferry_ufs_requests_total{op="read"}')"
		echo "$1_ufs_stat_req=$(metric_l "$FC_CTL" 'ferry_ufs_requests_total{op="stat"}')"
		echo "$1_ufs_bytes=$(metric "$FC_CTL" ferry_ufs_read_bytes_total)"
		echo "$1_ufs_errors=$(metric "$FC_CTL" ferry_ufs_errors_total)"
		echo "$1_hit_bytes=$(metric "$FC_CTL" ferry_cache_hit_bytes_total)"
		echo "$1_miss_bytes=$(metric "$FC_CTL" ferry_cache_miss_bytes_total)"
		echo "$1_cache_used=$(metric "$FC_CTL" ferry_cache_used_bytes)"
		read -r pc pm pd <<< "$(proxy_stats)"
		echo "$1_proxy_conns=$pc"; echo "$1_proxy_max_concurrent=$pm"; echo "$1_proxy_bytes=$pd"
	} >> "$RUN/meta.env"
}
require_empty "cold ferry-cold" "$FC_CTL"
snap m0
cold_read ferry-cold "http://$FC_S3/bench"
snap m1
cold_read ferry-warm "http://$FC_S3/bench"
snap m2
# From the counters each snap recorded: the cold pass fetched every byte
# once over the link, the warm pass nothing (the proxy may see a metadata
# request or two: HEADs of ~1 KiB).
ev() { sed -n "s/^$1=//p" "$RUN/meta.env" | tail -1; }
precond "cold ferry-cold" cold "$LARGE_BYTES" $(( $(ev m1_ufs_bytes) - $(ev m0_ufs_bytes) )) 0 "ferry's ferry_ufs_read_bytes_total"
precond "cold ferry-cold" cold "$LARGE_BYTES" $(( $(ev m1_proxy_bytes) - $(ev m0_proxy_bytes) )) 0 "$PROXY_COUNTER"
precond "cold ferry-warm" warm 0 $(( $(ev m2_ufs_bytes) - $(ev m1_ufs_bytes) )) 0 "ferry's ferry_ufs_read_bytes_total"
precond "cold ferry-warm" warm 0 $(( $(ev m2_proxy_bytes) - $(ev m1_proxy_bytes) )) $((1048576 + 4096 * N_LARGE)) "$PROXY_COUNTER"
curl -s "http://$FC_CTL/metrics" > "$RUN/ferry-cold-metrics.txt"
stop_pid "$FC_PID"; stop_pid "$PX_PID"; stop_pid "$S3_PID"
rm -rf "$W/cache-cold" "$OUTD"
echo "total_seconds=$(( $(date +%s) - T_START ))" >> "$RUN/meta.env"

# ===========================================================================
section "report"
OUT=$ROOT/bench/results/worker-$STAMP-$MODE.md
$PY "$ROOT/bench/report.py" "$RUN" > "$OUT"
LATEST=latest-worker.md; [ "$MODE" = quick ] && LATEST=latest-worker-quick.md
cp "$OUT" "$ROOT/bench/results/$LATEST"
say "report: ${OUT#"$ROOT"/} (and bench/results/$LATEST), $(( $(date +%s) - T_START )) s in all"
sed -n '/^## Headline/,/^## Machine/p' "$OUT" | sed '$d'
