#!/usr/bin/env python3
"""Python overhead of descent.Network.train_step against the same step called from C.

    DESCENT_LIBRARY=.../libdescent.so python3 benchmarks/python_overhead.py [--blocks 31]
        [--iterations N] [--batches 1,128] [--threads N] [--no-c]

Network: the book's seed network, 784-100-100-100-100-10, ReLU, He, sgd; one fixed synthetic batch
(timing does not depend on the values). Three ways to make the same call are timed, interleaved
block by block so that machine noise hits all of them alike; each figure is the median over blocks
of (block time / calls):

  C loop      a C loop calling descent_net_train_step (compiled here with cc into a tiny .so; it
              gets the function's address from the loaded library, so it runs exactly the code the
              binding runs): the step itself, with no Python at all.
  ctypes raw  Python calling the ctypes function with every argument prebuilt (handle, data
              addresses, batch, loss pointer): the minimum any Python caller pays.
  train_step  net.train_step(x, y): the binding, with its argument checks, returning the loss.

Table 1 times the real step three ways; train_step - C loop is the overhead, but on a busy
machine the step's own run-to-run noise (several us at batch 1, tens at batch 128) can exceed it.
Table 2 therefore times the overhead alone: the same three ways calling a no-op C function with
the step's signature, swapped in for descent_net_train_step (the binding's code is unchanged), so
overhead = train_step - C loop there is exact to a few ns; its share is taken of table 1's C step.
Targets (issue 4): under 5 us per call, and under 10 % at batch 128.

The repository's binding is used (a descent on PYTHONPATH takes precedence, to compare versions).
Without a C compiler the C loop and table 2 are skipped and raw ctypes is the baseline.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# After PYTHONPATH's entries (sys.path[0] is this script's folder), before site-packages.
_pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
sys.path.insert(1 + len(_pythonpath), str(ROOT / "bindings" / "python"))
import descent  # noqa: E402
from descent._lib import lib  # noqa: E402

C_LOOP = r"""
#include <stdint.h>
#include <time.h>
typedef int32_t (*step_fn)(void *, const float *, const int32_t *, int64_t, float *);
/* Calls step(net, x, labels, batch, &loss) `iterations` times; returns the seconds taken, or -status. */
double timed_steps(void *fn, void *net, const float *x, const int32_t *labels, int64_t batch,
                   int64_t iterations) {
    step_fn step = (step_fn)fn;
    float loss;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int64_t i = 0; i < iterations; i++) {
        int32_t status = step(net, x, labels, batch, &loss);
        if (status != 0) return -(double)status;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}
