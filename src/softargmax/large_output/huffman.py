"""Huffman trees over a vocabulary: the binary codes of hierarchical softmax."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import as_counts

__all__ = ["HuffmanTree"]


class HuffmanTree:
    """A binary Huffman tree over ``V`` classes, built from their frequencies.

    Frequent classes get short codes, so the expected path length (the cost of
    hierarchical softmax per example) is the smallest a binary tree allows: the entropy
    of the frequencies plus at most one bit.

    Build it with :meth:`from_counts`. Leaves are the classes ``0..V-1``; the ``V - 1``
    inner nodes are numbered ``0..V-2`` in the order they were merged, so the root is
    inner node ``V - 2`` (word2vec's numbering of ``syn1``).

    Attributes
    ----------
    counts : ndarray of float64, shape (V,)
        The frequencies the tree was built from.
    offsets : ndarray of int64, shape (V + 1,)
        Class ``i``'s code and path are ``codes[offsets[i]:offsets[i + 1]]`` and
        ``paths[offsets[i]:offsets[i + 1]]`` (compressed rows).
    codes : ndarray of uint8
        The code bits of every class, concatenated, root first.
    paths : ndarray of int32
        The inner nodes on every class's path from the root, concatenated, root first.
    depths : ndarray of int64, shape (V,)
        Code lengths.
    children : ndarray of int64, shape (V - 1, 2)
        The children of each inner node for bit 0 and bit 1, as node ids: a class ``c``
        is ``c``, inner node ``k`` is ``V + k``.

    Notes
    -----
    Construction sorts the counts once (``O(V log V)``) and merges with two queues
    (``O(V)``), as word2vec does. Ties are broken deterministically: leaves are taken in
    ascending order of (count, class id), a leaf wins a tie against an inner node, and of
    the two nodes merged the first taken (the lighter) gets bit 0. With word2vec's
    convention a bit ``c`` at inner node ``n`` has probability
    ``sigmoid((1 - 2 c) * h . v_n)``.

    References
    ----------
    .. [1] D. A. Huffman, "A method for the construction of minimum-redundancy codes",
       Proc. IRE 40 (1952).
    .. [2] F. Morin and Y. Bengio, "Hierarchical probabilistic neural network language
       model", AISTATS 2005; T. Mikolov et al., word2vec (2013).

    Examples
    --------
    The classic table (CLRS, section 16.3): code lengths 1, 3, 3, 3, 4, 4.

    >>> from softargmax.large_output.huffman import HuffmanTree
    >>> tree = HuffmanTree.from_counts([45, 13, 12, 16, 9, 5])
    >>> tree.depths
    array([1, 3, 3, 3, 4, 4])
    >>> float(tree.weighted_path_length())
    224.0
    >>> tree.code(0), tree.path(0)
    (array([0], dtype=uint8), array([4], dtype=int32))
    """

    __slots__ = ("children", "codes", "counts", "depths", "offsets", "paths")

    def __init__(
        self,
        counts: np.ndarray,
        offsets: np.ndarray,
        codes: np.ndarray,
        paths: np.ndarray,
        children: np.ndarray,
    ) -> None:
        self.counts = counts
        self.offsets = offsets
        self.codes = codes
        self.paths = paths
        self.children = children
        self.depths = np.diff(offsets)
        for a in (counts, offsets, codes, paths, children, self.depths):
            a.flags.writeable = False

    @classmethod
    def from_counts(cls, counts: Any) -> HuffmanTree:
        """Build the tree from class frequencies.

        Parameters
        ----------
        counts : array_like, shape (V,)
            Non-negative finite frequencies (integers or floats), V >= 1. A single class
            gets the empty code.

        Returns
        -------
        HuffmanTree

        Examples
        --------
        >>> from softargmax.large_output.huffman import HuffmanTree
        >>> HuffmanTree.from_counts([1, 1, 2, 4]).depths
        array([3, 3, 2, 1])
        """
        from .._kernels.huffman import build_tree, fill_paths

        c = as_counts(counts)
        v = c.shape[0]
        order = np.argsort(c, kind="stable").astype(np.int64)
        children, _, _, depth = build_tree(np.ascontiguousarray(c[order]), order)
        offsets = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(depth[:v], out=offsets[1:])
        codes = np.empty(int(offsets[-1]), dtype=np.uint8)
        paths = np.empty(int(offsets[-1]), dtype=np.int32)
        fill_paths(children, offsets, codes, paths)
        return cls(c, offsets, codes, paths, children)

    @property
    def num_classes(self) -> int:
        """V, the number of leaves."""
        return int(self.counts.shape[0])

    @property
    def num_inner(self) -> int:
        """V - 1, the number of inner nodes (rows of the hierarchical-softmax weights)."""
        return int(self.children.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.depths.max())

    def _check_class(self, i: Any) -> int:
        import operator

        try:
            k = operator.index(i)
        except TypeError:
            msg = f"class id must be an int, got {type(i).__name__}"
            raise TypeError(msg) from None
        if not 0 <= k < self.num_classes:
            msg = f"class id must lie in [0, {self.num_classes}), got {k}"
            raise ValueError(msg)
        return int(k)

    def code(self, i: int) -> np.ndarray:
        """The code bits of class ``i``, root first."""
        k = self._check_class(i)
        return self.codes[self.offsets[k] : self.offsets[k + 1]]

    def path(self, i: int) -> np.ndarray:
        """The inner nodes from the root to class ``i``."""
        k = self._check_class(i)
        return self.paths[self.offsets[k] : self.offsets[k + 1]]

    def weighted_path_length(self) -> float:
        """``sum_i counts[i] * depths[i]``, which a Huffman tree minimises."""
        return float(np.dot(self.counts, self.depths))

    def __repr__(self) -> str:
        return f"HuffmanTree(V={self.num_classes}, max_depth={self.max_depth})"
