"""Sampling from softmax distributions.

* :func:`gumbel_max` draws exact categorical samples with the Gumbel-max trick,
  ``argmax(log p + G)`` with ``G`` standard Gumbel noise.
* :func:`gumbel_softmax` is its continuous relaxation (Jang et al.; Maddison et al.),
  ``softmax((log p + G) / tau)``, with the one-hot limit for ``hard=True`` or ``tau = 0``.
* :func:`sample_logits` is the decoding sampler of language models: temperature,
  then the top-k, top-p (nucleus) and min-p filters, then a categorical draw;
  :func:`filter_logits` returns the log-probabilities it samples from.

Shared conventions. The distribution runs along one ``axis`` (default the last); the
other axes are a batch. ``size`` (``None``, an int or a tuple) is prepended to the batch
shape, as NumPy's samplers do, so the result of an index sampler has shape
``size + batch``. ``rng`` is ``None``, an int seed or a :class:`numpy.random.Generator`;
the same seed gives the same samples. Inputs are converted to NumPy; all arithmetic is
float64 whatever the input dtype, so float16 logits, extreme logits and tiny
temperatures never give NaN. The logits follow :func:`softargmax.softmax`'s edge rules
(``-inf`` is an excluded token; ``+inf`` tokens share the mass). A distribution that
holds a NaN or has no finite token cannot be sampled: the index samplers raise
``ValueError``, while :func:`gumbel_softmax` (a relaxation, used inside batched
models) returns NaN for a NaN row and zeros for an empty one, as softmax does.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from ._validation import _real_scalar, float_input, normalize_axis
from .core import log_softmax, softmax

__all__ = ["filter_logits", "gumbel_max", "gumbel_softmax", "sample_logits"]

Array = Any

# Elements per temporary block in the samplers (bounds their memory to ~32 MiB).
_BLOCK = 1 << 22


# --------------------------------------------------------------------------- validation
def _generator(rng: Any) -> np.random.Generator:
    """``np.random.default_rng(rng)`` for None, an int seed or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_))):
        try:
            return np.random.default_rng(rng)
        except ValueError as err:
            msg = f"rng must be a non-negative int seed, got {rng!r} ({err})"
            raise ValueError(msg) from None
    msg = f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}"
    raise TypeError(msg)


def _size(size: Any) -> tuple[int, ...]:
    """``size`` (None, an int or a tuple of ints >= 0) as a tuple."""
    if size is None:
        return ()
    items = tuple(size) if isinstance(size, (tuple, list)) else (size,)
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)):
            msg = f"size must be None, an int or a tuple of ints, got {size!r}"
            raise TypeError(msg)
        try:
            n = operator.index(s)
        except TypeError:
            msg = f"size must be None, an int or a tuple of ints, got {size!r}"
            raise TypeError(msg) from None
        if n < 0:
            msg = f"size must not be negative, got {size!r}"
            raise ValueError(msg)
        out.append(n)
    return tuple(out)


def _temperature(value: Any, name: str = "temperature") -> float:
    """A finite temperature >= 0; 0 means the greedy (arg max) limit."""
    t = _real_scalar(value, name)
    if not (math.isfinite(t) and t >= 0):
        msg = f"{name} must be a finite number >= 0 (0 means greedy), got {t!r}"
        raise ValueError(msg)
    return t


def _probability(value: Any, name: str) -> float | None:
    if value is None:
        return None
    v = _real_scalar(value, name)
    if not 0 <= v <= 1:
        msg = f"{name} must be a number in [0, 1] or None, got {v!r}"
        raise ValueError(msg)
    return v


