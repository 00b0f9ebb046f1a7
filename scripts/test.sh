#!/usr/bin/env bash
# Installs what is needed and runs every test: Swift tests, the C tests and header/install
# checks under ctest, the Python binding's tests, then the reliability checks: the C tests again
# under ASan+UBSan, the thread tests under TSan, and each fuzz target for a short while
# (docs/reliability.md). The README's test command; .ci/run runs it.
#
#   bash scripts/test.sh
#
# Environment: DESCENT_BUILD_DIR (default build; the sanitizer builds go to <it>-asan and
# <it>-tsan), DESCENT_SKIP_DEPS=1 (skip scripts/install-deps.sh), JOBS (parallel jobs, default:
# the number of cores), FUZZ_SECONDS (per fuzz target, default 30; 0 skips fuzzing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${DESCENT_BUILD_DIR:-build}
jobs=${JOBS:-$(nproc)}
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

start=$SECONDS
section() { printf '\n===== %s (%ds)\n' "$*" $((SECONDS - start)); }

if [[ "${DESCENT_SKIP_DEPS:-0}" != 1 ]]; then
    section "dependencies: scripts/install-deps.sh"
    bash scripts/install-deps.sh
fi

section "swift test --scratch-path .build-test"
swift test --scratch-path .build-test

section "cmake: configure $build_dir (Ninja, Release)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
section "cmake: build"
cmake --build "$build_dir" --parallel "$jobs"
section "ctest"
ctest --test-dir "$build_dir" --output-on-failure --parallel "$jobs"
ctest_count=$(ctest --test-dir "$build_dir" -N | sed -n 's/^Total Tests: *\([0-9]*\).*/\1/p')

py_tests=bindings/python/tests
section "pytest $py_tests"
if [[ -d "$py_tests" ]]; then
    # The binding loads the release library this run just built unless told otherwise.
    export DESCENT_LIBRARY=${DESCENT_LIBRARY:-$root/$build_dir/swiftpm/release/libdescent.so}
    export DESCENT_BUILD_DIR="$root/$build_dir"
    rc=0
    python3 -m pytest "$py_tests" -q 2>&1 | tee "$build_dir/pytest.log" || rc=${PIPESTATUS[0]}
    py_count=$(tail -n 1 "$build_dir/pytest.log" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    if [[ $rc -eq 5 ]]; then
        echo "pytest: no Python tests collected in $py_tests (exit 5), not a failure"
    elif [[ $rc -ne 0 ]]; then
        exit "$rc"
    fi
else
    echo "no $py_tests folder: no Python tests yet"
fi

section "python packaging: tests/packaging/run.sh (pip install, pip install -e, pip wheel run without Swift)"
bash tests/packaging/run.sh "$build_dir"
packaging_count=1   # one test: install from source, editable install, the wheel without Swift

# ---- Reliability: sanitizers and fuzzing (docs/reliability.md) --------------------------------
# The sanitized library is built by the Swift toolchain's clang, so the C tests are too.
sanitize_cc=$(dirname "$(command -v swift)")/clang
# ctest_passed LOG: "N" from ctest's "...% tests passed, M tests failed out of N" when M is 0.
ctest_passed() { sed -n 's/^100% tests passed, 0 tests failed out of \([0-9]*\)$/\1/p' "$1"; }

section "sanitizers: C tests under ASan + UBSan ($build_dir-asan)"
# A debug library: it builds in a fraction of the release time and keeps Swift's assertions on.
cmake -S . -B "$build_dir-asan" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$sanitize_cc" \
      -DDESCENT_SANITIZE=address,undefined -DDESCENT_SWIFT_CONFIGURATION=debug
cmake --build "$build_dir-asan" --parallel "$jobs"
ctest --test-dir "$build_dir-asan" --output-on-failure --parallel "$jobs" | tee "$build_dir-asan/ctest.log"
asan_count=$(ctest_passed "$build_dir-asan/ctest.log")
echo "sanitizers (ASan + UBSan): ${asan_count} passed, 0 failed (test_steady_state_alloc, test_oom_cleanup, test_idx_memory not built: see CMakeLists.txt)"

# The thread rules, a batch's shards on 1-4 threads, and ranks of a data-parallel job as threads.
section "sanitizers: test_threads, test_shards, test_allreduce_hook under TSan ($build_dir-tsan)"
cmake -S . -B "$build_dir-tsan" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$sanitize_cc" \
      -DDESCENT_SANITIZE=thread -DDESCENT_SWIFT_CONFIGURATION=debug
cmake --build "$build_dir-tsan" --parallel "$jobs" --target test_threads test_shards test_allreduce_hook
ctest --test-dir "$build_dir-tsan" --output-on-failure -R '^(test_threads|test_shards|test_allreduce_hook)$' \
    | tee "$build_dir-tsan/ctest.log"
tsan_count=$(ctest_passed "$build_dir-tsan/ctest.log")
echo "sanitizers (TSan): ${tsan_count} passed, 0 failed"

fuzz_seconds=${FUZZ_SECONDS:-30}
section "fuzz: scripts/fuzz.sh run $fuzz_seconds (each target)"
fuzz_count=0
if [[ $fuzz_seconds -gt 0 ]]; then
    bash scripts/fuzz.sh run "$fuzz_seconds" | tee "$build_dir/fuzz.log"
    fuzz_count=$(sed -n 's/^fuzz: \([0-9]*\) passed, 0 failed$/\1/p' "$build_dir/fuzz.log")
else
    echo "FUZZ_SECONDS=0: fuzzing skipped"
fi

section "all tests passed"
# One plain closing line for the whole run (swift test printed its own counts above).
echo "tests run: ctest ${ctest_count}, pytest ${py_count:-0}, packaging ${packaging_count}, ctest under ASan+UBSan ${asan_count}," \
     "under TSan ${tsan_count}, fuzz targets ${fuzz_count} (+ swift test, counted above)"
echo "summary: $((ctest_count + ${py_count:-0} + packaging_count + asan_count + tsan_count + fuzz_count)) passed, 0 failed"
