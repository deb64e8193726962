"""numba kernels of :mod:`softargmax.streaming`: a piece of a distribution normalised by a
state computed elsewhere.

The chunked functions and the Dask path run everything else on the kernels of
:mod:`.core` (through :mod:`.api`): the (max, n0, rest) state of the distributions in a
chunk (pass one) and chunks that hold whole distributions (one pass). What those kernels
do not offer is pass two: writing ``exp(beta (y - m)) / s`` (softmax) or ``beta (y - m) -
log s`` (log_softmax) for a chunk, given the final ``(m, s)`` of each distribution after
the chunks' states were merged. The kernels here do that with the same error-free shift
and vectorisable ``exp`` as the core (:func:`.core._shift`, :func:`.core._exp_z`): the
loop over a normal distribution has no branches and runs as SIMD code.

Arguments, per distribution (one per row, or per ``(outer, inner)`` column):

* ``m``: the signed max (``sign * x``; 0 where the distribution is not normal),
* ``f``: ``1 / s`` for softmax, ``log s`` for log_softmax; for a distribution with
  ``+inf`` entries ``1 / n_inf`` or ``-log n_inf`` (the share of each of them),
* ``st``: the status (:data:`.core.NORMAL`, ``HAS_NAN``, ``HAS_INF``, ``EMPTY``); the
  other three are written by a scalar loop with the reference's semantics (NaN
  everywhere; the ``+inf`` entries share the mass; zeros / ``-inf``).

One more kernel gives pass one: the state of rows, from the core's row passes. With
``precise`` (logsumexp) the sums are those of the core's logsumexp (the shift rounded
once, float32 in float32 lanes: ``log s`` within logsumexp's bound, and the same value as
the in-memory function); otherwise those of the core's log_softmax (the compensated
shift, which a softmax and a log_softmax normalised by the state need).

The serial forms release the GIL, as the core's serial drivers do, so that the chunked
functions can run several chunks at once on threads (and a Dask worker several tasks).

The Dask path of a softmax whose axis is split over blocks (rows) keeps the exps of pass
one instead of computing them again: :func:`store_rows_serial` stores them relative to
each block's own max and gives the block's state; once the states are merged,
:func:`scale_rows_serial` multiplies each row by its factor ``exp(beta (m_block - m)) / s``
(one ``exp`` per entry in all, as in the core's long rows).

Layouts as in :mod:`.core`: rows ``(R, K)`` (a row may be split in pieces of
:data:`.core.CHUNK` entries, since each entry only needs its row's ``(m, f)``) and
columns ``(outer, K, inner)``, vectorised across the contiguous inner dimension. Each
exists in a serial form (small inputs) and a parallel one over ``ntask`` ranges.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from numba import njit, prange

from .core import (
    CHUNK,
    HAS_INF,
    HAS_NAN,
    LOGSUMEXP,
    NORMAL,
    SOFTMAX,
    SUM_BLOCK,
    _exp_store,
    _finite,
    _row_lse,
    _row_max,
    _row_store_scaled,
    _row_sums,
    _rows_merge,
    _shift,
    _special,
    _store_unit,
)

__all__ = [
    "cols_parallel",
    "cols_serial",
    "rows_parallel",
    "rows_serial",
    "scale_rows_serial",
    "state_rows_parallel",
    "state_rows_serial",
    "store_rows_serial",
]


@njit(cache=True)
def _normal(x, sign, bhi, blo, kind, m, f, out):  # type: ignore[no-untyped-def]
    """A normal piece of a row: ``m`` and ``f`` scalars; vectorised, no branches."""
    if kind == SOFTMAX:
        # as the core's softmax: float32 exps are stored times 2**64, so that a subnormal
        # probability is rounded once, by the final product
        fs = f / _store_unit(sign)
        for j in range(x.shape[0]):
            zhi, zlo = _shift(x[j] * sign, m, bhi, blo)
            out[j] = _exp_store(zhi, zlo, sign) * fs
    else:
        for j in range(x.shape[0]):
            zhi, zlo = _shift(x[j] * sign, m, bhi, blo)
            out[j] = (zhi - f) + zlo


@njit(cache=True)
def _special_value(y, kind, status, f):  # type: ignore[no-untyped-def]
    """The entry ``y`` (signed) of a distribution with NaN, ``+inf`` entries or no support."""
    if status == HAS_NAN:
        return np.nan
    if status == HAS_INF and y == np.inf:
        return f
    return 0.0 if kind == SOFTMAX else -np.inf


@njit(cache=True)
def _rows_tasks(x, sign, bhi, blo, kind, m, f, st, out, t0, t1):  # type: ignore[no-untyped-def]
    """Tasks ``t0..t1``: task ``t`` is piece ``t % nc`` of row ``t // nc``."""
    k = x.shape[1]
    nc = max(1, -(-k // CHUNK))
    for t in range(t0, t1):
        r = t // nc
        lo = (t - r * nc) * CHUNK
        hi = min(k, lo + CHUNK)
        xv = x[r, lo:hi]
        ov = out[r, lo:hi]
        status = st[r]
        if status == NORMAL:
            _normal(xv, sign, bhi, blo, kind, m[r], f[r], ov)
        else:
            for j in range(hi - lo):
                ov[j] = _special_value(xv[j] * sign, kind, status, f[r])


@njit(cache=True)
def _cols_tasks(x, sign, bhi, blo, kind, m, f, st, special, out, t0, t1):  # type: ignore[no-untyped-def]
    """Tasks ``t0..t1`` of the column layout: task ``t`` is the inner row ``(o, i) =
    divmod(t, K)``, normalised entry by entry with its column's ``(m, f)``; ``special[o]``
    says whether block ``o`` has columns that are not normal (rewritten afterwards)."""
    k = x.shape[1]
    for t in range(t0, t1):
        o = t // k
        i = t - o * k
        xv = x[o, i]
        ov = out[o, i]
        mo = m[o]
        fo = f[o]
        if kind == SOFTMAX:
            unit = _store_unit(sign)
            for j in range(xv.shape[0]):
                zhi, zlo = _shift(xv[j] * sign, mo[j], bhi, blo)
                ov[j] = _exp_store(zhi, zlo, sign) * (fo[j] / unit)
        else:
            for j in range(xv.shape[0]):
                zhi, zlo = _shift(xv[j] * sign, mo[j], bhi, blo)
                ov[j] = (zhi - fo[j]) + zlo
        if special[o]:
            so = st[o]
            for j in range(xv.shape[0]):
                if so[j] != NORMAL:
                    ov[j] = _special_value(xv[j] * sign, kind, so[j], fo[j])


def _sigs(ndim: int, extra: tuple[Any, ...], parallel: bool) -> list[Any]:
    f64, i8 = nb.types.float64, nb.types.int8
    sigs = []
    for t in (nb.types.float32, nb.types.float64):
        x = nb.types.Array(t, ndim, "C", readonly=True)  # writeable arrays are accepted too
        maxima = nb.types.Array(t, ndim - 1, "C", readonly=True)  # data values: exact in t
        state = nb.types.Array(f64, ndim - 1, "C", readonly=True)
        status = nb.types.Array(i8, ndim - 1, "C", readonly=True)
        out = nb.types.Array(t, ndim, "C")
        args = (x, t, f64, f64, nb.types.int64, maxima, state, status, *extra, out)
        sigs.append(nb.types.void(*args, *((nb.types.int64,) if parallel else ())))
    return sigs


_FLAG = (nb.types.Array(nb.types.boolean, 1, "C", readonly=True),)


@njit(_sigs(2, (), True), parallel=True, cache=True)
def rows_parallel(x, sign, bhi, blo, kind, m, f, st, out, ntask):  # type: ignore[no-untyped-def]
    """Rows ``(R, K)``, in parallel over ``ntask`` ranges of the row pieces."""
    nt = x.shape[0] * max(1, -(-x.shape[1] // CHUNK))
    for b in prange(ntask):
        _rows_tasks(x, sign, bhi, blo, kind, m, f, st, out, b * nt // ntask, (b + 1) * nt // ntask)


@njit(_sigs(2, (), False), cache=True, nogil=True)
def rows_serial(x, sign, bhi, blo, kind, m, f, st, out):  # type: ignore[no-untyped-def]
    """Rows ``(R, K)``, on the calling thread."""
    nt = x.shape[0] * max(1, -(-x.shape[1] // CHUNK))
    _rows_tasks(x, sign, bhi, blo, kind, m, f, st, out, 0, nt)


@njit(_sigs(3, _FLAG, True), parallel=True, cache=True)
def cols_parallel(x, sign, bhi, blo, kind, m, f, st, special, out, ntask):  # type: ignore[no-untyped-def]
    """Columns ``(outer, K, inner)``, in parallel over ``ntask`` ranges of inner rows."""
    nt = x.shape[0] * x.shape[1]
    for b in prange(ntask):
        _cols_tasks(x, sign, bhi, blo, kind, m, f, st, special, out, b * nt // ntask, (b + 1) * nt // ntask)


@njit(_sigs(3, _FLAG, False), cache=True, nogil=True)
def cols_serial(x, sign, bhi, blo, kind, m, f, st, special, out):  # type: ignore[no-untyped-def]
    """Columns ``(outer, K, inner)``, on the calling thread."""
    _cols_tasks(x, sign, bhi, blo, kind, m, f, st, special, out, 0, x.shape[0] * x.shape[1])


# --------------------------------------------------------------------------- state of rows
@njit(cache=True)
def _state_tasks(x, sign, bhi, blo, precise, st, ms, nc, t0, t1):  # type: ignore[no-untyped-def]
    """Tasks ``t0..t1``: the ``(status, n0, rest)`` and max of piece ``t % nc`` of row
    ``t // nc``: the core's row passes, summed as logsumexp sums (:func:`.core._row_lse`)
    if ``precise``, else as log_softmax does (:func:`.core._row_sums`, the exps of the
    compensated shift kept in a scratch block in L1 and summed in a second loop: the exp
    loop runs at the dtype's full width)."""
    k = x.shape[1]
    scratch = np.empty(min(k, SUM_BLOCK), dtype=x.dtype)
    for t in range(t0, t1):
        r = t // nc
        lo = (t - r * nc) * CHUNK
        hi = min(k, lo + CHUNK)
        xv = x[r, lo:hi]
        m = _row_max(xv, sign)
        n0 = 0.0
        rest = 0.0
        if _finite(m):
            if precise:
                n0, rest = _row_lse(xv, sign, m, bhi, blo, scratch)
            else:
                n0, rest = _row_sums(xv, sign, m, bhi, blo, scratch[:min(hi - lo, SUM_BLOCK)], False)
            status = HAS_NAN if rest != rest else NORMAL
        else:
            status, _ = _special(xv, sign, LOGSUMEXP, scratch[:0])
        st[t, 0] = status
        st[t, 1] = n0
        st[t, 2] = rest
        ms[t] = m


def _state_sigs(parallel: bool) -> list[Any]:
    f64 = nb.types.float64
    sigs = []
    for t in (nb.types.float32, nb.types.float64):
        x = nb.types.Array(t, 2, "C", readonly=True)
        args = (x, t, f64, f64, nb.types.boolean, nb.types.Array(f64, 2, "C"), nb.types.Array(t, 1, "C"),
                nb.types.int64,
                nb.types.Array(f64, 2, "C"), nb.types.Array(t, 1, "C"))
        sigs.append(nb.types.void(*args, *((nb.types.int64,) if parallel else ())))
    return sigs


@njit(_state_sigs(True), parallel=True, cache=True)
def state_rows_parallel(x, sign, bhi, blo, precise, st, ms, nc, rst, rms, ntask):  # type: ignore[no-untyped-def]
    """The state of rows ``(R, K)`` in ``rst[r] = (status, n0, rest)``, ``rms[r] = max``,
    summed as the core's logsumexp sums if ``precise``, else as its log_softmax does.

    With ``nc > 1`` each row is cut in ``nc`` pieces of :data:`.core.CHUNK` entries whose
    states (in ``st``, ``ms``) are merged by :func:`.core._rows_merge`; with ``nc == 1``
    ``st`` and ``ms`` are ``rst`` and ``rms``. The ``+inf`` count of rows with ``+inf``
    entries is not kept (their ``n0`` is 0).
    """
    nt = x.shape[0] * nc
    for b in prange(ntask):
        _state_tasks(x, sign, bhi, blo, precise, st, ms, nc, b * nt // ntask, (b + 1) * nt // ntask)
    if nc > 1:
        _rows_merge(x, sign, bhi, blo, LOGSUMEXP, np.empty((x.shape[0], 0), x.dtype), st, ms, nc, rst, rms)


@njit(_state_sigs(False), cache=True, nogil=True)
def state_rows_serial(x, sign, bhi, blo, precise, st, ms, nc, rst, rms):  # type: ignore[no-untyped-def]
    """As :func:`state_rows_parallel`, on the calling thread."""
    _state_tasks(x, sign, bhi, blo, precise, st, ms, nc, 0, x.shape[0] * nc)
    if nc > 1:
        _rows_merge(x, sign, bhi, blo, LOGSUMEXP, np.empty((x.shape[0], 0), x.dtype), st, ms, nc, rst, rms)


# --------------------------------------------------------------------------- split rows, kept exps
@njit(cache=True)
def _store_row(x, sign, bhi, blo, out):  # type: ignore[no-untyped-def]
    """Pass one of a row whose distribution goes on in other blocks: the exps relative
    to this piece's own max, stored as the core's softmax stores them (:func:`.core._exp_store`:
    float32 times ``2**64``), by the core's :func:`.core._row_store_scaled`.

    Returns ``(status, m, n0, rest)`` with ``rest`` the sum of the exps (the stored sum
    over the store unit: exact, a power of 2) and ``n0 = 0`` for a normal piece. A piece
    that is not normal stores what its distribution's final factor multiplies: 1 at its
    ``+inf`` entries and 0 elsewhere (``n0`` is then the ``+inf`` count), 0 everywhere if
    it has a NaN or no finite maximum.
    """
    m = _row_max(x, sign)
    n_inf = 0
    if _finite(m):
        _, total = _row_store_scaled(x, sign, m, bhi, blo, out)
        if total == total:
            return NORMAL, m, 0.0, total / _store_unit(sign)
        status = HAS_NAN
    else:
        status, n_inf = _special(x, sign, LOGSUMEXP, out)
    for j in range(x.shape[0]):
        out[j] = 1.0 if status == HAS_INF and x[j] * sign == np.inf else 0.0
    return status, m, np.float64(n_inf if status == HAS_INF else 0), 0.0


def _store_sigs() -> list[Any]:
    f64 = nb.types.float64
    return [
        nb.types.void(nb.types.Array(t, 2, "C", readonly=True), t, f64, f64, nb.types.Array(f64, 2, "C"),
                      nb.types.Array(t, 1, "C"), nb.types.Array(t, 2, "C"))
        for t in (nb.types.float32, nb.types.float64)
    ]


@njit(_store_sigs(), cache=True, nogil=True)
def store_rows_serial(x, sign, bhi, blo, st, ms, out):  # type: ignore[no-untyped-def]
    """Pass one of a softmax over rows ``(R, K)`` that other blocks continue: ``out[r]``
    the stored exps of row ``r`` relative to its own max ``ms[r]``, ``st[r] = (status,
    n0, rest)`` (see :func:`_store_row`); pass two is :func:`scale_rows_serial`."""
    for r in range(x.shape[0]):
        status, m, n0, rest = _store_row(x[r], sign, bhi, blo, out[r])
        st[r, 0] = status
        st[r, 1] = n0
        st[r, 2] = rest
        ms[r] = m


def _scale_sigs() -> list[Any]:
    f64 = nb.types.float64
    return [nb.types.void(nb.types.Array(t, 2, "C"), nb.types.Array(f64, 1, "C", readonly=True))
            for t in (nb.types.float32, nb.types.float64)]


@njit(cache=True)
def _scale_row(e, f):  # type: ignore[no-untyped-def]
    # one array read and written: a loop over two arrays that may alias runs 2x slower
    for j in range(e.shape[0]):
        e[j] = e[j] * f


@njit(_scale_sigs(), cache=True, nogil=True)
def scale_rows_serial(e, f):  # type: ignore[no-untyped-def]
    """``e[r] *= f[r]`` in place, the product in float64 rounded once to ``e``'s dtype
    (as the core's softmax scales its stored exps): pass two of
    :func:`store_rows_serial`, with ``f[r]`` the row's rescaling factor
    ``exp(beta (m_piece - m)) / s`` over the store unit (or ``1 / n_inf``, 0 or NaN)."""
    for r in range(e.shape[0]):
        _scale_row(e[r], f[r])
