r"""Attention: exact softmax attention computed blockwise, its backward, and linear attention.

Dimension letters, used in every shape in this module:

=====  ===========================================================================
``B``  the leading batch axes (batch, heads, ...): any number of axes. They broadcast
       between ``q``, ``k``, ``v`` and ``mask``; ``B`` in a result is their broadcast
       shape
``Lq`` number of queries
``Lk`` number of keys, which is also the number of values
``d``  feature size of queries and keys
``dv`` feature size of values, and of the output
``F``  feature size after the feature map of :func:`linear_attention` (``F = d``)
=====  ===========================================================================

So ``q`` is ``(B, Lq, d)``, ``k`` is ``(B, Lk, d)``, ``v`` is ``(B, Lk, dv)``, ``mask``
broadcasts to ``(B, Lq, Lk)``, the output is ``(B, Lq, dv)`` and the log-sum-exp
``(B, Lq)``.

Exact attention is ``softmax(scale * q k^T + mask) v`` with ``scale = 1/sqrt(d)`` by
default, computed over blocks of ``bq`` queries and ``bk`` keys with an online softmax
(a running max ``m`` and sum ``l`` per query; the accumulator is rescaled by
``exp(m_old - m_new)`` when the max grows), so that no ``(Lq, Lk)`` matrix is ever held:
the memory beyond inputs and output is ``O(bq * bk)`` per worker. The backward pass
recomputes the scores blockwise from the saved log-sum-exp (the flash-attention
backward), within the same bound.

Conventions settled here (and tested):

* A query row whose keys are all masked gives an output of zeros and a log-sum-exp of
  ``-inf`` (PyTorch's ``scaled_dot_product_attention``); ``jax.nn.dot_product_attention``
  gives the mean of ``v`` instead, since it replaces masked scores by a large negative
  finite number. Its gradients are zero.
* ``causal=True`` is the top-left alignment of PyTorch: query ``i`` sees key ``j`` iff
  ``j <= i``. ``causal="bottom_right"`` is the alignment of flash-attention (and of
  decoding with a key cache): the last query sees every key, query ``i`` sees key ``j``
  iff ``j <= i + Lk - Lq``. The two agree when ``Lq == Lk``.
* A boolean ``mask`` marks the keys that take part (``True`` = attend, as in PyTorch and
  JAX); a floating mask is added to the scaled scores (``-inf`` excludes). ``mask`` and
  ``causal`` may be combined. Entries excluded by a boolean mask or by ``causal`` are
  ignored even where ``q k^T`` is NaN; an additive mask is arithmetic (NaN + -inf is NaN).
* Non-finite ``q`` or ``k`` give NaN in the affected rows, as in PyTorch; a NaN in ``v``
  reaches every row whose block product touches it (``0 * NaN`` is NaN in BLAS).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from . import _validation
from ._backend import device_of, get_namespace, is_numpy
from ._threads import ONE_BLAS_THREAD, default_threads, run_tasks

__all__ = [
    "attention",
    "attention_vjp",
    "linear_attention",
    "linear_attention_vjp",
    "merge_attention",
]

Array = Any
Causal = bool | Literal["top_left", "bottom_right"]

_CAUSAL = ("top_left", "bottom_right")
_IMPLEMENTATIONS = ("auto", "reference", "numpy")
_FEATURE_MAPS = ("elu1", "relu")
# Default block sizes (queries, keys): a (bq, bk) float32 score block of 1 MiB, about an
# L2 cache; the fastest of the sizes tried (128..1024) at L = 4096 and 16384, d = 64.
_BQ, _BK = 512, 512
# Below this many score entries (batch * Lq * Lk) the whole batch goes through the
# batched array-API path in one thread: fewer Python steps, memory still bounded.
_SMALL = 1 << 18
_LOG2E = 1.4426950408889634  # the NumPy path works in base 2: exp2 is cheaper than exp
_LN2 = 0.6931471805599453


# =========================================================================== validation
@dataclass(frozen=True)
class _Problem:
    """Validated inputs of one attention call (arrays in the working dtype)."""

    xp: Any
    q: Any
    k: Any
    v: Any
    mask: Any  # None, or bool / work-dtype array of ndim >= 2, broadcastable to (B, Lq, Lk)
    additive: bool  # the mask is added (float) rather than selected (bool)
    offset: int | None  # query i sees key j iff j <= i + offset; None: not causal
    scale: float
    bq: int
    bk: int
    batch: tuple[int, ...]
    dtypes: tuple[Any, Any, Any]  # the dtypes of q, k, v as given (gradients keep them)
    out_dtype: Any
    work_dtype: Any

    @property
    def lq(self) -> int:
        return int(self.q.shape[-2])

    @property
    def lk(self) -> int:
        return int(self.k.shape[-2])

    @property
    def dv(self) -> int:
        return int(self.v.shape[-1])


def _float_array(xp: Any, x: Any, name: str) -> Any:
    """``x`` must be a real floating array of at least two dimensions."""
    kind = _validation._classify(xp, x.dtype)
    if kind not in ("float", "half"):
        msg = (
            f"{name} must be a floating-point array, got dtype "
            f"{_validation._dtype_name(x.dtype)}"
        )
        raise TypeError(msg)
    if x.ndim < 2:
        msg = f"{name} must have at least 2 dimensions (B, L, features), got shape {tuple(x.shape)}"
        raise ValueError(msg)
    return x


def _qkv(q: Any, k: Any, v: Any, extra: Sequence[Any] = ()) -> tuple[Any, list[Any], Any, Any]:
    """Namespace, arrays, output and working dtypes of ``q, k, v`` (and extra arrays)."""
    xp, arrays = get_namespace(q, k, v, *extra)
    for name, x in zip(("q", "k", "v"), arrays[:3], strict=True):
        _float_array(xp, x, name)
    q, k, v = arrays[:3]
    if q.shape[-1] != k.shape[-1]:
        msg = (
            f"k must have the feature size d of q (q is {tuple(q.shape)}, d={q.shape[-1]}), "
            f"got k of shape {tuple(k.shape)}"
        )
        raise ValueError(msg)
    if k.shape[-2] != v.shape[-2]:
        msg = (
            f"v must have as many rows as k (Lk={k.shape[-2]}), got v of shape "
            f"{tuple(v.shape)} for k of shape {tuple(k.shape)}"
        )
        raise ValueError(msg)
    out_dtype = _validation.result_float_dtype(xp, q.dtype, k.dtype, v.dtype)
    half = _validation._classify(xp, out_dtype) == "half"
    work_dtype = xp.float32 if half else out_dtype
    return xp, arrays, out_dtype, work_dtype


def _batch_shape(**shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        given = ", ".join(f"{n} {s}" for n, s in shapes.items())
        msg = f"the batch axes B of the arguments do not broadcast: {given}"
        raise ValueError(msg) from None


def _causal_offset(causal: Any, lq: int, lk: int) -> int | None:
    if causal is False or causal is None:
        return None
    if causal is True or causal == "top_left":
        return 0
    if causal == "bottom_right":
        return lk - lq
    msg = f"causal must be False, True, 'top_left' or 'bottom_right', got {causal!r}"
    raise ValueError(msg)


def _block_sizes(block_size: Any, default: tuple[int, int]) -> tuple[int, int]:
    if block_size is None:
        return default
    sizes = block_size if isinstance(block_size, tuple) else (block_size, block_size)
    ok = len(sizes) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in sizes
    )
    if not ok:
        msg = f"block_size must be a positive int or a pair of them, got {block_size!r}"
        raise TypeError(msg)
    if min(sizes) < 1:
        msg = f"block_size must be positive, got {block_size!r}"
        raise ValueError(msg)
    return int(sizes[0]), int(sizes[1])


def _resolve_scale(scale: Any, d: int) -> float:
    if scale is None:
        return 1.0 / math.sqrt(d) if d > 0 else 1.0
    s = _validation._real_scalar(scale, "scale")
    if not math.isfinite(s):
        msg = f"scale must be a finite number, got {s!r}"
        raise ValueError(msg)
    return s


def _check_mask(xp: Any, mask: Any, work_dtype: Any) -> tuple[Any, bool]:
    """A boolean or floating mask with at least two axes; floats cast to the working dtype."""
    kind = _validation._classify(xp, mask.dtype)
    is_bool = _validation._dtype_name(mask.dtype) == "bool"
    if not is_bool and kind not in ("float", "half"):
        msg = (
            "mask must be a boolean array (True = attend) or a floating array added to the "
            f"scores, got dtype {_validation._dtype_name(mask.dtype)}"
        )
        raise TypeError(msg)
    while mask.ndim < 2:
        mask = mask[None, ...]
    if not is_bool and mask.dtype != work_dtype:
        mask = xp.astype(mask, work_dtype)
    return mask, not is_bool


def _problem(
    q: Any,
    k: Any,
    v: Any,
    mask: Any,
    causal: Any,
    scale: Any,
    block_size: Any,
    extra: Sequence[Any] = (),
) -> tuple[_Problem, list[Any]]:
    xp, arrays, out_dtype, work_dtype = _qkv(q, k, v, (mask, *extra))
    q, k, v, mask = arrays[:4]
    dtypes = (q.dtype, k.dtype, v.dtype)
    q, k, v = (x if x.dtype == work_dtype else xp.astype(x, work_dtype) for x in (q, k, v))
    lq, lk = int(q.shape[-2]), int(k.shape[-2])
    additive = False
    shapes = {"q": tuple(q.shape[:-2]), "k": tuple(k.shape[:-2]), "v": tuple(v.shape[:-2])}
    if mask is not None:
        mask, additive = _check_mask(xp, mask, work_dtype)
        ok = all(m in (1, n) for m, n in zip(mask.shape[-2:], (lq, lk), strict=True))
        if not ok:
            msg = (
                f"mask of shape {tuple(mask.shape)} does not broadcast to (B, Lq, Lk) with "
                f"Lq={lq}, Lk={lk}"
            )
            raise ValueError(msg)
        shapes["mask"] = tuple(mask.shape[:-2])
    batch = _batch_shape(**shapes)
    bq, bk = _block_sizes(block_size, (_BQ, _BK))
    problem = _Problem(
        xp=xp,
        q=q,
        k=k,
        v=v,
        mask=mask,
        additive=additive,
        offset=_causal_offset(causal, lq, lk),
        scale=_resolve_scale(scale, int(q.shape[-1])),
        bq=bq,
        bk=bk,
        batch=batch,
        dtypes=dtypes,
        out_dtype=out_dtype,
        work_dtype=work_dtype,
    )
    return problem, arrays[4:]


def _check_threads(num_threads: Any) -> int:
    if num_threads is None:
        return default_threads()
    ok = isinstance(num_threads, (int, np.integer)) and not isinstance(num_threads, bool)
    if not ok or num_threads < 1:
        msg = f"num_threads must be a positive int or None, got {num_threads!r}"
        raise ValueError(msg)
    return int(num_threads)


def _check_path(implementation: Any) -> str:
    if implementation not in _IMPLEMENTATIONS:
        msg = f"implementation must be one of {_IMPLEMENTATIONS}, got {implementation!r}"
        raise ValueError(msg)
    return str(implementation)


def _use_numpy_path(p: _Problem, implementation: str) -> bool:
    if implementation == "numpy":
        if not is_numpy(p.xp):
            msg = f"implementation='numpy' needs NumPy input, got arrays of {p.xp.__name__}"
            raise ValueError(msg)
        return True
    if implementation == "reference" or not is_numpy(p.xp):
        return False
    return math.prod(p.batch) * p.lq * p.lk > _SMALL


# =========================================================================== shared helpers
def _visible_keys(offset: int | None, i0: int, i1: int, lk: int) -> tuple[int, int]:
    """The key range ``[0, stop)`` that queries ``[i0, i1)`` may see, and where the
    fully visible prefix ends (``full``): keys ``< full`` need no causal mask."""
    if offset is None:
        return lk, lk
    stop = min(lk, max(0, i1 + offset))  # the last query sees j <= i1 - 1 + offset
    full = min(lk, max(0, i0 + offset + 1))  # the first query sees j <= i0 + offset
    return stop, full


def _mask_block(mask: Any, i0: int, i1: int, j0: int, j1: int) -> Any:
    rows = slice(None) if mask.shape[-2] == 1 else slice(i0, i1)
    cols = slice(None) if mask.shape[-1] == 1 else slice(j0, j1)
    return mask[..., rows, cols]


def _unbroadcast(xp: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added to (or stretched in) ``shape``."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    if lead:
        g = xp.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return g


def _cast(xp: Any, x: Any, dtype: Any) -> Any:
    return x if x.dtype == dtype else xp.astype(x, dtype)


# =========================================================================== reference
# The array-API path: the specification, used for every non-NumPy array and for small
# NumPy problems. It works on all batch axes at once (matmul broadcasts them), one
# (bq, bk) block of every batch entry at a time.
def _scores_ref(p: _Problem, qs: Any, i0: int, i1: int, j0: int, j1: int, stop_full: int) -> Any:
    """Scaled, masked scores ``(B, i1-i0, j1-j0)`` of one block."""
    xp = p.xp
    s = qs @ xp.matrix_transpose(p.k[..., j0:j1, :])
    if p.mask is not None:
        mb = _mask_block(p.mask, i0, i1, j0, j1)
        s = s + mb if p.additive else xp.where(mb, s, -math.inf)
    if p.offset is not None and j1 > stop_full:
        dev = device_of(s)
        rows = xp.arange(i0, i1, device=dev)[:, None]
        cols = xp.arange(j0, j1, device=dev)[None, :]
        s = xp.where(cols - rows <= p.offset, s, -math.inf)
    return s


def _forward_ref(p: _Problem) -> tuple[Any, Any]:
    xp = p.xp
    dev = device_of(p.q)
    outs, lses = [], []
    for i0 in range(0, p.lq, p.bq):
        i1 = min(i0 + p.bq, p.lq)
        n = i1 - i0
        qs = p.q[..., i0:i1, :] * p.scale
        m = xp.full((*p.batch, n), -math.inf, dtype=p.work_dtype, device=dev)
        ll = xp.zeros((*p.batch, n), dtype=p.work_dtype, device=dev)
        acc = xp.zeros((*p.batch, n, p.dv), dtype=p.work_dtype, device=dev)
        stop, full = _visible_keys(p.offset, i0, i1, p.lk)
        for j0 in range(0, stop, p.bk):
            j1 = min(j0 + p.bk, stop)
            s = _scores_ref(p, qs, i0, i1, j0, j1, full)
            m_new = xp.maximum(m, xp.max(s, axis=-1))
            shift = xp.where(m_new == -math.inf, 0.0, m_new)
            e = xp.exp(s - shift[..., None])
            alpha = xp.exp(m - shift)
            ll = ll * alpha + xp.sum(e, axis=-1)
            acc = acc * alpha[..., None] + e @ p.v[..., j0:j1, :]
            m = m_new
        empty = ll == 0
        ll_safe = xp.where(empty, 1.0, ll)
        outs.append(xp.where(empty[..., None], 0.0, acc / ll_safe[..., None]))
        lses.append(xp.where(empty, -math.inf, m + xp.log(ll_safe)))
    if not outs:
        return (
            xp.zeros((*p.batch, 0, p.dv), dtype=p.work_dtype, device=dev),
            xp.zeros((*p.batch, 0), dtype=p.work_dtype, device=dev),
        )
    return xp.concat(outs, axis=-2), xp.concat(lses, axis=-1)


def _backward_ref(p: _Problem, out: Any, lse: Any, dout: Any) -> tuple[Any, Any, Any]:
    xp = p.xp
    dev = device_of(p.q)
    d = int(p.q.shape[-1])
    delta = xp.sum(dout * out, axis=-1)  # (B, Lq): sum_j P_ij dP_ij
    lse_safe = xp.where(lse == -math.inf, math.inf, lse)  # empty rows: P = 0
    starts = list(range(0, p.lq, p.bq))
    dq_parts = [
        xp.zeros((*p.batch, min(i0 + p.bq, p.lq) - i0, d), dtype=p.work_dtype, device=dev)
        for i0 in starts
    ]
    dk_parts, dv_parts = [], []
    for j0 in range(0, p.lk, p.bk):
        j1 = min(j0 + p.bk, p.lk)
        dk_j = xp.zeros((*p.batch, j1 - j0, d), dtype=p.work_dtype, device=dev)
        dv_j = xp.zeros((*p.batch, j1 - j0, p.dv), dtype=p.work_dtype, device=dev)
        for b, i0 in enumerate(starts):
            i1 = min(i0 + p.bq, p.lq)
            stop, full = _visible_keys(p.offset, i0, i1, p.lk)
            if j0 >= stop:
                continue
            qs = p.q[..., i0:i1, :] * p.scale
            s = _scores_ref(p, qs, i0, i1, j0, j1, full)
            pr = xp.exp(s - lse_safe[..., i0:i1, None])
            do = dout[..., i0:i1, :]
            dv_j = dv_j + xp.matrix_transpose(pr) @ do
            dp = do @ xp.matrix_transpose(p.v[..., j0:j1, :])
            ds = pr * (dp - delta[..., i0:i1, None])
            dk_j = dk_j + xp.matrix_transpose(ds) @ qs
            dq_parts[b] = dq_parts[b] + ds @ p.k[..., j0:j1, :]
        dk_parts.append(dk_j)
        dv_parts.append(dv_j)

    def join(parts: list[Any], shape: tuple[int, ...]) -> Any:
        if not parts:
            return xp.zeros(shape, dtype=p.work_dtype, device=dev)
        return xp.concat(parts, axis=-2)

    dq = join(dq_parts, (*p.batch, 0, d)) * p.scale
    dk = join(dk_parts, (*p.batch, 0, d))
    dv = join(dv_parts, (*p.batch, 0, p.dv))
    return dq, dk, dv


# =========================================================================== NumPy path
# Per (batch entry, query block) tasks on the pool of softargmax._threads, each with its
# own score buffers. Block products go through BLAS (np.matmul into preallocated blocks),
# the elementwise steps through NumPy's SIMD loops; both release the GIL.
def _blas_guard(xp: Any) -> Any:
    """One BLAS thread for NumPy's blockwise products; other libraries are left alone."""
    return ONE_BLAS_THREAD if is_numpy(xp) else contextlib.nullcontext()


