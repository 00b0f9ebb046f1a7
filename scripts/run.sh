#!/usr/bin/env bash
# The README's main command: installs what is needed, builds Descent, and runs the main job.
#
#   bash scripts/run.sh
#
# For now the main job is examples/c/optimizer_paths.c: every optimizer (and the Lion plugin)
# on the book's f(x,y) = x^2/20 + y^2 from (-7, 2), printing the paths.
# Environment: DESCENT_BUILD_DIR (default build), DESCENT_SKIP_DEPS=1.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${DESCENT_BUILD_DIR:-build}
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

if [[ "${DESCENT_SKIP_DEPS:-0}" != 1 ]]; then
    bash scripts/install-deps.sh
fi
echo "== building Descent (CMake + SwiftPM, release) in $build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)"

echo "== main job: $build_dir/examples/optimizer_paths"
"$build_dir/examples/optimizer_paths" "$build_dir/plugins/lion.so"
