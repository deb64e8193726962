"""Benchmark of softargmax.losses against PyTorch, one command, one table, one JSON file.

1. ``cross_entropy`` forward and forward+backward (``return_grad=True``) against
   ``torch.nn.functional.cross_entropy`` (+ ``backward()``), both on 2 threads, on
   (2048, 32000) and (65536, 1024) float32, (2048, 32000) float64 and the short rows
   (1 000 000, 10) float32 with class indices, and (2048, 32000) and (1 000 000, 10)
   float32 with probability targets (Dirichlet rows, soft labels). Medians of ``--repeat`` runs after one warm-up call (whose
   time, the numba cache load or compile, is reported apart), ours and torch's taking
   turns (so that a drift of the machine's speed hits both alike); GB/s counts one read of
   the logits (forward) or one read plus one write (forward+backward). The floor of
   forward+backward is a 2-thread copy of the logits into a fresh array: one read, and
   the page faults and writes of a fresh gradient. "fwd+bwd reused" writes the gradient
   into an array that every step reuses: ``grad_out=`` here, and for torch a ``.grad``
   zeroed in place before each backward (``zero_grad(set_to_none=False)``), which
   backward adds into; its floor is the copy into an array written before.
2. ``linear_cross_entropy`` (N = 4096, d = 1024, V = 50257; V = 128256 with ``--big``)
   against (a) materialising ``hidden @ W.T`` then our ``cross_entropy``, (b) torch
   materialised (``F.linear`` + ``F.cross_entropy``, autograd) and (c)
   ``torch.nn.functional.linear_cross_entropy`` with its chunked options (torch 2.13).
   Each measurement runs in a fresh subprocess: time, the RSS high-water mark above the
   RSS just before the call, and for NumPy code the tracemalloc peak; "extra" subtracts
   the outputs (the loss gradients, which every method must return).

Run (from the repository root)::

    PYTHONPATH=src python benchmarks/losses.py            # a few minutes on 2 cores
    PYTHONPATH=src python benchmarks/losses.py --big      # adds V = 128256 (~2 GB logits)
    PYTHONPATH=src python benchmarks/losses.py --quick    # small sizes, to try the script

Figures depend on the machine and its load: ratios are measured in the same run.
"""

from __future__ import annotations

import os

