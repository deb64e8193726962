"""Fused numba kernels for softmax, log_softmax and logsumexp (and softmin through the sign).

The algorithm is the reference's (``softargmax._reference``), reorganised into passes
over memory; for one distribution with entries ``y = sign * x`` (excluded entries -inf):

1. ``m = max(y)`` with ``llvm.maxnum`` (vectorised; a NaN is ignored here and caught in 2).
2. ``z = beta * (y - m)`` carried as ``z_hi + z_lo`` (TwoSum of the shift and an exact
   FMA product for the scale, in the input's dtype: float32 runs in float32 lanes with
   :func:`._exp.exp32f`, twice the SIMD width of float64), ``e = exp(z)``, and the
   float64 sums ``n0`` (the maxima, ``y == m``, each contributing 1) and ``rest`` (the
   others). softmax stores ``e`` in ``out`` on the way, and so does log_softmax on whole
   rows (the exps are summed from ``out`` block by block, and the output pass then finds
   ``out`` in cache). A NaN among the included entries
   makes ``rest`` NaN. The unit scale (beta = 1) runs a loop of its own without the
   products. logsumexp's sum (:func:`_row_lse`, and on short rows) skips the
   compensation: the shift rounded once, ``exp(z) * 2**64`` summed (float32), within its
   bound; the maxima are still counted apart.
3. softmax: ``out *= 1 / (n0 + rest)`` while the row is still in cache; log_softmax:
   ``out = (z_hi - log_s) + z_lo`` with ``log_s = log1p((n0 - 1) + rest)`` (accurate next
   to a dominant maximum; float32 input shifted exactly in float64 there, no exp is
   needed), at unit scale ``out = (y - c_hi) - c_lo`` with ``c = m + log_s`` split in two
   (in the input's dtype; exact next to the max, 1 ulp elsewhere); logsumexp returns
   ``(m, n0, rest)`` per distribution.

Distributions whose max is not finite or whose sum is NaN (+inf entries, empty support,
NaN) go to a scalar routine with the reference's semantics. Layouts:

* rows (the reduced axes are the last, contiguous): one task per row, or per chunk of a
  long row (chunks of ``CHUNK`` elements run in parallel; their ``(m, n0, rest)`` are
  merged and a second parallel pass rescales each chunk by ``exp(beta(m_c - m)) / s``);
* short rows (``K < SHORT``): blocks of rows, transposed into a buffer (``K`` rows of one
  entry per row) so that the max, exp and sum passes vectorise across the rows; softmax
  is scaled and transposed back in one loop, log_softmax writes each row from the input
  (it needs no exp there), and ``log s`` is computed for the whole block at once
  (:func:`._exp.log1p_sum`, a vectorisable log);
* columns (the reduced axes are followed by others): ``(outer, K, inner)`` without a
  transpose copy, vectorised across the contiguous inner dimension. A task is a tile of
  whole rows (up to ``COL_WIDTH`` columns: a task that streams contiguous memory runs
  1.6x faster than one that takes part of each row, where every row starts a new page
  and the prefetcher starts over) and a chunk of ``K`` (the tiles are split along ``K``
  when there are too few of them for the threads). The first pass is online over blocks
  of ``COL_BLOCK`` rows (block max, rescale of the running sums, exps relative to the
  running max; the exp loop in the input's dtype, the float64 sums a loop of their
  own); softmax stores those exps and the shift of each block. The second pass merges
  the chunks' ``(m, n0, rest)`` per column, then softmax rescales each block by
  ``exp(beta (m_block - m)) / s`` (one exp per element in all) and log_softmax writes
  ``z - log s``.

float32 softmax stores ``exp(z) * 2**64`` (``_exp_store``): a normal number down to
``z = -110``, so the final product by ``2**-64 / s`` rounds a subnormal probability once.

Every kernel exists in a serial form (small inputs: no parallel launch; it releases the
GIL, so that a pool of Python threads can run several at once) and a parallel one
(``prange`` over tasks). Only ``reassoc`` (and ``contract``) fast-math flags are used,
on the reductions; the error-free transformations live in functions without them (LLVM
keeps fast-math flags per instruction when it inlines).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._exp import exp32f, exp32f_2p64, exp32f_2p64_1, exp64, fma, log1p_sum, maxnum
from ._store import address, log_unit_nt

SOFTMAX = 0
LOG_SOFTMAX = 1
LOGSUMEXP = 2

# status of a distribution
NORMAL = 0
HAS_NAN = 1
HAS_INF = 2
EMPTY = 3

CHUNK = 1 << 16  # elements per task of a long row (a float64 chunk is 512 KiB: fits L2)
SHORT = 64  # rows shorter than this are processed in transposed blocks
SHORT_BLOCK = 4096  # elements per block of short rows
COL_WIDTH = 2048  # the widest column task (state arrays of this size); api picks the width
COL_BLOCK = 64  # rows of K per block of the online column pass
SUM_BLOCK = 1024  # the sums are accumulated per block, blocks added with compensation
STREAM_BYTES = 1 << 25  # outputs of 32 MiB or more are written with non-temporal stores

_FLAGS = {"reassoc", "contract"}
_INF = np.inf
_INF32 = np.float32(np.inf)
_ZERO32 = np.float32(0.0)


# --------------------------------------------------------------------------- dtype helpers
def _neg_inf(x):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_neg_inf)
def _neg_inf_ov(x):  # type: ignore[no-untyped-def]
    if x == types.float32:
        return lambda x: np.float32(-np.inf)
    return lambda x: -np.inf


def _like(v, like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_like)
def _like_ov(v, like):  # type: ignore[no-untyped-def]
    """``v`` rounded to ``like``'s dtype."""
    if like == types.float32:
        return lambda v, like: np.float32(v)
    return lambda v, like: np.float64(v)


def _shift(y, m, bhi, blo):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_shift, jit_options={"fastmath": {"contract"}})
def _shift_ov(y, m, bhi, blo):  # type: ignore[no-untyped-def]
    """``z = beta * (y - m)`` as ``(z_hi, z_lo)``; ``z_lo`` is 0 where ``z_hi`` is not finite."""
    if y == types.float64:

        def impl(y, m, bhi, blo):  # type: ignore[no-untyped-def]
            d = y - m
            bb = d - y  # TwoSum: y + (-m) = d + dlo exactly
            dlo = (y - (d - bb)) + (-m - bb)
            zhi = d * bhi
            zlo = fma(d, bhi, -zhi) + (d * blo + dlo * bhi)
            if d == -_INF and y > -_INF:  # y - m overflowed although beta * (y - m) may not
                zhi = y * bhi - m * bhi
                zlo = 0.0
            if not (zhi > -_INF):
                zlo = 0.0
            return zhi, zlo

        return impl

    def impl32(y, m, bhi, blo):  # type: ignore[no-untyped-def]
        # the float64 algorithm in float32 arithmetic (twice the SIMD width): beta split
        # into float32 hi + lo (loop-invariant), TwoSum of the shift, exact FMA product
        b_hi = np.float32(bhi)
        b_lo = np.float32((bhi - np.float64(b_hi)) + blo)
        d = y - m
        bb = d - y
        dlo = (y - (d - bb)) + (-m - bb)
        zhi = d * b_hi
        zlo = fma(d, b_hi, -zhi) + (d * b_lo + dlo * b_hi)
        if d == -_INF32 and y > -_INF32:  # overflow of y - m: z is far below exp's range
            zhi = y * b_hi - m * b_hi
            zlo = _ZERO32
        if not (zhi > -_INF32):
            zlo = _ZERO32
        return zhi, zlo

    return impl32


def _shift_unit(y, m):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_shift_unit, jit_options={"fastmath": {"contract"}})
def _shift_unit_ov(y, m):  # type: ignore[no-untyped-def]
    """``z = y - m`` as ``(z_hi, z_lo)`` (TwoSum); ``z_lo`` is meaningless where ``z_hi`` is
    -inf, which the exp ignores."""

    def impl(y, m):  # type: ignore[no-untyped-def]
        d = y - m
        bb = d - y
        return d, (y - (d - bb)) + (-m - bb)

    return impl


def _shift_wide(y, m, bhi, blo, unit):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_shift_wide, jit_options={"fastmath": {"contract"}})
def _shift_wide_ov(y, m, bhi, blo, unit):  # type: ignore[no-untyped-def]
    """``z`` in float64 for an output that needs no exp (log_softmax): float32 input is
    shifted exactly in float64, float64 input as :func:`_shift` (``unit``: beta = 1)."""
    if y == types.float64:

        def impl(y, m, bhi, blo, unit):  # type: ignore[no-untyped-def]
            if unit:
                zhi, zlo = _shift_unit(y, m)
                return zhi, (zlo if zhi > -_INF else 0.0)
            return _shift(y, m, bhi, blo)

        return impl

    def impl32(y, m, bhi, blo, unit):  # type: ignore[no-untyped-def]
        d = np.float64(y) - np.float64(m)
        if unit:
            return d, 0.0
        return d * bhi, (d * blo if d > -_INF else 0.0)

    return impl32