def _scratch(state: dict[str, Any], name: str, rows: int, cols: int, dtype: Any) -> Any:
    """A per-worker ``(rows, cols)`` scratch block (a view of a reused buffer)."""
    buf = state.get(name)
    if buf is None or buf.dtype != dtype or buf.shape[0] < rows or buf.shape[1] < cols:
        buf = np.empty((max(rows, 1), max(cols, 1)), dtype=dtype)
        state[name] = buf
    return buf[:rows, :cols]


class _Views:
    """Per batch entry 2-D views of the (broadcast) NumPy arrays, without copies."""

    def __init__(self, batch: tuple[int, ...], **arrays: Any) -> None:
        self.batch = batch
        self.arrays = {
            n: None if a is None else np.broadcast_to(a, batch + tuple(a.shape[-2:]))
            for n, a in arrays.items()
        }

    def index(self, b: int) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(b, self.batch)) if self.batch else ()

    def __call__(self, name: str, b: int) -> Any:
        a = self.arrays[name]
        return None if a is None else a[self.index(b)]


def _scores_np(
    p: _Problem,
    s: Any,
    qs: Any,
    kh: Any,
    mh: Any,
    i0: int,
    i1: int,
    j0: int,
    j1: int,
    full: int,
) -> None:
    """Masked scores of one block, in base 2, into ``s`` (shape ``(i1-i0, j1-j0)``).

    ``qs`` is the query block times ``scale * log2(e)``, so ``s = log2(e) * S``.
    """
    np.matmul(qs, kh[j0:j1].T, out=s)
    if mh is not None:
        mb = _mask_block(mh, i0, i1, j0, j1)
        if p.additive:
            s += mb * _LOG2E
        else:
            np.copyto(s, -np.inf, where=~mb)
    if p.offset is not None and j1 > full:
        hidden = np.arange(j0, j1)[None, :] > (np.arange(i0, i1) + p.offset)[:, None]
        np.copyto(s, -np.inf, where=hidden)


