#!/usr/bin/env bash
# Builds libdescent (release) and the optimizer bandwidth benchmark, then runs it.
#
#   benchmarks/build.sh [--lib PATH/libdescent.so] [--no-run] [-- benchmark options]
#
#   --lib PATH   use an existing libdescent.so instead of building one
#   --no-run     build only
#   anything after -- (or any option the script does not know) goes to the benchmark, e.g.
#   benchmarks/build.sh -- --threads 2 --sizes 1e6,1e7
#
# Environment:
#   SCRATCH     SwiftPM scratch path for the library build (default: <repo>/.build-bench)
#   BENCH_OUT   where the benchmark binary goes (default: $SCRATCH/benchmarks)
#   CC          C compiler (default: the Swift toolchain's clang, which also compiles the
#               library's kernels; else gcc). Flags: -O3 -fopenmp -march=x86-64-v3
#               -fno-math-errno, the library kernels' own flags.
#   SWIFT       swift executable (default: swift on PATH, else /opt/swift/usr/bin/swift)
#
# The benchmark is linked against libomp.so.5 directly (not gcc's libgomp), so it shares one
# OpenMP runtime and thread pool with libdescent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
lib=""
run=1
bench_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --lib) lib="${2:?--lib needs a path}"; shift 2 ;;
        --lib=*) lib="${1#--lib=}"; shift ;;
        --no-run) run=0; shift ;;
        --) shift; bench_args+=("$@"); break ;;
        *) bench_args+=("$1"); shift ;;
    esac
done

scratch="${SCRATCH:-$repo/.build-bench}"
out="${BENCH_OUT:-$scratch/benchmarks}"

if [ -z "$lib" ]; then
    swift="${SWIFT:-$(command -v swift || echo /opt/swift/usr/bin/swift)}"
    echo "building libdescent (release, scratch path $scratch)" >&2
    (cd "$repo" && "$swift" build -c release --product descent --scratch-path "$scratch" >&2)
    lib="$scratch/release/libdescent.so"
fi
[ -f "$lib" ] || { echo "build.sh: no library at $lib" >&2; exit 1; }
libdir="$(cd "$(dirname "$lib")" && pwd)"
libfile="$(basename "$lib")"

if [ -z "${CC:-}" ]; then
    if [ -x /opt/swift/usr/bin/clang ]; then CC=/opt/swift/usr/bin/clang; else CC=gcc; fi
fi

# omp.h: Debian's libomp-dev puts it beside clang 14's builtin headers, which other compilers
# do not search; -idirafter keeps the compiler's own builtin headers first (TOOLCHAIN.md).
ompinc=""
for d in /usr/lib/llvm-*/lib/clang/*/include; do
    [ -f "$d/omp.h" ] && ompinc="$d"
done
cflags=(-std=c11 -O3 -fopenmp -march=x86-64-v3 -fno-math-errno -Wall -Wextra)
[ -n "$ompinc" ] && cflags+=(-idirafter "$ompinc")

mkdir -p "$out"
echo "compiling the benchmark with $CC" >&2
"$CC" "${cflags[@]}" -I"$repo/include" -c "$here/optimizer_bandwidth.c" -o "$out/optimizer_bandwidth.o"
# Link without -fopenmp (it would add libgomp with gcc, or a missing libomp.so with clang).
if [ "$libfile" = "libdescent.so" ]; then dlib=(-L"$libdir" -ldescent); else dlib=("$lib"); fi
"$CC" "$out/optimizer_bandwidth.o" -o "$out/optimizer_bandwidth" \
    "${dlib[@]}" -Wl,-rpath,"$libdir" -l:libomp.so.5 -ldl -lm
if ldd "$out/optimizer_bandwidth" | grep -q libgomp; then
    echo "build.sh: the benchmark pulled in libgomp next to libomp" >&2
    exit 1
fi
echo "built $out/optimizer_bandwidth against $lib" >&2

if [ "$run" = 1 ]; then
    exec "$out/optimizer_bandwidth" "${bench_args[@]}"
fi