def _top_k(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        msg = f"top_k must be a positive int or None, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    k = int(value)
    if k < 1:
        msg = f"top_k must be a positive int or None (None disables it), got {k}"
        raise ValueError(msg)
    return k


def _rows(logits: Any, axis: Any, name: str = "logits") -> tuple[np.ndarray, tuple[int, ...], int, Any]:
    """Validate ``logits`` and return ``(x, batch_shape, axis, out_dtype)``.

    ``x`` is a new float64 array of shape ``(B, K)``: the batch flattened, the
    distribution axis last.
    """
    if axis is None or isinstance(axis, tuple):
        msg = f"axis must be an int, got {axis!r}"
        raise TypeError(msg)
    try:
        arr = np.asarray(logits)
    except (TypeError, ValueError) as err:
        msg = f"{name} could not be converted to an array: {err}"
        raise TypeError(msg) from None
    work, dtype, _ = float_input(np, arr, name)
    (ax,) = normalize_axis(axis, work.ndim)
    moved = np.moveaxis(work, ax, -1)
    batch = tuple(moved.shape[:-1])
    x = np.array(moved, dtype=np.float64).reshape(math.prod(batch), moved.shape[-1])
    return x, batch, ax, dtype


def _restore(y: np.ndarray, batch: tuple[int, ...], ax: int, dtype: Any) -> np.ndarray:
    """Undo :func:`_rows` for an array of ``(B, K)`` values."""
    y = np.moveaxis(y.reshape(batch + (y.shape[-1],)), -1, ax)
    with np.errstate(over="ignore"):  # tiny log-probabilities may round to -inf in float16
        return y.astype(dtype, copy=False)


def _check_support(x: np.ndarray, name: str) -> None:
    """Every row of ``x`` (logits or log-probabilities) must be samplable."""
    if x.shape[-1] == 0:
        msg = f"{name} has an empty distribution axis: there is nothing to sample"
        raise ValueError(msg)
    bad = np.isnan(x).any(axis=-1)
    if bad.any():
        msg = f"{name} holds a NaN in {int(bad.sum())} distribution(s) (first at flat batch index {int(np.argmax(bad))})"
        raise ValueError(msg)
    empty = (x == -np.inf).all(axis=-1)
    if empty.any():
        msg = f"{name} has {int(empty.sum())} distribution(s) with no token above -inf (first at flat batch index {int(np.argmax(empty))})"
        raise ValueError(msg)


def _as_result(idx: np.ndarray, size: tuple[int, ...], batch: tuple[int, ...]) -> Any:
    """``(n, B)`` indices -> shape ``size + batch``; a 0-d result is a NumPy scalar."""
    out = idx.reshape(size + batch)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- samplers
def _categorical(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent draws from each row of ``p`` (B, K) by inverse transform.

    The rows hold non-negative float64 weights with a positive sum (not necessarily
    normalised). Returns an ``(n, B)`` array of indices; a zero-weight entry is never
    drawn. This is the sampler behind :func:`sample_logits` and the models.
    """
    B, K = p.shape
    cdf = np.cumsum(p, axis=-1)
    v = rng.random((n, B)) * cdf[:, -1]
    # u * total may round up to total: clip to the last entry of positive weight.
    last = K - 1 - np.argmax(p[:, ::-1] > 0, axis=-1)
    out = np.empty((n, B), dtype=np.intp)
    if n * K <= _BLOCK:
        step = max(1, _BLOCK // max(1, n * K))
        for s in range(0, B, step):
            c = cdf[s : s + step]
            out[:, s : s + step] = np.count_nonzero(c[None, :, :] <= v[:, s : s + step, None], axis=-1)
    else:  # many draws per row: binary search
        for b in range(B):
            out[:, b] = np.searchsorted(cdf[b], v[:, b], side="right")
    return np.minimum(out, last)


def gumbel_max(
    logits: Array,
    size: int | tuple[int, ...] | None = None,
    axis: int = -1,
    rng: int | np.random.Generator | None = None,
) -> Any:
    r"""Exact categorical samples by the Gumbel-max trick: ``argmax(log p + G)``.

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities; ``-inf`` marks an impossible category and
        ``+inf`` entries share the mass (as in :func:`softargmax.softmax`).
    size : int or tuple of ints, optional
        Number of independent draws per distribution, prepended to the batch shape.
    axis : int, default -1
        The category axis.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    ndarray of intp or NumPy integer
        Category indices along ``axis``, of shape ``size + batch`` where ``batch`` is
        the shape of ``logits`` without ``axis``.

    Raises
    ------
    ValueError
        For a distribution with a NaN, with no finite-or-``+inf`` entry, or with an
        empty axis.

    Notes
    -----
    If ``G_i`` are independent standard Gumbel variables, ``argmax_i (log p_i + G_i)``
    is distributed as ``p`` exactly [1]_. The noise comes from
    :meth:`numpy.random.Generator.gumbel`, which rejects the uniform draw that would
    need ``log(0)``, so it is always finite. The logits are first normalised with
    :func:`softargmax.log_softmax` in float64, which makes ``+inf`` entries finite.
    Each draw costs ``K`` noise values; :func:`sample_logits` draws by inverse
    transform instead.

    References
    ----------
    .. [1] E. J. Gumbel, "Statistical theory of extreme values and some practical
       applications", 1954; C. J. Maddison, D. Tarlow, T. Minka, "A* sampling", 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.sampling import gumbel_max
    >>> draws = gumbel_max(np.log([0.2, 0.3, 0.5]), size=100_000, rng=0)
    >>> draws.shape
    (100000,)
    >>> print(np.round(np.bincount(draws) / draws.size, 2))
    [0.2 0.3 0.5]

    A batch of two distributions; ``-inf`` is never drawn:

    >>> gumbel_max([[0.0, -np.inf], [-np.inf, 1000.0]], size=3, rng=1)
    array([[0, 1],
           [0, 1],
           [0, 1]])
    """
    x, batch, _, _ = _rows(logits, axis)
    shape = _size(size)
    gen = _generator(rng)
    _check_support(x, "logits")
    logp = log_softmax(x, axis=-1)
    B, K = logp.shape
    n = math.prod(shape)
    out = np.empty((n, B), dtype=np.intp)
    step = max(1, _BLOCK // max(1, B * K))
    for s in range(0, n, step):
        m = min(step, n - s)
        out[s : s + m] = np.argmax(logp + gen.gumbel(size=(m, B, K)), axis=-1)
    return _as_result(out, shape, batch)


def gumbel_softmax(
    logits: Array,
    temperature: float,
    *,
    hard: bool = False,
    axis: int = -1,
    rng: int | np.random.Generator | None = None,
) -> np.ndarray:
    r"""A Gumbel-softmax (concrete) sample: ``softmax((log p + G) / temperature)``.

    Parameters
    ----------
    logits : array_like
        Unnormalised log-probabilities, as in :func:`gumbel_max`.
    temperature : float
        ``tau >= 0``. As ``tau -> 0`` the sample tends to the one-hot vector of the
        Gumbel-max sample; ``tau = 0`` returns that limit. Large ``tau`` flattens it.
    hard : bool, default False
        Return the one-hot vector of the sample (the arg max of the relaxed sample:
        the forward value of the straight-through estimator).
    axis : int, default -1
        The category axis.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    ndarray
        Of the shape and floating dtype of ``logits`` (integers give float64): points
        of the probability simplex along ``axis``. A row with a NaN is NaN, a row with
        no finite entry is all zeros (the rules of :func:`softargmax.softmax`).

    Notes
    -----
    The noise is never infinite (see :func:`gumbel_max`) and the division by ``tau``
    is applied to max-shifted values by :func:`softargmax.softmax`, so no temperature,
    however tiny, and no logit, however large, gives NaN: the entries that fall
    behind by more than the float range get exactly 0.

    References
    ----------
    .. [1] E. Jang, S. Gu, B. Poole, "Categorical reparameterization with
       Gumbel-softmax", ICLR 2017.
    .. [2] C. J. Maddison, A. Mnih, Y. W. Teh, "The concrete distribution", ICLR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.sampling import gumbel_softmax
    >>> y = gumbel_softmax(np.log([0.2, 0.3, 0.5]), 0.5, rng=0)
    >>> print(np.round(y, 3), round(float(y.sum()), 12))
    [0.    0.006 0.993] 1.0
    >>> gumbel_softmax(np.log([0.2, 0.3, 0.5]), 0.5, hard=True, rng=0)
    array([0., 0., 1.])
    >>> gumbel_softmax([1e4, -1e4, 0.0], 1e-300, rng=0)   # no NaN, ever
    array([1., 0., 0.])
    """
    tau = _temperature(temperature)
    if not isinstance(hard, (bool, np.bool_)):
        msg = f"hard must be a bool, got {type(hard).__name__}"
        raise TypeError(msg)
    x, batch, ax, dtype = _rows(logits, axis)
    gen = _generator(rng)
    if x.size == 0:
        return _restore(x, batch, ax, dtype)
    with np.errstate(all="ignore"):
        z = log_softmax(x, axis=-1) + gen.gumbel(size=x.shape)
        nan_row = np.isnan(z).any(axis=-1, keepdims=True)
        empty_row = (z == -np.inf).all(axis=-1, keepdims=True)
        if hard or tau == 0:
            y = np.zeros_like(z)
            np.put_along_axis(y, np.argmax(z, axis=-1)[:, None], 1.0, axis=-1)
            y = np.where(empty_row, 0.0, y)
            y = np.where(nan_row, np.nan, y)
        else:
            y = softmax(z, axis=-1, temperature=tau)
    return _restore(y, batch, ax, dtype)


# --------------------------------------------------------------------------- decoding
def _filtered_log_probs(
    x: np.ndarray,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
) -> np.ndarray:
    """The decoding distribution of each row of ``x`` (B, K) as float64 log-probabilities.

    Cut-offs compare logits, not rounded probabilities, so "tied" means equal logits.
    One log-softmax before the filters and one after: top-p renormalises the mass that
    top-k kept, and min-p is a ratio to the best token, which every filter keeps.
    """
    B, K = x.shape
    neg_inf = -np.inf
    if temperature == 0:  # greedy: the first maximum (+inf included) gets everything
        first = np.argmax(x, axis=-1)[:, None]
        return np.where(np.arange(K) == first, 0.0, neg_inf)
    with np.errstate(all="ignore"):
        logp = log_softmax(x, axis=-1, temperature=temperature)
        if top_k is None and top_p is None and min_p is None:
            return logp
        keep = x > neg_inf
        if top_k is not None and top_k < K:
            kth = np.partition(x, K - top_k, axis=-1)[:, K - top_k : K - top_k + 1]
            keep &= x >= kth
        if top_p is not None and top_p < 1:
            p = np.where(keep, np.exp(logp), 0.0)
            p /= p.sum(axis=-1, keepdims=True)
            order = np.argsort(-x, axis=-1, kind="stable")
            reached = np.cumsum(np.take_along_axis(p, order, axis=-1), axis=-1) >= top_p
            # the crossing token; if rounding keeps the sum below top_p, keep everything
            cross = np.where(reached.any(axis=-1), np.argmax(reached, axis=-1), K - 1)
            cut = np.take_along_axis(x, np.take_along_axis(order, cross[:, None], axis=-1), axis=-1)
            keep &= x >= cut
        if min_p is not None and min_p > 0:
            keep &= logp >= logp.max(axis=-1, keepdims=True) + math.log(min_p)
        return log_softmax(x, axis=-1, temperature=temperature, where=keep)


def _decoding_args(temperature: Any, top_k: Any, top_p: Any, min_p: Any) -> tuple[Any, ...]:
    t = 1.0 if temperature is None else _temperature(temperature)
    return t, _top_k(top_k), _probability(top_p, "top_p"), _probability(min_p, "min_p")


def filter_logits(
    logits: Array,
    *,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    axis: int = -1,
) -> np.ndarray:
    r"""The log-probabilities that :func:`sample_logits` samples from.

    Parameters
    ----------
    logits, temperature, top_k, top_p, min_p, axis
        As in :func:`sample_logits`.

    Returns
    -------
    ndarray
        Log-probabilities of the shape of ``logits`` and its floating dtype: the
        filtered distribution renormalised, ``-inf`` for every removed token.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.sampling import filter_logits
    >>> logits = np.log([0.4, 0.3, 0.2, 0.1])
    >>> print(np.round(np.exp(filter_logits(logits, top_p=0.6)), 4))
    [0.5714 0.4286 0.     0.    ]
    >>> print(np.round(np.exp(filter_logits(logits, min_p=0.6)), 4))
    [0.5714 0.4286 0.     0.    ]
    >>> print(np.exp(filter_logits(logits, temperature=0)))
    [1. 0. 0. 0.]
    """
    args = _decoding_args(temperature, top_k, top_p, min_p)
    x, batch, ax, dtype = _rows(logits, axis)
    _check_support(x, "logits")
    return _restore(_filtered_log_probs(x, *args), batch, ax, dtype)


def sample_logits(
    logits: Array,
    *,
    temperature: float | None = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    size: int | tuple[int, ...] | None = None,
    axis: int = -1,
    rng: int | np.random.Generator | None = None,
) -> Any:
    r"""Sample tokens from logits the way language models decode.

    The filters run in this order, each on the renormalised result of the one before
    (the order of Hugging Face ``transformers``' logits warpers):

    1. temperature: ``p ∝ exp(logits / temperature)``; ``temperature = 0`` is greedy
       decoding (the arg max, the lowest index among ties; no randomness);
    2. ``top_k``: keep the tokens whose probability is at least the k-th largest;
    3. ``top_p`` (nucleus): sort by probability, find the smallest prefix whose mass
       reaches ``top_p`` (the crossing token included) and keep every token at least
       as probable as the crossing token;
    4. ``min_p``: keep the tokens with ``p >= min_p * max(p)``.

    Ties at a cut-off are all kept (tokens tie when their logits are equal), so a
    filter may keep more than ``top_k`` tokens or more mass than ``top_p``; the most
    probable token is always kept, so at least one token remains.

    Parameters
    ----------
    logits : array_like
        Scores over the vocabulary along ``axis``; ``-inf`` bans a token, ``+inf``
        tokens share the mass (and then win every filter).
    temperature : float, default 1.0
        ``>= 0``; ``None`` means 1.
    top_k : int, optional
        ``>= 1``; ``None`` disables the filter.
    top_p : float, optional
        In ``[0, 1]``; ``1`` or ``None`` disables it, ``0`` keeps only the most
        probable token(s).
    min_p : float, optional
        In ``[0, 1]``; ``0`` or ``None`` disables it.
    size : int or tuple of ints, optional
        Draws per distribution, prepended to the batch shape.
    axis : int, default -1
        The vocabulary axis; the other axes are a batch.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    ndarray of intp or NumPy integer
        Token indices of shape ``size + batch``.

    Raises
    ------
    ValueError
        For a distribution with a NaN or with every token at ``-inf``, and for
        parameters out of range.

    Notes
    -----
    The filtered log-probabilities are :func:`filter_logits`; everything runs in
    float64 through :func:`softargmax.log_softmax`, so float16 logits, logits near the
    float range and tiny temperatures give no NaN. Differences from ``transformers``:
    its warpers break ties at the top-p cut-off by the order of a sort (ours keep
    them), and its ``top_k=0`` means "off" (ours is ``None``).

    References
    ----------
    .. [1] A. Holtzman et al., "The curious case of neural text degeneration",
       ICLR 2020 (top-p).
    .. [2] N. N. Minh et al., "Turning up the heat: min-p sampling for creative and
       coherent LLM outputs", 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.sampling import sample_logits
    >>> logits = np.log([[0.4, 0.3, 0.2, 0.1], [0.1, 0.1, 0.1, 0.7]])
    >>> sample_logits(logits, temperature=0)
    array([0, 3])
    >>> draws = sample_logits(logits, top_k=2, size=10_000, rng=0)
    >>> draws.shape
    (10000, 2)
    >>> np.unique(draws[:, 0]).tolist(), np.unique(draws[:, 1]).tolist()
    ([0, 1], [0, 1, 2, 3])

    The second row keeps all four tokens: the three at 0.1 tie at the cut-off.
    """
    t, k, p, m = _decoding_args(temperature, top_k, top_p, min_p)
    x, batch, _, _ = _rows(logits, axis)
    shape = _size(size)
    gen = _generator(rng)
    _check_support(x, "logits")
    n = math.prod(shape)
    if t == 0:
        idx = np.broadcast_to(np.argmax(x, axis=-1), (n, x.shape[0])).copy()
        return _as_result(idx, shape, batch)
    with np.errstate(under="ignore"):
        probs = np.exp(_filtered_log_probs(x, t, k, p, m))
    return _as_result(_categorical(probs, n, gen), shape, batch)


# --------------------------------------------------------------------------- demo
def demo_section() -> str:
    """A short text tour of the samplers, for ``softargmax demo``."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    n = 100_000
    lines = ["Sampling (softargmax.sampling)", f"  p                      = {p.tolist()}"]
    freq = np.bincount(gumbel_max(np.log(p), size=n, rng=0), minlength=4) / n
    lines.append(f"  gumbel_max, {n} draws  -> {np.round(freq, 3).tolist()}")
    for tau in (10.0, 1.0, 0.1, 1e-300):
        y = gumbel_softmax(np.log(p), tau, rng=1)
        lines.append(f"  gumbel_softmax tau={tau:<6g} -> {np.round(y, 3).tolist()}")
    logits = np.log([0.5, 0.2, 0.15, 0.1, 0.05])
    lines.append(f"  decoding from p = {np.round(np.exp(logits), 2).tolist()}:")
    for kw in ({"top_k": 2}, {"top_p": 0.8}, {"min_p": 0.25}, {"temperature": 0.5, "top_p": 0.9}):
        q = np.exp(filter_logits(logits, **kw))  # type: ignore[arg-type]
        lines.append(f"    {str(kw):<36} keeps {np.round(q, 3).tolist()}")
    lines.append(f"    temperature=0 (greedy)               -> token {int(sample_logits(logits, temperature=0))}")
    return "\n".join(lines)