def _forward_np(p: _Problem, threads: int) -> tuple[Any, Any]:
    views = _Views(p.batch, q=p.q, k=p.k, v=p.v, mask=p.mask)
    out = np.empty((*p.batch, p.lq, p.dv), dtype=p.work_dtype)
    lse = np.empty((*p.batch, p.lq), dtype=p.work_dtype)
    nb = math.prod(p.batch)
    tasks = [(b, i0) for b in range(nb) for i0 in range(0, p.lq, p.bq)]
    if p.offset is not None:  # longest first: causal blocks differ in cost
        tasks.sort(key=lambda t: -_visible_keys(p.offset, t[1], t[1] + p.bq, p.lk)[0])
    ones = np.ones(p.bk, dtype=p.work_dtype)

    def task(t: tuple[int, int], state: dict[str, Any]) -> None:
        b, i0 = t
        i1 = min(i0 + p.bq, p.lq)
        n = i1 - i0
        qs = views("q", b)[i0:i1] * (p.scale * _LOG2E)
        kh, vh, mh = views("k", b), views("v", b), views("mask", b)
        m = np.full(n, -np.inf, dtype=p.work_dtype)  # running max, base 2
        ll = np.zeros(n, dtype=p.work_dtype)
        acc = np.zeros((n, p.dv), dtype=p.work_dtype)
        pv = _scratch(state, "pv", n, p.dv, p.work_dtype)
        rowsum = np.empty(n, dtype=p.work_dtype)
        stop, full = _visible_keys(p.offset, i0, i1, p.lk)
        for j0 in range(0, stop, p.bk):
            j1 = min(j0 + p.bk, stop)
            s = _scratch(state, "s", n, j1 - j0, p.work_dtype)
            _scores_np(p, s, qs, kh, mh, i0, i1, j0, j1, full)
            m_new = s.max(axis=1)
            np.maximum(m_new, m, out=m_new)
            shift = m_new
            if np.isneginf(m_new).any():
                shift = np.where(np.isneginf(m_new), 0.0, m_new).astype(p.work_dtype)
            s -= shift[:, None]
            np.exp2(s, out=s)  # base 2: twice as fast as exp in NumPy's SIMD loops
            alpha = np.exp2(m - shift)
            np.matmul(s, ones[: j1 - j0], out=rowsum)  # row sums as a BLAS gemv
            ll *= alpha
            ll += rowsum
            acc *= alpha[:, None]
            np.matmul(s, vh[j0:j1], out=pv)
            acc += pv
            m = m_new
        empty = ll == 0
        o = out[views.index(b)][i0:i1]
        np.divide(acc, ll[:, None], out=o)
        r = lse[views.index(b)][i0:i1]
        np.log2(ll, out=r)
        r += m
        r *= _LN2
        if empty.any():
            o[empty] = 0.0
            r[empty] = -np.inf

    run_tasks(tasks, task, threads)
    return out, lse


