"""Side-by-side benchmark of softargmax against the memory floor and the peers.

One process, one run: for every shape, dtype and function it times softargmax (fresh
result and ``out=``), the floor (``np.copyto`` into a preallocated array and a 2-thread
streaming copy for ``out=``; ``x.copy()`` for a fresh result; ``np.sum`` for
logsumexp), a naive NumPy softmax, ``scipy.special``, torch (2 threads) and JAX (jit,
compile time excluded) where installed. The first call of each is timed apart (compile
or cache load); then the implementations take turns, round after round, on rotating
inputs (a drift of the machine's speed hits them alike), and the median of each one's
repeats is reported, with GB/s
from the bytes moved (one read of the input and one write of the output) and ratios to
the floor and to each peer, like with like (fresh against fresh, ``out=`` against
``out=``).

Run ``softargmax bench`` (``--quick`` for a small run) or ``benchmarks/compare.py``;
``--json`` writes the results, ``--plot`` a bar chart, and :func:`render_markdown`
turns the JSON into the README's performance table with the machine and the command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Case", "describe_machine", "machine_info", "register_cli", "render_markdown", "run", "run_bench", "time_rounds"]

FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
FULL_SHAPES = ["2048x32000", "65536x1024", "1000000x10", "64x1000000", "32000x2048:0"]
QUICK_SHAPES = ["256x32000", "8192x1024", "100000x10", "4x1000000", "4000x2048:0"]


@dataclass
class Case:
    """One shape along one axis (``"2048x32000"`` or ``"32000x2048:0"`` for axis 0)."""

    shape: tuple[int, ...]
    axis: int = -1

    @classmethod
    def parse(cls, text: str) -> Case:
        body, _, ax = text.partition(":")
        try:
            shape = tuple(int(s) for s in body.lower().split("x"))
            axis = int(ax) if ax else -1
        except ValueError:
            msg = f"--shapes: expected entries like 2048x32000 or 32000x2048:0, got {text!r}"
            raise ValueError(msg) from None
        if not shape or min(shape) < 1 or not -len(shape) <= axis < len(shape):
            msg = f"--shapes: bad shape or axis in {text!r}"
            raise ValueError(msg)
        return cls(shape, axis)

    @property
    def label(self) -> str:
        s = "x".join(map(str, self.shape))
        return s if self.axis in (-1, len(self.shape) - 1) else f"{s}:{self.axis}"


@dataclass
class Result:
    case: str
    dtype: str
    function: str
    mode: str  # "fresh" or "out"
    impl: str
    median_s: float
    warmup_s: float
    times_s: list[float] = field(default_factory=list)
    gbps: float = 0.0


# --------------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    """CPU model, core count and library versions, for the JSON and the README.

    ``cpu_target`` is the CPU that numba compiles the kernels for (LLVM's name, such as
    ``znver3``) and ``simd`` the widest vector extension the CPU reports: a virtual
    machine's model name ("AMD EPYC") may hide which generation, hence how many lanes
    the kernels run, and the ratios to peers depend on it.
    """
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    simd = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "NEON"))
                 if flag in flags), "unknown")
    info: dict[str, Any] = {
        "cpu": cpu,
        "simd": simd,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for mod in ("numba", "scipy", "torch", "jax"):
        with contextlib.suppress(ImportError):
            info[mod] = __import__(mod).__version__
    with contextlib.suppress(ImportError):
        from llvmlite import binding

        info["cpu_target"] = binding.get_host_cpu_name()
    with contextlib.suppress(OSError):
        info["load_avg"] = os.getloadavg()
    return info


def describe_machine(m: dict[str, Any]) -> str:
    """``"AMD EPYC (AVX2, znver3), 2 cores"`` from :func:`machine_info`'s dict (records
    made before it named the SIMD extension give the model and cores only)."""
    target = f" ({m['simd']}, {m.get('cpu_target', '?')})" if "simd" in m else ""
    return f"{m.get('cpu', '?')}{target}, {m.get('cores', '?')} cores"


# --------------------------------------------------------------------------- timing
def time_rounds(
    impls: dict[str, Callable[[int], Any]], repeat: int, n_inputs: int,
) -> dict[str, tuple[float, list[float]]]:
    """name -> (first-call time, repeat times) of every ``fn(i)`` (``i`` rotates the inputs).

    After each implementation's first call, the timed calls run in rounds: one call of
    each implementation per round, the order rotating from round to round. A machine
    whose speed drifts during the run (a neighbour's load, memory compaction) then slows
    every implementation alike, and the ratios between them hold.
    """
    names = list(impls)
    warm: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        t0 = time.perf_counter()
        impls[name](0)
        warm[name] = time.perf_counter() - t0
    for r in range(repeat):
        for j in range(len(names)):
            name = names[(r + j) % len(names)]
            t0 = time.perf_counter()
            impls[name]((r + 1) % n_inputs)
            times[name].append(time.perf_counter() - t0)
    return {name: (warm[name], times[name]) for name in names}


def _parallel_copy() -> Callable[[np.ndarray, np.ndarray], Any] | None:
    try:
        from ._kernels.bench_copy import parallel_copy
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return parallel_copy  # type: ignore[no-any-return]


def _implementations(
    fn_name: str, mode: str, axis: int, xs: list[np.ndarray], outs: list[np.ndarray] | None,
    peers: dict[str, Any],
) -> dict[str, Callable[[int], Any]]:
    """name -> callable(i) for one function, mode and axis."""
    import softargmax

    sa = getattr(softargmax, fn_name)
    impls: dict[str, Callable[[int], Any]] = {}
    if fn_name == "logsumexp":
        impls["softargmax"] = lambda i: sa(xs[i], axis=axis)
        impls["floor (np.sum)"] = lambda i: np.sum(xs[i], axis=axis)
    elif mode == "out":
        assert outs is not None
        impls["softargmax"] = lambda i: sa(xs[i], axis=axis, out=outs[i])
        impls["floor (np.copyto)"] = lambda i: np.copyto(outs[i], xs[i])
        pcopy = _parallel_copy()
        if pcopy is not None:
            impls["floor (2-thread copy)"] = lambda i: pcopy(xs[i], outs[i])
    else:
        impls["softargmax"] = lambda i: sa(xs[i], axis=axis)
        impls["floor (x.copy())"] = lambda i: xs[i].copy()
    if mode == "fresh":
        impls["numpy naive"] = _numpy_naive(fn_name, xs, axis)
        if "scipy" in peers:
            impls["scipy"] = _scipy(peers["scipy"], fn_name, xs, axis)
        if "jax" in peers:
            impls["jax (jit)"] = _jax(peers["jax"], fn_name, xs, axis)
    if "torch" in peers:
        impls["torch"] = _torch(peers["torch"], fn_name, mode, xs, outs, axis)
    return impls


def _numpy_naive(fn_name: str, xs: list[np.ndarray], axis: int) -> Callable[[int], Any]:
    def f(i: int) -> Any:
        x = xs[i]
        m = x.max(axis=axis, keepdims=True)
        if fn_name == "softmax":
            e = np.exp(x - m)
            return e / e.sum(axis=axis, keepdims=True)
        lse = np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
        if fn_name == "log_softmax":
            return x - m - lse
        return (m + lse).squeeze(axis)

    return f


def _scipy(special: Any, fn_name: str, xs: list[np.ndarray], axis: int) -> Callable[[int], Any]:
    fn = getattr(special, fn_name)
    return lambda i: fn(xs[i], axis=axis)


def _torch(torch: Any, fn_name: str, mode: str, xs: list[np.ndarray], outs: Any, axis: int) -> Callable[[int], Any]:
    ts = [torch.from_numpy(x) for x in xs]
    fn = getattr(torch, fn_name)
    if mode == "out" and fn_name != "logsumexp":
        tos = [torch.from_numpy(o) for o in outs]
        return lambda i: fn(ts[i], axis, out=tos[i])
    return lambda i: fn(ts[i], axis)


def _jax(jax: Any, fn_name: str, xs: list[np.ndarray], axis: int) -> Callable[[int], Any]:
    import jax.nn
    import jax.numpy as jnp
    import jax.scipy.special

    base = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
            "logsumexp": jax.scipy.special.logsumexp}[fn_name]
    f = jax.jit(lambda a: base(a, axis=axis))
    js = [jnp.asarray(x) for x in xs]
    f(js[0]).block_until_ready()  # compile outside the timing
    return lambda i: f(js[i]).block_until_ready()


def _peers(names: list[str] | None) -> dict[str, Any]:
    peers: dict[str, Any] = {}
    want = set(names) if names is not None else {"scipy", "torch", "jax"}
    if "scipy" in want:
        try:
            import scipy.special

            peers["scipy"] = scipy.special
        except ImportError:
            pass
    if "torch" in want:
        try:
            import torch

            torch.set_num_threads(2)
            peers["torch"] = torch
        except ImportError:
            pass
    if "jax" in want:
        try:
            import jax

            jax.config.update("jax_enable_x64", True)
            peers["jax"] = jax
        except ImportError:
            pass
    return peers


# --------------------------------------------------------------------------- the run
def run_bench(
    cases: list[Case],
    dtypes: list[str],
    functions: list[str] | tuple[str, ...] = FUNCTIONS,
    repeat: int = 7,
    peers: list[str] | None = None,
    rng: int | np.random.Generator | None = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Time every implementation on every case; returns the results (see :class:`Result`)."""
    gen = np.random.default_rng(rng)
    peer_mods = _peers(peers)
    results: list[Result] = []
    for case in cases:
        for dt in dtypes:
            dtype = np.dtype(dt)
            nbytes = int(np.prod(case.shape)) * dtype.itemsize
            n_in = int(min(4, max(2, -(-(96 << 20) // nbytes))))
            xs = [(gen.standard_normal(case.shape) * 4).astype(dtype) for _ in range(n_in)]
            outs = [np.empty_like(x) for x in xs]
            for o in outs:
                o.fill(0)  # fault the pages in: out= measures the kernel, not the allocator
            for fn_name in functions:
                modes = ("fresh",) if fn_name == "logsumexp" else ("fresh", "out")
                for mode in modes:
                    impls = _implementations(fn_name, mode, case.axis, xs, outs, peer_mods)
                    if progress is not None:
                        progress(f"{case.label} {dt} {fn_name} {mode}: {', '.join(impls)}")
                    for name, (warm, times) in time_rounds(impls, repeat, n_in).items():
                        med = statistics.median(times)
                        moved = nbytes * (1 if fn_name == "logsumexp" else 2)
                        results.append(Result(case.label, dt, fn_name, mode, name, med, warm,
                                              times, moved / med / 1e9))
            del xs, outs
    return results


def latency(repeat: int = 2000) -> dict[str, float]:
    """Per-call time on a 10-element vector (ours and torch's) and import/first-call times."""
    import softargmax

    x = np.arange(10.0)
    softargmax.softmax(x)
    res: dict[str, float] = {}
    for name, f in (("softargmax softmax(10)", lambda: softargmax.softmax(x)),
                    ("softargmax softmax(10, implementation='numba')",
                     lambda: softargmax.softmax(x, implementation="numba"))):
        f()
        t0 = time.perf_counter()
        for _ in range(repeat):
            f()
        res[name] = (time.perf_counter() - t0) / repeat
    try:
        import torch

        t = torch.from_numpy(x)
        torch.softmax(t, 0)
        t0 = time.perf_counter()
        for _ in range(repeat):
            torch.softmax(t, 0)
        res["torch softmax(10)"] = (time.perf_counter() - t0) / repeat
    except ImportError:
        pass
    py = sys.executable
    code = {
        "import softargmax": "import softargmax",
        "import + first numba call (warm cache)":
            "import numpy as np, softargmax; softargmax.softmax(np.ones(100000))",
        # numba's own floor for the line above: importing numba and loading any cached
        # function (numba sets up its compiler's registries first, and imports
        # scipy.linalg where SciPy is installed)
        "numba alone: a one-line cached function (warm cache)":
            "import _numba_floor; _numba_floor.f(1.0)",
        "softargmax softmax 1 2 3 (CLI, end to end)": None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "_numba_floor.py"), "w") as fh:
            fh.write("from numba import njit\n\n\n@njit(cache=True)\ndef f(x):\n    return x + 1.0\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [tmp, os.environ.get("PYTHONPATH")]))}
        for name, src in code.items():
            cmd = [py, "-c", src] if src is not None else [py, "-m", "softargmax.cli", "softmax", "1", "2", "3"]
            best = float("inf")
            for _ in range(3):  # the best of three: the first may fill a cache
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, check=False, env=env)
                dt = time.perf_counter() - t0
                if proc.returncode == 0:
                    best = min(best, dt)
            res[name] = best
    return res


# --------------------------------------------------------------------------- output
def _group(results: list[Result]) -> dict[tuple[str, str, str, str], dict[str, Result]]:
    groups: dict[tuple[str, str, str, str], dict[str, Result]] = {}
    for r in results:
        groups.setdefault((r.case, r.dtype, r.function, r.mode), {})[r.impl] = r
    return groups


def _floor_name(g: dict[str, Result]) -> str | None:
    for k in ("floor (2-thread copy)", "floor (np.copyto)", "floor (x.copy())", "floor (np.sum)"):
        if k in g:
            return k
    return None


def print_table(results: list[Result], lat: dict[str, float] | None = None) -> None:
    """A rich table: time, GB/s and the ratios of every implementation to softargmax."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover
        for r in results:
            print(f"{r.case} {r.dtype} {r.function} {r.mode} {r.impl}: {r.median_s * 1e3:.2f} ms")
        return
    table = Table(title="softargmax benchmark (median; x = time / softargmax's time)")
    for col in ("case", "dtype", "function", "mode", "implementation", "ms", "GB/s", "x", "first call ms"):
        table.add_column(col, justify="right" if col in ("ms", "GB/s", "x", "first call ms") else "left")
    for (case, dt, fn, mode), g in _group(results).items():
        ours = g.get("softargmax")
        for name, r in g.items():
            ratio = r.median_s / ours.median_s if ours else float("nan")
            style = "bold" if name == "softargmax" else None
            table.add_row(case, dt, fn, mode, name, f"{r.median_s * 1e3:.2f}", f"{r.gbps:.1f}",
                          f"{ratio:.2f}", f"{r.warmup_s * 1e3:.1f}", style=style)
        table.add_section()
    Console().print(table)
    if lat:
        lt = Table(title="latency")
        lt.add_column("what")
        lt.add_column("time", justify="right")
        for k, v in lat.items():
            lt.add_row(k, f"{v * 1e6:.1f} us" if v < 1e-2 else f"{v:.3f} s")
        Console().print(lt)


def to_json(results: list[Result], lat: dict[str, float] | None, command: str) -> dict[str, Any]:
    return {"machine": machine_info(), "command": command,
            "results": [asdict(r) for r in results], "latency": lat or {}}


def render_markdown(data: dict[str, Any] | str) -> str:
    """The README's performance table (markdown) from :func:`to_json`'s dict or a JSON path.

    One row per case, dtype, function and mode: softargmax's time and GB/s, its ratio
    to the floor, and each peer's time divided by softargmax's (higher is better for us).
    """
    if isinstance(data, str):
        with open(data) as f:
            data = json.load(f)
    assert isinstance(data, dict)
    results = [Result(**r) for r in data["results"]]
    peers = ["torch", "jax (jit)", "scipy", "numpy naive"]
    lines = []
    m = data.get("machine", {})
    lines.append(f"Machine: {describe_machine(m)}; "
                 f"numpy {m.get('numpy', '?')}, numba {m.get('numba', '-')}, "
                 f"torch {m.get('torch', '-')}, jax {m.get('jax', '-')}, scipy {m.get('scipy', '-')}.")
    lines.append(f"Command: `{data.get('command', 'softargmax bench')}`")
    lines.append("")
    lines.append("| shape | dtype | function | result | softargmax ms | GB/s | floor x | "
                 + " | ".join(f"{p} x" for p in peers) + " |")
    lines.append("|" + "---|" * (7 + len(peers)))
    for (case, dt, fn, mode), g in _group(results).items():
        ours = g.get("softargmax")
        if ours is None:
            continue
        fl = _floor_name(g)
        floor = f"{ours.median_s / g[fl].median_s:.2f}" if fl else "-"
        cells = [f"{g[p].median_s / ours.median_s:.1f}" if p in g else "-" for p in peers]
        lines.append(f"| {case} | {dt} | {fn} | {mode} | {ours.median_s * 1e3:.2f} | "
                     f"{ours.gbps:.1f} | {floor} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("`floor x`: softargmax's time over the floor's (2-thread copy for `out=`, "
                 "`x.copy()` for a fresh result, `np.sum` for logsumexp); peer columns: the "
                 "peer's time over softargmax's.")
    lat = data.get("latency") or {}
    if lat:
        lines.append("")
        for k, v in lat.items():
            lines.append(f"- {k}: " + (f"{v * 1e6:.1f} us" if v < 1e-2 else f"{v:.3f} s"))
    return "\n".join(lines)


def plot(results: list[Result], path: str) -> None:
    """A bar chart of GB/s per case and implementation (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _group(results)
    keys = list(groups)
    names = sorted({r.impl for r in results})
    fig, ax = plt.subplots(figsize=(max(8, len(keys) * 0.9), 5))
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        vals = [groups[k][name].gbps if name in groups[k] else 0.0 for k in keys]
        ax.bar([i + j * width for i in range(len(keys))], vals, width, label=name)
    ax.set_xticks([i + 0.4 for i in range(len(keys))])
    ax.set_xticklabels([" ".join(k) for k in keys], rotation=75, fontsize=6)
    ax.set_ylabel("GB/s (read input + write output)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI
def register_cli(subparsers: Any) -> None:
    """Add the ``bench`` subcommand to the ``softargmax`` command."""
    p = subparsers.add_parser("bench", help="side-by-side benchmark against the floor and the peers",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=run)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small shapes, for a fast run")
    p.add_argument("--shapes", nargs="+", metavar="SHAPE",
                   help="e.g. 2048x32000 32000x2048:0 (':0' reduces axis 0)")
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=list(FUNCTIONS))
    p.add_argument("--peers", nargs="*", default=None, choices=["scipy", "torch", "jax"],
                   help="peers to include (default: every installed one)")
    p.add_argument("--repeat", type=int, default=7, help="timed repeats (median; at least 7)")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurements")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--plot", metavar="PNG", help="write a bar chart")
    p.add_argument("--markdown", metavar="PATH", help="write the README table (markdown)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` (see :func:`register_cli`)."""
    if args.repeat < 7:
        msg = f"--repeat must be at least 7, got {args.repeat}"
        raise ValueError(msg)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES)
    cases = [Case.parse(s) for s in shapes]
    command = "softargmax bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else \
        " ".join(["softargmax bench", *sys.argv[1:]])
    results = run_bench(cases, args.dtypes, args.functions, args.repeat, args.peers,
                        progress=lambda s: print(f"  {s}", file=sys.stderr, flush=True))
    lat = None if args.no_latency else latency()
    print_table(results, lat)
    data = to_json(results, lat, command)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(render_markdown(data) + "\n")
    if args.plot:
        plot(results, args.plot)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m softargmax.bench`` without the ``softargmax`` command."""
    p = argparse.ArgumentParser(prog="softargmax bench", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