def _exp_z(zhi, zlo, like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_exp_z)
def _exp_z_ov(zhi, zlo, like):  # type: ignore[no-untyped-def]
    """``exp(z_hi + z_lo)`` at the accuracy of ``like``'s dtype."""
    if like == types.float64:
        return lambda zhi, zlo, like: exp64(zhi, zlo)
    return lambda zhi, zlo, like: exp32f(zhi, zlo)


def _exp_store(zhi, zlo, like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_exp_store)
def _exp_store_ov(zhi, zlo, like):  # type: ignore[no-untyped-def]
    """What softmax stores before it divides by the sum: ``exp(z)`` (float64), or
    ``exp(z) * 2**64`` (float32: no subnormal is rounded before the final product, which
    rounds once). The sum of the stored values normalises either."""
    if like == types.float64:
        return lambda zhi, zlo, like: exp64(zhi, zlo)
    return lambda zhi, zlo, like: exp32f_2p64(zhi, zlo)


def _store_unit(like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_store_unit)
def _store_unit_ov(like):  # type: ignore[no-untyped-def]
    """``exp(0)`` as ``_exp_store`` and ``_exp_sum`` give it: 1, or ``2**64`` for float32
    (a power of two: dividing by it is exact)."""
    if like == types.float64:
        return lambda like: 1.0
    return lambda like: 2.0**64


@njit(cache=True, fastmath=False)  # (explicit: numba passes a caller's flags to a callee that sets none)
def _two_sum_add(s, c, v):  # type: ignore[no-untyped-def]
    """Neumaier: add ``v`` to the compensated sum ``s + c``. Never reassociated, even when
    called from a fast-math kernel: that would cancel the compensation."""
    t = s + v
    if abs(s) >= abs(v):
        c += (s - t) + v
    else:
        c += (v - t) + s
    return t, c


@njit(cache=True)
def _log_s(n0, rest):  # type: ignore[no-untyped-def]
    """``log(n0 + rest)`` as ``log1p((n0 - 1) + rest)`` (a tiny rest next to a single
    maximum keeps its relative accuracy), without branches: loops over rows vectorise."""
    return log1p_sum(n0 - 1.0, rest)


# --------------------------------------------------------------------------- row passes
@njit(cache=True, fastmath=_FLAGS)
def _row_max(x, sign):  # type: ignore[no-untyped-def]
    ninf = _neg_inf(sign)
    m = ninf
    for i in range(x.shape[0]):
        m = maxnum(m, (x[i] * sign))
    return m


@njit(inline="always")
def _z(y, m, bhi, blo, unit):  # type: ignore[no-untyped-def]
    """``_shift``, or its unit-scale form when ``unit`` (a constant at each call site:
    the kernels run one loop per case so that the unit loop carries no products)."""
    if unit:
        return _shift_unit(y, m)
    return _shift(y, m, bhi, blo)


@njit(cache=True)
def _is_unit(bhi, blo):  # type: ignore[no-untyped-def]
    return bhi == 1.0 and blo == 0.0


@njit(inline="always")
def _sums_loop(x, sign, m, bhi, blo, unit):  # type: ignore[no-untyped-def]
    """``(n0, rest)`` over a block: the maxima (``y == m``, each ``exp(0) = 1``) counted
    apart, the others' exps of the compensated shift (``_exp_z``) summed in float64.
    ``unit`` is a constant at each call site: one loop per case."""
    zero = sign - sign
    one = sign * sign
    n0 = zero  # counts in the input's dtype: exact (blocks are short), half the width
    rest = 0.0
    for i in range(x.shape[0]):
        y = x[i] * sign
        zhi, zlo = _z(y, m, bhi, blo, unit)
        e = _exp_z(zhi, zlo, sign)
        top = y == m  # z == 0 exactly: exp(z) = 1, counted apart (log1p keeps a tiny rest)
        n0 += one if top else zero
        rest += 0.0 if top else e
    return np.float64(n0), rest


@njit(cache=True, fastmath=_FLAGS)
def _block_sums(x, sign, m, bhi, blo):  # type: ignore[no-untyped-def]
    """``(n0, rest)`` over one block: the number of maxima (``y == m``, each ``exp(0) = 1``)
    and the float64 sum of ``exp(z)`` over the other entries (float32 exps, computed in
    float32 lanes, are widened as they are added)."""
    if _is_unit(bhi, blo):
        return _sums_loop(x, sign, m, bhi, blo, True)
    return _sums_loop(x, sign, m, bhi, blo, False)


@njit(inline="always")
def _split_sums(x, sign, m, e):  # type: ignore[no-untyped-def]
    """``(n0, rest)`` of a block whose exps are in ``e``: the maxima (``y == m``) counted,
    the others' exps summed in float64."""
    zero = sign - sign
    one = sign * sign
    n0 = zero  # counts in the input's dtype: exact (blocks are short), half the width
    rest = 0.0
    for i in range(x.shape[0]):
        top = x[i] * sign == m
        n0 += one if top else zero
        rest += 0.0 if top else e[i]
    return np.float64(n0), rest


@njit(inline="always")
def _keep_loop(x, sign, m, bhi, blo, out, unit):  # type: ignore[no-untyped-def]
    for i in range(x.shape[0]):
        zhi, zlo = _z(x[i] * sign, m, bhi, blo, unit)
        out[i] = _exp_z(zhi, zlo, sign)
    # summed in a loop of its own, as in _store_loop (the block is in L1)
    return _split_sums(x, sign, m, out)


@njit(cache=True, fastmath=_FLAGS)
def _block_sums_keep(x, sign, m, bhi, blo, out):  # type: ignore[no-untyped-def]
    """:func:`_block_sums` with the exps stored in ``out`` (log_softmax's row, which its
    output pass overwrites) and summed in a second loop over the block in L1: the exp loop
    runs without float64 (float32 at full width, 0.52 -> 0.42 ns/element), and the
    output's cache lines are fetched from memory while the exps are computed, not in the
    output pass, which then writes to L2 (the whole log_softmax 0.95 -> 0.7-0.8 ns/element
    on one thread, rows of 32000 float32)."""
    if _is_unit(bhi, blo):
        return _keep_loop(x, sign, m, bhi, blo, out, True)
    return _keep_loop(x, sign, m, bhi, blo, out, False)


@njit(inline="always")
def _store_loop(x, sign, m, bhi, blo, out, unit):  # type: ignore[no-untyped-def]
    for i in range(x.shape[0]):
        zhi, zlo = _z(x[i] * sign, m, bhi, blo, unit)
        out[i] = _exp_store(zhi, zlo, sign)
    # summed in a loop of its own (the block is in L1): a float64 sum in the exp loop
    # would make LLVM run all of it in float64-wide vectors, half the float32 lanes
    total = 0.0
    for i in range(x.shape[0]):
        total += out[i]
    return 0.0, total


@njit(cache=True, fastmath=_FLAGS)
def _block_store_scaled(x, sign, m, bhi, blo, out):  # type: ignore[no-untyped-def]
    """softmax's exp pass over one block: stores what ``_exp_store`` gives (float32:
    ``exp(z) * 2**64``) and returns ``(0, sum of the stored values)``: softmax needs only
    the total, not the split that keeps ``log s`` accurate, so the loop is lighter."""
    if _is_unit(bhi, blo):
        return _store_loop(x, sign, m, bhi, blo, out, True)
    return _store_loop(x, sign, m, bhi, blo, out, False)


@njit(cache=True)
def _row_sums(x, sign, m, bhi, blo, out, lse):  # type: ignore[no-untyped-def]
    """``(n0, rest)`` of a row; stores ``exp(z)`` in ``out`` if it has the row's length
    (log_softmax: :func:`_block_sums_keep`; pass ``out[:0]`` to leave ``out`` alone, or a
    scratch block of ``SUM_BLOCK`` elements for rows longer than that).

    ``lse`` (logsumexp) is kept for the callers: every dtype's sum is accurate enough
    for ``m + log s`` (the float32 exp errs by about 1e-7 relative, so ``log s`` by 1e-7
    absolute, within the bound ``eps * (|m| + |lse|)`` that the condition allows).
    """
    n = x.shape[0]
    if n <= SUM_BLOCK:
        if out.shape[0] == n:
            return _block_sums_keep(x, sign, m, bhi, blo, out)
        return _block_sums(x, sign, m, bhi, blo)
    n0 = 0.0
    rest = 0.0
    comp = 0.0
    for lo in range(0, n, SUM_BLOCK):
        hi = min(n, lo + SUM_BLOCK)
        # slices, not range(lo, hi): a run-time lower bound makes numba emit gathers
        if out.shape[0] == n:
            a, b = _block_sums_keep(x[lo:hi], sign, m, bhi, blo, out[lo:hi])
        elif out.shape[0] == SUM_BLOCK:  # a scratch block
            a, b = _block_sums_keep(x[lo:hi], sign, m, bhi, blo, out[:hi - lo])
        else:
            a, b = _block_sums(x[lo:hi], sign, m, bhi, blo)
        n0 += a
        rest, comp = _two_sum_add(rest, comp, b)
    return n0, rest + comp