def _backward_np(
    p: _Problem, out: Any, lse: Any, dout: Any, threads: int
) -> tuple[Any, Any, Any]:
    d = int(p.q.shape[-1])
    nb = math.prod(p.batch)
    views = _Views(p.batch, q=p.q, k=p.k, v=p.v, mask=p.mask, dout=dout)
    with np.errstate(all="ignore"):
        delta = np.einsum("...ij,...ij->...i", dout, out)
        # base-2 log-sum-exp; empty rows (-inf) become +inf so that P = 0 there
        lse2 = np.where(lse == -np.inf, np.inf, lse * _LOG2E).astype(p.work_dtype)
    dq = np.zeros((*p.batch, p.lq, d), dtype=p.work_dtype)
    dk = np.zeros((*p.batch, p.lk, d), dtype=p.work_dtype)
    dv = np.zeros((*p.batch, p.lk, p.dv), dtype=p.work_dtype)
    key_starts = list(range(0, p.lk, p.bk))
    # Tasks own key blocks (their dk, dv rows). With few batch entries the key blocks of
    # one entry are dealt to several tasks (round robin, for causal balance), each with
    # its own dq partial that is summed at the end: fewer than 8 * threads partials.
    chunks = 1 if nb >= 4 * threads else max(1, min(len(key_starts), -(-4 * threads // nb)))
    tasks = [(b, c) for b in range(nb) for c in range(chunks)]

    def task(t: tuple[int, int], state: dict[str, Any]) -> Any:
        b, c = t
        idx = views.index(b)
        qh, kh, vh, mh, doh = (views(n, b) for n in ("q", "k", "v", "mask", "dout"))
        lse_b, delta_b = lse2[idx], delta[idx]
        dq_b = dq[idx] if chunks == 1 else np.zeros((p.lq, d), dtype=p.work_dtype)
        for j0 in key_starts[c::chunks]:
            j1 = min(j0 + p.bk, p.lk)
            dk_j, dv_j = dk[idx][j0:j1], dv[idx][j0:j1]
            kj, vj = kh[j0:j1], vh[j0:j1]
            first = 0 if p.offset is None else max(0, j0 - p.offset) // p.bq * p.bq
            for i0 in range(first, p.lq, p.bq):
                i1 = min(i0 + p.bq, p.lq)
                stop, full = _visible_keys(p.offset, i0, i1, p.lk)
                if j0 >= stop:
                    continue
                n = i1 - i0
                qs = qh[i0:i1] * (p.scale * _LOG2E)
                s = _scratch(state, "s", n, j1 - j0, p.work_dtype)
                _scores_np(p, s, qs, kh, mh, i0, i1, j0, j1, full)
                s -= lse_b[i0:i1, None]
                np.exp2(s, out=s)  # P
                do = doh[i0:i1]
                dv_j += s.T @ do
                dp = _scratch(state, "dp", n, j1 - j0, p.work_dtype)
                np.matmul(do, vj.T, out=dp)
                dp -= delta_b[i0:i1, None]
                dp *= s  # dS
                dk_j += dp.T @ qs  # scale * log2(e) * dS^T q: times ln 2 below
                dq_b[i0:i1] += dp @ kj
        return None if chunks == 1 else (idx, dq_b)

    for r in run_tasks(tasks, task, threads):
        if r is not None:
            dq[r[0]] += r[1]
    dq *= p.scale
    dk *= _LN2
    return dq, dk, dv


# =========================================================================== public API
@overload
def attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = ...,
    causal: Causal = ...,
    scale: float | None = ...,
    block_size: int | tuple[int, int] | None = ...,
    return_lse: Literal[False] = ...,
    num_threads: int | None = ...,
    implementation: Literal["auto", "reference", "numpy"] = ...,
) -> Array: ...
@overload
def attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = ...,
    causal: Causal = ...,
    scale: float | None = ...,
    block_size: int | tuple[int, int] | None = ...,
    return_lse: Literal[True],
    num_threads: int | None = ...,
    implementation: Literal["auto", "reference", "numpy"] = ...,
) -> tuple[Array, Array]: ...
def attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = None,
    causal: Causal = False,
    scale: float | None = None,
    block_size: int | tuple[int, int] | None = None,
    return_lse: bool = False,
    num_threads: int | None = None,
    implementation: Literal["auto", "reference", "numpy"] = "auto",
) -> Array | tuple[Array, Array]:
    r"""Exact scaled dot-product attention, ``softmax(scale * q k^T + mask) v``.

    Computed over blocks of keys with an online softmax, so that no ``(Lq, Lk)`` score
    matrix is formed. Dimension letters as in the module docstring.

    Parameters
    ----------
    q : array_like, shape (B, Lq, d)
        Queries (floating point; integers are a TypeError). ``B`` is any number of
        leading axes (batch, heads, ...) that broadcast against those of ``k``, ``v``
        and ``mask``.
    k : array_like, shape (B, Lk, d)
        Keys.
    v : array_like, shape (B, Lk, dv)
        Values.
    mask : array_like, optional, broadcastable to (B, Lq, Lk)
        Boolean (``True`` = attend) or floating (added to the scaled scores; ``-inf``
        excludes).
    causal : bool or {"top_left", "bottom_right"}, default False
        ``True`` or ``"top_left"``: query ``i`` sees keys ``j <= i`` (PyTorch).
        ``"bottom_right"``: query ``i`` sees keys ``j <= i + Lk - Lq``, so the last
        query sees every key (flash-attention; decoding with a key cache).
    scale : float, optional
        Factor applied to ``q k^T``; default ``1 / sqrt(d)``, which keeps the scores of
        unit-variance inputs at unit variance so that the softmax does not saturate.
    block_size : int or (int, int), optional
        Queries and keys per block (one int for both); default (512, 512). Any positive
        size works, dividing ``Lq``/``Lk`` or not.
    return_lse : bool, default False
        Also return the per-query log-sum-exp of the scaled, masked scores (the residual
        that :func:`attention_vjp` and :func:`merge_attention` need).
    num_threads : int, optional
        Worker threads of the NumPy path (default: the CPUs available to the process).
    implementation : {"auto", "reference", "numpy"}
        ``"numpy"`` forces the threaded NumPy path, ``"reference"`` the array-API path
        (taken for every other array library, and for small NumPy problems).

    Returns
    -------
    out : array, shape (B, Lq, dv)
        The result type of ``q``, ``k``, ``v`` (float16/bfloat16 are computed in float32);
        the array library and device of the inputs. Fully masked rows are zeros.
    lse : array, shape (B, Lq)
        Only with ``return_lse=True``; in the working dtype (float32 for half inputs);
        ``-inf`` on fully masked rows.

    Notes
    -----
    For each query the scores of a key block ``s = scale * q k_blk^T + mask`` update the
    running max ``m``, sum ``l`` and accumulator ``a``:
    ``m' = max(m, max s)``, ``l' = l e^{m - m'} + sum e^{s - m'}``,
    ``a' = a e^{m - m'} + e^{s - m'} v_blk``; at the end ``out = a / l`` and
    ``lse = m + log l``. Scores are shifted by their running max, so no finite score
    overflows the exponential. Blocks that ``causal`` hides entirely are skipped. Memory
    beyond the inputs and output is ``O(bq * bk)`` per worker thread. On NumPy input
    the blocks of all batch entries and query blocks are shared among threads; the block
    products are BLAS calls, and the exponentials are taken in base 2 (the scale carries
    the factor ``log2(e)``), which NumPy computes twice as fast as ``exp``.

    A query row that sees no key (all masked, or before the first key under
    ``causal="bottom_right"`` with ``Lq > Lk``) gives zeros, as in PyTorch;
    ``jax.nn.dot_product_attention`` gives the mean of ``v`` for such a row.

    References
    ----------
    .. [1] A. Vaswani et al., "Attention is all you need", NeurIPS 2017.
    .. [2] M. N. Rabe and C. Staats, "Self-attention does not need O(n^2) memory", 2021.
    .. [3] T. Dao et al., "FlashAttention: fast and memory-efficient exact attention
       with IO-awareness", NeurIPS 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.attention import attention
    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> v = np.array([[1.0], [2.0], [3.0]])
    >>> attention(q, k, v)
    array([[2.        ],
           [2.20333628]])

    The log-sum-exp comes along on request; logits of 1000 do not overflow:

    >>> out, lse = attention(1000 * q, k, v, scale=1.0, return_lse=True)
    >>> out
    array([[2. ],
           [2.5]])
    >>> lse
    array([1000.69314718, 1000.69314718])

    A causal mask, and a row whose keys are all masked (zeros, not NaN):

    >>> attention(q, k[:2], v[:2], causal=True)
    array([[1.        ],
           [1.66976155]])
    >>> attention(q, k, v, mask=np.array([[True, True, True], [False, False, False]]))
    array([[2.],
           [0.]])
    """
    p, _ = _problem(q, k, v, mask, causal, scale, block_size)
    threads = _check_threads(num_threads)
    if _use_numpy_path(p, _check_path(implementation)):
        out, lse = _forward_np(p, threads)
    else:
        with _blas_guard(p.xp), np.errstate(all="ignore"):
            out, lse = _forward_ref(p)
    out = _cast(p.xp, out, p.out_dtype)
    return (out, lse) if return_lse else out


