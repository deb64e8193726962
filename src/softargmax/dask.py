"""The softmax family for Dask arrays: lazy, any chunking, any scheduler.

``softmax``, ``log_softmax``, ``softmin`` and ``logsumexp`` take a ``dask.array.Array``
(the public functions of :mod:`softargmax` send Dask arrays here) and return a lazy Dask
array; nothing is computed before ``.compute()``. The edge semantics are those of
:mod:`softargmax.core`.

* When every chunk holds whole distributions (the softmax axes are not split), each chunk
  is normalised on its own by :func:`softargmax.softmax`: one pass, one task per chunk.
* Otherwise each chunk is reduced to its (max, scaled sum) state
  (:mod:`softargmax.streaming`), the states are merged pairwise up a tree
  (``dask.array.reduction`` with a combine step that merges them) and a blockwise map
  finishes every chunk with the merged state; the graph grows linearly with the number
  of chunks. For a softmax over the trailing axes (the usual ``axis=-1``) on the numba
  kernels, pass one keeps each chunk's ``exp`` relative to its own max and pass two
  rescales them in place (one read of the data, one ``exp`` per element, one new array
  per chunk); otherwise (log_softmax, other axes, ``implementation="reference"``) pass
  two reads the data again and computes the ``exp`` (or the log) with the final state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any, Literal, overload

import numpy as np

from . import streaming as _st
from ._validation import (
    Scale,
    check_implementation,
    float_input,
    normalize_axis,
    resolve_scale,
    result_float_dtype,
)

__all__ = ["log_softmax", "logsumexp", "softmax", "softmin"]

Array = Any


# --------------------------------------------------------------------------- packing
def _packed_dtype(float_dtype: Any) -> np.dtype:
    f = np.dtype(float_dtype)
    return np.dtype([("m", f), ("n0", f), ("rest", f), ("nan", np.bool_)])


def _pack(state: _st._State) -> np.ndarray:
    packed = np.empty(np.shape(state.m), dtype=_packed_dtype(state.m.dtype))
    for name, value in zip(("m", "n0", "rest", "nan"), state, strict=True):
        packed[name] = value
    return packed


def _unpack(packed: np.ndarray) -> _st._State:
    return _st._State(packed["m"], packed["n0"], packed["rest"], packed["nan"])


# --------------------------------------------------------------------------- block functions
@contextlib.contextmanager
def _one_thread(implementation: str) -> Iterator[None]:
    """Run the numba kernels on one thread in a task: Dask already runs one task per
    thread, and numba's thread count is set per calling thread."""
    if implementation == "reference":
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _block_state(
    x: np.ndarray, *extra: np.ndarray, axes: tuple[int, ...], scale: Scale, has_mask: bool,
    has_b: bool, work_dtype: Any, state_dtype: Any, implementation: str, precise: bool,
) -> np.ndarray:
    mask = extra[0] if has_mask else None
    b = extra[int(has_mask)] if has_b else None
    x = np.asarray(x, dtype=work_dtype)
    with _one_thread(implementation):
        return _pack(_st._block_state(x, axes, scale, mask, b, state_dtype, implementation, precise))


def _merge_blocks(packed: np.ndarray, axis: tuple[int, ...], keepdims: bool, scale: Scale) -> np.ndarray:
    """The combine and aggregate step: merge the states along ``axis`` pairwise."""
    return _pack(_st._merge_along(_unpack(packed), tuple(axis), scale))


def _normalise_block(
    x: np.ndarray, packed: np.ndarray, *extra: np.ndarray, name: str, axes: tuple[int, ...],
    scale: Scale, work_dtype: Any, state_dtype: Any, dtype: Any, implementation: str,
) -> np.ndarray:
    mask = extra[0] if extra else None
    x = np.asarray(x, dtype=work_dtype)
    with _one_thread(implementation):
        res = _st._normalise(name, x, axes, scale, mask, _unpack(packed), state_dtype, implementation)
    return res.astype(dtype, copy=False)


