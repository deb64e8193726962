"""Softmax and logsumexp of a Dask array on a dask.distributed cluster of two processes.

The public :func:`softargmax.softmax` sees a Dask array and builds a lazy graph
(:mod:`softargmax.dask`): per chunk a (max, scaled sum) state, a tree of merges, then a
blockwise normalisation; the rows here are split across chunks, so no worker ever holds
a whole row.

    python examples/dask_distributed.py                  # 2000 x 100000 float32, ~0.8 GB
    python examples/dask_distributed.py --rows 200 --cols 20000
"""

from __future__ import annotations

import argparse
import time

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import softargmax


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--cols", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, nargs=2, default=(500, 25_000), metavar=("R", "C"))
    args = parser.parse_args(argv)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        x = da.random.default_rng(0).normal(scale=30, size=(args.rows, args.cols), chunks=tuple(args.chunks))
        x = x.astype(np.float32).persist()
        wait(x)
        p = softargmax.softmax(x, axis=-1, temperature=2.0)  # lazy: nothing computed yet
        lse = softargmax.logsumexp(x, axis=-1)
        print(f"{type(p).__module__}.{type(p).__name__}: {p.shape} {p.dtype}, {p.npartitions} chunks, "
              f"{len(p.__dask_graph__())} tasks")
        t0 = time.perf_counter()
        p = p.persist()
        wait(p)
        seconds = time.perf_counter() - t0
        row_sums, lse_values = client.compute([p.sum(axis=-1, dtype=np.float64), lse], sync=True)
        print(f"softmax of {x.nbytes / 1e9:.2f} GB in {seconds:.2f} s on {len(client.scheduler_info()['workers'])} workers")
        print(f"row sums within {np.abs(row_sums - 1).max():.1e} of 1")
        row = x[0].compute()
        np.testing.assert_allclose(p[0].compute(), softargmax.softmax(row, temperature=2.0), rtol=2e-6, atol=1e-38)
        np.testing.assert_allclose(lse_values[0], softargmax.logsumexp(row), rtol=1e-6)
        print("row 0 equals the in-memory softmax and logsumexp")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
