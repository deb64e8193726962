r"""Sampled output losses: sampled softmax, NCE and negative sampling (and the full softmax).

All four share one signature, TensorFlow's shape of API with NumPy arrays:
``loss(h, W, b, target, *, ...)`` with hidden vectors ``h`` (N, D), output weights ``W``
(V, D), biases ``b`` (V,) or ``None`` and class ids ``target`` (N,). With
``return_grad=True`` each returns a :class:`~softargmax.large_output._common.LossGrad`:
the loss, ``dh`` and the gradient of only the rows of ``W`` and ``b`` that the loss
touched (the target rows and the sampled rows), so an update costs O((N + S) D).

The sampled losses draw one set of ``S = num_sampled`` candidates from ``sampler`` and
share it across the batch, as TensorFlow does. Their logits, for the target ``t`` and a
candidate ``c`` with expected counts ``Q`` (see :mod:`.samplers`), are

.. math:: o_t = h \cdot w_t + b_t - \log Q(t), \qquad o_c = h \cdot w_c + b_c - \log Q(c)

(the "logQ correction", dropped with ``subtract_log_q=False``). Then

* sampled softmax: ``-log softmax([o_t, o_c1, ..., o_cS])[0]`` (importance sampling of
  the partition function; Jean et al. 2015);
* NCE: ``softplus(-o_t) + sum_c softplus(o_c)``, logistic regression of data against
  noise (Gutmann & Hyvärinen 2010; Mnih & Teh 2012);
* negative sampling: the NCE formula without the logQ correction (Mikolov et al. 2013).

A removed accidental hit (a candidate equal to the example's target) gets the logit
``-inf``: it leaves the softmax and contributes nothing to the NCE sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import log_softmax, softmax
from ._common import (
    LossGrad,
    as_class_ids,
    as_hidden,
    as_positive_int,
    as_weight,
    check_reduction,
    log_sigmoid,
    reduce_loss,
    sigmoid,
)
from .samplers import CandidateSample, Sampler

__all__ = [
    "LossGrad",
    "full_softmax_loss",
    "negative_sampling_loss",
    "nce_loss",
    "sampled_softmax_loss",
]


def _prepare(h: Any, W: Any, b: Any, target: Any) -> tuple[Any, ...]:
    WW = as_weight(W)
    hh, single = as_hidden(h, WW.shape[1])
    v = WW.shape[0]
    bb = None
    if b is not None:
        bb = np.asarray(b)
        if bb.dtype.kind not in "biuf":
            msg = f"b must be an array of real numbers or None, got dtype {bb.dtype}"
            raise TypeError(msg)
        if bb.shape != (v,):
            msg = f"b must have shape ({v},) to match W, got {bb.shape}"
            raise ValueError(msg)
    work = np.result_type(hh.dtype, WW.dtype, np.float32 if bb is None else bb.dtype)
    if work == np.float16:
        work = np.dtype(np.float32)
    t = as_class_ids(target, hh.shape[0], v)
    hh = hh.astype(work, copy=False)
    WW = WW.astype(work, copy=False)
    bb = None if bb is None else bb.astype(work)
    return hh, WW, bb, t, single


def _scores(h: np.ndarray, W: np.ndarray, b: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    s = h @ W[rows].T
    return s if b is None else s + b[rows]


def _finish(
    losses: np.ndarray,
    dlogits: np.ndarray | None,
    h: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    t: np.ndarray,
    cand: np.ndarray,
    reduction: str,
    single: bool,
    dtypes: tuple[Any, Any, Any],
) -> Any:
    """Reduce, and from d loss / d logits (column 0 the target) make the sparse gradients."""
    value, factor = reduce_loss(losses, reduction)
    if single and reduction == "none":
        value = value[0]
    if dlogits is None:
        return value
    dlogits = dlogits * factor
    d_true, d_samp = dlogits[:, 0], dlogits[:, 1:]
    dh = d_true[:, None] * W[t] + d_samp @ W[cand]
    all_rows = np.concatenate([t, cand])
    uniq, inv = np.unique(all_rows, return_inverse=True)
    dW = np.zeros((uniq.shape[0], W.shape[1]), dtype=W.dtype)
    np.add.at(dW, inv, np.concatenate([d_true[:, None] * h, d_samp.T @ h]))
    db = None
    if b is not None:
        db = np.zeros(uniq.shape[0], dtype=b.dtype)
        np.add.at(db, inv, np.concatenate([d_true, d_samp.sum(axis=0)]))
    h_dt, w_dt, b_dt = dtypes
    return LossGrad(
        value,
        (dh[0] if single else dh).astype(h_dt, copy=False),
        uniq,
        dW.astype(w_dt, copy=False),
        None if db is None else db.astype(b_dt, copy=False),
    )


def _out_dtypes(h: Any, W: Any, b: Any) -> tuple[Any, Any, Any]:
    def dt(a: Any) -> Any:
        d = np.asarray(a).dtype
        return d if d.kind == "f" else np.dtype(np.float64)

    return dt(h), dt(W), None if b is None else dt(b)


def _draw(
    sampler: Any, num_sampled: Any, unique: bool, sampled: Any, rng: Any
) -> CandidateSample:
    if not isinstance(sampler, Sampler):
        msg = f"sampler must be a Sampler (e.g. LogUniformSampler), got {type(sampler).__name__}"
        raise TypeError(msg)
    s = as_positive_int(num_sampled, "num_sampled")
    if sampled is None:
        return sampler.sample(s, unique=unique, rng=rng)
    if not isinstance(sampled, CandidateSample):
        msg = f"sampled must be a CandidateSample from Sampler.sample, got {type(sampled).__name__}"
        raise TypeError(msg)
    if sampled.candidates.shape != (s,):
        msg = f"sampled must hold num_sampled={s} candidates, got {sampled.candidates.shape[0]}"
        raise ValueError(msg)
    return sampled


def _candidate_logits(
    h: np.ndarray,
    W: np.ndarray,
    b: np.ndarray | None,
    t: np.ndarray,
    sampler: Sampler,
    draw: CandidateSample,
    subtract_log_q: bool,
    remove_accidental_hits: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 1 + S)`` logits (column 0 the target) and the candidate ids."""
    cand = np.asarray(draw.candidates, dtype=np.int64)
    true = np.einsum("ij,ij->i", h, W[t])
    if b is not None:
        true = true + b[t]
    samp = _scores(h, W, b, cand)
    if subtract_log_q:
        num_tries = draw.num_tries if draw.unique else None
        true_q = sampler.expected_count(t, cand.shape[0], num_tries=num_tries)
        with np.errstate(divide="ignore"):
            true = true - np.log(true_q).astype(h.dtype)
            samp = samp - np.log(np.asarray(draw.expected_count)).astype(h.dtype)
    logits = np.concatenate([true[:, None], samp], axis=1)
    if remove_accidental_hits:
        hits = cand[None, :] == t[:, None]
        logits[:, 1:][hits] = -np.inf
    return logits, cand