/* Same signature as descent_net_train_step, does nothing: swapped in to time the calling alone. */
int32_t stub_step(void *net, const float *x, const int32_t *labels, int64_t batch, float *loss) {
    (void)net; (void)x; (void)labels; (void)batch;
    *loss = 1.0f;
    return 0;
}
"""


def build_c_loop(folder: Path):
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not compiler:
        return None
    source, out = folder / "loop.c", folder / "loop.so"
    source.write_text(C_LOOP)
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", str(source), "-o", str(out)], check=True)
    loop = ctypes.CDLL(str(out))
    loop.timed_steps.restype = ctypes.c_double
    loop.timed_steps.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64, ctypes.c_int64]
    real = lib.descent_net_train_step
    loop.stub_step.restype, loop.stub_step.argtypes = real.restype, real.argtypes
    return loop


class _Swapped:
    """Within the block, the binding calls `stub` instead of descent_net_train_step."""

    def __init__(self, stub):
        import descent.network as network
        self.network, self.stub = network, stub

    def __enter__(self):
        self.saved_lib = lib.descent_net_train_step
        self.saved_module = getattr(self.network, "_train_step", None)
        lib.descent_net_train_step = self.stub  # bindings that look the function up on each call
        if self.saved_module is not None:
            self.network._train_step = self.stub  # bindings that bound it at import
        return self

    def __exit__(self, *exc):
        lib.descent_net_train_step = self.saved_lib
        if self.saved_module is not None:
            self.network._train_step = self.saved_module


def measure(batch: int, blocks: int, iterations: int, loop) -> dict:
    """Medians (us per call) of each way of calling, for the real step and for the no-op stub."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch).astype(np.int32)
    net = descent.Network(sizes=[784, 100, 100, 100, 100, 10], activation="relu", init="he", seed=1)
    net.set_optimizer("sgd", lr=1e-4)  # small: thousands of steps on one batch stay finite

    handle = net._live()  # the C handle (a c_void_p)
    x_addr, y_addr = x.ctypes.data, y.ctypes.data
    loss = ctypes.c_float()
    loss_ref = ctypes.byref(loss)

    def ways(step, n):
        fn_addr = ctypes.cast(step, ctypes.c_void_p).value

        def run_c() -> float:
            seconds = loop.timed_steps(fn_addr, handle, x_addr, y_addr, batch, n)
            if seconds < 0:
                descent.errors.check(int(-seconds))
            return seconds

        def run_raw() -> float:
            t0 = time.perf_counter()
            for _ in range(n):
                step(handle, x_addr, y_addr, batch, loss_ref)
            return time.perf_counter() - t0

        def run_binding() -> float:
            train_step = net.train_step
            t0 = time.perf_counter()
            for _ in range(n):
                train_step(x, y)
            return time.perf_counter() - t0

        runs = {"C loop": run_c, "ctypes raw": run_raw, "train_step": run_binding}
        if loop is None:
            del runs["C loop"]
        return runs

    def timed(runs, n, swap=None) -> dict:
        times = {name: [] for name in runs}
        for block in range(blocks + 1):  # block 0 warms up (buffers for this batch, caches)
            for name, fn in runs.items():
                if swap is not None and name == "train_step":
                    with swap:
                        t = fn()
                else:
                    t = fn()
                if block:
                    times[name].append(t / n)
        return {name: statistics.median(v) * 1e6 for name, v in times.items()}

    result = {"step": timed(ways(lib.descent_net_train_step, iterations), iterations)}
    if not np.isfinite(net.evaluate(x, y)[0]):
        raise RuntimeError("the benchmark network diverged")
    if loop is not None:
        stub = loop.stub_step
        result["stub"] = timed(ways(stub, 20000), 20000, swap=_Swapped(stub))
    net.close()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,128", help="comma-separated batch sizes (default 1,128)")
    parser.add_argument("--blocks", type=int, default=31, help="timed blocks per method (default 31)")
    parser.add_argument("--iterations", type=int, default=0,
                        help="calls per block (default: 400 at batch 1, 40 at batch 128)")
    parser.add_argument("--threads", type=int, default=0, help="library threads (default: the library's)")
    parser.add_argument("--no-c", action="store_true", help="skip the C loop (raw ctypes becomes the baseline)")
    args = parser.parse_args(argv)

    if args.threads:
        descent.set_num_threads(args.threads)
    print(f"Descent {descent.__version__} ({descent.library_path}), {descent.get_num_threads()} threads, "
          f"Python {sys.version.split()[0]}, numpy {np.__version__}")
    print("network 784-100-100-100-100-10 ReLU He, sgd; medians over "
          f"{args.blocks} interleaved blocks (us per call)\n")
    with tempfile.TemporaryDirectory() as tmp:
        loop = None if args.no_c else build_c_loop(Path(tmp))
        if loop is None:
            print("(no C compiler or --no-c: raw ctypes is the baseline, no isolated overhead)\n")
        results = {}
        for batch in [int(b) for b in args.batches.split(",")]:
            iterations = args.iterations or (400 if batch <= 8 else 40)
            results[batch] = measure(batch, args.blocks, iterations, loop)

    print("1. End to end: the real step, three ways (us per call)")
    header = (f"{'batch':>5} | {'C loop':>9} | {'ctypes raw':>10} | {'train_step':>10} | {'train_step - C':>14} | "
              f"{'train_step - raw':>16}")
    print(header)
    print("-" * len(header))
    for batch, r in results.items():
        s = r["step"]
        base = s.get("C loop", s["ctypes raw"])
        diff = s["train_step"] - base
        c_text = f"{s['C loop']:9.2f}" if "C loop" in s else f"{'-':>9}"
        print(f"{batch:>5} | {c_text} | {s['ctypes raw']:10.2f} | {s['train_step']:10.2f} | "
              f"{diff:8.2f} {100 * diff / base:4.1f}% | {s['train_step'] - s['ctypes raw']:16.2f}")
    print("   (ctypes raw - C loop is paid by any Python caller: the call itself, and the step running\n"
          "   slower when interpreter work between calls has evicted some of its data from the caches;\n"
          "   train_step - raw is the binding's own code.)")
    if loop is None:
        return 0

    print("\n2. The overhead alone: the same three ways calling a no-op C function with the step's\n"
          "   signature (swapped in for descent_net_train_step), so the step's own run-to-run noise\n"
          "   (several us on a busy machine) does not hide it. overhead = train_step - C loop;\n"
          "   % is of the real C step above.")
    header = (f"{'batch':>5} | {'C loop':>9} | {'ctypes raw':>10} | {'train_step':>10} | {'overhead':>8} | "
              f"{'% of C step':>11} | target")
    print(header)
    print("-" * len(header))
    ok = True
    for batch, r in results.items():
        s, st = r["step"], r["stub"]
        over = st["train_step"] - st["C loop"]
        share = 100 * over / s["C loop"]
        met = over < 5.0 and (batch < 128 or share < 10.0)
        ok &= met
        print(f"{batch:>5} | {st['C loop']:9.3f} | {st['ctypes raw']:10.3f} | {st['train_step']:10.3f} | "
              f"{over:8.3f} | {share:10.2f}% | {'met' if met else 'MISSED'}")
    print("\ntargets (issue 4): overhead under 5 us per call, and under 10 % of the step at batch 128: "
          + ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
