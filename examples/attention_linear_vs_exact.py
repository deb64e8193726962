"""Linear attention against exact softmax attention: output difference, time and memory.

Exact attention costs O(L^2 d) time (``softargmax.attention.attention`` keeps its memory
O(L d) by working in blocks); linear attention with the ``elu(x) + 1`` feature map
reassociates the product and costs O(L d^2). This script measures, for each sequence
length L:

* the relative difference ``||linear - exact|| / ||exact - mean(v)||`` of the outputs
  (how much of what attention adds to the plain average of the values the kernelised
  version gets wrong), for queries at two sharpness levels (``q`` scaled by 1 and by 4:
  the sharper the softmax, the further apart the two);
* the wall time of each (causal and not);
* the peak memory (tracemalloc) of each call beyond its inputs.

    python examples/attention_linear_vs_exact.py
    python examples/attention_linear_vs_exact.py --lengths 64 256 1024 --heads 2 --output-dir /tmp

Writes ``attention_linear_vs_exact.png`` (needs matplotlib) into the output directory
(default ``examples/output/``) and prints a table.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np

from softargmax.attention import attention, linear_attention

SHARPNESS = (1.0, 4.0)


def measure(fn, repeat: int) -> tuple[float, float]:
    """Best wall time of ``repeat`` calls, and the traced peak (MB) of one more."""
    fn()
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak / 1e6


def run(lengths: list[int], heads: int, dim: int, repeat: int, seed: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(seed)
    for L in lengths:
        q, k, v = (rng.standard_normal((heads, L, dim), dtype=np.float32) for _ in range(3))
        row: dict = {"L": L}
        for sharp in SHARPNESS:
            exact = attention(sharp * q, k, v).astype(np.float64)
            linear = linear_attention(sharp * q, k, v).astype(np.float64)
            spread = np.linalg.norm(exact - v.mean(axis=-2, keepdims=True))
            row[f"diff_x{sharp:g}"] = float(np.linalg.norm(linear - exact) / spread)
        for causal in (False, True):
            tag = "causal" if causal else "full"
            row[f"exact_{tag}_s"], row[f"exact_{tag}_MB"] = measure(
                lambda q=q, k=k, v=v, c=causal: attention(q, k, v, causal=c), repeat
            )
            row[f"linear_{tag}_s"], row[f"linear_{tag}_MB"] = measure(
                lambda q=q, k=k, v=v, c=causal: linear_attention(q, k, v, causal=c), repeat
            )
        rows.append(row)
    return rows


def plot(rows: list[dict], path: Path, heads: int, dim: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = [r["L"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    ax = axes[0]
    for sharp in SHARPNESS:
        ax.plot(L, [r[f"diff_x{sharp:g}"] for r in rows], "o-", label=f"q x {sharp:g}")
    ax.set(xscale="log", xlabel="sequence length L", ylabel="relative difference",
           title="linear vs exact: output difference")
    ax.legend()
    for ax, unit, title in ((axes[1], "s", "time"), (axes[2], "MB", "peak memory (tracemalloc)")):
        for kind, style in (("exact", "-"), ("linear", "--")):
            for tag, marker in (("full", "o"), ("causal", "s")):
                ax.plot(L, [r[f"{kind}_{tag}_{unit}"] for r in rows], marker + style, label=f"{kind}, {tag}")
        ax.set(xscale="log", yscale="log", xlabel="sequence length L", ylabel=unit, title=title)
        ax.legend(fontsize=8)
    fig.suptitle(f"float32, {heads} heads, d = dv = {dim}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096, 8192])
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "output")
    args = ap.parse_args(argv)
    rows = run(args.lengths, args.heads, args.dim, args.repeat, args.seed)
    print(f"float32, {args.heads} heads, d = dv = {args.dim}; times in ms, memory in MB")
    print(f"{'L':>6} {'diff q x1':>9} {'diff q x4':>9} {'exact':>9} {'linear':>9} "
          f"{'exact c':>9} {'linear c':>9} {'exact MB':>9} {'linear MB':>9}")
    for r in rows:
        print(
            f"{r['L']:>6} {r['diff_x1']:>9.3f} {r['diff_x4']:>9.3f} {1e3 * r['exact_full_s']:>9.2f} "
            f"{1e3 * r['linear_full_s']:>9.2f} {1e3 * r['exact_causal_s']:>9.2f} "
            f"{1e3 * r['linear_causal_s']:>9.2f} {r['exact_full_MB']:>9.2f} {r['linear_full_MB']:>9.2f}"
        )
    for tag in ("full", "causal"):
        faster = [r["L"] for r in rows if r[f"linear_{tag}_s"] < r[f"exact_{tag}_s"]]
        print(f"linear faster than exact ({tag}) from L = {min(faster) if faster else 'never (in range)'}")
    path = args.output_dir / "attention_linear_vs_exact.png"
    try:
        plot(rows, path, args.heads, args.dim)
    except ImportError:
        print("matplotlib is not installed: no plot")
    else:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