@njit(cache=True)
def _row_store_scaled(x, sign, m, bhi, blo, out):  # type: ignore[no-untyped-def]
    """softmax's exp pass over a row: :func:`_block_store_scaled` per block, the block
    sums added with compensation; returns ``(0, sum of the stored values)``."""
    n = x.shape[0]
    if n <= SUM_BLOCK:
        return _block_store_scaled(x, sign, m, bhi, blo, out)
    rest = 0.0
    comp = 0.0
    for lo in range(0, n, SUM_BLOCK):
        hi = min(n, lo + SUM_BLOCK)
        _, b = _block_store_scaled(x[lo:hi], sign, m, bhi, blo, out[lo:hi])
        rest, comp = _two_sum_add(rest, comp, b)
    return 0.0, rest + comp


def _shift_plain(y, m, b, mb, unit):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_shift_plain, jit_options={"fastmath": {"contract"}})
def _shift_plain_ov(y, m, b, mb, unit):  # type: ignore[no-untyped-def]
    """``z = b * (y - m)`` rounded in the input's dtype (no low part), ``b`` and ``mb = b * m``
    in that dtype; where ``y - m`` overflowed, ``y * b - mb`` (the shift may be in range).
    An excluded entry (``y = -inf``) gives -inf, also where ``mb`` overflowed to -inf
    (``y * b - mb`` would be NaN there)."""

    def impl(y, m, b, mb, unit):  # type: ignore[no-untyped-def]
        d = y - m
        if unit:
            return d
        ninf = _neg_inf(y)
        return d * b if d > ninf else (y * b - mb if y > ninf else d)

    return impl


def _exp_sum(z, like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_exp_sum)
def _exp_sum_ov(z, like):  # type: ignore[no-untyped-def]
    """What logsumexp's sum adds up: ``exp(z)`` (float64) or ``exp(z) * 2**64`` (float32,
    the total is divided once by :func:`_store_unit`)."""
    if like == types.float64:
        return lambda z, like: exp64(z, 0.0)
    return lambda z, like: exp32f_2p64_1(z)


@njit(inline="always")
def _lse_loop(x, sign, m, bhi, blo, buf, unit):  # type: ignore[no-untyped-def]
    b = _like(bhi, sign)  # beta in the dtype (its low part is below the dtype's eps)
    mb = m * b
    for i in range(x.shape[0]):
        buf[i] = _exp_sum(_shift_plain(x[i] * sign, m, b, mb, unit), sign)
    # summed in a loop of its own over the block in L1, as in _keep_loop: a float64 sum in
    # the exp loop would run all of it in float64-wide vectors, half the float32 lanes
    return _split_sums(x, sign, m, buf)


@njit(cache=True, fastmath=_FLAGS)
def _block_lse(x, sign, m, bhi, blo, buf):  # type: ignore[no-untyped-def]
    """logsumexp's sum over one block (see :func:`_row_lse`), unscaled (float32: times
    2**64); the exps go through ``buf`` (as long as the block, in L1)."""
    if _is_unit(bhi, blo):
        return _lse_loop(x, sign, m, bhi, blo, buf, True)
    return _lse_loop(x, sign, m, bhi, blo, buf, False)


@njit(cache=True)
def _row_lse(x, sign, m, bhi, blo, buf):  # type: ignore[no-untyped-def]
    """``(n0, rest)``: logsumexp's sum ``s = n0 + rest`` over a row (``n0`` the maxima,
    ``rest`` the others' ``exp(z)``), ``z = beta (y - m)`` rounded once in the input's
    dtype (no compensated shift). ``buf`` is a scratch block of ``min(len(x), SUM_BLOCK)``
    or more elements of the dtype.

    Accuracy: rounding the shift gives each term a relative error of at most
    ``|z_i| eps`` (``eps`` of the input's dtype; a scale beta adds one more rounding), the
    exp adds about 1 ulp (``eps``), and the float64 sum, blocks added with compensation,
    is exact to float64. So ``log s`` errs by at most ``eps * (1 + sum p_i |z_i|)``
    absolutely, and ``sum p_i |z_i| = H(p) - log s <= H(p)``, the entropy of the softmax
    (``<= log K``, and ``<= 2 max |beta x|``): within logsumexp's bound ``eps * (|m| + |lse|)``
    up to a small constant, since ``H(p) - log s <= 2 max|beta x|``. (log_softmax keeps the
    compensated shift of :func:`_row_sums`: its output next to a dominant max is
    ``-log s ~ 1 - s``, which needs ``s - 1`` to relative accuracy.) The maxima are counted
    apart, so next to a dominant max ``log s = log1p(rest)`` keeps ``rest`` to the relative
    accuracy of its terms (``|z| eps``; exact shifts give ``log(1 + e**-40)`` to 1 ulp).
    """
    n = x.shape[0]
    if n <= SUM_BLOCK:
        n0, rest = _block_lse(x, sign, m, bhi, blo, buf[:n])
        return n0, rest / _store_unit(sign)
    n0 = 0.0
    rest = 0.0
    comp = 0.0
    for lo in range(0, n, SUM_BLOCK):
        hi = min(n, lo + SUM_BLOCK)
        a, b = _block_lse(x[lo:hi], sign, m, bhi, blo, buf[:hi - lo])
        n0 += a
        rest, comp = _two_sum_add(rest, comp, b)
    return n0, (rest + comp) / _store_unit(sign)


@njit(cache=True, fastmath=_FLAGS)
def _scale_out(out, f):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        out[i] = out[i] * f


@njit(cache=True, fastmath=_FLAGS)
def _fill(out, v):  # type: ignore[no-untyped-def]
    for i in range(out.shape[0]):
        out[i] = v


def _log_offset(m, log_s):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_log_offset, jit_options={"fastmath": {"contract"}})
def _log_offset_ov(m, log_s):  # type: ignore[no-untyped-def]
    """``(c_hi, c_lo)`` in ``m``'s dtype with ``c_hi + c_lo = m + log_s`` to twice its
    precision (``log_s`` a float64 ``>= 0``, ``m`` finite; ``c_hi`` rounds, never overflows)."""
    if m == types.float32:

        def impl32(m, log_s):  # type: ignore[no-untyped-def]
            m64 = np.float64(m)
            chi = np.float32(m64 + log_s)
            # m - c_hi is exact in float64 where it matters (|m| >= log_s: Sterbenz);
            # otherwise its rounding is below 2**-53 log_s, and |out| >= log_s
            return chi, np.float32((m64 - np.float64(chi)) + log_s)

        return impl32

    def impl(m, log_s):  # type: ignore[no-untyped-def]
        chi = m + log_s
        bb = chi - m  # TwoSum: m + log_s = chi + clo exactly
        return chi, (m - (chi - bb)) + (log_s - bb)

    return impl


@njit(cache=True, fastmath={"contract"})
def _log_unit(x, sign, chi, clo, out):  # type: ignore[no-untyped-def]
    """``out = (y - c_hi) - c_lo``: log_softmax's output at unit scale, in the input's dtype
    (float32 in float32 lanes: no conversions). ``y - c_hi`` is exact next to the max
    (Sterbenz), so there the result is rounded once: ``-log s`` to full relative accuracy
    next to a dominant max; elsewhere at most two roundings (1 ulp). No ``reassoc``: it
    would fold ``c_hi + c_lo``."""
    for i in range(x.shape[0]):
        out[i] = (x[i] * sign - chi) - clo


@njit(cache=True, fastmath={"contract"})
def _log_scaled(x, sign, m, bhi, blo, log_s, out):  # type: ignore[no-untyped-def]
    """``out = (z_hi - log_s) + z_lo`` with the compensated shift ``z = beta (y - m)``
    (float32 input shifted exactly in float64)."""
    for i in range(x.shape[0]):
        zhi, zlo = _shift_wide(x[i] * sign, m, bhi, blo, False)
        out[i] = (zhi - log_s) + zlo