THREADS = int(os.environ.get("SOFTARGMAX_BENCH_THREADS", "2"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# --------------------------------------------------------------------------- cross_entropy
def bench_cross_entropy(shapes: list[tuple[tuple[int, int], str, str]], repeat: int) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F

    from softargmax._kernels.bench_copy import parallel_copy
    from softargmax.bench import time_rounds
    from softargmax.losses import cross_entropy

    torch.set_num_threads(THREADS)
    rows = []
    for shape, dtype, target in shapes:
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape).astype(dtype)
        if target == "index":
            y = rng.integers(0, shape[1], shape[0])
        else:  # probabilities: one Dirichlet(1) draw per row
            y = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        tg = tx.clone().requires_grad_()

        def torch_fb(_: int, tg: Any = tg, ty: Any = ty) -> None:
            tg.grad = None
            F.cross_entropy(tg, ty).backward()

        tr = tx.clone().requires_grad_()
        tr.grad = torch.zeros_like(tr)

        def torch_fb_reused(_: int, tr: Any = tr, ty: Any = ty) -> None:
            tr.grad.zero_()  # zero_grad(set_to_none=False): backward adds into it
            F.cross_entropy(tr, ty).backward()

        g = np.zeros_like(x)
        # callables of the round's index (time_rounds' form; one input here)
        cases = {
            "forward": (lambda _, x=x, y=y: cross_entropy(x, y), lambda _, tx=tx, ty=ty: F.cross_entropy(tx, ty)),
            "fwd+bwd": (lambda _, x=x, y=y: cross_entropy(x, y, return_grad=True), torch_fb),
            "fwd+bwd reused": (lambda _, x=x, y=y, g=g: cross_entropy(x, y, return_grad=True, grad_out=g),
                               torch_fb_reused),
        }
        for mode, (ours, theirs) in cases.items():
            fns = {"ours": ours, "torch": theirs}
            if mode == "fwd+bwd":
                # the memory floor of forward+backward: read the logits, write a fresh
                # array of their size (first touched on all threads, as the gradient is)
                fns["floor"] = lambda _, x=x: parallel_copy(x, np.empty_like(x))
            elif mode == "fwd+bwd reused":  # ... or an array written before
                fns["floor"] = lambda _, x=x, g=g: parallel_copy(x, g)
            timed = {name: (first, float(np.median(times)))
                     for name, (first, times) in time_rounds(fns, repeat, 1).items()}
            (first, t_ours), (_, t_torch) = timed["ours"], timed["torch"]
            nbytes = x.nbytes * (1 if mode == "forward" else 2)
            row = {
                "shape": list(shape), "dtype": dtype, "target": target, "mode": mode,
                "softargmax_s": t_ours, "torch_s": t_torch, "speedup": t_torch / t_ours,
                "softargmax_GBps": nbytes / t_ours / 1e9, "first_call_s": first,
            }
            floor = ""
            if "floor" in timed:
                t_floor = timed["floor"][1]
                row["floor_s"] = t_floor
                floor = f"  floor {t_floor * 1e3:.2f} ms (ours {t_ours / t_floor:.2f}x it)"
            rows.append(row)
            print(
                f"  {str(shape):>16} {dtype:>8} {target:>5} {mode:>14}  softargmax {t_ours * 1e3:9.2f} ms "
                f"({nbytes / t_ours / 1e9:5.1f} GB/s)  torch {t_torch * 1e3:9.2f} ms  "
                f"speedup {t_torch / t_ours:5.2f}x  (first call {first * 1e3:.0f} ms){floor}",
                flush=True,
            )
    return rows


# --------------------------------------------------------------------------- linear_cross_entropy
def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_high_water_mark() -> None:
    """Reset VmHWM (Linux >= 4.0), so that it measures the call alone, not the setup."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _high_water_mark() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover


def child(method: str, mode: str, n: int, d: int, v: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; prints a JSON line."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((n, d), dtype=np.float32) * np.float32(1 / np.sqrt(d))
    w = rng.standard_normal((v, d), dtype=np.float32)
    y = rng.integers(0, v, n)
    grad = mode == "fwd+bwd"
    out_bytes = (h.nbytes + w.nbytes) if grad else 0
    traced = method in ("softargmax", "numpy_materialised")

    if method == "softargmax":
        from softargmax.losses import linear_cross_entropy

        linear_cross_entropy(h[:8], w[:1000], y[:8] % 1000, return_grad=grad)  # load the kernels

        def run() -> Any:
            return linear_cross_entropy(h, w, y, return_grad=grad)

    elif method == "numpy_materialised":
        from softargmax.losses import cross_entropy

        cross_entropy(h[:8] @ w[:1000].T, y[:8] % 1000, return_grad=grad)

        def run() -> Any:
            logits = h @ w.T
            if not grad:
                return cross_entropy(logits, y)
            loss, g = cross_entropy(logits, y, return_grad=True)
            del logits
            return loss, g @ w, g.T @ h

    else:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(THREADS)
        th, tw, ty = torch.from_numpy(h), torch.from_numpy(w), torch.from_numpy(y)
        if grad:
            th.requires_grad_()
            tw.requires_grad_()
        if method == "torch_materialised":

            def loss_fn() -> Any:
                return F.cross_entropy(F.linear(th, tw), ty)

        else:
            opts = torch.nn.LinearCrossEntropyOptions()

            def loss_fn() -> Any:
                return F.linear_cross_entropy(th, tw, ty, options=opts)

        def run() -> Any:
            if not grad:
                with torch.no_grad():
                    return loss_fn()
            th.grad = tw.grad = None
            loss = loss_fn()
            loss.backward()
            return loss, th.grad, tw.grad

    if traced:
        tracemalloc.start()
        base_traced = tracemalloc.get_traced_memory()[0]
    rss0 = _rss_now()
    _reset_high_water_mark()
    t0 = time.perf_counter()
    res = run()
    elapsed = time.perf_counter() - t0
    peak_rss = max(0, _high_water_mark() - rss0)
    peak_traced = None
    if traced:
        peak_traced = tracemalloc.get_traced_memory()[1] - base_traced
        tracemalloc.stop()
    del res
    return {
        "method": method, "mode": mode, "N": n, "d": d, "V": v, "time_s": elapsed,
        "rss_peak_extra_bytes": peak_rss, "rss_peak_extra_minus_outputs_bytes": peak_rss - out_bytes,
        "tracemalloc_peak_bytes": peak_traced,
        "tracemalloc_peak_minus_outputs_bytes": None if peak_traced is None else peak_traced - out_bytes,
        "logits_bytes": n * v * 4,
    }


def bench_linear(sizes: list[tuple[int, int, int]], methods: list[str], child_timeout: float) -> list[dict[str, Any]]:
    rows = []
    for n, d, v in sizes:
        logits_mb = n * v * 4 / 2**20
        print(f"\n  N={n} d={d} V={v}: the logits would be {logits_mb:.0f} MiB", flush=True)
        for mode in ("forward", "fwd+bwd"):
            for method in methods:
                cmd = [sys.executable, __file__, "--_child", method, mode, str(n), str(d), str(v)]
                try:
                    proc = subprocess.run(
                        cmd, capture_output=True, text=True, env=os.environ.copy(), check=False,
                        timeout=child_timeout,
                    )
                except subprocess.TimeoutExpired:
                    print(f"    {method:>20} {mode:>8}  over {child_timeout:.0f} s, stopped", flush=True)
                    rows.append({"method": method, "mode": mode, "N": n, "d": d, "V": v, "time_s": None, "timeout_s": child_timeout})
                    continue
                if proc.returncode != 0:
                    print(f"    {method:>20} {mode:>8}  failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                    continue
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append(row)
                tm = row["tracemalloc_peak_minus_outputs_bytes"]
                tm_txt = "" if tm is None else f"  tracemalloc extra {tm / 2**20:8.1f} MiB ({100 * tm / row['logits_bytes']:5.1f}% of logits)"
                rss = row["rss_peak_extra_minus_outputs_bytes"]
                print(
                    f"    {method:>20} {mode:>8}  {row['time_s']:8.2f} s  RSS extra {rss / 2**20:8.1f} MiB "
                    f"({100 * rss / row['logits_bytes']:5.1f}% of logits){tm_txt}",
                    flush=True,
                )
        base = {
            (r["mode"], r["method"]): r["time_s"]
            for r in rows if (r["N"], r["d"], r["V"]) == (n, d, v) and r["time_s"] is not None
        }
        for mode in ("forward", "fwd+bwd"):
            ours = base.get((mode, "softargmax"))
            if ours:
                ratios = ", ".join(
                    f"{m} {base[(mode, m)] / ours:.2f}x" for m in methods[1:] if (mode, m) in base
                )
                print(f"    {mode}: time of each / softargmax: {ratios}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--big", action="store_true", help="also V = 128256 (about 2 GB of logits)")
    parser.add_argument("--repeat", type=int, default=5, help="timed repeats for cross_entropy")
    parser.add_argument("--only", choices=("cross_entropy", "linear"), help="run one part")
    parser.add_argument("--json", default=os.path.join(RESULTS, "losses.json"), help="where to write the results")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed to one linear measurement")
    parser.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        method, mode, n, d, v = args._child
        print(json.dumps(child(method, mode, int(n), int(d), int(v))))
        return 0

    import numba
    import torch

    from softargmax.bench import describe_machine, machine_info

    m = machine_info()
    print(f"softargmax losses benchmark: {THREADS} threads (torch, numba, BLAS); {describe_machine(m)}")
    print(f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}")
    results: dict[str, Any] = {"threads": THREADS, "machine": m, "torch": torch.__version__}
    if args.only in (None, "cross_entropy"):
        print("\ncross_entropy (mean; class indices or probabilities) vs torch.nn.functional.cross_entropy")
        if args.quick:
            shapes = [((256, 32000), "float32", "index"), ((8192, 1024), "float32", "index"),
                      ((100_000, 10), "float32", "index"), ((256, 32000), "float32", "prob")]
        else:
            shapes = [
                ((2048, 32000), "float32", "index"), ((65536, 1024), "float32", "index"),
                ((2048, 32000), "float64", "index"), ((1_000_000, 10), "float32", "index"),
                ((2048, 32000), "float32", "prob"), ((1_000_000, 10), "float32", "prob"),
            ]
        results["cross_entropy"] = bench_cross_entropy(shapes, args.repeat)
        results["numba_threading_layer"] = numba.threading_layer()
        print(f"  (numba threading layer: {results['numba_threading_layer']}; "
              "set NUMBA_THREADING_LAYER=workqueue|omp|tbb to compare)")
    if args.only in (None, "linear"):
        print("\nlinear_cross_entropy, float32 (one subprocess per measurement)")
        sizes = [(512, 256, 50257)] if args.quick else [(4096, 1024, 50257)]
        if args.big:
            sizes.append((4096, 1024, 128256))
        methods = ["softargmax", "numpy_materialised", "torch_materialised"]
        import torch.nn.functional as F

        if hasattr(F, "linear_cross_entropy"):
            methods.append("torch_linear_cross_entropy")
        results["linear_cross_entropy"] = bench_linear(sizes, methods, args.timeout)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
