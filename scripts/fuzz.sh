#!/usr/bin/env bash
# Builds Descent's fuzz targets (tests/fuzz) against libdescent.so compiled with AddressSanitizer,
# UndefinedBehaviorSanitizer (C kernels) and libFuzzer's coverage instrumentation, and runs them.
#
#   bash scripts/fuzz.sh build              the library (SwiftPM, .build-fuzz) and the targets (build-fuzz/)
#   bash scripts/fuzz.sh run [SECONDS]      each target for SECONDS (default 30; CI), after replaying its
#                                           committed corpus; any crash fails the run
#   bash scripts/fuzz.sh long [SECONDS]     each target for SECONDS (default 3600), keeping the grown corpus
#                                           in build-fuzz/corpus across runs; figures go to
#                                           build-fuzz/long-<time>.log; a crash stops that target only
#   bash scripts/fuzz.sh seeds              rewrites the seed-* files of tests/fuzz/corpus (tests/fuzz/make_seeds.c)
#   bash scripts/fuzz.sh TARGET ARGS...     one target with libFuzzer's own arguments, e.g. to replay a crash:
#                                           bash scripts/fuzz.sh fuzz_idx build-fuzz/artifacts/fuzz_idx-crash-...
#
# Environment: FUZZ_TARGETS (a subset, e.g. "fuzz_idx fuzz_spec"), FUZZ_OUT (default build-fuzz).
# Crash inputs land in $FUZZ_OUT/artifacts; commit each one as tests/fuzz/corpus/<target>/regression-*
# once the bug is fixed, so every later run replays it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
# The toolchain's own compilers: the library's sanitizer runtime and libFuzzer come from them.
toolchain=$(dirname "$(command -v swift)")
out=${FUZZ_OUT:-build-fuzz}
scratch=.build-fuzz
lib_dir="$root/$scratch/debug"
all_targets=(fuzz_idx fuzz_checkpoint fuzz_spec fuzz_hparams fuzz_plugin_descriptor)
read -r -a targets <<< "${FUZZ_TARGETS:-${all_targets[*]}}"

# The sanitizers report and stop at the first error; leaks are reported too. allocator_may_return_null
# lets a failed allocation reach the library's own out-of-memory handling.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# One thread: the OpenMP runtime is not instrumented, and a fuzzer wants determinism.
export DESCENT_NUM_THREADS=1 OMP_NUM_THREADS=1
# Swift's own crash handler would catch the signal first and, reading the crashed process's memory,
# trip ASan itself, hiding the real report: leave signals to libFuzzer and the sanitizers.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}

# Per-target libFuzzer options. JSON is parsed in linear time with nesting limited to 64 levels, so
# inputs may be a few KB (the checkpoint seeds are real checkpoints of 0.7-2.6 KB); the timeout
# only catches a real hang.
target_options() {
    echo "-max_len=4096 -timeout=25"
}

dict_of() {
    local dict="tests/fuzz/dict/${1#fuzz_}.dict"
    [[ -f $dict ]] && echo "-dict=$dict"
    return 0
}

