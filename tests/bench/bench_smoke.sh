#!/usr/bin/env bash
# A benchmark program runs the cases FILTER selects, each briefly, and every
# one of them gives a figure: the program exits 0, runs at least one case,
# and no case reports an error. (A case that cannot measure what it says
# stops with SkipWithError; the program still exits 0, so only its output
# tells.)
#   bench_smoke.sh PROGRAM FILTER
set -uo pipefail
prog=$1
filter=$2
name=$(basename "$prog")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

"$prog" --benchmark_filter="$filter" --benchmark_min_time=0.01 \
  --benchmark_out="$tmp/out.json" --benchmark_out_format=json
rc=$?
[ "$rc" -eq 0 ] || fail "$name exited $rc"
runs=0
[ -s "$tmp/out.json" ] && runs=$(grep -c '"run_name":' "$tmp/out.json")
[ "$runs" -gt 0 ] || fail "no case of $name matches '$filter'"
if grep -q '"error_occurred": true' "$tmp/out.json"; then
  grep -A1 '"error_occurred": true' "$tmp/out.json" | grep '"error_message"' >&2
  fail "a case of $name reported an error"
fi
echo "$name: $runs cases ran, none reported an error"
