"""Calibration of softmax classifiers: temperature scaling, ECE and reliability diagrams.

A classifier is *calibrated* when, among the samples it predicts with confidence ``c``,
a fraction ``c`` is right. Modern (and weakly regularised) classifiers are often
overconfident. Temperature scaling (Guo et al., 2017) fixes that with one parameter:
the logits are divided by a temperature ``T`` fitted on held-out data, which leaves the
predicted class unchanged and only spreads (T > 1) or sharpens (T < 1) the probabilities.

This module needs SciPy and scikit-learn (``pip install softargmax[sklearn]``);
:func:`reliability_diagram` also needs matplotlib (``softargmax[plot]``), imported only
when it is called.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..core import log_softmax, softmax

__all__ = ["TemperatureScaling", "expected_calibration_error", "reliability_diagram"]


# --------------------------------------------------------------------------- validation
def _check_labels(y: Any, n: int, n_classes: int, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        msg = f"{name} must be an array of integer class indices, got dtype {y.dtype}"
        raise TypeError(msg)
    if y.shape != (n,):
        msg = f"{name} must have shape ({n},) to match the {n} samples, got shape {y.shape}"
        raise ValueError(msg)
    if n and (y.min() < 0 or y.max() >= n_classes):
        msg = (
            f"{name} must hold class indices in [0, {n_classes - 1}], got values in "
            f"[{y.min()}, {y.max()}]"
        )
        raise ValueError(msg)
    return y.astype(np.intp, copy=False)


def _check_real_array(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        msg = f"{name} must be an array of real numbers, got dtype {a.dtype}"
        raise TypeError(msg)
    return a.astype(np.float64, copy=False)


def _check_logits(logits: Any, name: str = "logits") -> np.ndarray:
    """(n, K) float64 logits, K >= 2; a 1-D input is binary log-odds, read as ``[0, z]``."""
    z = _check_real_array(logits, name)
    if z.ndim == 1:
        z = np.stack([np.zeros_like(z), z], axis=1)
    elif z.ndim != 2:
        msg = f"{name} must be 2-D (n_samples, n_classes) or 1-D binary log-odds, got {z.ndim}-D"
        raise ValueError(msg)
    if z.shape[1] < 2:
        msg = f"{name} must have at least 2 classes (columns), got shape {z.shape}"
        raise ValueError(msg)
    if np.isnan(z).any() or np.isposinf(z).any():
        msg = f"{name} must not contain NaN or +inf (-inf marks an impossible class)"
        raise ValueError(msg)
    return z


def _check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    p = _check_real_array(probs, name)
    if p.ndim != 2 or p.shape[1] < 1:
        msg = f"{name} must be 2-D (n_samples, n_classes), got shape {p.shape}"
        raise ValueError(msg)
    if p.shape[0] == 0:
        msg = f"{name} must hold at least one sample, got shape {p.shape}"
        raise ValueError(msg)
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        msg = f"{name} must hold probabilities in [0, 1] (no NaN)"
        raise ValueError(msg)
    return p


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, (bool, np.bool_)) or not isinstance(n_bins, numbers.Integral):
        msg = f"n_bins must be an integer >= 1, got {type(n_bins).__name__} {n_bins!r}"
        raise TypeError(msg)
    if n_bins < 1:
        msg = f"n_bins must be an integer >= 1, got {n_bins}"
        raise ValueError(msg)
    return int(n_bins)


# --------------------------------------------------------------------------- ECE
def _calibration_bins(
    probs: np.ndarray, y: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin sample counts, numbers correct and sums of confidence (top-label).

    Bin ``b`` holds the confidences in ``(b / n_bins, (b + 1) / n_bins]``; a confidence of
    exactly 0 goes to the first bin. The edges are those of ``np.linspace(0, 1, n_bins + 1)``.
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    n_correct = np.bincount(idx, weights=correct, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    return counts, n_correct, conf_sum


def expected_calibration_error(probs: Any, y: Any, n_bins: int = 15) -> float:
    r"""Expected calibration error (ECE) of the top-label confidence.

    Parameters
    ----------
    probs : array_like of shape (n_samples, n_classes)
        Predicted class probabilities (rows of a softmax).
    y : array_like of int, shape (n_samples,)
        True class indices (columns of ``probs``).
    n_bins : int, default 15
        Number of equal-width confidence bins on [0, 1].

    Returns
    -------
    float
        :math:`\sum_b \frac{|B_b|}{n}\,|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)|` in [0, 1].

    Notes
    -----
    The confidence of a sample is its largest probability, the prediction its arg max
    (the first on ties). Bin ``b`` holds confidences in ``(b/n_bins, (b+1)/n_bins]``, as
    in Guo et al.; a bin's accuracy is the fraction of its samples predicted right and its
    confidence their mean confidence. Empty bins count zero. The ECE depends on
    ``n_bins`` and is noisy on small sets; report it with the NLL.

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On Calibration of Modern Neural
       Networks", ICML 2017.
    .. [2] M. P. Naeini, G. Cooper, M. Hauskrecht, "Obtaining Well Calibrated
       Probabilities Using Bayesian Binning", AAAI 2015.

    Examples
    --------
    Four predictions at confidence 0.9, three of them right: accuracy 0.75 in that bin.

    >>> from softargmax.models.calibration import expected_calibration_error
    >>> probs = [[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]
    >>> round(expected_calibration_error(probs, [0, 0, 1, 1]), 12)
    0.15

    Two bins: (0.9, 1] holds two right answers at 0.95 (gap 2 * 0.05), (0.5, 0.6] one
    right and one wrong at 0.6 (gap 2 * 0.1); the ECE is 0.3 / 4:

    >>> probs = [[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]]
    >>> round(expected_calibration_error(probs, [0, 0, 1, 1], n_bins=10), 12)
    0.075
    """
    p = _check_probs(probs)
    labels = _check_labels(y, p.shape[0], p.shape[1])
    counts, n_correct, conf_sum = _calibration_bins(p, labels, _check_n_bins(n_bins))
    return float(np.abs(n_correct - conf_sum).sum() / p.shape[0])


# --------------------------------------------------------------------------- temperature
class TemperatureScaling(TransformerMixin, BaseEstimator):
    r"""Temperature scaling: one temperature ``T`` for the logits, fitted by minimising NLL.

    Parameters
    ----------
    bounds : tuple of two floats, default (1e-2, 1e2)
        The interval ``0 < T_min < T_max`` searched for ``T``. If the optimum lies outside,
        ``temperature_`` is the nearer bound.
    xtol : float, default 1e-7
        Tolerance of the solve in ``log T``: the relative accuracy of ``temperature_``.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature; ``transform`` divides logits by it.
    nll_ : float
        Mean (weighted) negative log-likelihood on the fitting data at ``temperature_``.
    nll_before_ : float
        The same at ``T = 1``.
    n_iter_ : int
        Number of objective evaluations of the 1-D solve.
    n_classes_ : int
        Number of classes (columns of the logits) seen in ``fit``.

    Notes
    -----
    ``fit`` minimises :math:`\mathrm{NLL}(T) = \frac{1}{S}\sum_i s_i
    \big(\operatorname{logsumexp}(z_i / T) - z_{i,y_i} / T\big)` over
    :math:`\log T` in ``log(bounds)`` with bounded Brent
    (:func:`scipy.optimize.minimize_scalar`). The NLL is convex in :math:`\beta = 1/T`,
    so it has one minimum, which the 1-D search finds; the log-likelihood is computed with
    :func:`softargmax.log_softmax` at ``temperature=T``, exact for any logit magnitude.

    Logits are ``(n_samples, n_classes)``; 1-D logits are binary log-odds (of class 1),
    handled as the two-class logits ``[0, z]``. ``-inf`` marks an impossible class; NaN and
    ``+inf`` are errors. Since the arg max does not change, accuracy is unchanged.

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun, K. Q. Weinberger, "On Calibration of Modern Neural
       Networks", ICML 2017.

    Examples
    --------
    Logits that are three times too confident:

    >>> import numpy as np
    >>> from softargmax import softmax
    >>> from softargmax.models.calibration import TemperatureScaling
    >>> rng = np.random.default_rng(0)
    >>> true_logits = rng.normal(scale=2.0, size=(20000, 5))
    >>> p = softmax(true_logits)
    >>> y = (p.cumsum(axis=1) > rng.random((20000, 1))).argmax(axis=1)
    >>> ts = TemperatureScaling().fit(3.0 * true_logits, y)
    >>> round(ts.temperature_, 1)
    3.0
    >>> z = np.array([[6.0, 3.0, 0.0, -3.0, -6.0]])
    >>> ts.transform(z).round(2)
    array([[ 2.01,  1.  ,  0.  , -1.  , -2.01]])
    >>> ts.predict_proba(z).round(3)
    array([[0.638, 0.234, 0.086, 0.031, 0.011]])
    """

    def __init__(self, *, bounds: tuple[float, float] = (1e-2, 1e2), xtol: float = 1e-7) -> None:
        self.bounds = bounds
        self.xtol = xtol

    def _check_params(self) -> tuple[float, float, float]:
        try:
            lo, hi = (float(b) for b in self.bounds)
        except (TypeError, ValueError):
            msg = f"bounds must be a pair of floats (T_min, T_max), got {self.bounds!r}"
            raise ValueError(msg) from None
        if not (0 < lo < hi < math.inf):
            msg = f"bounds must satisfy 0 < T_min < T_max < inf, got {self.bounds!r}"
            raise ValueError(msg)
        xtol = self.xtol
        if isinstance(xtol, (bool, np.bool_)) or not isinstance(xtol, numbers.Real) or not xtol > 0:
            msg = f"xtol must be a real number > 0, got {xtol!r}"
            raise ValueError(msg)
        return lo, hi, float(xtol)

    def fit(self, logits: Any, y: Any, sample_weight: Any = None) -> TemperatureScaling:
        """Fit the temperature on held-out logits and labels.

        Parameters
        ----------
        logits : array_like of shape (n_samples, n_classes) or (n_samples,)
            Logits (pre-softmax scores) of a classifier on data it was not trained on.
        y : array_like of int, shape (n_samples,)
            True class indices (columns of ``logits``).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights, not all zero.

        Returns
        -------
        self : TemperatureScaling
        """
        lo, hi, xtol = self._check_params()
        z = _check_logits(logits)
        n, k = z.shape
        if n == 0:
            msg = "logits must hold at least one sample, got 0"
            raise ValueError(msg)
        labels = _check_labels(y, n, k)
        if sample_weight is None:
            w = np.full(n, 1.0 / n)
        else:
            w = _check_real_array(sample_weight, "sample_weight")
            if w.shape != (n,):
                msg = f"sample_weight must have shape ({n},), got {w.shape}"
                raise ValueError(msg)
            if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
                msg = "sample_weight must be finite, non-negative and not all zero"
                raise ValueError(msg)
            w = w / w.sum()
            keep = w > 0  # zero-weight samples do not count, even with -inf logits
            z, labels, w = z[keep], labels[keep], w[keep]
            n = z.shape[0]
        rows = np.arange(n)
        bad = np.isneginf(z[rows, labels])
        if bad.any():
            msg = (
                f"logits of the true class are -inf in {int(bad.sum())} sample(s) (first: "
                f"{int(np.flatnonzero(bad)[0])}): the NLL is infinite for every temperature"
            )
            raise ValueError(msg)

        def nll(log_t: float) -> float:
            logp = log_softmax(z, axis=1, temperature=math.exp(log_t))
            return -float(w @ logp[rows, labels])

        a, b = math.log(lo), math.log(hi)
        res = optimize.minimize_scalar(nll, bounds=(a, b), method="bounded", options={"xatol": xtol})
        log_t, best = float(res.x), float(res.fun)
        edge = a if log_t - a < b - log_t else b
        if abs(log_t - edge) < 10 * xtol:  # the optimum is at (or beyond) a bound
            at_edge = nll(edge)
            if at_edge <= best:
                log_t, best = edge, at_edge
        self.temperature_ = lo if log_t == a else hi if log_t == b else math.exp(log_t)
        self.nll_ = best
        self.nll_before_ = nll(0.0)
        self.n_iter_ = int(res.nfev)
        self.n_classes_ = k
        return self

    def _checked(self, logits: Any) -> np.ndarray:
        check_is_fitted(self)
        z = _check_logits(logits)
        if z.shape[1] != self.n_classes_:
            msg = f"logits must have {self.n_classes_} classes as in fit, got {z.shape[1]}"
            raise ValueError(msg)
        return z

    def transform(self, logits: Any) -> np.ndarray:
        """Scaled logits ``logits / temperature_`` (same shape as the input).

        Parameters
        ----------
        logits : array_like of shape (n_samples, n_classes) or (n_samples,)

        Returns
        -------
        ndarray of float64, same shape as ``logits``
        """
        self._checked(logits)
        return _check_real_array(logits, "logits") / self.temperature_

    def predict_log_proba(self, logits: Any) -> np.ndarray:
        """Calibrated log-probabilities ``log_softmax(logits, temperature=temperature_)``.

        Parameters
        ----------
        logits : array_like of shape (n_samples, n_classes) or (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.asarray(log_softmax(self._checked(logits), axis=1, temperature=self.temperature_))

    def predict_proba(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits, temperature=temperature_)``.

        Parameters
        ----------
        logits : array_like of shape (n_samples, n_classes) or (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.asarray(softmax(self._checked(logits), axis=1, temperature=self.temperature_))


# --------------------------------------------------------------------------- plot
def reliability_diagram(
    probs: Any,
    y: Any,
    path: str | os.PathLike[str],
    *,
    n_bins: int = 15,
    title: str | None = None,
) -> Path:
    """Draw a reliability diagram (accuracy against confidence per bin) into a PNG file.

    Parameters
    ----------
    probs : array_like of shape (n_samples, n_classes), or a mapping of str to such arrays
        Predicted probabilities. A mapping (e.g. ``{"before": p0, "after": p1}``) draws
        one panel per entry, side by side, all scored against the same ``y``.
    y : array_like of int, shape (n_samples,)
        True class indices.
    path : str or path-like
        The PNG file to write (its folder must exist).
    n_bins : int, default 15
        Confidence bins, as in :func:`expected_calibration_error`.
    title : str, optional
        A title above the panels.

    Returns
    -------
    pathlib.Path
        The file written.

    Notes
    -----
    Each panel shows, per bin, the accuracy (bars), the gap to the bin's mean confidence
    (hatched), the diagonal of perfect calibration, the ECE in the legend and, below it,
    the share of samples per bin. Bars below the diagonal mean overconfidence. matplotlib
    is imported here (only its object-oriented API, no global state, no display needed).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from softargmax.models.calibration import reliability_diagram
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = reliability_diagram([[0.9, 0.1], [0.2, 0.8]], [0, 0], pathlib.Path(d) / "r.png")
    ...     print(out.name, out.stat().st_size > 0)
    r.png True
    """
    panels = dict(probs) if isinstance(probs, Mapping) else {"": probs}
    if not panels:
        msg = "probs must be an array or a non-empty mapping of arrays, got an empty mapping"
        raise ValueError(msg)
    nb = _check_n_bins(n_bins)
    checked = {}
    for label, p in panels.items():
        arr = _check_probs(p, f"probs[{label!r}]" if label else "probs")
        checked[label] = (arr, _check_labels(y, arr.shape[0], arr.shape[1]))
    path = Path(path)
    if not path.parent.is_dir():
        msg = f"path must be in an existing folder, got {str(path)!r}"
        raise OSError(msg)
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        msg = "reliability_diagram needs matplotlib: pip install softargmax[plot]"
        raise ImportError(msg) from None

    fig = Figure(figsize=(4.2 * len(checked), 5.2), layout="constrained")
    axes = fig.subplots(2, len(checked), squeeze=False, height_ratios=[3, 1], sharex=True)
    edges = np.linspace(0.0, 1.0, nb + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, 1.0 / nb
    for col, (label, (p, labels)) in enumerate(checked.items()):
        counts, n_correct, conf_sum = _calibration_bins(p, labels, nb)
        filled = counts > 0
        acc = np.divide(n_correct, counts, out=np.zeros(nb), where=filled)
        conf = np.divide(conf_sum, counts, out=np.zeros(nb), where=filled)
        ece = float(np.abs(n_correct - conf_sum).sum() / p.shape[0])
        ax, hist = axes[0, col], axes[1, col]
        ax.bar(centers[filled], acc[filled], width=width, edgecolor="black", color="tab:blue",
               label="accuracy")
        ax.bar(centers[filled], (conf - acc)[filled], bottom=acc[filled], width=width,
               edgecolor="tab:red", color="tab:red", alpha=0.3, hatch="//", label="gap")
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=label or None)
        ax.legend(loc="upper left", title=f"ECE = {100 * ece:.2f}%", fontsize="small")
        hist.bar(centers, counts / p.shape[0], width=width, edgecolor="black", color="gray")
        hist.set(xlim=(0, 1), xlabel="confidence", ylabel="share of samples")
    if title:
        fig.suptitle(title)
    fig.savefig(path, format="png", dpi=110)
    return path


def demo_section() -> str:
    """A short text tour: temperature scaling of an overconfident classifier on digits.

    Returns
    -------
    str
        ECE and NLL on a test split before and after temperature scaling.

    Examples
    --------
    >>> from softargmax.models.calibration import demo_section
    >>> print(demo_section())  # doctest: +ELLIPSIS
    Temperature scaling of an overconfident SoftmaxRegression on digits ...
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    from .regression import SoftmaxRegression

    X, y = load_digits(return_X_y=True)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=600, random_state=0, stratify=y)
    X_cal, X_te, y_cal, y_te = train_test_split(
        X_rest, y_rest, train_size=0.4, random_state=0, stratify=y_rest
    )
    with threadpool_limits(limits=1, user_api="blas"):  # tiny matrices
        clf = SoftmaxRegression(C=1e4, max_iter=1000).fit(X_tr, y_tr)
    ts = TemperatureScaling().fit(clf.decision_function(X_cal), y_cal)
    z_te = clf.decision_function(X_te)
    before, after = softmax(z_te, axis=1), ts.predict_proba(z_te)
    rows = np.arange(len(y_te))

    def nll(t: float) -> float:
        return float(-log_softmax(z_te, axis=1, temperature=t)[rows, y_te].mean())

    return "\n".join([
        "Temperature scaling of an overconfident SoftmaxRegression on digits "
        f"(C=1e4, {len(y_tr)} train / {len(y_cal)} calibration / {len(y_te)} test)",
        f"  fitted temperature T = {ts.temperature_:.3f} (test accuracy "
        f"{clf.score(X_te, y_te):.4f}, unchanged)",
        f"  test ECE  {expected_calibration_error(before, y_te):.4f} -> "
        f"{expected_calibration_error(after, y_te):.4f}",
        f"  test NLL  {nll(1.0):.4f} -> {nll(ts.temperature_):.4f}",
    ])
