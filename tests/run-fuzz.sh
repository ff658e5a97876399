#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer binary (clang, ASan+UBSan)
# in build-fuzz/ and runs each for FUZZ_SECONDS seconds (first argument,
# default 20).  Prints one line per harness and a closing "N passed,
# N failed"; exits non-zero if any harness fails to build or finds a crash.
#
# Sources: a harness may name what it links in a comment line
#   // FUZZ_SOURCES: src/common/util.c src/http/http_parse.c
# otherwise it links an archive of every .c under the core directories.
# Seeds: tests/fuzz/corpus/<name>/ (or <name> without "fuzz_"), if present;
# new inputs go to build-fuzz/corpus/<name>/, crashes to build-fuzz/artifacts/.
# A dictionary tests/fuzz/<name>.dict is used if present.
set -u
cd "$(dirname "$0")/.."

secs=${1:-${FUZZ_SECONDS:-20}}
CC=${FUZZ_CC:-clang}
OUT=build-fuzz
CORE_DIRS=(src/common src/http src/s3 src/ufs src/store src/worker src/lib)
BASE_FLAGS=(-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fno-omit-frame-pointer
	-fno-sanitize-recover=undefined)
read -r -a DEP_CFLAGS <<<"$(pkg-config --cflags libcurl openssl 2>/dev/null)"
read -r -a DEP_LIBS <<<"$(pkg-config --libs libcurl openssl 2>/dev/null || echo -lcurl -lcrypto)"

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (make deps installs clang)"
	echo "0 passed, 1 failed"
	exit 1
fi
mkdir -p "$OUT/obj" "$OUT/bin" "$OUT/corpus" "$OUT/artifacts" "$OUT/logs"

# Rebuilds obj from src when it is missing or older than src or any header
# it included last time (from the -MMD dependency file).
stale() {
	local obj=$1 src=$2 dep=${1%.o}.d
	[ -f "$obj" ] || return 0
	[ "$src" -nt "$obj" ] && return 0
	[ -f "$dep" ] || return 0
	local f
	for f in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$dep"); do
		[ -e "$f" ] && [ "$f" -nt "$obj" ] && return 0
	done
	return 1
}

# Compiles one core source with coverage instrumentation; prints the object.
build_obj() {
	local src=$1 obj="$OUT/obj/${1%.c}.o"
	mkdir -p "$(dirname "$obj")"
	if stale "$obj" "$src"; then
		"$CC" "${BASE_FLAGS[@]}" "${DEP_CFLAGS[@]}" \
		    -fsanitize=fuzzer-no-link,address,undefined -MMD -MP \
		    -c "$src" -o "$obj" || return 1
	fi
	echo "$obj"
}

core_archive=""
build_core_archive() {
	[ -n "$core_archive" ] && return 0
	local objs=() src obj
	while IFS= read -r src; do
		obj=$(build_obj "$src") || return 1
		objs+=("$obj")
	done < <(find "${CORE_DIRS[@]}" -name '*.c' 2>/dev/null | sort)
	rm -f "$OUT/libferry_fuzz.a"
	ar rcs "$OUT/libferry_fuzz.a" "${objs[@]}" || return 1
	core_archive="$OUT/libferry_fuzz.a"
}

build_harness() {
	local h=$1 name=$2 srcs line objs=() src obj
	line=$(grep -m1 -E '^//[[:space:]]*FUZZ_SOURCES:' "$h" || true)
	if [ -n "$line" ]; then
		srcs=${line#*FUZZ_SOURCES:}
		for src in $srcs; do
			obj=$(build_obj "$src") || return 1
			objs+=("$obj")
		done
	else
		build_core_archive || return 1
		objs+=("$core_archive")
	fi
	"$CC" "${BASE_FLAGS[@]}" "${DEP_CFLAGS[@]}" -fsanitize=fuzzer,address,undefined \
	    -o "$OUT/bin/$name" "$h" "${objs[@]}" "${DEP_LIBS[@]}" -lpthread
}

pass=0
fail=0
shopt -s nullglob
harnesses=(tests/fuzz/fuzz_*.c)
if [ ${#harnesses[@]} -eq 0 ]; then
	echo "fuzz: no harnesses"
fi
for h in "${harnesses[@]}"; do
	name=$(basename "$h" .c)
	log="$OUT/logs/$name.log"
	if ! build_harness "$h" "$name" >"$log" 2>&1; then
		tail -n 30 "$log"
		echo "fuzz $name: FAILED (build, see $log)"
		fail=$((fail + 1))
		continue
	fi
	corpus=("$OUT/corpus/$name")
	mkdir -p "$OUT/corpus/$name"
	for seed in "tests/fuzz/corpus/$name" "tests/fuzz/corpus/${name#fuzz_}"; do
		[ -d "$seed" ] && corpus+=("$seed")
	done
	extra=()
	[ -f "tests/fuzz/$name.dict" ] && extra+=("-dict=tests/fuzz/$name.dict")
	"$OUT/bin/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$OUT/artifacts/$name-" "${extra[@]}" \
	    "${corpus[@]}" >>"$log" 2>&1
	rc=$?
	runs=$(grep -m1 -E '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
	cov=$(grep -E '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+).*/\1/')
	if [ $rc -eq 0 ]; then
		echo "fuzz $name: ok (${runs:-?} runs, cov ${cov:-?}, ${secs}s)"
		pass=$((pass + 1))
	else
		grep -E 'ERROR|SUMMARY|invariant failed|runtime error|Test unit written' "$log" | head -n 20
		echo "fuzz $name: FAILED (rc $rc, see $log)"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
