#!/usr/bin/env bash
# Runs a command with the Swift toolchain out of reach, as on a machine that never had one:
#   - PATH without the toolchain's bin folder, LD_LIBRARY_PATH and LD_PRELOAD unset;
#   - where possible (root, unshare(1) and mount namespaces available) the toolchain's folder is
#     also covered by an empty tmpfs in a private mount namespace, so not even an absolute RUNPATH
#     or a dlopen by full path could reach it.
# It prints which of the two it managed on stderr, so a log says how strong the check was.
#
#   tests/tools/without-swift.sh COMMAND [ARG...]
#   tests/tools/without-swift.sh --can-hide      exit 0 when the toolchain's folder can be covered
# Environment: DESCENT_SWIFT_ROOT (default: the folder holding usr/bin/swift, found on PATH or in /opt/swift).
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: without-swift.sh COMMAND [ARG...]" >&2; exit 2; }

swift_root=${DESCENT_SWIFT_ROOT:-}
if [[ -z "$swift_root" ]]; then
    swift=$(command -v swift || true)
    [[ -z "$swift" && -x /opt/swift/usr/bin/swift ]] && swift=/opt/swift/usr/bin/swift
    # <root>/usr/bin/swift -> <root>
    if [[ -n "$swift" ]]; then swift_root=$(dirname "$(dirname "$(dirname "$(realpath "$swift")")")"); fi
fi

# PATH without any entry inside the toolchain.
clean_path=
IFS=: read -r -a entries <<<"$PATH"
for entry in "${entries[@]}"; do
    [[ -n "$swift_root" && "$(realpath -m "$entry")" == "$swift_root"/* ]] && continue
    clean_path=${clean_path:+$clean_path:}$entry
done

can_hide() {
    [[ -n "$swift_root" && "$swift_root" != / && "$swift_root" != /usr && $(id -u) -eq 0 ]] &&
        command -v unshare >/dev/null && unshare --mount --propagation private true 2>/dev/null
}
if [[ "$1" == --can-hide ]]; then
    if can_hide; then exit 0; else exit 1; fi
fi

run=(env -u LD_LIBRARY_PATH -u LD_PRELOAD PATH="$clean_path" "$@")
# Covering the toolchain only makes sense when it is a folder of its own (not /usr, not /).
if can_hide; then
    echo "without-swift: PATH without $swift_root, $swift_root covered by an empty tmpfs" >&2
    exec unshare --mount --propagation private \
        bash -c 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"' bash "$swift_root" "${run[@]}"
fi
echo "without-swift: PATH without ${swift_root:-the toolchain} (it cannot be hidden here: not root or no mount namespaces)" >&2
exec "${run[@]}"