def full_softmax_loss(
    h: Any, W: Any, b: Any, target: Any, *, reduction: str = "mean", return_grad: bool = False
) -> Any:
    """Cross-entropy of the full softmax over all ``V`` classes, the exact reference.

    Same signature and return as :func:`sampled_softmax_loss` (the touched rows are all
    ``V``). Costs O(N V D).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.losses import full_softmax_loss
    >>> W = np.eye(3); h = np.array([[1000.0, 0.0, 0.0]])
    >>> float(full_softmax_loss(h, W, None, [0]))
    0.0
    """
    reduction = check_reduction(reduction)
    dtypes = _out_dtypes(h, W, b)
    hh, WW, bb, t, single = _prepare(h, W, b, target)
    logits = hh @ WW.T
    if bb is not None:
        logits = logits + bb
    n, v = logits.shape
    # Put the target in column 0 to share _finish: a permuted view of the same softmax.
    losses = -log_softmax(logits, axis=-1)[np.arange(n), t] if v else np.zeros(n)
    if not return_grad:
        return _finish(losses, None, hh, WW, bb, t, t, reduction, single, dtypes)
    p = softmax(logits, axis=-1)
    p[np.arange(n), t] -= 1.0
    value, factor = reduce_loss(losses, reduction)
    if single and reduction == "none":
        value = value[0]
    g = p * factor
    dh = g @ WW
    rows = np.arange(v, dtype=np.int64)
    db = None if bb is None else g.sum(axis=0).astype(dtypes[2], copy=False)
    return LossGrad(
        value,
        (dh[0] if single else dh).astype(dtypes[0], copy=False),
        rows,
        (g.T @ hh).astype(dtypes[1], copy=False),
        db,
    )


