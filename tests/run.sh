#!/usr/bin/env bash
# run.sh — runs every test: cmocka unit binaries, the fuzz corpus replay, and the
# integration suite against the real programs. Called by `make test`.
#
#   tests/run.sh [--only unit|fuzz|integration] OBJDIR BINDIR
#
# Prints one line per test program and ends with "N passed, N failed" (individual
# tests: cmocka cases, corpus replays, integration tests). Exit status 1 if any failed.
set -uo pipefail

only=""
if [ "${1:-}" = "--only" ]; then
	only=$2
	shift 2
fi
objdir=${1:?usage: tests/run.sh [--only KIND] OBJDIR BINDIR}
bindir=${2:?usage: tests/run.sh [--only KIND] OBJDIR BINDIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logdir="$objdir/test-logs"
mkdir -p "$logdir"
passed=0
failed=0
failures=()

run_unit() {
	local t name out p f
	for t in "$objdir"/tests/test_*; do
		[ -x "$t" ] || continue
		name=$(basename "$t")
		out="$logdir/$name.log"
		if "$t" >"$out" 2>&1; then
			p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
			passed=$((passed + ${p:-0}))
			printf 'unit  %-28s ok (%s)\n' "$name" "${p:-0}"
		else
			p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
			f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
			passed=$((passed + ${p:-0}))
			failed=$((failed + ${f:-1}))
			failures+=("$name")
			printf 'unit  %-28s FAILED\n' "$name"
			tail -40 "$out" | sed 's/^/    /'
		fi
	done
}

run_fuzz() {
	local t name corpus out
	for t in "$objdir"/tests/replay_fuzz_*; do
		[ -x "$t" ] || continue
		name=${t##*/replay_}
		corpus="tests/fuzz/corpus/$name"
		out="$logdir/replay_$name.log"
		if [ ! -d "$corpus" ]; then
			failed=$((failed + 1))
			failures+=("$name (no corpus at $corpus)")
			printf 'fuzz  %-28s FAILED: no corpus\n' "$name"
		elif "$t" "$corpus" >"$out" 2>&1; then
			passed=$((passed + 1))
			printf 'fuzz  %-28s ok (%s)\n' "$name" "$(tail -1 "$out")"
		else
			failed=$((failed + 1))
			failures+=("$name corpus replay")
			printf 'fuzz  %-28s FAILED\n' "$name"
			tail -40 "$out" | sed 's/^/    /'
		fi
	done
}

run_integration() {
	local out="$logdir/integration.log" p f
	SLUICE_BIN_DIR="$bindir" python3 tests/integration/run.py 2>&1 | tee "$out" | grep -E '^(PASS|FAIL|  )' | grep -v '^PASS' || true
	p=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$out" | tail -1)
	f=$(sed -n 's/^integration: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$out" | tail -1)
	if [ -z "$p" ]; then
		failed=$((failed + 1))
		failures+=("integration suite did not finish (see $out)")
		tail -40 "$out" | sed 's/^/    /'
		return
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	[ "$f" -eq 0 ] || failures+=("integration: $f failed (see $out)")
	printf 'integration: %s passed, %s failed\n' "$p" "$f"
}

[ -z "$only" ] || [ "$only" = unit ] && run_unit
[ -z "$only" ] || [ "$only" = fuzz ] && run_fuzz
[ -z "$only" ] || [ "$only" = integration ] && run_integration

if [ ${#failures[@]} -gt 0 ]; then
	echo "failed:"
	printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