def attention_vjp(
    q: Array,
    k: Array,
    v: Array,
    out: Array,
    lse: Array,
    dout: Array,
    *,
    mask: Array | None = None,
    causal: Causal = False,
    scale: float | None = None,
    block_size: int | tuple[int, int] | None = None,
    num_threads: int | None = None,
    implementation: Literal["auto", "reference", "numpy"] = "auto",
) -> tuple[Array, Array, Array]:
    r"""Gradients of :func:`attention` with respect to ``q``, ``k`` and ``v``.

    The flash-attention backward: the probabilities are recomputed blockwise from the
    saved log-sum-exp, so memory stays ``O(bq * bk)`` per worker beyond inputs and
    gradients.

    Parameters
    ----------
    q, k, v, mask, causal, scale, block_size, num_threads, implementation
        As given to :func:`attention`.
    out : array_like, shape (B, Lq, dv)
        The output of :func:`attention`.
    lse : array_like, shape (B, Lq)
        The log-sum-exp returned by ``attention(..., return_lse=True)``.
    dout : array_like, shape (B, Lq, dv)
        The gradient of the loss with respect to ``out``.

    Returns
    -------
    dq, dk, dv : arrays of the shapes and dtypes of ``q``, ``k``, ``v``
        Summed over the batch axes along which an input was broadcast. A mask gets no
        gradient.

    Notes
    -----
    With ``P = exp(S - lse)`` (``S`` the scaled, masked scores) and
    ``delta_i = sum_c dout_ic out_ic``:
    ``dv = P^T dout``, ``dS = P * (dout v^T - delta)``, ``dq = scale * dS k``,
    ``dk = scale * dS^T q``. Masked entries and fully masked rows have ``P = 0`` and
    get zero gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.attention import attention, attention_vjp
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(3, 5, 4))
    >>> out, lse = attention(q, k, v, causal=True, return_lse=True)
    >>> dq, dk, dv = attention_vjp(q, k, v, out, lse, np.ones_like(out), causal=True)
    >>> dq.shape, dk.shape, dv.shape
    ((5, 4), (5, 4), (5, 4))

    The gradient of ``sum(out)`` with respect to ``v`` counts how much attention each
    key receives in total: one unit per query.

    >>> float(dv.sum())
    20.0
    """
    p, (out, lse, dout) = _problem(q, k, v, mask, causal, scale, block_size, (out, lse, dout))
    xp = p.xp
    expect = {"out": (*p.batch, p.lq, p.dv), "lse": (*p.batch, p.lq), "dout": (*p.batch, p.lq, p.dv)}
    arrays = {}
    for name, x in (("out", out), ("lse", lse), ("dout", dout)):
        if x is None or _validation._classify(xp, x.dtype) not in ("float", "half"):
            got = "None" if x is None else f"dtype {_validation._dtype_name(x.dtype)}"
            msg = f"{name} must be a floating-point array, got {got}"
            raise TypeError(msg)
        if tuple(x.shape) != expect[name]:
            msg = f"{name} must have shape {expect[name]} (from q, k, v), got {tuple(x.shape)}"
            raise ValueError(msg)
        arrays[name] = _cast(xp, x, p.work_dtype)
    threads = _check_threads(num_threads)
    if _use_numpy_path(p, _check_path(implementation)):
        grads = _backward_np(p, arrays["out"], arrays["lse"], arrays["dout"], threads)
    else:
        with _blas_guard(p.xp), np.errstate(all="ignore"):
            grads = _backward_ref(p, arrays["out"], arrays["lse"], arrays["dout"])
    dq, dk, dv = (
        _cast(xp, _unbroadcast(xp, g, tuple(x.shape)), dtype)
        for g, x, dtype in zip(grads, (p.q, p.k, p.v), p.dtypes, strict=True)
    )
    return dq, dk, dv


