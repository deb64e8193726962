"""Benchmark of softargmax beyond memory (streaming) and beyond one machine (Dask).

One command, one table, one JSON file:

    PYTHONPATH=src python benchmarks/scale.py                 # 0.5 GB file, 1 GB Dask array
    PYTHONPATH=src python benchmarks/scale.py --gb 8          # the 8 GB target

Streaming: a float32 ``.npy`` file of ``--gb`` GB is normalised row by row with
``softmax_chunked`` into a second memmap, each run in a fresh subprocess that reports its
wall time (the output flushed to disk included) and peak RSS (``VmHWM``). The floor is
reading and writing the file once: a chunked ``np.copyto`` from the source memmap into a
new one, with the same page handling, in the same subprocess setting. Two layouts of the
same bytes: rows of ``--k`` entries (whole rows per chunk: one pass) and rows of 2**24
entries (longer than a chunk: two passes, accumulate then write); each with numba's
default thread count and with one thread. ``--rounds`` rounds of all the cases (each
round starting one case later), the best time of each reported. The files are deleted at
the end.

Dask: on one LocalCluster (two worker processes, one thread each), ``softargmax.softmax``
against the plain Dask expression ``e = exp(x - max); e / sum(e)`` on the same persisted
float32 array (its blocks spread evenly over the workers), with the softmax axis chunked
and not: ``--repeat`` interleaved runs of each after one untimed run, each result
persisted and then released, the median reported; the error of both against float64
``softargmax.softmax`` in float32 ulps. ``--dask-shape`` must be a multiple of 8 rows
and 4 columns. The default, 4096 x 65536 (1 GB), gives blocks of 128 MB (the axis not
chunked: 512 rows) and 64 MB (chunked: 1024 x 16384), the size that Dask's own guidance
and its default ``array.chunk-size`` (128 MiB) aim at; ``--dask-shape 1024 65536`` gives
blocks of 32 and 16 MB, where the scheduler's per-task latencies weigh more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

# Python puts this script's folder first on sys.path, and benchmarks/sparse.py would then
# shadow the `sparse` package that dask imports.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

_CHILD = r"""
import json, sys, time
import numpy as np
from softargmax import streaming


def hwm():
    # Peak resident memory of this process (MiB): VmHWM, which, unlike ru_maxrss, does
    # not inherit the parent's peak across fork + exec.
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


mode, src_path, out_path, k, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
raw = np.load(src_path, mmap_mode="r")
src = raw.reshape(-1, k)
out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=src.shape)
if mode != "copy":
    # load the compiled kernels (serial and parallel forms, one and two passes) first
    warm = np.zeros((2, 1 << 17), np.float32)
    streaming.softmax_chunked(warm, chunk_size=1 << 16)
    streaming.softmax_chunked(warm, chunk_size=1 << 18)
    streaming.softmax_chunked(warm[:, :64], chunk_size=32)
rss0 = hwm()
t0 = time.perf_counter()
if mode == "copy":
    flat_src, flat_out = src.reshape(-1), out.reshape(-1)
    for i in range(0, flat_src.size, chunk):
        # straight from one mapping into the other (as the kernels read and write them)
        np.copyto(flat_out[i:i + chunk], flat_src[i:i + chunk])
        streaming._release(flat_src[i:i + chunk])
        streaming._release(flat_out[i:i + chunk])
else:
    streaming.softmax_chunked(src, out=out, chunk_size=chunk)