def _whole_block(
    x: np.ndarray, *extra: np.ndarray, name: str, axes: tuple[int, ...], scale: Scale,
    work_dtype: Any, state_dtype: Any, dtype: Any, implementation: str,
) -> np.ndarray:
    """A block that holds whole distributions: normalised on its own, in one task."""
    mask = extra[0] if extra else None
    x = np.asarray(x, dtype=work_dtype)
    with _one_thread(implementation):
        res = _st._softmax_block(name, x, axes, scale, mask, state_dtype, implementation)
    return res.astype(dtype, copy=False)


def _exp_block(
    x: np.ndarray, *extra: np.ndarray, axes: tuple[int, ...], scale: Scale, work_dtype: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pass one of a softmax split over blocks (rows): ``(stored exps, packed state,
    consumed)``, a block of an intermediate array that only :func:`_own_state` and
    :func:`_rescale_block` read; ``consumed`` is a one-element flag (see there)."""
    mask = extra[0] if extra else None
    e, state = _st._stored_rows(np.asarray(x, dtype=work_dtype), axes, scale, mask)
    return e, _pack(state), np.zeros(1, dtype=bool)


def _own_state(triple: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    return triple[1]


def _rescale_block(
    triple: tuple[np.ndarray, np.ndarray, np.ndarray], packed: np.ndarray, *extra: np.ndarray,
    axes: tuple[int, ...], scale: Scale, dtype: Any,
) -> np.ndarray:
    """Pass two of :func:`_exp_block`: the stored exps times each row's factor, in place.

    The exps are a buffer of this graph with this task as their only reader (the state
    was taken out before the merge that this task waits for), so scaling them in place
    saves a fresh output array per block: on a loaded machine faulting in new pages costs
    more than the pass itself. ``consumed`` makes a second run on the same buffer (which
    the schedulers never do: a lost result is recomputed from pass one) fail loudly
    instead of scaling twice.
    """
    e, own, consumed = triple
    in_place = e.flags.writeable and consumed.flags.writeable  # (not if read-only after a transfer)
    if in_place:
        if consumed[0]:
            msg = "softargmax.dask: the stored exps of a block were already rescaled"
            raise RuntimeError(msg)
        consumed[0] = True
    else:
        e = e.copy()
    _st._rescaled_rows(e, axes, _unpack(own), _unpack(packed), scale, extra[0] if extra else None)
    return e.astype(dtype, copy=False)


def _lse_block(packed: np.ndarray, *, scale: Scale, weighted: bool, part: str, dtype: Any) -> np.ndarray:
    lse, sign = _st._state_logsumexp(_unpack(packed), scale, weighted)
    if part == "sign":
        return sign.astype(dtype)
    return np.where(sign < 0, np.nan, lse).astype(dtype) if part == "lse_nan" else lse.astype(dtype)


# --------------------------------------------------------------------------- helpers
def _meta(ndim: int, dtype: Any) -> np.ndarray:
    return np.empty((0,) * ndim, dtype=dtype)


def _dask_input(x: Any, name: str = "x") -> Any:
    import dask.array as da

    x = da.asarray(x)
    if any(np.isnan(c) for chunks in x.chunks for c in chunks):
        msg = f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first"
        raise ValueError(msg)
    return x


def _companion(a: Any, x: Any, name: str, kind: str) -> Any:
    """``where`` or ``b`` as a Dask array of x's shape and chunks."""
    import dask.array as da

    a = _dask_input(a, name)
    if kind == "bool" and a.dtype != np.bool_:
        msg = f"{name} must be a boolean array, got dtype {a.dtype}"
        raise TypeError(msg)
    try:
        target = np.broadcast_shapes(tuple(a.shape), tuple(x.shape))
    except ValueError:
        target = None
    if target != tuple(x.shape):
        msg = f"{name} of shape {tuple(a.shape)} does not broadcast to the input's shape {tuple(x.shape)}"
        raise ValueError(msg)
    return da.broadcast_to(a, x.shape).rechunk(x.chunks)


def _states(
    x: Any, extra: list[Any], axes: tuple[int, ...], scale: Scale, has_mask: bool, has_b: bool,
    work_dtype: Any, state_dtype: Any, split_every: Any, implementation: str, precise: bool,
) -> Any:
    """The merged (max, scaled sum) states: keepdims shape, one chunk along ``axes``.

    ``precise``: sums to float64 accuracy (logsumexp) rather than to the data's own
    (enough for a softmax)."""
    import dask.array as da

    packed = _packed_dtype(state_dtype)
    chunks = tuple((1,) * x.numblocks[i] if i in axes else c for i, c in enumerate(x.chunks))
    per_block = da.map_blocks(
        partial(_block_state, axes=axes, scale=scale, has_mask=has_mask, has_b=has_b,
                work_dtype=work_dtype, state_dtype=state_dtype, implementation=implementation,
                precise=precise),
        x, *extra, chunks=chunks, dtype=packed, meta=_meta(x.ndim, packed),
        token="softargmax-state",
    )
    if not axes:
        return per_block
    merge = partial(_merge_blocks, scale=scale)
    return da.reduction(
        per_block, chunk=merge, combine=merge, aggregate=merge, axis=axes, keepdims=True,
        dtype=packed, split_every=split_every, meta=_meta(x.ndim, packed),
        name="softargmax-merge",
    )


def _split_softmax(
    x: Any, extra: list[Any], axes: tuple[int, ...], scale: Scale, work_dtype: Any, state_dtype: Any,
    dtype: Any, split_every: Any,
) -> Any:
    """softmax with the (trailing) softmax axes split over blocks, one ``exp`` per entry:
    pass one keeps each block's exps relative to its own max along with its state, the
    states are merged up a tree, pass two multiplies each row by its factor. The exps
    stay in worker memory between the passes (as ``exp(x - max)`` does in the plain
    expression); the data is read once."""
    import dask.array as da
    from dask.base import tokenize

    packed = _packed_dtype(state_dtype)
    # Blocks of `pairs` are (exps, state, consumed) tuples; the meta stands for the exps.
    # Pass two scales the exps in place, so the name of this layer covers everything its
    # readers depend on: two graphs that share it are the same graph (Dask merges them).
    first = partial(_exp_block, axes=axes, scale=scale, work_dtype=work_dtype)
    pairs = da.map_blocks(
        first, x, *extra, dtype=work_dtype, meta=_meta(x.ndim, work_dtype),
        name="softargmax-exp-" + tokenize(first, x, *extra, dtype, split_every),
    )
    chunks = tuple((1,) * x.numblocks[i] if i in axes else c for i, c in enumerate(x.chunks))
    own = da.map_blocks(_own_state, pairs, chunks=chunks, dtype=packed, meta=_meta(x.ndim, packed),
                        token="softargmax-state")
    merge = partial(_merge_blocks, scale=scale)
    states = da.reduction(
        own, chunk=merge, combine=merge, aggregate=merge, axis=axes, keepdims=True,
        dtype=packed, split_every=split_every, meta=_meta(x.ndim, packed), name="softargmax-merge",
    )
    fn = partial(_rescale_block, axes=axes, scale=scale, dtype=dtype)
    return da.map_blocks(fn, pairs, states, *extra, dtype=dtype, meta=_meta(x.ndim, dtype),
                         token="softargmax-softmax")


def _distribution(
    name: str,
    x: Array,
    axis: Any,
    scale: Scale,
    where: Any,
    out: Any = None,
    implementation: str = "auto",
    split_every: Any = None,
) -> Array:
    """The Dask path of :func:`softargmax.core.softmax` and relatives (lazy)."""
    import dask.array as da

    if out is not None:
        msg = f"out must be None for Dask arrays (they are immutable), got {type(out).__name__}"
        raise TypeError(msg)
    implementation = check_implementation(implementation)
    x = _dask_input(x)
    _, dtype, work_dtype = float_input(np, _meta(0, x.dtype), "x")
    axes = normalize_axis(axis, x.ndim)
    extra = [] if where is None else [_companion(where, x, "where", "bool")]
    meta = _meta(x.ndim, dtype)
    state_dtype = _st._state_dtype(work_dtype)
    if all(x.numblocks[i] == 1 for i in axes):
        fn = partial(_whole_block, name=name, axes=axes, scale=scale, work_dtype=work_dtype,
                     state_dtype=state_dtype, dtype=dtype, implementation=implementation)
        return da.map_blocks(fn, x, *extra, dtype=dtype, meta=meta, token=f"softargmax-{name}")
    if name == "softmax" and _st._rows_axes(axes, x.ndim) and \
            _st._use_kernel(implementation, work_dtype, state_dtype, False, axes):
        return _split_softmax(x, extra, axes, scale, work_dtype, state_dtype, dtype, split_every)
    states = _states(x, extra, axes, scale, bool(extra), False, work_dtype, state_dtype,
                     split_every, implementation, False)
    fn = partial(_normalise_block, name=name, axes=axes, scale=scale, work_dtype=work_dtype,
                 state_dtype=state_dtype, dtype=dtype, implementation=implementation)
    return da.map_blocks(fn, x, states, *extra, dtype=dtype, meta=meta, token=f"softargmax-{name}")


_PARAMS = """
    Parameters
    ----------
    x : dask.array.Array
        Scores, chunked in any way (the softmax axes may be split across chunks).
    axis : int, tuple of ints or None, default -1
        The axes that form one distribution, as in :func:`softargmax.softmax`.
    temperature, beta, base : float, optional
        The scale, as in :func:`softargmax.softmax`.
    where : array_like of bool, optional
        Entries to include (a Dask or NumPy array broadcastable to ``x``).
    split_every : int or dict, optional
        The fan-in of the tree of merges (``dask.array.reduction``'s parameter).
"""


def softmax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    split_every: int | dict[int, int] | None = None,
) -> Array:
    r"""Softmax of a Dask array, lazily.

    {params}
    Returns
    -------
    dask.array.Array
        Probabilities of ``x``'s shape and chunks; :func:`softargmax.softmax` of the
        computed array, to rounding.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from softargmax.dask import softmax
    >>> x = da.from_array(np.array([[1000.0, 1001.0, 1002.0, 1003.0]]), chunks=(1, 2))
    >>> p = softmax(x)  # nothing is computed yet
    >>> p.compute()
    array([[0.0320586 , 0.08714432, 0.23688282, 0.64391426]])
    """
    scale = resolve_scale(temperature, beta, base)
    return _distribution("softmax", x, axis, scale, where, split_every=split_every)


