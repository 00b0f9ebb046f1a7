#!/usr/bin/env bash
# Builds libdescent (release) and the C benchmarks, then runs them (docs/benchmarks.md).
#
#   benchmarks/build.sh [--lib PATH/libdescent.so] [--no-run] [-- optimizer_bandwidth options]
#   benchmarks/build.sh [--lib PATH/libdescent.so] --all [--threads N]
#
#   --lib PATH    use an existing libdescent.so instead of building one
#   --no-run      build only ($BENCH_OUT/optimizer_bandwidth, train_step and profile_step)
#   (default)     run optimizer_bandwidth; anything after -- (or any option this script does
#                 not know) goes to it, e.g. benchmarks/build.sh -- --threads 2 --sizes 1e6,1e7
#   --all         run all three benchmarks, each with N threads and then 1 thread:
#                 optimizer_bandwidth (all sizes), train_step at batch 128 (2000 iterations)
#                 and at batch 1, and python_overhead.py with DESCENT_LIBRARY set to the
#                 same library. Takes about 4 minutes on the 2-core machine of docs/benchmarks.md.
#   --threads N   the N of --all (default: the number of online CPUs)
#
# Environment:
#   SCRATCH     SwiftPM scratch path for the library build (default: <repo>/.build-bench)
#   BENCH_OUT   where the benchmark binaries go (default: $SCRATCH/benchmarks)
#   CC          C compiler (default: the Swift toolchain's clang, which also compiles the
#               library's kernels; else gcc). optimizer_bandwidth gets -O3 -fopenmp
#               -march=x86-64-v3 -fno-math-errno, the library kernels' own flags; train_step
#               needs no OpenMP (it only calls the library and OpenBLAS).
#   SWIFT       swift executable (default: swift on PATH, else /opt/swift/usr/bin/swift)
#   PYTHON      Python with numpy for python_overhead.py (default: python3)
#
# optimizer_bandwidth is linked against libomp.so.5 directly (not gcc's libgomp), so it shares
# one OpenMP runtime and thread pool with libdescent.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
lib=""
run=1
all=0
threads="$(nproc 2>/dev/null || echo 1)"
threads_opt=""
bench_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --lib) lib="${2:?--lib needs a path}"; shift 2 ;;
        --lib=*) lib="${1#--lib=}"; shift ;;
        --no-run) run=0; shift ;;
        --all) all=1; shift ;;
        --threads) threads_opt="${2:?--threads needs a value}"; shift 2 ;;
        --threads=*) threads_opt="${1#--threads=}"; shift ;;
        --) shift; bench_args+=("$@"); break ;;
        *) bench_args+=("$1"); shift ;;
    esac
done
if [ -n "$threads_opt" ]; then
    if [ "$all" = 1 ]; then threads="$threads_opt"; else bench_args+=(--threads "$threads_opt"); fi
fi
if [ "$all" = 1 ] && [ ${#bench_args[@]} -gt 0 ]; then
    echo "build.sh: --all takes no benchmark options (got: ${bench_args[*]})" >&2
    exit 2
fi

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
lib="$libdir/$libfile"

if [ -z "${CC:-}" ]; then
    if [ -x /opt/swift/usr/bin/clang ]; then CC=/opt/swift/usr/bin/clang; else CC=gcc; fi
fi

# omp.h: Debian's libomp-dev puts it beside clang 14's builtin headers, which other compilers
# do not search; -idirafter keeps the compiler's own builtin headers first.
ompinc=""
for d in /usr/lib/llvm-*/lib/clang/*/include; do
    [ -f "$d/omp.h" ] && ompinc="$d"
done
cflags=(-std=c11 -O3 -march=x86-64-v3 -fno-math-errno -Wall -Wextra -I"$repo/include")
ompflags=(-fopenmp)
[ -n "$ompinc" ] && ompflags+=(-idirafter "$ompinc")
if [ "$libfile" = "libdescent.so" ]; then dlib=(-L"$libdir" -ldescent); else dlib=("$lib"); fi

mkdir -p "$out"
out="$(cd "$out" && pwd)"
# The programs record the library's SONAME (libdescent.so.0), which SwiftPM's output folder lacks:
# a link of that name in $out, first on the rpath, makes them load the library they were built with.
soname="$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
if [ -n "$soname" ] && [ "$soname" != "$libfile" ]; then ln -sf "$lib" "$out/$soname"; fi
echo "compiling the benchmarks with $CC" >&2
"$CC" "${cflags[@]}" "${ompflags[@]}" -c "$here/optimizer_bandwidth.c" -o "$out/optimizer_bandwidth.o"
# Link without -fopenmp (it would add libgomp with gcc, or a missing libomp.so with clang).
"$CC" "$out/optimizer_bandwidth.o" -o "$out/optimizer_bandwidth" \
    "${dlib[@]}" -Wl,-rpath,"$out" -Wl,-rpath,"$libdir" -l:libomp.so.5 -ldl -lm
if ldd "$out/optimizer_bandwidth" | grep -q libgomp; then
    echo "build.sh: the benchmark pulled in libgomp next to libomp" >&2
    exit 1
fi
"$CC" "${cflags[@]}" "$here/train_step.c" -o "$out/train_step" "${dlib[@]}" -Wl,-rpath,"$out" -Wl,-rpath,"$libdir" -ldl -lm
"$CC" "${cflags[@]}" "$here/profile_step.c" -o "$out/profile_step" "${dlib[@]}" -Wl,-rpath,"$out" -Wl,-rpath,"$libdir" -ldl
echo "built $out/optimizer_bandwidth, $out/train_step and $out/profile_step against $lib" >&2

[ "$run" = 1 ] || exit 0
if [ "$all" = 0 ]; then
    exec "$out/optimizer_bandwidth" "${bench_args[@]}"
fi

thread_counts=("$threads")
[ "$threads" != 1 ] && thread_counts+=(1)
list="$(IFS=,; echo "${thread_counts[*]}")"
echo "# All benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), library $lib, threads $list"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$out/optimizer_bandwidth" --threads "$list"
for t in "${thread_counts[@]}"; do
    echo
    echo "## train_step, $t thread(s), batch 128"
    "$out/train_step" --threads "$t" --batch 128 --iterations 2000
    echo
    echo "## train_step, $t thread(s), batch 1"
    "$out/train_step" --threads "$t" --batch 1 --iterations 20000
done
for t in "${thread_counts[@]}"; do
    echo
    echo "## python_overhead.py, $t thread(s)"
    DESCENT_LIBRARY="$lib" "${PYTHON:-python3}" "$here/python_overhead.py" --threads "$t" || true
done
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
