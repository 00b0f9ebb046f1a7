#!/usr/bin/env python3
"""One Adam training step of the seed network in Descent, JAX+optax and PyTorch, timed in one run.

    DESCENT_LIBRARY=.../libdescent.so python benchmarks/peers.py [--threads 2] [--rounds 15]
        [--block-seconds 0.2] [--no-batchnorm]

The work, the same for every framework: the network 784-100-100-100-100-10 with ReLU (and, in a
second set of rows, batch norm after every hidden affine layer: batch statistics, eps 1e-6,
running averages with momentum 0.9), softmax cross-entropy (mean over the batch), Adam with lr
0.001, beta1 0.9, beta2 0.999, eps 1e-8 added to sqrt(v_hat) (optax's and PyTorch's form;
Descent's eps_hat=0), batch 128, one fixed synthetic batch. All three start from the same He
weights (numpy, seed 1) and see the same batch, so their losses after steps 1 and 2 must agree
to float rounding: the table prints them as a check that the work is the same.

  Descent     descent.Network.train_step (the repository's binding; DESCENT_LIBRARY names the
              library), its default checks on (check_finite=1).
  JAX+optax   the whole step (forward, value_and_grad, optax.adam update) in one jax.jit, with
              params and optimizer state donated; a block ends with block_until_ready.
  PyTorch     nn.Sequential, F.cross_entropy, backward, torch.optim.Adam (fused when this torch
              has it for CPU tensors); a block ends by reading the loss.

Threads (--threads N, default 2), set before jax or torch is imported: Descent through
descent.set_num_threads(N); PyTorch through torch.set_num_threads(N); XLA sizes its CPU thread
pool to the CPUs the process may run on (one tf_XLAEigen thread per allowed CPU, checked with
jax 0.10), so for N below the CPU count the process is bound to N CPUs (sched_setaffinity), and
at N = 1 XLA_FLAGS also turns off its multi-threaded Eigen.
OMP_NUM_THREADS is set to N for any OpenMP runtime that reads it.

Timing: every round runs one block of about --block-seconds of each framework on the plain
network, back to back in rotated order, then the same with batch norm (which of the two comes
first alternates). A time is the median over rounds of block time / steps. A ratio, peer /
Descent (above 1, Descent is faster), is taken per round from the two blocks of that round, a
few seconds apart, and the median of those is printed with their range: a slow phase of a
shared machine that covers a round slows both. A pause of 0.3 s precedes every block, so the
worker threads of the previous framework's runtime (libomp spins 200 ms after a parallel
region) have stopped before the next one is timed. Goal: JAX+optax / Descent >= 3 at 2 threads.

A framework that cannot be imported is named and skipped; the others still run. Not part of the
tests or CI: install the peers in a virtual environment, e.g. pip install jax optax torch.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

SIZES = [784, 100, 100, 100, 100, 10]
LAYERS = len(SIZES) - 1
BATCH = 128
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
BN_EPS, BN_MOMENTUM = 1e-6, 0.9   # Descent's batch norm: running = 0.9 * running + 0.1 * batch
PAUSE_SECONDS = 0.3


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def set_threads_before_imports(threads: int) -> str:
    """Thread settings that must precede importing jax and torch; returns them as text."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    notes = [f"OMP_NUM_THREADS={threads}"]
    allowed = sorted(os.sched_getaffinity(0))
    if threads < len(allowed):
        os.sched_setaffinity(0, allowed[:threads])
        notes.append(f"process bound to CPUs {allowed[:threads]} (XLA sizes its pool from this)")
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if os.environ.get("XLA_FLAGS"):
        notes.append(f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    return "; ".join(notes)


def initial_weights(batchnorm: bool) -> dict:
    """He weights (normal, std sqrt(2 / fan_in)), zero biases, gamma 1 and beta 0: Descent's names
    and layouts (W is inputs x outputs, used as x @ W)."""
    import numpy as np
    rng = np.random.default_rng(1)
    params = {}
    for l in range(1, LAYERS + 1):
        fan_in, fan_out = SIZES[l - 1], SIZES[l]
        params[f"W{l}"] = (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        params[f"b{l}"] = np.zeros(fan_out, np.float32)
        if batchnorm and l < LAYERS:
            params[f"gamma{l}"] = np.ones(fan_out, np.float32)
            params[f"beta{l}"] = np.zeros(fan_out, np.float32)
    return params


def synthetic_batch():
    import numpy as np
    rng = np.random.default_rng(2)
    x = rng.random((BATCH, SIZES[0]), dtype=np.float32)
    y = (np.arange(BATCH) % SIZES[-1]).astype(np.int32)
    return x, y


# ---- the three frameworks: each object runs `steps` steps and returns the last loss -------------

class DescentStep:
    name = "Descent"

    def __init__(self, descent, weights: dict, batchnorm: bool, x, y):
        self.net = descent.Network(SIZES, activation="relu", init="he", batchnorm=batchnorm, seed=1)
        for key, value in weights.items():
            self.net.params[key][...] = value
        self.net.set_optimizer("adam", lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, eps_hat=0)
        self.x, self.y = x, y

    def run(self, steps: int) -> float:
        for _ in range(steps):
            loss = self.net.train_step(self.x, self.y)
        return loss


class JaxStep:
    name = "JAX+optax"

    def __init__(self, modules, weights: dict, batchnorm: bool, x, y):
        jax, jnp, optax = modules
        hidden = range(1, LAYERS)

        def forward(params, stats, x):
            h, new_stats = x, {}
            for l in range(1, LAYERS + 1):
                h = h @ params[f"W{l}"] + params[f"b{l}"]
                if l == LAYERS:
                    break
                if batchnorm:
                    mean = h.mean(axis=0)
                    var = ((h - mean) ** 2).mean(axis=0)
                    h = (h - mean) / jnp.sqrt(var + BN_EPS) * params[f"gamma{l}"] + params[f"beta{l}"]
                    new_stats[f"mean{l}"] = BN_MOMENTUM * stats[f"mean{l}"] + (1 - BN_MOMENTUM) * mean
                    new_stats[f"var{l}"] = BN_MOMENTUM * stats[f"var{l}"] + (1 - BN_MOMENTUM) * var
                h = jax.nn.relu(h)
            return h, jax.lax.stop_gradient(new_stats)

        def loss_fn(params, stats, x, y):
            logits, new_stats = forward(params, stats, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_stats

        optimizer = optax.adam(LR, b1=BETA1, b2=BETA2, eps=EPS)

        def step(params, opt_state, stats, x, y):
            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, stats, loss

        self.step = jax.jit(step, donate_argnums=(0, 1, 2))
        self.params = {k: jnp.asarray(v) for k, v in weights.items()}
        self.opt_state = optimizer.init(self.params)
        self.stats = {}
        if batchnorm:
            for l in hidden:
                self.stats[f"mean{l}"] = jnp.zeros(SIZES[l], jnp.float32)
                self.stats[f"var{l}"] = jnp.ones(SIZES[l], jnp.float32)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)

    def run(self, steps: int) -> float:
        for _ in range(steps):
            self.params, self.opt_state, self.stats, loss = self.step(self.params, self.opt_state, self.stats,
                                                                      self.x, self.y)
        return float(loss.block_until_ready())


class TorchStep:
    name = "PyTorch"

    def __init__(self, torch, weights: dict, batchnorm: bool, x, y):
        nn = torch.nn
        layers = []
        with torch.no_grad():
            for l in range(1, LAYERS + 1):
                affine = nn.Linear(SIZES[l - 1], SIZES[l])
                affine.weight.copy_(torch.from_numpy(weights[f"W{l}"].T.copy()))
                affine.bias.copy_(torch.from_numpy(weights[f"b{l}"]))
                layers.append(affine)
                if l < LAYERS:
                    if batchnorm:
                        layers.append(nn.BatchNorm1d(SIZES[l], eps=BN_EPS, momentum=1 - BN_MOMENTUM))
                    layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers).train()
        try:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                                              fused=True)
            self.fused = True
        except (RuntimeError, TypeError, ValueError):
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)
            self.fused = False
        self.cross_entropy = torch.nn.functional.cross_entropy
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y).long()

    def run(self, steps: int) -> float:
        for _ in range(steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.cross_entropy(self.model(self.x), self.y)
            loss.backward()
            self.optimizer.step()
        return loss.item()


# ---- main ---------------------------------------------------------------------------------------

def import_peers(threads: int):
    """(constructors by name, versions, what could not be imported)."""
    peers, versions, missing = {}, {}, []
    try:
        import jax
        import jax.numpy as jnp
        import jaxlib
        import optax
        modules = (jax, jnp, optax)
        peers["JAX+optax"] = lambda w, bn, x, y: JaxStep(modules, w, bn, x, y)
        versions["JAX+optax"] = f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, optax {optax.__version__}, " \
                                f"backend {jax.default_backend()}"
    except Exception as error:   # any failure to import is reported, and the others still run
        missing.append(f"JAX+optax ({type(error).__name__}: {error})")
    try:
        import torch
        torch.set_num_threads(threads)
        peers["PyTorch"] = lambda w, bn, x, y: TorchStep(torch, w, bn, x, y)
        versions["PyTorch"] = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    except Exception as error:
        missing.append(f"PyTorch ({type(error).__name__}: {error})")
    return peers, versions, missing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block-seconds", type=float, default=0.2)
    parser.add_argument("--no-batchnorm", action="store_true", help="only the rows without batch norm")
    args = parser.parse_args()
    if args.threads < 1 or args.rounds < 1 or not args.block_seconds > 0:
        parser.error("--threads and --rounds must be >= 1, --block-seconds > 0")

    thread_notes = set_threads_before_imports(args.threads)
    sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "bindings" / "python"))
    import descent
    descent.set_num_threads(args.threads)
    peers, versions, missing = import_peers(args.threads)
    frameworks = {"Descent": lambda w, bn, x, y: DescentStep(descent, w, bn, x, y), **peers}

    threads_text = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(f"# Adam step of the seed network, batch {BATCH}: Descent against its peers, {threads_text}\n")
    print(f"- CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; load average before: {os.getloadavg()[0]:.2f}")
    print(f"- Descent {descent.__version__} ({descent.library_path}), {descent.get_num_threads()} thread(s); "
          f"{descent.blas_info()}")
    for name, text in versions.items():
        print(f"- {name}: {text}")
    for text in missing:
        print(f"- NOT RUN, could not import: {text}")
    print(f"- threads: {thread_notes}")
    print(f"- Python {platform.python_version()}; {args.rounds} interleaved rounds of ~{args.block_seconds} s "
          f"blocks per row, {PAUSE_SECONDS} s pause before each; medians of ms per step")

    x, y = synthetic_batch()
    rows = []   # per framework and network: its runner, steps per block, losses of steps 1 and 2, block times
    for batchnorm in ([False] if args.no_batchnorm else [False, True]):
        weights = initial_weights(batchnorm)
        for name, make in frameworks.items():
            runner = make(weights, batchnorm, x, y)
            losses = (runner.run(1), runner.run(1))
            runner.run(20)   # warm-up (and JAX's compilation)
            start = time.perf_counter()
            runner.run(20)
            per_step = (time.perf_counter() - start) / 20
            steps = max(1, int(args.block_seconds / per_step))
            rows.append({"name": name, "batchnorm": batchnorm, "runner": runner, "steps": steps, "losses": losses,
                         "times": [], "fused": getattr(runner, "fused", None)})

    groups = [[row for row in rows if row["batchnorm"] == bn] for bn in sorted({row["batchnorm"] for row in rows})]
    for r in range(args.rounds):
        for group in groups[r % len(groups):] + groups[:r % len(groups)]:
            for j in range(len(group)):   # a group's blocks run back to back, in rotated order
                row = group[(j + r) % len(group)]
                time.sleep(PAUSE_SECONDS)
                start = time.perf_counter()
                row["runner"].run(row["steps"])
                row["times"].append((time.perf_counter() - start) / row["steps"])
    print(f"- load average after: {os.getloadavg()[0]:.2f}\n")

    print("| network | framework | ms/step | peer / Descent: median over rounds (range) | loss after step 1, 2 |")
    print("|---|---|---:|---:|---|")
    verdicts = []
    for group in groups:
        own = group[0]["times"]   # Descent's block times, round by round
        for row in group:
            ms = statistics.median(row["times"]) * 1e3
            ratio, text = None, ""
            if row is not group[0]:
                ratios = sorted(t / d for t, d in zip(row["times"], own))
                ratio = statistics.median(ratios)
                text = f"{ratio:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})"
            label = row["name"] + (" (fused Adam)" if row["fused"] else "")
            network = "batch norm" if row["batchnorm"] else "plain"
            print(f"| {network} | {label} | {ms:.3f} | {text} | {row['losses'][0]:.6f}, {row['losses'][1]:.6f} |")
            if row["name"] == "JAX+optax":
                verdicts.append(f"- {network}: JAX+optax / Descent = {ratio:.2f}x (goal >= 3x): "
                                f"{'MET' if ratio >= 3 else 'MISSED'}")
    if verdicts and args.threads == 2:
        print("\nGoal at 2 threads: Descent at least 3x faster than JAX+optax (jit).")
        print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
