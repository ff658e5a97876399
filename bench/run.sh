#!/usr/bin/env bash
# bench/run.sh quick|full [PART...]: the benchmark driver (`make bench` runs
# `bench/run.sh full`, `make bench-quick` runs `bench/run.sh quick`).  Each
# part is its own script with its own report in bench/results/
# (bench/README.md):
#   worker   bench/worker.sh: warm GETs vs nginx, a cold pass over slowproxy
#   fuse     bench/fuse.sh: ferry fuse vs local disk, s3fs, rclone (root)
#   xregion  bench/xregion.sh: the cross-region benchmark over an emulated
#            WAN link (root)
#   cluster  bench/cluster.sh: 1-3 workers in network namespaces: aggregate
#            warm throughput, the latency of a worker hop, failover (root)
#   writes   bench/writes.sh: PUT throughput direct vs through ferry
#            (write=through/around, s3:// and file://), read after write;
#            its cross-region checkpoint needs root and is skipped without
#   load     bench/load.sh: `ferry load` over the emulated WAN link against
#            the link's multi-stream limit and a cold pass, the read after
#            it, --bandwidth against its cap (root)
#   listing  bench/listing.sh: a file:// directory of 1,000,000 entries
#            (quick: 100,000) listed through the S3 gateway and FUSE
#            against `ls -f`; FERRY_OLD=<binary> adds a "before" column
#   dataloader bench/dataloader.sh: a PyTorch DataLoader over many small
#            files with emulated accelerator time, over the emulated WAN
#            link: local disk, s3fs direct, ferry cold and warm (root)
# Without PART: full runs every part (about 60 minutes in all); quick runs
# xregion only (about 4 minutes), the headline experiment, so that a
# developer's check stays under 5 minutes; `bench/run.sh quick worker fuse`
# runs the others' quick sets.  A new part is a script bench/NAME.sh taking
# quick|full, added to PARTS below.  The root-only parts say so and are
# skipped when not run as root; the summary at the end lists what ran.
set -euo pipefail
MODE=${1:-quick}
case $MODE in
quick|full) ;;
*) echo "usage: $0 quick|full [worker|fuse|xregion|cluster|writes|load|listing|dataloader]..." >&2; exit 2 ;;
esac
shift
cd "$(dirname "$0")/.."
PARTS=(worker fuse xregion cluster writes load listing dataloader)
# writes: not root-only (its cross-region part skips itself, saying so).
# listing: FUSE mounts as any user with fusermount3 (its FUSE rows skip
# themselves without /dev/fuse).
declare -A NEEDS_ROOT=([worker]=0 [fuse]=1 [xregion]=1 [cluster]=1 [writes]=0 [load]=1 [listing]=0 [dataloader]=1)
if [ $# -gt 0 ]; then
	SEL=("$@")
elif [ "$MODE" = full ]; then
	SEL=("${PARTS[@]}")
else
	SEL=(xregion)
fi
for p in "${SEL[@]}"; do
	[ -n "${NEEDS_ROOT[$p]:-}" ] || { echo "bench: unknown part '$p' (parts: ${PARTS[*]})" >&2; exit 2; }
done
IS_ROOT=0; [ "$(id -u)" -eq 0 ] && IS_ROOT=1
if [ $IS_ROOT = 0 ]; then
	skipped=()
	for p in "${SEL[@]}"; do [ "${NEEDS_ROOT[$p]}" = 1 ] && skipped+=("$p"); done
	if [ ${#skipped[@]} -gt 0 ]; then
		echo "bench: NOT ROOT: these parts will be SKIPPED: ${skipped[*]}"
		echo "bench:   fuse needs FUSE mounts and drop_caches; xregion needs network namespaces and TUN"
		echo "bench:   devices for its emulated WAN link, FUSE mounts and drop_caches; cluster needs"
		echo "bench:   network namespaces (one per worker); load needs network namespaces and TUN devices"
		echo "bench:   for the emulated WAN link, and drop_caches; dataloader needs network namespaces,"
		echo "bench:   TUN devices, FUSE mounts and drop_caches."
		echo "bench:   Run as root for them: sudo make bench (or sudo bench/run.sh $MODE ${skipped[*]})"
	fi
fi
summary=()
T0=$(date +%s)
for p in "${SEL[@]}"; do
	if [ "${NEEDS_ROOT[$p]}" = 1 ] && [ $IS_ROOT = 0 ]; then
		summary+=("$p: SKIPPED (needs root)")
		continue
	fi
	t=$(date +%s)
	echo "bench: === $p ($MODE) ==="
	"./bench/$p.sh" "$MODE"
	summary+=("$p: done in $(( $(date +%s) - t )) s")
done
echo "bench: summary ($MODE, $(( $(date +%s) - T0 )) s):"
for s in "${summary[@]}"; do echo "bench:   $s"; done