out.flush()
seconds = time.perf_counter() - t0
peak = hwm()
if mode != "copy":
    row = np.asarray(src[-1][:1 << 20])
    from softargmax import softmax
    lse = streaming.logsumexp_chunked(src[-1:], axis=-1)  # the whole row's normaliser
    np.testing.assert_allclose(out[-1][:1 << 20], np.exp(row.astype(np.float64) - lse[0]), rtol=2e-6, atol=1e-38)
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak, "rss_before_mib": rss0}))
"""


def make_file(path: str, n: int) -> None:
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n,))
    rng = np.random.default_rng(0)
    step = 1 << 24
    block = rng.normal(scale=10, size=step).astype(np.float32)
    for i in range(0, n, step):
        m = min(step, n - i)
        a[i : i + m] = block[:m] + np.float32(i % 7)
    a.flush()
    del a


def run_child(mode: str, src: str, out: str, k: int, chunk: int, threads: int | None = None) -> dict:
    env = dict(os.environ)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, src, out, str(k), str(chunk)],
        capture_output=True, text=True, env=env, check=False,
    )
    if res.returncode:
        raise RuntimeError(f"{mode} failed: {res.stderr[-2000:]}")
    if os.path.exists(out):
        os.remove(out)
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_streaming(args: argparse.Namespace) -> list[dict]:
    directory = args.dir or tempfile.mkdtemp(prefix="softargmax-bench-")
    long_k = 1 << 24
    n = max(long_k, int(args.gb * 1e9) // 4 // long_k * long_k)  # whole long rows
    free = shutil.disk_usage(directory).free
    if free < 2 * 4 * n + (2 << 30):
        print(f"streaming: skipped, {free / 1e9:.1f} GB free in {directory} < 2 x {4 * n / 1e9:.1f} GB + 2 GB")
        return []
    src, out = os.path.join(directory, "x.npy"), os.path.join(directory, "p.npy")
    cases: list[tuple[str, str, int, int | None]] = [("read + write once (floor)", "copy", args.k, None)]
    threads = os.cpu_count() or 1
    for label, k in ((f"rows of {args.k}: one pass", args.k), ("rows of 2**24: two passes", long_k)):
        cases.append((f"softmax_chunked, {label}, {threads} threads", "softmax", k, None))
        if threads > 1:
            cases.append((f"softmax_chunked, {label}, 1 thread", "softmax", k, 1))
    runs: dict[str, list[dict]] = {c[0]: [] for c in cases}
    try:
        t0 = time.perf_counter()
        make_file(src, n)
        print(f"streaming: wrote {4 * n / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s to {directory}")
        for i in range(args.rounds):  # rounds of all the cases, so that load drifts hit all alike
            for label, mode, k, nthreads in cases[i % len(cases):] + cases[:i % len(cases)]:
                runs[label].append(run_child(mode, src, out, k, args.chunk_size, nthreads))
    finally:
        for p in (src, out):
            if os.path.exists(p):
                os.remove(p)
        if args.dir is None:
            os.rmdir(directory)
    rows = []
    for label, _, _, _ in cases:
        best = min(runs[label], key=lambda r: r["seconds"])
        rows.append({"case": label, "gb": 4 * n / 1e9, **best, "all_seconds": [r["seconds"] for r in runs[label]]})
    floor = rows[0]["seconds"]
    for r in rows:
        r["speed_vs_floor"] = floor / r["seconds"]
        r["gb_per_s"] = 2 * r["gb"] / r["seconds"]
    return rows


def ulp_error(got: np.ndarray, exact: np.ndarray) -> float:
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return float(np.max(np.abs(got.astype(np.float64) - exact) / spacing))


def _normal_block(seed: tuple[int, ...], shape: tuple[int, int]) -> np.ndarray:
    return (np.random.default_rng(seed).normal(scale=30, size=shape) + 1000).astype(np.float32)


def placed_array(client: Any, shape: tuple[int, int], chunks: tuple[int, int]) -> Any:
    """A persisted float32 Dask array, N(1000, 30**2), whose blocks lie in a checkerboard
    over the workers: the same number on each (both methods run where the data is; left
    to the scheduler, the blocks were once split 11 and 5, and a worker sat idle half of
    each run)."""
    import dask
    import dask.array as da
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])
    (r, c), (br, bc) = shape, chunks
    futures = [[client.submit(_normal_block, (1, i, j), (br, bc), workers=[workers[(i + j) % len(workers)]],
                              pure=False) for j in range(c // bc)] for i in range(r // br)]
    x = da.block([[da.from_delayed(dask.delayed(f), shape=(br, bc), dtype=np.float32) for f in row]
                  for row in futures]).persist()
    wait(x)
    del futures
    deadline = time.perf_counter() + 10
    while sum(len(v) for v in client.has_what().values()) > x.npartitions and time.perf_counter() < deadline:
        time.sleep(0.02)  # the submitted blocks released: only x's keys (the same data) are left
    return x


def bench_dask(args: argparse.Namespace) -> list[dict]:
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    import softargmax
    import softargmax.dask

    rows: list[dict[str, Any]] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        # load numba and the compiled kernels in every worker before timing
        def warm() -> None:
            for chunks in ((2, 32), (2, 64)):
                x = da.ones((4, 64), chunks=chunks, dtype=np.float32)
                softargmax.dask.softmax(x).compute(scheduler="sync")

        client.run(warm)
        r, c = args.dask_shape
        for label, chunks in (("axis not chunked", (r // 8, c)), ("axis chunked", (r // 4, c // 4))):
            x = placed_array(client, (r, c), chunks)
            placed = sorted(len(v) for v in client.has_what().values())
            held = sum(placed)  # x's blocks

            def ours(x=x):
                return softargmax.softmax(x, axis=-1)

            def plain(x=x):
                e = da.exp(x - x.max(axis=-1, keepdims=True))
                return e / e.sum(axis=-1, keepdims=True)

            sample = x[: chunks[0]].compute().astype(np.float64)
            exact = softargmax.softmax(sample)
            fns = (("softargmax.dask", ours), ("plain exp(x-max)/sum", plain))
            times: dict[str, list[float]] = {name: [] for name, _ in fns}
            got = {}
            for i in range(args.repeat + 1):  # interleaved, so that load drifts hit both alike
                for name, fn in fns:
                    t0 = time.perf_counter()
                    y = fn().persist()
                    wait(y)
                    if i:  # the first run warms up (the workers' memory grows to its size)
                        times[name].append(time.perf_counter() - t0)
                    got[name] = y[: chunks[0]].compute()
                    # the keys are deterministic: release them so the next run recomputes
                    client.cancel(y)
                    del y
                    deadline = time.perf_counter() + 10
                    while sum(len(v) for v in client.has_what().values()) > held and \
                            time.perf_counter() < deadline:
                        time.sleep(0.05)
            for name, _ in fns:
                rows.append({"case": f"dask {label}: {name}", "shape": [r, c], "chunks": list(chunks),
                             "blocks_per_worker": placed,
                             "seconds": float(np.median(times[name])), "all_seconds": times[name],
                             "max_err_ulp": ulp_error(got[name], exact)})
            base = rows[-1]["seconds"]
            rows[-2]["speedup_vs_plain"] = base / rows[-2]["seconds"]
            rows[-1]["speedup_vs_plain"] = 1.0
            client.cancel(x)  # (the functions above still refer to it)
            del x
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=0.5, help="streaming file size (GB)")
    parser.add_argument("--k", type=int, default=4096, help="row length of the one-pass layout")
    parser.add_argument("--chunk-size", type=int, default=1 << 20)
    parser.add_argument("--dir", default=None, help="directory for the files")
    parser.add_argument("--dask-shape", type=int, nargs=2, default=(4096, 65536))
    parser.add_argument("--repeat", type=int, default=5, help="Dask runs per case (median)")
    parser.add_argument("--rounds", type=int, default=2, help="streaming rounds of all cases (best)")
    parser.add_argument("--skip", choices=["streaming", "dask"], action="append", default=[])
    parser.add_argument("--json", default="benchmarks/results/scale.json")
    args = parser.parse_args(argv)

    from softargmax.bench import describe_machine, machine_info

    m = machine_info()
    result: dict = {"machine": {**m, "load_before": os.getloadavg()},
                    "command": " ".join([os.path.basename(sys.executable), *sys.argv])}
    print(f"{describe_machine(m)}; load average before: {os.getloadavg()[0]:.1f}")
    if "streaming" not in args.skip:
        result["streaming"] = bench_streaming(args)
        print(f"\n{'streaming case (best of --rounds)':<58}{'GB':>7}{'s':>9}{'GB/s':>8}{'vs floor':>10}"
              f"{'peak RSS MiB':>14}")
        for r in result["streaming"]:
            print(f"{r['case']:<58}{r['gb']:>7.2f}{r['seconds']:>9.2f}{r['gb_per_s']:>8.2f}"
                  f"{r['speed_vs_floor']:>10.2f}{r['peak_rss_mib']:>14.0f}")
    if "dask" not in args.skip:
        result["dask"] = bench_dask(args)
        print(f"\n{'dask case (2 worker processes, median of --repeat)':<58}{'s':>8}{'speedup':>9}{'err ulp':>9}")
        for r in result["dask"]:
            print(f"{r['case']:<58}{r['seconds']:>8.2f}{r['speedup_vs_plain']:>9.2f}{r['max_err_ulp']:>9.2f}")
    result["machine"]["load_after"] = os.getloadavg()
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
