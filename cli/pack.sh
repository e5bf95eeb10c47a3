#!/usr/bin/env bash
# Copies built satemu programs and the shared libraries they load into one
# folder that runs on another x86-64 Linux machine without the build's
# packages (a GPU node with no package access, say):
#
#   cli/pack.sh BUILD_DIR DEST [PROGRAM ...]     (default program: satemu)
#
# PROGRAM is `satemu`, a test program (`gpu_tests`, ...) or a benchmark
# (`compute_bench`, ...) of BUILD_DIR. DEST gets bin/ (the programs, stripped),
# lib/ (their libraries) and `run`, which starts one of them with lib/ on the
# loader's path: `DEST/run gpu_tests --gtest_filter='Cuda*'`.
#
# Left out, as the target machine must have its own: the C and C++ runtimes
# (libc, libm, libstdc++, libgcc_s, ...) and CUDA's libraries (the driver,
# cuBLAS, which the cuda backend opens from the loader's path, $CUDA_HOME/lib64
# or /usr/local/cuda/lib64; the CUDA runtime is linked in statically).
# Test programs that read files of the source tree need it at the path it
# had when they were built.
set -euo pipefail

die() { printf 'pack: error: %s\n' "$*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: cli/pack.sh BUILD_DIR DEST [PROGRAM ...]"
build=$1
dest=$2
shift 2
[ $# -gt 0 ] || set -- satemu
[ -d "$build" ] || die "no build folder $build"

# The target's own: the C and C++ runtimes, the loader, the CUDA driver and
# libraries.
skip='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt|libnvidia)[.-]'

programs=()
for name in "$@"; do
  case "$name" in
    */*) die "program '$name': give a name, not a path" ;;
    satemu) p=$build/cli/satemu ;;
    *_tests) p=$build/tests/$name ;;
    *_bench) p=$build/bench/$name ;;
    *) die "program '$name' is not satemu, a *_tests or a *_bench program" ;;
  esac
  [ -x "$p" ] || die "program '$name' is not built ($p missing)"
  programs+=("$p")
done

mkdir -p "$dest/bin" "$dest/lib"
declare -A libs=()
for p in "${programs[@]}"; do
  # `ldd` lines: "soname => path (address)"; "not found" means the build
  # machine itself cannot run the program.
  while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ "$soname" =~ $skip ]] && continue
    [ "$path" != "not" ] || die "$(basename "$p") needs $soname, which this machine lacks"
    libs[$soname]=$path
  done < <(ldd "$p")
  cp "$p" "$dest/bin/"
  strip --strip-unneeded "$dest/bin/$(basename "$p")"
done
for soname in "${!libs[@]}"; do
  cp -L "${libs[$soname]}" "$dest/lib/$soname"
  chmod u+w "$dest/lib/$soname"
  strip --strip-unneeded "$dest/lib/$soname"
done

cat >"$dest/run" <<'RUN'
#!/bin/sh
# Runs one of the packed satemu programs: run PROGRAM [ARGS ...]
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 PROGRAM [ARGS ...]; programs: $(ls "$here/bin" | tr '\n' ' ')" >&2; exit 2; }
prog=$1
shift
[ -x "$here/bin/$prog" ] || { echo "$0: no program '$prog' here; programs: $(ls "$here/bin" | tr '\n' ' ')" >&2; exit 2; }
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# As the launcher: no OpenBLAS threads (satemu calls it on one thread).
OPENBLAS_NUM_THREADS=1
export LD_LIBRARY_PATH OPENBLAS_NUM_THREADS
exec "$here/bin/$prog" "$@"
RUN
chmod +x "$dest/run"
printf 'pack: %d program(s) and %d libraries in %s (%s)\n' "${#programs[@]}" "${#libs[@]}" \
  "$dest" "$(du -sh "$dest" | cut -f1)" >&2
