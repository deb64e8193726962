"""numba kernels of :mod:`softargmax.streaming`: the (max, scaled sum) state of rows and the
normalisation of rows by a given state.

Each kernel works on a C-contiguous 2-D block ``x`` of shape (R, K): R distributions (or
parts of them) of K entries, float32 or float64, computed in float64. The arithmetic is
the scalar transcription of :func:`softargmax._reference._shifted` (an error-free shift
and scale), so the kernels agree with the NumPy path to the rounding of ``exp`` and of
the summation order. Rows run in parallel.

Scale arguments: ``neg`` (sign -1: softmin, negative beta), ``mode`` (0 unit scale, 1
multiply by ``factor`` = |beta|, 2 divide by ``factor`` = the temperature). A ``mask`` is
read only when ``use_mask`` is true (pass a (1, 1) dummy otherwise).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from numba import prange

_SPLIT = 134217729.0  # Veltkamp's constant 2**27 + 1 for float64


@nb.njit(cache=True, inline="always")
def _two_prod(a: float, b: float) -> tuple[float, float]:
    p = a * b
    t = _SPLIT * a
    ah = t - (t - a)
    al = a - ah
    t = _SPLIT * b
    bh = t - (t - b)
    bl = b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, err


@nb.njit(cache=True, inline="always")
def _shift(y: float, m: float, mode: int, factor: float) -> tuple[float, float]:
    """``|beta| (y - m) = z_hi + z_lo``; ``z_lo`` is 0 where either part is not finite."""
    d = y - m
    bb = d - y
    d_lo = (y - (d - bb)) + (-m - bb)
    if mode == 0:
        if not math.isfinite(d_lo):
            d_lo = 0.0
        return d, d_lo
    if mode == 2:
        q = d / factor
        p, err = _two_prod(q, factor)
        z_lo = (((d - p) - err) + d_lo) / factor
        z_hi = q
        if factor > 1.0 and math.isinf(d) and math.isfinite(y):
            z_hi = y / factor - m / factor
    else:
        z_hi, err = _two_prod(d, factor)
        z_lo = err + d_lo * factor
        if factor < 1.0 and math.isinf(d) and math.isfinite(y):
            z_hi = y * factor - m * factor
    if not (math.isfinite(z_hi) and math.isfinite(z_lo)):
        z_lo = 0.0
    return z_hi, z_lo


def _ro(dtype: Any, ndim: int) -> Any:
    """A read-only C-contiguous array type (writeable arrays are accepted too)."""
    return nb.types.Array(dtype, ndim, "C", readonly=True)


def _rw(dtype: Any, ndim: int) -> Any:
    return nb.types.Array(dtype, ndim, "C")


# --------------------------------------------------------------------------- row helpers
@nb.njit(cache=True)
def _value(x, mask, use_mask, neg, i, j):  # type: ignore[no-untyped-def]
    """``sign * x[i, j]`` in float64, or -inf where the mask excludes the entry."""
    if use_mask and not mask[i, j]:
        return -np.inf
    y = np.float64(x[i, j])
    return -y if neg else y


@nb.njit(cache=True)
def _row_max(x, mask, use_mask, neg, i):  # type: ignore[no-untyped-def]
    """``(max, nan)`` over the included entries of row ``i`` (max -inf if a NaN is seen)."""
    m = -np.inf
    for j in range(x.shape[1]):
        y = _value(x, mask, use_mask, neg, i, j)
        if y != y:
            return -np.inf, True
        if y > m:
            m = y
    return m, False


@nb.njit(cache=True)
def _count_inf(x, mask, use_mask, neg, i):  # type: ignore[no-untyped-def]
    n = 0.0
    for j in range(x.shape[1]):
        if _value(x, mask, use_mask, neg, i, j) == np.inf:
            n += 1.0
    return n


@nb.njit(cache=True)
def _log_s(n0, rest):  # type: ignore[no-untyped-def]
    """``log |n0 + rest|``, by ``log1p`` where the sum is close to 1."""
    s_m1 = (n0 - 1.0) + rest
    return math.log1p(s_m1) if abs(s_m1) < 0.5 else math.log(abs(n0 + rest))


@nb.njit(cache=True)
def _special_row(x, mask, use_mask, neg, i, nan, m, n_inf, log, out):  # type: ignore[no-untyped-def]
    """Write row ``i`` if it has a NaN, +inf entries or no support; return whether it did.

    Excluded entries stay structural zeros (-inf for log) even in a NaN row.
    """
    zero = -np.inf if log else 0.0
    k = x.shape[1]
    if nan:
        for j in range(k):
            out[i, j] = zero if use_mask and not mask[i, j] else np.nan
        return True
    if m == np.inf:
        p_inf = -math.log(n_inf) if log else 1.0 / n_inf
        for j in range(k):
            out[i, j] = p_inf if _value(x, mask, use_mask, neg, i, j) == np.inf else zero
        return True
    if m == -np.inf:
        for j in range(k):
            out[i, j] = zero
        return True
    return False


_B, _F64 = nb.types.boolean, nb.types.float64
_STATE_SIGS = [
    nb.types.void(_ro(t, 2), _ro(_B, 2), _B, _B, nb.types.int64, _F64,
                  _rw(_F64, 1), _rw(_F64, 1), _rw(_F64, 1), _rw(_B, 1))
    for t in (nb.types.float32, nb.types.float64)
]


@nb.njit(_STATE_SIGS, cache=True, parallel=True)
def row_states(x, mask, use_mask, neg, mode, factor, m_out, n0_out, rest_out, nan_out):  # type: ignore[no-untyped-def]
    """The state (m, n0, rest, nan) of each row of ``x``."""
    rows, k = x.shape
    for i in prange(rows):
        m, nan = _row_max(x, mask, use_mask, neg, i)
        n0 = 0.0
        rest = 0.0
        if m == np.inf:
            n0 = _count_inf(x, mask, use_mask, neg, i)
        elif m > -np.inf:
            for j in range(k):
                y = _value(x, mask, use_mask, neg, i, j)
                z_hi, z_lo = _shift(y, m, mode, factor)
                if z_hi == 0.0 and z_lo == 0.0:
                    n0 += 1.0
                else:
                    e = math.exp(z_hi)
                    rest += e + e * z_lo
        m_out[i] = m
        n0_out[i] = n0
        rest_out[i] = rest
        nan_out[i] = nan


_NORM_SIGS = [
    nb.types.void(_ro(t, 2), _ro(_B, 2), _B, _B, nb.types.int64, _F64,
                  _ro(_F64, 1), _ro(_F64, 1), _ro(_F64, 1), _ro(_B, 1), _B, _rw(t, 2))
    for t in (nb.types.float32, nb.types.float64)
]


@nb.njit(_NORM_SIGS, cache=True, parallel=True)
def row_normalise(x, mask, use_mask, neg, mode, factor, m, n0, rest, nan, log, out):  # type: ignore[no-untyped-def]
    """softmax (``log`` false) or log_softmax of each row of ``x`` given its final state."""
    rows, k = x.shape
    for i in prange(rows):
        mi = m[i]
        # for a row with +inf entries the state's n0 is their count
        if _special_row(x, mask, use_mask, neg, i, nan[i], mi, n0[i], log, out):
            continue
        s = n0[i] + rest[i]
        log_s = _log_s(n0[i], rest[i])
        for j in range(k):
            if use_mask and not mask[i, j]:
                out[i, j] = -np.inf if log else 0.0
                continue
            z_hi, z_lo = _shift(_value(x, mask, use_mask, neg, i, j), mi, mode, factor)
            if log:
                out[i, j] = (z_hi - log_s) + z_lo
            else:
                e = math.exp(z_hi)
                out[i, j] = (e + e * z_lo) / s


_ROWS_SIGS = [
    nb.types.void(_ro(t, 2), _ro(_B, 2), _B, _B, nb.types.int64, _F64, _B, _rw(t, 2), nb.types.int64)
    for t in (nb.types.float32, nb.types.float64)
]


@nb.njit(_ROWS_SIGS, cache=True, parallel=True)
def row_softmax(x, mask, use_mask, neg, mode, factor, log, out, nblocks):  # type: ignore[no-untyped-def]
    """softmax or log_softmax of whole rows in one read: the state and the output share
    one ``exp`` per entry (kept in a float64 scratch row); equal to :func:`row_states`
    followed by :func:`row_normalise`. Rows are split in ``nblocks`` contiguous groups
    (a few per thread), each with its scratch rows."""
    rows, k = x.shape
    nblocks = max(1, min(rows, nblocks))
    for blk in prange(nblocks):
        z_hi_row = np.empty(k)
        z_lo_row = np.empty(k)
        for i in range(blk * rows // nblocks, (blk + 1) * rows // nblocks):
            m, nan = _row_max(x, mask, use_mask, neg, i)
            n_inf = _count_inf(x, mask, use_mask, neg, i) if m == np.inf else 0.0
            if _special_row(x, mask, use_mask, neg, i, nan, m, n_inf, log, out):
                continue
            n0 = 0.0
            rest = 0.0
            for j in range(k):
                if use_mask and not mask[i, j]:
                    z_hi_row[j] = -np.inf
                    z_lo_row[j] = 0.0
                    continue
                z_hi, z_lo = _shift(_value(x, mask, use_mask, neg, i, j), m, mode, factor)
                if z_hi == 0.0 and z_lo == 0.0:
                    n0 += 1.0
                    e = 1.0
                else:
                    e = math.exp(z_hi)
                    e = e + e * z_lo
                    rest += e
                z_hi_row[j] = z_hi
                z_lo_row[j] = e if not log else z_lo
            if log:
                log_s = _log_s(n0, rest)
                for j in range(k):
                    out[i, j] = (z_hi_row[j] - log_s) + z_lo_row[j]
            else:
                s = n0 + rest
                for j in range(k):
                    out[i, j] = z_lo_row[j] / s if z_hi_row[j] > -np.inf else 0.0
