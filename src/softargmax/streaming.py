"""Softmax beyond memory: a mergeable (max, scaled sum) accumulator and chunked functions.

The partition function is a sum, and a sum of exponentials can be carried as a pair
``(m, s)`` with ``m`` the largest (scaled) input seen so far and ``s = sum exp(beta *
(x - m))``. Two pairs merge exactly as two halves of the data would have:

.. math::

    (m_1, s_1) \\oplus (m_2, s_2) = (M, s_1 e^{\\beta (m_1 - M)} + s_2 e^{\\beta (m_2 - M)}),
    \\qquad M = \\max(m_1, m_2),

an associative and commutative operation, so ``logsumexp`` and the normaliser of
``softmax`` can be computed over chunks in any order and grouping: one pass accumulates,
a second pass writes ``exp(beta * (x - m)) / s`` chunk by chunk.

:class:`LogSumExpAccumulator` holds one pair per output position (with the count of
maxima kept apart, so that ``log s`` stays exact next to ``s = 1``) and follows the edge
semantics of :mod:`softargmax.core` exactly: ``+inf`` entries share the mass, an empty
support gives ``-inf``, a NaN spoils only its own distribution, ``where=`` and ``b``
weights exclude entries, and the scale is applied to shifted inputs.

:func:`softmax_chunked`, :func:`log_softmax_chunked` and :func:`logsumexp_chunked` run
the two passes over any sliceable array (a NumPy array or memmap, a Zarr array, an HDF5
dataset), holding one chunk at a time; for a NumPy memmap they also hand the pages they
have finished with back to the operating system, so the resident memory stays bounded
whatever the size of the file.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import mmap
import numbers
import threading
from collections.abc import Iterator
from typing import Any, Literal, NamedTuple, overload

import numpy as np

from . import _reference
from ._validation import (
    Scale,
    check_implementation,
    check_out,
    check_where,
    float_input,
    normalize_axis,
    resolve_scale,
    result_float_dtype,
)

__all__ = [
    "LogSumExpAccumulator",
    "log_softmax_chunked",
    "logsumexp_chunked",
    "softmax_chunked",
]

Array = Any

DEFAULT_CHUNK_SIZE = 1 << 20
"""Elements read at a time by the chunked functions when ``chunk_size`` is not given."""


# --------------------------------------------------------------------------- the state
class _State(NamedTuple):
    """Per distribution: the signed max ``m`` of the included, non-NaN inputs, the weight
    ``n0`` of the entries equal to it (the count, or the sum of ``b`` there), the sum
    ``rest`` of the weighted ``exp(|beta| (y - m))`` of all the other entries, and whether
    an included entry is NaN. ``m = +inf``: ``n0`` is the weight of the ``+inf`` entries,
    ``rest`` is 0. ``m = -inf``: empty support, ``n0 = rest = 0``. NaN rows carry
    ``m = -inf`` and zeros, so that they never spoil a merge.
    """

    m: Any
    n0: Any
    rest: Any
    nan: Any


def _state_dtype(work_dtype: Any) -> np.dtype:
    """The accumulation dtype: float64, or wider for a wider input (long double)."""
    return np.result_type(work_dtype, np.float64)


def _empty_state(shape: tuple[int, ...], dtype: Any) -> _State:
    return _State(
        np.full(shape, -np.inf, dtype=dtype),
        np.zeros(shape, dtype=dtype),
        np.zeros(shape, dtype=dtype),
        np.zeros(shape, dtype=bool),
    )


def _signed_masked(x: Any, scale: Scale, mask: Any, b: Any) -> tuple[Any, Any, Any]:
    """``y = sign * x`` with excluded entries (``where``, ``b == 0``) at -inf and NaNs at -inf.

    Returns ``(y, nan, b)``: ``nan`` marks the included NaN entries (of ``x`` or ``b``),
    ``b`` has its zeros (and the NaNs behind them) cleaned.
    """
    y = -x if scale.sign < 0 else x
    if mask is not None:
        y = np.where(mask, y, -np.inf)
    if b is not None:
        excluded = b == 0
        y = np.where(excluded, -np.inf, y)
        b = np.where(excluded, 0, b)
        nan = np.isnan(y) | np.isnan(b)
    else:
        nan = np.isnan(y)
    return np.where(nan, -np.inf, y), nan, b


def _use_kernel(
    implementation: str, work_dtype: Any, state_dtype: Any, has_b: bool, axes: tuple[int, ...]
) -> bool:
    """Whether the numba kernels run this block: float32/float64 data, float64 state, no
    ``b``, at least one axis (``axis=()`` is elementwise: the NumPy path)."""
    ok = np.dtype(work_dtype) in (np.float32, np.float64) and np.dtype(state_dtype) == np.float64 and not has_b
    if implementation == "numba" and not ok:
        msg = f"implementation='numba' needs float32/float64 data without b, got {np.dtype(work_dtype)}"
        raise ValueError(msg)
    return ok and implementation != "reference" and bool(axes)


def _wants_parallel(size: int) -> bool:
    """Whether a kernel on ``size`` elements runs in its parallel form: the rule of
    :mod:`softargmax._kernels.api` (its threshold; one thread inside a worker thread of
    the chunked functions or a Dask task, where the thread count is set to 1)."""
    import numba

    from ._kernels import api

    return size >= api.PARALLEL_MIN and numba.get_num_threads() > 1


def _layout_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, int, int]:
    """``(outer, K, inner)`` as :class:`softargmax._kernels.api._Layout` will lay a block out."""
    k = math.prod(shape[i] for i in axes)
    inner = math.prod(shape[axes[-1] + 1:]) if axes == tuple(range(axes[0], axes[-1] + 1)) else 1
    return math.prod(shape) // max(k * inner, 1), k, inner


def _kernel_state(x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, precise: bool) -> _State:
    """The state on the core's kernels: their ``(status, m, n0, rest)`` per distribution,
    with the ``+inf`` count (which they do not keep) added for the distributions that have
    ``+inf`` entries, and NaN ones set to ``m = -inf``.

    ``precise``: the sums of the in-memory logsumexp, to its accuracy (logsumexp);
    otherwise those of the core's log_softmax, to the data's own accuracy, which is all a
    softmax needs (see :mod:`softargmax._kernels.streaming`).
    """
    import numba

    from ._kernels import api
    from ._kernels import core as kc
    from ._kernels import streaming as kern

    lay = api._Layout(x, axes, mask, scale)
    nout, k, ninner = lay.x.shape
    if ninner == 1 and (k >= kc.SHORT or nout == 1):
        x2 = lay.x.reshape(nout, k)
        sign, bhi, blo = api._scale_args(scale, x2.dtype)
        st, ms = np.empty((nout, 3)), np.empty(nout, x2.dtype)
        nc = -(-k // kc.CHUNK)
        pst, pms = (st, ms) if nc == 1 else (np.empty((nout * nc, 3)), np.empty(nout * nc, x2.dtype))
        with api.parallel_slot(_wants_parallel(x2.size)) as parallel:
            if parallel:
                kern.state_rows_parallel(x2, sign, bhi, blo, precise, pst, pms, nc, st, ms,
                                         min(nout * nc, 8 * numba.get_num_threads()))
            else:
                kern.state_rows_serial(x2, sign, bhi, blo, precise, pst, pms, nc, st, ms)
    else:
        if precise and lay.x.dtype == np.float32:
            # as api.logsumexp: the short-row and column kernels sum float32 input with
            # the float32-accurate exp, and logsumexp needs the sum to float64 accuracy
            lay.x = lay.x.astype(np.float64)
        st, ms = api._run(lay, scale, kc.LOGSUMEXP, None)
    grid = (nout, ninner)
    status = st[..., 0].reshape(grid)
    n0 = st[..., 1].reshape(grid)
    rest = st[..., 2].reshape(grid)
    m = ms.astype(np.float64).reshape(grid)
    nan = status == kc.HAS_NAN
    if nan.any():
        m[nan] = -np.inf
        n0[nan] = 0.0
        rest[nan] = 0.0
    at_inf = status == kc.HAS_INF
    if at_inf.any():
        o, i = np.nonzero(at_inf)
        n0[o, i] = np.count_nonzero(lay.x[o, :, i] == np.inf * scale.sign, axis=-1)
        rest[o, i] = 0.0
    shape = lay.keep_shape
    return _State(m.reshape(shape), n0.reshape(shape), rest.reshape(shape), nan.reshape(shape))


def _kernel_normalise(
    name: str, x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, state: _State, out: Any
) -> np.ndarray:
    """Pass two on the kernels of :mod:`softargmax._kernels.streaming`: per distribution
    the status and ``(m, 1/s)`` (or ``log s``) go in, one vectorised loop writes."""
    import numba

    from ._kernels import api
    from ._kernels import core as kc
    from ._kernels import streaming as kern

    lay = api._Layout(x, axes, mask, scale)
    x3 = lay.x
    nout, k, ninner = x3.shape
    res, res3 = lay.result(out)
    grid = (nout, ninner)
    m, n0, rest, nan = (np.reshape(np.broadcast_to(f, lay.keep_shape), grid) for f in state)
    with np.errstate(all="ignore"):
        normal = np.isfinite(m) & ~nan
        at_inf = (m == np.inf) & ~nan
        status = np.full(grid, kc.EMPTY, dtype=np.int8)
        status[normal] = kc.NORMAL
        status[at_inf] = kc.HAS_INF
        status[nan] = kc.HAS_NAN
        if name == "softmax":
            kind = kc.SOFTMAX
            f = np.where(normal, 1.0 / (n0 + rest), np.where(at_inf, 1.0 / n0, 0.0))
        else:
            kind = kc.LOG_SOFTMAX
            _, log_s = _log_sum(_State(m, n0, rest, nan))
            f = np.where(normal, log_s, np.where(at_inf, -np.log(n0), 0.0))
        # the maxima are data values: exact in the data's dtype, which the kernels' shift takes
        m = np.where(normal, m, 0.0).astype(x3.dtype)
    sign, bhi, blo = api._scale_args(scale, x3.dtype)
    with api.parallel_slot(_wants_parallel(x3.size)) as parallel:
        ntask = 8 * numba.get_num_threads()
        if ninner == 1:
            x2, o2 = x3.reshape(nout, k), res3.reshape(nout, k)
            m1, f1, s1 = m.reshape(nout), f.reshape(nout), status.reshape(nout)
            if parallel:
                kern.rows_parallel(x2, sign, bhi, blo, kind, m1, f1, s1, o2, min(nout * -(-k // kc.CHUNK), ntask))
            else:
                kern.rows_serial(x2, sign, bhi, blo, kind, m1, f1, s1, o2)
        else:
            special = (status != kc.NORMAL).any(axis=1)
            if parallel:
                kern.cols_parallel(x3, sign, bhi, blo, kind, m, f, status, special, res3, min(nout * k, ntask))
            else:
                kern.cols_serial(x3, sign, bhi, blo, kind, m, f, status, special, res3)
    res = lay.back(res, out)
    if mask is not None and nan.any():
        # excluded entries are structural: 0 / -inf even in a NaN row
        np.copyto(res, 0.0 if kind == kc.SOFTMAX else -np.inf, where=~np.asarray(mask))
    return res


def _rows_axes(axes: tuple[int, ...], ndim: int) -> bool:
    """Whether ``axes`` are the trailing axes: a block is then rows ``(R, K)`` as it lies."""
    return bool(axes) and axes == tuple(range(axes[0], ndim))


def _stored_rows(x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any) -> tuple[np.ndarray, _State]:
    """Pass one of a softmax whose distributions go on in other blocks, keeping the exps.

    ``axes`` are the trailing axes of the block (:func:`_rows_axes`). Returns the exps of
    each distribution relative to the block's own max, stored as the core's softmax
    stores them (float32: times ``2**64``; the working dtype of the kernels), and the
    block's state (keepdims; the sum ``rest`` of the exps, ``n0 = 0``, which a softmax
    does not need apart). :func:`_rescaled_rows` finishes them with the merged state.
    """
    from ._kernels import api
    from ._kernels import core as kc
    from ._kernels import streaming as kern

    lay = api._Layout(x, axes, mask, scale)
    nout, k, _ = lay.x.shape
    x2 = lay.x.reshape(nout, k)
    e = np.empty(x2.shape, x2.dtype)
    st, ms = np.empty((nout, 3)), np.empty(nout, x2.dtype)
    kern.store_rows_serial(x2, *api._scale_args(scale, x2.dtype), st, ms, e)
    nan = st[:, 0] == kc.HAS_NAN
    m = ms.astype(np.float64)
    m[nan] = -np.inf
    shape = lay.keep_shape
    return e.reshape(x.shape), _State(m.reshape(shape), st[:, 1].reshape(shape), st[:, 2].reshape(shape),
                                      nan.reshape(shape))


def _rescaled_rows(e: np.ndarray, axes: tuple[int, ...], own: _State, final: _State, scale: Scale, mask: Any) -> None:
    """Pass two of :func:`_stored_rows`: turns the stored exps ``e`` (C-contiguous) of a
    block into its softmax in place, given the block's own state and the merged (final)
    state of its distributions.

    Each row is multiplied by one factor, computed in float64: ``exp(beta (m_own - m)) /
    s`` over the store unit where the distribution is normal (the error-free shift of
    :func:`_exp_shift`), ``1 / n_inf`` where it has ``+inf`` entries (``e`` is 1 at this
    block's ones), 0 where it is empty, NaN where it has a NaN anywhere.
    """
    from ._kernels import streaming as kern

    if e.size == 0:
        return
    k = math.prod(e.shape[i] for i in axes)
    nout = e.size // k
    unit = 2.0**64 if e.dtype == np.float32 else 1.0
    with np.errstate(all="ignore"):
        m = final.m
        shift = np.where(own.m == m, 1.0, _exp_shift(own.m, m, scale))
        f = np.where(np.isfinite(m), shift / ((final.n0 + final.rest) * unit), 0.0)
        f = np.where(m == np.inf, np.where(own.m == np.inf, 1.0 / final.n0, 0.0), f)
        f = np.where(final.nan, np.nan, f)
    f = np.ascontiguousarray(np.broadcast_to(f, own.m.shape), dtype=np.float64).reshape(nout)
    kern.scale_rows_serial(e.reshape(nout, k), f)
    if mask is not None and final.nan.any():
        # excluded entries are structural: 0 even in a NaN row
        np.copyto(e, 0.0, where=~np.asarray(mask))


def _block_state(
    x: Any, axes: tuple[int, ...], scale: Scale, mask: Any, b: Any, dtype: Any,
    implementation: str = "auto", precise: bool = True,
) -> _State:
    """The state of one block of data over ``axes`` (keepdims shapes), computed in ``dtype``.

    ``x`` and ``b`` (or None) are float arrays of one shape, ``mask`` a bool array of it or
    None. Uses the same error-free shift as :mod:`softargmax._reference`. ``precise=False``
    (a state that only serves a softmax) lets the kernels sum float32 data to float32
    accuracy.
    """
    reduce = _reference._reduce
    x = np.asarray(x)
    shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    if x.size == 0:
        return _empty_state(shape, dtype)
    if _use_kernel(implementation, x.dtype, dtype, b is not None, axes):
        return _kernel_state(x, axes, scale, mask, precise)
    with np.errstate(all="ignore"):
        x = np.asarray(x, dtype=dtype)
        b = None if b is None else np.asarray(b, dtype=dtype)
        y, nan, b = _signed_masked(x, scale, mask, b)
        nan_row = reduce(np.any, nan, axes)
        m = reduce(np.max, y, axes)
        m_fin = np.where(np.isfinite(m), m, 0)
        z_hi, z_lo = _reference._shifted(np, y, m_fin, scale)
        e = np.exp(z_hi)
        e += e * z_lo
        is_max = (z_hi == 0) & (z_lo == 0)
        weight = np.ones_like(y) if b is None else b
        if b is not None:
            e *= b
        n0 = reduce(np.sum, np.where(is_max, weight, 0), axes)
        rest = reduce(np.sum, np.where(is_max, 0, e), axes)
        inf_row = m == np.inf
        if inf_row.any():
            n_inf = reduce(np.sum, np.where(y == np.inf, weight, 0), axes)
            n0 = np.where(inf_row, n_inf, n0)
            rest = np.where(inf_row, 0, rest)
        if nan_row.any():
            m = np.where(nan_row, -np.inf, m)
            n0 = np.where(nan_row, 0, n0)
            rest = np.where(nan_row, 0, rest)
        return _State(
            np.broadcast_to(m, shape).astype(dtype),
            np.broadcast_to(n0, shape).astype(dtype),
            np.broadcast_to(rest, shape).astype(dtype),
            np.broadcast_to(nan_row, shape).copy(),
        )


def _exp_shift(lo: Any, hi: Any, scale: Scale) -> Any:
    """``exp(|beta| (lo - hi))`` to full relative accuracy; 0 unless both are finite, lo < hi."""
    ok = np.isfinite(lo) & np.isfinite(hi) & (lo < hi)
    z_hi, z_lo = _reference._shifted(np, np.where(ok, lo, 0), np.where(ok, hi, 0), scale)
    f = np.exp(z_hi)
    f += f * z_lo
    return np.where(ok, f, 0)


def _merge(a: _State, b: _State, scale: Scale) -> _State:
    """Merge two states (broadcasting): the exact combination of the data behind them.

    Commutative exactly; associative up to the rounding of the sums.
    """
    with np.errstate(all="ignore"):
        m = np.maximum(a.m, b.m)
        equal = a.m == b.m
        a_big = a.m > b.m
        f = _exp_shift(np.minimum(a.m, b.m), m, scale)
        small = np.where(a_big, b.n0 + b.rest, a.n0 + a.rest)
        contrib = np.where(f == 0, 0, small * f)
        n0 = np.where(equal, a.n0 + b.n0, np.where(a_big, a.n0, b.n0))
        rest = np.where(equal, a.rest + b.rest, np.where(a_big, a.rest, b.rest) + contrib)
        return _State(m, n0, rest, a.nan | b.nan)


def _merge_along(state: _State, axes: tuple[int, ...], scale: Scale) -> _State:
    """Fold the pairwise :func:`_merge` over ``axes`` (keepdims): the n-way merge."""
    if not axes:
        return state
    rest_axes = [i for i in range(state.m.ndim) if i not in axes]
    order = rest_axes + list(axes)
    out_shape = tuple(1 if i in axes else n for i, n in enumerate(state.m.shape))
    k = math.prod(state.m.shape[i] for i in axes)
    flat = [np.moveaxis(f, order, range(len(order))).reshape(*(state.m.shape[i] for i in rest_axes), k) for f in state]
    if k == 0:
        return _empty_state(out_shape, state.m.dtype)
    acc = _State(*(f[..., 0] for f in flat))
    for j in range(1, k):
        acc = _merge(acc, _State(*(f[..., j] for f in flat)), scale)
    return _State(*(np.reshape(f, out_shape) for f in acc))


def _log_sum(state: _State) -> tuple[Any, Any]:
    """``(s, log|s|)`` with ``s = n0 + rest``; ``log1p`` next to ``s = 1``."""
    s = state.n0 + state.rest
    s_m1 = (state.n0 - 1) + state.rest
    small = np.abs(s_m1) < 0.5
    log_s = np.where(small, np.log1p(np.where(small, s_m1, 0)), np.log(np.abs(s)))
    return s, log_s


def _state_logsumexp(state: _State, scale: Scale, weighted: bool) -> tuple[Any, Any]:
    """``(lse, sign)`` of a state, as :func:`softargmax._reference.logsumexp` gives them."""
    with np.errstate(all="ignore"):
        m = state.m
        s, log_s = _log_sum(state)
        lse = _reference._scaled(np, np.where(np.isfinite(m), m, 0), scale) + log_s
        sign = np.sign(s) if weighted else np.ones_like(s)
        lse = np.where(sign == 0, -np.inf, lse)
        inf_row = m == np.inf
        inf_sign = np.sign(state.n0) if weighted else np.ones_like(s)
        lse = np.where(inf_row, np.where(inf_sign == 0, np.nan, np.inf), lse)
        sign = np.where(inf_row, inf_sign, sign)
        empty = (m == -np.inf) & ~state.nan
        lse = np.where(empty, -np.inf, lse)
        sign = np.where(empty, 0, sign)
        lse = np.where(state.nan, np.nan, lse)
        sign = np.where(state.nan | np.isnan(lse), np.nan, sign)
        return lse, sign


def _normalise(
    name: str, x: Any, axes: tuple[int, ...], scale: Scale, mask: Any, state: _State, dtype: Any,
    implementation: str = "auto", out: Any = None,
) -> Any:
    """Pass two: softmax or log_softmax of a block given the (keepdims) final state.

    Returns the working dtype of ``x`` (float32 or float64 on the kernel path, ``dtype``
    on the NumPy path); the caller casts. The kernel path writes into ``out`` (and returns
    it) when it is a C-contiguous NumPy array of that dtype.
    """
    x = np.asarray(x)
    if x.size and _use_kernel(implementation, x.dtype, dtype, False, axes):
        return _kernel_normalise(name, x, axes, scale, mask, state, out)
    with np.errstate(all="ignore"):
        x = np.asarray(x, dtype=dtype)
        y, _, _ = _signed_masked(x, scale, mask, None)
        m = state.m
        z_hi, z_lo = _reference._shifted(np, y, np.where(np.isfinite(m), m, 0), scale)
        at_inf = y == np.inf
        inf_row = m == np.inf
        empty = (m == -np.inf) & ~state.nan
        if name == "softmax":
            s = state.n0 + state.rest
            r = np.exp(z_hi)
            r += r * z_lo
            r /= s
            inf_value = np.where(at_inf, 1 / state.n0, 0)
            empty_value = 0.0
        else:
            _, log_s = _log_sum(state)
            r = (z_hi - log_s) + z_lo
            inf_value = np.where(at_inf, -np.log(state.n0), -np.inf)
            empty_value = -np.inf
        if inf_row.any():
            r = np.where(inf_row, inf_value, r)
        r = np.where(empty, empty_value, r)
        r = np.where(state.nan, np.nan, r)
        # excluded entries stay structural zeros (-inf) even in a NaN row
        return r if mask is None else np.where(mask, r, empty_value)


def _whole_rows(name: str, x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, out: Any) -> np.ndarray:
    """The serial kernel path of :func:`_softmax_block` for rows: the core's serial row
    driver (:func:`softargmax._kernels.core.rows_serial`, which releases the GIL), laid
    out as :mod:`softargmax._kernels.api` does."""
    from ._kernels import api
    from ._kernels import core as kc

    kind = kc.SOFTMAX if name == "softmax" else kc.LOG_SOFTMAX
    lay = api._Layout(x, axes, mask, scale)
    nout, k, _ = lay.x.shape
    res, res3 = lay.result(out)
    st, ms = np.empty((nout, 3)), np.empty(nout, lay.x.dtype)
    kc.rows_serial(lay.x.reshape(nout, k), *api._scale_args(scale, lay.x.dtype), kind, res3.reshape(nout, k),
                   st, ms, 1, st, ms)
    res = lay.back(res, out)
    if mask is not None:
        # excluded entries are structural: 0 / -inf even in a NaN row
        np.copyto(res, 0.0 if kind == kc.SOFTMAX else -np.inf, where=~np.asarray(mask))
    return res


def _softmax_block(
    name: str, x: Any, axes: tuple[int, ...], scale: Scale, mask: Any, dtype: Any,
    implementation: str = "auto", out: Any = None,
) -> Any:
    """softmax / log_softmax of a block that holds whole distributions: on the numba path
    the in-memory kernels of :func:`softargmax.softmax` (one read, one ``exp`` per entry;
    they write into ``out`` when it is a C-contiguous NumPy array of the working dtype)."""
    x = np.asarray(x)
    if x.size and _use_kernel(implementation, x.dtype, dtype, False, axes):
        from ._kernels import api
        from ._kernels import core as kc

        nout, k, inner = _layout_shape(x.shape, axes)
        if inner == 1 and (k >= kc.SHORT or nout == 1) and not _wants_parallel(x.size):
            return _whole_rows(name, x, axes, scale, mask, out)
        fn = api.softmax if name == "softmax" else api.log_softmax
        return fn(x, axes, scale, mask, out)
    state = _block_state(x, axes, scale, mask, None, dtype, implementation)
    return _normalise(name, x, axes, scale, mask, state, dtype, implementation)


# --------------------------------------------------------------------------- accumulator
class LogSumExpAccumulator:
    r"""A mergeable running ``logsumexp``: one (max, scaled sum) pair per output position.

    Feed it chunks of data with :meth:`update` (or merge accumulators filled elsewhere
    with :meth:`merge`), read the result with :meth:`logsumexp`, and normalise chunks with
    :meth:`softmax` / :meth:`log_softmax` once all the data has been seen.

    Parameters
    ----------
    shape : tuple of ints, default ()
        The shape of the result: one distribution per position. A chunk given to
        :meth:`update` must reduce to exactly this shape.
    temperature, beta, base : float, optional
        The scale, as in :func:`softargmax.softmax` (at most one). The accumulator sums
        ``exp(beta * x)``; with ``beta < 0`` the roles of ``+inf`` and ``-inf`` swap.
    dtype : dtype, default float64
        The dtype of the running state (float64, or ``np.longdouble``). Results are cast
        to the floating result dtype of the chunks seen.

    Notes
    -----
    Per position the state is ``(m, n0, rest)``: the largest scaled input ``m``, the
    weight ``n0`` of the entries equal to it and ``rest = sum exp(beta (x - m))`` over the
    others, so that ``logsumexp = beta m + log1p(n0 - 1 + rest)`` is exact next to a
    dominant maximum. Merging two states rescales the one with the smaller max by
    ``exp(beta (m_small - m_big))``, computed with an error-free shift; merging is
    commutative and, up to the rounding of the sums, associative, so any partition of the
    data in any order gives :func:`softargmax.logsumexp` to rounding. The edge semantics
    are those of :mod:`softargmax.core`: ``+inf`` entries share the mass, an empty
    support gives ``-inf`` (softmax zeros), an included NaN makes its distribution NaN,
    and entries excluded by ``where`` or by a zero weight ``b`` are ignored even when NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.streaming import LogSumExpAccumulator
    >>> x = np.array([1000.0, 1001.0, 999.0, 1002.0])
    >>> acc = LogSumExpAccumulator()
    >>> for chunk in np.array_split(x, 3):
    ...     _ = acc.update(chunk)
    >>> float(acc.logsumexp())
    1002.4401896985612

    Two accumulators filled apart (on two machines, say) merge into the same result:

    >>> left, right = LogSumExpAccumulator(), LogSumExpAccumulator()
    >>> _ = left.update(x[:1]); _ = right.update(x[1:])
    >>> float(left.merge(right).logsumexp())
    1002.4401896985612
    >>> left.softmax(x)
    array([0.08714432, 0.23688282, 0.0320586 , 0.64391426])

    One running value per row, rows fed in column chunks; a fully masked row is -inf:

    >>> acc = LogSumExpAccumulator((2,))
    >>> _ = acc.update([[1.0, 2.0], [3.0, 4.0]], where=np.array([[True, True], [False, False]]))
    >>> _ = acc.update([[3.0], [5.0]], where=np.array([[True], [False]]))
    >>> acc.logsumexp()
    array([3.40760596,       -inf])
    """

    def __init__(
        self,
        shape: tuple[int, ...] | int = (),
        *,
        temperature: float | None = None,
        beta: float | None = None,
        base: float | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self._scale = resolve_scale(temperature, beta, base)
        self.shape = _shape_arg(shape)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            msg = f"dtype must be a NumPy floating dtype, got {dtype!r}"
            raise TypeError(msg) from None
        if self.dtype.kind != "f" or self.dtype.itemsize < 8:
            msg = f"dtype must be float64 or a wider floating dtype, got {self.dtype}"
            raise TypeError(msg)
        self._state = _empty_state(self.shape, self.dtype)
        self._result_dtype: Any = None
        self._weighted = False

    @classmethod
    def _from_state(cls, state: _State, scale: Scale, weighted: bool, result_dtype: Any) -> LogSumExpAccumulator:
        acc = cls.__new__(cls)
        acc._scale = scale
        acc.shape = tuple(state.m.shape)
        acc.dtype = state.m.dtype
        acc._state = state
        acc._result_dtype = result_dtype
        acc._weighted = weighted
        return acc

    def __repr__(self) -> str:
        return f"LogSumExpAccumulator(shape={self.shape}, scale={self._scale}, dtype={self.dtype})"

    @property
    def max(self) -> np.ndarray:
        """The largest included input per position (``beta * max`` is its scaled value;
        for ``beta < 0`` this is ``-min x``); ``-inf`` where nothing was seen."""
        return self._state.m.copy()

    @property
    def sum(self) -> np.ndarray:
        """``sum exp(beta * (x - max))`` per position (times ``b`` if weights were given)."""
        return self._state.n0 + self._state.rest

    def copy(self) -> LogSumExpAccumulator:
        """An independent copy."""
        return self._from_state(
            _State(*(a.copy() for a in self._state)), self._scale, self._weighted, self._result_dtype
        )

    def update(
        self,
        chunk: Array,
        axis: int | tuple[int, ...] | None = -1,
        *,
        b: Array | None = None,
        where: Array | None = None,
    ) -> LogSumExpAccumulator:
        """Add the entries of ``chunk`` along ``axis`` to the running sums (in place).

        Parameters
        ----------
        chunk : array_like
            More data; reducing it over ``axis`` must give the accumulator's ``shape``.
        axis : int, tuple of ints or None, default -1
            The axes of ``chunk`` that run along the distributions.
        b : array_like, optional
            Weights broadcastable to ``chunk`` (as in :func:`softargmax.logsumexp`); a zero
            weight excludes the entry. Once given, the sum may be negative and
            :meth:`logsumexp` reports its sign with ``return_sign=True``.
        where : array_like of bool, optional
            Entries to include, broadcastable to ``chunk``.

        Returns
        -------
        LogSumExpAccumulator
            ``self``, updated.
        """
        x = _as_numpy(chunk, "chunk")
        work, dtype, _ = float_input(np, x, "chunk")
        axes = normalize_axis(axis, work.ndim)
        reduced = tuple(n for i, n in enumerate(work.shape) if i not in axes)
        if reduced != self.shape:
            msg = (
                f"chunk of shape {tuple(work.shape)} reduces over axis {axis!r} to shape "
                f"{reduced}, but the accumulator's shape is {self.shape}"
            )
            raise ValueError(msg)
        mask = check_where(np, where, tuple(work.shape))
        if b is not None:
            bb, b_dtype, _ = float_input(np, _as_numpy(b, "b"), "b")
            dtype = result_float_dtype(np, dtype, b_dtype)
            try:
                bb = np.broadcast_to(bb, work.shape)
            except ValueError:
                msg = f"b of shape {tuple(bb.shape)} does not broadcast to the chunk's shape {tuple(work.shape)}"
                raise ValueError(msg) from None
            self._weighted = True
        else:
            bb = None
        block = _block_state(work, axes, self._scale, mask, bb, self.dtype)
        block = _State(*(np.reshape(f, self.shape) for f in block))
        self._state = _merge(self._state, block, self._scale)
        self._note_dtype(dtype)
        return self

    def _note_dtype(self, dtype: Any) -> None:
        self._result_dtype = (
            dtype if self._result_dtype is None else result_float_dtype(np, self._result_dtype, dtype)
        )

    def merge(self, other: LogSumExpAccumulator) -> LogSumExpAccumulator:
        """Add the data seen by ``other`` (in place); ``other`` is left unchanged.

        Parameters
        ----------
        other : LogSumExpAccumulator
            An accumulator of the same shape and scale.

        Returns
        -------
        LogSumExpAccumulator
            ``self``, now the accumulation of both.
        """
        if not isinstance(other, LogSumExpAccumulator):
            msg = f"other must be a LogSumExpAccumulator, got {type(other).__name__}"
            raise TypeError(msg)
        if other.shape != self.shape:
            msg = f"other must have the shape {self.shape}, got {other.shape}"
            raise ValueError(msg)
        if other._scale.signed_beta != self._scale.signed_beta:
            msg = f"other must have the same scale, {self._scale}, got {other._scale}"
            raise ValueError(msg)
        dtype = np.result_type(self.dtype, other.dtype)
        merged = _merge(
            _State(*(f.astype(dtype) if f.dtype.kind == "f" else f for f in self._state)),
            other._state,
            self._scale,
        )
        self._state = merged
        self.dtype = dtype
        self._weighted = self._weighted or other._weighted
        if other._result_dtype is not None:
            self._note_dtype(other._result_dtype)
        return self

    @overload
    def logsumexp(self, *, return_sign: Literal[False] = ...) -> Array: ...
    @overload
    def logsumexp(self, *, return_sign: Literal[True]) -> tuple[Array, Array]: ...
    def logsumexp(self, *, return_sign: bool = False) -> Array | tuple[Array, Array]:
        """``log sum b exp(beta x)`` of everything seen, per position.

        Parameters
        ----------
        return_sign : bool, default False
            Also return the sign of the sum (only meaningful with negative weights ``b``).

        Returns
        -------
        lse : ndarray or scalar
            As :func:`softargmax.logsumexp` would give on all the data at once: ``-inf``
            where nothing was included, ``+inf`` with an included ``+inf``, NaN with an
            included NaN (or a negative sum without ``return_sign``).
        sign : ndarray or scalar
            Only with ``return_sign=True``.
        """
        lse, sign = _state_logsumexp(self._state, self._scale, self._weighted)
        if not return_sign:
            lse = np.where(sign < 0, np.nan, lse)
        dtype = self._result_dtype if self._result_dtype is not None else self.dtype
        lse = _scalar(lse.astype(dtype))
        return (lse, _scalar(sign.astype(dtype))) if return_sign else lse

    def softmax(
        self,
        chunk: Array,
        axis: int | tuple[int, ...] | None = -1,
        *,
        where: Array | None = None,
        out: Array | None = None,
    ) -> Array:
        """Normalise a chunk of the data with the accumulated sums: pass two.

        Parameters
        ----------
        chunk : array_like
            Part of the data already fed to :meth:`update`, laid out the same way.
        axis : int, tuple of ints or None, default -1
            As in :meth:`update`.
        where : array_like of bool, optional
            The mask of this chunk, as given to :meth:`update`.
        out : ndarray, optional
            Preallocated result of the chunk's shape and result dtype.

        Returns
        -------
        ndarray
            ``exp(beta x) / sum``: the chunk's share of the full softmax.
        """
        return self._normalise("softmax", chunk, axis, where, out)

    def log_softmax(
        self,
        chunk: Array,
        axis: int | tuple[int, ...] | None = -1,
        *,
        where: Array | None = None,
        out: Array | None = None,
    ) -> Array:
        """As :meth:`softmax`, for ``log_softmax``: ``beta x - logsumexp``."""
        return self._normalise("log_softmax", chunk, axis, where, out)

    def _normalise(self, name: str, chunk: Array, axis: Any, where: Any, out: Any) -> Array:
        if self._weighted:
            msg = f"{name} needs an accumulator filled without weights b"
            raise ValueError(msg)
        x = _as_numpy(chunk, "chunk")
        work, dtype, _ = float_input(np, x, "chunk")
        axes = normalize_axis(axis, work.ndim)
        reduced = tuple(n for i, n in enumerate(work.shape) if i not in axes)
        if reduced != self.shape:
            msg = (
                f"chunk of shape {tuple(work.shape)} reduces over axis {axis!r} to shape "
                f"{reduced}, but the accumulator's shape is {self.shape}"
            )
            raise ValueError(msg)
        mask = check_where(np, where, tuple(work.shape))
        check_out(np, out, tuple(work.shape), dtype)
        keep = tuple(1 if i in axes else n for i, n in enumerate(work.shape))
        state = _State(*(np.reshape(f, keep) for f in self._state))
        res = _normalise(name, work, axes, self._scale, mask, state, self.dtype).astype(dtype)
        if out is None:
            return _scalar(res)
        out[...] = res
        return out


def _scalar(a: np.ndarray) -> Any:
    return a[()] if a.ndim == 0 else a


def _shape_arg(shape: Any) -> tuple[int, ...]:
    items = shape if isinstance(shape, tuple | list) else (shape,)
    try:
        out = tuple(int(n) for n in items if isinstance(n, numbers.Integral) and not isinstance(n, bool))
    except TypeError:
        out = ()
    if len(out) != len(items) or any(n < 0 for n in out):
        msg = f"shape must be a tuple of non-negative ints, got {shape!r}"
        raise TypeError(msg)
    return out


def _as_numpy(a: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as err:
        msg = f"{name} must be array-like, could not convert {type(a).__name__}: {err}"
        raise TypeError(msg) from None


# --------------------------------------------------------------------------- sources
def _check_source(source: Any, name: str = "source") -> tuple[tuple[int, ...], np.dtype]:
    """``source`` must be sliceable with ``shape`` and a NumPy-compatible ``dtype``."""
    if not (hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__")):
        msg = (
            f"{name} must be a sliceable array with shape and dtype (a NumPy array or memmap, "
            f"a Zarr array, an HDF5 dataset), got {type(source).__name__}; "
            f"wrap lists with numpy.asarray"
        )
        raise TypeError(msg)
    try:
        shape = tuple(int(n) for n in source.shape)
        dtype = np.dtype(source.dtype)
    except TypeError as err:
        msg = f"{name} must have an integer shape and a NumPy dtype, got {source.shape!r} and {source.dtype!r}: {err}"
        raise TypeError(msg) from None
    return shape, dtype


class _Sliced:
    """An optional companion of the source (``where`` or ``b``): sliceable like it."""

    def __init__(self, a: Any, shape: tuple[int, ...], name: str, kind: str) -> None:
        self.name = name
        if a is None:
            self.a = None
            self.dtype = None
            return
        if not isinstance(a, np.ndarray) and hasattr(a, "__getitem__") and hasattr(a, "shape") \
                and hasattr(a, "dtype") and tuple(a.shape) == shape:
            self.a = a  # Zarr / HDF5 of the source's shape: read block by block
            self.dtype = np.dtype(a.dtype)
        else:
            arr = _as_numpy(a, name)
            self.dtype = arr.dtype
            try:
                self.a = np.broadcast_to(arr, shape)
            except ValueError:
                msg = f"{name} of shape {arr.shape} does not broadcast to the source's shape {shape}"
                raise ValueError(msg) from None
        if kind == "bool" and self.dtype != np.bool_:
            msg = f"{name} must be a boolean array, got dtype {self.dtype}"
            raise TypeError(msg)
        if kind == "float":
            float_input(np, np.empty(0, self.dtype), name)

    def __getitem__(self, idx: tuple[slice, ...]) -> Any:
        if self.a is None:
            return None
        view = self.a[idx]
        block = np.array(view) if isinstance(view, np.memmap) else np.asarray(view)
        _release(view)
        return block


def _release(arr: Any) -> None:
    """Drop the pages of a NumPy memmap (view) ``arr`` from this process's resident set.

    The pages stay in the page cache (written pages included: the mapping is shared), so
    nothing is lost; only the process's resident memory stops growing with the file.
    Private (copy-on-write, mode ``"c"``) mappings are left alone.
    """
    mm = getattr(arr, "_mmap", None)
    if not isinstance(mm, mmap.mmap) or getattr(arr, "mode", "c") == "c" or not hasattr(mm, "madvise"):
        return
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None or arr.size == 0:
        return
    ptr = arr.__array_interface__["data"][0]
    lo = ptr + sum(min(0, (n - 1) * s) for n, s in zip(arr.shape, arr.strides, strict=True))
    hi = ptr + sum(max(0, (n - 1) * s) for n, s in zip(arr.shape, arr.strides, strict=True)) + arr.itemsize
    try:
        base = np.frombuffer(mm, dtype=np.uint8).__array_interface__["data"][0]
    except (TypeError, ValueError):
        return
    page = mmap.PAGESIZE
    start = max(0, (lo - base) // page * page)
    stop = min(len(mm), -(-(hi - base) // page) * page)
    if stop > start:
        mm.madvise(advice, start, stop - start)


def _block_shape(shape: tuple[int, ...], chunk_size: Any) -> tuple[int, ...]:
    """The block shape: given per axis, or filled in C order from the last axis up to
    ``chunk_size`` elements (blocks contiguous in a C-ordered file)."""
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK_SIZE
    if isinstance(chunk_size, tuple | list):
        ok = len(chunk_size) == len(shape) and all(
            isinstance(c, numbers.Integral) and not isinstance(c, bool) and int(c) >= 1 for c in chunk_size
        )
        if not ok:
            msg = f"chunk_size as a tuple must give one int >= 1 per axis of the source (ndim {len(shape)}), got {chunk_size!r}"
            raise ValueError(msg)
        return tuple(min(int(c), max(n, 1)) for c, n in zip(chunk_size, shape, strict=True))
    if not isinstance(chunk_size, numbers.Integral) or isinstance(chunk_size, bool):
        msg = f"chunk_size must be an int (elements per chunk) or a tuple of ints, got {chunk_size!r}"
        raise TypeError(msg)
    if chunk_size < 1:
        msg = f"chunk_size must be >= 1, got {chunk_size}"
        raise ValueError(msg)
    budget = int(chunk_size)
    block = [1] * len(shape)
    for i in reversed(range(len(shape))):
        n = max(shape[i], 1)
        if budget >= n:
            block[i] = n
            budget //= n
        else:
            block[i] = max(budget, 1)
            break
    return tuple(block)


def _ranges(n: int, step: int) -> list[slice]:
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _grid(shape: tuple[int, ...], block: tuple[int, ...], axes: tuple[int, ...]) -> tuple[list[Any], list[Any]]:
    """Bands (index tuples over the batch axes) and blocks (over the reduction axes)."""
    per_axis = [_ranges(n, c) for n, c in zip(shape, block, strict=True)]
    batch = [i for i in range(len(shape)) if i not in axes]
    bands = list(itertools.product(*(per_axis[i] for i in batch)))
    blocks = list(itertools.product(*(per_axis[i] for i in axes)))
    return bands, blocks


def _index(ndim: int, axes: tuple[int, ...], band: tuple[slice, ...], block: tuple[slice, ...]) -> tuple[slice, ...]:
    it_band, it_block = iter(band), iter(block)
    return tuple(next(it_block) if i in axes else next(it_band) for i in range(ndim))


class _Progress:
    """A tqdm bar when asked for, imported only then."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="chunk")

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def _reading(source: Any, idx: tuple[slice, ...], work_dtype: Any) -> Iterator[np.ndarray]:
    """The block ``source[idx]`` in the working dtype: no copy where the source is a NumPy
    array of that dtype (the kernels read a memmap's pages in place), which are then
    handed back to the operating system."""
    view = source[idx]
    try:
        yield np.asarray(view, dtype=work_dtype)
    finally:
        _release(view)


class _Writer:
    """Writes result blocks into ``out``; hands the kernels ``out``'s own block to write
    into where they can (a C-contiguous NumPy block of the working dtype), and a memmap's
    pages back to the operating system once written."""

    def __init__(self, out: Any, source: Any, dtype: Any, work_dtype: Any) -> None:
        self.out = out
        self.dtype = dtype
        self.numpy = isinstance(out, np.ndarray)
        # The one-pass kernels may read a distribution again after writing part of it:
        # never write in place over the source (same memory, or the same file mapped twice).
        same_file = getattr(out, "filename", None) is not None and getattr(out, "filename", None) == getattr(
            source, "filename", None
        )
        aliased = same_file or (isinstance(source, np.ndarray) and np.may_share_memory(source, out))
        self.direct = self.numpy and out.dtype == work_dtype and not aliased

    def target(self, idx: tuple[slice, ...]) -> Any:
        """The block of ``out`` to pass to a kernel as its ``out``, or None."""
        if self.direct:
            view = self.out[idx]
            if view.flags.c_contiguous:
                return view
        return None

    def store(self, idx: tuple[slice, ...], res: np.ndarray, target: Any) -> None:
        """Finish the block: copy ``res`` into ``out`` unless the kernel wrote it there."""
        if target is None or res is not target:
            self.out[idx] = res.astype(self.dtype, copy=False)
        if self.numpy:
            _release(self.out[idx] if target is None else target)


def _slice_len(s: slice, n: int) -> int:
    return len(range(*s.indices(n)))


def _band_shape(shape: tuple[int, ...], axes: tuple[int, ...], band: tuple[slice, ...]) -> tuple[int, ...]:
    """The keepdims shape of a band's state."""
    it = iter(band)
    return tuple(1 if i in axes else _slice_len(next(it), n) for i, n in enumerate(shape))


def _source_dtypes(source: Any) -> tuple[tuple[int, ...], Any, Any]:
    """``(shape, result dtype, working dtype)`` of a sliceable source."""
    shape, src_dtype = _check_source(source)
    _, dtype, work_dtype = float_input(np, np.empty(0, src_dtype), "source")
    return shape, dtype, work_dtype


def _workers(*arrays: Any) -> int:
    """Chunks processed at once: numba's thread count where the source (and ``out``) are
    NumPy arrays (memmaps included: disjoint blocks may be read and written from several
    threads; a Zarr or HDF5 array is read and written from this thread only)."""
    if not all(isinstance(a, np.ndarray) for a in arrays):
        return 1
    import numba

    return int(numba.get_num_threads())


def _on_threads(fn: Any, items: list[Any], workers: int, bar: _Progress) -> list[Any]:
    """``[fn(item) for item in items]``, on ``workers`` threads of the project's pool
    (:func:`softargmax._threads.run_tasks`: each thread takes the next chunk when done
    with its own, results in order). The numba kernels run serially in a worker thread
    (the parallelism is across chunks) and release the GIL."""
    from ._threads import run_tasks

    caller = threading.get_ident()

    def task(item: Any, _: dict[str, Any]) -> Any:
        if threading.get_ident() != caller:
            import numba

            numba.set_num_threads(1)  # the worker thread's own setting (not the caller's)
        res = fn(item)
        bar.step()
        return res

    return run_tasks(items, task, workers)


class _Chunks:
    """The per-chunk steps of the chunked softmax, one chunk per call (safe to run on
    several threads at once: each reads and writes its own block)."""

    def __init__(
        self, name: str, source: Any, out: Any, shape: tuple[int, ...], axes: tuple[int, ...], scale: Scale,
        mask: _Sliced, work_dtype: Any, state_dtype: Any, implementation: str, writer: _Writer,
    ) -> None:
        self.name, self.source, self.out, self.shape, self.axes = name, source, out, shape, axes
        self.scale, self.mask, self.work_dtype, self.state_dtype = scale, mask, work_dtype, state_dtype
        self.implementation, self.writer = implementation, writer

    def index(self, band: tuple[slice, ...], block: tuple[slice, ...]) -> tuple[slice, ...]:
        return _index(len(self.shape), self.axes, band, block)

    def whole(self, idx: tuple[slice, ...]) -> None:
        """One pass: a chunk of whole distributions, normalised and written."""
        target = self.writer.target(idx)
        with _reading(self.source, idx, self.work_dtype) as x:
            res = _softmax_block(self.name, x, self.axes, self.scale, self.mask[idx], self.state_dtype,
                                 self.implementation, target)
            self.writer.store(idx, res, target)

    def state(self, idx: tuple[slice, ...]) -> _State:
        """Pass one: the chunk's state."""
        with _reading(self.source, idx, self.work_dtype) as x:
            return _block_state(x, self.axes, self.scale, self.mask[idx], None, self.state_dtype,
                                self.implementation, False)

    def write(self, idx: tuple[slice, ...], state: _State) -> None:
        """Pass two: the chunk normalised by the final ``state`` and written."""
        target = self.writer.target(idx)
        with _reading(self.source, idx, self.work_dtype) as x:
            res = _normalise(self.name, x, self.axes, self.scale, self.mask[idx], state, self.state_dtype,
                             self.implementation, target)
            self.writer.store(idx, res, target)


def _chunked_distribution(
    name: str,
    source: Any,
    axis: Any,
    scale: Scale,
    where: Any,
    out: Any,
    chunk_size: Any,
    progress: bool,
    implementation: str,
) -> Any:
    implementation = check_implementation(implementation)
    shape, dtype, work_dtype = _source_dtypes(source)
    axes = normalize_axis(axis, len(shape))
    mask = _Sliced(where, shape, "where", "bool")
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        check_out(np, out, shape, dtype)
    bands, blocks = _grid(shape, _block_shape(shape, chunk_size), axes)
    state_dtype = _state_dtype(work_dtype)
    steps = _Chunks(name, source, out, shape, axes, scale, mask, work_dtype, state_dtype, implementation,
                    _Writer(out, source, dtype, work_dtype))
    one_pass = len(blocks) == 1  # whole distributions fit in one chunk
    bar = _Progress(progress, len(bands) * (1 if one_pass else 2 * len(blocks)), name)
    workers = _workers(source, out)
    try:
        if one_pass:
            _on_threads(steps.whole, [steps.index(band, blocks[0]) for band in bands], workers, bar)
            return out
        for band in bands:
            idx = [steps.index(band, blk) for blk in blocks]
            state = _empty_state(_band_shape(shape, axes, band), state_dtype)
            for part in _on_threads(steps.state, idx, workers, bar):  # pass one, merged in order
                state = _merge(state, part, scale)
            _on_threads(functools.partial(steps.write, state=state), idx, workers, bar)  # pass two
    finally:
        bar.close()
    return out


_CHUNKED_PARAMS = """
    Parameters
    ----------
    source : sliceable array
        Anything with ``shape``, ``dtype`` and NumPy-style slicing that returns arrays: a
        NumPy array or ``numpy.memmap``, a Zarr array, an HDF5 dataset. Only one chunk is
        held in memory at a time.
    axis : int, tuple of ints or None, default -1
        The axes that form one distribution, as in :func:`softargmax.softmax`.
    out : array, optional
        Where to write the result: an array of the source's shape and the result dtype
        (float64 for integer sources, else the source's dtype), e.g. a writeable memmap
        or Zarr array. Without it the result is a new in-memory NumPy array.
    chunk_size : int or tuple of ints, optional
        An int is the number of elements read at a time (default 2**20): chunks are
        filled in C order from the last axis, contiguous in a C-ordered file. A tuple
        gives the chunk shape, one length per axis. When whole distributions fit in a
        chunk, one pass suffices; otherwise a first pass accumulates and a second writes.
    temperature, beta, base : float, optional
        The scale, as in :func:`softargmax.softmax`.
    where : array_like of bool or sliceable, optional
        Entries to include: broadcastable to the source, or a sliceable boolean array of
        its shape (read chunk by chunk).
    progress : bool, default False
        Show a ``tqdm`` progress bar over the chunks.
    implementation : {"auto", "reference", "numba"}
        Force the NumPy or the numba path for the chunks (for tests and benchmarks).
"""


def softmax_chunked(
    source: Any,
    axis: int | tuple[int, ...] | None = -1,
    *,
    out: Any = None,
    chunk_size: int | tuple[int, ...] | None = None,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Any = None,
    progress: bool = False,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Any:
    r"""Softmax of an array that need not fit in memory, chunk by chunk.

    {params}
    Returns
    -------
    array
        ``out`` (or a new NumPy array) holding :func:`softargmax.softmax` of the source.

    Notes
    -----
    Pass one feeds each chunk to a (max, scaled sum) accumulator per distribution, pass
    two writes ``exp(beta (x - max)) / sum`` chunk by chunk; the result equals the
    in-memory :func:`softargmax.softmax` to rounding, with the same edge semantics. Peak
    memory is a few times the chunk (in float64) plus one state per distribution in the
    chunk's band. The pages of a NumPy memmap (``source`` and ``out``) are released from
    the process once read or written, so its resident memory stays bounded.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.streaming import softmax_chunked
    >>> x = np.array([[1000.0, 1001.0, 1002.0, np.inf], [1.0, 2.0, 3.0, 4.0]])
    >>> softmax_chunked(x, chunk_size=(1, 3))
    array([[0.        , 0.        , 0.        , 1.        ],
           [0.0320586 , 0.08714432, 0.23688282, 0.64391426]])

    On disk, with a memmap (``out`` may be another one):

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "logits.npy")
    >>> np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    >>> src = np.load(path, mmap_mode="r")
    >>> softmax_chunked(src, axis=0, chunk_size=4)[:, 0]
    array([3.2932044e-04, 1.7980287e-02, 9.8169041e-01], dtype=float32)
    """
    scale = resolve_scale(temperature, beta, base)
    return _chunked_distribution(
        "softmax", source, axis, scale, where, out, chunk_size, progress, implementation
    )


def log_softmax_chunked(
    source: Any,
    axis: int | tuple[int, ...] | None = -1,
    *,
    out: Any = None,
    chunk_size: int | tuple[int, ...] | None = None,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Any = None,
    progress: bool = False,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Any:
    r"""Log-softmax of an array that need not fit in memory, chunk by chunk.

    {params}
    Returns
    -------
    array
        ``out`` (or a new NumPy array) holding :func:`softargmax.log_softmax` of the
        source: ``-inf`` for excluded entries and empty supports.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.streaming import log_softmax_chunked
    >>> log_softmax_chunked(np.array([0.0, -50.0, -60.0]), chunk_size=2)
    array([-1.92883741e-22, -5.00000000e+01, -6.00000000e+01])
    """
    scale = resolve_scale(temperature, beta, base)
    return _chunked_distribution(
        "log_softmax", source, axis, scale, where, out, chunk_size, progress, implementation
    )


@overload
def logsumexp_chunked(
    source: Any,
    axis: int | tuple[int, ...] | None = ...,
    *,
    b: Any = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    out: Any = ...,
    chunk_size: int | tuple[int, ...] | None = ...,
    temperature: float | None = ...,
    beta: float | None = ...,
    base: float | None = ...,
    where: Any = ...,
    progress: bool = ...,
    implementation: Literal["auto", "reference", "numba"] = ...,
) -> Any: ...
@overload
def logsumexp_chunked(
    source: Any,
    axis: int | tuple[int, ...] | None = ...,
    *,
    b: Any = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    out: Any = ...,
    chunk_size: int | tuple[int, ...] | None = ...,
    temperature: float | None = ...,
    beta: float | None = ...,
    base: float | None = ...,
    where: Any = ...,
    progress: bool = ...,
    implementation: Literal["auto", "reference", "numba"] = ...,
) -> tuple[Any, Any]: ...
def logsumexp_chunked(
    source: Any,
    axis: int | tuple[int, ...] | None = None,
    *,
    b: Any = None,
    keepdims: bool = False,
    return_sign: bool = False,
    out: Any = None,
    chunk_size: int | tuple[int, ...] | None = None,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Any = None,
    progress: bool = False,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Any:
    r"""``logsumexp`` of an array that need not fit in memory, in one pass over its chunks.

    Parameters
    ----------
    source, chunk_size, temperature, beta, base, where, progress, implementation
        As in :func:`softmax_chunked`.
    axis : int, tuple of ints or None, default None
        Axes to reduce (all of them by default, as in :func:`softargmax.logsumexp`).
    b : array_like or sliceable, optional
        Weights broadcastable to the source (or a sliceable array of its shape); a zero
        weight excludes the entry.
    keepdims, return_sign
        As in :func:`softargmax.logsumexp`.
    out : array, optional
        Preallocated result (the reduced shape and result dtype).

    Returns
    -------
    lse : ndarray or scalar
        :func:`softargmax.logsumexp` of the source, to rounding.
    sign : ndarray or scalar
        Only with ``return_sign=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.streaming import logsumexp_chunked
    >>> x = np.full((3, 1000), 1000.0)
    >>> logsumexp_chunked(x, axis=1, chunk_size=64)
    array([1006.90775528, 1006.90775528, 1006.90775528])
    >>> float(logsumexp_chunked(x, chunk_size=(2, 300)))
    1008.0063675676503
    """
    scale = resolve_scale(temperature, beta, base)
    impl = check_implementation(implementation)
    shape, dtype, work_dtype = _source_dtypes(source)
    axes = normalize_axis(axis, len(shape))
    mask = _Sliced(where, shape, "where", "bool")
    weights = _Sliced(b, shape, "b", "float")
    state_dtype = _state_dtype(work_dtype)
    if weights.dtype is not None:
        _, b_dtype, b_work = float_input(np, np.empty(0, weights.dtype), "b")
        dtype = result_float_dtype(np, dtype, b_dtype)
        state_dtype = np.result_type(state_dtype, b_work)
    keep = tuple(1 if i in axes else n for i, n in enumerate(shape))
    result_shape = keep if keepdims else tuple(n for i, n in enumerate(shape) if i not in axes)
    check_out(np, out, result_shape, dtype)
    lse = np.empty(keep, dtype=state_dtype)
    sign = np.empty(keep, dtype=state_dtype)
    bands, blocks = _grid(shape, _block_shape(shape, chunk_size), axes)
    ndim = len(shape)
    bar = _Progress(progress, len(bands) * len(blocks), "logsumexp")

    def part(idx: tuple[slice, ...]) -> _State:
        with _reading(source, idx, work_dtype) as x:
            return _block_state(x, axes, scale, mask[idx], weights[idx], state_dtype, impl)

    try:
        # every chunk's state, on threads; merged in order, band by band
        parts = iter(_on_threads(part, [_index(ndim, axes, band, blk) for band in bands for blk in blocks],
                                 _workers(source), bar))
        for band in bands:
            state = _empty_state(_band_shape(shape, axes, band), state_dtype)
            for _ in blocks:
                state = _merge(state, next(parts), scale)
            target = _index(ndim, axes, band, tuple(slice(0, 1) for _ in axes))
            lse[target], sign[target] = _state_logsumexp(state, scale, weights.a is not None)
    finally:
        bar.close()
    if not return_sign:
        lse = np.where(sign < 0, np.nan, lse)
    lse = np.reshape(lse, result_shape).astype(dtype)
    if out is not None:
        out[...] = lse
        lse = out
    else:
        lse = _scalar(lse)
    if return_sign:
        return lse, _scalar(np.reshape(sign, result_shape).astype(dtype))
    return lse


softmax_chunked.__doc__ = (softmax_chunked.__doc__ or "").replace("{params}", (_CHUNKED_PARAMS.strip() + "\n"))
log_softmax_chunked.__doc__ = (log_softmax_chunked.__doc__ or "").replace(
    "{params}", (_CHUNKED_PARAMS.strip() + "\n")
)
