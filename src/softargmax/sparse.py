r"""Sparse alternatives to softmax: sparsemax, 1.5-entmax and alpha-entmax, with their losses.

alpha-entmax maps scores ``x`` to the probability vector

.. math:: p = \operatorname{argmax}_{p \in \Delta} \; \langle p, x \rangle + H^T_\alpha(p),
   \qquad H^T_\alpha(p) = \frac{1}{\alpha(\alpha - 1)} \sum_j (p_j - p_j^\alpha),

whose solution is ``p_i = [(alpha - 1) x_i - tau]_+ ** (1 / (alpha - 1))`` with the threshold
``tau`` chosen so that ``sum(p) = 1``. ``alpha = 2`` is sparsemax (the Euclidean projection
onto the simplex, Martins & Astudillo 2016), ``alpha -> 1`` tends to softmax, and every
``alpha > 1`` gives exact zeros. :func:`sparsemax` and :func:`entmax15` find ``tau`` exactly;
:func:`entmax_bisect` by bisection for any ``alpha > 1``.

Three tiers, as in :mod:`softargmax.core`: the public functions validate (``_validation``) and
pick a path; NumPy input goes to the numba kernels of ``softargmax._kernels.sparse`` (a
partial top-k selection, parallel over rows), every other array library to the array-API
reference below (a full sort), which is the specification the kernels are tested against.

The edge semantics are those of :func:`softargmax.softmax`:

======================  ==================================================================
input                   result
======================  ==================================================================
``where=False`` entry   probability exactly 0, ignored (even if NaN), 0 even in a NaN row
``x = -inf``            the same as excluded
all entries excluded    zeros (never NaN)
``x = +inf`` entries    they share the mass equally, the rest get 0 (the limit)
a NaN                   the whole distribution (only that one) is NaN, but for excluded entries
integers, bools         computed and returned in the default float (float64 for NumPy)
float16, bfloat16       computed in float32 (float64 inside), returned in their own dtype
======================  ==================================================================

The maps are shift invariant (``x`` is shifted by its maximum first, so no finite input
overflows) but, unlike softmax, not scale invariant in any useful sense: multiplying ``x``
by a temperature changes how sparse ``p`` is. There is no ``temperature`` keyword; scale
``x`` yourself.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np

from ._backend import device_of, get_namespace, register_kernel, select_path
from ._reference import _reduce, _size, _widen
from ._validation import (
    _real_scalar,
    check_int,
    check_where,
    float_input,
    normalize_axis,
)
from .core import _finish, _prepare
from .grad import _done, _pair

__all__ = [
    "entmax15",
    "entmax15_jvp",
    "entmax15_loss",
    "entmax15_vjp",
    "entmax_bisect",
    "entmax_bisect_jvp",
    "entmax_bisect_loss",
    "entmax_bisect_vjp",
    "sparsemax",
    "sparsemax_jvp",
    "sparsemax_loss",
    "sparsemax_vjp",
]

Array = Any
Implementation = Literal["auto", "reference", "numba"]

_KERNEL_MODULE = "softargmax._kernels.sparse"
for _name in ("sparsemax", "entmax15", "entmax_bisect"):
    register_kernel(_name, _KERNEL_MODULE, "forward")
register_kernel("entmax_vjp", _KERNEL_MODULE, "vjp")

#: alpha of the exact maps (sparsemax is 2-entmax).
_ALPHA = {"sparsemax": 2.0, "entmax15": 1.5}


# --------------------------------------------------------------------------- validation
def _check_alpha(alpha: Any) -> float:
    a = _real_scalar(alpha, "alpha")
    if not (math.isfinite(a) and a > 1.0):
        msg = (
            f"alpha must be a finite number > 1 (alpha = 2 is sparsemax; alpha -> 1 tends to "
            f"softmax, use softargmax.softmax for it), got {a!r}"
        )
        raise ValueError(msg)
    return a


# --------------------------------------------------------------------------- rows
def _as_rows(xp: Any, a: Any, axes: tuple[int, ...]) -> tuple[Any, tuple[Any, ...]]:
    """``a`` with the distribution ``axes`` moved last and flattened: ``(rows, K)``."""
    nd = a.ndim
    rest = [i for i in range(nd) if i not in axes]
    perm = (*rest, *axes)
    t = a if perm == tuple(range(nd)) else xp.permute_dims(a, perm)
    shape = tuple(int(s) for s in t.shape)
    k = math.prod(shape[len(rest):])
    b = math.prod(shape[: len(rest)])
    return xp.reshape(t, (b, k)), (perm, shape)


def _from_rows(xp: Any, r: Any, info: tuple[Any, ...]) -> Any:
    perm, shape = info
    t = xp.reshape(r, shape)
    if perm == tuple(range(len(perm))):
        return t
    return xp.permute_dims(t, tuple(int(i) for i in np.argsort(perm)))


# --------------------------------------------------------------------------- reference
def _reference_rows(xp: Any, x: Any, mask: Any, name: str, alpha: float, n_iter: int) -> Any:
    """The map ``name`` of each row of ``x`` (rows, K): the array-API specification.

    Sort-based thresholds (Martins & Astudillo 2016, Alg. 1; Peters et al. 2019, Alg. 2) on
    the candidates ``X = c (x - max) > -1`` (``c = alpha - 1``); no entry with ``X <= -1``
    can be in the support, since ``tau >= -1``. Bisection for general ``alpha``.
    """
    dev = device_of(x)
    k_len = int(x.shape[-1])
    ninf = xp.full_like(x, -math.inf)
    zero = xp.zeros_like(x)
    y = x if mask is None else xp.where(mask, x, ninf)
    nan = xp.isnan(y)
    nan_row = xp.any(nan, axis=-1, keepdims=True)
    y = xp.where(nan, ninf, y)
    m = xp.max(y, axis=-1, keepdims=True)
    inf_row = m == math.inf
    empty_row = m == -math.inf
    at_inf = y == math.inf
    n_inf = xp.sum(xp.astype(at_inf, x.dtype), axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    # +inf rows: keep the arithmetic finite; their result is set below.
    y = xp.where(inf_row, xp.where(at_inf, zero, ninf), y)
    c = alpha - 1.0 if name == "entmax_bisect" else _ALPHA[name] - 1.0
    big_x = (y - m) * c if c != 1.0 else y - m
    cand = big_x > -1.0
    if name == "entmax_bisect":
        inv = 1.0 / (alpha - 1.0)
        n_c = xp.sum(xp.astype(cand, x.dtype), axis=-1, keepdims=True)
        lo = xp.full_like(m, -1.0)
        dm = -((1.0 / xp.where(n_c > 0, n_c, xp.ones_like(n_c))) ** (alpha - 1.0)) - lo
        for _ in range(n_iter):
            dm = dm / 2
            tm = lo + dm
            u = big_x - tm
            f = xp.sum(xp.where(u > 0, u, zero) ** inv, axis=-1, keepdims=True)
            lo = xp.where(f >= 1.0, tm, lo)
        u = big_x - lo
        p = xp.where(u > 0, u, zero) ** inv
        s = xp.sum(p, axis=-1, keepdims=True)
        p = p / xp.where(s > 0, s, xp.ones_like(s))
    else:
        xs = xp.sort(xp.where(cand, big_x, ninf), axis=-1, descending=True)
        ok = xs > -1.0
        xs0 = xp.where(ok, xs, zero)
        rho = xp.arange(1, k_len + 1, dtype=x.dtype, device=dev)
        s1 = xp.cumulative_sum(xs0, axis=-1)
        if name == "sparsemax":
            tau_k = (s1 - 1.0) / rho
            cond = ok & (tau_k < xs)
        else:
            s2 = xp.cumulative_sum(xs0 * xs0, axis=-1)
            mean = s1 / rho
            delta = (1.0 - (s2 - s1 * mean)) / rho
            tau_k = mean - xp.sqrt(xp.where(delta > 0, delta, zero))
            cond = ok & (tau_k <= xs)
        k_star = xp.sum(xp.astype(cond, x.dtype), axis=-1, keepdims=True)
        tau = xp.sum(xp.where(rho == k_star, tau_k, zero), axis=-1, keepdims=True)
        u = big_x - tau
        u = xp.where(u > 0, u, zero)
        p = u if name == "sparsemax" else u * u
    safe_n = xp.where(n_inf > 0, n_inf, xp.ones_like(n_inf))
    p = xp.where(inf_row, xp.astype(at_inf, x.dtype) / safe_n, p)
    p = xp.where(empty_row, zero, p)
    p = xp.where(nan_row, xp.full_like(x, math.nan), p)
    return p if mask is None else xp.where(mask, p, zero)  # 0 even in a NaN row


def _map(
    name: str, xp: Any, work: Any, axes: tuple[int, ...], mask: Any, alpha: float, n_iter: int,
    implementation: str,
) -> Any:
    """The map on validated input; result in the working dtype (float32 or wider)."""
    kernel = select_path(name, implementation, xp, _size(work))
    if _size(work) == 0:
        return work
    if kernel is not None:
        rows, info = _as_rows(xp, work, axes)
        mrows = None if mask is None else _as_rows(xp, mask, axes)[0]
        res = kernel(np.ascontiguousarray(rows), mrows, name, alpha, n_iter)
        return _from_rows(xp, res, info)
    with np.errstate(all="ignore"):
        wide = _widen(xp, work)
        rows, info = _as_rows(xp, wide, axes)
        mrows = None if mask is None else _as_rows(xp, mask, axes)[0]
        return _from_rows(xp, _reference_rows(xp, rows, mrows, name, alpha, n_iter), info)


def _public_map(
    name: str, x: Any, axis: Any, where: Any, alpha: float, n_iter: int, implementation: str
) -> Any:
    xp, work, dtype, axes, mask = _prepare(x, axis, where)
    res = _map(name, xp, work, axes, mask, alpha, n_iter, implementation)
    return _finish(xp, res, dtype, None)


# --------------------------------------------------------------------------- maps
def sparsemax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: Array | None = None,
    implementation: Implementation = "auto",
) -> Array:
    r"""Sparsemax: the Euclidean projection of ``x`` onto the probability simplex.

    ``p = argmin_{p >= 0, sum p = 1} ||p - x||^2``, i.e. ``p_i = max(x_i - tau, 0)`` with
    ``tau`` such that ``sum(p) = 1``; 2-entmax.

    Parameters
    ----------
    x : array_like
        Scores. Integers and bools are promoted to the default float; float16 and bfloat16
        are computed in float32 and returned in their own dtype.
    axis : int, tuple of ints or None, default -1
        The axis (or axes, jointly) that form one distribution; ``None`` for all elements.
    where : array_like of bool, optional
        Broadcastable to ``x``. Excluded entries get probability exactly 0 and take no part,
        even when they are NaN.
    implementation : {"auto", "reference", "numba"}
        Force a code path (for tests and benchmarks).

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape, summing to 1 along ``axis``, with exact zeros; the
        same array type (and device) as ``x``.

    Notes
    -----
    With ``m = max(x)``, no entry with ``x_i <= m - 1`` is in the support. The NumPy kernel
    collects the other entries in a small top-k buffer (doubling k when the support does not
    fit) and sorts only that; the reference sorts the whole row (Martins & Astudillo,
    Algorithm 1). The Jacobian is ``diag(s) - s s^T / |S|`` with ``s`` the indicator of the
    support ``S``: see :func:`sparsemax_jvp`. Edge cases as in :func:`softargmax.softmax`
    (module docstring).

    References
    ----------
    .. [1] A. F. T. Martins and R. F. Astudillo, "From softmax to sparsemax: a sparse model
       of attention and multi-label classification", ICML 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.sparse import sparsemax
    >>> sparsemax([1.0, 2.0, 3.0, 2.5])
    array([0.  , 0.  , 0.75, 0.25])
    >>> sparsemax([1000.0, 1000.5])
    array([0.25, 0.75])

    A fully masked row is zeros, not NaN; ``+inf`` entries share the mass:

    >>> sparsemax([[1.0, 1.2], [3.0, 4.0]], where=np.array([[True, True], [False, False]]))
    array([[0.4, 0.6],
           [0. , 0. ]])
    >>> sparsemax([np.inf, 1.0, np.inf])
    array([0.5, 0. , 0.5])
    """
    return _public_map("sparsemax", x, axis, where, 2.0, 1, implementation)


def entmax15(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: Array | None = None,
    implementation: Implementation = "auto",
) -> Array:
    r"""1.5-entmax: ``p_i = max(x_i / 2 - tau, 0) ** 2`` with ``tau`` such that ``sum(p) = 1``.

    Between softmax (dense) and sparsemax (sparser): the maximiser of
    ``<p, x> + H_1.5(p)`` over the simplex, with the Tsallis entropy ``H_1.5``.

    Parameters
    ----------
    x, axis, where, implementation
        As in :func:`sparsemax`.

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape with exact zeros, summing to 1 along ``axis``.

    Notes
    -----
    The threshold is exact: for the ``k`` largest ``X = x/2`` it solves
    ``sum_{i<=k} (X_i - tau)^2 = 1``, ``tau_k = mean_k - sqrt((1 - ss_k) / k)`` (Peters et
    al., Algorithm 2), with the support the largest ``k`` with ``tau_k <= X_(k)``. The
    kernel keeps ``mean_k`` and ``ss_k`` with Welford's recurrence (no cancellation). The
    Jacobian is ``diag(g) - g g^T / sum(g)`` with ``g = sqrt(p)``: see
    :func:`entmax15_jvp`.

    References
    ----------
    .. [1] B. Peters, V. Niculae and A. F. T. Martins, "Sparse sequence-to-sequence
       models", ACL 2019.

    Examples
    --------
    >>> from softargmax.sparse import entmax15
    >>> entmax15([1.0, 2.0, 3.0, 2.5])
    array([0.        , 0.0841358 , 0.62419753, 0.29166667])
    >>> float(entmax15([0.0, -10.0])[1])
    0.0
    """
    return _public_map("entmax15", x, axis, where, 1.5, 1, implementation)


def entmax_bisect(
    x: Array,
    alpha: float = 1.5,
    axis: int | tuple[int, ...] | None = -1,
    *,
    n_iter: int = 50,
    where: Array | None = None,
    implementation: Implementation = "auto",
) -> Array:
    r"""alpha-entmax for any ``alpha > 1``, by bisection on the threshold.

    ``p_i = max((alpha - 1) x_i - tau, 0) ** (1 / (alpha - 1))`` with ``tau`` such that
    ``sum(p) = 1``. ``alpha = 2`` is :func:`sparsemax`, ``alpha = 1.5`` is :func:`entmax15`
    and ``alpha -> 1`` tends to :func:`softargmax.softmax`; larger ``alpha`` is sparser.

    Parameters
    ----------
    x : array_like
        Scores, as in :func:`sparsemax`.
    alpha : float, default 1.5
        A finite real number > 1 (one value for all distributions).
    axis : int, tuple of ints or None, default -1
        The distribution axis (or axes).
    n_iter : int, default 50
        Number of bisection steps (each halves the bracket of ``tau``; the result is then
        normalised to sum to one, as the ``entmax`` package does). 50 reaches float64
        resolution.
    where, implementation
        As in :func:`sparsemax`.

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape with exact zeros, summing to 1 along ``axis``.

    Notes
    -----
    With ``X = (alpha - 1)(x - max x)`` the threshold lies in
    ``[-1, -n**(1 - alpha)]`` (``n`` candidates, the entries with ``X > -1``). The NumPy
    kernel bisects over its top-k buffer of candidates only, so a step costs
    ``O(support)`` rather than ``O(K)``. For ``alpha`` close to 1 the exponent
    ``1 / (alpha - 1)`` is large; the computation runs in float64 (float32 input included)
    so that ``alpha = 1.01`` still works, but softmax itself is the better tool there.

    Examples
    --------
    >>> from softargmax.sparse import entmax_bisect
    >>> entmax_bisect([1.0, 2.0, 3.0, 2.5], alpha=2.0)
    array([0.  , 0.  , 0.75, 0.25])
    >>> entmax_bisect([1.0, 2.0, 3.0, 2.5], alpha=1.5)
    array([0.        , 0.0841358 , 0.62419753, 0.29166667])
    >>> entmax_bisect([1.0, 2.0, 3.0, 2.5], alpha=1.2)
    array([0.02602631, 0.14758671, 0.53387536, 0.29251162])
    """
    a = _check_alpha(alpha)
    n = check_int(n_iter, "n_iter")
    return _public_map("entmax_bisect", x, axis, where, a, n, implementation)


# --------------------------------------------------------------------------- derivatives
def _reference_vjp(xp: Any, p: Any, g: Any, axes: tuple[int, ...], alpha: float) -> Any:
    zero = xp.zeros_like(p)
    support = p > 0
    if alpha == 2.0:
        gp = xp.astype(support, p.dtype)
    else:
        base = xp.where(support, p, xp.ones_like(p))
        gp = xp.where(support, xp.sqrt(base) if alpha == 1.5 else base ** (2.0 - alpha), zero)
    gv = xp.where(support, gp * g, zero)
    sg = _reduce(xp.sum, gp, axes)
    q = _reduce(xp.sum, gv, axes) / xp.where(sg > 0, sg, xp.ones_like(sg))
    res = xp.where(support, gp * (g - q), zero)
    nan_row = _reduce(xp.any, xp.isnan(p), axes)
    return xp.where(nan_row & (p != 0), xp.full_like(p, math.nan), res)


def _vjp(
    name: str, p: Any, g: Any, axis: Any, alpha: float, implementation: str, names: tuple[str, str]
) -> Any:
    xp, p, g, dtype = _pair(p, g, names)
    axes = normalize_axis(axis, p.ndim)
    kernel = select_path("entmax_vjp", implementation, xp, _size(p))
    if _size(p) == 0:
        return _done(xp, p, dtype)
    if kernel is not None:
        prow, info = _as_rows(xp, p, axes)
        grow, _ = _as_rows(xp, g, axes)
        res = kernel(np.ascontiguousarray(prow), np.ascontiguousarray(grow), name, alpha)
        return _done(xp, _from_rows(xp, res, info), dtype)
    with np.errstate(all="ignore"):
        return _done(xp, _reference_vjp(xp, _widen(xp, p), _widen(xp, g), axes, alpha), dtype)


_DERIV_DOC = r"""{what} of :func:`{fn}` at its output ``p``: ``J {v} = g_p * ({v} - <g_p, {v}> / sum(g_p))``.

    The Jacobian ``J = diag(g_p) - g_p g_p^T / sum(g_p)`` with ``g_p = {gp}`` on the
    support (0 elsewhere) is symmetric, so the JVP and the VJP are the same product.

    Parameters
    ----------
    p : array_like
        The output of :func:`{fn}` (any entry ``p <= 0`` counts as outside the support).
    {v} : array_like
        {vdesc}, broadcastable to ``p``.{alpha}
    axis : int, tuple of ints or None, default -1
        The distribution axis (or axes) used for ``p``.
    implementation : {{"auto", "reference", "numba"}}
        Force a code path.

    Returns
    -------
    ndarray
        Of ``p``'s shape: zero outside the support (whatever ``{v}`` holds there) and on
        rows of empty support; NaN on rows where ``p`` is NaN, except where ``p == 0``
        (excluded entries).

    Examples
    --------
    {example}
