#!/usr/bin/env bash
# The README's main command: installs what is needed, builds Descent, installs the Python
# package and runs the main job: the lab's optimizer comparison on Fashion-MNIST (the book's
# figure 6-9 settings, plus rmsprop, nesterov, adamw and the Lion plugin) and the optimizer
# paths on f(x,y) = x^2/20 + y^2 (figure 6-8). Plots and CSV files land in lab-out/.
#
#   bash scripts/run.sh [extra descent-lab options, e.g. --data DIR or --seed 2]
#
# Environment: DESCENT_BUILD_DIR (default build), DESCENT_OUT (default lab-out),
# DESCENT_SKIP_DEPS=1 (skip scripts/install-deps.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${DESCENT_BUILD_DIR:-build}
out=${DESCENT_OUT:-lab-out}
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi

if [[ "${DESCENT_SKIP_DEPS:-0}" != 1 ]]; then
    bash scripts/install-deps.sh
fi

echo "== building Descent (CMake + SwiftPM, release) in $build_dir"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" --parallel "$(nproc)"

echo "== installing the Python package (descent, descent-lab): pip builds libdescent.so into it"
# The package's build (scikit-build-core -> CMake -> SwiftPM) shares this build's SwiftPM folder,
# so it compiles nothing again and only copies the library into the package.
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    -C cmake.define.DESCENT_SWIFTPM_SCRATCH="$(cd "$build_dir" && pwd)/swiftpm" ./bindings/python

lab=(python3 -m descent.lab)
command -v descent-lab >/dev/null 2>&1 && lab=(descent-lab)
echo "== main job: ${lab[*]} optimizers, then paths (output: $out/)"
"${lab[@]}" optimizers --out "$out" --plugin "$build_dir/plugins/lion.so" --optimizers sgd,momentum,adagrad,adam,rmsprop,nesterov,adamw,lion "$@"
"${lab[@]}" paths --out "$out" --plugin "$build_dir/plugins/lion.so" "$@"
echo "== done: plots and numbers are in $root/$out/ (optimizers.png, paths.png, *.csv)"
