"""numba kernels of sparsemax, 1.5-entmax and alpha-entmax for NumPy input.

The public tier (:mod:`softargmax.sparse`) validates, moves the distribution axes last and
flattens the input to C-contiguous ``(rows, K)``; the kernels here run over rows in
parallel and write into ``out``. float32 rows are computed in float64 and rounded once.

The threshold ``tau`` of a row is found without sorting the row. With ``m`` the row's
maximum and ``X = c * (x - m)`` (``c`` = 1, 1/2 or alpha - 1), every entry with
``X <= -1`` is outside the support, since ``tau >= -1`` (no probability exceeds 1). One
pass collects the remaining candidates into a small buffer: a top-k of the row in
arrival order. When the buffer (capacity k) is full, it is sorted and the threshold of
its entries alone is computed: a lower bound of the row's threshold (the sum of the
probabilities over a subset is smaller at every threshold), so every entry at or below it
is dropped from the buffer and from the rest of the pass. If the support still fills more
than half of the buffer, the support did not fit in k: the pass continues with 2k. At the
end the buffer holds the whole support, and its threshold is the row's (exact for
sparsemax and 1.5-entmax, by bisection restricted to the buffer for other alpha).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
from numba import prange, types

__all__ = ["BISECT", "ENTMAX15", "SPARSEMAX", "forward", "vjp"]

SPARSEMAX = 0
ENTMAX15 = 1
BISECT = 2

_INITIAL_CAPACITY = 64


@nb.njit(cache=True)
def _threshold(buf: np.ndarray, n: int, kind: int, alpha: float, n_iter: int, lb: float) -> float:
    """Threshold of the values ``buf[:n]`` alone (``buf`` is reordered).

    ``lb`` is a lower bound of the answer with ``f(lb) >= 1`` when the set holds its
    maximum; the result is never below ``lb``.
    """
    if kind != BISECT:
        b = buf[:n]
        b.sort()
        tau = lb
        if kind == SPARSEMAX:
            cs = 0.0
            for j in range(n):
                v = b[n - 1 - j]
                cs += v
                t = (cs - 1.0) / (j + 1)
                if t < v:
                    tau = t
                else:
                    break
        else:
            # Welford's running mean and sum of squares: no cancellation.
            mean = 0.0
            m2 = 0.0
            for j in range(n):
                v = b[n - 1 - j]
                k = j + 1
                d = v - mean
                mean += d / k
                m2 += d * (v - mean)
                delta = (1.0 - m2) / k
                t = mean - math.sqrt(delta) if delta > 0.0 else mean
                if t <= v:
                    tau = t
                else:
                    break
        return max(tau, lb)
    # alpha-entmax: bisection on [lb, max - n**(1 - alpha)] over the sorted set, each
    # step visiting only the entries above the midpoint.
    b = buf[:n]
    b.sort()
    inv = 1.0 / (alpha - 1.0)
    lo = lb
    dm = (b[n - 1] - (1.0 / n) ** (alpha - 1.0)) - lo
    if not dm > 0.0:  # the set lacks the row's maximum: no better bound yet
        return lo
    for _ in range(n_iter):
        dm *= 0.5
        tm = lo + dm
        f = 0.0
        for j in range(n - 1, -1, -1):
            u = b[j] - tm
            if not u > 0.0:
                break
            f += u**inv
            if f >= 1.0:
                break
        if f >= 1.0:
            lo = tm
    return lo


@nb.njit(cache=True)
def _row(x: np.ndarray, mask: np.ndarray, has_mask: bool, kind: int, alpha: float,
         n_iter: int, out: np.ndarray) -> None:
    k_len = x.shape[0]
    # Pass 1: max, NaN, +inf count (excluded entries ignored, even NaN).
    m = -np.inf
    n_inf = 0
    for i in range(k_len):
        if has_mask and not mask[i]:
            continue
        v = x[i]
        if v != v:  # the distribution is NaN; excluded entries stay exactly 0
            for j in range(k_len):
                out[j] = np.nan if (not has_mask or mask[j]) else 0.0
            return
        if v > m:
            m = v
        if v == np.inf:
            n_inf += 1
    if m == -np.inf:
        for j in range(k_len):
            out[j] = 0.0
        return
    if m == np.inf:
        share = 1.0 / n_inf
        for j in range(k_len):
            out[j] = share if (x[j] == np.inf and (not has_mask or mask[j])) else 0.0
        return
    mf = np.float64(m)
    if kind == SPARSEMAX:
        c = 1.0
    elif kind == ENTMAX15:
        c = 0.5
    else:
        c = alpha - 1.0
    # Pass 2: candidates X > lb into a growing top-k buffer.
    cap = _INITIAL_CAPACITY
    buf = np.empty(cap, dtype=np.float64)
    n = 0
    lb = -1.0
    for i in range(k_len):
        if has_mask and not mask[i]:
            continue
        xv = c * (np.float64(x[i]) - mf)
        if not xv > lb:
            continue
        if n == cap:
            lb = _threshold(buf, n, kind, alpha, n_iter, lb)
            w = 0
            for j in range(n):
                if buf[j] > lb:
                    buf[w] = buf[j]
                    w += 1
            n = w
            if n > cap // 2:  # the support does not fit: retry with a larger k
                bigger = np.empty(2 * cap, dtype=np.float64)
                bigger[:n] = buf[:n]
                buf = bigger
                cap *= 2
            if not xv > lb:
                continue
        buf[n] = xv
        n += 1
    tau = _threshold(buf, n, kind, alpha, n_iter, lb)
    # Pass 3: write the probabilities.
    scale = 1.0
    if kind == BISECT:
        inv = 1.0 / (alpha - 1.0)
        s = 0.0
        for j in range(n):
            u = buf[j] - tau
            if u > 0.0:
                s += u**inv
        scale = 1.0 / s
    for i in range(k_len):
        if has_mask and not mask[i]:
            out[i] = 0.0
            continue
        u = c * (np.float64(x[i]) - mf) - tau
        if u > 0.0:
            if kind == SPARSEMAX:
                out[i] = u
            elif kind == ENTMAX15:
                out[i] = u * u
            else:
                out[i] = u ** (1.0 / (alpha - 1.0)) * scale
        else:
            out[i] = 0.0


def _sig_forward(dt: types.Float) -> Any:
    ro = types.Array(dt, 2, "C", readonly=True)
    m = types.Array(types.boolean, 2, "C", readonly=True)
    return types.void(ro, m, types.boolean, types.int64, types.float64, types.int64,
                      types.Array(dt, 2, "C"))


@nb.njit([_sig_forward(types.float32), _sig_forward(types.float64)], parallel=True, cache=True)
def _forward(x: np.ndarray, mask: np.ndarray, has_mask: bool, kind: int, alpha: float,
             n_iter: int, out: np.ndarray) -> None:
    for r in prange(x.shape[0]):
        mrow = mask[r] if has_mask else mask[0]
        _row(x[r], mrow, has_mask, kind, alpha, n_iter, out[r])


_KINDS = {"sparsemax": SPARSEMAX, "entmax15": ENTMAX15, "entmax_bisect": BISECT}


def forward(x: np.ndarray, mask: np.ndarray | None, name: str, alpha: float = 2.0,
            n_iter: int = 50) -> np.ndarray:
    """``name`` (sparsemax, entmax15, entmax_bisect) of each row of C-contiguous ``(rows, K)``
    float32/float64 ``x``; ``mask`` a bool array of x's shape or None."""
    kind = _KINDS[name]
    out = np.empty(x.shape, dtype=x.dtype)
    if x.size == 0:
        return out
    m = np.ones((1, 1), dtype=np.bool_) if mask is None else np.ascontiguousarray(mask)
    _forward(x, m, mask is not None, kind, float(alpha), int(n_iter), out)
    return out


