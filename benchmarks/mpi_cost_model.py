#!/usr/bin/env python3
"""mpi_cost_model.py -- the cost model of docs/distributed.md: what the gradient reduction of
synchronous data parallelism costs per step on N machines, and how many rows per rank make it
small, printed as the document's Markdown tables.

    python3 benchmarks/mpi_cost_model.py [--floats 109872] [--alpha-us 10] [--step-us 400] [--rows 64]

The model: each rank sends and receives 2(N-1)/N of the gradient bytes (a ring all-reduce: a
reduce-scatter then an all-gather, each moving (N-1)/N of the data), charged at the link's full
bandwidth, plus 2 log2(N) message latencies alpha (a halving-doubling schedule's step count; a
pure ring pays 2(N-1), which matters only for small messages). One rank per machine; a rank's
compute is --step-us for --rows rows (the measured one-thread step of the seed network), in
proportion for other row counts, and nothing overlaps it.
"""
from __future__ import annotations

import argparse
import math

LINKS = {"10 GbE": 10e9, "25 GbE": 25e9, "100 GbE": 100e9}   # bits per second
RANKS = [2, 4, 8, 16, 32, 64]


def reduce_us(n: int, gradient_bytes: float, bits_per_second: float, alpha_us: float) -> float:
    """One all-reduce of the gradient over n ranks, in microseconds."""
    moved = 2 * (n - 1) / n * gradient_bytes
    return moved * 8 / bits_per_second * 1e6 + 2 * math.log2(n) * alpha_us


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--floats", type=int, default=109_872,
                   help="gradient floats per step (the seed network's arena, padding included)")
    p.add_argument("--alpha-us", type=float, default=10.0, help="latency per message, microseconds")
    p.add_argument("--step-us", type=float, default=400.0, help="one rank's step of --rows rows, microseconds")
    p.add_argument("--rows", type=int, default=64, help="rows per rank of the scaling table")
    args = p.parse_args()
    size = 4.0 * args.floats
    compute = args.step_us
    per_row = compute / args.rows

    print(f"gradient: {args.floats} floats = {size / 1e3:.1f} KB; compute: {compute:.0f} us per step of "
          f"{args.rows} rows ({per_row:.2f} us per row); alpha {args.alpha_us:g} us\n")
    print("| N | bytes per rank | " + " | ".join(f"{link}: reduction / step / speed-up" for link in LINKS) + " |")
    print("|---:|---:|" + "---|" * len(LINKS))
    for n in RANKS:
        cells = []
        for bits in LINKS.values():
            t = reduce_us(n, size, bits, args.alpha_us)
            cells.append(f"{t:.0f} µs / {compute + t:.0f} / {n * compute / (compute + t):.1f}×")
        print(f"| {n} | {2 * (n - 1) / n * size / 1e3:.0f} KB | " + " | ".join(cells) + " |")

    print("\nrows per rank at which the compute equals the reduction / makes it 10 % of the step:\n")
    print("| link | " + " | ".join(f"N = {n}" for n in RANKS) + " |")
    print("|---|" + "---|" * len(RANKS))
    for link, bits in LINKS.items():
        cells = []
        for n in RANKS:
            t = reduce_us(n, size, bits, args.alpha_us)
            cells.append(f"{math.ceil(t / per_row)} / {math.ceil(9 * t / per_row)}")
        print(f"| {link} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