@njit(cache=True)
def _log_unit_stream(x, sign, chi, clo, out):  # type: ignore[no-untyped-def]
    """:func:`_log_unit` with non-temporal stores (:mod:`._store`) from the first 64-byte
    boundary of ``out``: the same bits, without reading ``out``'s lines first."""
    n = x.shape[0]
    lanes = 64 // out.itemsize
    head = min(n, ((64 - address(out) % 64) % 64) // out.itemsize)
    nv = (n - head) // lanes * lanes
    _log_unit(x[:head], sign, chi, clo, out[:head])
    if nv > 0:
        log_unit_nt(x, out, head, nv, sign, chi, clo)
    _log_unit(x[head + nv:], sign, chi, clo, out[head + nv:])


@njit(cache=True)
def _row_log(x, sign, m, bhi, blo, log_s, out, stream):  # type: ignore[no-untyped-def]
    """``out = z - log_s`` (log_softmax's output pass); ``stream``: non-temporal stores
    (unit scale)."""
    if _is_unit(bhi, blo):
        chi, clo = _log_offset(m, log_s)
        if stream:
            _log_unit_stream(x, sign, chi, clo, out)
        else:
            _log_unit(x, sign, chi, clo, out)
    else:
        _log_scaled(x, sign, m, bhi, blo, log_s, out)


@njit(cache=True)
def _stream(out):  # type: ignore[no-untyped-def]
    """Whether the last pass writes ``out`` with non-temporal stores: large outputs only."""
    return out.size * out.itemsize >= STREAM_BYTES


@njit(cache=True)
def _special(x, sign, kind, out):  # type: ignore[no-untyped-def]
    """The reference's semantics for a distribution with NaN, +inf or empty support.

    Fills ``out`` (softmax / log_softmax) and returns ``(status, n_inf)``.
    """
    n_inf = 0
    status = EMPTY
    for i in range(x.shape[0]):
        y = x[i] * sign
        if y != y:
            status = HAS_NAN
            break
        if y == _INF:
            n_inf += 1
            status = HAS_INF
    if kind == LOGSUMEXP:
        return status, n_inf
    for i in range(x.shape[0]):
        if status == HAS_NAN:
            out[i] = np.nan
            continue
        at_inf = status == HAS_INF and x[i] * sign == _INF
        if kind == SOFTMAX:
            out[i] = 1.0 / max(n_inf, 1) if at_inf else 0.0
        else:
            out[i] = -math.log(max(n_inf, 1)) if at_inf else -_INF
    return status, n_inf


@njit(cache=True)
def _finite(v):  # type: ignore[no-untyped-def]
    return v - v == 0


@njit(cache=True)
def _row(x, sign, bhi, blo, kind, out, buf):  # type: ignore[no-untyped-def]
    """One whole distribution (contiguous): fills ``out``; returns ``(status, m, n0, rest)``.

    log_softmax sums its exps through ``buf``: ``out`` itself (its lines are then in cache
    for the output pass), or a scratch block of ``SUM_BLOCK`` elements when the output
    pass streams (non-temporal stores, ``out`` is never read); logsumexp through a
    scratch block of ``min(len(x), SUM_BLOCK)`` elements."""
    m = _row_max(x, sign)
    if not _finite(m):
        status, _ = _special(x, sign, kind, out)
        return status, m, 0.0, 0.0
    if kind == SOFTMAX:
        n0, rest = _row_store_scaled(x, sign, m, bhi, blo, out)
    elif kind == LOGSUMEXP:
        n0, rest = _row_lse(x, sign, m, bhi, blo, buf)
    else:
        n0, rest = _row_sums(x, sign, m, bhi, blo, buf, False)
    if rest != rest:
        status, _ = _special(x, sign, kind, out)
        return status, m, 0.0, 0.0
    if kind == SOFTMAX:
        _scale_out(out, 1.0 / (n0 + rest))
    elif kind == LOG_SOFTMAX:
        _row_log(x, sign, m, bhi, blo, _log_s(n0, rest), out, buf.shape[0] != out.shape[0])
    return NORMAL, m, n0, rest


# --------------------------------------------------------------------------- rows
@njit(cache=True)
def _rows_tasks(x, sign, bhi, blo, kind, out, st, ms, nc, t0, t1):  # type: ignore[no-untyped-def]
    """Tasks ``t0..t1`` of the row layout: row ``t // nc``, chunk ``t % nc``.

    With ``nc == 1`` a task is a whole row, finished here. Otherwise the chunk's
    ``(status, n0, rest)`` go to ``st[t]`` and its max to ``ms[t]``; softmax stores
    ``exp(z)`` relative to the chunk's max.
    """
    k = x.shape[1]
    stream = kind == LOG_SOFTMAX and nc == 1 and k > SUM_BLOCK and _stream(out)
    scratch = np.empty(min(k, SUM_BLOCK) if stream or kind == LOGSUMEXP else 0, dtype=x.dtype)
    for t in range(t0, t1):
        r = t // nc
        lo = (t - r * nc) * CHUNK if nc > 1 else 0
        hi = min(k, lo + CHUNK) if nc > 1 else k
        xv = x[r, lo:hi]
        ov = out[r, lo:hi]
        if nc == 1:
            status, m, n0, rest = _row(xv, sign, bhi, blo, kind, ov, ov if kind == LOG_SOFTMAX and not stream else scratch)
        else:
            m = _row_max(xv, sign)
            n0 = 0.0
            rest = 0.0
            if _finite(m):
                if kind == SOFTMAX:  # (softmax's sums are of the stored, scaled values)
                    n0, rest = _row_store_scaled(xv, sign, m, bhi, blo, ov)
                elif kind == LOGSUMEXP:
                    n0, rest = _row_lse(xv, sign, m, bhi, blo, scratch)
                else:
                    n0, rest = _row_sums(xv, sign, m, bhi, blo, ov[:0], False)
                status = HAS_NAN if rest != rest else NORMAL
            else:
                status, _ = _special(xv, sign, LOGSUMEXP, ov)
        st[t, 0] = status
        st[t, 1] = n0
        st[t, 2] = rest
        ms[t] = m


@njit(cache=True)
def _rows_merge(x, sign, bhi, blo, kind, out, st, ms, nc, rst, rms):  # type: ignore[no-untyped-def]
    """Merge the chunks of each long row into ``rst[r] = (status, n0, rest)``, ``rms[r] = m``."""
    for r in range(x.shape[0]):
        t0 = r * nc
        nan = False
        m = ms[t0]
        for t in range(t0, t0 + nc):
            nan |= st[t, 0] == HAS_NAN
            m = max(m, ms[t])
        n0 = 0.0
        rest = 0.0
        comp = 0.0
        if nan or not _finite(m):
            status, _ = _special(x[r], sign, kind, out[r])
        else:
            status = NORMAL
            for t in range(t0, t0 + nc):
                if ms[t] == m:
                    n0 += st[t, 1]
                    rest, comp = _two_sum_add(rest, comp, st[t, 2])
                elif _finite(ms[t]):
                    zhi, zlo = _shift(ms[t], m, bhi, blo)
                    f = exp64(np.float64(zhi), np.float64(zlo))
                    rest, comp = _two_sum_add(rest, comp, (st[t, 1] + st[t, 2]) * f)
        rst[r, 0] = status
        rst[r, 1] = n0
        rst[r, 2] = rest + comp
        rms[r] = m


@njit(cache=True)
def _rows_finish(x, sign, bhi, blo, kind, out, ms, nc, rst, rms, t0, t1):  # type: ignore[no-untyped-def]
    """Second pass over the chunks of long rows: rescale (softmax) or write log_softmax."""
    k = x.shape[1]
    stream = _stream(out)
    for t in range(t0, t1):
        r = t // nc
        if rst[r, 0] != NORMAL:
            continue
        lo = (t - r * nc) * CHUNK
        hi = min(k, lo + CHUNK)
        ov = out[r, lo:hi]
        m = rms[r]
        s = rst[r, 1] + rst[r, 2]
        if kind == SOFTMAX:
            mc = ms[t]
            if not _finite(mc):
                _fill(ov, 0.0)
            else:
                zhi, zlo = _shift(mc, m, bhi, blo)
                _scale_out(ov, exp64(np.float64(zhi), np.float64(zlo)) / s)
        else:
            _row_log(x[r, lo:hi], sign, m, bhi, blo, _log_s(rst[r, 1], rst[r, 2]), ov, stream)


# --------------------------------------------------------------------------- short rows
@njit(inline="always")
def _short_exp(xt, sign, mm, bhi, blo, et, nr, k, kind, unit):  # type: ignore[no-untyped-def]
    """The exp pass over a transposed block ``xt[j * nr + r]``, vectorised across rows,
    into ``et``: softmax's ``_exp_store``, log_softmax's ``_exp_z`` (both of the
    compensated shift), logsumexp's ``_exp_sum`` of the plain shift. Only the input's
    dtype is in the loop (full SIMD width); the float64 sums are a loop of their own."""
    for j in range(k):
        xj = xt[j * nr:(j + 1) * nr]
        ej = et[j * nr:(j + 1) * nr]
        if kind == LOGSUMEXP:
            b = _like(bhi, sign)
            for r in range(nr):
                ej[r] = _exp_sum(_shift_plain(xj[r] * sign, mm[r], b, mm[r] * b, unit), sign)
        elif kind == SOFTMAX:
            for r in range(nr):
                zhi, zlo = _z(xj[r] * sign, mm[r], bhi, blo, unit)
                ej[r] = _exp_store(zhi, zlo, sign)
        else:
            for r in range(nr):
                zhi, zlo = _z(xj[r] * sign, mm[r], bhi, blo, unit)
                ej[r] = _exp_z(zhi, zlo, sign)


@njit(inline="always")
def _short_sums(xt, sign, mm, et, n0, rest, nr, k, split):  # type: ignore[no-untyped-def]
    """Per row of the block: ``rest`` the sum of the exps; with ``split`` the maxima
    (``y == m``, each exp(0)) counted in ``n0`` instead (log s keeps a tiny rest exact)."""
    for r in range(nr):
        n0[r] = 0.0
        rest[r] = 0.0
    for j in range(k):
        ej = et[j * nr:(j + 1) * nr]
        if split:
            xj = xt[j * nr:(j + 1) * nr]
            for r in range(nr):
                top = xj[r] * sign == mm[r]
                n0[r] += 1.0 if top else 0.0
                rest[r] += 0.0 if top else ej[r]
        else:
            for r in range(nr):
                rest[r] += ej[r]


@njit(inline="always")
def _short_scratch(x, rpb):  # type: ignore[no-untyped-def]
    """The working arrays of :func:`_short_block` for blocks of ``rpb`` rows of ``x``: the
    transposed block and its exps (``x``'s dtype), the maxima (raw and finite), the sums."""
    n = rpb * x.shape[1]
    return (np.empty(n, dtype=x.dtype), np.empty(n, dtype=x.dtype), np.empty(rpb, dtype=x.dtype),
            np.empty(rpb, dtype=x.dtype), np.empty(rpb), np.empty(rpb))


@njit(inline="always")
def _short_block(xf, sign, bhi, blo, kind, nr, k, xt, et, m, mm, n0, rest):  # type: ignore[no-untyped-def]
    """The passes over one block of ``nr`` short rows ``xf`` (flat): the transposed copy
    ``xt``, the row maxima ``m`` (and ``mm``, 0 where no max is finite: those rows are
    redone by _special), the exps ``et`` and the sums ``n0``, ``rest``."""
    # transpose (a computed index: cheaper than an index array; a loop of its own:
    # faster than with the max in it)
    for j in range(k):
        xj = xt[j * nr:(j + 1) * nr]
        for r in range(nr):
            xj[r] = xf[r * k + j]
    for r in range(nr):
        m[r] = _neg_inf(sign)
    for j in range(k):
        xj = xt[j * nr:(j + 1) * nr]
        for r in range(nr):
            m[r] = maxnum(m[r], xj[r] * sign)
    for r in range(nr):
        mm[r] = m[r] if _finite(m[r]) else sign - sign
    if _is_unit(bhi, blo):
        _short_exp(xt, sign, mm, bhi, blo, et, nr, k, kind, True)
    else:
        _short_exp(xt, sign, mm, bhi, blo, et, nr, k, kind, False)
    _short_sums(xt, sign, mm, et, n0, rest, nr, k, kind != SOFTMAX)


@njit(cache=True, fastmath={"contract"})
def _short_log_out(xt, sign, mm, bhi, blo, log_s, of, nr, k):  # type: ignore[no-untyped-def]
    """log_softmax's output for a transposed block of short rows, written back in the
    input's order: :func:`_log_unit`'s and :func:`_log_scaled`'s formulas, vectorised
    across the rows (a function of its own: no ``reassoc``, which would fold ``c_hi +
    c_lo``)."""
    if _is_unit(bhi, blo):
        chi = np.empty(nr, dtype=mm.dtype)
        clo = np.empty(nr, dtype=mm.dtype)
        for r in range(nr):
            chi[r], clo[r] = _log_offset(mm[r], log_s[r])
        for j in range(k):
            xj = xt[j * nr:(j + 1) * nr]
            for r in range(nr):
                of[r * k + j] = (xj[r] * sign - chi[r]) - clo[r]
    else:
        for j in range(k):
            xj = xt[j * nr:(j + 1) * nr]
            for r in range(nr):
                zhi, zlo = _shift_wide(xj[r] * sign, mm[r], bhi, blo, False)
                of[r * k + j] = (zhi - log_s[r]) + zlo


@njit(cache=True, fastmath=_FLAGS)
def _short_tasks(x, sign, bhi, blo, kind, out, rst, rms, rpb, b0, b1):  # type: ignore[no-untyped-def]
    """Blocks ``b0..b1`` of ``rpb`` short rows each, transposed so that the max, exp and
    sum passes run vectorised across the rows of a block (the rows themselves are too
    short to vectorise). softmax and log_softmax fill ``out``; logsumexp fills the
    statistics ``rst`` and ``rms``, which the other kinds leave alone (they may be empty:
    a million short rows would write 28 MB of statistics that nobody reads)."""
    nrow, k = x.shape
    big = _store_unit(sign)  # what exp(0) is stored as (softmax, logsumexp)
    xflat = x.reshape(nrow * k)
    oflat = out.reshape(out.size)
    xt, et, m, mm, n0, rest = _short_scratch(x, rpb)
    f = np.empty(rpb)
    bad = np.empty(rpb, dtype=np.bool_)
    for b in range(b0, b1):
        r0 = b * rpb
        r1 = min(nrow, r0 + rpb)
        nr = r1 - r0
        xf = xflat[r0 * k:r1 * k]
        of = oflat[r0 * k:r1 * k]
        _short_block(xf, sign, bhi, blo, kind, nr, k, xt, et, m, mm, n0, rest)
        if kind == LOG_SOFTMAX:
            for r in range(nr):  # a loop of its own: vectorised (a special row's is unused)
                f[r] = _log_s(n0[r], rest[r])
        special = False
        for r in range(nr):
            normal = _finite(m[r]) and rest[r] == rest[r]
            bad[r] = not normal
            special |= not normal
            if kind == LOGSUMEXP:  # the only kind whose statistics the callers use
                rst[r0 + r, 0] = NORMAL if normal else HAS_NAN
                rst[r0 + r, 1] = n0[r]
                rst[r0 + r, 2] = rest[r] / big  # float32: exact, a power of 2
                rms[r0 + r] = m[r]
            elif kind == SOFTMAX:
                f[r] = 1.0 / rest[r] if normal else 0.0  # a special row is rewritten below
        # the outputs: softmax scaled and transposed back in one loop, log_softmax row by
        # row from the input (it needs no exp)
        if kind == SOFTMAX:
            for j in range(k):
                ej = et[j * nr:(j + 1) * nr]
                for r in range(nr):
                    of[r * k + j] = ej[r] * f[r]
        elif kind == LOG_SOFTMAX:
            _short_log_out(xt, sign, mm, bhi, blo, f, of, nr, k)
        # rows with NaN, +inf or empty support
        if special:
            for r in range(r0, r1):
                if bad[r - r0]:
                    status, _ = _special(x[r], sign, kind, out[r])
                    if kind == LOGSUMEXP:  # as _row: no sums (an excluded entry's exp is
                        rst[r, 0] = status  # a tiny number, not 0, in the plain shift)
                        rst[r, 1] = 0.0
                        rst[r, 2] = 0.0


@njit(cache=True, fastmath=_FLAGS)
def _short_lse_tasks(x, sign, bhi, blo, beta, temperature, lse, sgn, rpb, b0, b1):  # type: ignore[no-untyped-def]
    """logsumexp of blocks ``b0..b1`` of ``rpb`` short rows: the passes of
    :func:`_short_block`, then ``log s`` and the result for a whole block at once (no
    statistics arrays, no finishing pass over them)."""
    nrow, k = x.shape
    big = _store_unit(sign)
    xflat = x.reshape(nrow * k)
    xt, et, m, mm, n0, rest = _short_scratch(x, rpb)
    f = np.empty(rpb)
    no_out = np.empty(0, dtype=x.dtype)
    for b in range(b0, b1):
        r0 = b * rpb
        r1 = min(nrow, r0 + rpb)
        nr = r1 - r0
        _short_block(xflat[r0 * k:r1 * k], sign, bhi, blo, LOGSUMEXP, nr, k, xt, et, m, mm, n0, rest)
        for r in range(nr):
            f[r] = _log_s(n0[r], rest[r] / big)
        special = False
        for r in range(nr):
            special |= not (_finite(m[r]) and rest[r] == rest[r])
            lse[r0 + r], sgn[r0 + r] = _lse_value(NORMAL, _scaled_max(m[r], beta, temperature), f[r])
        if special:  # rows with NaN, +inf or empty support
            for r in range(r0, r1):
                if not (_finite(m[r - r0]) and rest[r - r0] == rest[r - r0]):
                    status, _ = _special(x[r], sign, LOGSUMEXP, no_out)
                    lse[r], sgn[r] = _lse_value(status, 0.0, 0.0)


# --------------------------------------------------------------------------- columns
def _is_wide(like):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_is_wide)
def _is_wide_ov(like):  # type: ignore[no-untyped-def]
    """Whether ``like`` is float64 (a constant where the kernels are compiled)."""
    if like == types.float64:
        return lambda like: True
    return lambda like: False


