"""Huffman tree, hierarchical softmax, samplers and sampled losses (softargmax.large_output)."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from softargmax.large_output.hierarchical import HierarchicalSoftmax
from softargmax.large_output.huffman import HuffmanTree
from softargmax.large_output.losses import (
    full_softmax_loss,
    nce_loss,
    negative_sampling_loss,
    sampled_softmax_loss,
)
from softargmax.large_output.samplers import (
    CandidateSample,
    LogUniformSampler,
    UniformSampler,
    UnigramSampler,
)

counts_st = st.lists(st.integers(0, 1000), min_size=1, max_size=120)


def heap_wpl(counts):
    """Optimal weighted path length by an independent heapq Huffman: sum of merge weights."""
    h = [float(c) for c in counts]
    heapq.heapify(h)
    total = 0.0
    while len(h) > 1:
        a, b = heapq.heappop(h), heapq.heappop(h)
        total += a + b
        heapq.heappush(h, a + b)
    return total


# ----------------------------------------------------------------------------- Huffman
def test_huffman_classic_clrs():
    tree = HuffmanTree.from_counts([45, 13, 12, 16, 9, 5])
    np.testing.assert_array_equal(tree.depths, [1, 3, 3, 3, 4, 4])
    assert tree.weighted_path_length() == 224.0
    assert tree.num_inner == 5 and tree.path(3)[0] == 4  # root is inner node V - 2


def test_huffman_classic_tables():
    # Equal frequencies: a complete tree. Fibonacci frequencies: the most skewed tree.
    np.testing.assert_array_equal(HuffmanTree.from_counts([7] * 8).depths, [3] * 8)
    fib = [1, 1, 2, 3, 5, 8, 13, 21]
    assert sorted(HuffmanTree.from_counts(fib).depths.tolist()) == [1, 2, 3, 4, 5, 6, 7, 7]
    # Wikipedia's "this is an example of a huffman tree": 135 bits.
    text = "this is an example of a huffman tree"
    chars = sorted(set(text))
    counts = [text.count(c) for c in chars]
    assert HuffmanTree.from_counts(counts).weighted_path_length() == 135.0


def test_huffman_single_and_two_classes():
    t1 = HuffmanTree.from_counts([5])
    assert t1.num_inner == 0 and t1.depths.tolist() == [0] and t1.code(0).size == 0
    t2 = HuffmanTree.from_counts([1, 3])
    assert t2.depths.tolist() == [1, 1]
    assert t2.code(0).tolist() == [0] and t2.code(1).tolist() == [1]  # lighter gets bit 0


def test_huffman_deterministic_ties():
    a = HuffmanTree.from_counts([2, 2, 2, 1, 1, 3, 3])
    b = HuffmanTree.from_counts(np.array([2, 2, 2, 1, 1, 3, 3], dtype=np.float32))
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.paths, b.paths)


@given(counts_st)
def test_huffman_optimal_prefix_free_consistent(counts):
    tree = HuffmanTree.from_counts(counts)
    v = len(counts)
    # Optimal: equal to an independent Huffman's weighted path length.
    assert tree.weighted_path_length() == pytest.approx(heap_wpl(counts), abs=1e-9)
    if v == 1:
        return
    # A full binary tree: Kraft's sum is exactly 1.
    assert sum(2.0 ** -d for d in tree.depths.tolist()) == pytest.approx(1.0, abs=1e-12)
    codes = ["".join(map(str, tree.code(i))) for i in range(v)]
    assert len(set(codes)) == v
    sc = sorted(codes)
    assert all(not sc[i + 1].startswith(sc[i]) for i in range(v - 1))  # prefix-free
    # The paths follow the children table from the root down to the leaf.
    for i in range(v):
        path, code = tree.path(i), tree.code(i)
        assert path[0] == v - 2
        nxt = [tree.children[n, c] for n, c in zip(path, code, strict=True)]
        assert nxt[-1] == i
        assert [x - v for x in nxt[:-1]] == path[1:].tolist()


def test_huffman_large_vocabulary():
    counts = np.random.default_rng(0).zipf(1.5, 200_000)
    tree = HuffmanTree.from_counts(counts)
    assert tree.weighted_path_length() == pytest.approx(heap_wpl(counts), rel=1e-12)
    assert not tree.codes.flags.writeable


@pytest.mark.parametrize(
    ("counts", "err"),
    [([], ValueError), ([[1, 2]], ValueError), ([1, -1], ValueError), ([1, np.nan], ValueError),
     ([1, np.inf], ValueError), (["a", "b"], TypeError), ([1 + 1j], TypeError)],
)
def test_huffman_errors(counts, err):
    with pytest.raises(err, match="counts"):
        HuffmanTree.from_counts(counts)


def test_huffman_bad_class_id():
    tree = HuffmanTree.from_counts([1, 2, 3])
    with pytest.raises(ValueError, match="class id"):
        tree.code(3)
    with pytest.raises(TypeError, match="class id"):
        tree.path(1.5)


# ----------------------------------------------------------------------------- HS
def make_hs(counts, dim=4, seed=0, scale=1.0):
    return HierarchicalSoftmax(HuffmanTree.from_counts(counts), dim, rng=seed, init_scale=scale)


def hs_reference(hs, h, y):
    """log p(y | h) by walking the path with math.log1p (an independent formula)."""
    total = 0.0
    for n, c in zip(hs.tree.path(y), hs.tree.code(y), strict=True):
        s = float(np.dot(h, hs.weight[n]))
        z = s if c == 0 else -s
        total += -math.log1p(math.exp(-z)) if z > -30 else z - math.log1p(math.exp(z))
    return total


@given(counts_st.filter(lambda c: len(c) >= 2), st.floats(0.01, 300), st.integers(0, 2**31))
def test_hs_log_probs_sum_to_one(counts, scale, seed):
    hs = make_hs(counts, dim=3, seed=seed, scale=1.0)
    h = np.random.default_rng(seed).normal(size=(3, 3)) * scale
    lp = hs.log_probs(h)
    assert lp.shape == (3, len(counts)) and np.all(np.isfinite(lp) | (lp == -np.inf))
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(hs.log_prob(h, np.zeros(3, dtype=int)), lp[:, 0], rtol=1e-12)


def test_hs_against_path_walk():
    counts = [10, 7, 7, 3, 1, 1, 1, 30]
    hs = make_hs(counts, dim=5, seed=3)
    rng = np.random.default_rng(1)
    h = rng.normal(size=(6, 5)) * 4
    y = rng.integers(0, len(counts), 6)
    ref = [hs_reference(hs, h[i], int(y[i])) for i in range(6)]
    np.testing.assert_allclose(hs.log_prob(h, y), ref, rtol=1e-13)
    np.testing.assert_allclose(hs.log_probs(h)[np.arange(6), y], ref, rtol=1e-12)


def test_hs_zero_weights_is_two_to_minus_depth():
    hs = HierarchicalSoftmax(HuffmanTree.from_counts([45, 13, 12, 16, 9, 5]), 3)
    lp = hs.log_probs(np.ones(3))
    np.testing.assert_allclose(np.exp(lp), 2.0 ** -hs.tree.depths.astype(float))


def test_hs_single_class_and_huge_scores():
    hs1 = HierarchicalSoftmax(HuffmanTree.from_counts([3]), 2)
    assert hs1.log_probs(np.ones((2, 2))).tolist() == [[0.0], [0.0]]
    assert hs1.predict(np.ones(2)).tolist() == [0]
    hs = make_hs([1, 2, 3, 4], dim=2, scale=1.0)
    lp = hs.log_probs(np.array([[1e300, -1e300]]))  # scores of +-inf-like magnitude
    assert not np.any(np.isnan(lp))
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0)


def fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_hs_gradients_finite_differences(reduction):
    counts = [9, 1, 4, 4, 2, 7]
    hs = make_hs(counts, dim=3, seed=2)
    rng = np.random.default_rng(5)
    h = rng.normal(size=(4, 3))
    y = np.array([1, 5, 1, 3])
    res = hs.loss(h, y, reduction=reduction, return_grad=True)
    assert res.loss == pytest.approx(hs.loss(h, y, reduction=reduction))
    np.testing.assert_allclose(res.dh, fd_grad(lambda a: hs.loss(a, y, reduction=reduction), h), atol=1e-8)
    W0 = hs.weight.copy()

    def f_w(w):
        hs.weight = w
        return hs.loss(h, y, reduction=reduction)

    gW = fd_grad(f_w, W0)
    hs.weight = W0
    dense = np.zeros_like(W0)
    dense[res.rows] = res.dW
    np.testing.assert_allclose(dense, gW, atol=1e-8)
    # Only the nodes on the targets' paths are touched.
    expect = np.unique(np.concatenate([hs.tree.path(int(t)) for t in y]))
    np.testing.assert_array_equal(res.rows, expect)


def test_hs_loss_none_and_single():
    hs = make_hs([3, 1, 2], dim=2)
    h = np.array([[0.5, -1.0], [2.0, 1.0]])
    per = hs.loss(h, [0, 2], reduction="none")
    np.testing.assert_allclose(per, -hs.log_prob(h, [0, 2]))
    assert hs.loss(h[0], 0, reduction="none") == pytest.approx(per[0])
    assert hs.loss(h[0], 0, return_grad=True).dh.shape == (2,)


def test_hs_predict_matches_sorted_log_probs():
    counts = np.random.default_rng(0).integers(1, 100, 40)
    hs = make_hs(counts, dim=6, seed=4, scale=2.0)
    h = np.random.default_rng(1).normal(size=(5, 6))
    top = hs.predict(h, k=7)
    ref = np.argsort(-hs.log_probs(h), axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(top, ref)
    assert hs.predict(h[0], k=40).shape == (40,)


def test_hs_float32_and_inputs_unchanged():
    hs = HierarchicalSoftmax(HuffmanTree.from_counts([4, 3, 2, 1]), 3, rng=0, init_scale=0.3,
                             dtype=np.float32)
    h = np.ones((2, 3), dtype=np.float32)
    h.flags.writeable = False
    assert hs.log_probs(h).dtype == np.float32
    res = hs.loss(h, [0, 1], return_grad=True)
    assert res.dh.dtype == np.float32 and res.dW.dtype == np.float32


def test_hs_errors():
    hs = make_hs([1, 2, 3], dim=2)
    with pytest.raises(ValueError, match="h must have 2 features"):
        hs.log_probs(np.ones((1, 3)))
    with pytest.raises(ValueError, match="target must lie in"):
        hs.log_prob(np.ones((1, 2)), [3])
    with pytest.raises(TypeError, match="target must be integer"):
        hs.log_prob(np.ones((1, 2)), [0.5])
    with pytest.raises(ValueError, match="target must have shape"):
        hs.log_prob(np.ones((2, 2)), [0])
    with pytest.raises(TypeError, match="tree must be a HuffmanTree"):
        HierarchicalSoftmax([1, 2], 2)
    with pytest.raises(ValueError, match="dim"):
        HierarchicalSoftmax(hs.tree, 0)
    with pytest.raises(ValueError, match="reduction"):
        hs.loss(np.ones((1, 2)), [0], reduction="avg")
    with pytest.raises(ValueError, match="k must be at most"):
        hs.predict(np.ones(2), k=4)
    with pytest.raises(TypeError, match="h must be an array of real"):
        hs.log_probs(np.ones((1, 2), dtype=complex))


# ----------------------------------------------------------------------------- samplers
SAMPLERS = [
    UniformSampler(30),
    LogUniformSampler(30),
    UnigramSampler(np.random.default_rng(0).integers(1, 500, 30)),
    UnigramSampler(np.arange(30) ** 2, power=0.5),  # class 0 has count 0
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_sampler_chi_square(sampler):
    n = 200_000
    draws = sampler.sample(n, rng=123).candidates
    observed = np.bincount(draws, minlength=30)
    q = sampler.prob(np.arange(30))
    assert q.sum() == pytest.approx(1.0)
    keep = q > 0
    assert observed[~keep].sum() == 0  # zero-probability classes never come up
    _, pvalue = scipy.stats.chisquare(observed[keep], n * q[keep])
    assert pvalue > 1e-3


def test_log_uniform_formula():
    s = LogUniformSampler(10)
    c = np.arange(10)
    np.testing.assert_allclose(s.prob(c), (np.log(c + 2) - np.log(c + 1)) / np.log(11), rtol=1e-14)


def test_alias_table_reconstructs_probabilities():
    rng = np.random.default_rng(7)
    for v in (1, 2, 17, 1000):
        counts = rng.zipf(1.2, v) * (rng.random(v) < 0.8)
        counts[0] = max(counts[0], 1)
        s = UnigramSampler(counts)
        keep, alias = s.alias_prob, s.alias
        recon = keep.copy()
        np.add.at(recon, alias, 1.0 - keep)
        np.testing.assert_allclose(recon / v, s.probs, atol=1e-14)


@pytest.mark.parametrize("sampler", SAMPLERS[:3], ids=repr)
def test_unique_sampling(sampler):
    draw = sampler.sample(12, unique=True, rng=4)
    assert len(set(draw.candidates.tolist())) == 12 and draw.unique
    assert draw.num_tries >= 12
    q = sampler.prob(draw.candidates)
    np.testing.assert_allclose(draw.expected_count, 1 - (1 - q) ** draw.num_tries, rtol=1e-12)
    again = sampler.sample(12, unique=True, rng=4)
    np.testing.assert_array_equal(draw.candidates, again.candidates)
    full = sampler.sample(30, unique=True, rng=0)
    assert sorted(full.candidates.tolist()) == list(range(30))


def test_unique_sampling_tries_count():
    # The number of tries is the position of the S-th distinct draw in the i.i.d. stream.
    s = UnigramSampler([100, 1, 1, 1])
    draw = s.sample(3, unique=True, rng=11)
    stream = s._draw(np.random.default_rng(11), max(2 * 3, 16))
    seen = []
    for i, x in enumerate(stream.tolist()):
        if x not in seen:
            seen.append(x)
        if len(seen) == 3:
            assert draw.num_tries == i + 1
            assert draw.candidates.tolist() == seen
            break


def test_sampler_errors():
    with pytest.raises(ValueError, match="num_classes"):
        UniformSampler(0)
    with pytest.raises(TypeError, match="num_classes"):
        LogUniformSampler(2.5)
    with pytest.raises(ValueError, match="at least one positive"):
        UnigramSampler([0, 0])
    with pytest.raises(ValueError, match="power"):
        UnigramSampler([1, 2], power=-1)
    with pytest.raises(ValueError, match="num_sampled must be at most"):
        UniformSampler(3).sample(4, unique=True)
    with pytest.raises(ValueError, match="ids must lie"):
        UniformSampler(3).prob([3])


# ----------------------------------------------------------------------------- losses
def problem(n=5, v=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)), rng.normal(size=(v, d)), rng.normal(size=v),
            rng.integers(0, v, n))


def test_full_softmax_against_torch():
    torch = pytest.importorskip("torch")
    h, W, b, y = problem()
    res = full_softmax_loss(h, W, b, y, return_grad=True)
    th, tW, tb = (torch.tensor(a, requires_grad=True) for a in (h, W, b))
    loss = torch.nn.functional.cross_entropy(th @ tW.T + tb, torch.tensor(y))
    loss.backward()
    assert res.loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(res.dh, th.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.dW, tW.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(res.db, tb.grad.numpy(), rtol=1e-10, atol=1e-15)


def tf_logits(h, W, b, y, cand, true_ec, samp_ec, remove_hits):
    """TensorFlow's documented _compute_sampled_logits, one example at a time."""
    out = []
    for i in range(h.shape[0]):
        row = [float(h[i] @ W[y[i]] + b[y[i]] - math.log(true_ec[i]))]
        for j, c in enumerate(cand):
            o = float(h[i] @ W[c] + b[c] - math.log(samp_ec[j]))
            row.append(-math.inf if remove_hits and c == y[i] else o)
        out.append(row)
    return out


