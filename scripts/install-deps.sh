#!/usr/bin/env bash
# Installs what building and testing Descent needs on Debian bookworm (run as root; idempotent:
# a second run only checks and prints what is already there).
#
#   Debian:  libomp-dev (OpenMP for the C kernels; its libarcher.so lets TSan follow OpenMP),
#            libopenblas-dev (BLAS), zlib1g-dev (.gz IDX; the IDX fuzz target gzips with it too),
#            cmake, ninja-build, pkg-config, gcc, g++, libc6-dev (C tests, header checks, install test),
#            binutils (readelf), dataset-fashion-mnist (the lab's default data),
#            libopenmpi-dev and openmpi-bin (MPI: include/descent_mpi.h, examples/mpi and tests/mpi,
#            which mpirun runs; libdescent.so itself does not link MPI)
#   PyPI:    numpy pytest matplotlib tqdm safetensors wheel (into the python3 on PATH, e.g. pyenv's;
#            wheel lets pip build the binding offline with --no-build-isolation), mpi4py (for
#            descent.distributed; built against Open MPI's mpicc, so the Debian part runs first)
#
# The Swift toolchain (/opt/swift) is not installable from Debian or PyPI: it is only checked,
# together with what the sanitizer builds and fuzz targets take from it (clang's ASan, UBSan,
# TSan and libFuzzer runtimes, lld). TSan's OpenMP support (libarcher.so) comes with libomp-dev.
# Environment: DESCENT_SKIP_APT=1 / DESCENT_SKIP_PIP=1 skip a part.
set -euo pipefail

APT_PACKAGES=(libomp-dev libopenblas-dev zlib1g-dev cmake ninja-build pkg-config gcc g++ libc6-dev
              binutils dataset-fashion-mnist libopenmpi-dev openmpi-bin)
PIP_PACKAGES=(numpy pytest matplotlib tqdm safetensors wheel mpi4py)
# Python packaging: scikit-build-core is the binding's build backend (bindings/python/pyproject.toml);
# installed here so that pip builds it offline with --no-build-isolation (scripts/run.sh,
# tests/packaging/run.sh). The packaging test's venvs need the venv module with ensurepip (below).
PIP_PACKAGES+=(scikit-build-core)

log() { echo "install-deps: $*"; }

if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

# --- Debian packages ------------------------------------------------------------------------
if [[ "${DESCENT_SKIP_APT:-0}" != 1 ]]; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then :; else
            missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "Debian packages already installed: ${APT_PACKAGES[*]}"
    else
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
    fi
fi

# --- Swift toolchain (checked only) ---------------------------------------------------------
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
if command -v swift >/dev/null 2>&1; then
    log "swift: $(swift --version 2>/dev/null | head -n 1)"
else
    log "ERROR: no Swift toolchain (expected Swift 6.3 at /opt/swift/usr/bin or on PATH)" >&2
    exit 1
fi
toolchain=$(dirname "$(command -v swift)")
runtimes=$("$toolchain/clang" -print-resource-dir)/lib/linux
for f in "$toolchain/ld.lld" "$runtimes"/libclang_rt.{asan,ubsan_standalone,tsan,fuzzer,fuzzer_no_main}-x86_64.a; do
    if [[ ! -e $f ]]; then
        log "ERROR: the Swift toolchain lacks $f (needed by the sanitizer builds and fuzz targets)" >&2
        exit 1
    fi
done
log "toolchain sanitizer runtimes, libFuzzer and lld: present in $runtimes"

# --- Python packages --------------------------------------------------------------------------
if [[ "${DESCENT_SKIP_PIP:-0}" != 1 ]]; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        log "no python3 with pip on PATH: installing Debian's python3 python3-pip"
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends python3 python3-pip
    fi
    missing=()
    for p in "${PIP_PACKAGES[@]}"; do
        if python3 -c 'import sys, importlib.metadata as m; m.version(sys.argv[1])' "$p" >/dev/null 2>&1; then :; else
            missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "Python packages already installed in $(command -v python3): ${PIP_PACKAGES[*]}"
    else
        log "installing Python packages into $(command -v python3): ${missing[*]}"
        pip_args=(install --disable-pip-version-check --no-input)
        # Debian's own python3 refuses pip installs (PEP 668); pyenv's and venvs do not.
        if python3 -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) and sys.prefix == sys.base_prefix else 1)'; then
            pip_args+=(--break-system-packages)
        fi
        PIP_ROOT_USER_ACTION=ignore python3 -m pip "${pip_args[@]}" "${missing[@]}"
    fi
fi

# --- Python venvs with pip (tests/packaging/run.sh) -------------------------------------------
# Debian's python3 ships venv's ensurepip separately (python3-venv); pyenv's and others have it.
if [[ "${DESCENT_SKIP_APT:-0}" != 1 ]] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "python3 has no ensurepip (venvs without pip): installing Debian's python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends python3-venv
fi

log "done"
