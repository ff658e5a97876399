#!/usr/bin/env bash
# Runs every unit-test binary given; prints a total "N passed, N failed".
set -u
b=$1; shift
pass=0; fail=0; failed_bins=()
for t in "$@"; do
	out=$("$t" 2>&1); rc=$?
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
	if [ $rc -ne 0 ] || [ -z "$line" ]; then
		printf '%s\n' "$out"
		failed_bins+=("$t")
	fi
	p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
	pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0}))
	[ $rc -ne 0 ] && [ "${f:-0}" = 0 ] && fail=$((fail + 1))
	echo "unit $(basename "$t"): ${line:-crashed (rc $rc)}"
done
echo "unit tests ($b): $pass passed, $fail failed"
[ ${#failed_bins[@]} -eq 0 ]