def merge_attention(outs: Sequence[Array], lses: Sequence[Array]) -> tuple[Array, Array]:
    r"""Combine attention results over disjoint key sets into the result over their union.

    Parameters
    ----------
    outs : sequence of arrays, shapes (B, Lq, dv)
        ``attention(q, k_i, v_i, return_lse=True)[0]`` for key/value sets ``i`` that
        partition the keys (the batch axes broadcast).
    lses : sequence of arrays, shapes (B, Lq)
        The matching log-sum-exps.

    Returns
    -------
    out : array, shape (B, Lq, dv)
        ``sum_i exp(lse_i - lse) * out_i``: equal to attention over all the keys.
    lse : array, shape (B, Lq)
        ``logsumexp_i lse_i``; ``-inf`` where every part was empty (then ``out`` is 0).

    Notes
    -----
    The merge is exact and associative (up to rounding), which makes it the building
    block of key-split parallelism (flash-decoding, ring attention) and of streaming
    over keys that arrive in chunks. The weights are shifted by the largest ``lse``, so
    no exponential overflows.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.attention import attention, merge_attention
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(4, 6, 3)), rng.normal(size=(9, 3)), rng.normal(size=(9, 2))
    >>> parts = [attention(q, k[s], v[s], return_lse=True) for s in (slice(0, 4), slice(4, 9))]
    >>> out, lse = merge_attention([o for o, _ in parts], [s for _, s in parts])
    >>> bool(np.allclose(out, attention(q, k, v)))
    True
    """
    if isinstance(outs, (str, bytes)) or not isinstance(outs, Sequence):
        msg = f"outs must be a sequence of arrays, got {type(outs).__name__}"
        raise TypeError(msg)
    if isinstance(lses, (str, bytes)) or not isinstance(lses, Sequence):
        msg = f"lses must be a sequence of arrays, got {type(lses).__name__}"
        raise TypeError(msg)
    if len(outs) != len(lses) or not outs:
        msg = (
            "outs and lses must be non-empty sequences of the same length, got "
            f"{len(outs)} and {len(lses)}"
        )
        raise ValueError(msg)
    xp, arrays = get_namespace(*outs, *lses)
    outs, lses = arrays[: len(outs)], arrays[len(outs) :]
    for i, (o, s) in enumerate(zip(outs, lses, strict=True)):
        for name, x in ((f"outs[{i}]", o), (f"lses[{i}]", s)):
            if _validation._classify(xp, x.dtype) not in ("float", "half"):
                msg = f"{name} must be a floating-point array, got dtype {_validation._dtype_name(x.dtype)}"
                raise TypeError(msg)
        if o.ndim < 1:
            msg = f"outs[{i}] must have a last axis dv, got shape {tuple(o.shape)}"
            raise ValueError(msg)
    try:
        out_shape = np.broadcast_shapes(
            *(tuple(o.shape) for o in outs), (*np.broadcast_shapes(*(tuple(s.shape) for s in lses)), 1)
        )
    except ValueError:
        msg = (
            f"the shapes of outs {[tuple(o.shape) for o in outs]} (B, Lq, dv) and lses "
            f"{[tuple(s.shape) for s in lses]} (B, Lq) do not broadcast"
        )
        raise ValueError(msg) from None
    dtype = _validation.result_float_dtype(xp, *(o.dtype for o in outs), *(s.dtype for s in lses))
    work = xp.float32 if _validation._classify(xp, dtype) == "half" else dtype
    outs = [_cast(xp, o, work) for o in outs]
    lses = [_cast(xp, s, work) for s in lses]
    with np.errstate(all="ignore"):
        m = lses[0]
        for s in lses[1:]:
            m = xp.maximum(m, s)
        shift = xp.where(m == -math.inf, 0.0, m)
        weights = [xp.exp(s - shift) for s in lses]
        total = weights[0]
        for w in weights[1:]:
            total = total + w
        acc = weights[0][..., None] * outs[0]
        for w, o in zip(weights[1:], outs[1:], strict=True):
            acc = acc + w[..., None] * o
        empty = total == 0
        safe = xp.where(empty, 1.0, total)
        out = xp.where(empty[..., None], 0.0, acc / safe[..., None])
        lse = xp.where(empty, -math.inf, shift + xp.log(safe))
    out = xp.broadcast_to(out, out_shape)
    return _cast(xp, out, dtype), lse


# =========================================================================== linear attention
def _feature_map(xp: Any, name: str, x: Any) -> tuple[Any, Any]:
    """``phi(x)`` and ``phi'(x)`` of a named feature map."""
    if name == "elu1":  # elu(x) + 1: x + 1 for x > 0, exp(x) otherwise; always > 0
        e = xp.exp(xp.minimum(x, 0.0))
        pos = x > 0
        return xp.where(pos, x + 1.0, e), xp.where(pos, 1.0, e)
    pos = x > 0  # relu
    return xp.where(pos, x, 0.0), xp.where(pos, 1.0, 0.0)


def _check_feature_map(feature_map: Any) -> str:
    if feature_map not in _FEATURE_MAPS:
        msg = f"feature_map must be one of {_FEATURE_MAPS}, got {feature_map!r}"
        raise ValueError(msg)
    return str(feature_map)


def _linear_problem(
    q: Any, k: Any, v: Any, causal: Any, block_size: Any, extra: Sequence[Any] = ()
) -> tuple[Any, list[Any], tuple[Any, ...], dict[str, Any]]:
    """Namespace, working arrays, given dtypes of q, k, v, and the settings."""
    xp, arrays, out_dtype, work_dtype = _qkv(q, k, v, extra)
    q, k, v = arrays[:3]
    batch = _batch_shape(q=tuple(q.shape[:-2]), k=tuple(k.shape[:-2]), v=tuple(v.shape[:-2]))
    settings = {
        "batch": batch,
        "offset": _causal_offset(causal, int(q.shape[-2]), int(k.shape[-2])),
        "bq": _block_sizes(block_size, (128, 128))[0],
        "out_dtype": out_dtype,
        "work_dtype": work_dtype,
    }
    work = [_cast(xp, x, work_dtype) for x in (q, k, v)]
    return xp, [*work, *arrays[3:]], (q.dtype, k.dtype, v.dtype), settings


def _ratio(xp: Any, num: Any, den: Any) -> tuple[Any, Any]:
    """``num / den[..., None]`` with 0 where ``den == 0``, and the safe denominator."""
    empty = den == 0
    safe = xp.where(empty, 1.0, den)
    return xp.where(empty[..., None], 0.0, num / safe[..., None]), xp.where(empty, 0.0, 1.0 / safe)


def _linear_blocks(lq: int, lk: int, offset: int, bq: int) -> list[tuple[int, int, int, int]]:
    """Causal query blocks ``(i0, i1, lo, hi)``: keys ``< lo`` are in the prefix state,
    keys ``[lo, hi)`` are seen by some queries of the block only (a triangular mask).

    The ``[lo, hi)`` ranges of successive blocks are disjoint, and the state increments
    ``[lo_prev, lo)`` tile ``[0, lo_last)``.
    """
    out = []
    for i0 in range(0, lq, bq):
        i1 = min(i0 + bq, lq)
        hi, lo = _visible_keys(offset, i0, i1, lk)
        out.append((i0, i1, lo, max(lo, hi)))
    return out


def _tri(xp: Any, dev: Any, i0: int, i1: int, lo: int, hi: int, offset: int) -> Any:
    rows = xp.arange(i0, i1, device=dev)[:, None]
    cols = xp.arange(lo, hi, device=dev)[None, :]
    return cols - rows <= offset


