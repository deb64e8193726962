"""numba kernel: Huffman tree construction by the two-queue merge (word2vec's algorithm)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit("Tuple((int64[:, :], int64[:], uint8[:], int64[:]))(float64[:], int64[:])", cache=True)
def build_tree(sorted_counts, order):  # pragma: no cover - compiled
    """Merge the two lightest nodes until one is left.

    ``sorted_counts`` are the leaf weights in ascending order (ties by leaf id) and
    ``order`` the leaf ids in that order. Leaves are nodes ``0..V-1``, inner node ``k``
    (the k-th merge) is node ``V + k``; the root is the last one. At each pick the leaf
    queue wins ties against the inner queue; the first pick of a merge gets bit 0.
    Returns ``children (V-1, 2)``, ``parent (2V-1,)``, ``bit (2V-1,)``, ``depth (2V-1,)``.
    """
    v = sorted_counts.shape[0]
    n_nodes = 2 * v - 1
    children = np.empty((max(v - 1, 0), 2), dtype=np.int64)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    bit = np.zeros(n_nodes, dtype=np.uint8)
    inner_w = np.empty(max(v - 1, 0), dtype=np.float64)
    li = 0
    ii = 0
    for k in range(v - 1):
        acc = 0.0
        for j in range(2):
            if li < v and (ii >= k or sorted_counts[li] <= inner_w[ii]):
                node = order[li]
                w = sorted_counts[li]
                li += 1
            else:
                node = v + ii
                w = inner_w[ii]
                ii += 1
            children[k, j] = node
            parent[node] = v + k
            bit[node] = j
            acc += w
        inner_w[k] = acc
    depth = np.zeros(n_nodes, dtype=np.int64)
    for node in range(n_nodes - 2, -1, -1):
        depth[node] = depth[parent[node]] + 1
    return children, parent, bit, depth


@njit("void(int64[:, :], int64[:], uint8[:], int32[:])", cache=True)
def fill_paths(children, offsets, codes, paths):  # pragma: no cover - compiled
    """Write each leaf's code bits and inner-node ids, root first, into the CSR arrays.

    A depth-first walk from the root keeps the current path on a stack and copies it
    into a leaf's slot when it reaches one: sequential work, ``O(sum of depths)``.
    """
    v = offsets.shape[0] - 1
    if v < 2:
        return
    max_depth = 0
    for leaf in range(v):
        max_depth = max(max_depth, offsets[leaf + 1] - offsets[leaf])
    stack_node = np.empty(max_depth + 1, dtype=np.int64)  # inner node on each level
    stack_next = np.empty(max_depth + 1, dtype=np.int64)  # next child bit to visit
    level = 0
    stack_node[0] = v - 2
    stack_next[0] = 0
    while level >= 0:
        j = stack_next[level]
        if j == 2:
            level -= 1
            continue
        stack_next[level] = j + 1
        child = children[stack_node[level], j]
        if child < v:
            start = offsets[child]
            for d in range(level + 1):
                paths[start + d] = stack_node[d]
                codes[start + d] = stack_next[d] - 1
        else:
            level += 1
            stack_node[level] = child - v
            stack_next[level] = 0