def sampled_softmax_loss(
    h: Any,
    W: Any,
    b: Any,
    target: Any,
    *,
    num_sampled: int,
    sampler: Sampler,
    remove_accidental_hits: bool = True,
    subtract_log_q: bool = True,
    unique: bool = True,
    sampled: CandidateSample | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
    rng: Any = None,
) -> Any:
    """Sampled softmax cross-entropy (TensorFlow's ``tf.nn.sampled_softmax_loss``).

    Parameters
    ----------
    h : array_like, shape (N, D) or (D,)
        Hidden vectors (TensorFlow's ``inputs``).
    W : array_like, shape (V, D)
        Output weights, one row per class.
    b : array_like, shape (V,), or None
        Output biases.
    target : array_like of int, shape (N,)
        The true class of each example (``num_true=1``).
    num_sampled : int
        S, the number of candidates shared across the batch.
    sampler : Sampler
        The proposal, e.g. :class:`~.samplers.LogUniformSampler` for classes sorted
        by frequency or :class:`~.samplers.UnigramSampler`.
    remove_accidental_hits : bool, default True
        Drop a candidate from an example's softmax when it equals that example's target.
    subtract_log_q : bool, default True
        Subtract the log expected counts from the logits (the importance-sampling
        correction that makes the estimate consistent).
    unique : bool, default True
        Draw distinct candidates (TensorFlow's default).
    sampled : CandidateSample, optional
        Precomputed candidates (TensorFlow's ``sampled_values``); no drawing then.
    reduction : {"mean", "sum", "none"}
    return_grad : bool
        Return a ``LossGrad(loss, dh, rows, dW, db)``.
    rng : int or numpy.random.Generator, optional

    Returns
    -------
    float, ndarray or LossGrad

    Notes
    -----
    With every class sampled by a uniform proposal (``num_sampled = V``,
    ``unique=True``) the correction is the same for all classes and the loss equals
    the full softmax cross-entropy exactly.

    References
    ----------
    .. [1] S. Jean, K. Cho, R. Memisevic and Y. Bengio, "On using very large target
       vocabulary for neural machine translation", ACL 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.losses import full_softmax_loss, sampled_softmax_loss
    >>> from softargmax.large_output.samplers import UniformSampler
    >>> rng = np.random.default_rng(0)
    >>> h, W, b = rng.normal(size=(4, 3)), rng.normal(size=(6, 3)), rng.normal(size=6)
    >>> y = np.array([0, 5, 2, 2])
    >>> exact = full_softmax_loss(h, W, b, y)
    >>> approx = sampled_softmax_loss(h, W, b, y, num_sampled=6, sampler=UniformSampler(6), rng=0)
    >>> bool(np.isclose(exact, approx))
    True
    """
    reduction = check_reduction(reduction)
    dtypes = _out_dtypes(h, W, b)
    hh, WW, bb, t, single = _prepare(h, W, b, target)
    draw = _draw(sampler, num_sampled, unique, sampled, rng)
    _check_sampler_size(sampler, WW.shape[0])
    logits, cand = _candidate_logits(hh, WW, bb, t, sampler, draw, subtract_log_q, remove_accidental_hits)
    with np.errstate(invalid="ignore"):
        logp = log_softmax(logits, axis=-1)
    losses = -logp[:, 0]
    dlogits = None
    if return_grad:
        dlogits = softmax(logits, axis=-1)
        dlogits[:, 0] -= 1.0
    return _finish(losses, dlogits, hh, WW, bb, t, cand, reduction, single, dtypes)


def _check_sampler_size(sampler: Sampler, v: int) -> None:
    if sampler.num_classes != v:
        msg = f"sampler must cover the {v} classes of W, got a sampler over {sampler.num_classes}"
        raise ValueError(msg)


