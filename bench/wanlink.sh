#!/usr/bin/env bash
# bench/wanlink.sh up|down|measure [OUT.env]: the emulated wide-area link
# between two network namespaces (bench/README.md 4.), for bench/xregion.sh
# and any other benchmark part that wants a "remote" side.
#   up       build bench/work/wanlink from bench/wanlink.c if needed, create
#            the namespaces $WAN_REMOTE (198.18.0.1) and $WAN_COMPUTE
#            (198.18.0.2), start wanlink between them (pid in
#            bench/work/wanlink.pid), cap the compute side's TCP receive
#            window towards the remote with a route metric.
#   down     stop wanlink, delete both namespaces (whatever runs in them
#            must have been stopped first).
#   measure  RTT (ping, 10 x 0.2 s) and throughput remote->compute (iperf3,
#            1 stream and 8 streams, 4 s each after 1 s omitted); prints
#            key=value lines (and appends them to OUT.env when given).
# Settings (environment): WAN_DELAY_MS (one way, default 40), WAN_RATE
# (bits/s per direction, default 200M), WAN_QUEUE (bytes, default one RTT at
# the rate), WAN_RMEM (bytes, the compute side's largest TCP receive
# buffer, default 2097152; 0: the kernel's default).  Needs root.
#
# How the receive window is capped: net.ipv4.tcp_rmem is per network
# namespace, so its maximum is set in the compute namespace only (the host's
# sysctls are untouched).  Every TCP receiver there (boto3, s3fs, rclone,
# nginx, ferry's fetchers) then advertises at most a fraction of WAN_RMEM
# (the kernel keeps part of the buffer for overhead), so one stream tops out
# near that window / RTT (about 130 Mbit/s at 2 MiB and 80 ms) while several
# streams in parallel fill the line, as on a real long-haul path.  (A
# route's `window` metric is not enough: receive-buffer autotuning raises the
# clamp past it.)  `measure` shows the effect: 1 stream vs 8 streams.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
W=$ROOT/bench/work
WAN_REMOTE=${WAN_REMOTE:-ferry-xr-remote}
WAN_COMPUTE=${WAN_COMPUTE:-ferry-xr-compute}
WAN_DELAY_MS=${WAN_DELAY_MS:-40}
WAN_RATE=${WAN_RATE:-200M}
WAN_QUEUE=${WAN_QUEUE:-}
WAN_RMEM=${WAN_RMEM:-2097152}
REMOTE_IP=198.18.0.1
COMPUTE_IP=198.18.0.2
PIDF=$W/wanlink.pid
BIN=$W/wanlink

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "wanlink.sh: needs root (network namespaces, TUN devices)" >&2
		exit 3
	fi
}

up() {
	need_root
	mkdir -p "$W" "$W/logs"
	if [ ! -x "$BIN" ] || [ "$ROOT/bench/wanlink.c" -nt "$BIN" ]; then
		gcc -std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
			-Wmissing-prototypes -o "$BIN" "$ROOT/bench/wanlink.c"
	fi
	down quiet
	ip netns add "$WAN_REMOTE"
	ip netns add "$WAN_COMPUTE"
	ip -n "$WAN_REMOTE" link set lo up
	ip -n "$WAN_COMPUTE" link set lo up
	local args=(-a "$WAN_REMOTE" -b "$WAN_COMPUTE" -d "$WAN_DELAY_MS" -r "$WAN_RATE")
	[ -n "$WAN_QUEUE" ] && args+=(-q "$WAN_QUEUE")
	"$BIN" "${args[@]}" > "$W/logs/wanlink.out" 2> "$W/logs/wanlink.log" < /dev/null &
	echo $! > "$PIDF"
	local i
	for i in $(seq 50); do
		grep -q '^wanlink ready' "$W/logs/wanlink.out" 2>/dev/null && break
		kill -0 "$(cat "$PIDF")" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^wanlink ready' "$W/logs/wanlink.out" ||
		{ echo "wanlink.sh: wanlink did not start:" >&2; cat "$W/logs/wanlink.log" >&2; down quiet; exit 1; }
	ip -n "$WAN_REMOTE" addr add "$REMOTE_IP/32" peer "$COMPUTE_IP/32" dev wan0
	ip -n "$WAN_COMPUTE" addr add "$COMPUTE_IP/32" peer "$REMOTE_IP/32" dev wan0
	ip -n "$WAN_REMOTE" link set wan0 mtu 1500 txqueuelen 1000 up
	ip -n "$WAN_COMPUTE" link set wan0 mtu 1500 txqueuelen 1000 up
	if [ "$WAN_RMEM" != 0 ]; then
		ip netns exec "$WAN_COMPUTE" sysctl -q -w net.ipv4.tcp_rmem="4096 131072 $WAN_RMEM"
	fi
	echo "wanlink.sh: $(head -1 "$W/logs/wanlink.out"); $WAN_COMPUTE tcp_rmem: $(ip netns exec "$WAN_COMPUTE" cat /proc/sys/net/ipv4/tcp_rmem)"
}

down() {
	local p
	if [ -f "$PIDF" ]; then
		p=$(cat "$PIDF")
		if kill -0 "$p" 2>/dev/null && grep -q wanlink "/proc/$p/cmdline" 2>/dev/null; then
			kill -TERM "$p" 2>/dev/null || true
			for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$p" 2>/dev/null || true
		fi
		rm -f "$PIDF"
	fi
	ip netns del "$WAN_REMOTE" 2>/dev/null || true
	ip netns del "$WAN_COMPUTE" 2>/dev/null || true
	[ "${1:-}" = quiet ] || echo "wanlink.sh: down"
}

measure() {
	need_root
	local out=${1:-/dev/null} rn="ip netns exec $WAN_REMOTE" cn="ip netns exec $WAN_COMPUTE"
	local rtt ip1 ip8 ipid
	rtt=$($cn ping -n -q -c 10 -i 0.2 "$REMOTE_IP" | sed -n 's|^rtt [^=]*= \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\)/.*|\1 \2 \3|p')
	$rn iperf3 -s -1 -B "$REMOTE_IP" -p 5201 > /dev/null 2>&1 < /dev/null &
	ipid=$!
	sleep 0.3
	ip1=$($cn iperf3 -c "$REMOTE_IP" -p 5201 -R -t 4 -O 1 -J 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))')
	wait "$ipid" 2>/dev/null || true
	$rn iperf3 -s -1 -B "$REMOTE_IP" -p 5201 > /dev/null 2>&1 < /dev/null &
	ipid=$!
	sleep 0.3
	ip8=$($cn iperf3 -c "$REMOTE_IP" -p 5201 -R -t 4 -O 1 -P 8 -J 2>/dev/null |
		/usr/bin/python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e6))')
	wait "$ipid" 2>/dev/null || true
	read -r rmin ravg rmax <<< "$rtt"
	{
		echo "link_rtt_ms_min=$rmin"; echo "link_rtt_ms_avg=$ravg"; echo "link_rtt_ms_max=$rmax"
		echo "link_iperf_1stream_mbit=$ip1"; echo "link_iperf_8stream_mbit=$ip8"
	} | tee -a "$out"
}

case ${1:-} in
up) up ;;
down) down ;;
measure) measure "${2:-}" ;;
*) echo "usage: $0 up|down|measure [OUT.env]" >&2; exit 2 ;;
esac
