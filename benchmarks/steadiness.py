"""How steady is this machine's compute rate? A check to read the other benchmarks by.

The kernels' figures are ratios against peers timed in the same run, in interleaved
rounds, so a change of the machine's speed between two calls hits both alike. Speed
that changes within a second, or that two threads do not double, still moves the
ratios: on a virtual machine the two vCPUs may share a physical core, or another
guest may take their cycles.

This script times a compute-bound call (``softargmax.logsumexp`` over an input that
stays in each core's L2 cache, so memory plays no part) on one thread and on two,
alternating, for ``--seconds`` seconds, and reports per sample the time per element of
each and the ratio of the two-thread rate to the one-thread rate (2.0 on two
independent cores). The spread of the one-thread times is the drift of one core's
speed; the ratio is what a second thread adds.

    python benchmarks/steadiness.py [--seconds 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numba
import numpy as np

import softargmax as sa

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "steadiness.json"

#: 128 rows of 2048 float32: 1 MiB, half of it per thread (each core's L2 holds 1 MiB)
SHAPE = (128, 2048)
#: calls per timed sample (10-20 ms on one thread here)
CALLS = 100


def sample(x: np.ndarray, threads: int) -> float:
    """Seconds per element of ``CALLS`` logsumexp calls on ``threads`` threads."""
    numba.set_num_threads(threads)
    t0 = time.perf_counter()
    for _ in range(CALLS):
        sa.logsumexp(x, axis=-1, implementation="numba")
    return (time.perf_counter() - t0) / (CALLS * x.size)


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="how long to sample")
    p.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the samples")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be positive")
    threads = numba.get_num_threads()
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    sample(x, 1)
    sample(x, threads)  # first calls: cache load, thread start
    one: list[float] = []
    many: list[float] = []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        one.append(sample(x, 1))
        many.append(sample(x, threads))
    numba.set_num_threads(threads)
    scaling = [a / b for a, b in zip(one, many, strict=True)]

    def spread(v: list[float], unit: float = 1.0) -> str:
        q = np.quantile(np.array(v) * unit, [0.0, 0.1, 0.5, 0.9, 1.0])
        return f"min {q[0]:.3f}, 10% {q[1]:.3f}, median {q[2]:.3f}, 90% {q[3]:.3f}, max {q[4]:.3f}"

    print(f"{len(one)} samples in {args.seconds:g} s, logsumexp {SHAPE[0]}x{SHAPE[1]} float32 in L2")
    print(f"1 thread, ns/element: {spread(one, 1e9)}")
    print(f"{threads} threads, ns/element: {spread(many, 1e9)}")
    print(f"{threads}-thread rate / 1-thread rate: {spread(scaling)} (ideal {threads})")
    out = {"shape": list(SHAPE), "calls_per_sample": CALLS, "threads": threads,
           "one_thread_s_per_element": one, "threads_s_per_element": many,
           "scaling_median": statistics.median(scaling)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
