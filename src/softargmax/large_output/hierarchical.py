"""Hierarchical softmax over a Huffman tree: ``log p(y | h)`` in O(depth) instead of O(V)."""

from __future__ import annotations

import heapq
from typing import Any, Literal, overload

import numpy as np

from ._common import (
    LossGrad,
    as_class_ids,
    as_hidden,
    as_positive_int,
    check_reduction,
    log_sigmoid,
    reduce_loss,
    sigmoid,
)
from .huffman import HuffmanTree

__all__ = ["HierarchicalSoftmax"]


def _segments(offsets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row number and CSR position of every path entry of the classes ``ids``."""
    starts = offsets[ids]
    lens = offsets[ids + 1] - starts
    rows = np.repeat(np.arange(ids.shape[0]), lens)
    first = np.cumsum(lens) - lens
    pos = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - first, lens)
    return rows, pos


class HierarchicalSoftmax:
    r"""Hierarchical softmax: a class is a root-to-leaf path of binary decisions.

    Each of the ``V - 1`` inner nodes ``n`` of a :class:`HuffmanTree` holds a vector
    ``v_n`` (a row of :attr:`weight`); class ``y`` with code bits ``c_1..c_L`` on the path
    ``n_1..n_L`` has

    .. math:: \log p(y \mid h) = \sum_{l=1}^{L} \log \sigma\big((1 - 2 c_l)\, h \cdot v_{n_l}\big),

    a normalised distribution over the ``V`` classes for every ``h``, computed in
    ``O(L)`` (about ``log2 V``, less for frequent classes) instead of ``O(V)``.

    Parameters
    ----------
    tree : HuffmanTree
        The tree (see :meth:`HuffmanTree.from_counts`).
    dim : int
        D, the size of the hidden vectors.
    rng : int or numpy.random.Generator, optional
        Seed for the initial weights.
    init_scale : float, default 0.0
        The weights start uniform in ``[-init_scale, init_scale]``; 0 (word2vec's choice)
        starts every decision at 1/2, i.e. ``p(y) = 2**-depth(y)``.
    dtype : {numpy.float32, numpy.float64}
        dtype of the weights.

    Attributes
    ----------
    weight : ndarray, shape (V - 1, D)
        The inner-node vectors (word2vec's ``syn1``); writeable, updated by the caller.

    Notes
    -----
    ``log σ(z)`` is computed as ``-logaddexp(0, -z)``, finite for every finite ``z``.
    The gradient of ``-log p(y | h)`` with respect to the node score
    ``s = h . v_n`` is ``(1 - 2c) (σ((1 - 2c) s) - 1) = σ(s) - (1 - c)``, word2vec's
    ``(1 - code - f)`` with the sign of a loss.

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.large_output.huffman import HuffmanTree
    >>> from softargmax.large_output.hierarchical import HierarchicalSoftmax
    >>> tree = HuffmanTree.from_counts([50, 20, 20, 5, 5])
    >>> hs = HierarchicalSoftmax(tree, dim=3, rng=0, init_scale=0.5)
    >>> h = np.array([[0.2, -1.0, 0.5]])
    >>> p = np.exp(hs.log_probs(h))
    >>> p.shape, round(float(p.sum()), 12)
    ((1, 5), 1.0)
    >>> bool(np.allclose(hs.log_prob(h, [3]), np.log(p[:, 3])))
    True
    >>> hs.predict(h, k=2).shape
    (1, 2)
    """

    def __init__(
        self,
        tree: HuffmanTree,
        dim: int,
        *,
        rng: Any = None,
        init_scale: float = 0.0,
        dtype: Any = np.float64,
    ) -> None:
        if not isinstance(tree, HuffmanTree):
            msg = f"tree must be a HuffmanTree, got {type(tree).__name__}"
            raise TypeError(msg)
        self.tree = tree
        self.dim = as_positive_int(dim, "dim")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            msg = f"dtype must be float32 or float64, got {dt}"
            raise TypeError(msg)
        scale = float(init_scale)
        if not (np.isfinite(scale) and scale >= 0):
            msg = f"init_scale must be a finite number >= 0, got {init_scale!r}"
            raise ValueError(msg)
        gen = np.random.default_rng(rng)
        w = gen.uniform(-scale, scale, size=(tree.num_inner, self.dim)) if scale else np.zeros(
            (tree.num_inner, self.dim)
        )
        self.weight = np.ascontiguousarray(w, dtype=dt)

    @property
    def num_classes(self) -> int:
        return self.tree.num_classes

    def _prepare(self, h: Any, target: Any = None) -> tuple[np.ndarray, np.ndarray | None, bool]:
        hh, single = as_hidden(h, self.dim)
        hh = hh.astype(np.result_type(hh.dtype, self.weight.dtype), copy=False)
        t = None if target is None else as_class_ids(target, hh.shape[0], self.num_classes)
        return hh, t, single

    def _path_terms(self, h: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per path entry: row, node, sign (1 - 2c) and the signed score."""
        rows, pos = _segments(self.tree.offsets, t)
        nodes = self.tree.paths[pos].astype(np.int64)
        sign = 1.0 - 2.0 * self.tree.codes[pos].astype(h.dtype)
        z = sign * np.einsum("ij,ij->i", h[rows], self.weight[nodes])
        return rows, nodes, sign, z

    def log_prob(self, h: Any, target: Any) -> np.ndarray:
        """``log p(target | h)``: the sum of the log-sigmoids along the target's path.

        Parameters
        ----------
        h : array_like, shape (N, D) or (D,)
            Hidden vectors.
        target : array_like of int, shape (N,)
            Class ids in ``[0, V)``.

        Returns
        -------
        ndarray, shape (N,) (a 0-d array for a single 1-d ``h``)

        Examples
        --------
        >>> import numpy as np
        >>> from softargmax.large_output.huffman import HuffmanTree
        >>> from softargmax.large_output.hierarchical import HierarchicalSoftmax
        >>> hs = HierarchicalSoftmax(HuffmanTree.from_counts([1, 1, 2, 4]), dim=2)
        >>> np.exp(hs.log_prob(np.zeros((4, 2)), [0, 1, 2, 3]))  # zero weights: 2**-depth
        array([0.125, 0.125, 0.25 , 0.5  ])
        """
        hh, t, single = self._prepare(h, target)
        assert t is not None
        rows, _, _, z = self._path_terms(hh, t)
        out = np.bincount(rows, weights=log_sigmoid(z), minlength=hh.shape[0]).astype(hh.dtype)
        return out[0] if single else out

    def log_probs(self, h: Any) -> np.ndarray:
        """The full distribution ``log p(y | h)`` for every class: shape (N, V).

        It sums to 1 (in probability) for every row, up to rounding; the cost is the
        sum of all code lengths times N, so use it for evaluation, not training.

        Examples
        --------
        >>> import numpy as np
        >>> from softargmax.large_output.huffman import HuffmanTree
        >>> from softargmax.large_output.hierarchical import HierarchicalSoftmax
        >>> hs = HierarchicalSoftmax(HuffmanTree.from_counts([3, 1, 1]), dim=2, rng=1,
        ...                          init_scale=1.0)
        >>> float(np.exp(hs.log_probs([1.0, -2.0])).sum())
        1.0
        """
        hh, _, single = self._prepare(h)
        n = hh.shape[0]
        v = self.num_classes
        if v == 1:
            out = np.zeros((n, 1), dtype=hh.dtype)
            return out[0] if single else out
        s = hh @ self.weight.T  # (N, V-1) node scores
        ls_pos = log_sigmoid(s)  # bit 0
        ls_neg = log_sigmoid(-s)  # bit 1
        codes = self.tree.codes.astype(bool)
        paths = self.tree.paths
        # Accumulate along the CSR paths: depth-many gathers, each over all classes.
        terms = np.where(codes[None, :], ls_neg[:, paths], ls_pos[:, paths])
        out = np.add.reduceat(terms, self.tree.offsets[:-1], axis=1)
        return out[0] if single else out

    @overload
    def loss(
        self, h: Any, target: Any, *, reduction: str = ..., return_grad: Literal[False] = ...
    ) -> Any: ...
    @overload
    def loss(
        self, h: Any, target: Any, *, reduction: str = ..., return_grad: Literal[True]
    ) -> LossGrad: ...
    def loss(
        self, h: Any, target: Any, *, reduction: str = "mean", return_grad: bool = False
    ) -> Any:
        """Negative log-likelihood ``-log p(target | h)`` and its gradients.

        Parameters
        ----------
        h : array_like, shape (N, D)
        target : array_like of int, shape (N,)
        reduction : {"mean", "sum", "none"}
            ``"none"`` gives the per-example losses and unscaled per-example gradients.
        return_grad : bool
            Also return the gradients with respect to ``h`` and to the touched
            inner-node vectors.

        Returns
        -------
        float or ndarray, or LossGrad
            With ``return_grad``: ``LossGrad(loss, dh, rows, dW, None)`` where ``rows``
            are the touched inner nodes (rows of :attr:`weight`) and ``dW`` their
            gradient.

        Examples
        --------
        >>> import numpy as np
        >>> from softargmax.large_output.huffman import HuffmanTree
        >>> from softargmax.large_output.hierarchical import HierarchicalSoftmax
        >>> hs = HierarchicalSoftmax(HuffmanTree.from_counts([1, 1, 2, 4]), dim=2)
        >>> res = hs.loss(np.ones((1, 2)), [3], return_grad=True)
        >>> round(res.loss, 6), res.rows
        (0.693147, array([2]))
        """
        reduction = check_reduction(reduction)
        hh, t, single = self._prepare(h, target)
        assert t is not None
        n = hh.shape[0]
        rows, nodes, sign, z = self._path_terms(hh, t)
        losses = -np.bincount(rows, weights=log_sigmoid(z), minlength=n).astype(hh.dtype)
        value, factor = reduce_loss(losses, reduction)
        if single and reduction == "none":
            value = value[0]
        if not return_grad:
            return value
        g = (sign * (sigmoid(z) - 1.0) * factor).astype(hh.dtype)  # d loss / d score
        dh = np.zeros_like(hh)
        np.add.at(dh, rows, g[:, None] * self.weight[nodes])
        uniq, inv = np.unique(nodes, return_inverse=True)
        dW = np.zeros((uniq.shape[0], self.dim), dtype=hh.dtype)
        np.add.at(dW, inv, g[:, None] * hh[rows])
        return LossGrad(value, dh[0] if single else dh, uniq, dW, None)

    def predict(self, h: Any, k: int = 1) -> np.ndarray:
        """The ``k`` most probable classes for each hidden vector, best first.

        An exact best-first search down the tree: every factor of a path probability
        is at most 1, so a partial path's log-probability bounds all classes below it,
        and the first ``k`` leaves popped from the priority queue are the top ``k``.
        Ties are broken deterministically (a class found first wins). Cost about ``k * depth`` node evaluations per
        row instead of ``V``.

        Returns
        -------
        ndarray of int64, shape (N, k) (``(k,)`` for a single 1-d ``h``)
        """
        hh, _, single = self._prepare(h)
        v = self.num_classes
        k = as_positive_int(k, "k")
        if k > v:
            msg = f"k must be at most the number of classes {v}, got {k}"
            raise ValueError(msg)
        out = np.empty((hh.shape[0], k), dtype=np.int64)
        children = self.tree.children
        for r in range(hh.shape[0]):
            if v == 1:
                out[r, 0] = 0
                continue
            x = hh[r]
            heap: list[tuple[float, int, int]] = [(-0.0, 0, v + v - 2)]
            found = 0
            while found < k:
                neg_lp, _, node = heapq.heappop(heap)
                if node < v:
                    out[r, found] = node
                    found += 1
                    continue
                inner = node - v
                s = float(x @ self.weight[inner])
                lp0 = -neg_lp + float(log_sigmoid(np.float64(s)))
                lp1 = -neg_lp + float(log_sigmoid(np.float64(-s)))
                for child, lp in ((children[inner, 0], lp0), (children[inner, 1], lp1)):
                    c = int(child)
                    heapq.heappush(heap, (-lp, c if c < v else v + c, c))
        return out[0] if single else out

    def __repr__(self) -> str:
        return f"HierarchicalSoftmax(V={self.num_classes}, dim={self.dim})"
