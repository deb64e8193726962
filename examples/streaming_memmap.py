"""Softmax of an on-disk float32 array bigger than the memory the run is allowed.

Writes a (rows, k) float32 ``.npy`` file of ``--gb`` gigabytes of random logits, normalises
every row with :func:`softargmax.streaming.softmax_chunked` into a second memmap, checks
some rows against the in-memory :func:`softargmax.softmax`, and reports the time and the
peak resident memory of the process. With ``--long-rows`` each row is longer than a chunk,
so the two-pass (accumulate, then write) path runs.

    python examples/streaming_memmap.py                 # 64 MB, a few seconds
    python examples/streaming_memmap.py --gb 8          # the real thing (16 GB of disk)
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import numpy as np

from softargmax import softmax
from softargmax.streaming import softmax_chunked


def make_file(path: str, rows: int, k: int, rng: np.random.Generator) -> None:
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, k))
    step = max(1, (1 << 22) // k)
    for i in range(0, rows, step):
        a[i : i + step] = rng.normal(scale=10, size=(min(step, rows - i), k))
    a.flush()
    del a


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=0.0625, help="size of the input file in GB")
    parser.add_argument("--k", type=int, default=4096, help="entries per row (distribution)")
    parser.add_argument("--long-rows", action="store_true", help="rows of 2**24 entries: two passes")
    parser.add_argument("--chunk-size", type=int, default=1 << 20, help="elements per chunk")
    parser.add_argument("--dir", default=None, help="directory for the files (default: a temporary one)")
    parser.add_argument("--max-rss-gb", type=float, default=1.0, help="fail if the peak RSS exceeds this")
    args = parser.parse_args(argv)

    k = (1 << 24) if args.long_rows else args.k
    rows = max(1, int(args.gb * 1e9) // (4 * k))
    directory = args.dir or tempfile.mkdtemp(prefix="softargmax-")
    src_path, out_path = os.path.join(directory, "logits.npy"), os.path.join(directory, "probs.npy")
    rng = np.random.default_rng(0)
    try:
        make_file(src_path, rows, k, rng)
        src = np.load(src_path, mmap_mode="r")
        out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float32, shape=src.shape)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        t0 = time.perf_counter()
        softmax_chunked(src, axis=-1, out=out, chunk_size=args.chunk_size)
        out.flush()
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        size = src.nbytes / 1e9
        print(f"input      {rows} x {k} float32 = {size:.3f} GB on disk ({directory})")
        print(f"time       {seconds:.2f} s  ({2 * size / seconds:.2f} GB/s read + written)")
        print(f"peak RSS   {peak:.2f} GiB (before the call: {rss0:.2f} GiB)")
        for i in sorted({0, rows // 2, rows - 1}):
            want = softmax(np.asarray(src[i]))
            np.testing.assert_allclose(out[i], want, rtol=2e-6, atol=1e-38)
            assert abs(float(out[i].sum(dtype=np.float64)) - 1) < 1e-4
        print("check      rows 0, middle, last equal the in-memory softmax")
        if peak > args.max_rss_gb:
            print(f"FAIL: peak RSS {peak:.2f} GiB > {args.max_rss_gb} GiB")
            return 1
        return 0
    finally:
        for p in (src_path, out_path):
            if os.path.exists(p):
                os.remove(p)
        if args.dir is None:
            os.rmdir(directory)


if __name__ == "__main__":
    raise SystemExit(main())
