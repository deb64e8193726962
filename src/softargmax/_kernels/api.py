"""The NumPy kernel path: lays the data out for the numba kernels of :mod:`.core`.

These functions follow the kernel contract of ``softargmax._backend`` (``_KERNELS``):
``softmax(x, axes, scale, mask, out)``, ``log_softmax(...)`` and
``logsumexp(x, axes, scale, mask, b) -> (lse, sign)`` with keepdims shapes. ``x`` is a
validated float32 or float64 array (float16/bfloat16 arrive as float32).

Layout: the reduced axes, if they are adjacent, make ``x`` an ``(outer, K, inner)``
array without a copy (a non-contiguous input is made contiguous once); other axis
tuples are moved to the end with one transpose copy. ``inner == 1`` is the row layout,
otherwise the column layout (no transpose). Inputs below :data:`PARALLEL_MIN` elements
run on the calling thread; small C-contiguous inputs along the last axis without a mask
skip the layout (one serial kernel call: the per-call cost of a short vector is Python).
float32 input with ``|beta| < 1e-30`` is computed in float64. Cases the kernels do not cover go to the reference:
``logsumexp`` with weights ``b``, ``axis=()`` and empty arrays.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numba
import numpy as np

from .. import _reference
from .._validation import Scale
from . import core as _k

__all__ = ["PARALLEL_MIN", "last_level_cache_bytes", "log_softmax", "logsumexp", "parallel_slot", "softmax"]

#: Inputs with fewer elements run serially (no parallel launch): measured break-even of
#: the 2-thread launch (``benchmarks/compare.py``; about 10 us against 0.3 ns/element).
PARALLEL_MIN = 32768

# Held while the parallel kernels run under the workqueue layer (see parallel_slot).
_PARALLEL_LOCK = threading.Lock()

#: Rows longer than ``CHUNK`` are split into chunks (pass one, a merge, pass two) only when
#: there are fewer than 4 rows per thread or a row of the input exceeds this many bytes:
#: a thread's whole row and its output then stay in the last-level cache between the
#: passes, and the input is read once from memory (64 x 1e6 on 2 threads: float32
#: log_softmax ``out=`` 44 -> 33 ms, float64 fresh softmax 119 -> 92 ms).
WHOLE_ROW_BYTES = 8 << 20

#: logsumexp's last step (a scalar log per distribution) runs in parallel from this many.
_FINISH_PARALLEL_MIN = 16384

#: float32 input with a smaller |beta| is computed in float64 (see ``_Layout``).
_BETA_MIN_F32 = 1e-30


_SIGNS = {(t, v): t(v) for t in (np.float32, np.float64) for v in (1, -1)}  # saves a scalar per call


def _scale_args(scale: Scale, dtype: np.dtype) -> tuple[Any, float, float]:
    """``(sign, beta_hi, beta_lo)``: ``|beta| = beta_hi + beta_lo`` to twice the precision."""
    sign = _SIGNS[dtype.type, scale.sign]
    if scale.temperature is None and scale.beta is None:
        return sign, 1.0, 0.0
    if scale.temperature is not None:
        t = Fraction(scale.temperature)
        hi = float(1 / t)
        return sign, hi, float(1 / t - Fraction(hi))
    if scale.beta is not None:
        return sign, float(scale.beta), 0.0
    return sign, 1.0, 0.0


class _Layout:
    """``x`` (and the mask) as a C-contiguous ``(outer, K, inner)`` array, and the way back."""

    def __init__(self, x: np.ndarray, axes: tuple[int, ...], mask: Any, scale: Scale) -> None:
        sign = scale.sign
        if mask is not None:
            # an excluded entry is -inf after the sign is applied (an excluded NaN too);
            # one pass over x here keeps the masks out of the vectorised kernels
            x = np.where(mask, x, x.dtype.type(-np.inf * sign))
        nd = x.ndim
        self.shape = x.shape
        a0, a1 = axes[0], axes[-1]
        if axes == tuple(range(a0, a1 + 1)):
            self.perm = None
            outer = math.prod(x.shape[:a0])
            inner = math.prod(x.shape[a1 + 1:])
            xc = np.ascontiguousarray(x)
            self.keep_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        else:
            rest = [i for i in range(nd) if i not in axes]
            self.perm = (*rest, *axes)
            xc = np.ascontiguousarray(np.transpose(x, self.perm))
            outer = math.prod(x.shape[i] for i in rest)
            inner = 1
            self.keep_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        k = math.prod(x.shape[i] for i in axes)
        self.work_shape = xc.shape
        self.x = xc.reshape(outer, k, inner)
        if xc.dtype == np.float32 and scale.factor < _BETA_MIN_F32:
            # the float32 kernels split beta into float32 hi + lo: a tiny beta would lose
            # its precision there (float64 arithmetic is what the float32 kernels emulate)
            self.x = self.x.astype(np.float64)
            self.work_shape = xc.shape

    def result(self, out: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(res, res3)``: the array to return and its ``(outer, K, inner)`` view to fill."""
        dtype = self.x.dtype
        if (
            self.perm is None
            and isinstance(out, np.ndarray)
            and out.dtype == dtype
            and out.flags.c_contiguous
            and out.flags.writeable
        ):
            res = out
        else:
            res = np.empty(self.work_shape, dtype=dtype)
        return res, res.reshape(self.x.shape)

    def back(self, res: np.ndarray, out: Any) -> np.ndarray:
        if self.perm is None:
            return res
        inv = np.argsort(self.perm)
        res = np.transpose(res, inv)
        if isinstance(out, np.ndarray) and out.dtype == res.dtype:
            np.copyto(out, res)
            return out
        return np.ascontiguousarray(res)


