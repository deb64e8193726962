"""Pure array-API reference implementations of the softmax family: the specification.

Every function here takes clean input from the public layer (see ``_validation``): a real
floating array ``x`` of namespace ``xp``, a sorted tuple of reduction ``axes``, a
:class:`~softargmax._validation.Scale` and a boolean ``mask`` of ``x``'s shape or None.
They return arrays in a working dtype that the public layer casts to the result dtype.

The algorithm, shared by all of them, for one distribution (the entries along ``axes``):

1. ``y = sign * x`` (sign -1 for negative beta or softmin); excluded entries become -inf,
   so an excluded NaN is ignored.
2. A NaN among the included entries makes the whole distribution NaN.
3. ``m = max(y)``. If ``m = +inf`` the +inf entries share the mass; if ``m = -inf``
   the support is empty (softmax 0, log-softmax and logsumexp -inf).
4. Otherwise ``z = beta * (y - m)`` is formed as an unevaluated sum ``z_hi + z_lo``
   (error-free transformations), so a shift by a large max and the scale lose nothing:
   ``exp(z)`` keeps full relative accuracy even where ``|z|`` is in the hundreds.
5. ``s = sum(exp(z)) = n0 + rest`` where the ``n0`` entries with ``z = 0`` contribute 1
   exactly; ``log s = log1p((n0 - 1) + rest)`` keeps full relative accuracy next to a
   dominant maximum, where ``log(s)`` would round ``1 + rest`` to 1.

float16/bfloat16 arrive as float32; float32 is computed in float64 where the namespace
and device allow it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import _validation
from ._backend import device_of
from ._validation import Scale

__all__ = ["hardmax", "log_softmax", "logsumexp", "softmax"]


# --------------------------------------------------------------------------- helpers
def _reduce(fn: Any, a: Any, axes: tuple[int, ...]) -> Any:
    """``fn(a, axis=axes, keepdims=True)``, the identity for ``axes == ()``."""
    if not axes:
        return a
    return fn(a, axis=axes, keepdims=True)


def _widen(xp: Any, x: Any) -> Any:
    """float32 -> float64 where the namespace/device supports it."""
    if x.dtype == xp.float32 and _validation.supports_float64(xp, device_of(x)):
        return xp.astype(x, xp.float64)
    return x


def _split_constant(xp: Any, dtype: Any) -> float:
    # Veltkamp splitting constant 2**ceil(p/2) + 1.
    return 134217729.0 if dtype == xp.float64 else 4097.0


def _two_prod(xp: Any, a: Any, b: Any, c: float) -> tuple[Any, Any]:
    """``a * b = p + err`` exactly (Dekker), for finite, non-overflowing operands."""
    p = a * b

    def split(v: Any) -> tuple[Any, Any]:
        t = c * v
        hi = t - (t - v)
        return hi, v - hi

    ah, al = split(a)
    bh, bl = split(b)
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, err


def _finite_or_zero(xp: Any, a: Any) -> Any:
    return xp.where(xp.isfinite(a), a, xp.zeros_like(a))


def _scaled(xp: Any, v: Any, scale: Scale) -> Any:
    """``|beta| * v`` (``v / T`` for a temperature), rounded once."""
    if scale.temperature is not None:
        return v / scale.temperature
    if scale.beta is not None:
        return v * scale.beta
    return v


def _shifted(xp: Any, y: Any, m: Any, scale: Scale) -> tuple[Any, Any]:
    """``z = |beta| * (y - m)`` as ``z_hi + z_lo`` with ``z_lo`` the rounding errors.

    ``z_lo`` is zero wherever ``z_hi`` is not finite.
    """
    d = y - m
    # TwoSum: y + (-m) = d + d_lo exactly.
    bb = d - y
    d_lo = (y - (d - bb)) + (-m - bb)
    if scale.is_unit:
        return d, _finite_or_zero(xp, d_lo)
    c = _split_constant(xp, d.dtype)
    if scale.temperature is not None:
        t = scale.temperature
        q = d / t
        p, err = _two_prod(xp, q, xp.full_like(q, t), c)
        z_lo = (((d - p) - err) + d_lo) / t
        z_hi = q
    else:
        beta = scale.factor
        z_hi, err = _two_prod(xp, d, xp.full_like(d, beta), c)
        z_lo = err + d_lo * beta
    if scale.factor < 1:
        # y - m may overflow although beta * (y - m) does not.
        overflow = xp.isinf(d) & xp.isfinite(y)
        z_hi = xp.where(overflow, _scaled(xp, y, scale) - _scaled(xp, m, scale), z_hi)
    z_lo = xp.where(xp.isfinite(z_hi), _finite_or_zero(xp, z_lo), xp.zeros_like(z_lo))
    return z_hi, z_lo


class _Rows(NamedTuple):
    """What every member of the family needs, per distribution (keepdims shapes)."""

    y: Any  # signed input, excluded entries -inf (NaN kept)
    nan_row: Any  # a NaN among the included entries
    inf_row: Any  # max is +inf (and no NaN)
    empty_row: Any  # max is -inf: empty support (and no NaN)
    m: Any  # the max of y, 0 where not finite
    z_hi: Any
    z_lo: Any
    e: Any  # exp(z) (times b for logsumexp)
    s: Any  # sum of e
    log_s: Any  # log |s|, accurate next to s = 1
    is_max: Any  # entries with z == 0 exactly


def _rows(
    xp: Any, x: Any, axes: tuple[int, ...], scale: Scale, mask: Any, b: Any = None
) -> _Rows:
    inf = xp.asarray(float("inf"), dtype=x.dtype, device=device_of(x))
    zero = xp.zeros_like(x)
    y = -x if scale.sign < 0 else x
    if mask is not None:
        y = xp.where(mask, y, -inf)
    if b is not None:
        y = xp.where(b == 0, -inf, y)  # b = 0 excludes the entry, even if it is NaN
        b = xp.where(b == 0, zero, b)
    nan = xp.isnan(y) if b is None else xp.isnan(y) | xp.isnan(b)
    nan_row = _reduce(xp.any, nan, axes)
    y_nn = xp.where(nan, -inf, y)
    m = _reduce(xp.max, y_nn, axes)
    inf_row = (m == inf) & ~nan_row
    empty_row = (m == -inf) & ~nan_row
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    z_hi, z_lo = _shifted(xp, y_nn, m, scale)
    e = xp.exp(z_hi)
    e = e + e * z_lo
    is_max = (z_hi == 0) & (z_lo == 0)
    if b is not None:
        e = e * b
    ones = xp.where(is_max, xp.ones_like(x) if b is None else b, zero)
    n0 = _reduce(xp.sum, ones, axes)
    rest = _reduce(xp.sum, xp.where(is_max, zero, e), axes)
    s = n0 + rest
    s_m1 = (n0 - 1) + rest
    small = xp.abs(s_m1) < 0.5
    log_s = xp.where(small, xp.log1p(xp.where(small, s_m1, xp.zeros_like(s_m1))), xp.log(xp.abs(s)))
    return _Rows(y, nan_row, inf_row, empty_row, m, z_hi, z_lo, e, s, log_s, is_max)


def _masked(xp: Any, res: Any, mask: Any, fill: Any) -> Any:
    """Excluded entries are structural: ``fill`` (0 or -inf) even in a NaN row."""
    return res if mask is None else xp.where(mask, res, fill)


def _nan_like(xp: Any, a: Any) -> Any:
    return xp.full_like(a, float("nan"))


# --------------------------------------------------------------------------- functions
def softmax(xp: Any, x: Any, axes: tuple[int, ...], scale: Scale, mask: Any) -> Any:
    if _size(x) == 0:
        return x
    with np.errstate(all="ignore"):
        x = _widen(xp, x)
        r = _rows(xp, x, axes, scale, mask)
        zero = xp.zeros_like(x)
        at_inf = r.y == float("inf")
        n_inf = _reduce(xp.sum, xp.astype(at_inf, x.dtype), axes)
        p_inf = xp.where(at_inf, 1 / n_inf, zero)
        p = r.e / r.s
        p = xp.where(r.inf_row, p_inf, p)
        p = xp.where(r.empty_row, zero, p)
        return _masked(xp, xp.where(r.nan_row, _nan_like(xp, x), p), mask, zero)


def log_softmax(xp: Any, x: Any, axes: tuple[int, ...], scale: Scale, mask: Any) -> Any:
    if _size(x) == 0:
        return x
    with np.errstate(all="ignore"):
        x = _widen(xp, x)
        r = _rows(xp, x, axes, scale, mask)
        minus_inf = xp.full_like(x, -float("inf"))
        at_inf = r.y == float("inf")
        n_inf = _reduce(xp.sum, xp.astype(at_inf, x.dtype), axes)
        lp_inf = xp.where(at_inf, -xp.log(n_inf), minus_inf)
        lp = (r.z_hi - r.log_s) + r.z_lo
        lp = xp.where(r.inf_row, lp_inf, lp)
        lp = xp.where(r.empty_row, minus_inf, lp)
        return _masked(xp, xp.where(r.nan_row, _nan_like(xp, x), lp), mask, minus_inf)


def logsumexp(
    xp: Any,
    x: Any,
    axes: tuple[int, ...],
    scale: Scale,
    mask: Any,
    b: Any = None,
) -> tuple[Any, Any]:
    """``(lse, sign)`` with keepdims shapes; ``lse = log|sum b exp(beta x)|``."""
    with np.errstate(all="ignore"):
        x = _widen(xp, x)
        if b is not None:
            b = _widen(xp, b)
            dtype = xp.result_type(x.dtype, b.dtype)
            x, b = xp.astype(x, dtype), xp.astype(b, dtype)
            shape = np.broadcast_shapes(tuple(x.shape), tuple(b.shape))
            x, b = xp.broadcast_to(x, shape), xp.broadcast_to(b, shape)
            if mask is not None:
                mask = xp.broadcast_to(mask, shape)
        if _size(x) == 0 or any(x.shape[a] == 0 for a in axes):
            shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
            lse = xp.full(shape, -float("inf"), dtype=x.dtype, device=device_of(x))
            return lse, xp.zeros_like(lse)
        r = _rows(xp, x, axes, scale, mask, b)
        one = xp.ones_like(r.s)
        if b is None:
            sign = one
            inf_sign = one
        else:
            at_inf = r.y == float("inf")
            b_inf = _reduce(xp.sum, xp.where(at_inf, b, xp.zeros_like(b)), axes)
            inf_sign = xp.sign(b_inf)
            sign = xp.sign(r.s)
        lse = _scaled(xp, r.m, scale) + r.log_s
        lse = xp.where(sign == 0, xp.full_like(lse, -float("inf")), lse)
        lse = xp.where(r.inf_row, xp.where(inf_sign == 0, _nan_like(xp, lse), xp.full_like(lse, float("inf"))), lse)
        sign = xp.where(r.inf_row, inf_sign, sign)
        lse = xp.where(r.empty_row, xp.full_like(lse, -float("inf")), lse)
        sign = xp.where(r.empty_row, xp.zeros_like(sign), sign)
        lse = xp.where(r.nan_row, _nan_like(xp, lse), lse)
        sign = xp.where(r.nan_row | xp.isnan(lse), _nan_like(xp, sign), sign)
        return lse, sign


def hardmax(xp: Any, x: Any, axes: tuple[int, ...], mask: Any) -> Any:
    """The beta -> +inf limit of softmax: the maxima share the mass equally."""
    if _size(x) == 0:
        return x
    with np.errstate(all="ignore"):
        inf = xp.asarray(float("inf"), dtype=x.dtype, device=device_of(x))
        y = x if mask is None else xp.where(mask, x, -inf)
        nan = xp.isnan(y)
        nan_row = _reduce(xp.any, nan, axes)
        m = _reduce(xp.max, xp.where(nan, -inf, y), axes)
        at_max = xp.astype((y == m) & (m > -inf), x.dtype)
        n = _reduce(xp.sum, at_max, axes)
        zero = xp.zeros_like(at_max)
        p = xp.where(n > 0, at_max / xp.where(n > 0, n, xp.ones_like(n)), zero)
        return _masked(xp, xp.where(nan_row, _nan_like(xp, x), p), mask, zero)


def _size(x: Any) -> int:
    n = 1
    for s in x.shape:
        n *= int(s)
    return n
