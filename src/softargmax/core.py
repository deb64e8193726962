"""The softmax family: ``softmax``, ``log_softmax``, ``logsumexp``, ``softmin``, ``hardmax``.

Each public function validates its arguments once (``_validation``), picks a code path
(``_backend``: numba kernels for NumPy input, the array-API reference otherwise) and
casts the result to the result dtype. The edge semantics, shared by all of them:

======================  ==================================================================
input                   result
======================  ==================================================================
``where=False`` entry   probability exactly 0, log-probability -inf, ignored (even if NaN),
                        and 0 / -inf even in a NaN row
``x = -inf``            the same as excluded
all entries excluded    softmax 0, log_softmax and logsumexp -inf (never NaN)
``x = +inf`` entries    they share the mass equally, the rest get 0; logsumexp +inf
a NaN                   the whole distribution (only that one) is NaN
``|x|`` near max float  no overflow: the scale is applied to the shifted input
======================  ==================================================================

With ``beta < 0`` (and in :func:`softmin`) the roles of +inf and -inf swap.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np

from . import _reference
from ._backend import get_namespace, is_dask_array, is_numpy, numpy_kernel, select_path, write_into
from ._validation import (
    Scale,
    check_out,
    check_where,
    float_input,
    normalize_axis,
    resolve_scale,
    result_float_dtype,
)

__all__ = ["hardmax", "log_softmax", "logsumexp", "softmax", "softmin"]

Array = Any

_KERNEL_DTYPES = (np.float32, np.float64)


def _finish(xp: Any, res: Any, dtype: Any, out: Any) -> Any:
    """Cast to the result dtype, write into ``out`` if given, unwrap NumPy 0-d results."""
    if res is out:
        return out
    if out is None and type(res) is np.ndarray and res.dtype == dtype:  # the common case, fast
        return res if res.ndim else res[()]
    if res.dtype != dtype:
        with np.errstate(over="ignore"):  # e.g. a log-probability below float16's range
            res = xp.astype(res, dtype)
    if out is not None:
        return write_into(out, res)
    if is_numpy(xp) and getattr(res, "ndim", 1) == 0:
        return res[()]
    return res


def _prepare(x: Any, axis: Any, where: Any) -> tuple[Any, ...]:
    xp, (x, where) = get_namespace(x, where)
    work, dtype, _ = float_input(xp, x)
    axes = normalize_axis(axis, x.ndim)
    mask = check_where(xp, where, tuple(x.shape))
    return xp, work, dtype, axes, mask


def _distribution(
    name: str,
    x: Array,
    axis: Any,
    scale: Scale,
    where: Any,
    out: Any,
    implementation: str,
) -> Array:
    if (
        type(x) is np.ndarray
        and x.dtype.type in _KERNEL_DTYPES
        and type(axis) is int
        and axis == -1
        and x.ndim
        and where is None
        and out is None
        and implementation == "auto"
    ):
        # the most common call, a NumPy float array along its last axis: nothing to
        # convert or check, and the kernel's result is already the answer
        kernel = numpy_kernel(name, x.size)
        if kernel is not None:
            return kernel(x, (x.ndim - 1,), scale, None, None)
    if (type(x) is not np.ndarray or where is not None) and (is_dask_array(x) or is_dask_array(where)):
        from . import dask as _dask

        return _dask._distribution(name, x, axis, scale, where, out, implementation)
    xp, work, dtype, axes, mask = _prepare(x, axis, where)
    check_out(xp, out, tuple(work.shape), dtype)
    kernel = select_path(name, implementation, xp, math.prod(work.shape))
    if kernel is not None:
        res = kernel(work, axes, scale, mask, out)
    else:
        res = getattr(_reference, name)(xp, work, axes, scale, mask)
    return _finish(xp, res, dtype, out)


def softmax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    out: Array | None = None,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Array:
    r"""Softmax: ``exp(beta * x_i) / sum_j exp(beta * x_j)`` along ``axis``.

    Parameters
    ----------
    x : array_like
        Scores (logits). Integers and bools are promoted to the default float; float16
        and bfloat16 are computed in float32 and returned in their own dtype.
    axis : int, tuple of ints or None, default -1
        The axis (or axes, jointly) that form one distribution; ``None`` for all
        elements. ``scipy.special.softmax`` defaults to ``axis=None``; here the default is
        the last axis, the convention of PyTorch and JAX.
    temperature, beta, base : float, optional
        At most one scale: ``beta`` multiplies the inputs (negative beta gives a
        softmin), ``temperature`` T means beta = 1/T (T > 0), ``base`` b means ``b**x``
        (beta = ln b; b > 0, b != 1).
    where : array_like of bool, optional
        Broadcastable to ``x``. Excluded entries get probability exactly 0 and do not
        enter the sum, even when they are NaN.
    out : ndarray, optional
        Preallocated result of ``x``'s shape and the result dtype; it is returned. It
        may be ``x`` itself (``softmax(x, out=x)`` works in place: a result that
        shares memory with the input is made apart, then copied in).
    implementation : {"auto", "reference", "numba"}
        Force a code path (for tests and benchmarks).

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape, summing to 1 along ``axis``; the same array
        type (and device) as ``x``.

    Notes
    -----
    The scale is applied to the shifted input, ``z = beta * (x - max x)``, so no finite
    input overflows, and the shift and scale are carried with their rounding errors so
    that every probability keeps full relative accuracy. Rows with ``+inf`` entries give
    the limit (those entries share the mass), rows with no support give zeros, a NaN
    spoils only its own row. See the module docstring for the whole table.

    References
    ----------
    .. [1] J. S. Bridle, "Probabilistic interpretation of feedforward classification
       network outputs", 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax import softmax
    >>> softmax([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0])
    array([0.02364054, 0.06426166, 0.1746813 , 0.474833  , 0.02364054,
           0.06426166, 0.1746813 ])

    Large logits do not overflow, and a temperature spreads the mass:

    >>> softmax([1000.0, 1001.0])
    array([0.26894142, 0.73105858])
    >>> softmax([1.0, 2.0], temperature=10.0)
    array([0.47502081, 0.52497919])

    A fully masked row is all zeros, not NaN; ``+inf`` entries share the mass:

    >>> softmax([[1.0, 2.0], [3.0, 4.0]], where=np.array([[True, True], [False, False]]))
    array([[0.26894142, 0.73105858],
           [0.        , 0.        ]])
    >>> softmax([np.inf, 1.0, np.inf])
    array([0.5, 0. , 0.5])
    """
    scale = resolve_scale(temperature, beta, base)
    return _distribution("softmax", x, axis, scale, where, out, implementation)


def log_softmax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    out: Array | None = None,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Array:
    r"""Log-softmax: ``beta * x_i - logsumexp(beta * x)`` along ``axis``.

    Parameters
    ----------
    x, axis, temperature, beta, base, where, out, implementation
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        Log-probabilities of ``x``'s shape: ``-inf`` for excluded entries and for
        every entry of an empty-support row.

    Notes
    -----
    Computed as ``z - log1p(sum of the others)`` with ``z = beta * (x - max x)``, so the
    log-probability of a dominant maximum keeps full relative accuracy: for
    ``[0, -50]`` it is ``-exp(-50)``, where ``z - log(sum exp z)`` rounds to 0 (SciPy's
    issue 19521).

    Examples
    --------
    >>> from softargmax import log_softmax
    >>> log_softmax([0.0, -50.0])
    array([-1.92874985e-22, -5.00000000e+01])
    >>> log_softmax([1.0, 2.0, 3.0], base=2.0)
    array([-1.94591015, -1.25276297, -0.55961579])
    """
    scale = resolve_scale(temperature, beta, base)
    return _distribution("log_softmax", x, axis, scale, where, out, implementation)


def softmin(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    temperature: float | None = None,
    beta: float | None = None,
    base: float | None = None,
    where: Array | None = None,
    out: Array | None = None,
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Array:
    r"""Softmin: ``softmax(-x)``, the smallest entries get the most mass.

    Parameters
    ----------
    x, axis, temperature, beta, base, where, out, implementation
        As in :func:`softmax`; the scale applies to ``-x``.

    Returns
    -------
    ndarray
        Probabilities of ``x``'s shape. Here ``-inf`` entries share the mass and
        ``+inf`` entries are excluded.

    Examples
    --------
    >>> from softargmax import softmin
    >>> softmin([1.0, 2.0, 3.0])
    array([0.66524096, 0.24472847, 0.09003057])
    >>> softmin([1.0, 2.0, 3.0], temperature=0.1)
    array([9.99954600e-01, 4.53978686e-05, 2.06106005e-09])
    """
    scale = resolve_scale(temperature, beta, base, negate=True)
    return _distribution("softmax", x, axis, scale, where, out, implementation)


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
    implementation: Literal["auto", "reference", "numba"] = ...,
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
    implementation: Literal["auto", "reference", "numba"] = ...,
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
    implementation: Literal["auto", "reference", "numba"] = "auto",
) -> Array | tuple[Array, Array]:
    r"""Log of the sum of exponentials, ``log sum_i b_i exp(beta * x_i)``: the smooth max.

    Parameters
    ----------
    x : array_like
        Input, as in :func:`softmax`.
    axis : int, tuple of ints or None, default None
        Axes to reduce; ``None`` (SciPy's default) reduces all of them.
    b : array_like, optional
        Weights broadcastable with ``x`` (SciPy's meaning). An entry with ``b = 0`` is
        ignored, even when ``x`` is infinite or NaN there. Negative weights need
        ``return_sign=True`` to be meaningful; without it a negative sum gives NaN.
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    return_sign : bool, default False
        Also return the sign of the sum (1, -1, or 0 for a zero sum), as SciPy does.
    temperature, beta, base : float, optional
        Scale as in :func:`softmax`. The result is ``log sum exp(beta * x)``, not divided
        by beta.
    where : array_like of bool, optional
        Entries to include; excluded entries do not enter the sum.
    implementation : {"auto", "reference", "numba"}
        Force a code path.

    Returns
    -------
    lse : ndarray or scalar
        The reduced result: ``+inf`` if a (weighted, positive) entry is ``+inf``, ``-inf``
        for an empty sum, NaN if an included entry is NaN. A NumPy 0-d result is a
        NumPy scalar.
    sign : ndarray or scalar
        Only with ``return_sign=True``.

    Notes
    -----
    ``logsumexp(x) = m + log1p(n0 - 1 + sum_{x_i < m} exp(x_i - m))`` with ``m`` the max
    and ``n0`` the number of maxima: exact next to a dominant maximum and free of
    overflow. float16 inputs are summed in float32, so ``logsumexp`` of 100 000 float16
    zeros is ``log(100000)``, not ``inf``. Its gradient is :func:`softmax`.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax import logsumexp
    >>> float(logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    >>> logsumexp([[1.0, 2.0], [3.0, 4.0]], axis=1)
    array([2.31326169, 4.31326169])
    >>> float(logsumexp(np.zeros(100_000, dtype=np.float16)))
    11.515625
    >>> lse, sign = logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> float(lse), float(sign)
    (1.5413248546129181, -1.0)
    """
    scale = resolve_scale(temperature, beta, base)
    if (type(x) is not np.ndarray or b is not None or where is not None) and (
        is_dask_array(x) or is_dask_array(b) or is_dask_array(where)
    ):
        from . import dask as _dask

        return _dask._logsumexp(
            x, axis, scale, b=b, keepdims=keepdims, return_sign=return_sign, where=where
        )
    xp, (x, b, where) = get_namespace(x, b, where)
    work, dtype, _ = float_input(xp, x)
    if b is not None:
        b, b_dtype, _ = float_input(xp, b, "b")
        dtype = result_float_dtype(xp, dtype, b_dtype)
        try:
            shape = np.broadcast_shapes(tuple(work.shape), tuple(b.shape))
        except ValueError:
            msg = f"b of shape {tuple(b.shape)} does not broadcast with x of shape {tuple(work.shape)}"
            raise ValueError(msg) from None
    else:
        shape = tuple(work.shape)
    axes = normalize_axis(axis, len(shape))
    mask = check_where(xp, where, shape)
    kernel = select_path("logsumexp", implementation, xp, math.prod(shape))
    if kernel is not None:
        lse, sign = kernel(work, axes, scale, mask, b)
    else:
        lse, sign = _reference.logsumexp(xp, work, axes, scale, mask, b)
    if not return_sign and b is not None:  # a negative sum has no log (without b none is negative)
        lse = xp.where(sign < 0, xp.full_like(lse, float("nan")), lse)
    if not keepdims and axes:
        lse = xp.squeeze(lse, axis=axes)
        sign = xp.squeeze(sign, axis=axes)
    lse = _finish(xp, lse, dtype, None)
    if return_sign:
        return lse, _finish(xp, sign, dtype, None)
    return lse


def hardmax(
    x: Array,
    axis: int | tuple[int, ...] | None = -1,
    *,
    where: Array | None = None,
    out: Array | None = None,
) -> Array:
    r"""The ``beta -> +inf`` limit of softmax: one-hot on the maximum, ties share the mass.

    Parameters
    ----------
    x, axis, where, out
        As in :func:`softmax`.

    Returns
    -------
    ndarray
        ``1/n`` at each of the ``n`` maxima of a distribution, 0 elsewhere; zeros for an
        empty support; NaN for a distribution with an included NaN.

    Examples
    --------
    >>> from softargmax import hardmax
    >>> hardmax([1.0, 3.0, 3.0, 2.0])
    array([0. , 0.5, 0.5, 0. ])
    """
    xp, work, dtype, axes, mask = _prepare(x, axis, where)
    check_out(xp, out, tuple(work.shape), dtype)
    return _finish(xp, _reference.hardmax(xp, work, axes, mask), dtype, out)
