"""Candidate samplers (proposal distributions) for sampled softmax, NCE and negative sampling.

Each sampler is a fixed distribution ``q`` over the ``V`` classes that draws candidate
ids and reports, as TensorFlow's candidate samplers do, the *expected count* of each
class in the draw: ``num_sampled * q(c)`` when sampling with replacement, and
``1 - (1 - q(c)) ** num_tries`` when sampling ``num_sampled`` distinct classes took
``num_tries`` draws (``unique=True``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._common import as_counts, as_positive_int

__all__ = [
    "CandidateSample",
    "LogUniformSampler",
    "Sampler",
    "UniformSampler",
    "UnigramSampler",
]


class CandidateSample(NamedTuple):
    """The result of :meth:`Sampler.sample`.

    Attributes
    ----------
    candidates : ndarray of int64, shape (S,)
        The sampled class ids (distinct when ``unique=True``), in draw order.
    expected_count : ndarray of float64, shape (S,)
        The expected number of times each candidate appears in such a draw.
    num_tries : int
        The number of draws it took (``S`` without ``unique``).
    unique : bool
        Whether the candidates are distinct.

    Examples
    --------
    >>> from softargmax.large_output.samplers import UniformSampler
    >>> draw = UniformSampler(10).sample(3, unique=True, rng=0)
    >>> len(set(draw.candidates.tolist())), draw.unique
    (3, True)
    """

    candidates: np.ndarray
    expected_count: np.ndarray
    num_tries: int
    unique: bool


class Sampler:
    """Base class: a fixed proposal distribution over ``V`` classes.

    Subclasses implement :meth:`_draw` (i.i.d. draws) and :meth:`log_prob`; the base
    class gives :meth:`prob`, :meth:`expected_count` and :meth:`sample` (with and
    without replacement).

    Examples
    --------
    >>> from softargmax.large_output.samplers import LogUniformSampler, Sampler
    >>> s = LogUniformSampler(100)
    >>> isinstance(s, Sampler), s.expected_count([0], 10).round(4)
    (True, array([1.5019]))
    """

    num_classes: int

    def _draw(self, gen: np.random.Generator, size: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def log_prob(self, ids: Any) -> np.ndarray:  # pragma: no cover
        """``log q(ids)``."""
        raise NotImplementedError

    def prob(self, ids: Any) -> np.ndarray:
        """``q(ids)``."""
        return np.exp(self.log_prob(ids))

    def _ids(self, ids: Any, name: str = "ids") -> np.ndarray:
        a = np.asarray(ids)
        if a.dtype.kind not in "iu":
            msg = f"{name} must be integer class ids, got dtype {a.dtype}"
            raise TypeError(msg)
        if a.size and (a.min() < 0 or a.max() >= self.num_classes):
            msg = f"{name} must lie in [0, {self.num_classes}), got values in [{a.min()}, {a.max()}]"
            raise ValueError(msg)
        return a.astype(np.int64)

    def expected_count(self, ids: Any, num_sampled: int, *, num_tries: int | None = None) -> np.ndarray:
        """Expected count of ``ids`` in a draw of ``num_sampled`` candidates.

        With ``num_tries`` (a draw of distinct candidates that took that many tries):
        ``1 - (1 - q) ** num_tries`` computed as ``-expm1(num_tries * log1p(-q))``;
        otherwise ``num_sampled * q``.
        """
        q = self.prob(ids)
        if num_tries is None:
            return num_sampled * q
        with np.errstate(divide="ignore"):
            return -np.expm1(num_tries * np.log1p(-q))

    def sample(self, num_sampled: int, *, unique: bool = False, rng: Any = None) -> CandidateSample:
        """Draw ``num_sampled`` candidates.

        Parameters
        ----------
        num_sampled : int
            S, the number of candidates (at most V with ``unique``).
        unique : bool
            Draw until ``S`` distinct classes have come up (rejecting repeats, as
            TensorFlow's ``unique=True``) and report the number of tries.
        rng : int or numpy.random.Generator, optional

        Returns
        -------
        CandidateSample
        """
        s = as_positive_int(num_sampled, "num_sampled")
        gen = np.random.default_rng(rng)
        if not unique:
            cand = self._draw(gen, s)
            return CandidateSample(cand, self.expected_count(cand, s), s, False)
        if s > self.num_classes:
            msg = f"num_sampled must be at most the number of classes {self.num_classes} with unique=True, got {s}"
            raise ValueError(msg)
        n_seen = 0
        tries = 0
        batch = max(2 * s, 16)
        chosen = np.empty(0, dtype=np.int64)
        while n_seen < s:
            draws = self._draw(gen, batch)
            allv = np.concatenate([chosen, draws])
            _, first = np.unique(allv, return_index=True)
            first.sort()
            new_first = first[first >= chosen.shape[0]]
            need = s - n_seen
            if new_first.shape[0] >= need:
                last = int(new_first[need - 1])
                tries += last - chosen.shape[0] + 1
                chosen = np.concatenate([chosen, allv[new_first[:need]]])
                n_seen = s
            else:
                tries += batch
                chosen = np.concatenate([chosen, allv[new_first]])
                n_seen = chosen.shape[0]
                batch = min(2 * batch, 1 << 24)
        return CandidateSample(chosen, self.expected_count(chosen, s, num_tries=tries), tries, True)


class UniformSampler(Sampler):
    """Uniform proposal ``q(c) = 1 / V``.

    Examples
    --------
    >>> from softargmax.large_output.samplers import UniformSampler
    >>> UniformSampler(4).prob([0, 3])
    array([0.25, 0.25])
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = as_positive_int(num_classes, "num_classes")

    def _draw(self, gen: np.random.Generator, size: int) -> np.ndarray:
        return gen.integers(0, self.num_classes, size=size, dtype=np.int64)

    def log_prob(self, ids: Any) -> np.ndarray:
        a = self._ids(ids)
        return np.full(a.shape, -np.log(self.num_classes))

    def __repr__(self) -> str:
        return f"UniformSampler({self.num_classes})"


class LogUniformSampler(Sampler):
    r"""Zipfian (log-uniform) proposal, TensorFlow's ``log_uniform_candidate_sampler``.

    .. math:: q(c) = \frac{\log(c + 2) - \log(c + 1)}{\log(V + 1)},

    for class ids sorted by decreasing frequency. A draw is
    ``floor(exp(u * log(V + 1))) - 1`` for ``u`` uniform in [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.samplers import LogUniformSampler
    >>> s = LogUniformSampler(1000)
    >>> float(s.prob(np.arange(1000)).sum())
    1.0
    >>> s.sample(5, rng=0).candidates.shape
    (5,)
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = as_positive_int(num_classes, "num_classes")
        self._log_range = np.log1p(float(self.num_classes))

    def _draw(self, gen: np.random.Generator, size: int) -> np.ndarray:
        u = gen.random(size)
        ids = np.floor(np.exp(u * self._log_range)).astype(np.int64) - 1
        return np.clip(ids, 0, self.num_classes - 1)

    def log_prob(self, ids: Any) -> np.ndarray:
        a = self._ids(ids).astype(np.float64)
        return np.log(np.log1p(1.0 / (a + 1.0))) - np.log(self._log_range)

    def __repr__(self) -> str:
        return f"LogUniformSampler({self.num_classes})"


class UnigramSampler(Sampler):
    r"""Unigram proposal ``q(c) ∝ counts[c] ** power``, drawn in O(1) by the alias method.

    word2vec's negative sampling uses ``power=0.75``. Vose's alias table is built once in
    ``O(V)``; each draw takes one uniform column and one biased coin.

    Parameters
    ----------
    counts : array_like, shape (V,)
        Non-negative frequencies, not all zero.
    power : float, default 0.75
        Exponent applied to the counts; 0 gives the uniform distribution over the
        classes with a positive count. Classes with count 0 are never drawn.

    Attributes
    ----------
    probs : ndarray, shape (V,)
        The normalised proposal.
    alias_prob, alias : ndarray
        Vose's table: column ``j`` keeps ``j`` with probability ``alias_prob[j]`` and
        otherwise gives ``alias[j]``.

    References
    ----------
    .. [1] M. D. Vose, "A linear algorithm for generating random numbers with a given
       distribution", IEEE Trans. Software Eng. 17 (1991).

    Examples
    --------
    >>> from softargmax.large_output.samplers import UnigramSampler
    >>> s = UnigramSampler([16, 1, 0], power=0.5)
    >>> s.probs
    array([0.8, 0.2, 0. ])
    >>> sorted(set(s.sample(50, rng=0).candidates.tolist()))
    [0, 1]
    """

    def __init__(self, counts: Any, power: float = 0.75) -> None:
        c = as_counts(counts)
        p = float(power)
        if not np.isfinite(p) or p < 0:
            msg = f"power must be a finite number >= 0, got {power!r}"
            raise ValueError(msg)
        with np.errstate(divide="ignore"):
            w = np.where(c > 0, c**p, 0.0)
        total = w.sum()
        if not total > 0:
            msg = "counts must have at least one positive entry"
            raise ValueError(msg)
        self.num_classes = c.shape[0]
        self.power = p
        self.probs = w / total
        self.alias_prob, self.alias = _alias_table(self.probs)
        for a in (self.probs, self.alias_prob, self.alias):
            a.flags.writeable = False

    def _draw(self, gen: np.random.Generator, size: int) -> np.ndarray:
        col = gen.integers(0, self.num_classes, size=size, dtype=np.int64)
        keep = gen.random(size) < self.alias_prob[col]
        return np.where(keep, col, self.alias[col])

    def log_prob(self, ids: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probs[self._ids(ids)])

    def __repr__(self) -> str:
        return f"UnigramSampler(V={self.num_classes}, power={self.power})"


def _alias_table(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias method: ``(keep probability, alias)`` per column, in O(V)."""
    v = probs.shape[0]
    scaled = probs * v
    prob = np.ones(v)
    alias = np.arange(v, dtype=np.int64)
    small = [int(i) for i in np.flatnonzero(scaled < 1.0)]
    large = [int(i) for i in np.flatnonzero(scaled >= 1.0)]
    while small and large:
        s = small.pop()
        g = large.pop()
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    # Leftovers are 1 up to rounding.
    for i in small + large:
        prob[i] = 1.0
    return prob, alias