@njit(inline="always")
def _col_e(y, mj, bhi, blo, b, kind, unit):  # type: ignore[no-untyped-def]
    """``(e, c)`` for an entry ``y`` of a column shifted by ``mj``: softmax's
    ``_exp_store`` of the compensated shift; log_softmax's ``_exp_z`` of it; logsumexp's
    ``_exp_sum`` of the plain shift (as :func:`_row_lse`, ``b`` beta in the dtype). The
    maxima (``y == mj``, not for softmax) give ``(0, 1)``: counted apart."""
    zero = _like(0.0, y)
    if kind == SOFTMAX:
        zhi, zlo = _z(y, mj, bhi, blo, unit)
        return _exp_store(zhi, zlo, y), zero
    if kind == LOGSUMEXP:
        e = _exp_sum(_shift_plain(y, mj, b, mj * b, unit), y)
    else:
        zhi, zlo = _z(y, mj, bhi, blo, unit)
        e = _exp_z(zhi, zlo, y)
    top = y == mj
    return (zero if top else e), (_like(1.0, y) if top else zero)


@njit(inline="always")
def _col_exp_row(xr, sign, mm, bhi, blo, b, er, n0b, bsum, kind, unit):  # type: ignore[no-untyped-def]
    for j in range(xr.shape[0]):
        v, c = _col_e(xr[j] * sign, mm[j], bhi, blo, b, kind, unit)
        er[j] = v
        if kind != SOFTMAX:
            n0b[j] += c
        bsum[j] += v