build() {
    echo "fuzz: building libdescent.so with ASan + UBSan + fuzzer coverage ($scratch, debug)"
    # SwiftPM passes only one of several --sanitize values to swiftc, so the flags are given directly:
    # Swift code gets ASan and libFuzzer's edge/compare coverage, C kernels ASan, UBSan and coverage.
    # Debug keeps assertions on and compiles the module with -enable-testing, which the Swift target
    # needs for @testable import.
    "$toolchain/swift" build --product descent --scratch-path "$scratch" \
        -Xswiftc -sanitize=fuzzer,address \
        -Xcc -fsanitize=fuzzer-no-link,address,undefined
    # The library's SONAME is libdescent.so.MAJOR, the name the targets then look for at run time.
    local soname
    soname=$(readelf -d "$lib_dir/libdescent.so" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    [[ -z $soname || $soname == libdescent.so ]] || ln -sf libdescent.so "$lib_dir/$soname"
    mkdir -p "$out"
    local cc=("$toolchain/clang" -fuse-ld=lld -g -O1 -std=c11 -Wall -Wextra -Werror -Iinclude
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
    local link=(-L"$lib_dir" -ldescent -Wl,-rpath,"$lib_dir" -lz -lm)
    for t in fuzz_idx fuzz_checkpoint fuzz_spec fuzz_hparams; do
        echo "fuzz: building $out/$t"
        "${cc[@]}" "tests/fuzz/$t.c" "${link[@]}" -o "$out/$t"
    done
    echo "fuzz: building $out/fuzz_plugin_descriptor (Swift, @testable import Descent)"
    "$toolchain/swiftc" -sanitize=fuzzer,address -parse-as-library -g -Onone -use-ld=lld \
        -I "$lib_dir/Modules" \
        -Xcc -fmodule-map-file=Sources/CDescentKernels/include/module.modulemap \
        -Xcc -I -Xcc Sources/CDescentKernels/include \
        -L "$lib_dir" -ldescent -Xlinker -rpath -Xlinker "$lib_dir" \
        tests/fuzz/fuzz_plugin_descriptor.swift -o "$out/fuzz_plugin_descriptor"
    echo "fuzz: building $out/make_seeds"
    "$toolchain/clang" -fuse-ld=lld -g -O1 -std=c11 -Wall -Wextra -Werror -Iinclude -fsanitize=address \
        tests/fuzz/make_seeds.c "${link[@]}" -o "$out/make_seeds"
}

# stat NAME LOG: a value from libFuzzer's -print_final_stats lines.
stat() { sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -n 1; }

# fuzz_one TARGET SECONDS CORPUS_DIR: one libFuzzer run; prints one figures line; returns its status.
fuzz_one() {
    local t=$1 seconds=$2 corpus=$3 log="$out/logs/$1.log" rc=0
    mkdir -p "$corpus" "$out/artifacts" "$out/logs"
    local seeds="tests/fuzz/corpus/${t#fuzz_}"
    # shellcheck disable=SC2046
    "$out/$t" -max_total_time="$seconds" -print_final_stats=1 -close_fd_mask=1 \
        $(target_options "$t") $(dict_of "$t") -artifact_prefix="$out/artifacts/$t-" \
        "$corpus" "$seeds" > "$log" 2>&1 || rc=$?
    local execs corpus_files crashes edges
    execs=$(stat number_of_executed_units "$log")
    # Coverage: the edges (inline 8-bit counters) libFuzzer saw hit, from its closing status line.
    edges=$(grep -oE 'DONE +cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || true)
    corpus_files=$(( $(find "$corpus" -type f | wc -l) + $(find "$seeds" -type f | wc -l) ))
    crashes=$(grep -c -E "Test unit written to .*/$t-(crash|leak|timeout|oom|slow-unit)" "$log" || true)
    printf 'fuzz: %-24s %6ss  executions %9s  exec/s %6s  edges %5s  corpus %5s files  peak RSS %5s MB  crashes %s  %s\n' \
        "$t" "$seconds" "${execs:-?}" "$(( ${execs:-0} / (seconds > 0 ? seconds : 1) ))" "${edges:-?}" "$corpus_files" \
        "$(stat peak_rss_mb "$log")" "$crashes" "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc, log $log)")"
    if [[ $rc -ne 0 ]]; then
        # The sanitizer's or the harness's report: the lines that say what went wrong and where.
        grep -E "ERROR: |SUMMARY: |runtime error|^fuzz: |ALARM|out-of-memory|Test unit written" "$log" | head -n 20 | sed 's/^/    /'
    fi
    return "$rc"
}

run() {
    local seconds=$1 passed=0 failed=0
    for t in "${targets[@]}"; do
        # A fresh corpus each CI run: it starts from the committed seeds and regression inputs.
        rm -rf "$out/run-corpus/$t"
        if fuzz_one "$t" "$seconds" "$out/run-corpus/$t"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
    echo "fuzz: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
}

long() {
    local seconds=$1 log
    log="$out/long-$(date -u +%Y%m%d-%H%M).log"
    mkdir -p "$out"
    {
        echo "Descent long fuzzing run, $(date -u '+%Y-%m-%d %H:%M UTC'), $seconds s per target, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
        echo "machine: $(getconf _NPROCESSORS_ONLN) cores online ($(nproc) available to this run), $(uname -sr)"
    } | tee "$log"
    for t in "${targets[@]}"; do
        fuzz_one "$t" "$seconds" "$out/corpus/$t" | tee -a "$log" || true
    done
    echo "fuzz: figures written to $log"
}

seeds() {
    [[ -x $out/make_seeds ]] || build
    find tests/fuzz/corpus -name 'seed-*' -delete
    ASAN_OPTIONS=detect_leaks=0 "$out/make_seeds" tests/fuzz/corpus
    echo "fuzz: seeds written:"
    find tests/fuzz/corpus -name 'seed-*' | sort
}

case ${1:-run} in
    build) build ;;
    run) build; run "${2:-30}" ;;
    long) build; long "${2:-3600}" ;;
    seeds) seeds ;;
    fuzz_*) t=$1; shift; [[ -x $out/$t ]] || build; exec "$out/$t" $(target_options "$t") $(dict_of "$t") "$@" ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
esac
