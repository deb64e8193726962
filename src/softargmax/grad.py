"""Derivatives of softmax and log-softmax: Jacobian, JVP and VJP.

For ``p = softmax(beta * x)`` the Jacobian with respect to ``x`` is
``beta * (diag(p) - p p^T)``, so both products are ``beta * p * (v - <p, v>)``.
For ``logp = log_softmax(beta * x)`` the VJP is ``beta * (g - p * sum(g))``.

Masked entries (``p = 0``, ``logp = -inf``) and rows of empty support get zero
derivatives, never NaN, whatever the incoming vector holds there. The functions are
written against the array API, so they work on NumPy, PyTorch, JAX, ... alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import get_namespace, is_numpy
from ._reference import _reduce
from ._validation import float_input, normalize_axis, resolve_scale, result_float_dtype

__all__ = ["log_softmax_vjp", "softmax_jacobian", "softmax_jvp", "softmax_vjp"]

Array = Any


def _pair(a: Any, v: Any, names: tuple[str, str]) -> tuple[Any, Any, Any, Any]:
    xp, (a, v) = get_namespace(a, v)
    a, a_dtype, _ = float_input(xp, a, names[0])
    v, v_dtype, _ = float_input(xp, v, names[1])
    dtype = result_float_dtype(xp, a_dtype, v_dtype)
    try:
        shape = np.broadcast_shapes(tuple(v.shape), tuple(a.shape))
    except ValueError:
        shape = None
    if shape != tuple(a.shape):
        msg = f"{names[1]} of shape {tuple(v.shape)} does not broadcast to {names[0]}'s shape {tuple(a.shape)}"
        raise ValueError(msg)
    work = xp.result_type(a.dtype, v.dtype)
    return xp, xp.astype(a, work, copy=False), xp.astype(xp.broadcast_to(v, shape), work, copy=False), dtype


def _done(xp: Any, res: Any, dtype: Any) -> Any:
    res = res if res.dtype == dtype else xp.astype(res, dtype)
    return res[()] if is_numpy(xp) and res.ndim == 0 else res


def _beta(temperature: Any, beta: Any, base: Any) -> float:
    return resolve_scale(temperature, beta, base).signed_beta


def softmax_jvp(
    p: Array,
    v: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
) -> Array:
    r"""Jacobian-vector product of softmax: ``J v = beta * p * (v - sum(p * v))``.

    Parameters
    ----------
    p : array_like
        The softmax output ``softmax(x, axis, ...)``.
    v : array_like
        Tangent with respect to ``x``, broadcastable to ``p``.
    axis : int, tuple of ints or None, default -1
        The distribution axis (or axes) used for ``p``.
    temperature, beta, base : float, optional
        The scale used for ``p``; the result carries the factor beta.

    Returns
    -------
    ndarray
        The directional derivative of ``softmax(x)`` along ``v``, of ``p``'s shape;
        zero at excluded entries.

    Examples
    --------
    >>> from softargmax import softmax, softmax_jvp
    >>> p = softmax([1.0, 2.0, 3.0])
    >>> softmax_jvp(p, [1.0, 0.0, 0.0])
    array([ 0.08192507, -0.02203304, -0.05989202])
    """
    xp, p, v, dtype = _pair(p, v, ("p", "v"))
    axes = normalize_axis(axis, p.ndim)
    zero = xp.zeros_like(p)
    with np.errstate(invalid="ignore", over="ignore"):  # masked entries are selected away
        dot = _reduce(xp.sum, xp.where(p == 0, zero, p * v), axes)
        res = xp.where(p == 0, zero, p * (v - dot))
    return _done(xp, res * _beta(temperature, beta, base), dtype)


def softmax_vjp(
    p: Array,
    g: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
) -> Array:
    r"""Vector-Jacobian product of softmax: ``g^T J = beta * p * (g - sum(p * g))``.

    The softmax Jacobian is symmetric, so this is :func:`softmax_jvp` with the
    cotangent ``g`` in place of the tangent.

    Parameters
    ----------
    p : array_like
        The softmax output.
    g : array_like
        Cotangent (gradient of a loss with respect to ``p``), broadcastable to ``p``.
    axis, temperature, beta, base
        As in :func:`softmax_jvp`.

    Returns
    -------
    ndarray
        The gradient of the loss with respect to ``x``.

    Examples
    --------
    >>> from softargmax import softmax, softmax_vjp
    >>> p = softmax([0.0, 0.0])
    >>> softmax_vjp(p, [1.0, 0.0], temperature=0.5)
    array([ 0.5, -0.5])
    """
    return softmax_jvp(p, g, axis, temperature=temperature, beta=beta, base=base)


def softmax_jacobian(
    p: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
) -> Array:
    r"""The softmax Jacobian ``beta * (diag(p) - p p^T)``, shape ``(..., K, K)``.

    Parameters
    ----------
    p : array_like
        The softmax output.
    axis : int, tuple of ints or None, default -1
        The distribution axis. The last two axes of the result run over it (several
        axes are flattened in C order into one of length K); the other axes keep their
        order in front.
    temperature, beta, base : float, optional
        The scale used for ``p``.

    Returns
    -------
    ndarray
        ``J[..., i, j] = d p_i / d x_j``; symmetric, rows sum to zero.

    Examples
    --------
    >>> from softargmax import softmax_jacobian
    >>> softmax_jacobian([0.5, 0.5])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    xp, (p,) = get_namespace(p)
    p, dtype, _ = float_input(xp, p, "p")
    axes = normalize_axis(axis, p.ndim)
    rest = [i for i in range(p.ndim) if i not in axes]
    p = xp.permute_dims(p, (*rest, *axes))
    batch = tuple(p.shape[: len(rest)])
    k = int(np.prod([p.shape[len(rest) + i] for i in range(len(axes))]))
    p = xp.reshape(p, (*batch, k))
    outer = p[..., :, None] * p[..., None, :]
    eye = xp.eye(k, dtype=p.dtype, device=getattr(p, "device", None))
    jac = eye * p[..., None, :] - outer
    return _done(xp, jac * _beta(temperature, beta, base), dtype)


def log_softmax_vjp(
    logp: Array,
    g: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
) -> Array:
    r"""Vector-Jacobian product of log-softmax: ``beta * (g - exp(logp) * sum(g))``.

    Parameters
    ----------
    logp : array_like
        The log-softmax output.
    g : array_like
        Cotangent with respect to ``logp``, broadcastable to it. Entries where
        ``logp = -inf`` (excluded) neither receive nor pass on gradient.
    axis, temperature, beta, base
        As in :func:`softmax_jvp`.

    Returns
    -------
    ndarray
        The gradient with respect to ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax import log_softmax, log_softmax_vjp
    >>> logp = log_softmax([1.0, 2.0, -np.inf])
    >>> log_softmax_vjp(logp, [1.0, 0.0, 5.0])
    array([ 0.73105858, -0.73105858,  0.        ])
    """
    xp, logp, g, dtype = _pair(logp, g, ("logp", "g"))
    axes = normalize_axis(axis, logp.ndim)
    support = logp > -float("inf")
    zero = xp.zeros_like(g)
    g = xp.where(support, g, zero)
    total = _reduce(xp.sum, g, axes)
    with np.errstate(invalid="ignore", over="ignore"):
        res = xp.where(support, g - xp.exp(logp) * total, zero)
    return _done(xp, res * _beta(temperature, beta, base), dtype)