def softplus(x):
    return math.log1p(math.exp(x)) if x < 30 else x + math.log1p(math.exp(-x))


def test_tf_formulas_hand_case():
    # h . w = [1, 0, 2]; uniform proposal, 2 draws with replacement: Q = 2/3 everywhere,
    # a constant that cancels in the softmax: loss = log(e + 1 + e^2) - 1.
    h = np.array([[1.0, 0.0]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    b = np.zeros(3)
    s = UniformSampler(3)
    draw = CandidateSample(np.array([1, 2]), np.array([2 / 3, 2 / 3]), 2, False)
    got = sampled_softmax_loss(h, W, b, [0], num_sampled=2, sampler=s, sampled=draw)
    assert got == pytest.approx(math.log(math.e + 1 + math.e**2) - 1, rel=1e-14)
    nce = nce_loss(h, W, b, [0], num_sampled=2, sampler=s, sampled=draw)
    c = math.log(1.5)  # -log Q
    assert nce == pytest.approx(softplus(-(1 + c)) + softplus(0 + c) + softplus(2 + c), rel=1e-14)
    neg = negative_sampling_loss(h, W, b, [0], num_sampled=2, sampler=s, sampled=draw)
    assert neg == pytest.approx(softplus(-1) + softplus(0) + softplus(2), rel=1e-14)


@pytest.mark.parametrize("remove_hits", [True, False])
@pytest.mark.parametrize("unique", [True, False])
def test_tf_formulas_float64(remove_hits, unique):
    h, W, b, y = problem(n=6, v=9, seed=3)
    s = LogUniformSampler(9)
    draw = s.sample(5, unique=unique, rng=2)
    y[0] = draw.candidates[0]  # force an accidental hit
    true_ec = s.expected_count(y, 5, num_tries=draw.num_tries if unique else None)
    logits = tf_logits(h, W, b, y, draw.candidates, true_ec, draw.expected_count, remove_hits)
    ss = [math.log(sum(math.exp(o) for o in row)) - row[0] for row in logits]
    nce = [softplus(-row[0]) + sum(softplus(o) for o in row[1:] if o != -math.inf)
           for row in logits]
    kw = dict(num_sampled=5, sampler=s, sampled=draw, remove_accidental_hits=remove_hits,
              reduction="none")
    np.testing.assert_allclose(sampled_softmax_loss(h, W, b, y, **kw), ss, rtol=1e-13)
    np.testing.assert_allclose(nce_loss(h, W, b, y, **kw), nce, rtol=1e-13)


def test_accidental_hits_removed():
    h, W, b, _ = problem(n=1, v=6, seed=1)
    s = UniformSampler(6)
    # Distinct draws that took 3 tries: the target's correction is the same for both.
    with_hit = CandidateSample(np.array([2, 4, 5]), np.full(3, 0.5), 3, True)
    without = CandidateSample(np.array([4, 5]), np.full(2, 0.5), 3, True)
    for fn in (sampled_softmax_loss, nce_loss, negative_sampling_loss):
        a = fn(h, W, b, [2], num_sampled=3, sampler=s, sampled=with_hit, remove_accidental_hits=True)
        c = fn(h, W, b, [2], num_sampled=2, sampler=s, sampled=without, remove_accidental_hits=True)
        k = fn(h, W, b, [2], num_sampled=3, sampler=s, sampled=with_hit, remove_accidental_hits=False)
        assert a == pytest.approx(c, rel=1e-14)
        assert k != pytest.approx(a)


@pytest.mark.parametrize("sampler", SAMPLERS[:3], ids=repr)
def test_all_classes_sampled_equals_full_softmax(sampler):
    h, W, b, y = problem(n=8, v=30, d=4, seed=9)
    full = full_softmax_loss(h, W, b, y, return_grad=True)
    # A non-uniform correction over all classes would reweight them: switch it off.
    kw = {} if isinstance(sampler, UniformSampler) else {"subtract_log_q": False}
    res = sampled_softmax_loss(h, W, b, y, num_sampled=30, sampler=sampler, unique=True, rng=1,
                               return_grad=True, **kw)
    assert res.loss == pytest.approx(full.loss, rel=1e-13)
    np.testing.assert_allclose(res.dh, full.dh, rtol=1e-11, atol=1e-15)
    np.testing.assert_array_equal(res.rows, np.arange(30))
    np.testing.assert_allclose(res.dW, full.dW, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(res.db, full.db, rtol=1e-10, atol=1e-14)


def dense(res, v, d):
    dW = np.zeros((v, d))
    dW[res.rows] = res.dW
    db = np.zeros(v)
    if res.db is not None:
        db[res.rows] = res.db
    return dW, db


@pytest.mark.parametrize("fn", [full_softmax_loss, sampled_softmax_loss, nce_loss, negative_sampling_loss])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_gradients_finite_differences(fn, reduction):
    h, W, b, y = problem(n=4, v=8, d=3, seed=4)
    kw = {"reduction": reduction}
    if fn is not full_softmax_loss:
        s = UnigramSampler(np.arange(1, 9))
        draw = s.sample(6, unique=False, rng=3)  # with repeats: gradients must add up
        y[1] = draw.candidates[2]
        kw.update(num_sampled=6, sampler=s, sampled=draw)
    res = fn(h, W, b, y, return_grad=True, **kw)
    np.testing.assert_allclose(res.dh, fd_grad(lambda a: fn(a, W, b, y, **kw), h), atol=1e-8)
    dW, db = dense(res, 8, 3)
    np.testing.assert_allclose(dW, fd_grad(lambda a: fn(h, a, b, y, **kw), W), atol=1e-8)
    np.testing.assert_allclose(db, fd_grad(lambda a: fn(h, W, a, y, **kw), b), atol=1e-8)


def test_losses_no_bias_float32_and_inputs_unchanged():
    h, W, _, y = problem()
    h32, W32 = h.astype(np.float32), W.astype(np.float32)
    h32.flags.writeable = False
    s = LogUniformSampler(7)
    for fn in (sampled_softmax_loss, nce_loss, negative_sampling_loss):
        res = fn(h32, W32, None, y, num_sampled=3, sampler=s, rng=0, return_grad=True)
        assert res.db is None and res.dh.dtype == np.float32 and res.dW.dtype == np.float32
        r64 = fn(h, W, None, y, num_sampled=3, sampler=s, rng=0)
        assert res.loss == pytest.approx(r64, rel=1e-5)


def test_losses_extreme_inputs():
    h, W, b, y = problem()
    s = UniformSampler(7)
    for fn in (full_softmax_loss, sampled_softmax_loss, nce_loss, negative_sampling_loss):
        kw = {} if fn is full_softmax_loss else {"num_sampled": 4, "sampler": s, "rng": 0}
        big = fn(h * 1e100, W * 1e100, b, y, reduction="none", **kw)
        assert np.all(np.isfinite(big) | (big == np.inf)) and not np.any(np.isnan(big))
        hn = h.copy()
        hn[2, 0] = np.nan
        out = fn(hn, W, b, y, reduction="none", **kw)
        assert np.isnan(out[2]) and np.all(np.isfinite(np.delete(out, 2)))
        assert fn(h[:0], W, b, y[:0], **kw) == 0.0  # mean over no examples


def test_loss_errors():
    h, W, b, y = problem()
    s = UniformSampler(7)
    kw = {"num_sampled": 3, "sampler": s}
    with pytest.raises(ValueError, match="sampler must cover"):
        sampled_softmax_loss(h, W, b, y, num_sampled=3, sampler=UniformSampler(8))
    with pytest.raises(TypeError, match="sampler must be a Sampler"):
        nce_loss(h, W, b, y, num_sampled=3, sampler="uniform")
    with pytest.raises(ValueError, match="b must have shape"):
        nce_loss(h, W, b[:3], y, **kw)
    with pytest.raises(ValueError, match="h must have 3 features"):
        nce_loss(h[:, :2], W, b, y, **kw)
    with pytest.raises(ValueError, match="W must be a 2-d"):
        nce_loss(h, W[0], b, y, **kw)
    with pytest.raises(ValueError, match="num_sampled must be an int"):
        negative_sampling_loss(h, W, b, y, num_sampled=0, sampler=s)
    with pytest.raises(ValueError, match="sampled must hold"):
        negative_sampling_loss(h, W, b, y, num_sampled=4, sampler=s, sampled=s.sample(3))
    with pytest.raises(ValueError, match="target must lie"):
        full_softmax_loss(h, W, b, y + 7)


@given(st.integers(1, 6), st.integers(1, 12), st.integers(1, 4), st.floats(1e-3, 1e3),
       st.integers(0, 2**31))
def test_hypothesis_sampled_all_uniform_equals_full(n, v, d, scale, seed):
    rng = np.random.default_rng(seed)
    h, W, b = rng.normal(size=(n, d)) * scale, rng.normal(size=(v, d)), rng.normal(size=v) * scale
    y = rng.integers(0, v, n)
    full = full_softmax_loss(h, W, b, y, reduction="none", return_grad=True)
    res = sampled_softmax_loss(h, W, b, y, num_sampled=v, sampler=UniformSampler(v), rng=seed,
                               reduction="none", return_grad=True)
    np.testing.assert_allclose(res.loss, full.loss, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.dh, full.dh, rtol=1e-7, atol=1e-9 * scale)
    for fn in (nce_loss, negative_sampling_loss):
        out = fn(h, W, b, y, num_sampled=min(v, 3), sampler=UniformSampler(v), rng=seed,
                 reduction="none", return_grad=True)
        assert np.all(out.loss >= 0) and np.all(np.isfinite(out.dh))