@contextlib.contextmanager
def parallel_slot(parallel: bool) -> Iterator[bool]:
    """Whether the caller may launch the parallel kernels now (``with ... as parallel``).

    The workqueue threading layer must not be entered from two threads at once: there a
    call that finds the parallel kernels busy runs serially instead of waiting.
    """
    lock = parallel and numba.threading_layer() == "workqueue"
    if lock and not _PARALLEL_LOCK.acquire(blocking=False):
        parallel = lock = False
    try:
        yield parallel
    finally:
        if lock:
            _PARALLEL_LOCK.release()


_CACHE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@functools.cache
def last_level_cache_bytes(cpu: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The size in bytes of the largest cache that Linux lists for a CPU (under ``cpu``);
    0 where it lists none (other systems)."""
    sizes = [0]
    for index in cpu.glob("index*"):
        try:
            size = (index / "size").read_text().strip().upper()
        except OSError:
            continue
        digits, unit = size.rstrip("KMG"), size[len(size.rstrip("KMG")):]
        if digits.isdigit() and unit in _CACHE_UNITS:
            sizes.append(int(digits) * _CACHE_UNITS[unit])
    return max(sizes)


def _short(x2: np.ndarray, sign: Any, bhi: float, blo: float, kind: int, out2: np.ndarray,
           rst: np.ndarray, rms: np.ndarray, parallel: bool) -> None:
    """The short-row kernel on ``(rows, K)``, ``K < SHORT``: fills ``rst`` and ``rms``."""
    nout, k = x2.shape
    rpb = max(1, _k.SHORT_BLOCK // k)
    if parallel:
        nb = -(-nout // rpb)
        _k.short_parallel(x2, sign, bhi, blo, kind, out2, rst, rms, rpb,
                          min(nb, 8 * numba.get_num_threads()))
    else:
        _k.short_serial(x2, sign, bhi, blo, kind, out2, rst, rms, rpb)


def _run(lay: _Layout, scale: Scale, kind: int, res3: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel for ``lay``; returns the per-distribution ``(stats, max)``.

    ``stats[..., 0]`` is the status, ``[..., 1]`` n0 and ``[..., 2]`` rest, with shape
    ``(outer,)`` (rows) or ``(outer, inner)`` (columns); empty for softmax and log_softmax
    on short rows, whose kernel keeps none.
    """
    x3 = lay.x
    nout, k, ninner = x3.shape
    dtype = x3.dtype
    sign, bhi, blo = _scale_args(scale, dtype)
    size = x3.size
    nthreads = numba.get_num_threads() if size >= PARALLEL_MIN else 1  # the call costs 1 us
    with parallel_slot(nthreads > 1) as parallel:
        if ninner == 1:
            x2 = x3.reshape(nout, k)
            out2 = res3.reshape(nout, k) if res3 is not None else np.empty((nout, 0), dtype)
            if k < _k.SHORT and nout > 1:
                # softmax and log_softmax keep no statistics there (see _short_tasks)
                nst = nout if kind == _k.LOGSUMEXP else 0
                rst, rms = np.empty((nst, 3)), np.empty(nst, dtype)
                _short(x2, sign, bhi, blo, kind, out2, rst, rms, parallel)
                return rst, rms
            rst = np.empty((nout, 3))
            rms = np.empty(nout, dtype)
            split = k > _k.CHUNK and (nout < 4 * nthreads or k * x2.itemsize > WHOLE_ROW_BYTES)
            nc = -(-k // _k.CHUNK) if split else 1
            if nc == 1:
                st, ms = rst, rms
            else:
                st, ms = np.empty((nout * nc, 3)), np.empty(nout * nc, dtype)
            if parallel:
                _k.rows_parallel(x2, sign, bhi, blo, kind, out2, st, ms, nc, rst, rms,
                                 min(nout * nc, 8 * nthreads))
            else:
                _k.rows_serial(x2, sign, bhi, blo, kind, out2, st, ms, nc, rst, rms)
            return rst, rms
        out3 = res3 if res3 is not None else np.empty((nout, 0, ninner), dtype)
        cst = np.empty((nout, ninner, 3))
        cms = np.empty((nout, ninner), dtype)
        # tiles of whole rows where they fit (a task streams contiguous memory: a tile of
        # part of a row starts a new page, and the prefetcher, on each row; 1.6x), split
        # along K into chunks when there are too few tiles to keep the threads busy
        ntile = -(-ninner // _k.COL_WIDTH)
        width = -(-ninner // ntile)  # the tiles' widths balanced, in multiples of 16
        cw = min(_k.COL_WIDTH, -(-width // 16) * 16)
        ntile = -(-ninner // cw)
        if parallel:
            nkb = -(-k // _k.COL_BLOCK)
            nq = 1
            if nout * ntile < 4 * nthreads:
                nq = max(1, min(-(-4 * nthreads // (nout * ntile)), nkb // 4))
            nt = nout * ntile * nq
            _k.cols_parallel(x3, sign, bhi, blo, kind, out3, cst, cms, cw, nq,
                             min(nt, 8 * nthreads))
        else:
            _k.cols_serial(x3, sign, bhi, blo, kind, out3, cst, cms, cw)
        return cst, cms


def _covered(x: np.ndarray, axes: tuple[int, ...]) -> bool:
    return bool(axes) and x.size > 0 and x.dtype in (np.float32, np.float64)


def _small_rows(kind: int, x: np.ndarray, scale: Scale, out: Any) -> np.ndarray:
    """Small C-contiguous input along the last axis without a mask: the serial kernels
    on a ``(rows, K)`` view, without the layout machinery (the per-call cost of a short
    vector is mostly Python)."""
    k = x.shape[-1]
    x2 = x.reshape(-1, k)
    if type(out) is np.ndarray and out.dtype == x.dtype and out.flags.c_contiguous:
        res = out  # shape and writeability were checked by the public layer
    else:
        res = np.empty(x.shape, x.dtype)
    out2 = res.reshape(x2.shape)
    sign, bhi, blo = _scale_args(scale, x.dtype)
    _k.rows_small(x2, sign, bhi, blo, kind, out2)
    return res


def _distribution(kind: int, x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, out: Any) -> np.ndarray:
    if out is not None and any(a is not None and np.may_share_memory(out, a) for a in (x, mask)):
        # the kernels read x again after writing parts of out (softmax(x, out=x)): the
        # result is made apart, and the caller copies it into out
        out = None
    if (
        mask is None
        and 0 < x.size <= _k.CHUNK
        and x.size < PARALLEL_MIN
        and axes == (x.ndim - 1,)
        and x.flags.c_contiguous
        and (x.dtype == np.float64 or (x.dtype == np.float32 and scale.factor >= _BETA_MIN_F32))
    ):
        return _small_rows(kind, x, scale, out)
    if not _covered(x, axes):
        fn = _reference.softmax if kind == _k.SOFTMAX else _reference.log_softmax
        return fn(np, x, axes, scale, mask)  # type: ignore[no-any-return]
    lay = _Layout(x, axes, mask, scale)
    res, res3 = lay.result(out)
    _run(lay, scale, kind, res3)
    res = lay.back(res, out)
    if mask is not None:
        # excluded entries are structural: 0 / -inf even in a NaN row
        np.copyto(res, 0.0 if kind == _k.SOFTMAX else -np.inf, where=~np.asarray(mask))
    return res


def softmax(x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, out: Any) -> np.ndarray:
    """Kernel path of :func:`softargmax.softmax` (and softmin: ``scale.sign == -1``)."""
    return _distribution(_k.SOFTMAX, x, axes, scale, mask, out)


def log_softmax(x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, out: Any) -> np.ndarray:
    """Kernel path of :func:`softargmax.log_softmax`."""
    return _distribution(_k.LOG_SOFTMAX, x, axes, scale, mask, out)


def logsumexp(
    x: np.ndarray, axes: tuple[int, ...], scale: Scale, mask: Any, b: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel path of :func:`softargmax.logsumexp`: ``(lse, sign)`` with keepdims shapes.

    Weights ``b`` go to the reference.
    """
    if b is not None or not _covered(x, axes):
        return _reference.logsumexp(np, x, axes, scale, mask, b)  # type: ignore[no-any-return]
    lay = _Layout(x, axes, mask, scale)
    nout, k, ninner = lay.x.shape
    beta, temperature = scale.beta or 1.0, scale.temperature or 0.0
    lse = np.empty(nout * ninner)
    sign = np.empty(nout * ninner)
    if ninner == 1 and nout > 1 and k < _k.SHORT:  # short rows: one pass, no statistics
        x2 = lay.x.reshape(nout, k)
        xsign, bhi, blo = _scale_args(scale, x2.dtype)
        rpb = max(1, _k.SHORT_BLOCK // k)
        nthreads = numba.get_num_threads() if x2.size >= PARALLEL_MIN else 1
        with parallel_slot(nthreads > 1) as parallel:
            if parallel:
                _k.short_lse_parallel(x2, xsign, bhi, blo, beta, temperature, lse, sign, rpb,
                                      min(-(-nout // rpb), 8 * nthreads))
            else:
                _k.short_lse_serial(x2, xsign, bhi, blo, beta, temperature, lse, sign, rpb)
        return lse.reshape(lay.keep_shape), sign.reshape(lay.keep_shape)
    st, ms = _run(lay, scale, _k.LOGSUMEXP, None)
    args = (st.reshape(-1, 3), ms.reshape(-1), beta, temperature, lse, sign)
    nthreads = numba.get_num_threads() if ms.size >= _FINISH_PARALLEL_MIN else 1
    with parallel_slot(nthreads > 1) as parallel:
        if parallel:
            _k.lse_finish_parallel(*args, 4 * nthreads)
        else:
            _k.lse_finish(*args)
    return lse.reshape(lay.keep_shape), sign.reshape(lay.keep_shape)
