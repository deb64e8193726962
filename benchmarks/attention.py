"""Exact attention: softargmax against torch's scaled_dot_product_attention on the CPU.

    python benchmarks/attention.py                       # L = 1024, 4096, 16384
    python benchmarks/attention.py --lengths 1024 4096   # a quicker run
    python benchmarks/attention.py --with-65536          # adds L = 65536 (ours only)

float32, batch * heads = 8 (shape (1, 8, L, 64)), d = dv = 64, causal and not,
forward and forward + backward (``attention`` then ``attention_vjp``; torch: the SDPA
forward and ``backward``). Both sides use the same number of threads (``--threads``,
default 2). ``linear_attention`` (and its vjp) is timed on the same inputs to show where
it overtakes exact attention.

Time: the median of ``--repeat`` runs after one warm-up run (L = 16384: the warm-up run
is the memory run and one timed run follows; L = 65536: the memory run is also the timed
run), in this process. ``ratio`` is ours / torch
in wall time; ``cpu_ratio`` the same in process CPU time (all threads), which a loaded
machine disturbs less. Memory:

* ``ours_extra_MB``: tracemalloc's peak during one call minus the bytes of what the call
  returns (out and lse; for forward + backward also dq, dk, dv), i.e. the working
  memory beyond inputs and outputs; it must not grow faster than L.
* ``*_rss_MB``: peak resident set size (VmHWM, reset before the call) of a fresh
  subprocess during one call minus its resident size just before it: the outputs and
  everything the library allocates, for both libraries (``--no-rss`` skips these runs;
  Linux only).

Prints a table and writes JSON (default ``benchmarks/results/attention.json``);
``--markdown FILE.json ...`` prints the table of docs/attention.md from such files.
Figures taken on a shared, loaded machine are noisy; re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from softargmax.attention import (  # noqa: E402
    attention,
    attention_vjp,
    linear_attention,
    linear_attention_vjp,
)

HEADS, DIM = 8, 64


def inputs(L: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """q, k, v, dout of shape (1, HEADS, L, DIM): torch's CPU flash kernel needs 4-d input
    (with 3-d input SDPA falls back to the math path, which holds the L x L scores)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal((1, HEADS, L, DIM), dtype=np.float32) for _ in range(4))


def ours(q, k, v, dout, causal: bool, backward: bool, threads: int) -> tuple[Any, ...]:
    out, lse = attention(q, k, v, causal=causal, return_lse=True, num_threads=threads)
    if not backward:
        return out, lse
    return (out, lse, *attention_vjp(q, k, v, out, lse, dout, causal=causal, num_threads=threads))


def ours_linear(q, k, v, dout, causal: bool, backward: bool) -> tuple[Any, ...]:
    out = linear_attention(q, k, v, causal=causal)
    if not backward:
        return (out,)
    return (out, *linear_attention_vjp(q, k, v, dout, causal=causal))


def torch_runner(threads: int):
    import torch

    torch.set_num_threads(threads)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def run(tq, tk, tv, tdout, causal: bool, backward: bool) -> None:
        if not backward:
            with torch.no_grad():
                sdpa(tq, tk, tv, is_causal=causal)
            return
        for t in (tq, tk, tv):
            t.grad = None
        sdpa(tq, tk, tv, is_causal=causal).backward(tdout)

    def tensors(q, k, v, dout, backward: bool):
        ts = [torch.from_numpy(x) for x in (q, k, v)]
        if backward:
            ts = [t.requires_grad_() for t in ts]
        return (*ts, torch.from_numpy(dout))

    return run, tensors


def timed(fn, repeat: int) -> tuple[float, float]:
    """Median wall time and median process CPU time (all threads) of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def traced_extra(fn) -> float:
    """Peak traced bytes of one call minus the bytes of what it returns, in MB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    kept = sum(r.nbytes for r in result)
    return (peak - kept) / 1e6


# --------------------------------------------------------------------------- RSS in a subprocess
_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
lib, L, causal, backward, threads = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1", int(sys.argv[6])
sys.path.insert(0, sys.argv[7])
import attention as bench
q, k, v, dout = bench.inputs(L)
if lib == "torch":
    run, tensors = bench.torch_runner(threads)
    args = tensors(q, k, v, dout, backward)
    call = lambda: run(*args, causal, backward)
