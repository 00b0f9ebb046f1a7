#!/usr/bin/env bash
# The Python packaging test (scripts/test.sh runs it). Each step uses a fresh venv and runs
# tests/packaging/smoke.py from a folder outside the repository:
#   1. pip install ./bindings/python     builds libdescent.so through CMake/SwiftPM into the package
#   2. pip install -e ./bindings/python  the same, editable
#   3. pip wheel ./bindings/python       a py3-none-linux_<arch> wheel whose library has the Swift
#                                        runtime linked in (readelf: no libswift*, no RUNPATH into it)
#   4. that wheel in a fresh venv        trains a small network with the toolchain out of reach
#                                        (tests/tools/without-swift.sh; ldd shows no Swift library)
#   5. a build with no Swift toolchain fails with a message saying what to install
#   6. the wheel's import without libomp.so.5 names the Debian package to install
#
#   tests/packaging/run.sh [BUILD_DIR]
# BUILD_DIR: a configured and built CMake build of the repository whose SwiftPM scratch folder
# (BUILD_DIR/swiftpm) the package builds share, so that nothing is compiled twice; without it
# every step's build compiles the library in bindings/python/build. Builds use
# --no-build-isolation: scikit-build-core comes from scripts/install-deps.sh. The venvs see the
# system's site-packages (numpy) so that nothing is downloaded, and have no pip of their own
# (ensurepip takes 5-10 s a venv here): the system's pip installs into them with --python.
# KEEP=1 keeps the temporary folder.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
without_swift=$root/tests/tools/without-swift.sh
python=${PYTHON:-python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/descent-packaging-test.XXXXXX")
cleanup() {
    local rc=$?
    if [[ $rc -eq 0 && "${KEEP:-0}" != 1 ]]; then rm -rf "$tmp"; else echo "packaging test: kept $tmp"; fi
}
trap cleanup EXIT
step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }
die() { echo "packaging test: FAILED: $*" >&2; exit 1; }

version=$(sed -n 's/^public let descentVersion = "\([0-9.]*\)".*/\1/p' "$root/Sources/Descent/Version.swift")
[[ -n "$version" ]] || die "no version in Sources/Descent/Version.swift"
pip_build=(--disable-pip-version-check --no-build-isolation)
if [[ -n "${1:-}" ]]; then
    scratch=$(cd "$1" && pwd)/swiftpm
    [[ -d "$scratch" ]] || die "$1 is not a built CMake build of Descent (no $scratch)"
    pip_build+=(-C "cmake.define.DESCENT_SWIFTPM_SCRATCH=$scratch")
fi
export PIP_ROOT_USER_ACTION=ignore
# What is tested is the library each install put in its package: scripts/test.sh exports
# DESCENT_LIBRARY (the build's library, for pytest), which would take precedence over it.
unset DESCENT_LIBRARY

new_venv() { "$python" -m venv --without-pip --system-site-packages "$tmp/$1"; }
# Install descent into the venv itself even when the system's site-packages already has one (the
# README's scripts/run.sh puts it there), which pip would otherwise take as already satisfied.
fresh=(--ignore-installed --no-deps)
pip_into() { local venv=$tmp/$1; shift; "$python" -m pip --python "$venv/bin/python" "$@"; }
smoke() {   # smoke VENV [--train]: from a folder outside the repository
    local venv=$tmp/$1
    shift
    (cd "$tmp" && "$venv/bin/python" "$here/smoke.py" "$version" "$venv" "$@")
}

step "1. pip install ./bindings/python (fresh venv)"
new_venv install
pip_into install install "${fresh[@]}" "${pip_build[@]}" "$root/bindings/python"
smoke install

step "2. pip install -e ./bindings/python (fresh venv)"
new_venv editable
pip_into editable install "${fresh[@]}" "${pip_build[@]}" -e "$root/bindings/python"
smoke editable

