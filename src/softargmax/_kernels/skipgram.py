"""numba kernels for skip-gram training (word2vec's inner loops), one job of sentences per call.

The kernels release the GIL (``nogil=True``) so that several Python threads can train
the same parameter arrays at once without locks, Hogwild-style, as word2vec and gensim do.
Vectors are float32; the dot products are reductions compiled with the
``{"reassoc", "contract"}`` flags so they vectorise (inputs here are always finite).
"""

from __future__ import annotations

import numpy as np
from numba import njit

SOFTMAX, HS, SAMPLED, NCE, NEGATIVE = 0, 1, 2, 3, 4

_FM = {"reassoc", "contract"}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(cache=True, nogil=True)
def _next(state):  # pragma: no cover - compiled
    """splitmix64: the next 64 random bits; ``state`` is a one-element uint64 array."""
    state[0] += _GOLDEN
    z = state[0]
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, nogil=True)
def _uniform(state):  # pragma: no cover - compiled
    return float(_next(state) >> _S11) * _INV53


@njit(cache=True, nogil=True)
def _randint(state, n):  # pragma: no cover - compiled
    return int(_uniform(state) * n)


@njit(cache=True, nogil=True)
def _draw(state, alias_prob, alias):  # pragma: no cover - compiled
    """One draw from Vose's alias table: a column and a biased coin."""
    v = alias_prob.shape[0]
    j = _randint(state, v)
    if j >= v:
        j = v - 1
    if _uniform(state) < alias_prob[j]:
        return j
    return alias[j]


@njit(cache=True, nogil=True, fastmath=_FM)
def _dot(a, b):  # pragma: no cover - compiled
    s = np.float32(0.0)
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@njit(cache=True, nogil=True, fastmath=_FM)
def _axpy(alpha, x, y):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        y[i] += alpha * x[i]


@njit(cache=True, nogil=True)
def _sigmoid(z):  # pragma: no cover - compiled
    if z >= 0:
        return 1.0 / (1.0 + np.exp(-z))
    e = np.exp(z)
    return e / (1.0 + e)


@njit(cache=True, nogil=True)
def _log_sigmoid(z):  # pragma: no cover - compiled
    if z >= 0:
        return -np.log1p(np.exp(-z))
    return z - np.log1p(np.exp(z))


@njit(cache=True, nogil=True)
def _pair(mode, v_in, target, syn1, bias, neu1e, alpha, offsets, codes, paths,
          alias_prob, alias, log_kq, num_neg, state, cand, logits, with_loss):  # pragma: no cover
    """One (input word, target word) update; returns the example's loss (nats), or 0
    without ``with_loss`` (the logistic layers then skip a log per term)."""
    loss = 0.0
    if mode == HS:
        for p in range(offsets[target], offsets[target + 1]):
            node = paths[p]
            f = _dot(v_in, syn1[node])
            if with_loss:
                loss -= _log_sigmoid((1.0 - 2.0 * codes[p]) * f)
            g = np.float32((1.0 - codes[p] - _sigmoid(f)) * alpha)
            _axpy(g, syn1[node], neu1e)
            _axpy(g, v_in, syn1[node])
        return loss
    if mode in (NEGATIVE, NCE):
        for d in range(num_neg + 1):
            if d == 0:
                w = target
                label = 1.0
            else:
                w = _draw(state, alias_prob, alias)
                if w == target:
                    continue
                label = 0.0
            f = float(_dot(v_in, syn1[w]))
            if mode == NCE:
                f += bias[w] - log_kq[w]
            if with_loss:
                loss -= _log_sigmoid(f if label == 1.0 else -f)
            g = np.float32((label - _sigmoid(f)) * alpha)
            _axpy(g, syn1[w], neu1e)
            _axpy(g, v_in, syn1[w])
            if mode == NCE:
                bias[w] += g
        return loss
    if mode == SAMPLED:
        n = 1
        cand[0] = target
        logits[0] = _dot(v_in, syn1[target]) + bias[target] - log_kq[target]
        for _ in range(num_neg):
            w = _draw(state, alias_prob, alias)
            if w == target:
                continue  # accidental hit removed
            cand[n] = w
            logits[n] = _dot(v_in, syn1[w]) + bias[w] - log_kq[w]
            n += 1
        k = n
    else:  # SOFTMAX over every class
        k = syn1.shape[0]
        for w in range(k):
            cand[w] = w
            logits[w] = _dot(v_in, syn1[w]) + bias[w]
    m = logits[0]
    for j in range(1, k):
        m = max(m, logits[j])
    s = 0.0
    for j in range(k):
        logits[j] = np.exp(logits[j] - m)
        s += logits[j]
    t_pos = 0
    if mode == SOFTMAX:
        t_pos = target
    loss = -(np.log(logits[t_pos] / s))
    for j in range(k):
        p = logits[j] / s
        g = np.float32(((1.0 if j == t_pos else 0.0) - p) * alpha)
        w = cand[j]
        _axpy(g, syn1[w], neu1e)
        _axpy(g, v_in, syn1[w])
        bias[w] += g
    return loss


@njit(cache=True, nogil=True)
def train_job(ids, sent_starts, keep_prob, syn0, syn1, bias, mode, window, alpha,
              offsets, codes, paths, alias_prob, alias, log_kq, num_neg, seed,
              with_loss, stop):  # pragma: no cover
    """Train on the sentences ``ids[sent_starts[i]:sent_starts[i + 1]]`` of one job.

    For each sentence: subsample (word ``w`` kept with probability ``keep_prob[w]``),
    then for each position a reduced window ``b`` in ``[1, window]`` drawn uniformly and
    every pair (context word, centre word) within it: the context word's vector is the
    input, the centre word the target (word2vec's orientation). Returns
    ``(raw words, pairs trained, summed loss)``; a job stops early, between sentences,
    once another thread sets ``stop[0]`` (a time budget ran out). The loss of the softmax layers is always
    computed; the logistic layers compute it only ``with_loss``).
    """
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed)
    dim = syn0.shape[1]
    neu1e = np.empty(dim, dtype=np.float32)
    size = max(num_neg + 1, syn1.shape[0] if mode == SOFTMAX else 1)
    cand = np.empty(size, dtype=np.int64)
    logits = np.empty(size, dtype=np.float64)
    longest = 0
    for i in range(sent_starts.shape[0] - 1):
        longest = max(longest, sent_starts[i + 1] - sent_starts[i])
    sent = np.empty(longest, dtype=np.int64)
    n_pairs = 0
    loss = 0.0
    words = 0
    for i in range(sent_starts.shape[0] - 1):
        if stop[0]:
            break
        words += sent_starts[i + 1] - sent_starts[i]
        n = 0
        for p in range(sent_starts[i], sent_starts[i + 1]):
            w = ids[p]
            if keep_prob[w] >= 1.0 or _uniform(state) < keep_prob[w]:
                sent[n] = w
                n += 1
        for pos in range(n):
            target = sent[pos]
            b = window - _randint(state, window)
            lo = max(0, pos - b)
            hi = min(n, pos + b + 1)
            for c in range(lo, hi):
                if c == pos:
                    continue
                v_in = syn0[sent[c]]
                neu1e[:] = 0.0
                loss += _pair(mode, v_in, target, syn1, bias, neu1e, alpha, offsets, codes,
                              paths, alias_prob, alias, log_kq, num_neg, state, cand, logits,
                              with_loss)
                _axpy(np.float32(1.0), neu1e, v_in)
                n_pairs += 1
    return words, n_pairs, loss
