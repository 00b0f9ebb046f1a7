#!/usr/bin/env python3
"""Shares of a training step's time per phase, from a `perf record --call-graph dwarf` of
benchmarks/profile_step (docs/benchmarks.md, section 4).

    perf record -F 2999 --call-graph dwarf,16384 -o step.data profile_step --seconds 6
    perf script -i step.data -F tid,ip,sym,dso | benchmarks/perf_phases.py [--us-per-step 820]

Only samples whose call chain passes through descent_net_train_step count, and those perf could
not unwind that far (see main): the warm-up of OpenBLAS's idle worker thread, the program's
start and its own loop are left out (and counted apart).
Each sample goes to the phase of the innermost frame that names one (RULES, in order), so a
memset that OpenBLAS calls counts as a product, and one that Swift calls as a copy. With
--us-per-step (the median step time of the same run) each share is also given in us per step.
"""
import argparse
import re
import sys

# (phase, test on one frame's symbol and library). The first frame from the leaf up that
# matches decides; a scan's phase depends on its caller (see phase_of).
RULES = [
    ("matrix products (OpenBLAS sgemm)", lambda s, d: "libopenblas" in d or s in ("dk_sgemm", "sgemm_call", "sgemm_part")),
    ("bias: broadcast", lambda s, d: s == "dk_broadcast_rows"),
    ("bias: column sums", lambda s, d: s == "dk_column_sums"),
    ("activations", lambda s, d: re.match(r"dk_activation_", s) is not None),
    ("softmax + cross-entropy", lambda s, d: s == "dk_softmax_cross_entropy"),
    ("batch norm", lambda s, d: s.startswith("dk_batchnorm") or "BatchNormLayer" in s),
    ("finiteness scans", lambda s, d: s in ("dk_find_nonfinite", "scan_slice", "first_nonfinite")),
    ("optimizer update", lambda s, d: re.match(r"(sgd|momentum|nesterov|adagrad|rmsprop|adam|adamw)_(step|prepare)$", s) is not None
        or s in ("dk_run_step", "dk_run_segment", "run_slice", "prepare")),
    ("copies and memsets", lambda s, d: "clearGradientPadding" in s),
    ("OpenMP / threads", lambda s, d: "libomp" in d or "sched_yield" in s),
    ("kernel (page faults, interrupts)", lambda s, d: "kernel.kallsyms" in d),
    ("Swift code and runtime (ARC, calls)", lambda s, d: "libswift" in d or s.startswith("$s") or s.startswith("swift_")),
    ("C boundary and denormal mode", lambda s, d: s.startswith("descent_") or s.startswith("dk_denormals") or s.startswith("dk_fp_mode")),
]
ORDER = [name for name, _ in RULES] + ["copies and memsets (libc, other callers)", "other"]


def phase_of(frames):
    """frames: [(symbol, library)] from the leaf up."""
    for i, (sym, dso) in enumerate(frames):
        for name, test in RULES:
            if test(sym, dso):
                if name == "finiteness scans":
                    callers = " ".join(s for s, _ in frames[i:])
                    return "finiteness scan of x" if "validate" in callers else "finiteness scan of gradients"
                return name
    leaf = frames[0][0] if frames else ""
    if "memset" in leaf or "memmove" in leaf or "memcpy" in leaf:
        return "copies and memsets (libc, other callers)"
    return "other"


def samples(lines):
    frames = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        if not line.startswith("\t") and not line.startswith("        "):
            frames = []   # a sample's header (tid)
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        if m:
            sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)).replace(" (inlined)", "")
            frames.append((sym, m.group(2)))
    if frames:
        yield frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--us-per-step", type=float, default=None)
    args = parser.parse_args()
    counts, outside, truncated = {}, 0, 0
    for frames in samples(sys.stdin):
        # A chain that perf could not unwind to main (it ends in [unknown]: a frame larger than
        # the 16 KiB of stack perf copies, such as the optimizer's scratch) is inside the step:
        # the benchmark's own code is shallow. Such a chain still names its leaf.
        cut = frames[-1] == ("[unknown]", "[unknown]")
        if not any(s == "descent_net_train_step" for s, _ in frames) and not cut:
            outside += 1
            continue
        truncated += cut
        phase = phase_of(frames)
        counts[phase] = counts.get(phase, 0) + 1
    total = sum(counts.values())
    if total == 0:
        sys.exit("perf_phases: no sample inside descent_net_train_step")
    order = ORDER[:]
    i = order.index("finiteness scans")
    order[i:i + 1] = ["finiteness scan of x", "finiteness scan of gradients"]
    print(f"{total} samples in the step ({truncated} of them with a call chain cut short; "
          f"{outside} outside the step, left out)\n")
    head = "| phase | share of step | us per step |" if args.us_per_step else "| phase | share of step |"
    print(head)
    print("|---|---:|---:|" if args.us_per_step else "|---|---:|")
    for name in order:
        n = counts.get(name, 0)
        if n == 0:
            continue
        share = n / total
        row = f"| {name} | {100 * share:.1f} % |"
        if args.us_per_step:
            row += f" {share * args.us_per_step:.1f} |"
        print(row)


if __name__ == "__main__":
    main()
