r"""Losses trained with softmax: ``cross_entropy``, ``nll_loss``, ``linear_cross_entropy``.

Each function validates its arguments once, then either runs the numba kernels (NumPy
input: one fused pass per row gives the loss and, with ``return_grad=True``, the
gradient) or the array-API reference below (PyTorch, JAX, array-api-strict, ...: the
same array type comes back).

One formula covers every option. For a row of logits ``x`` (the ``C`` classes along
``axis``) with log-sum-exp ``lse`` and target weights ``t_c >= 0``, ``A = sum_c t_c``:

.. math::

    \ell = -\sum_c t_c \log p_c + z\,A\,\mathrm{lse}^2
         = A\,\mathrm{lse} - \sum_c t_c x_c + z\,A\,\mathrm{lse}^2, \qquad
    \partial\ell/\partial x = (A + 2 z A\,\mathrm{lse})\,p - t .

* class indices ``y`` with class weights ``w`` and smoothing ``eps``:
  ``t = w_y ((1 - eps) onehot(y) + eps / C)`` (``A = w_y``); an ignored row has ``t = 0``.
* probabilities ``q``: ``t_c = w_c ((1 - eps) q_c + eps / C)`` (PyTorch's rule).

``reduction="mean"`` divides the summed loss by ``sum_i w_{y_i}`` over the rows that are
not ignored (class indices) or by the number of rows (probabilities), as PyTorch does,
and gives 0 where that denominator is 0. Deliberate differences from
``torch.nn.functional.cross_entropy`` (see ``docs/losses.md``):

=====================================  ==========================  ==========================
case                                   PyTorch                     softargmax
=====================================  ==========================  ==========================
mean over zero valid targets           NaN                         0 (and a zero gradient)
``label_smoothing`` with ``weight``    smoothing term weighted     the target's weight
(class indices)                        per class ``w_c``           ``w_y`` scales the whole
                                                                   smoothed loss
``z_loss``                             (none)                      ``+ z * A * lse**2``
ignored / zero-weight rows             NaN if their logits are     exactly 0 loss and
                                       NaN or ``-inf``             gradient
``q_c = 0`` where ``x_c = -inf``       NaN (``0 * -inf``)          contributes 0
``ignore_index`` default               -100                        ``None`` (no ignoring)
class axis                             1                           ``axis=-1``
=====================================  ==========================  ==========================
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from . import _backend, _reference, core
from ._backend import device_of, get_namespace, is_numpy, register_kernel, select_path, write_into
from ._validation import (
    _classify,
    _dtype_name,
    check_int,
    check_out,
    float_input,
    normalize_axis,
    result_float_dtype,
)

__all__ = ["cross_entropy", "linear_cross_entropy", "nll_loss"]

Array = Any
Reduction = Literal["none", "mean", "sum"]
Implementation = Literal["auto", "reference", "numba"]

_KERNELS = {"cross_entropy": "ce_index", "linear_cross_entropy": "lce_fwd_index"}


def _select(name: str, implementation: Any, xp: Any, size: int) -> Any:
    """``select_path`` for the loss kernels, declared in the registry on first use.

    Declaring them lazily keeps ``import softargmax.losses`` free of side effects on
    code that inspects the registry (the test fixtures ask it whether core kernels
    exist).
    """
    if name not in _backend._KERNELS:
        register_kernel(name, "softargmax._kernels.losses", _KERNELS[name])
    return select_path(name, implementation, xp, size)

_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------- options
def _real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        msg = f"{name} must be a real number, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return float(value)


def _options(label_smoothing: Any, reduction: Any, z_loss: Any) -> tuple[float, str, float]:
    eps = _real(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        msg = f"label_smoothing must be in [0, 1], got {eps!r}"
        raise ValueError(msg)
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        msg = f"reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        raise ValueError(msg)
    zl = _real(z_loss, "z_loss")
    if not (math.isfinite(zl) and zl >= 0):
        msg = f"z_loss must be a finite number >= 0, got {zl!r}"
        raise ValueError(msg)
    return eps, reduction, zl


def _class_axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (numbers.Integral, np.integer)):
        msg = f"axis must be an int (the class axis), got {axis!r}"
        raise TypeError(msg)
    if ndim == 0:
        msg = "logits must have at least one dimension (the classes), got a 0-d array"
        raise ValueError(msg)
    return normalize_axis(operator.index(axis), ndim)[0]


def _ignore(ignore_index: Any) -> int | None:
    if ignore_index is None:
        return None
    return check_int(ignore_index, "ignore_index", None, "an int or None")


# --------------------------------------------------------------------------- targets
@dataclass
class _Targets:
    """Validated targets over ``n`` rows and ``c`` classes (class axis last).

    ``kind`` is ``"index"`` (``y``: integer rows, ignored rows mapped to 0; ``a``: the
    row weight ``w_y``, 0 for ignored rows) or ``"prob"`` (``q``: the ``(n, c)``
    probabilities). ``w`` is the ``(c,)`` class weight or None; ``norm`` the denominator
    of ``reduction="mean"``. ``unit``: every row weighs 1 (class indices, no weight and
    nothing ignored); ``a`` is then a broadcast view of one 1, not an array of ``n``.
    """

    kind: str
    y: Any
    a: Any
    q: Any
    w: Any
    norm: float
    unit: bool = False


def _weights(xp: Any, weight: Any, c: int, dtype: Any) -> Any:
    if weight is None:
        return None
    w, _, _ = float_input(xp, weight, "weight")
    if tuple(w.shape) != (c,):
        msg = f"weight must have shape ({c},) (one weight per class), got {tuple(w.shape)}"
        raise ValueError(msg)
    w = xp.astype(w, dtype)
    if c and not bool(xp.all(xp.isfinite(w))):
        msg = "weight must be finite, got a NaN or infinite entry"
        raise ValueError(msg)
    if c and bool(xp.any(w < 0)):
        msg = f"weight must be >= 0, got a minimum of {float(xp.min(w))!r}"
        raise ValueError(msg)
    return w


def _targets(
    xp: Any,
    target: Any,
    batch: tuple[int, ...],
    c: int,
    class_axis: int,
    weight: Any,
    ignore_index: int | None,
    dtype: Any,
    who: str,
) -> _Targets:
    """Validate ``target`` against ``batch + (c,)`` logits whose class axis is ``class_axis``.

    Except that probability rows are distributions: the callers check that with
    :func:`_check_probabilities`, the kernel paths from the row sums that their kernels
    compute as they read the targets anyway.
    """
    n = math.prod(batch)
    kind = _classify(xp, target.dtype)
    tname = _dtype_name(target.dtype)
    full = (*batch[:class_axis], c, *batch[class_axis:])
    w = _weights(xp, weight, c, dtype)
    if kind == "int" and tname != "bool":
        if tuple(target.shape) != batch:
            msg = f"target of class indices must have shape {batch} (the {who} without the class axis), got {tuple(target.shape)}"
            raise ValueError(msg)
        y = xp.reshape(target, (n,))
        valid = None if ignore_index is None else y != ignore_index
        # without ignore_index two reductions decide (no temporaries of n booleans)
        if n and (valid is not None or bool(xp.min(y) < 0) or bool(xp.max(y) >= c)):
            in_range = (y >= 0) & (y < c)
            bad = ~in_range if valid is None else valid & ~in_range
            if bool(xp.any(bad)):
                first = int(y[bad][0])
                extra = "" if ignore_index is None else f" or ignore_index={ignore_index}"
                msg = f"target must hold class indices in [0, {c}){extra}, got {first}"
                raise ValueError(msg)
        if valid is None and w is None:
            a = xp.broadcast_to(xp.ones((1,), dtype=dtype, device=device_of(y)), (n,))
            return _Targets("index", y, a, None, None, float(n), unit=True)
        if valid is not None:
            y = xp.where(valid, y, xp.zeros_like(y))
        if w is None:  # (then valid is not None: some rows may be ignored)
            ones = xp.ones((n,), dtype=dtype, device=device_of(y))
            a = xp.where(valid, ones, xp.zeros_like(ones))
        else:
            a = xp.take(w, y) if c else xp.zeros((n,), dtype=dtype, device=device_of(y))
            if valid is not None:
                a = xp.where(valid, a, xp.zeros_like(a))
        norm = float(xp.sum(a)) if n else 0.0
        return _Targets("index", y, a, None, w, norm)
    if kind in ("float", "half"):
        if tuple(target.shape) != full:
            msg = (
                f"target of probabilities (floating dtype) must have the {who}' shape {full}, "
                f"got {tuple(target.shape)}; class indices need an integer dtype"
            )
            raise ValueError(msg)
        if ignore_index is not None:
            msg = "ignore_index applies to class-index targets only; got probability targets (a floating target)"
            raise ValueError(msg)
        q = xp.astype(target, dtype, copy=False)  # (only read)
        if class_axis != len(batch):
            q = xp.moveaxis(q, class_axis, -1)
        q = xp.reshape(q, (n, c))
        return _Targets("prob", None, None, q, w, float(n))
    msg = f"target must be integer class indices or floating probabilities, got dtype {tname}"
    raise TypeError(msg)


def _check_probabilities(xp: Any, q: Any, total: Any = None) -> None:
    """Raise unless the rows of ``q`` (``(n, c)``) are finite, ``>= 0`` and sum to 1
    within ``sqrt(eps)`` of their dtype (float32's for narrower ones).

    ``total``: the row sums computed by a kernel, NaN for a row that holds a NaN or
    negative entry; without it, reductions compute them (no temporaries of ``q``'s size:
    the minimum is NaN or negative if an entry is). The sums' rounding (pairwise in
    ``q``'s dtype, or float64 in the kernels) is far inside the tolerance. Valid targets
    cost two reductions of ``total`` here; the rest only runs to word an error.
    """
    n, c = q.shape
    if not n:
        return
    if total is None:
        with np.errstate(over="ignore", invalid="ignore"):
            total = xp.sum(q, axis=-1)
        if c and not bool(xp.min(q) >= 0):
            msg = "target probabilities must be finite and >= 0"
            raise ValueError(msg)
    tol = math.sqrt(float(np.finfo(np.float64 if _dtype_name(q.dtype) == "float64" else np.float32).eps))
    hi, lo = float(xp.max(total)), float(xp.min(total))  # NaN if a row's sum is
    if hi - 1 <= tol and 1 - lo <= tol:
        return
    # A NaN sum comes from a NaN (or, from a kernel, a negative) entry; an infinite one
    # from an infinite entry or from finite entries whose sum overflows.
    if math.isnan(hi) or math.isnan(lo) or not bool(xp.all(xp.isfinite(q))):
        msg = "target probabilities must be finite and >= 0"
        raise ValueError(msg)
    worst = max(hi - 1, 1 - lo)
    msg = f"target probabilities must sum to 1 along the class axis (within {tol:.1e}); a row is off by {worst:.3g}"
    raise ValueError(msg)


def _target_matrix(xp: Any, tg: _Targets, eps: float, c: int, v0: int, v1: int, dtype: Any) -> Any:
    """The target weights ``t`` for the classes ``v0 .. v1`` of every row, ``(n, v1 - v0)``."""
    if tg.kind == "index":
        cls = xp.arange(v0, v1, device=device_of(tg.y))
        onehot = xp.astype(cls[None, :] == tg.y[:, None], dtype)
        a = xp.astype(tg.a, dtype)[:, None]
        if eps == 0:
            return a * onehot
        return a * ((1 - eps) * onehot + eps / c)
    q = xp.astype(tg.q[:, v0:v1], dtype)
    t = q if eps == 0 else (1 - eps) * q + eps / c
    if tg.w is not None:
        t = t * xp.astype(tg.w[v0:v1], dtype)[None, :]
    return t


def _scale(reduction: str, norm: float) -> float:
    if reduction != "mean":
        return 1.0
    return 1.0 / norm if norm > 0 else 0.0


def _reduce(xp: Any, rows: Any, reduction: str, norm: float, batch: tuple[int, ...], dtype: Any) -> Any:
    if reduction == "none":
        res = xp.reshape(rows, batch)
    else:
        total = xp.sum(rows)
        if reduction == "mean":
            total = total / norm if norm > 0 else xp.zeros_like(total)
        res = total
    if res.dtype != dtype:
        with np.errstate(over="ignore"):  # a loss beyond the result dtype's range is inf
            res = xp.astype(res, dtype)
    if is_numpy(xp) and res.ndim == 0:
        return res[()]
    return res


# --------------------------------------------------------------------------- cross_entropy
@dataclass
class _Problem:
    xp: Any
    x: Any  # (n, c) working array, class axis last
    tg: _Targets
    batch: tuple[int, ...]
    axis: int
    dtype: Any  # result dtype
    eps: float
    zl: float
    reduction: str


def _prepare(
    logits: Any,
    target: Any,
    axis: Any,
    weight: Any,
    label_smoothing: Any,
    ignore_index: Any,
    reduction: Any,
    z_loss: Any,
    name: str,
) -> _Problem:
    """Validate the arguments of :func:`cross_entropy` / :func:`nll_loss` (probability
    rows are distributions: checked by the caller, see :func:`_targets`)."""
    eps, reduction, zl = _options(label_smoothing, reduction, z_loss)
    ignore = _ignore(ignore_index)
    xp, (logits, target, weight) = get_namespace(logits, target, weight)
    work, dtype, _ = float_input(xp, logits, name)
    ax = _class_axis(axis, work.ndim)
    c = int(work.shape[ax])
    batch = tuple(int(s) for i, s in enumerate(work.shape) if i != ax)
    tg = _targets(xp, target, batch, c, ax, weight, ignore, work.dtype, name)
    x = work if ax == work.ndim - 1 else xp.moveaxis(work, ax, -1)
    x = xp.reshape(x, (math.prod(batch), c))
    return _Problem(xp, x, tg, batch, ax, dtype, eps, zl, reduction)


def _ce_reference(pb: _Problem, scale: float, want_grad: bool) -> tuple[Any, Any]:
    """Per-row losses and the (scaled) gradient through the array API; the specification."""
    xp = pb.xp
    n, c = pb.x.shape
    with np.errstate(all="ignore"):
        x = _reference._widen(xp, pb.x)
        dt = x.dtype
        t = _target_matrix(xp, pb.tg, pb.eps, c, 0, c, dt)
        big_a = xp.sum(t, axis=-1, keepdims=True)
        active = big_a > 0
        logp = core.log_softmax(x, axis=-1, implementation="reference")
        cross = -xp.sum(xp.where(t != 0, t * logp, xp.zeros_like(t)), axis=-1, keepdims=True)
        loss = cross
        lse = None
        if pb.zl > 0 or want_grad:
            lse = core.logsumexp(x, axis=-1, keepdims=True, implementation="reference")
        if pb.zl > 0:
            loss = loss + pb.zl * big_a * lse * lse
        loss = xp.where(active, loss, xp.zeros_like(loss))[:, 0]
        if not want_grad:
            return loss, None
        p = core.softmax(x, axis=-1, implementation="reference")
        coef = big_a + 2 * pb.zl * big_a * lse if pb.zl > 0 else big_a
        g = xp.where(p != 0, coef * p, xp.zeros_like(p)) - t
        g = xp.where(active, g * scale, xp.zeros_like(g))
        return loss, g


def _ahead(*arrays: np.ndarray) -> bool:
    """Whether the row kernels should prefetch the next row: for inputs larger than the
    last-level cache, read from memory (prefetching rows already in cache cost 10-20 %
    on the development machine), or where the cache's size is unknown."""
    from ._kernels import api

    cache = api.last_level_cache_bytes()
    return cache == 0 or sum(a.nbytes for a in arrays) > cache


def _ce_numba(pb: _Problem, scale: float, want_grad: bool, g: np.ndarray | None = None) -> tuple[Any, Any]:
    """Per-row losses and the (scaled) gradient by the kernels; the gradient goes into
    ``g`` (``(rows, classes)``, C-contiguous, x's dtype) if given."""
    import numba

    from ._kernels import api
    from ._kernels import core as kcore
    from ._kernels import losses as kern

    x = np.ascontiguousarray(pb.x)
    n, c = x.shape
    loss = np.empty(n, dtype=np.float64)
    if g is None:
        g = np.empty_like(x) if want_grad else np.empty((0, 0), dtype=x.dtype)
    if n == 0:
        return loss, g
    nthreads = numba.get_num_threads()
    with api.parallel_slot(x.size >= api.PARALLEL_MIN and nthreads > 1) as parallel:
        ntask = min(n, 8 * nthreads) if parallel else 0
        tg = pb.tg
        if tg.kind == "index":
            y = np.ascontiguousarray(tg.y, dtype=np.int64)
            a = np.empty(0) if tg.unit else np.ascontiguousarray(tg.a, dtype=np.float64)
            eps, zl = pb.eps, pb.zl
            ahead = _ahead(x)
            if c < kcore.SHORT and n > 1:
                rpb = max(1, kcore.SHORT_BLOCK // c)  # rows per transposed block
                if ntask:
                    ntask = min(-(-n // rpb), ntask)
                    kern.ce_short(x, y, a, eps, zl, scale, loss, g, want_grad, rpb, ntask)
                else:
                    kern.ce_short_serial(x, y, a, eps, zl, scale, loss, g, want_grad, rpb)
            elif ntask:
                kern.ce_index(x, y, a, eps, zl, scale, loss, g, want_grad, ahead, ntask)
            else:
                kern.ce_index_serial(x, y, a, eps, zl, scale, loss, g, want_grad, ahead)
        else:
            q = np.ascontiguousarray(tg.q, dtype=x.dtype)
            w = np.empty(0) if tg.w is None else np.ascontiguousarray(tg.w, dtype=np.float64)
            total = np.empty(n)  # q's row sums, for the validation the kernels leave to us
            ahead = _ahead(x, q)
            if c < kcore.SHORT and n > 1:
                rpb = max(1, kcore.SHORT_BLOCK // c)
                if ntask:
                    ntask = min(-(-n // rpb), ntask)
                    kern.ce_prob_short(x, q, w, pb.eps, pb.zl, scale, loss, total, g, want_grad, rpb, ntask)
                else:
                    kern.ce_prob_short_serial(x, q, w, pb.eps, pb.zl, scale, loss, total, g, want_grad, rpb)
            elif ntask:
                kern.ce_prob(x, q, w, pb.eps, pb.zl, scale, loss, total, g, want_grad, ahead, ntask)
            else:
                kern.ce_prob_serial(x, q, w, pb.eps, pb.zl, scale, loss, total, g, want_grad, ahead)
    if tg.kind == "prob":
        _check_probabilities(np, q, total)
    return loss, g


def _weighted_rows(x: np.ndarray, y: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses ``a_i * CE(x_i, y_i)`` and gradients ``a_i (p_i - onehot(y_i))``.

    The kernel path of :func:`cross_entropy` without its per-call validation, for the
    models' objectives, which validate once per fit: ``x`` a float32/float64 NumPy
    array ``(n, c)``, ``y`` int64 class indices in range, ``a`` finite float64 >= 0.
    """
    tg = _Targets("index", y, a, None, None, float(np.sum(a)))
    pb = _Problem(np, x, tg, (x.shape[0],), 1, x.dtype, 0.0, 0.0, "none")
    return _ce_numba(pb, 1.0, True)  # type: ignore[no-any-return]


@overload
def cross_entropy(
    logits: Array,
    target: Array,
    axis: int = ...,
    *,
    weight: Array | None = ...,
    label_smoothing: float = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    z_loss: float = ...,
    return_grad: Literal[False] = ...,
    grad_out: None = ...,
    implementation: Implementation = ...,
) -> Array: ...
@overload
def cross_entropy(
    logits: Array,
    target: Array,
    axis: int = ...,
    *,
    weight: Array | None = ...,
    label_smoothing: float = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    z_loss: float = ...,
    return_grad: Literal[True],
    grad_out: Array | None = ...,
    implementation: Implementation = ...,
) -> tuple[Array, Array]: ...
def cross_entropy(
    logits: Array,
    target: Array,
    axis: int = -1,
    *,
    weight: Array | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    z_loss: float = 0.0,
    return_grad: bool = False,
    grad_out: Array | None = None,
    implementation: Implementation = "auto",
) -> Array | tuple[Array, Array]:
    r"""Cross-entropy of ``softmax(logits)`` against class indices or probabilities.

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, the classes along ``axis``. Integers become the default
        float; float16/bfloat16 are computed in float32 and returned in their dtype.
    target : array_like
        Either integer class indices of ``logits``' shape without ``axis`` (values in
        ``[0, C)`` or ``ignore_index``), or floating probabilities of ``logits``' shape
        (finite, >= 0, summing to 1 along ``axis``).
    axis : int, default -1
        The class axis (PyTorch's is 1).
    weight : array_like, optional
        Class weights, shape ``(C,)``, finite and >= 0.
    label_smoothing : float in [0, 1], default 0
        Mix ``eps`` of the uniform distribution into the target: ``(1 - eps) y + eps / C``.
    ignore_index : int, optional
        Rows whose class index equals it contribute nothing (loss and gradient 0) and do
        not count in the mean. Class-index targets only. PyTorch's default is -100;
        here ``None`` ignores nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"none"`` returns the per-row losses of the target's (batch) shape.
    z_loss : float >= 0, default 0
        Add ``z_loss * A * lse**2`` per row (PaLM's z-loss, which keeps the log
        partition function near 0), ``A`` the row's weight (``w_y`` for class indices).
    return_grad : bool, default False
        Also return the gradient of the (reduced) loss with respect to ``logits``,
        computed in the same pass.
    grad_out : array, optional
        With ``return_grad=True``: an array of ``logits``' shape and the result's dtype
        (of ``logits``' library, sharing no memory with the inputs) that receives the gradient
        and is returned as ``dlogits``. A training loop that passes the same array at
        every step saves allocating (and first touching) a new gradient each time; for
        NumPy float32/float64 logits with the classes on the last axis and a
        C-contiguous ``grad_out`` the kernel writes into it directly (so that if the
        call raises because probability targets are not distributions, checked as the
        kernel reads them, its content is unspecified).
    implementation : {"auto", "reference", "numba"}
        Force a code path (for tests and benchmarks).

    Returns
    -------
    loss : scalar or ndarray
        The reduced loss (a NumPy scalar for NumPy input, a 0-d array otherwise), or
        the per-row losses for ``reduction="none"``; the floating dtype of ``logits``.
    dlogits : ndarray
        Only with ``return_grad=True``: ``logits``' shape,
        ``scale * ((A + 2 z_loss A lse) p - t)`` with ``scale = 1 / sum_i A_i`` for the
        mean (``1 / N`` for probabilities) and 1 for ``"sum"`` and ``"none"`` (each row's
        gradient of its own loss).

    Notes
    -----
    With ``t`` the target weights of a row (``t = w_y ((1 - eps) onehot(y) + eps / C)``
    for class indices, ``t_c = w_c ((1 - eps) q_c + eps / C)`` for probabilities) and
    ``A = sum_c t_c``, the row's loss is ``-sum_c t_c log p_c + z_loss A lse**2``,
    computed as ``A log1p(r) + sum_c t_c (m - x_c)`` (``m`` the row's maximum,
    ``1 + r = sum_c exp(x_c - m)``), so large logits cannot overflow and a confident
    correct prediction keeps full relative accuracy.

    This matches ``torch.nn.functional.cross_entropy`` except, deliberately:

    * the mean over zero valid targets (all ignored, zero weights, an empty batch) is 0,
      with a zero gradient, where PyTorch returns NaN;
    * with ``label_smoothing`` and ``weight`` for class indices the target's weight
      ``w_y`` scales the whole smoothed loss, so the loss is minimised at the smoothed
      target whatever the weights; PyTorch weights the smoothing term per class
      (``sum_c w_c log p_c``), which moves the minimum (pytorch#104776). Without one of
      the two options the results are PyTorch's;
    * ``z_loss`` is an addition;
    * ignored and zero-weight rows contribute exactly 0 even when their logits are NaN
      or ``-inf``, and a zero target probability meets a ``-inf`` logit as 0, not
      ``0 * inf``;
    * targets are validated: indices out of range and probabilities that do not sum to
      1 are a ValueError.

    A NaN logit in a row that counts makes its loss and gradient NaN; ``+inf`` logits
    share the mass (the loss is ``log n`` if the target is among the ``n`` of them and
    smoothing is off, else ``inf``); a target class at ``-inf`` gives an infinite loss
    and a finite gradient.

    References
    ----------
    .. [1] C. Szegedy et al., "Rethinking the Inception Architecture for Computer
       Vision", 2016 (label smoothing).
    .. [2] A. Chowdhery et al., "PaLM: Scaling Language Modeling with Pathways", 2022
       (z-loss).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.losses import cross_entropy
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> float(cross_entropy(logits, [0, 1]))
    0.3185
    >>> loss, grad = cross_entropy(logits, [0, 1], return_grad=True)
    >>> grad
    array([[-0.17049943,  0.12121649,  0.04928295],
           [ 0.05430187, -0.09876047,  0.04445861]])

    The gradient written into an array that a training loop reuses:

    >>> dlogits = np.empty_like(logits)
    >>> _, g = cross_entropy(logits, [0, 1], return_grad=True, grad_out=dlogits)
    >>> g is dlogits and bool(np.all(dlogits == grad))
    True

    Logits of 1000 do not overflow, and a mean over no valid targets is 0, not NaN:

    >>> float(cross_entropy([[1000.0, 0.0]], [1]))
    1000.0
    >>> float(cross_entropy(logits, [-100, -100], ignore_index=-100))
    0.0

    Probability targets, per-row losses:

    >>> cross_entropy(logits, [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]], reduction="none")
    array([0.91703002, 0.22004952])
    """
    pb = _prepare(logits, target, axis, weight, label_smoothing, ignore_index, reduction, z_loss, "logits")
    _check_grad_out(pb, grad_out, bool(return_grad), {"logits": logits, "target": target, "weight": weight})
    scale = _scale(pb.reduction, pb.tg.norm)
    kernel = _select("cross_entropy", implementation, pb.xp, int(math.prod(pb.x.shape)))
    direct = None  # grad_out as the kernels' gradient array, where they can fill it
    if kernel is not None:
        direct = _direct_grad(pb, grad_out)
        rows, g = _ce_numba(pb, scale, bool(return_grad), direct)
    else:
        if pb.tg.kind == "prob":
            _check_probabilities(pb.xp, pb.tg.q)
        rows, g = _ce_reference(pb, scale, bool(return_grad))
    loss = _reduce(pb.xp, rows, pb.reduction, pb.tg.norm, pb.batch, pb.dtype)
    if not return_grad:
        return loss
    return loss, _grad_result(pb, g, grad_out, direct)


def _check_grad_out(pb: _Problem, grad_out: Any, return_grad: bool, inputs: dict[str, Any]) -> None:
    """``grad_out``: only with ``return_grad``; an array of the library, shape and result
    dtype of the logits (the first of ``inputs``, parameter name -> argument) that shares
    no memory with any input: inputs are never written (and the kernels read the logits
    after they write gradient entries)."""
    if grad_out is None:
        return
    name = next(iter(inputs))
    if not return_grad:
        msg = "grad_out needs return_grad=True"
        raise ValueError(msg)
    xp = get_namespace(grad_out)[0] if hasattr(grad_out, "shape") else None
    if xp is not pb.xp:
        msg = f"grad_out must be an array of the same library as {name}, got {type(grad_out).__name__}"
        raise TypeError(msg)
    c = int(pb.x.shape[1])
    shape = (*pb.batch[:pb.axis], c, *pb.batch[pb.axis:])
    check_out(pb.xp, grad_out, shape, pb.dtype, "grad_out")
    for arg, a in inputs.items():
        if isinstance(a, np.ndarray) and isinstance(grad_out, np.ndarray) and np.may_share_memory(grad_out, a):
            msg = f"grad_out must not share memory with {arg}"
            raise ValueError(msg)


def _direct_grad(pb: _Problem, grad_out: Any) -> np.ndarray | None:
    """``grad_out`` as the kernel's ``(rows, classes)`` gradient array, when it can be
    written directly (NumPy, the classes last, C-contiguous, the working dtype)."""
    if (
        isinstance(grad_out, np.ndarray)
        and grad_out.flags.c_contiguous
        and pb.axis == len(pb.batch)
        and grad_out.dtype == pb.x.dtype
    ):
        return grad_out.reshape(pb.x.shape)
    return None


def _grad_result(pb: _Problem, g: Any, grad_out: Any, direct: np.ndarray | None) -> Any:
    """The gradient to return: ``g`` in the logits' layout, or ``grad_out`` (``direct``:
    its view that ``g`` was computed in; otherwise ``g`` is copied into it)."""
    if grad_out is None:
        return _unflatten(pb, g)
    if direct is None:
        write_into(grad_out, _unflatten(pb, g), "grad_out")
    return grad_out


def _unflatten(pb: _Problem, g: Any) -> Any:
    xp = pb.xp
    c = int(pb.x.shape[1])
    g = xp.reshape(g, (*pb.batch, c))
    if pb.axis != len(pb.batch):
        g = xp.moveaxis(g, -1, pb.axis)
    return xp.astype(g, pb.dtype) if g.dtype != pb.dtype else g


# --------------------------------------------------------------------------- nll_loss
@overload
def nll_loss(
    log_probs: Array,
    target: Array,
    axis: int = ...,
    *,
    weight: Array | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    return_grad: Literal[False] = ...,
    grad_out: None = ...,
) -> Array: ...
@overload
def nll_loss(
    log_probs: Array,
    target: Array,
    axis: int = ...,
    *,
    weight: Array | None = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    return_grad: Literal[True],
    grad_out: Array | None = ...,
) -> tuple[Array, Array]: ...
def nll_loss(
    log_probs: Array,
    target: Array,
    axis: int = -1,
    *,
    weight: Array | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    return_grad: bool = False,
    grad_out: Array | None = None,
) -> Array | tuple[Array, Array]:
    r"""Negative log-likelihood ``-w_y * log_probs[y]`` of class indices.

    ``cross_entropy(x, y)`` is ``nll_loss(log_softmax(x), y)``; use this one when the
    log-probabilities are already at hand.

    Parameters
    ----------
    log_probs : array_like
        Log-probabilities (any real values are accepted, as in PyTorch), the classes
        along ``axis``.
    target : array_like of int
        Class indices of ``log_probs``' shape without ``axis``.
    axis, weight, ignore_index, reduction
        As in :func:`cross_entropy`.
    return_grad : bool, default False
        Also return the gradient with respect to ``log_probs``: ``-scale * w_y`` at the
        target, 0 elsewhere.
    grad_out : array, optional
        With ``return_grad=True``: an array that receives the gradient and is returned,
        as in :func:`cross_entropy`.

    Returns
    -------
    loss : scalar or ndarray
        As in :func:`cross_entropy`.
    dlog_probs : ndarray
        Only with ``return_grad=True``.

    Notes
    -----
    The weighted mean divides by ``sum_i w_{y_i}`` over the rows that are not ignored
    and is 0 when that sum is 0 (PyTorch gives NaN). Ignored and zero-weight rows
    contribute exactly 0 even when their entry is ``-inf`` or NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.losses import nll_loss
    >>> logp = np.log([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    >>> nll_loss(logp, [0, 1], reduction="none")
    array([0.35667494, 0.22314355])
    >>> loss, grad = nll_loss(logp, [0, 1], weight=[1.0, 3.0, 1.0], return_grad=True)
    >>> float(loss)
    0.2565
    >>> grad
    array([[-0.25,  0.  ,  0.  ],
           [ 0.  , -0.75,  0.  ]])
    """
    pb = _prepare(log_probs, target, axis, weight, 0.0, ignore_index, reduction, 0.0, "log_probs")
    if pb.tg.kind != "index":
        msg = "target of nll_loss must hold integer class indices; for probability targets use cross_entropy"
        raise TypeError(msg)
    _check_grad_out(pb, grad_out, bool(return_grad), {"log_probs": log_probs, "target": target, "weight": weight})
    xp, tg = pb.xp, pb.tg
    n, c = pb.x.shape
    scale = _scale(pb.reduction, tg.norm)
    with np.errstate(all="ignore"):
        a = xp.astype(tg.a, pb.x.dtype)
        if n and c:
            picked = xp.take_along_axis(pb.x, xp.reshape(tg.y, (n, 1)), axis=-1)[:, 0]
        else:
            picked = xp.zeros((n,), dtype=pb.x.dtype, device=device_of(pb.x))
        rows = xp.where(a > 0, -a * picked, xp.zeros_like(a))
        loss = _reduce(xp, rows, pb.reduction, tg.norm, pb.batch, pb.dtype)
        if not return_grad:
            return loss
        direct = _direct_grad(pb, grad_out)
        if is_numpy(xp):  # zeros and one entry a row, without (n, c) temporaries
            if direct is None:
                g = np.zeros(pb.x.shape, pb.x.dtype)
            else:
                g = direct
                g.fill(0)
            r = np.flatnonzero(a > 0)
            g[r, tg.y[r]] = 0 - a[r] * scale
        else:
            t = _target_matrix(xp, tg, 0.0, c, 0, c, pb.x.dtype)
            g = xp.zeros_like(t) - t * scale
        return loss, _grad_result(pb, g, grad_out, direct)


# --------------------------------------------------------------------------- linear
def _default_chunk(v: int) -> int:
    """About ``V / 64`` classes shared by the threads of the NumPy path (so that their
    chunk buffers hold ``N V / 64`` logits in all), at least 256 (efficient products)."""
    from ._threads import default_threads

    return max(1, min(v, max(256, -(-v // (64 * default_threads())))))


def _chunk(chunk_size: Any, v: int) -> int:
    if chunk_size is None:
        return _default_chunk(v)
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(
        chunk_size, (numbers.Integral, np.integer)
    ):
        msg = f"chunk_size must be a positive int or None, got {chunk_size!r}"
        raise TypeError(msg)
    if chunk_size < 1:
        msg = f"chunk_size must be a positive int or None, got {chunk_size!r}"
        raise ValueError(msg)
    return int(min(chunk_size, max(v, 1)))


@dataclass
class _Linear:
    xp: Any
    h: Any  # (n, d)
    w_mat: Any  # (v, d)
    bias: Any  # (v,) or None
    tg: _Targets
    batch: tuple[int, ...]
    dtypes: tuple[Any, Any, Any]  # result dtypes of hidden, W, bias
    dtype: Any  # the loss dtype
    eps: float
    zl: float
    reduction: str
    chunk: int


def _prepare_linear(
    hidden: Any,
    w_mat: Any,
    target: Any,
    bias: Any,
    chunk_size: Any,
    weight: Any,
    label_smoothing: Any,
    ignore_index: Any,
    reduction: Any,
    z_loss: Any,
) -> _Linear:
    eps, reduction, zl = _options(label_smoothing, reduction, z_loss)
    ignore = _ignore(ignore_index)
    xp, (hidden, w_mat, target, bias, weight) = get_namespace(hidden, w_mat, target, bias, weight)
    h, h_dt, h_work = float_input(xp, hidden, "hidden")
    wm, w_dt, w_work = float_input(xp, w_mat, "W")
    if h.ndim < 1:
        msg = "hidden must have at least one dimension (the features), got a 0-d array"
        raise ValueError(msg)
    if wm.ndim != 2:
        msg = f"W must be 2-D (classes, features), got shape {tuple(wm.shape)}"
        raise ValueError(msg)
    v, d = (int(s) for s in wm.shape)
    if int(h.shape[-1]) != d:
        msg = f"hidden's last axis ({int(h.shape[-1])}) must match W's features ({d}); W has shape {tuple(wm.shape)}"
        raise ValueError(msg)
    dtypes = [h_work, w_work]
    b_dt = None
    if bias is not None:
        b, b_dt, b_work = float_input(xp, bias, "bias")
        if tuple(b.shape) != (v,):
            msg = f"bias must have shape ({v},) (one per class), got {tuple(b.shape)}"
            raise ValueError(msg)
        dtypes.append(b_work)
    work = result_float_dtype(xp, *dtypes)
    dtype = result_float_dtype(xp, h_dt, w_dt, *(() if b_dt is None else (b_dt,)))
    h = xp.astype(h, work) if h.dtype != work else h
    wm = xp.astype(wm, work) if wm.dtype != work else wm
    b = None if bias is None else (xp.astype(b, work) if b.dtype != work else b)
    batch = tuple(int(s) for s in h.shape[:-1])
    n = math.prod(batch)
    tg = _targets(xp, target, batch, v, len(batch), weight, ignore, work, "hidden")
    h = xp.reshape(h, (n, d))
    return _Linear(xp, h, wm, b, tg, batch, (h_dt, w_dt, b_dt), dtype, eps, zl, reduction, _chunk(chunk_size, v))


def _row_losses(xp: Any, lp: _Linear, m: Any, log_s: Any, big_a: Any, cross: Any) -> tuple[Any, Any]:
    """``(loss, lse)`` per row from the merged state; ``cross = A m - sum_c t_c x_c``."""
    lse = m + log_s
    loss = big_a * log_s + cross
    if lp.zl > 0:
        loss = loss + lp.zl * big_a * lse * lse
    return xp.where(big_a > 0, loss, xp.zeros_like(loss)), lse


def _lce_reference(lp: _Linear, scale: float, want_grad: bool) -> tuple[Any, ...]:
    xp = lp.xp
    n, d = lp.h.shape
    v = int(lp.w_mat.shape[0])
    dt = lp.h.dtype
    dev = device_of(lp.h)
    bounds = [(v0, min(v, v0 + lp.chunk)) for v0 in range(0, v, lp.chunk)]

    def logits(v0: int, v1: int) -> Any:
        z = xp.matmul(lp.h, xp.permute_dims(lp.w_mat[v0:v1, :], (1, 0)))
        return z if lp.bias is None else z + lp.bias[v0:v1]

    with np.errstate(all="ignore"):
        # The state of a row: its running max m and r with sum exp(x - m) = 1 + r, so
        # that log1p(r) keeps full relative accuracy next to a dominant maximum.
        m = xp.full((n, 1), -math.inf, dtype=dt, device=dev)
        r = xp.zeros((n, 1), dtype=dt, device=dev)
        big_a = xp.zeros((n, 1), dtype=dt, device=dev)
        tx = xp.zeros((n, 1), dtype=dt, device=dev)
        for v0, v1 in bounds:
            z = logits(v0, v1)
            t = _target_matrix(xp, lp.tg, lp.eps, v, v0, v1, dt)
            cm = xp.max(z, axis=1, keepdims=True)
            at_max = z == cm
            n_max = xp.sum(xp.astype(at_max, dt), axis=1, keepdims=True)
            # the chunk's own 1 + r, relative to its max cm (one maximal entry is the 1)
            rc = (n_max - 1) + xp.sum(xp.where(at_max, xp.zeros_like(z), xp.exp(z - cm)), axis=1, keepdims=True)
            new_max = cm > m
            # a chunk of nothing but -inf (excluded classes) adds no mass
            old_max = xp.where(cm == -math.inf, r, r + (rc + 1) * xp.exp(cm - m))
            r = xp.where(new_max, (r + 1) * xp.exp(m - cm) + rc, old_max)
            m = xp.where(new_max, cm, m)
            big_a = big_a + xp.sum(t, axis=1, keepdims=True)
            tx = tx + xp.sum(xp.where(t != 0, t * z, xp.zeros_like(z)), axis=1, keepdims=True)
        log_s = xp.log1p(r)
        loss, lse = _row_losses(xp, lp, m, log_s, big_a, big_a * m - tx)
        loss = loss[:, 0]
        if not want_grad:
            return (loss,)
        coef = big_a + 2 * lp.zl * big_a * lse if lp.zl > 0 else big_a
        active = big_a > 0
        dh = xp.zeros((n, d), dtype=dt, device=dev)
        dws, dbs = [], []
        for v0, v1 in bounds:
            z = logits(v0, v1)
            t = _target_matrix(xp, lp.tg, lp.eps, v, v0, v1, dt)
            g = (coef * xp.exp(z - lse) - t) * scale
            g = xp.where(active, g, xp.zeros_like(g))
            dh = dh + xp.matmul(g, lp.w_mat[v0:v1, :])
            dws.append(xp.matmul(xp.permute_dims(g, (1, 0)), lp.h))
            dbs.append(xp.sum(g, axis=0))
        dw = xp.concat(dws, axis=0) if dws else xp.zeros((0, d), dtype=dt, device=dev)
        db = xp.concat(dbs, axis=0) if dbs else xp.zeros((0,), dtype=dt, device=dev)
        return loss, dh, dw, db


def _merge_states(ms: list[np.ndarray], rs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-worker online log-sum-exp states ``sum exp(x - m_w) = 1 + r_w`` into one.

    The workers holding the row's maximum contribute ``r_w`` and ``1`` each, the others
    ``(1 + r_w) exp(m_w - m)``, so that ``r`` keeps its relative accuracy; a row no worker
    saw any mass for keeps ``m = -inf``, ``r = 0``.
    """
    m = np.maximum.reduce(ms)
    r = np.zeros(m.shape)
    n_top = np.zeros(m.shape)
    with np.errstate(all="ignore"):
        for mw, rw in zip(ms, rs, strict=True):
            top = mw == m
            n_top += top
            r += np.where(top, rw, (1.0 + rw) * np.exp(mw.astype(np.float64) - m))
        r += n_top - 1.0
    r[m == -np.inf] = 0.0
    return m, r


def _lce_numba(lp: _Linear, scale: float, want_grad: bool) -> tuple[Any, ...]:
    """The NumPy path: vocabulary chunks dealt round-robin to a pool of threads, each
    with its own chunk buffer and one-thread BLAS, its logits folded by serial numba
    kernels (see :mod:`softargmax._threads`); the per-thread states are merged."""
    import numba

    from ._kernels import losses as kern
    from ._threads import default_threads, run_tasks

    h = np.ascontiguousarray(lp.h)
    w_mat = np.ascontiguousarray(lp.w_mat)
    n, d = h.shape
    v = w_mat.shape[0]
    dt = h.dtype
    bias = np.empty(0, dtype=dt) if lp.bias is None else np.ascontiguousarray(lp.bias)
    tg = lp.tg
    eps = lp.eps
    bounds = [(v0, min(v, v0 + lp.chunk)) for v0 in range(0, v, lp.chunk)]
    threads = min(numba.get_num_threads(), default_threads(), len(bounds))
    groups = [bounds[t::threads] for t in range(threads)]

    def logits(state: dict[str, Any], v0: int, v1: int) -> tuple[np.ndarray, np.ndarray]:
        buf = state.get("z")
        if buf is None:
            buf = state["z"] = np.empty(n * min(lp.chunk, v), dtype=dt)
        z = buf[: n * (v1 - v0)].reshape(n, v1 - v0)
        np.matmul(h, w_mat[v0:v1].T, out=z)
        return z, bias[v0:v1] if bias.size else bias

    if tg.kind == "index":
        y = np.ascontiguousarray(tg.y, dtype=np.int64)
        big_a = np.ascontiguousarray(tg.a, dtype=np.float64)
        xy = np.zeros(n)  # each row's target lies in one chunk: one worker writes it

        def forward(group: list[tuple[int, int]], state: dict[str, Any]) -> tuple[np.ndarray, ...]:
            m, r, sx = np.full(n, -np.inf, dtype=dt), np.zeros(n), np.zeros(n)
            for v0, v1 in group:
                z, b = logits(state, v0, v1)
                kern.lce_fwd_index(z, b, v0, y, big_a, eps, m, r, xy, sx)
            return m, r, sx

        parts = run_tasks(groups, forward, threads)
        m, r = _merge_states([p[0] for p in parts], [p[1] for p in parts])
        with np.errstate(all="ignore"):
            cross = np.zeros(n)
            if eps < 1:
                cross += (1 - eps) * (m - xy)
            if eps > 0:
                cross += eps * (m - sum(p[2] for p in parts) / v)
            cross *= big_a
    else:
        q = np.ascontiguousarray(tg.q, dtype=dt)
        w = np.empty(0) if tg.w is None else np.ascontiguousarray(tg.w, dtype=np.float64)

        def forward_prob(group: list[tuple[int, int]], state: dict[str, Any]) -> tuple[np.ndarray, ...]:
            m, r, a, tx, qs = np.full(n, -np.inf, dtype=dt), np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
            for v0, v1 in group:
                z, b = logits(state, v0, v1)
                kern.lce_fwd_prob(z, b, v0, q, w, eps, v, m, r, a, tx, qs)
            return m, r, a, tx, qs

        parts = run_tasks(groups, forward_prob, threads)
        total = np.zeros(n)  # q's row sums (NaN for bad entries), before any backward work
        for p in parts:
            total += p[4]
        _check_probabilities(np, q, total)
        m, r = _merge_states([p[0] for p in parts], [p[1] for p in parts])
        big_a = sum(p[2] for p in parts)
        with np.errstate(all="ignore"):
            cross = big_a * m - sum(p[3] for p in parts)
    with np.errstate(all="ignore"):
        log_s = np.log1p(r)
        loss, lse = _row_losses(np, lp, m, log_s, big_a, cross)
    if not want_grad:
        return (loss,)
    with np.errstate(all="ignore"):
        k = scale * (big_a + 2 * lp.zl * big_a * lse if lp.zl > 0 else big_a)
        s = 1.0 + r
    dw = np.empty((v, d), dtype=dt)
    db = np.empty(v, dtype=dt)

    rb = 256  # rows per block of the dhidden product (a small temporary)

    def backward(group: list[tuple[int, int]], state: dict[str, Any]) -> np.ndarray:
        dh = np.zeros((n, d), dtype=dt)
        tmp = np.empty((min(rb, n), d), dtype=dt)
        for v0, v1 in group:
            z, b = logits(state, v0, v1)
            if tg.kind == "index":
                kern.lce_bwd_index(z, b, v0, y, big_a, eps, v, m, s, k, scale)
            else:
                kern.lce_bwd_prob(z, b, v0, q, w, eps, v, big_a, m, s, k, scale)
            np.matmul(z.T, h, out=dw[v0:v1])
            for r0 in range(0, n, rb):
                r1 = min(n, r0 + rb)
                np.matmul(z[r0:r1], w_mat[v0:v1], out=tmp[: r1 - r0])
                dh[r0:r1] += tmp[: r1 - r0]
            np.sum(z, axis=0, out=db[v0:v1])
        return dh

    dhs = run_tasks(groups, backward, threads)
    dh = dhs[0]
    for part in dhs[1:]:
        dh += part
    return loss, dh, dw, db


@overload
def linear_cross_entropy(
    hidden: Array,
    W: Array,
    target: Array,
    *,
    bias: Array | None = ...,
    chunk_size: int | None = ...,
    weight: Array | None = ...,
    label_smoothing: float = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    z_loss: float = ...,
    return_grad: Literal[False] = ...,
    implementation: Implementation = ...,
) -> Array: ...
@overload
def linear_cross_entropy(
    hidden: Array,
    W: Array,
    target: Array,
    *,
    bias: Array | None = ...,
    chunk_size: int | None = ...,
    weight: Array | None = ...,
    label_smoothing: float = ...,
    ignore_index: int | None = ...,
    reduction: Reduction = ...,
    z_loss: float = ...,
    return_grad: Literal[True],
    implementation: Implementation = ...,
) -> tuple[Array, Array, Array, Array | None]: ...
def linear_cross_entropy(
    hidden: Array,
    W: Array,  # noqa: N803 (the conventional name of the weight matrix)
    target: Array,
    *,
    bias: Array | None = None,
    chunk_size: int | None = None,
    weight: Array | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    z_loss: float = 0.0,
    return_grad: bool = False,
    implementation: Implementation = "auto",
) -> Array | tuple[Array, Array, Array, Array | None]:
    r"""Cross-entropy of the logits ``hidden @ W.T + bias`` without ever forming them.

    The ``(N, V)`` logits of a large output layer (a language model's vocabulary) are
    computed ``chunk_size`` classes at a time, each chunk folded into a per-row online
    log-sum-exp and dropped; the backward recomputes each chunk and turns it into its
    gradient in place, so memory beyond the inputs and outputs is one ``(N, chunk_size)``
    block and one ``(N, d)`` block.

    Parameters
    ----------
    hidden : array_like, shape (..., d)
        Features; the leading axes are the batch (``N`` rows in all).
    W : array_like, shape (V, d)
        The output layer's weight (PyTorch's ``nn.Linear`` layout).
    target : array_like
        Class indices of shape ``hidden.shape[:-1]``, or probabilities of shape
        ``hidden.shape[:-1] + (V,)``.
    bias : array_like, shape (V,), optional
        The output layer's bias.
    chunk_size : int, optional
        Classes per chunk; by default about ``V / 64`` divided by the number of cores
        (each thread of the NumPy path holds one chunk), at least 256. Any value works:
        the last chunk may be shorter, and a value above ``V`` means one chunk.
    weight, label_smoothing, ignore_index, reduction, z_loss
        As in :func:`cross_entropy`, with the classes on the last axis of the logits.
    return_grad : bool, default False
        Also return the gradients with respect to ``hidden``, ``W`` and ``bias``.
    implementation : {"auto", "reference", "numba"}
        Force a code path: ``"numba"`` (NumPy input) uses BLAS for the chunk products
        and fused numba kernels for the rest; ``"reference"`` is the array-API loop.

    Returns
    -------
    loss : scalar or ndarray
        As in :func:`cross_entropy` (``reduction="none"``: shape ``hidden.shape[:-1]``).
    dhidden, dW, dbias : ndarray
        Only with ``return_grad=True``, each in the dtype of its input; ``dbias`` is
        ``None`` when ``bias`` is None.

    Notes
    -----
    The result equals ``cross_entropy(hidden @ W.T + bias, target, ...)`` to rounding
    (same options, same deliberate differences from PyTorch). The forward costs one
    matrix product per chunk, the forward and backward four (the chunk logits are
    recomputed rather than stored; a materialised computation needs three but holds
    the ``(N, V)`` logits). A logit that overflows to infinity, or a NaN in ``hidden``,
    ``W`` or ``bias``, makes its row's loss NaN.

    ``torch.nn.functional.linear_cross_entropy`` (PyTorch 2.13) computes the same loss,
    chunking the batch rather than the vocabulary; this function also runs on NumPy
    and gives the gradients without autograd.

    References
    ----------
    .. [1] E. Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
       2024 (Cut Cross-Entropy).
    .. [2] M. Milakov and N. Gimelshein, "Online normalizer calculation for softmax",
       2018.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.losses import cross_entropy, linear_cross_entropy
    >>> rng = np.random.default_rng(0)
    >>> h, W = rng.standard_normal((4, 8)), rng.standard_normal((100, 8))
    >>> y = np.array([3, 14, 15, 92])
    >>> loss = linear_cross_entropy(h, W, y, chunk_size=32)
    >>> bool(np.isclose(loss, cross_entropy(h @ W.T, y)))
    True
    >>> loss, dh, dW, db = linear_cross_entropy(h, W, y, return_grad=True)
    >>> dh.shape, dW.shape, db is None
    ((4, 8), (100, 8), True)
    """
    lp = _prepare_linear(hidden, W, target, bias, chunk_size, weight, label_smoothing, ignore_index, reduction, z_loss)
    xp = lp.xp
    scale = _scale(lp.reduction, lp.tg.norm)
    n, d = lp.h.shape
    v = int(lp.w_mat.shape[0])
    kernel = _select("linear_cross_entropy", implementation, xp, n * v)
    if kernel is not None:
        res = _lce_numba(lp, scale, bool(return_grad))
    else:
        if lp.tg.kind == "prob":
            _check_probabilities(xp, lp.tg.q)
        res = _lce_reference(lp, scale, bool(return_grad))
    loss = _reduce(xp, res[0], lp.reduction, lp.tg.norm, lp.batch, lp.dtype)
    if not return_grad:
        return loss
    h_dt, w_dt, b_dt = lp.dtypes
    dh = xp.reshape(res[1], (*lp.batch, d))
    dh = xp.astype(dh, h_dt) if dh.dtype != h_dt else dh
    dw = xp.astype(res[2], w_dt) if res[2].dtype != w_dt else res[2]
    db = None
    if b_dt is not None:
        db = xp.astype(res[3], b_dt) if res[3].dtype != b_dt else res[3]
    return loss, dh, dw, db