def log_softmax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    split_every: int | dict[int, int] | None = None,
) -> Array:
    r"""Log-softmax of a Dask array, lazily.

    {params}
    Returns
    -------
    dask.array.Array
        :func:`softargmax.log_softmax` of the computed array, to rounding.

    Examples
    --------
    >>> import dask.array as da
    >>> from softargmax.dask import log_softmax
    >>> x = da.from_array([0.0, -50.0, -60.0, -70.0], chunks=2)
    >>> log_softmax(x).compute()
    array([-1.92883742e-22, -5.00000000e+01, -6.00000000e+01, -7.00000000e+01])
    """
    scale = resolve_scale(temperature, beta, base)
    return _distribution("log_softmax", x, axis, scale, where, split_every=split_every)


def softmin(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    split_every: int | dict[int, int] | None = None,
) -> Array:
    r"""Softmin (``softmax(-x)``) of a Dask array, lazily.

    {params}
    Returns
    -------
    dask.array.Array
        :func:`softargmax.softmin` of the computed array, to rounding.

    Examples
    --------
    >>> import dask.array as da
    >>> from softargmax.dask import softmin
    >>> softmin(da.from_array([1.0, 2.0, 3.0], chunks=1)).compute()
    array([0.66524096, 0.24472847, 0.09003057])
    """
    scale = resolve_scale(temperature, beta, base, negate=True)
    return _distribution("softmax", x, axis, scale, where, split_every=split_every)


