"""Validation and small numerics shared by the large-output layers (private)."""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_int as as_positive_int  # the shared integer check
from .._validation import float_input, result_float_dtype

__all__ = [
    "LossGrad",
    "as_class_ids",
    "as_counts",
    "as_hidden",
    "as_positive_int",
    "as_weight",
    "check_reduction",
    "log_sigmoid",
    "reduce_loss",
    "sigmoid",
]

REDUCTIONS = ("mean", "sum", "none")


class LossGrad(NamedTuple):
    """A loss with its gradients, the output-layer gradient kept sparse.

    Attributes
    ----------
    loss : float or ndarray
        The reduced loss (a float), or the per-example losses for ``reduction="none"``.
    dh : ndarray
        Gradient with respect to the hidden vectors, of their shape.
    rows : ndarray of int64
        The distinct rows of the output parameters that the loss touched, sorted.
    dW : ndarray
        Gradient with respect to those rows, shape ``(len(rows), D)``.
    db : ndarray or None
        Gradient with respect to the biases of those rows (``None`` without biases).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.losses import full_softmax_loss
    >>> res = full_softmax_loss(np.zeros((1, 2)), np.ones((3, 2)), np.zeros(3), [1],
    ...                         return_grad=True)
    >>> round(res.loss, 6), res.rows, res.db
    (1.098612, array([0, 1, 2]), array([ 0.33333333, -0.66666667,  0.33333333]))
    """

    loss: Any
    dh: np.ndarray
    rows: np.ndarray
    dW: np.ndarray
    db: np.ndarray | None


def as_counts(counts: Any, name: str = "counts") -> np.ndarray:
    """A non-empty 1-d float64 array of finite, non-negative frequencies."""
    try:
        c = np.asarray(counts)
    except (TypeError, ValueError) as err:
        msg = f"{name} must be a 1-d array of non-negative numbers: {err}"
        raise TypeError(msg) from None
    if c.dtype.kind not in "biuf":
        msg = f"{name} must be a 1-d array of non-negative real numbers, got dtype {c.dtype}"
        raise TypeError(msg)
    if c.ndim != 1 or c.size == 0:
        msg = f"{name} must be a non-empty 1-d array, got shape {c.shape}"
        raise ValueError(msg)
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        msg = f"{name} must be finite and non-negative, got min {c.min()!r}, max {c.max()!r}"
        raise ValueError(msg)
    return c


def _float_array(x: Any, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as err:
        msg = f"{name} must be an array of real numbers: {err}"
        raise TypeError(msg) from None
    work, _, _ = float_input(np, a, name)
    return np.asarray(work)


def as_hidden(h: Any, dim: int | None = None, name: str = "h") -> tuple[np.ndarray, bool]:
    """``h`` as a 2-d float array ``(N, D)``; the flag says it was a single 1-d vector."""
    a = _float_array(h, name)
    single = a.ndim == 1
    if single:
        a = a[None, :]
    if a.ndim != 2:
        msg = f"{name} must be 1-d (D,) or 2-d (N, D), got shape {np.shape(h)}"
        raise ValueError(msg)
    if dim is not None and a.shape[1] != dim:
        msg = f"{name} must have {dim} features in its last axis, got shape {np.shape(h)}"
        raise ValueError(msg)
    return a, single


def as_weight(W: Any, name: str = "W") -> np.ndarray:
    """The (V, D) output weight matrix as a float array."""
    a = _float_array(W, name)
    if a.ndim != 2 or a.shape[0] == 0:
        msg = f"{name} must be a 2-d array (V, D) with V >= 1, got shape {a.shape}"
        raise ValueError(msg)
    return a


def as_class_ids(target: Any, n: int, num_classes: int, name: str = "target") -> np.ndarray:
    """Integer class ids in ``[0, num_classes)``, shape ``(n,)`` (a scalar when n == 1 is fine)."""
    if isinstance(target, numbers.Integral) and not isinstance(target, (bool, np.bool_)):
        t = np.asarray([target])
    else:
        t = np.asarray(target)
        if t.dtype.kind not in "iu":
            msg = f"{name} must be integer class ids, got dtype {t.dtype}"
            raise TypeError(msg)
        t = t.reshape(-1) if t.ndim == 0 else t
    if t.ndim != 1 or t.shape[0] != n:
        msg = f"{name} must have shape ({n},) to match the hidden vectors, got {np.shape(target)}"
        raise ValueError(msg)
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        msg = f"{name} must lie in [0, {num_classes}), got values in [{t.min()}, {t.max()}]"
        raise ValueError(msg)
    return t.astype(np.int64)


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        msg = f"reduction must be one of {REDUCTIONS}, got {reduction!r}"
        raise ValueError(msg)
    return str(reduction)


def reduce_loss(losses: np.ndarray, reduction: str) -> tuple[Any, float]:
    """The reduced loss and the factor that scales per-example gradients."""
    n = losses.shape[0]
    if reduction == "none":
        return losses, 1.0
    if reduction == "sum":
        return float(losses.sum()), 1.0
    return (float(losses.mean()) if n else 0.0), (1.0 / n if n else 0.0)


def log_sigmoid(z: Any) -> Any:
    """``log(1 / (1 + exp(-z)))`` without overflow: ``-logaddexp(0, -z)`` (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        return -np.logaddexp(0.0, -z)


def sigmoid(z: Any) -> Any:
    """The logistic function, exact in both tails."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(log_sigmoid(z))


def result_dtype(*arrays: np.ndarray) -> Any:
    return result_float_dtype(np, *(a.dtype for a in arrays))