def _linear_forward(
    xp: Any, qf: Any, kf: Any, v: Any, offset: int | None, bq: int, batch: tuple[int, ...]
) -> tuple[Any, Any]:
    """``(out, den)`` of linear attention on the feature-mapped ``qf``, ``kf``."""
    mt = xp.matrix_transpose
    if offset is None:
        num = qf @ (mt(kf) @ v)
        den = (qf @ xp.sum(kf, axis=-2)[..., None])[..., 0]
        return _ratio(xp, num, den)[0], den
    dev = device_of(qf)
    lq, lk, f, dv = int(qf.shape[-2]), int(kf.shape[-2]), int(kf.shape[-1]), int(v.shape[-1])
    state = xp.zeros((*batch, f, dv), dtype=qf.dtype, device=dev)  # sum phi(k_j) v_j^T
    z = xp.zeros((*batch, f), dtype=qf.dtype, device=dev)  # sum phi(k_j)
    nums = [xp.zeros((*batch, 0, dv), dtype=qf.dtype, device=dev)]
    dens = [xp.zeros((*batch, 0), dtype=qf.dtype, device=dev)]
    done = 0
    for i0, i1, lo, hi in _linear_blocks(lq, lk, offset, bq):
        if lo > done:
            state = state + mt(kf[..., done:lo, :]) @ v[..., done:lo, :]
            z = z + xp.sum(kf[..., done:lo, :], axis=-2)
            done = lo
        qb = qf[..., i0:i1, :]
        a = xp.where(_tri(xp, dev, i0, i1, lo, hi, offset), qb @ mt(kf[..., lo:hi, :]), 0.0)
        nums.append(qb @ state + a @ v[..., lo:hi, :])
        dens.append((qb @ z[..., None])[..., 0] + xp.sum(a, axis=-1))
    num, den = xp.concat(nums, axis=-2), xp.concat(dens, axis=-1)
    return _ratio(xp, num, den)[0], den


def linear_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    feature_map: Literal["elu1", "relu"] = "elu1",
    causal: Causal = False,
    block_size: int | None = None,
) -> Array:
    r"""Linear (kernelised) attention: ``phi(q) (phi(k)^T v) / (phi(q) sum_j phi(k_j))``.

    The softmax kernel ``exp(q . k)`` is replaced by ``phi(q) . phi(k)``, so the
    product can be reassociated and costs ``O(L d dv)`` instead of ``O(Lq Lk d)``.
    Dimension letters as in the module docstring.

    Parameters
    ----------
    q : array_like, shape (B, Lq, d)
        Queries (floating point).
    k : array_like, shape (B, Lk, d)
        Keys.
    v : array_like, shape (B, Lk, dv)
        Values.
    feature_map : {"elu1", "relu"}, default "elu1"
        ``"elu1"``: ``phi(x) = elu(x) + 1`` (Katharopoulos et al.), always positive;
        ``"relu"``: ``max(x, 0)``. ``F = d`` for both.
    causal : bool or {"top_left", "bottom_right"}, default False
        As in :func:`attention`; computed with prefix sums of ``phi(k_j) v_j^T`` over
        blocks of queries (a triangular block inside each), never an ``(Lq, Lk)`` matrix.
    block_size : int, optional
        Queries per block of the causal computation (default 128).

    Returns
    -------
    array, shape (B, Lq, dv)
        In the result type of the inputs. A query whose normaliser
        ``phi(q) . sum phi(k)`` is 0 (no visible key, or all-zero features) gives zeros.

    Notes
    -----
    No softmax is involved, and the result is not an approximation of
    :func:`attention` in general: the weights ``phi(q_i) . phi(k_j)`` are merely
    positive. ``examples/attention_linear_vs_exact.py`` shows how far apart the two are
    and from which length on linear attention is faster.

    References
    ----------
    .. [1] A. Katharopoulos, A. Vyas, N. Pappas and F. Fleuret, "Transformers are RNNs:
       fast autoregressive transformers with linear attention", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.attention import linear_attention
    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> k = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> v = np.array([[1.0], [2.0], [3.0]])
    >>> linear_attention(q, k, v)
    array([[2.06666667],
           [2.13333333]])
    >>> linear_attention(q, k, v, causal=True)
    array([[1.        ],
           [1.55555556]])
    """
    fm = _check_feature_map(feature_map)
    xp, (q, k, v), _, st = _linear_problem(q, k, v, causal, block_size)
    with _blas_guard(xp), np.errstate(all="ignore"):
        qf, _ = _feature_map(xp, fm, q)
        kf, _ = _feature_map(xp, fm, k)
        out, _ = _linear_forward(xp, qf, kf, v, st["offset"], st["bq"], st["batch"])
    return _cast(xp, out, st["out_dtype"])


def linear_attention_vjp(
    q: Array,
    k: Array,
    v: Array,
    dout: Array,
    *,
    feature_map: Literal["elu1", "relu"] = "elu1",
    causal: Causal = False,
    block_size: int | None = None,
) -> tuple[Array, Array, Array]:
    r"""Gradients of :func:`linear_attention` with respect to ``q``, ``k`` and ``v``.

    Parameters
    ----------
    q, k, v, feature_map, causal, block_size
        As given to :func:`linear_attention`.
    dout : array_like, shape (B, Lq, dv)
        The gradient of the loss with respect to the output.

    Returns
    -------
    dq, dk, dv : arrays of the shapes and dtypes of ``q``, ``k``, ``v``
        Summed over the batch axes along which an input was broadcast.

    Notes
    -----
    With ``num = phi(q) S``, ``den = phi(q) z`` (``S = sum phi(k_j) v_j^T`` and
    ``z = sum phi(k_j)`` over the visible keys) and ``out = num / den``:
    ``dnum = dout / den`` and ``dden = -sum(dout * out) / den``. The causal case runs
    the prefix states forwards for ``dq`` and their gradients backwards (suffix sums)
    for ``dk`` and ``dv``: ``O(L d dv)`` time, no ``(Lq, Lk)`` matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.attention import linear_attention_vjp
    >>> rng = np.random.default_rng(0)
    >>> q, k, v = rng.normal(size=(3, 6, 4))
    >>> dq, dk, dv = linear_attention_vjp(q, k, v, np.ones((6, 4)), causal=True)

    Each output row is a weighted mean of the values, so adding ``t`` to every value
    adds ``t`` to every output: ``dv`` sums to the number of output entries.

    >>> float(dv.sum())
    24.0
    """
    fm = _check_feature_map(feature_map)
    xp, arrays, dtypes, st = _linear_problem(q, k, v, causal, block_size, (dout,))
    q, k, v, dout = arrays
    expect = (*st["batch"], int(q.shape[-2]), int(v.shape[-1]))
    if _validation._classify(xp, dout.dtype) not in ("float", "half"):
        msg = f"dout must be a floating-point array, got dtype {_validation._dtype_name(dout.dtype)}"
        raise TypeError(msg)
    if tuple(dout.shape) != expect:
        msg = f"dout must have the output's shape {expect}, got {tuple(dout.shape)}"
        raise ValueError(msg)
    dout = _cast(xp, dout, st["work_dtype"])
    mt = xp.matrix_transpose
    with _blas_guard(xp), np.errstate(all="ignore"):
        qf, dphi_q = _feature_map(xp, fm, q)
        kf, dphi_k = _feature_map(xp, fm, k)
        out, den = _linear_forward(xp, qf, kf, v, st["offset"], st["bq"], st["batch"])
        dnum, inv = _ratio(xp, dout, den)
        dden = -xp.sum(dout * out, axis=-1) * inv  # (B, Lq)
        if st["offset"] is None:
            kv = mt(kf) @ v  # (B, F, dv)
            z = xp.sum(kf, axis=-2)  # (B, F)
            dqf = dnum @ mt(kv) + dden[..., None] * z[..., None, :]
            dkv = mt(qf) @ dnum  # (B, F, dv)
            dz = xp.sum(qf * dden[..., None], axis=-2)  # (B, F)
            dkf = v @ mt(dkv) + dz[..., None, :]
            dv = kf @ dkv
        else:
            dqf, dkf, dv = _linear_causal_grads(
                xp, qf, kf, v, dnum, dden, st["offset"], st["bq"], st["batch"]
            )
        grads = (dqf * dphi_q, dkf * dphi_k, dv)
    dq, dk, dv = (
        _cast(xp, _unbroadcast(xp, g, tuple(x.shape)), dtype)
        for g, x, dtype in zip(grads, (q, k, v), dtypes, strict=True)
    )
    return dq, dk, dv