def _logistic(
    h: Any,
    W: Any,
    b: Any,
    target: Any,
    num_sampled: Any,
    sampler: Any,
    remove_accidental_hits: bool,
    subtract_log_q: bool,
    unique: bool,
    sampled: Any,
    reduction: str,
    return_grad: bool,
    rng: Any,
) -> Any:
    """NCE / negative sampling: binary logistic loss, target = 1, candidates = 0."""
    reduction = check_reduction(reduction)
    dtypes = _out_dtypes(h, W, b)
    hh, WW, bb, t, single = _prepare(h, W, b, target)
    draw = _draw(sampler, num_sampled, unique, sampled, rng)
    _check_sampler_size(sampler, WW.shape[0])
    logits, cand = _candidate_logits(hh, WW, bb, t, sampler, draw, subtract_log_q, remove_accidental_hits)
    # -log sigma(o_t) - sum_c log sigma(-o_c); a removed hit (o_c = -inf) gives 0.
    losses = -log_sigmoid(logits[:, 0]) - log_sigmoid(-logits[:, 1:]).sum(axis=1)
    dlogits = None
    if return_grad:
        dlogits = sigmoid(logits)
        dlogits[:, 0] -= 1.0
    return _finish(losses, dlogits, hh, WW, bb, t, cand, reduction, single, dtypes)


def nce_loss(
    h: Any,
    W: Any,
    b: Any,
    target: Any,
    *,
    num_sampled: int,
    sampler: Sampler,
    remove_accidental_hits: bool = False,
    unique: bool = True,
    sampled: CandidateSample | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
    rng: Any = None,
) -> Any:
    """Noise-contrastive estimation loss (TensorFlow's ``tf.nn.nce_loss``).

    The per-example loss is the binary cross-entropy of the target against the noise
    candidates, with logits corrected by ``log Q`` (``log(k q)`` for ``k`` draws with
    replacement): ``softplus(-o_t) + sum_c softplus(o_c)``. Parameters and return as
    :func:`sampled_softmax_loss`; ``remove_accidental_hits`` defaults to ``False``
    as in TensorFlow.

    References
    ----------
    .. [1] M. Gutmann and A. Hyvärinen, "Noise-contrastive estimation", AISTATS 2010.
    .. [2] A. Mnih and Y. W. Teh, "A fast and simple algorithm for training neural
       probabilistic language models", ICML 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.losses import nce_loss
    >>> from softargmax.large_output.samplers import UniformSampler
    >>> s = UniformSampler(4)  # 2 draws with replacement: Q = 2 * 1/4 for every class
    >>> loss = nce_loss(np.zeros((1, 2)), np.zeros((4, 2)), None, [1], num_sampled=2,
    ...                 sampler=s, unique=False, rng=0)
    >>> print(round(loss, 6))  # softplus(-log 2) + 2 softplus(log 2) = log 1.5 + 2 log 3
    2.60269
    """
    return _logistic(h, W, b, target, num_sampled, sampler, remove_accidental_hits, True,
                     unique, sampled, reduction, return_grad, rng)


def negative_sampling_loss(
    h: Any,
    W: Any,
    b: Any,
    target: Any,
    *,
    num_sampled: int,
    sampler: Sampler,
    remove_accidental_hits: bool = True,
    unique: bool = False,
    sampled: CandidateSample | None = None,
    reduction: str = "mean",
    return_grad: bool = False,
    rng: Any = None,
) -> Any:
    """word2vec's negative-sampling loss: ``-log σ(s_t) - sum_c log σ(-s_c)``.

    NCE without the logQ correction, with candidates drawn with replacement and
    accidental hits skipped, as word2vec does (with ``b=None`` and a
    :class:`~.samplers.UnigramSampler` of power 0.75 it is word2vec's objective, with
    the candidates shared across the batch). Parameters and return as
    :func:`sampled_softmax_loss`.

    References
    ----------
    .. [1] T. Mikolov, I. Sutskever, K. Chen, G. Corrado and J. Dean, "Distributed
       representations of words and phrases and their compositionality", NIPS 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.losses import negative_sampling_loss
    >>> from softargmax.large_output.samplers import UnigramSampler
    >>> s = UnigramSampler([5, 3, 2, 1])
    >>> draw = s.sample(3, rng=1)
    >>> draw.candidates  # the hit on class 0 is skipped
    array([1, 0, 3])
    >>> res = negative_sampling_loss(np.zeros((1, 2)), np.zeros((4, 2)), None, [0],
    ...                              num_sampled=3, sampler=s, sampled=draw, return_grad=True)
    >>> print(round(res.loss, 6))  # 3 terms of log 2: the target and two candidates
    2.079442
    """
    return _logistic(h, W, b, target, num_sampled, sampler, remove_accidental_hits, False,
                     unique, sampled, reduction, return_grad, rng)
