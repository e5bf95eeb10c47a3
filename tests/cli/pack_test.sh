#!/usr/bin/env bash
# cli/pack.sh: the packed satemu runs with its libraries from the pack's lib/,
# and bad arguments exit 2 naming the problem.
#   pack_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

"$src/cli/pack.sh" "$build" "$tmp/p" satemu 2>"$tmp/log" || { cat "$tmp/log"; fail "pack exited $?"; }
[ -x "$tmp/p/bin/satemu" ] || fail "no bin/satemu"
[ -x "$tmp/p/run" ] || fail "no run"
# The build's own libraries come from the pack; the C/C++ runtime does not.
LD_LIBRARY_PATH="$tmp/p/lib" ldd "$tmp/p/bin/satemu" >"$tmp/ldd" || fail "ldd failed"
grep -q 'not found' "$tmp/ldd" && { cat "$tmp/ldd"; fail "a library is not found"; }
for lib in libcaf_core libcapnp libyaml-cpp libabsl_status libopenblas; do
  grep -q "$lib[^ ]* => $tmp/p/lib/" "$tmp/ldd" || { cat "$tmp/ldd"; fail "$lib not taken from the pack"; }
done
[ -e "$tmp/p/lib/libc.so.6" ] && fail "libc was packed"
[ -e "$tmp/p/lib/libstdc++.so.6" ] && fail "libstdc++ was packed"
# run: a clean environment, started from elsewhere.
out=$(cd / && env -i "$tmp/p/run" satemu --version 2>&1) || fail "run satemu --version: $out"
grep -q '^satemu ' <<<"$out" || fail "unexpected --version output: $out"
out=$(cd / && env -i "$tmp/p/run" satemu validate "$src/scenarios/quickstart.yaml" 2>&1) ||
  fail "run satemu validate: $out"

# Bad arguments.
"$src/cli/pack.sh" "$build" "$tmp/q" nosuch 2>"$tmp/err"
[ $? -eq 2 ] || fail "unknown program: exit code not 2"
grep -q "program 'nosuch'" "$tmp/err" || fail "unknown program not named: $(cat "$tmp/err")"
"$src/cli/pack.sh" "$build" 2>"$tmp/err"
[ $? -eq 2 ] || fail "missing DEST: exit code not 2"
"$tmp/p/run" nosuch 2>"$tmp/err"
[ $? -eq 2 ] || fail "run of an unknown program: exit code not 2"
grep -q "no program 'nosuch'" "$tmp/err" || fail "run: unknown program not named"
echo "pack: ok"