def _logsumexp(
    x: Array,
    axis: Any,
    scale: Scale,
    *,
    b: Any = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: Any = None,
    split_every: Any = None,
) -> Array | tuple[Array, Array]:
    import dask.array as da

    x = _dask_input(x)
    _, dtype, work_dtype = float_input(np, _meta(0, x.dtype), "x")
    state_dtype = _st._state_dtype(work_dtype)
    extra = []
    if b is not None:
        b = _dask_input(b, "b")
        _, b_dtype, b_work = float_input(np, _meta(0, b.dtype), "b")
        dtype = result_float_dtype(np, dtype, b_dtype)
        state_dtype = np.result_type(state_dtype, b_work)
        try:
            shape = np.broadcast_shapes(tuple(x.shape), tuple(b.shape))
        except ValueError:
            msg = f"b of shape {tuple(b.shape)} does not broadcast with x of shape {tuple(x.shape)}"
            raise ValueError(msg) from None
        if shape != tuple(x.shape):
            x = da.broadcast_to(x, shape)
        b = da.broadcast_to(b, shape).rechunk(x.chunks)
    axes = normalize_axis(axis, x.ndim)
    if where is not None:
        extra.append(_companion(where, x, "where", "bool"))
    if b is not None:
        extra.append(b)
    states = _states(x, extra, axes, scale, where is not None, b is not None, work_dtype,
                     state_dtype, split_every, "auto", True)
    meta = _meta(x.ndim, dtype)
    weighted = b is not None
    lse = da.map_blocks(
        partial(_lse_block, scale=scale, weighted=weighted, part="lse" if return_sign else "lse_nan",
                dtype=dtype),
        states, dtype=dtype, meta=meta, token="softargmax-logsumexp",
    )
    sign = da.map_blocks(
        partial(_lse_block, scale=scale, weighted=weighted, part="sign", dtype=dtype),
        states, dtype=dtype, meta=meta, token="softargmax-logsumexp-sign",
    ) if return_sign else None
    if not keepdims and axes:
        lse = da.squeeze(lse, axis=axes)
        sign = None if sign is None else da.squeeze(sign, axis=axes)
    return (lse, sign) if return_sign else lse


