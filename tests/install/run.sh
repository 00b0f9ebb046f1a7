#!/usr/bin/env bash
# The install test (ctest: install_consumers). Installs a configured and built Descent build tree
# into a temporary prefix, checks what landed there and that the installed library loads, then
# builds tests/install/consumer.c out of tree against that prefix twice and runs both:
#   1. cc consumer.c $(pkg-config --cflags --libs descent)      (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig)
#   2. tests/install/CMakeLists.txt: find_package(Descent REQUIRED) (CMAKE_PREFIX_PATH=<prefix>)
# The installed library must deploy like a C library: libdescent.so.X.Y.Z (the version of
# Sources/Descent/Version.swift) with SONAME libdescent.so.X and the links libdescent.so.X and
# libdescent.so, no RUNPATH into the Swift toolchain, no Swift runtime among its dependencies, and
# the consumers run with the toolchain out of reach (tests/tools/without-swift.sh).
#
#   tests/install/run.sh BUILD_DIR [LIBDIR [INCLUDEDIR]]    (LIBDIR/INCLUDEDIR relative to the prefix)
# Environment: CMAKE_COMMAND (default cmake), DESCENT_CMAKE_GENERATOR (default Ninja if found),
# CC (default cc), KEEP=1 keeps the temporary folders.
set -euo pipefail

build_dir=$(cd "${1:?usage: run.sh BUILD_DIR [LIBDIR [INCLUDEDIR]]}" && pwd)
libdir_rel=${2:-lib}
includedir_rel=${3:-include}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmake=${CMAKE_COMMAND:-cmake}
cc=${CC:-cc}
if [[ -n "${DESCENT_CMAKE_GENERATOR:-}" ]]; then
    generator=$DESCENT_CMAKE_GENERATOR
elif command -v ninja >/dev/null; then
    generator=Ninja
else
    generator="Unix Makefiles"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/descent-install-test.XXXXXX")
