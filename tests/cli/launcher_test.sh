#!/usr/bin/env bash
# ./satemu (the launcher): a build that fails stops it with its own message
# and exit 1, on the first build (its output shown) as on later ones; it
# never goes on to run a binary the build did not make. Its logs stay inside
# the build directory.
#   launcher_test.sh SOURCE_DIR
set -uo pipefail
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Stand-ins: every package counts as installed, configuring works, and the
# build fails with a compiler error.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/dpkg-query" <<'SCRIPT'
#!/bin/sh
printf 'install ok installed'
SCRIPT
cat >"$tmp/bin/cmake" <<'SCRIPT'
#!/bin/sh
if [ "$1" = "--build" ]; then
  echo "[ 10%] Building CXX object x.cpp.o"
  echo "x.cpp:1:1: error: boom"
  exit 2
fi
mkdir -p "$4" && : >"$4/CMakeCache.txt"
SCRIPT
chmod +x "$tmp/bin/dpkg-query" "$tmp/bin/cmake"

for cmd in "run scenarios/quickstart.yaml" "test"; do
  PATH="$tmp/bin:$PATH" SATEMU_BUILD_DIR="$tmp/build" "$src/satemu" $cmd >"$tmp/out" 2>&1
  rc=$?
  [ "$rc" -eq 1 ] || { cat "$tmp/out"; fail "'satemu $cmd' after a failed first build exited $rc, not 1"; }
  grep -q 'error: build failed' "$tmp/out" || { cat "$tmp/out"; fail "'satemu $cmd': no 'build failed'"; }
  grep -q 'x.cpp:1:1: error: boom' "$tmp/out" || { cat "$tmp/out"; fail "'satemu $cmd': the error is not shown"; }
done
[ -f "$tmp/build/configure.log" ] || fail "no configure.log in the build directory"
[ "$(ls "$tmp")" = "$(printf 'bin\nbuild\nout')" ] || fail "files beside the build directory: $(ls "$tmp")"

# A later build (the binary exists) that fails is reported the same way.
mkdir -p "$tmp/build/cli"
printf '#!/bin/sh\necho "stale binary ran"\n' >"$tmp/build/cli/satemu"
chmod +x "$tmp/build/cli/satemu"
PATH="$tmp/bin:$PATH" SATEMU_BUILD_DIR="$tmp/build" "$src/satemu" --version >"$tmp/out" 2>&1
rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/out"; fail "a failed later build exited $rc, not 1"; }
grep -q 'stale binary ran' "$tmp/out" && { cat "$tmp/out"; fail "the stale binary ran"; }
grep -q 'x.cpp:1:1: error: boom' "$tmp/out" || { cat "$tmp/out"; fail "later build: the error is not shown"; }
echo "ok"
