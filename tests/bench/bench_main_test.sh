#!/usr/bin/env bash
# bench_main's run_benchmarks: a benchmark program keeps Google Benchmark's
# output and exits 1 when a case gave no figure (listing it on stderr), when
# the filter matches no case, or for a flag it does not know; 0 otherwise.
#   bench_main_test.sh PROGRAM   (bench_main_check: GivesAFigure, ReportsAnError)
set -uo pipefail
prog=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
run() { "$prog" --benchmark_min_time=0.001 "$@" >"$tmp/out" 2>"$tmp/err"; }

run --benchmark_filter=GivesAFigure || fail "a case that gives a figure: exit $?: $(cat "$tmp/err")"
grep -q '^BM_Check_GivesAFigure ' "$tmp/out" || fail "its row is missing: $(cat "$tmp/out")"
grep -q 'gave no figure' "$tmp/err" && fail "a case is said to give no figure: $(cat "$tmp/err")"

run
[ $? -eq 1 ] || fail "a case that gave no figure: exit code not 1"
grep -q '^BM_Check_GivesAFigure ' "$tmp/out" || fail "the other case's row is missing"
grep -q '^1 case gave no figure:$' "$tmp/err" || fail "no count on stderr: $(cat "$tmp/err")"
grep -q '^  BM_Check_ReportsAnError: no device answers$' "$tmp/err" ||
  fail "the case and its message are not listed: $(cat "$tmp/err")"

# Each case once, whatever the repetitions; the format asked for stands.
run --benchmark_filter=ReportsAnError --benchmark_repetitions=3 --benchmark_format=json
[ $? -eq 1 ] || fail "json: exit code not 1"
grep -q '"error_occurred": true' "$tmp/out" || fail "json: no JSON output: $(cat "$tmp/out")"
[ "$(grep -c 'BM_Check_ReportsAnError' "$tmp/err")" -eq 1 ] ||
  fail "a repeated case is not listed once: $(cat "$tmp/err")"

run --benchmark_filter=NoSuchCase
[ $? -eq 1 ] || fail "a filter that matches nothing: exit code not 1"
grep -q 'Failed to match any benchmarks' "$tmp/err" "$tmp/out" || fail "no message for no match"

run --no_such_flag
[ $? -eq 1 ] || fail "an unknown flag: exit code not 1"
echo "bench_main: ok"