@overload
def logsumexp(
    x: Array,
    axis: int | tuple[int, ...] | None = ...,
    *,
    b: Array | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    temperature: float | None = ...,
    beta: float | None = ...,
    base: float | None = ...,
    where: Array | None = ...,
    split_every: int | dict[int, int] | None = ...,
) -> Array: ...
@overload
def logsumexp(
    x: Array,
    axis: int | tuple[int, ...] | None = ...,
    *,
    b: Array | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    temperature: float | None = ...,
    beta: float | None = ...,
    base: float | None = ...,
    where: Array | None = ...,
    split_every: int | dict[int, int] | None = ...,
) -> tuple[Array, Array]: ...
def logsumexp(
    x: Array,
    axis: int | tuple[int, ...] | None = None,
    *,
    b: Array | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    split_every: int | dict[int, int] | None = None,
) -> Array | tuple[Array, Array]:
    r"""``log sum b exp(beta x)`` of a Dask array, lazily: a tree of (max, sum) merges.

    Parameters
    ----------
    x : dask.array.Array
        Input, chunked in any way.
    axis : int, tuple of ints or None, default None
        Axes to reduce (all by default).
    b : array_like, optional
        Weights broadcastable with ``x``; a zero weight excludes the entry.
    keepdims, return_sign, temperature, beta, base, where
        As in :func:`softargmax.logsumexp`.
    split_every : int or dict, optional
        The fan-in of the tree of merges.

    Returns
    -------
    lse : dask.array.Array
        :func:`softargmax.logsumexp` of the computed array, to rounding.
    sign : dask.array.Array
        Only with ``return_sign=True``.

    Examples
    --------
    >>> import dask.array as da
    >>> from softargmax.dask import logsumexp
    >>> x = da.full((4, 1000), 1000.0, chunks=(2, 300))
    >>> logsumexp(x, axis=1).compute()
    array([1006.90775528, 1006.90775528, 1006.90775528, 1006.90775528])
    """
    scale = resolve_scale(temperature, beta, base)
    return _logsumexp(x, axis, scale, b=b, keepdims=keepdims, return_sign=return_sign,
                      where=where, split_every=split_every)


for _f in (softmax, log_softmax, softmin):
    _f.__doc__ = (_f.__doc__ or "").replace("{params}", (_PARAMS.strip() + "\n"))
del _f
