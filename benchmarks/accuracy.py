"""Accuracy against mpmath: the worst relative error (in ulp) of softmax and log_softmax.

    python benchmarks/accuracy.py [--rows 200] [--seed 0]

Each implementation gets the same random float64 rows with |x| up to 600 (so that the
shift by the max is inexact and exp(x - max) spans hundreds of binades); errors are
measured against 400-digit mpmath values, wherever the true value is a normal number.
Prints a Markdown table (the README's accuracy table is this output).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import softargmax as sa  # noqa: E402
from tests.oracles import mp_log_softmax, mp_softmax  # noqa: E402


def peers() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {
        "softargmax": {"softmax": sa.softmax, "log_softmax": sa.log_softmax}
    }
    try:
        import scipy.special as sp

        out["scipy"] = {
            "softmax": lambda x: sp.softmax(x, axis=-1),
            "log_softmax": lambda x: sp.log_softmax(x, axis=-1),
        }
    except ImportError:
        pass
    try:
        import torch

        out["torch"] = {
            "softmax": lambda x: torch.softmax(torch.from_numpy(x), -1).numpy(),
            "log_softmax": lambda x: torch.log_softmax(torch.from_numpy(x), -1).numpy(),
        }
    except ImportError:
        pass
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        out["jax"] = {
            "softmax": lambda x: np.asarray(jax.nn.softmax(x, axis=-1)),
            "log_softmax": lambda x: np.asarray(jax.nn.log_softmax(x, axis=-1)),
        }
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-600, 600, size=(args.rows, 4))
    near = np.stack([np.zeros(args.rows), -rng.uniform(30, 700, args.rows)], axis=1)
    refs = {"softmax": mp_softmax(x), "log_softmax": mp_log_softmax(near)}
    inputs = {"softmax": x, "log_softmax": near}
    eps = np.finfo(np.float64).eps
    print(f"Worst relative error in ulp against mpmath, float64, {args.rows} rows (seed {args.seed}):")
    print("softmax on rows with |x| <= 600; log_softmax of the maximum of [0, -a], a in [30, 700].\n")
    print("| implementation | softmax | log_softmax |")
    print("| --- | --- | --- |")
    for name, fns in peers().items():
        cells = []
        for fn_name in ("softmax", "log_softmax"):
            ref = refs[fn_name]
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                got = np.asarray(fns[fn_name](inputs[fn_name]))  # type: ignore[operator]
            ok = np.abs(ref) >= np.finfo(np.float64).tiny
            err = np.max(np.abs(got[ok] - ref[ok]) / np.abs(ref[ok])) / eps
            cells.append("all digits lost (returns 0)" if err >= 0.999 / eps else f"{err:.3g}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
