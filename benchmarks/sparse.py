"""Benchmark: softargmax.sparse against the ``entmax`` package (PyTorch, CPU).

One command, one process, every implementation and peer measured in the same run:

    PYTHONPATH=src python benchmarks/sparse.py [--threads 2] [--repeats 3] [--quick]
        [--json sparse_bench.json]

Per shape (float32, the distribution over the last axis) and per map (sparsemax, entmax15,
entmax_bisect at alpha = 1.5, and the three Fenchel-Young losses) it times

* ``fwd``: the map; ``fwd+bwd``: the map and its vector-Jacobian product with a random
  cotangent (for the losses: the mean loss and its gradient);
* ours (NumPy in, numba kernels) and the ``entmax`` package with its defaults (full sort)
  and, for the exact maps, with its partial-sort option ``k=64``;
* ``np.copyto`` of the input as the memory floor.

Both libraries run on ``--threads`` threads (torch.set_num_threads, numba.set_num_threads).
Inputs rotate between two arrays; the first call of each of ours (numba compilation or
cache load) is timed separately; the table gives medians, GB/s from a count of the bytes
that must move (read x + write p; plus read p, read g, write dx for the backward) and the
ratio entmax / ours. The figures depend on the machine and its load: rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _time(fn: Callable[[int], Any], repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke test")
    parser.add_argument("--json", default="sparse_bench.json", help="where to write the results")
    parser.add_argument("--no-topk", action="store_true", help="skip entmax's k=64 variant")
    args = parser.parse_args(argv)

    import entmax
    import numba
    import torch

    from softargmax import sparse

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    shapes = [(256, 4000), (4096, 256)] if args.quick else [(2048, 32000), (65536, 1024)]
    rng = np.random.default_rng(0)

    maps: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any] | None,
                          Callable[..., Any]]] = {
        # name: (ours, our vjp, entmax with k (or None), entmax default)
        "sparsemax": (sparse.sparsemax, sparse.sparsemax_vjp,
                      lambda t: entmax.sparsemax(t, -1, k=64), lambda t: entmax.sparsemax(t, -1)),
        "entmax15": (sparse.entmax15, sparse.entmax15_vjp,
                     lambda t: entmax.entmax15(t, -1, k=64), lambda t: entmax.entmax15(t, -1)),
        "entmax_bisect(1.5)": (lambda a: sparse.entmax_bisect(a, 1.5),
                               lambda p, g: sparse.entmax_bisect_vjp(p, g, 1.5), None,
                               lambda t: entmax.entmax_bisect(t, 1.5)),
    }
    losses = {
        "sparsemax_loss": (sparse.sparsemax_loss, lambda x, t: entmax.sparsemax_loss(x, t)),
        "entmax15_loss": (sparse.entmax15_loss, lambda x, t: entmax.entmax15_loss(x, t)),
        "entmax_bisect_loss(1.5)": (lambda x, t, **k: sparse.entmax_bisect_loss(x, t, 1.5, **k),
                                    lambda x, t: entmax.entmax_bisect_loss(x, t, 1.5)),
    }

    rows: list[dict[str, Any]] = []
    header = f"{'shape':>14} {'function':>24} {'pass':>8} {'impl':>12} {'median s':>10} {'GB/s':>7} {'x ours':>7}"
    print(f"threads={args.threads} repeats={args.repeats} numpy {np.__version__} numba "
          f"{numba.__version__} torch {torch.__version__} entmax {getattr(entmax, '__version__', '?')}")
    print(header)
    print("-" * len(header))

    def report(shape: tuple[int, int], fn: str, pas: str, impl: str, t: float, nbytes: float,
               ours: float | None) -> None:
        ratio = t / ours if ours else 1.0
        rows.append({"shape": list(shape), "function": fn, "pass": pas, "impl": impl,
                     "median_s": t, "GB_per_s": nbytes / t / 1e9, "ratio_to_ours": ratio})
        print(f"{str(shape):>14} {fn:>24} {pas:>8} {impl:>12} {t:10.4f} {nbytes / t / 1e9:7.2f} "
              f"{ratio:7.2f}")

    for shape in shapes:
        xs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(2)]
        gs = [rng.standard_normal(shape, dtype=np.float32) for _ in range(2)]
        xts = [torch.from_numpy(x) for x in xs]
        gts = [torch.from_numpy(g) for g in gs]
        targets = [rng.integers(0, shape[1], size=shape[0]) for _ in range(2)]
        tts = [torch.from_numpy(t) for t in targets]
        n = xs[0].size
        fwd_bytes, bwd_bytes = 8.0 * n, 20.0 * n
        out = np.empty_like(xs[0])
        t_copy = _time(lambda i, out=out, xs=xs: np.copyto(out, xs[i % 2]), args.repeats)
        report(shape, "np.copyto (floor)", "fwd", "numpy", t_copy, fwd_bytes, None)
        for name, (ours, vjp, peer_k, peer) in maps.items():
            t0 = time.perf_counter()
            vjp(ours(xs[0][:2]), gs[0][:2])
            first = time.perf_counter() - t0
            print(f"{'':>14} {name:>24} first call (compile or cache load) {first:.2f} s")
            t_f = _time(lambda i, f=ours, xs=xs: f(xs[i % 2]), args.repeats)
            t_b = _time(lambda i, f=ours, v=vjp, xs=xs, gs=gs: v(f(xs[i % 2]), gs[i % 2]), args.repeats)
            report(shape, name, "fwd", "ours", t_f, fwd_bytes, None)
            peers = [("entmax", peer)] + ([] if peer_k is None or args.no_topk else [("entmax k=64", peer_k)])
            for label, pf in peers:
                with torch.no_grad():
                    t_pf = _time(lambda i, f=pf, xts=xts: f(xts[i % 2]), args.repeats)
                report(shape, name, "fwd", label, t_pf, fwd_bytes, t_f)

                def fb(i: int, f: Callable[..., Any] = pf, xts: list[Any] = xts,
                       gts: list[Any] = gts) -> None:
                    xt = xts[i % 2].clone().requires_grad_()
                    f(xt).backward(gts[i % 2])

                t_pb = _time(fb, args.repeats)
                report(shape, name, "fwd+bwd", label, t_pb, bwd_bytes, t_b)
            report(shape, name, "fwd+bwd", "ours", t_b, bwd_bytes, None)
        for name, (ours_l, peer_l) in losses.items():
            t_l = _time(lambda i, f=ours_l, xs=xs, targets=targets: f(xs[i % 2], targets[i % 2], return_grad=True),
                        args.repeats)
            report(shape, name, "fwd+bwd", "ours", t_l, 12.0 * n, None)

            def lb(i: int, f: Callable[..., Any] = peer_l, xts: list[Any] = xts,
                   tts: list[Any] = tts) -> None:
                xt = xts[i % 2].clone().requires_grad_()
                f(xt, tts[i % 2]).mean().backward()

            t_pl = _time(lb, args.repeats)
            report(shape, name, "fwd+bwd", "entmax", t_pl, 12.0 * n, t_l)

    meta = {"threads": args.threads, "repeats": args.repeats, "machine": platform.machine(),
            "processor": platform.processor(), "numpy": np.__version__,
            "numba": numba.__version__, "torch": torch.__version__}
    with open(args.json, "w") as fh:
        json.dump({"meta": meta, "results": rows}, fh, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