@njit(inline="always")
def _col_exp_loop(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, kind, unit):  # type: ignore[no-untyped-def]
    b = _like(bhi, sign)  # beta's low part is below the dtype's eps
    if _is_wide(sign):
        # float64: a row a loop, the sum in it (four rows' degree-13 exps at once would
        # spill registers; a float64 sum costs no lanes here)
        _col_exp_row(x0, sign, mm, bhi, blo, b, e0, n0b, bsum, kind, unit)
        _col_exp_row(x1, sign, mm, bhi, blo, b, e1, n0b, bsum, kind, unit)
        _col_exp_row(x2, sign, mm, bhi, blo, b, e2, n0b, bsum, kind, unit)
        _col_exp_row(x3, sign, mm, bhi, blo, b, e3, n0b, bsum, kind, unit)
        return
    for j in range(x0.shape[0]):
        mj = mm[j]
        v0, c0 = _col_e(x0[j] * sign, mj, bhi, blo, b, kind, unit)
        v1, c1 = _col_e(x1[j] * sign, mj, bhi, blo, b, kind, unit)
        v2, c2 = _col_e(x2[j] * sign, mj, bhi, blo, b, kind, unit)
        v3, c3 = _col_e(x3[j] * sign, mj, bhi, blo, b, kind, unit)
        e0[j] = v0
        e1[j] = v1
        e2[j] = v2
        e3[j] = v3
        if kind != SOFTMAX:
            n0b[j] += (c0 + c1) + (c2 + c3)


@njit(inline="always")
def _col_exp_kind(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, kind, unit):  # type: ignore[no-untyped-def]
    if kind == SOFTMAX:
        _col_exp_loop(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, SOFTMAX, unit)
    elif kind == LOGSUMEXP:
        _col_exp_loop(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, LOGSUMEXP, unit)
    else:
        _col_exp_loop(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, LOG_SOFTMAX, unit)


@njit(cache=True, fastmath=_FLAGS)
def _col_exp(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, kind):  # type: ignore[no-untyped-def]
    """Four rows of a column task (:func:`_col_e`): the exps relative to the per-column
    shift ``mm`` into ``e0..e3`` (softmax: the output rows), the maxima counted in
    ``n0b``, the exps added to the float64 sums ``bsum``. Four rows a call share the
    loads and stores of the per-column state; the exp loop holds only the input's dtype
    (16 float32 lanes with AVX-512: a float64 value in it would halve them), the float64
    sum is a loop of its own over rows still in L1. (Row views come from the caller:
    views made in an inlined loop cost a reference count each.)"""
    if _is_unit(bhi, blo):
        _col_exp_kind(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, kind, True)
    else:
        _col_exp_kind(x0, x1, x2, x3, sign, mm, bhi, blo, e0, e1, e2, e3, n0b, bsum, kind, False)
    if not _is_wide(sign):
        for j in range(x0.shape[0]):
            bsum[j] += (np.float64(e0[j]) + np.float64(e1[j])) + (np.float64(e2[j]) + np.float64(e3[j]))


@njit(cache=True, fastmath=_FLAGS)
def _col_max(x0, x1, x2, x3, sign, bm):  # type: ignore[no-untyped-def]
    for j in range(x0.shape[0]):
        a = maxnum(x0[j] * sign, x1[j] * sign)
        c = maxnum(x2[j] * sign, x3[j] * sign)
        bm[j] = maxnum(bm[j], maxnum(a, c))


@njit(inline="always")
def _col_log_loop(xr, sign, m, bhi, blo, f, orow, unit):  # type: ignore[no-untyped-def]
    for j in range(xr.shape[0]):
        zhi, zlo = _shift_wide(xr[j] * sign, m[j], bhi, blo, unit)
        orow[j] = (zhi - f[j]) + zlo


@njit(cache=True, fastmath=_FLAGS)
def _col_log(xr, sign, m, bhi, blo, f, orow):  # type: ignore[no-untyped-def]
    if _is_unit(bhi, blo):
        _col_log_loop(xr, sign, m, bhi, blo, f, orow, True)
    else:
        _col_log_loop(xr, sign, m, bhi, blo, f, orow, False)


@njit(cache=True, fastmath=_FLAGS)
def _col_scale(orow, g):  # type: ignore[no-untyped-def]
    for j in range(orow.shape[0]):
        orow[j] = orow[j] * g[j]


@njit(cache=True)
def _col_task(t, k, ninner, cw, nq):  # type: ignore[no-untyped-def]
    """Task ``t`` of the column layout: ``(o, j0, j1, q, kb0, kb1)``, the outer index, the
    columns, the chunk of ``K`` and its blocks of ``COL_BLOCK`` rows."""
    ntile = (ninner + cw - 1) // cw
    nkb = (k + COL_BLOCK - 1) // COL_BLOCK
    q = t % nq
    oc = t // nq
    o = oc // ntile
    j0 = (oc - o * ntile) * cw
    return o, j0, min(ninner, j0 + cw), q, q * nkb // nq, (q + 1) * nkb // nq