def _sig_vjp(dt: types.Float) -> Any:
    ro = types.Array(dt, 2, "C", readonly=True)
    return types.void(ro, ro, types.int64, types.float64, types.Array(dt, 2, "C"))


@nb.njit([_sig_vjp(types.float32), _sig_vjp(types.float64)], parallel=True, cache=True)
def _vjp(p: np.ndarray, g: np.ndarray, kind: int, alpha: float, out: np.ndarray) -> None:
    expo = 2.0 - alpha
    k_len = p.shape[1]
    for r in prange(p.shape[0]):
        bad = False
        sg = 0.0
        sgv = 0.0
        for i in range(k_len):
            pi = np.float64(p[r, i])
            if pi != pi:
                bad = True
                break
            if pi > 0.0:
                if kind == SPARSEMAX:
                    gi = 1.0
                elif kind == ENTMAX15:
                    gi = math.sqrt(pi)
                else:
                    gi = pi**expo
                sg += gi
                sgv += gi * np.float64(g[r, i])
        if bad:  # NaN on the row, except where p == 0 (excluded entries)
            for i in range(k_len):
                out[r, i] = 0.0 if p[r, i] == 0.0 else np.nan
            continue
        q = sgv / sg if sg > 0.0 else 0.0
        for i in range(k_len):
            pi = np.float64(p[r, i])
            if pi > 0.0:
                if kind == SPARSEMAX:
                    gi = 1.0
                elif kind == ENTMAX15:
                    gi = math.sqrt(pi)
                else:
                    gi = pi**expo
                out[r, i] = gi * (np.float64(g[r, i]) - q)
            else:
                out[r, i] = 0.0


def vjp(p: np.ndarray, g: np.ndarray, name: str, alpha: float = 2.0) -> np.ndarray:
    """Row-wise ``g^T J`` (= ``J g``, the Jacobian is symmetric) of map ``name`` at its
    output ``p``; C-contiguous ``(rows, K)`` ``p`` and ``g`` of one dtype."""
    kind = _KINDS[name]
    out = np.empty(p.shape, dtype=p.dtype)
    if p.size:
        _vjp(p, g, kind, float(alpha), out)
    return out