"""


def _derivative_doc(fn: str, what: str, v: str, gp: str, example: str, alpha: bool = False) -> str:
    vdesc = "Tangent with respect to ``x``" if v == "v" else "Cotangent (gradient of a loss with respect to ``p``)"
    a = (
        "\n    alpha : float, default 1.5\n        The ``alpha`` used for ``p``."
        if alpha
        else ""
    )
    return _DERIV_DOC.format(what=what, fn=fn, v=v, gp=gp, vdesc=vdesc, alpha=a, example=example)


def sparsemax_jvp(
    p: Array, v: Array, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("sparsemax", p, v, axis, 2.0, implementation, ("p", "v"))


def sparsemax_vjp(
    p: Array, g: Array, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("sparsemax", p, g, axis, 2.0, implementation, ("p", "g"))


def entmax15_jvp(
    p: Array, v: Array, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("entmax15", p, v, axis, 1.5, implementation, ("p", "v"))


def entmax15_vjp(
    p: Array, g: Array, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("entmax15", p, g, axis, 1.5, implementation, ("p", "g"))


def entmax_bisect_jvp(
    p: Array, v: Array, alpha: float = 1.5, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("entmax_bisect", p, v, axis, _check_alpha(alpha), implementation, ("p", "v"))


def entmax_bisect_vjp(
    p: Array, g: Array, alpha: float = 1.5, axis: int | tuple[int, ...] | None = -1, *,
    implementation: Implementation = "auto",
) -> Array:
    return _vjp("entmax_bisect", p, g, axis, _check_alpha(alpha), implementation, ("p", "g"))


sparsemax_jvp.__doc__ = _derivative_doc(
    "sparsemax", "Jacobian-vector product", "v", "1",
    """>>> from softargmax.sparse import sparsemax, sparsemax_jvp
    >>> p = sparsemax([1.0, 2.0, 3.0, 2.5])
    >>> sparsemax_jvp(p, [5.0, 0.0, 1.0, 0.0])
    array([ 0. ,  0. ,  0.5, -0.5])""",
)
sparsemax_vjp.__doc__ = _derivative_doc(
    "sparsemax", "Vector-Jacobian product", "g", "1",
    """>>> from softargmax.sparse import sparsemax, sparsemax_vjp
    >>> p = sparsemax([[0.1, 0.2, 0.3], [2.0, 0.0, 0.0]])
    >>> sparsemax_vjp(p, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    array([[ 0.66666667, -0.33333333, -0.33333333],
           [ 0.        ,  0.        ,  0.        ]])""",
)
entmax15_jvp.__doc__ = _derivative_doc(
    "entmax15", "Jacobian-vector product", "v", "sqrt(p)",
    """>>> from softargmax.sparse import entmax15, entmax15_jvp
    >>> p = entmax15([0.0, 0.0])
    >>> entmax15_jvp(p, [1.0, 0.0])
    array([ 0.35355339, -0.35355339])""",
)
entmax15_vjp.__doc__ = _derivative_doc(
    "entmax15", "Vector-Jacobian product", "g", "sqrt(p)",
    """>>> from softargmax.sparse import entmax15, entmax15_vjp
    >>> p = entmax15([1.0, 2.0, 3.0, 2.5])
    >>> entmax15_vjp(p, [0.0, 1.0, 0.0, 0.0])
    array([ 0.        ,  0.23813198, -0.14144474, -0.09668724])""",
)
entmax_bisect_jvp.__doc__ = _derivative_doc(
    "entmax_bisect", "Jacobian-vector product", "v", "p ** (2 - alpha)",
    """>>> from softargmax.sparse import entmax_bisect, entmax_bisect_jvp
    >>> p = entmax_bisect([0.0, 0.0], alpha=3.0)
    >>> entmax_bisect_jvp(p, [1.0, 0.0], alpha=3.0)
    array([ 1., -1.])""",
    alpha=True,
)
entmax_bisect_vjp.__doc__ = _derivative_doc(
    "entmax_bisect", "Vector-Jacobian product", "g", "p ** (2 - alpha)",
    """>>> from softargmax.sparse import entmax_bisect, entmax_bisect_vjp
    >>> p = entmax_bisect([1.0, 2.0, 3.0, 2.5], alpha=1.5)
    >>> entmax_bisect_vjp(p, [0.0, 1.0, 0.0, 0.0], alpha=1.5)
    array([ 0.        ,  0.23813198, -0.14144474, -0.09668724])""",
    alpha=True,
)


# --------------------------------------------------------------------------- losses
_REDUCTIONS = ("mean", "sum", "none")


def _check_target(xp: Any, target: Any, shape: tuple[int, ...], ax: int, ignore_index: Any) -> Any:
    try:
        integral = bool(xp.isdtype(target.dtype, "integral"))
    except (TypeError, ValueError, AttributeError):
        integral = False
    if not integral:
        msg = f"target must be an array of integer class indices, got dtype {target.dtype}"
        raise TypeError(msg)
    want = shape[:ax] + shape[ax + 1:]
    if tuple(target.shape) != want:
        msg = (
            f"target must have the shape of x without its class axis {ax}, {want}, "
            f"got {tuple(target.shape)}"
        )
        raise ValueError(msg)
    k = shape[ax]
    bad = (target < 0) | (target >= k)
    if ignore_index is not None:
        bad = bad & (target != ignore_index)
    if _size(target) and bool(xp.any(bad)):
        msg = f"target must hold class indices in [0, {k}) or ignore_index={ignore_index!r}; got values outside"
        raise ValueError(msg)
    return target


def _fy_loss(
    name: str, x: Any, target: Any, axis: Any, alpha: float, n_iter: int, where: Any,
    ignore_index: Any, reduction: Any, return_grad: bool, implementation: str,
) -> Any:
    if reduction not in _REDUCTIONS:
        msg = f"reduction must be one of {_REDUCTIONS}, got {reduction!r}"
        raise ValueError(msg)
    if ignore_index is not None:
        ignore_index = check_int(ignore_index, "ignore_index", None, "an int or None")
    xp, (x, target, where) = get_namespace(x, target, where)
    work, dtype, _ = float_input(xp, x)
    if work.ndim == 0:
        msg = "x must have at least one dimension (the class axis), got a 0-d array"
        raise ValueError(msg)
    if isinstance(axis, tuple) or axis is None:
        msg = f"axis must be a single int (the class axis) for a loss, got {axis!r}"
        raise TypeError(msg)
    (ax,) = normalize_axis(axis, work.ndim)
    shape = tuple(int(s) for s in work.shape)
    target = _check_target(xp, target, shape, ax, ignore_index)
    mask = check_where(xp, where, shape)
    p = _map(name, xp, work, (ax,), mask, alpha, n_iter, implementation)
    with np.errstate(all="ignore"):
        p = _widen(xp, p)
        xw = xp.astype(work, p.dtype) if work.dtype != p.dtype else work
        ninf = xp.full_like(xw, -math.inf)
        zero = xp.zeros_like(xw)
        y = xw if mask is None else xp.where(mask, xw, ninf)
        nan = xp.isnan(y)
        nan_row = xp.any(nan, axis=ax)
        y = xp.where(nan, ninf, y)
        if _size(y) == 0:  # no classes (every target ignored) or no samples
            m = xp.zeros(tuple(1 if i == ax else n for i, n in enumerate(shape)), dtype=y.dtype)
        else:
            m = xp.max(y, axis=ax, keepdims=True)
        inf_row = m == math.inf
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
        # The loss is shift invariant (sum(p - y) = 0): use d = x - max, and for rows
        # with +inf entries their limit (0 at +inf, -inf elsewhere).
        d = xp.where(inf_row, xp.where(y == math.inf, zero, ninf), y - m)
        classes = xp.reshape(
            xp.arange(shape[ax], device=device_of(target)),
            tuple(shape[ax] if i == ax else 1 for i in range(len(shape))),
        )
        onehot = classes == xp.expand_dims(target, axis=ax)
        support = p > 0
        d_t = xp.sum(xp.where(onehot, d, zero), axis=ax)
        pd = xp.sum(xp.where(support, p * d, zero), axis=ax)
        if name == "sparsemax":
            power = xp.sum(p * p, axis=ax)
        elif name == "entmax15":
            power = xp.sum(p * xp.sqrt(xp.where(support, p, zero)), axis=ax)
        else:
            power = xp.sum(xp.where(support, p, zero) ** alpha, axis=ax)
        a = _ALPHA.get(name, alpha)
        loss = (pd - d_t) + (1.0 - power) / (a * (a - 1.0))
        loss = xp.where(nan_row, xp.full_like(loss, math.nan), loss)
        if ignore_index is not None:
            valid = target != ignore_index
            loss = xp.where(valid, loss, xp.zeros_like(loss))
            count = int(xp.sum(xp.astype(valid, xp.int64)))
        else:
            valid = None
            count = _size(target)
        if reduction == "none":
            out = loss
            factor = 1.0
        else:
            out = xp.sum(loss)
            factor = 1.0
            if reduction == "mean":
                factor = 1.0 / count if count else 0.0
                out = out * factor
        out = _finish(xp, out, dtype, None)
        if not return_grad:
            return out
        grad = p - xp.astype(onehot, p.dtype)
        if valid is not None:
            grad = xp.where(xp.expand_dims(valid, axis=ax), grad, zero)
        if factor != 1.0:
            grad = grad * factor
        return out, _finish(xp, grad, dtype, None)


_LOSS_DOC = r"""The {title} loss: the Fenchel-Young loss of :func:`{fn}`, with class-index targets.

    ``L(x, t) = <p - e_t, x> + H(p)`` with ``p = {fn}(x)``, ``e_t`` the one-hot target and
    ``H`` the Tsallis {alpha_text}-entropy ``H(p) = (1 - sum p^alpha) / (alpha (alpha - 1))``.
    It is convex in ``x``, non-negative, exactly 0 when ``p`` is the one-hot target (a
    large enough margin: sparse losses stop pushing), and its gradient is ``p - e_t``.
    The same as the ``entmax`` package's ``{peer}``.

    Parameters
    ----------
    x : array_like
        Scores (logits), the class axis ``axis``; dtypes as in :func:`{fn}`.
    target : array_like of int
        Class indices, of ``x``'s shape without the class axis, in ``[0, K)`` or equal to
        ``ignore_index``.{alpha_param}
    axis : int, default -1
        The class axis (one axis).{n_iter_param}
    where : array_like of bool, optional
        Classes to include (broadcastable to ``x``); a sample whose target class is excluded
        (or has score ``-inf``) gets an infinite loss.
    ignore_index : int, optional
        Samples with this target contribute 0 to the loss and to the gradient, and are not
        counted by the mean.
    reduction : {{"mean", "sum", "none"}}, default "mean"
        ``"none"`` gives the per-sample losses (and the unscaled per-sample gradient); the
        mean over zero counted samples is 0.
    return_grad : bool, default False
        Also return the gradient with respect to ``x`` (``p - e_t``, scaled by the
        reduction).
    implementation : {{"auto", "reference", "numba"}}
        Force the code path of the map.

    Returns
    -------
    loss : ndarray or scalar
        The reduced loss in ``x``'s result dtype: NaN for a sample with a NaN (among its
        included scores), ``+inf`` for a target outside the support's limit (excluded,
        ``-inf``, or finite when other classes are ``+inf``).
    grad : ndarray
        Only with ``return_grad=True``: of ``x``'s shape.

    Notes
    -----
    Computed from the shifted scores ``x - max x`` (the loss is shift invariant since
    ``sum(p - e_t) = 0``), summing over the support of ``p`` only, so no finite input
    overflows. Rows with ``+inf`` scores take the limit: if the target is one of the ``n``
    infinite classes the loss is ``H`` of the uniform distribution on them.

    References
    ----------
    .. [1] M. Blondel, A. F. T. Martins and V. Niculae, "Learning with Fenchel-Young
       losses", JMLR 2020.

    Examples
    --------
    {example}