prefix=$tmp/prefix
work=$tmp/work
mkdir -p "$work"
cleanup() {
    local rc=$?
    if [[ $rc -eq 0 && "${KEEP:-0}" != 1 ]]; then rm -rf "$tmp"; else echo "install test: kept $tmp"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
die() { echo "install test: FAILED: $*" >&2; exit 1; }

without_swift=$here/../tools/without-swift.sh
version=$(sed -n 's/^public let descentVersion = "\([0-9.]*\)".*/\1/p' "$here/../../Sources/Descent/Version.swift")
[[ -n "$version" ]] || die "no version in Sources/Descent/Version.swift"
soname=libdescent.so.${version%%.*}

step "cmake --install $build_dir --prefix $prefix --strip"
"$cmake" --install "$build_dir" --prefix "$prefix" --strip

libdir=$prefix/$libdir_rel
includedir=$prefix/$includedir_rel
step "installed files"
for f in "$libdir/libdescent.so.$version" "$includedir/descent.h" "$includedir/descent_plugin.h" "$includedir/descent_mpi.h" \
         "$libdir/pkgconfig/descent.pc" "$libdir/cmake/Descent/DescentConfig.cmake" \
         "$libdir/cmake/Descent/DescentConfigVersion.cmake"; do
    [[ -f "$f" ]] || die "missing $f"
    echo "  ${f#$prefix/}"
done
plugin_dir=$libdir/descent/plugins
plugins=()
if [[ -d "$plugin_dir" ]]; then
    shopt -s nullglob
    plugins=("$plugin_dir"/*.so)
    shopt -u nullglob
fi
for p in "${plugins[@]}"; do echo "  ${p#$prefix/}"; done

step "libdescent.so.$version: SONAME $soname, links, no RUNPATH into the Swift toolchain"
library=$libdir/libdescent.so.$version
dynamic=$(readelf -d "$library")
echo "$dynamic" | grep -E 'SONAME|RUNPATH|RPATH|NEEDED' | sed 's/^ */  /'
[[ "$(readlink "$libdir/$soname")" == "libdescent.so.$version" ]] || die "$libdir/$soname is not a link to libdescent.so.$version"
[[ "$(readlink "$libdir/libdescent.so")" == "$soname" ]] || die "$libdir/libdescent.so is not a link to $soname"
[[ "$(echo "$dynamic" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" == "$soname" ]] || die "the SONAME of $library is not $soname"
runpath=$(echo "$dynamic" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')
[[ -z "$runpath" || "$runpath" == '$ORIGIN' ]] || die "$library has the RUNPATH '$runpath' (only \$ORIGIN or none is allowed)"
if echo "$dynamic" | grep -E 'NEEDED' | grep -q 'libswift'; then die "$library needs a Swift runtime library"; fi
size=$(stat -c %s "$library")
echo "  $((size / 1024)) KiB (stripped)"
deps=$("$without_swift" ldd "$library")
if echo "$deps" | grep -q 'not found'; then echo "$deps" >&2; die "libdescent.so has unresolved dependencies"; fi
if echo "$deps" | grep -qE 'libswift|/opt/swift|swift/linux'; then echo "$deps" >&2; die "libdescent.so resolves a Swift runtime library"; fi
for p in "${plugins[@]}"; do
    if readelf -d "$p" | grep -q 'libdescent'; then die "plugin $p links libdescent"; fi
done

# Runs a consumer, checks it resolved libdescent.so from the prefix, and runs it with the plugins.
# Then checks the library finds the installed plugins by itself (descent/plugins next to the
# installed libdescent.so), and names that folder when a name is unknown.
run_consumer() {
    local exe=$1
    local resolved
    resolved=$(ldd "$exe" | awk -v so="$soname" '$1 == so { print $3 }')
    [[ "$resolved" == "$libdir/$soname" ]] || die "$exe loads $soname from '$resolved', not $libdir"
    "$without_swift" "$exe"
    if [[ ${#plugins[@]} -gt 0 ]]; then "$without_swift" "$exe" "$plugin_dir"; fi

    local installed out rc=0
    installed=$(realpath -m "$plugin_dir")
    if [[ -f "$plugin_dir/lion.so" ]]; then
        out=$(env -u DESCENT_PLUGIN_PATH "$exe" --find lion) || die "lion is not found without DESCENT_PLUGIN_PATH: $out"
        echo "  $out"
        [[ "$out" == "found lion; plugin folders searched: $installed" ]] || die "unexpected: $out"
    fi
    out=$(env -u DESCENT_PLUGIN_PATH "$exe" --find adabelief) || rc=$?
    [[ $rc -eq 3 ]] || die "an unknown optimizer gave exit $rc, not 3: $out"
    echo "  $out"
    [[ "$out" == *"; plugin folders searched: $installed" ]] || die "the NotFound message does not name $installed: $out"
}

step "consumer built with pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "  descent $(pkg-config --modversion descent): $(pkg-config --cflags --libs descent)"
[[ "$(pkg-config --variable=prefix descent)" == "$prefix" ]] || die "descent.pc names prefix $(pkg-config --variable=prefix descent), not $prefix"
# shellcheck disable=SC2046  # pkg-config's output is meant to be split into words
"$cc" -std=c11 -Wall -Wextra -Werror "$here/consumer.c" -o "$work/consumer-pkgconfig" \
    $(pkg-config --cflags --libs descent) -lm -Wl,-rpath,"$libdir"
run_consumer "$work/consumer-pkgconfig"

step "consumer built with CMake find_package(Descent)"
"$cmake" -S "$here" -B "$work/cmake-build" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
"$cmake" --build "$work/cmake-build"
found_plugin_dir=$(cat "$work/cmake-build/descent_plugin_dir.txt")
[[ "$found_plugin_dir" == "$plugin_dir" ]] || die "find_package found Descent_PLUGIN_DIR=$found_plugin_dir, expected $plugin_dir"
run_consumer "$work/cmake-build/consumer"

echo
echo "install test: pkg-config and find_package consumers built and ran against $prefix"
