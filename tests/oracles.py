"""Independent references for the core functions, shared by tests (and benchmarks).

``mp_*`` compute in mpmath at 60 significant digits from the exact binary values of the
inputs, so they are the truth against which relative errors are measured. ``PEERS`` maps
each public function to peer implementations where their semantics agree with ours on
finite, unmasked input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath
import numpy as np

mpmath.mp.dps = 400  # exp(-745) next to 1 needs ~340 digits


def _rows(x: np.ndarray, axis: int) -> tuple[np.ndarray, tuple[int, ...]]:
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape


def _scale(v: float, beta: float, temperature: float | None) -> Any:
    """beta * v, or v / T exactly (T is not rounded to 1/T)."""
    if temperature is not None:
        return mpmath.mpf(float(v)) / mpmath.mpf(temperature)
    return mpmath.mpf(float(v)) * mpmath.mpf(beta)


def mp_log_softmax_row(row: np.ndarray, beta: float = 1.0, temperature: float | None = None) -> list[Any]:
    z = [_scale(v, beta, temperature) for v in row]
    m = max(z)
    lse = mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in z))
    return [(v - m) - lse for v in z]


def mp_softmax(
    x: np.ndarray, axis: int = -1, beta: float = 1.0, temperature: float | None = None
) -> np.ndarray:
    """Softmax in 60-digit arithmetic, returned as float64 (finite inputs only)."""
    rows, shape = _rows(x, axis)
    out = np.array([[float(mpmath.exp(v)) for v in mp_log_softmax_row(r, beta, temperature)] for r in rows])
    return np.moveaxis(out.reshape(shape), -1, axis)


def mp_log_softmax(x: np.ndarray, axis: int = -1, beta: float = 1.0) -> np.ndarray:
    rows, shape = _rows(x, axis)
    out = np.array([[float(v) for v in mp_log_softmax_row(r, beta)] for r in rows])
    return np.moveaxis(out.reshape(shape), -1, axis)


def mp_logsumexp(x: np.ndarray, axis: int = -1, beta: float = 1.0) -> np.ndarray:
    rows, shape = _rows(x, axis)
    out = []
    for r in rows:
        z = [_scale(v, beta, None) for v in r]
        m = max(z)
        out.append(float(m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in z))))
    return np.array(out).reshape(shape[:-1])


def _scipy(name: str) -> Callable[..., Any] | None:
    try:
        import scipy.special
    except ImportError:  # pragma: no cover
        return None
    fn = getattr(scipy.special, name)
    return lambda x, axis=-1: fn(x, axis=axis)


def _torch(name: str) -> Callable[..., Any] | None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    fn = {"softmax": torch.softmax, "log_softmax": torch.log_softmax, "logsumexp": torch.logsumexp}[name]
    return lambda x, axis=-1: fn(torch.from_numpy(np.ascontiguousarray(x)), axis).numpy()


def _jax(name: str) -> Callable[..., Any] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:  # pragma: no cover
        return None
    jax.config.update("jax_enable_x64", True)
    fn = {
        "softmax": jax.nn.softmax,
        "log_softmax": jax.nn.log_softmax,
        "logsumexp": jax.scipy.special.logsumexp,
    }[name]
    return lambda x, axis=-1: np.asarray(fn(jnp.asarray(x), axis=axis))


PEERS: dict[str, dict[str, Callable[..., Any]]] = {
    name: {
        peer: fn
        for peer, fn in (("scipy", _scipy(name)), ("torch", _torch(name)), ("jax", _jax(name)))
        if fn is not None
    }
    for name in ("softmax", "log_softmax", "logsumexp")
}