@njit(cache=True, fastmath=_FLAGS)
def _col_pass(x, sign, bhi, blo, kind, out, qst, qms, mblk, cw, nq, t0, t1):  # type: ignore[no-untyped-def]
    """First pass of tasks ``t0..t1`` (:func:`_col_task`): one online pass over the
    chunk's blocks of ``COL_BLOCK`` rows (block max, rescale of the running sums, exps
    relative to the running max). Per column of the chunk, ``(status, n0, rest)`` go to
    ``qst[o * nq + q, j]`` and the max to ``qms[o * nq + q, j]``; softmax stores the exps
    in ``out`` and each block's shift in ``mblk[o, block, j]`` (-inf: the block's exps are
    0), so that its second pass only multiplies (one exp per element in all)."""
    nout, k, ninner = x.shape
    ninf = _neg_inf(sign)
    zero = sign - sign
    store = kind == SOFTMAX
    big = _store_unit(sign) if kind == LOGSUMEXP else 1.0  # exp(0) in logsumexp's sums
    m = np.empty(cw, dtype=x.dtype)
    mm = np.empty(cw, dtype=x.dtype)
    bm = np.empty(cw, dtype=x.dtype)
    er = np.empty((4, cw), dtype=x.dtype)  # the exps of four rows (not softmax)
    xpad = np.full(cw, ninf * sign)  # padding rows (-inf once signed) and their exps
    epad = np.empty(cw, dtype=x.dtype)
    n0b = np.empty(cw, dtype=x.dtype)  # the block's maxima, counted in the input's dtype
    n0 = np.empty(cw)
    rest = np.empty(cw)
    comp = np.empty(cw)  # Neumaier compensation of rest, per column
    bsum = np.empty(cw)  # the block's sum, added to rest with compensation
    for t in range(t0, t1):
        o, j0, j1, q, kb0, kb1 = _col_task(t, k, ninner, cw, nq)
        w = j1 - j0
        for j in range(w):
            m[j] = ninf
            n0[j] = 0.0
            rest[j] = 0.0
            comp[j] = 0.0
        for b in range(kb0, kb1):
            kb = b * COL_BLOCK
            ke = min(k, kb + COL_BLOCK)
            for j in range(w):
                bm[j] = ninf
            for i in range(kb, ke, 4):
                _col_max(x[o, i, j0:j1], x[o, i + 1, j0:j1] if i + 1 < ke else xpad,
                         x[o, i + 2, j0:j1] if i + 2 < ke else xpad,
                         x[o, i + 3, j0:j1] if i + 3 < ke else xpad, sign, bm)
            raised = False  # (a vectorised test: after the first blocks it seldom holds)
            for j in range(w):
                raised |= bm[j] > m[j]
            if raised:  # online rescaling where the block raised the max
                for j in range(w):
                    if bm[j] > m[j]:
                        if n0[j] + rest[j] != 0.0:
                            zhi, zlo = _shift(m[j], bm[j], bhi, blo)
                            f = exp64(np.float64(zhi), np.float64(zlo))
                            rest[j] = (n0[j] + (rest[j] + comp[j])) * f
                        comp[j] = 0.0
                        n0[j] = 0.0
                        m[j] = bm[j]
            for j in range(w):
                bsum[j] = 0.0
                n0b[j] = zero
                mm[j] = m[j] if _finite(m[j]) else zero
            if store:
                mb = mblk[o, b, j0:j1]
                for j in range(w):
                    mb[j] = m[j]
            for i in range(kb, ke, 4):
                # rows past the block's end are padding: -inf, their exps (0) to epad
                r1, r2, r3 = i + 1 < ke, i + 2 < ke, i + 3 < ke
                _col_exp(x[o, i, j0:j1], x[o, i + 1, j0:j1] if r1 else xpad,
                         x[o, i + 2, j0:j1] if r2 else xpad, x[o, i + 3, j0:j1] if r3 else xpad,
                         sign, mm, bhi, blo,
                         out[o, i, j0:j1] if store else er[0],
                         out[o, i + 1, j0:j1] if store and r1 else er[1] if r1 else epad,
                         out[o, i + 2, j0:j1] if store and r2 else er[2] if r2 else epad,
                         out[o, i + 3, j0:j1] if store and r3 else er[3] if r3 else epad,
                         n0b, bsum, kind)
            for j in range(w):
                n0[j] += np.float64(n0b[j])
                rest[j], comp[j] = _two_sum_add(rest[j], comp[j], bsum[j] / big)
        r = o * nq + q
        for j in range(w):
            s = rest[j] + comp[j]
            # an all -inf chunk is NORMAL (it adds nothing); +inf or NaN make the column special
            qst[r, j0 + j, 0] = NORMAL if (m[j] < _INF and s == s) else HAS_NAN
            qst[r, j0 + j, 1] = n0[j]
            qst[r, j0 + j, 2] = s
            qms[r, j0 + j] = m[j]


@njit(cache=True, fastmath=_FLAGS)
def _col_finish(x, sign, bhi, blo, kind, out, qst, qms, mblk, cst, cms, cw, nq, spec, t0, t1):  # type: ignore[no-untyped-def]
    """Second pass of tasks ``t0..t1``: each merges its columns' chunk statistics (the
    chunk ``q == 0`` writes them to ``cst``, ``cms``) and writes its rows: softmax
    multiplies each block's exps by ``exp(beta (m_block - m)) / s``, log_softmax writes
    ``z - log s``. Columns that are not NORMAL (NaN, +inf, empty) are left to
    :func:`_col_special`."""
    nout, k, ninner = x.shape
    zero = sign - sign
    m = np.empty(cw, dtype=x.dtype)
    f = np.empty(cw)
    g = np.empty(cw)
    for t in range(t0, t1):
        o, j0, j1, q, kb0, kb1 = _col_task(t, k, ninner, cw, nq)
        if kind == LOGSUMEXP and q > 0:
            continue
        w = j1 - j0
        for j in range(w):
            mj = qms[o * nq, j0 + j]
            nan = False
            for p in range(o * nq, o * nq + nq):
                mj = max(mj, qms[p, j0 + j])
                nan |= qst[p, j0 + j, 0] == HAS_NAN
            n0 = 0.0
            rest = 0.0
            comp = 0.0
            if nan or not _finite(mj):
                status = HAS_NAN
            else:
                status = NORMAL
                for p in range(o * nq, o * nq + nq):
                    mp = qms[p, j0 + j]
                    if mp == mj:
                        n0 += qst[p, j0 + j, 1]
                        rest, comp = _two_sum_add(rest, comp, qst[p, j0 + j, 2])
                    elif _finite(mp):
                        zhi, zlo = _shift(mp, mj, bhi, blo)
                        e = exp64(np.float64(zhi), np.float64(zlo))
                        rest, comp = _two_sum_add(rest, comp, (qst[p, j0 + j, 1] + qst[p, j0 + j, 2]) * e)
                rest += comp
            if q == 0:
                spec[t] |= status != NORMAL
                cst[o, j0 + j, 0] = status
                cst[o, j0 + j, 1] = n0
                cst[o, j0 + j, 2] = rest
                cms[o, j0 + j] = mj
            normal = status == NORMAL
            m[j] = mj if normal else zero
            if kind == SOFTMAX:
                f[j] = 1.0 / (n0 + rest) if normal else 0.0
            elif kind == LOG_SOFTMAX:
                f[j] = _log_s(n0, rest) if normal else 0.0
        if kind == SOFTMAX:
            for b in range(kb0, kb1):
                mb = mblk[o, b, j0:j1]
                same = True  # the block's shift is the max: the factor is 1 / s (most blocks)
                for j in range(w):
                    same &= mb[j] == m[j]
                if not same:
                    for j in range(w):  # the factor of the block's exps, from its shift
                        if mb[j] == m[j]:
                            g[j] = f[j]
                        elif mb[j] > -_INF:
                            zhi, zlo = _shift(mb[j], m[j], bhi, blo)
                            g[j] = exp64(np.float64(zhi), np.float64(zlo)) * f[j]
                        else:  # the block's entries (and those before) are all -inf
                            g[j] = 0.0
                for i in range(b * COL_BLOCK, min(k, (b + 1) * COL_BLOCK)):
                    _col_scale(out[o, i, j0:j1], f if same else g)
        elif kind == LOG_SOFTMAX:
            for i in range(kb0 * COL_BLOCK, min(k, kb1 * COL_BLOCK)):
                _col_log(x[o, i, j0:j1], sign, m, bhi, blo, f, out[o, i, j0:j1])


@njit(cache=True)
def _col_special(x, sign, kind, out, cst, cw, nq, spec, t0, t1):  # type: ignore[no-untyped-def]
    """The columns of tasks ``t0..t1`` that are not NORMAL (NaN, +inf, empty support), by
    the reference's semantics, after :func:`_col_finish` (which flags them in ``spec``)."""
    nout, k, ninner = x.shape
    for t in range(t0, t1):
        if spec[t]:
            o, j0, j1, _, _, _ = _col_task(t, k, ninner, cw, nq)
            for j in range(j0, j1):
                if cst[o, j, 0] != NORMAL:
                    status, _ = _special(x[o, :, j], sign, kind, out[o, :, j])
                    cst[o, j, 0] = status


