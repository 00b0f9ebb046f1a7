#!/usr/bin/env bash
# Installs what is needed and runs every test: Swift tests, the C tests and header/install
# checks under ctest, and the Python binding's tests. The README's test command; .ci/run runs it.
#
#   bash scripts/test.sh
#
# Environment: DESCENT_BUILD_DIR (default build), DESCENT_SKIP_DEPS=1 (skip scripts/install-deps.sh),
# JOBS (parallel jobs, default: the number of cores).
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

section "all tests passed"
# One plain closing line for the whole run (swift test printed its own counts above).
echo "tests run: ctest ${ctest_count}, pytest ${py_count:-0} (+ swift test, counted above)"
echo "summary: $((ctest_count + ${py_count:-0})) passed, 0 failed"