step "3. pip wheel ./bindings/python"
"$python" -m pip wheel "${pip_build[@]}" --no-deps -w "$tmp/dist" "$root/bindings/python"
wheel=$tmp/dist/descent-$version-py3-none-linux_$(uname -m).whl
[[ -f "$wheel" ]] || die "no $(basename "$wheel") in $tmp/dist: $(ls "$tmp/dist")"
echo "  $(basename "$wheel"): $(($(stat -c %s "$wheel") / 1024)) KiB"
"$python" - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
for required in ("descent/__init__.py", "descent/_lib/libdescent.so", "descent/lab/__main__.py"):
    if required not in names:
        sys.exit(f"packaging test: FAILED: the wheel has no {required}")
print(f"  {len(names)} files, descent/_lib/libdescent.so among them")
PY
library=$tmp/unpacked/descent/_lib/libdescent.so
dynamic=$(readelf -d "$library")
echo "$dynamic" | grep -E 'NEEDED|RUNPATH|RPATH|SONAME' | sed 's/^ */  /'
if echo "$dynamic" | grep NEEDED | grep -q libswift; then die "the wheel's library needs a Swift runtime library"; fi
if echo "$dynamic" | grep -E 'RUNPATH|RPATH' | grep -q /; then die "the wheel's library has a RUNPATH with an absolute path"; fi
echo "  libdescent.so: $(($(stat -c %s "$library") / 1024)) KiB"

step "4. the wheel in a fresh venv, with the Swift toolchain out of reach"
new_venv wheel
pip_into wheel install --disable-pip-version-check "${fresh[@]}" "$wheel"
installed=$("$tmp/wheel/bin/python" -c 'import descent, sys; sys.stdout.write(descent.library_path)')
deps=$("$without_swift" ldd "$installed")
echo "$deps" | sed 's/^\s*/  /'
if echo "$deps" | grep -q 'not found'; then die "the installed library has unresolved dependencies"; fi
if echo "$deps" | grep -qE 'libswift|/opt/swift'; then die "the installed library resolves a Swift runtime library"; fi
(cd "$tmp" && "$without_swift" "$tmp/wheel/bin/python" "$here/smoke.py" "$version" "$tmp/wheel" --train)

step "5. a build without the Swift toolchain says what to install"
if "$without_swift" --can-hide; then
    out=$("$without_swift" "$python" -m pip wheel "${pip_build[@]}" --no-deps -C "build-dir=$tmp/build-noswift" \
          -w "$tmp/dist-noswift" "$root/bindings/python" 2>&1) && die "pip wheel succeeded without a Swift toolchain"
    grep -q "Descent needs the Swift 6.3 toolchain" <<<"$out" || { echo "$out" >&2; die "the failure does not name the Swift toolchain"; }
    echo "  $(grep -m1 -o "Descent needs the Swift 6.3 toolchain[^.]*" <<<"$out")"
else
    echo "  skipped: the toolchain cannot be hidden here (needs root and mount namespaces)"
fi

step "6. a missing libomp.so.5 is named with the package to install"
# Debian's libomp.so.5 is a link into /usr/lib/llvm-<N>/lib: covering that folder (in a private
# mount namespace) takes libomp away from this one process and nothing else.
omp=$(realpath "$(ldd "$installed" | awk '$1 == "libomp.so.5" { print $3 }')")
omp_dir=$(dirname "$omp")
if [[ $(id -u) -eq 0 && "$omp_dir" == /usr/lib/llvm-* ]] && unshare --mount --propagation private true 2>/dev/null; then
    out=$(cd "$tmp" && unshare --mount --propagation private bash -c 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"' \
          bash "$omp_dir" "$tmp/wheel/bin/python" -c 'import descent' 2>&1) && die "import descent succeeded without libomp.so.5"
    grep -q "needs libomp.so.5, which is not installed: install Debian's libomp5" <<<"$out" ||
        { echo "$out" >&2; die "the failure does not name libomp5"; }
    echo "  $(tail -n 1 <<<"$out" | cut -c1-160)..."
else
    echo "  skipped: libomp.so.5 ($omp) cannot be hidden from one process here"
fi

echo
echo "packaging test: pip install, pip install -e and the wheel (run without Swift) all passed"
