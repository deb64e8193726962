"""SoftmaxRegression against scikit-learn's LogisticRegression on the digits data.

Both minimise the same objective (mean weighted cross-entropy + ||W||^2 / (2 C n)) with
L-BFGS-B and the same options, so they take the same number of iterations; the time per
iteration is what differs. For each case the script fits both (interleaved, after a
warm-up), reports median wall times, their ratio, the iteration counts, the relative
difference of the objectives reached and whether the predictions are identical, and also
the time of one objective-and-gradient evaluation of each.

    python benchmarks/regression.py [--repeats 5] [--threads 1] [--json PATH]

Writes a JSON file (default benchmarks/results/regression.json) with every figure.
Figures taken on a shared, loaded machine are only indicative: re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.special import logsumexp
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import softargmax
from softargmax import _backend
from softargmax.models.regression import SoftmaxRegression, _softmax_cross_entropy_objective

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "regression.json"


def objective(coef, intercept, X, y, C):
    """sklearn's lbfgs objective, independent of both implementations."""
    Z = X @ coef.T + intercept
    ce = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
    return float(ce.mean() + 0.5 / (C * len(y)) * np.sum(coef * coef))


def timed_fit(make, X, y):
    t0 = time.perf_counter()
    est = make().fit(X, y)
    return time.perf_counter() - t0, est


def eval_times(X, y, repeats=200):
    """Seconds per objective+gradient evaluation at a random point, ours and sklearn's."""
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    k, F = 10, X.shape[1]
    rng = np.random.default_rng(0)
    params = rng.normal(scale=0.01, size=k * F + k)
    sw = np.full(len(y), 1 / len(y))
    loss = LinearModelLoss(HalfMultinomialLoss(n_classes=k), fit_intercept=True)
    coef_f = np.asfortranarray(
        np.hstack([params[: k * F].reshape(k, F), params[k * F :, None]])
    ).ravel(order="F")
    yf = y.astype(np.float64)

    def ours():
        _softmax_cross_entropy_objective(params, X, y, sw, 1e-3, k, True)

    def theirs():
        loss.loss_gradient(coef_f, X, yf, None, 1e-3, 1)

    out = {}
    for name, fn in (("softargmax", ours), ("sklearn", theirs)):
        fn()
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(repeats // 5):
                fn()
            samples.append((time.perf_counter() - t0) / (repeats // 5))
        out[name] = min(samples)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads for both")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    X_raw, y = load_digits(return_X_y=True)
    data = {"digits/16": X_raw / 16.0, "digits std": StandardScaler().fit_transform(X_raw)}
    cases = [(d, C, tol) for d in data for C in (0.1, 1.0, 10.0) for tol in (1e-4, 1e-8)]
    rows = []
    with threadpool_limits(limits=args.threads, user_api="blas"):
        ev = eval_times(data["digits std"], y)
        for name, C, tol in cases:
            X = data[name]
            opts = {"C": C, "tol": tol, "max_iter": 10000}
            times: dict[str, list[float]] = {"softargmax": [], "sklearn": []}
            makers = {"softargmax": lambda o=opts: SoftmaxRegression(**o),
                      "sklearn": lambda o=opts: LogisticRegression(**o)}
            fits = {k: timed_fit(m, X, y)[1] for k, m in makers.items()}  # warm-up
            for _ in range(args.repeats):
                for key, make in makers.items():
                    t, fits[key] = timed_fit(make, X, y)
                    times[key].append(t)
            ours, ref = fits["softargmax"], fits["sklearn"]
            f_ours = objective(ours.coef_, ours.intercept_, X, y, C)
            f_ref = objective(ref.coef_, ref.intercept_, X, y, C)
            t_ours, t_ref = (statistics.median(times[k]) for k in ("softargmax", "sklearn"))
            rows.append({
                "data": name, "C": C, "tol": tol,
                "n_iter_softargmax": int(ours.n_iter_[0]), "n_iter_sklearn": int(ref.n_iter_[0]),
                "seconds_softargmax": t_ours, "seconds_sklearn": t_ref,
                "ratio": t_ours / t_ref,
                "objective_rel_diff": (f_ours - f_ref) / f_ref,
                "same_predictions": bool(np.array_equal(ours.predict(X), ref.predict(X))),
            })

    print(f"digits {X_raw.shape}, 10 classes; BLAS threads: {args.threads}; "
          f"median of {args.repeats}; numba kernels registered: {sorted(_backend._KERNELS)}")
    print(f"one objective+gradient evaluation: softargmax {1e3 * ev['softargmax']:.3f} ms, "
          f"sklearn {1e3 * ev['sklearn']:.3f} ms (ratio {ev['softargmax'] / ev['sklearn']:.2f})")
    head = (f"{'data':<11}{'C':>6}{'tol':>7}{'iter ours':>10}{'iter skl':>9}{'ours s':>9}"
            f"{'skl s':>9}{'ratio':>7}{'obj rel diff':>14}{'same pred':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['data']:<11}{r['C']:>6g}{r['tol']:>7g}{r['n_iter_softargmax']:>10}"
              f"{r['n_iter_sklearn']:>9}{r['seconds_softargmax']:>9.4f}{r['seconds_sklearn']:>9.4f}"
              f"{r['ratio']:>7.2f}{r['objective_rel_diff']:>14.2e}{r['same_predictions']!s:>10}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.platform(), "processor": platform.processor(),
        "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "softargmax": softargmax.__version__, "blas_threads": args.threads,
        "repeats": args.repeats, "kernels": sorted(_backend._KERNELS),
    }
    args.json.write_text(json.dumps({"meta": meta, "eval_seconds": ev, "fits": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
