# bench/precond.sh: sourced by the benchmark scripts (worker.sh, fuse.sh,
# xregion.sh, cluster.sh, writes.sh).  Every timed pass states what it
# assumed of the caches, from counters read around it, and a pass whose
# assumption did not hold stops the run (exit 1) before any report or
# headline is written:
#
#   cold    the first pass of a cache that started empty: it fetched at least
#           the bytes it read from the under-store (GOT >= WANT);
#   warm    a later pass: it fetched nothing (GOT <= SLACK: 0 for a counter of
#           data bytes such as ferry's ferry_ufs_read_bytes_total; for a
#           counter that also sees metadata requests, such as a link's or a
#           proxy's bytes, a small allowance for them);
#   direct  no cache in the path: every byte read crossed (GOT >= WANT);
#   none    the pass does not use the under-store at all (GOT <= SLACK);
#   empty   a cache just before its cold pass holds nothing (GOT <= SLACK).
#
# Roles of write passes (bench/writes.sh):
#   write   ferry committed exactly the bytes the pass wrote to the
#           under-store (GOT == WANT: ferry_ufs_write_bytes_total);
#   sent    the under-store (or the link to it) received at least the bytes
#           the pass wrote (GOT >= WANT);
#   stored  of WANT objects checked in the under-store's own files, GOT hold
#           exactly what was sent (size, sha256) (GOT == WANT);
#   cached  a write-through pass left at least the pages it wrote in the
#           cache (GOT >= WANT);
#   idle    a counter the pass must not move did not (GOT <= SLACK): ferry
#           in a pass that bypasses it, the cache in a write-around pass;
#   drained a write-back pass, once ferry said it had drained: nothing of
#           it is pending any more (GOT <= SLACK: ferry's pending gauges).
#
# Each check is one line of $PRECOND_LOG (a TSV: pass, role, want, got,
# slack, counter, verdict), which the report scripts read again: a pass with
# a violated check gets no ratio there.
PRECOND_LOG=${PRECOND_LOG:-/dev/null}
precond_init() { # FILE: start the log of this run
	PRECOND_LOG=$1
	printf 'pass\trole\twant\tgot\tslack\tcounter\tverdict\n' > "$PRECOND_LOG"
}
# precond PASS ROLE WANT GOT SLACK COUNTER: checks one pass (see above).
precond() {
	local name=$1 role=$2 want=$3 got=$4 slack=$5 src=$6 ok=1 why
	case $role in
	cold | direct) [ "$got" -ge "$want" ] || ok=0 ;;
	warm | none | empty | idle | drained) [ "$got" -le "$slack" ] || ok=0 ;;
	write | stored) [ "$got" -eq "$want" ] || ok=0 ;;
	sent | cached) [ "$got" -ge "$want" ] || ok=0 ;;
	*) echo "precond: unknown role '$role' for $name" >&2; exit 2 ;;
	esac
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$role" "$want" "$got" "$slack" "$src" \
		"$([ $ok = 1 ] && echo ok || echo VIOLATED)" >> "$PRECOND_LOG"
	[ $ok = 1 ] && return 0
	case $role in
	cold) why="it is a cold pass, but fetched only $got bytes from the under-store, less than the $want bytes it read: its cache already held data when it began (or the bytes did not come over the path measured)" ;;
	direct) why="it reads straight from the under-store, but only $got bytes crossed, less than the $want bytes it read" ;;
	warm) why="it is a warm pass, but fetched $got bytes from the under-store ($([ "$slack" -gt 0 ] && echo "allowed: $slack, for metadata requests" || echo "none allowed")): its cache did not hold what it read" ;;
	none) why="it does not use the under-store, but $got bytes crossed meanwhile (allowed: $slack): something else was fetching during the pass" ;;
	empty) why="its cache was not empty before its cold pass: $got (allowed: $slack)" ;;
	write) why="it wrote $want bytes through ferry, but ferry committed $got bytes to the under-store" ;;
	sent) why="it wrote $want bytes, but only $got reached the under-store" ;;
	stored) why="of $want objects checked in the under-store, only $got hold exactly what was sent" ;;
	cached) why="it is a write-through pass, but the cache gained only $got, less than the $want it wrote" ;;
	idle) why="this counter must not move during the pass, but it moved by $got (allowed: $slack)" ;;
	drained) why="it is a write-back pass that ferry reported drained, but $got is still pending (allowed: $slack)" ;;
	esac
	{
		echo "PRECONDITION VIOLATED: $name: $why."
		echo "  counter: $src"
		[ -n "${PRECOND_DETAIL:-}" ] && echo "  $PRECOND_DETAIL"
		echo "  The run stops here: no report, no headline from a pass that did not measure what it claims."
	} >&2
	exit 1
}
