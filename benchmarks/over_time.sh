#!/usr/bin/env bash
# Samples train_step at one batch size every few seconds for a long window, and prints the
# distribution over the window (docs/benchmarks.md, "Over time").
#
#   benchmarks/over_time.sh [--minutes 120] [--every 75] [--batch 1] [--optimizers adam,sgd]
#                           [--lib PATH/libdescent.so]
#
# Why: the 2-core VM this was tuned on alternates, over minutes, between quiet and busy phases
# (docs/benchmarks.md, "Quiet and busy phases"), and one run of train_step meets only one of
# them. Its medians are robust to noise within a run, not to the phase the run fell into. This
# runs the same benchmark (no batch norm, 2000 iterations at batch 1, 200 at larger batches)
# once per interval and reports, per optimizer, the median, 10th and 90th percentile over all
# samples and how many were under the target (60 us at batch 1, 0.7 ms at larger batches for
# the seed network; issue 3, point 3).
#
# Each sample line: UTC time, 1-minute load average before the sample, then the optimizer's
# time per step in us. Keep the machine otherwise idle: the load average shows when it was not.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
minutes=120
every=75
batch=1
optimizers=adam,sgd
lib_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="${2:?--minutes needs a value}"; shift 2 ;;
        --every) every="${2:?--every needs a value}"; shift 2 ;;
        --batch) batch="${2:?--batch needs a value}"; shift 2 ;;
        --optimizers) optimizers="${2:?--optimizers needs a list}"; shift 2 ;;
        --lib) lib_args=(--lib "${2:?--lib needs a path}"); shift 2 ;;
        *) echo "over_time.sh: unknown option $1 (see the comment at the top)" >&2; exit 2 ;;
    esac
done
for value in "$minutes" "$every" "$batch"; do
    [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "over_time.sh: '$value' is not a positive whole number" >&2; exit 2; }
done

repo="$(cd "$here/.." && pwd)"
SCRATCH="${SCRATCH:-$repo/.build-bench}"
export SCRATCH
"$here/build.sh" "${lib_args[@]}" --no-run
bench="${BENCH_OUT:-$SCRATCH/benchmarks}/train_step"
iterations=$([ "$batch" = 1 ] && echo 2000 || echo 200)
target_us=$([ "$batch" = 1 ] && echo 60 || echo 700)

samples="$(mktemp)"
trap 'rm -f "$samples"' EXIT
IFS=, read -r -a names <<< "$optimizers"
echo "# train_step --batch $batch every ${every} s for ${minutes} min, from $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-8s %6s' "time" "load"
for name in "${names[@]}"; do printf ' %10s' "$name us"; done
echo
end=$(( $(date +%s) + minutes * 60 ))
while [ "$(date +%s)" -lt "$end" ]; do
    started=$(date +%s)
    load="$(cut -d' ' -f1 /proc/loadavg)"
    table="$("$bench" --batch "$batch" --iterations "$iterations" --optimizers "$optimizers" 2>&1)" || {
        echo "over_time.sh: train_step failed:" >&2
        echo "$table" >&2
        exit 1
    }
    line="$(date -u +%H:%M:%S) $load"
    for name in "${names[@]}"; do
        # The table row "| name | no | ms/iter | ..." of the network without batch norm.
        ms="$(awk -F'|' -v n="$name" '$2 ~ "^ *"n" *$" && $3 ~ /^ *no *$/ { gsub(/ /, "", $4); print $4 }' <<< "$table")"
        [ -n "$ms" ] || { echo "over_time.sh: no row for $name in train_step's table" >&2; exit 1; }
        line="$line $(awk -v ms="$ms" 'BEGIN { printf "%.1f", ms * 1000 }')"
    done
    echo "$line" | tee -a "$samples" | awk '{ printf "%-8s %6s", $1, $2; for (i = 3; i <= NF; i++) printf " %10s", $i; print "" }'
    next=$(( started + every ))
    [ "$next" -lt "$end" ] || break
    now=$(date +%s)
    if [ "$next" -gt "$now" ]; then sleep $(( next - now )); fi
done

echo
echo "| optimizer | samples | median us | p10 us | p90 us | under ${target_us} us |"
echo "|---|---:|---:|---:|---:|---:|"
column=3
for name in "${names[@]}"; do
    sort -n -k"$column","$column" "$samples" | awk -v c="$column" -v name="$name" -v target="$target_us" '
        { v[NR] = $c; if ($c < target) under++ }
        function pick(q) { i = int(q * (NR - 1) + 0.5) + 1; return v[i] }
        END { printf "| %s | %d | %.1f | %.1f | %.1f | %d (%.0f %%) |\n", name, NR, pick(0.5), pick(0.1), pick(0.9), under, 100 * under / NR }'
    column=$((column + 1))
done