@njit(cache=True)
def _col_buffers(x, kind, cw, nq, cst, cms):  # type: ignore[no-untyped-def]
    """``(qst, qms, mblk, spec, ntask)``: the chunk statistics (``cst``, ``cms`` themselves
    for one chunk: each task reads a column's before it writes it), softmax's block
    shifts, the flags of tasks with special columns, the number of tasks."""
    nout, k, ninner = x.shape
    nkb = (k + COL_BLOCK - 1) // COL_BLOCK
    nt = nout * ((ninner + cw - 1) // cw) * nq
    if nq == 1:
        qst, qms = cst, cms
    else:
        qst = np.empty((nout * nq, ninner, 3))
        qms = np.empty((nout * nq, ninner), dtype=x.dtype)
    mblk = np.empty((nout, nkb if kind == SOFTMAX else 0, ninner), dtype=x.dtype)
    spec = np.zeros(nt, dtype=np.bool_)
    return qst, qms, mblk, spec, nt


# --------------------------------------------------------------------------- drivers
@njit(parallel=True, cache=True)
def rows_parallel(x, sign, bhi, blo, kind, out, st, ms, nc, rst, rms, ntask):  # type: ignore[no-untyped-def]
    """All rows, in parallel: ``ntask`` contiguous ranges of the row/chunk tasks."""
    nt = st.shape[0]
    for b in prange(ntask):
        _rows_tasks(x, sign, bhi, blo, kind, out, st, ms, nc,
                    b * nt // ntask, (b + 1) * nt // ntask)
    if nc > 1:
        _rows_merge(x, sign, bhi, blo, kind, out, st, ms, nc, rst, rms)
        if kind != LOGSUMEXP:
            for b in prange(ntask):
                _rows_finish(x, sign, bhi, blo, kind, out, ms, nc, rst, rms,
                             b * nt // ntask, (b + 1) * nt // ntask)


@njit(cache=True, nogil=True)
def rows_serial(x, sign, bhi, blo, kind, out, st, ms, nc, rst, rms):  # type: ignore[no-untyped-def]
    """All rows, on the calling thread."""
    nt = st.shape[0]
    _rows_tasks(x, sign, bhi, blo, kind, out, st, ms, nc, 0, nt)
    if nc > 1:
        _rows_merge(x, sign, bhi, blo, kind, out, st, ms, nc, rst, rms)
        if kind != LOGSUMEXP:
            _rows_finish(x, sign, bhi, blo, kind, out, ms, nc, rst, rms, 0, nt)


@njit(parallel=True, cache=True)
def short_parallel(x, sign, bhi, blo, kind, out, rst, rms, rpb, ntask):  # type: ignore[no-untyped-def]
    nb = (x.shape[0] + rpb - 1) // rpb
    for b in prange(ntask):
        _short_tasks(x, sign, bhi, blo, kind, out, rst, rms, rpb,
                     b * nb // ntask, (b + 1) * nb // ntask)


@njit(cache=True, nogil=True)
def short_serial(x, sign, bhi, blo, kind, out, rst, rms, rpb):  # type: ignore[no-untyped-def]
    nb = (x.shape[0] + rpb - 1) // rpb
    _short_tasks(x, sign, bhi, blo, kind, out, rst, rms, rpb, 0, nb)


@njit(parallel=True, cache=True)
def short_lse_parallel(x, sign, bhi, blo, beta, temperature, lse, sgn, rpb, ntask):  # type: ignore[no-untyped-def]
    """logsumexp (and its sign) of short rows, in ``ntask`` parallel ranges of blocks."""
    nb = (x.shape[0] + rpb - 1) // rpb
    for b in prange(ntask):
        _short_lse_tasks(x, sign, bhi, blo, beta, temperature, lse, sgn, rpb,
                         b * nb // ntask, (b + 1) * nb // ntask)


@njit(cache=True, nogil=True)
def short_lse_serial(x, sign, bhi, blo, beta, temperature, lse, sgn, rpb):  # type: ignore[no-untyped-def]
    _short_lse_tasks(x, sign, bhi, blo, beta, temperature, lse, sgn, rpb, 0, (x.shape[0] + rpb - 1) // rpb)


@njit(parallel=True, cache=True)
def cols_parallel(x, sign, bhi, blo, kind, out, cst, cms, cw, nq, ntask):  # type: ignore[no-untyped-def]
    """The column layout in parallel: ``ntask`` ranges of the tasks of :func:`_col_task`
    (tiles of ``cw`` columns, each in ``nq`` chunks of ``K``), three parallel phases."""
    qst, qms, mblk, spec, nt = _col_buffers(x, kind, cw, nq, cst, cms)
    for b in prange(ntask):
        _col_pass(x, sign, bhi, blo, kind, out, qst, qms, mblk, cw, nq,
                  b * nt // ntask, (b + 1) * nt // ntask)
    for b in prange(ntask):
        _col_finish(x, sign, bhi, blo, kind, out, qst, qms, mblk, cst, cms, cw, nq, spec,
                    b * nt // ntask, (b + 1) * nt // ntask)
    for b in prange(ntask):
        _col_special(x, sign, kind, out, cst, cw, nq, spec, b * nt // ntask, (b + 1) * nt // ntask)


@njit(cache=True, nogil=True)
def cols_serial(x, sign, bhi, blo, kind, out, cst, cms, cw):  # type: ignore[no-untyped-def]
    """The column layout on the calling thread (one chunk of ``K`` per tile)."""
    qst, qms, mblk, spec, nt = _col_buffers(x, kind, cw, 1, cst, cms)
    _col_pass(x, sign, bhi, blo, kind, out, qst, qms, mblk, cw, 1, 0, nt)
    _col_finish(x, sign, bhi, blo, kind, out, qst, qms, mblk, cst, cms, cw, 1, spec, 0, nt)
    _col_special(x, sign, kind, out, cst, cw, 1, spec, 0, nt)


@njit(cache=True, nogil=True)
def rows_small(x, sign, bhi, blo, kind, out):  # type: ignore[no-untyped-def]
    """Small inputs along the last axis, on the calling thread: rows of at most ``CHUNK``
    (short rows in transposed blocks). Fewer arguments than :func:`rows_serial` (a numba call
    pays for each); the statistics stay inside."""
    nout, k = x.shape
    rst = np.empty((nout, 3))
    rms = np.empty(nout, dtype=x.dtype)
    if k < SHORT and nout > 1:
        _short_tasks(x, sign, bhi, blo, kind, out, rst, rms, max(1, SHORT_BLOCK // k),
                     0, (nout + max(1, SHORT_BLOCK // k) - 1) // max(1, SHORT_BLOCK // k))
    else:
        _rows_tasks(x, sign, bhi, blo, kind, out, rst, rms, 1, 0, nout)


@njit(parallel=True, cache=True)
def lse_finish_parallel(st, ms, beta, temperature, lse, sign, ntask):  # type: ignore[no-untyped-def]
    """:func:`lse_finish` in ``ntask`` parallel ranges."""
    n = ms.shape[0]
    for b in prange(ntask):
        _lse_finish(st, ms, beta, temperature, lse, sign, b * n // ntask, (b + 1) * n // ntask)


@njit(cache=True)
def lse_finish(st, ms, beta, temperature, lse, sign):  # type: ignore[no-untyped-def]
    """logsumexp from the statistics ``(status, n0, rest)`` and max of each distribution:
    ``m * beta + log s`` (``m / temperature`` if ``temperature``), +inf, -inf or NaN."""
    _lse_finish(st, ms, beta, temperature, lse, sign, 0, ms.shape[0])


@njit(cache=True, error_model="numpy")
def _lse_finish(st, ms, beta, temperature, lse, sign, i0, i1):  # type: ignore[no-untyped-def]
    # two loops without branches, both vectorised (the log of a special distribution's
    # statistics is computed and discarded): 1e6 distributions 8.9 -> 6.8 ms on one thread
    for i in range(i0, i1):
        lse[i] = _log_s(st[i, 1], st[i, 2])
    for i in range(i0, i1):
        lse[i], sign[i] = _lse_value(st[i, 0], _scaled_max(ms[i], beta, temperature), lse[i])


@njit(inline="always")
def _scaled_max(m, beta, temperature):  # type: ignore[no-untyped-def]
    """``beta * m``, or ``m / temperature`` (exact division) if ``temperature``."""
    m = np.float64(m)
    return m / temperature if temperature != 0.0 else m * beta


@njit(inline="always")
def _lse_value(status, m, log_s):  # type: ignore[no-untyped-def]
    """``(logsumexp, sign)`` of a distribution from its status, scaled max and ``log s``:
    ``m + log s`` and 1, or +inf and 1, -inf and 0 (empty), NaN and NaN."""
    special = _INF if status == HAS_INF else (-_INF if status == EMPTY else np.nan)
    lse = m + log_s if status == NORMAL else special
    sgn = 0.0 if status == EMPTY else (np.nan if status == HAS_NAN else 1.0)
    return lse, sgn