else:
    import softargmax.attention  # noqa: F401  (imports done before the baseline)
    call = lambda: bench.ours(q, k, v, dout, causal, backward, threads)
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)
try:  # reset the high-water mark (Linux >= 4.0); VmHWM is per address space
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
base = status("VmRSS")
call()
peak = status("VmHWM")
print(json.dumps({"rss_extra_MB": (peak - base) / 1e6}))
"""


def rss_extra(lib: str, L: int, causal: bool, backward: bool, threads: int) -> float | None:
    if not Path("/proc/self/status").exists():
        return None
    cmd = [
        sys.executable, "-c", _CHILD, str(ROOT / "src"), lib, str(L), str(int(causal)),
        str(int(backward)), str(threads), str(Path(__file__).resolve().parent),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        print(f"  RSS run of {lib} failed: {res.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(json.loads(res.stdout.strip().splitlines()[-1])["rss_extra_MB"])


# --------------------------------------------------------------------------- markdown
def markdown(paths: list[Path]) -> str:
    """The docs' table, from one or more JSON files this script wrote."""
    lines = [
        "| L | causal | mode | ours s | torch s | ours/torch (wall) | ours/torch (CPU) "
        "| ours extra MB | ours RSS MB | torch RSS MB | linear s |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(row: dict[str, Any], key: str, spec: str) -> str:
        value = row.get(key)
        return "-" if value is None else format(value, spec)

    for path in paths:
        for r in json.loads(Path(path).read_text())["rows"]:
            lines.append(
                f"| {r['L']} | {'yes' if r['causal'] else 'no'} | {r['mode']} | {cell(r, 'ours_s', '.3f')} "
                f"| {cell(r, 'torch_s', '.3f')} | {cell(r, 'ratio', '.2f')} | {cell(r, 'cpu_ratio', '.2f')} "
                f"| {cell(r, 'ours_extra_MB', '.1f')} | {cell(r, 'ours_rss_MB', '.1f')} "
                f"| {cell(r, 'torch_rss_MB', '.1f')} | {cell(r, 'linear_s', '.3f')} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--with-65536", action="store_true", help="add L = 65536 (ours only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=["fwd", "fwd+bwd"], default=["fwd", "fwd+bwd"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS runs")
    parser.add_argument("--no-linear", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "attention.json")
    parser.add_argument("--markdown", type=Path, nargs="+", metavar="JSON",
                        help="only print the Markdown table of earlier runs' JSON files")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(args.markdown))
        return 0

    lengths = list(args.lengths) + ([65536] if args.with_65536 else [])
    have_torch = not args.no_torch
    if have_torch:
        try:
            run_torch, tensors = torch_runner(args.threads)
        except ImportError:
            have_torch = False
    rows = []
    header = (
        f"{'L':>6} {'causal':>6} {'mode':>8} {'ours_s':>8} {'torch_s':>8} {'ratio':>6} {'cpu_ratio':>9} "
        f"{'linear_s':>8} {'ours_extra_MB':>13} {'ours_rss_MB':>11} {'torch_rss_MB':>12}"
    )
    print(f"attention, float32, {HEADS} heads, d = dv = {DIM}, {args.threads} threads each")
    print(header)
    print("-" * len(header))
    for L in lengths:
        q, k, v, dout = inputs(L)
        big = L >= 16384
        for causal in (False, True):
            for mode in args.modes:
                backward = mode == "fwd+bwd"
                row: dict[str, Any] = {"L": L, "causal": causal, "mode": mode}

                def call_ours(q=q, k=k, v=v, dout=dout, causal=causal, backward=backward):
                    return ours(q, k, v, dout, causal, backward, args.threads)

                repeat = 1 if big else args.repeat
                if L > 16384:  # one run: traced and timed (we allocate little; tracing is cheap)
                    t, c = time.perf_counter(), time.process_time()
                    row["ours_extra_MB"] = traced_extra(call_ours)
                    row["ours_s"], row["ours_cpu_s"] = time.perf_counter() - t, time.process_time() - c
                else:
                    row["ours_extra_MB"] = traced_extra(call_ours)  # doubles as the warm-up
                    row["ours_s"], row["ours_cpu_s"] = timed(call_ours, repeat)
                with_torch = have_torch and L <= 16384
                if with_torch:
                    targs = tensors(q, k, v, dout, backward)

                    def call_torch(targs=targs, causal=causal, backward=backward):
                        run_torch(*targs, causal, backward)

                    if not big:
                        call_torch()
                    row["torch_s"], row["torch_cpu_s"] = timed(call_torch, repeat)
                    row["ratio"] = row["ours_s"] / row["torch_s"]
                    row["cpu_ratio"] = row["ours_cpu_s"] / row["torch_cpu_s"]
                if not args.no_linear:

                    def call_linear(q=q, k=k, v=v, dout=dout, causal=causal, backward=backward):
                        return ours_linear(q, k, v, dout, causal, backward)

                    call_linear()
                    row["linear_s"], _ = timed(call_linear, repeat)
                if not args.no_rss:
                    row["ours_rss_MB"] = rss_extra("ours", L, causal, backward, args.threads)
                    if with_torch:
                        row["torch_rss_MB"] = rss_extra("torch", L, causal, backward, args.threads)
                rows.append(row)

                def fmt(key: str, spec: str, row: dict[str, Any] = row) -> str:
                    value = row.get(key)
                    return "-" if value is None else format(value, spec)

                print(
                    f"{L:>6} {causal!s:>6} {mode:>8} {fmt('ours_s', '8.3f')} "
                    f"{fmt('torch_s', '8.3f'):>8} {fmt('ratio', '6.2f'):>6} {fmt('cpu_ratio', '9.2f'):>9} "
                    f"{fmt('linear_s', '8.3f'):>8} "
                    f"{fmt('ours_extra_MB', '13.2f'):>13} {fmt('ours_rss_MB', '11.1f'):>11} "
                    f"{fmt('torch_rss_MB', '12.1f'):>12}",
                    flush=True,
                )
    crossover = {}
    for causal in (False, True):
        for mode in args.modes:
            faster = [
                r["L"] for r in rows
                if r["causal"] == causal and r["mode"] == mode and r.get("linear_s", np.inf) < r["ours_s"]
            ]
            crossover[f"{'causal' if causal else 'full'} {mode}"] = min(faster) if faster else None
    if not args.no_linear:
        print("linear_attention faster than exact attention from L =", crossover)
    meta = {
        "heads": HEADS,
        "d": DIM,
        "dtype": "float32",
        "threads": args.threads,
        "repeat": args.repeat,
        "machine": platform.platform(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "linear_crossover_L": crossover,
    }
    if have_torch:
        import torch

        meta["torch"] = torch.__version__
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