"""


def _loss_doc(fn: str, title: str, alpha_text: str, peer: str, example: str, bisect: bool = False) -> str:
    return _LOSS_DOC.format(
        fn=fn, title=title, alpha_text=alpha_text, peer=peer, example=example,
        alpha_param="\n    alpha : float, default 1.5\n        A finite number > 1." if bisect else "",
        n_iter_param=(
            "\n    n_iter : int, default 50\n        Bisection steps, as in :func:`entmax_bisect`."
            if bisect else ""
        ),
    )


@overload
def sparsemax_loss(
    x: Array, target: Array, axis: int = ..., *, where: Array | None = ...,
    ignore_index: int | None = ..., reduction: str = ..., return_grad: Literal[False] = ...,
    implementation: Implementation = ...,
) -> Array: ...
@overload
def sparsemax_loss(
    x: Array, target: Array, axis: int = ..., *, where: Array | None = ...,
    ignore_index: int | None = ..., reduction: str = ..., return_grad: Literal[True],
    implementation: Implementation = ...,
) -> tuple[Array, Array]: ...
def sparsemax_loss(
    x: Array, target: Array, axis: int = -1, *, where: Array | None = None,
    ignore_index: int | None = None, reduction: str = "mean", return_grad: bool = False,
    implementation: Implementation = "auto",
) -> Array | tuple[Array, Array]:
    return _fy_loss("sparsemax", x, target, axis, 2.0, 1, where, ignore_index, reduction,
                    return_grad, implementation)


@overload
def entmax15_loss(
    x: Array, target: Array, axis: int = ..., *, where: Array | None = ...,
    ignore_index: int | None = ..., reduction: str = ..., return_grad: Literal[False] = ...,
    implementation: Implementation = ...,
) -> Array: ...
@overload
def entmax15_loss(
    x: Array, target: Array, axis: int = ..., *, where: Array | None = ...,
    ignore_index: int | None = ..., reduction: str = ..., return_grad: Literal[True],
    implementation: Implementation = ...,
) -> tuple[Array, Array]: ...
def entmax15_loss(
    x: Array, target: Array, axis: int = -1, *, where: Array | None = None,
    ignore_index: int | None = None, reduction: str = "mean", return_grad: bool = False,
    implementation: Implementation = "auto",
) -> Array | tuple[Array, Array]:
    return _fy_loss("entmax15", x, target, axis, 1.5, 1, where, ignore_index, reduction,
                    return_grad, implementation)


@overload
def entmax_bisect_loss(
    x: Array, target: Array, alpha: float = ..., axis: int = ..., *, n_iter: int = ...,
    where: Array | None = ..., ignore_index: int | None = ..., reduction: str = ...,
    return_grad: Literal[False] = ..., implementation: Implementation = ...,
) -> Array: ...
@overload
def entmax_bisect_loss(
    x: Array, target: Array, alpha: float = ..., axis: int = ..., *, n_iter: int = ...,
    where: Array | None = ..., ignore_index: int | None = ..., reduction: str = ...,
    return_grad: Literal[True], implementation: Implementation = ...,
) -> tuple[Array, Array]: ...
def entmax_bisect_loss(
    x: Array, target: Array, alpha: float = 1.5, axis: int = -1, *, n_iter: int = 50,
    where: Array | None = None, ignore_index: int | None = None, reduction: str = "mean",
    return_grad: bool = False, implementation: Implementation = "auto",
) -> Array | tuple[Array, Array]:
    a = _check_alpha(alpha)
    n = check_int(n_iter, "n_iter")
    return _fy_loss("entmax_bisect", x, target, axis, a, n, where, ignore_index, reduction,
                    return_grad, implementation)


sparsemax_loss.__doc__ = _loss_doc(
    "sparsemax", "sparsemax", "2", "sparsemax_loss",
    """>>> from softargmax.sparse import sparsemax_loss
    >>> float(sparsemax_loss([[1.0, 2.0, 3.0, 2.5]], [3]))
    0.5625
    >>> float(sparsemax_loss([[0.0, 5.0]], [1]))  # margin >= 1: exactly zero
    0.0
    >>> loss, grad = sparsemax_loss([[1.0, 2.0, 3.0, 2.5]], [2], return_grad=True)
    >>> grad
    array([[ 0.  ,  0.  , -0.25,  0.25]])""",
)
entmax15_loss.__doc__ = _loss_doc(
    "entmax15", "1.5-entmax", "1.5", "entmax15_loss",
    """>>> from softargmax.sparse import entmax15_loss
    >>> entmax15_loss([[1.0, 2.0, 3.0, 2.5], [0.0, 9.0, 0.0, 0.0]], [2, 1], reduction="none")
    array([0.20326132, 0.        ])""",
)
entmax_bisect_loss.__doc__ = _loss_doc(
    "entmax_bisect", "alpha-entmax", "alpha", "entmax_bisect_loss",
    """>>> from softargmax.sparse import entmax_bisect_loss
    >>> float(entmax_bisect_loss([[1.0, 2.0, 3.0, 2.5]], [2], alpha=1.5))
    0.2032613""",
    bisect=True,
)