def _linear_causal_grads(
    xp: Any,
    qf: Any,
    kf: Any,
    v: Any,
    dnum: Any,
    dden: Any,
    offset: int,
    bq: int,
    batch: tuple[int, ...],
) -> tuple[Any, Any, Any]:
    """``d phi(q)``, ``d phi(k)`` and ``dv`` of causal linear attention, ``(B, L, .)``."""
    mt = xp.matrix_transpose
    dev = device_of(qf)
    lq, lk, f, dv = int(qf.shape[-2]), int(kf.shape[-2]), int(kf.shape[-1]), int(v.shape[-1])
    state = xp.zeros((*batch, f, dv), dtype=qf.dtype, device=dev)
    z = xp.zeros((*batch, f), dtype=qf.dtype, device=dev)
    done = 0
    dq_parts = [xp.zeros((*batch, 0, f), dtype=qf.dtype, device=dev)]
    intra_k, intra_v, state_grads = [], [], []
    for i0, i1, lo, hi in _linear_blocks(lq, lk, offset, bq):
        if lo > done:
            state = state + mt(kf[..., done:lo, :]) @ v[..., done:lo, :]
            z = z + xp.sum(kf[..., done:lo, :], axis=-2)
            done = lo
        qb, dn, dd = qf[..., i0:i1, :], dnum[..., i0:i1, :], dden[..., i0:i1]
        kb, vb = kf[..., lo:hi, :], v[..., lo:hi, :]
        tri = _tri(xp, dev, i0, i1, lo, hi, offset)
        a = xp.where(tri, qb @ mt(kb), 0.0)  # the block's own weights phi(q_i) . phi(k_j)
        da = xp.where(tri, dn @ mt(vb) + dd[..., None], 0.0)
        dq_parts.append(dn @ mt(state) + dd[..., None] * z[..., None, :] + da @ kb)
        if hi > lo:
            intra_k.append((lo, mt(da) @ qb))
            intra_v.append((lo, mt(a) @ dn))
        state_grads.append((lo, mt(qb) @ dn, xp.sum(qb * dd[..., None], axis=-2)))
    # The keys [lo_{b-1}, lo_b) enter the states of blocks b, b+1, ...: suffix sums of
    # the gradients of those states give their dk and dv.
    dstate = xp.zeros((*batch, f, dv), dtype=qf.dtype, device=dev)
    dz = xp.zeros((*batch, f), dtype=qf.dtype, device=dev)
    state_k, state_v = [], []
    for b in range(len(state_grads) - 1, -1, -1):
        lo, g_state, g_z = state_grads[b]
        dstate, dz = dstate + g_state, dz + g_z
        start = state_grads[b - 1][0] if b > 0 else 0
        if lo > start:
            state_k.append((start, v[..., start:lo, :] @ mt(dstate) + dz[..., None, :]))
            state_v.append((start, kf[..., start:lo, :] @ dstate))
    dkf = _assemble(xp, intra_k, lk, (*batch, f), dev, qf.dtype)
    dkf = dkf + _assemble(xp, state_k, lk, (*batch, f), dev, qf.dtype)
    dv_ = _assemble(xp, intra_v, lk, (*batch, dv), dev, qf.dtype)
    dv_ = dv_ + _assemble(xp, state_v, lk, (*batch, dv), dev, qf.dtype)
    return xp.concat(dq_parts, axis=-2), dkf, dv_


def _assemble(
    xp: Any, pieces: list[tuple[int, Any]], length: int, shape: tuple[int, ...], dev: Any, dtype: Any
) -> Any:
    """``(B, length, C)`` rows from disjoint ``(start, piece)`` pieces, zeros elsewhere;
    ``shape`` is ``(*B, C)``."""
    *lead, cols = shape

    def zeros(n: int) -> Any:
        return xp.zeros((*lead, n, cols), dtype=dtype, device=dev)

    parts, at = [zeros(0)], 0
    for start, piece in sorted(pieces, key=lambda t: t[0]):
        if start > at:
            parts.append(zeros(start - at))
        parts.append(xp.broadcast_to(piece, (*lead, int(piece.shape[-2]), cols)))
        at = start + int(piece.shape[-2])
    parts.append(zeros(length - at))
    return xp.concat(parts, axis=-2)


# =========================================================================== demo
def demo_section() -> str:
    """A short text tour of this module for ``softargmax demo`` (about a second)."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4096, 64), dtype=np.float32) for _ in range(3))
    out, lse = attention(q, k, v, causal=True, return_lse=True)
    with np.errstate(all="ignore"):
        s = (q[0, :256].astype(np.float64) @ k[0].T.astype(np.float64)) / 8.0
        s[np.arange(4096)[None, :] > np.arange(256)[:, None]] = -np.inf
        p = np.exp(s - s.max(axis=1, keepdims=True))
        naive = (p / p.sum(axis=1, keepdims=True)) @ v[0].astype(np.float64)
    err = float(np.max(np.abs(out[0, :256] - naive)) / np.max(np.abs(naive)))
    parts = [attention(q[:, :8], k[:, a:b], v[:, a:b], return_lse=True) for a, b in ((0, 1000), (1000, 4096))]
    merged, _ = merge_attention([o for o, _ in parts], [s for _, s in parts])
    merge_err = float(np.max(np.abs(merged - attention(q[:, :8], k, v))))
    mask = np.ones((3, 4), dtype=bool)
    mask[1] = False
    masked = attention(q[0, :3, :4], k[0, :4, :4], v[0, :4, :2], mask=mask)
    lin = linear_attention(q, k, v, causal=True)
    return "\n".join(
        [
            "attention: exact softmax(q k^T / sqrt(d)) v in blocks with an online softmax",
            f"  causal, 2 heads x 4096 queries x 64: out {out.shape}, lse {lse.shape}; no 4096 x 4096"
            " matrix is ever held",
            f"  relative error against a float64 materialised softmax: {err:.1e}",
            f"  merge of two key halves == one shot: max difference {merge_err:.1e}",
            f"  a fully masked row gives zeros (PyTorch; JAX gives the mean of v): {masked[1].tolist()}",
            f"  linear_attention (elu+1 features), O(L d^2): out {lin.shape}; a different model, not an"
            " approximation",
        ]
    )
