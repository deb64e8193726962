"""Samplers: Gumbel-max, Gumbel-softmax, and the decoding filters of sample_logits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.special import logit

from softargmax import sampling
from softargmax.sampling import filter_logits, gumbel_max, gumbel_softmax, sample_logits

INF = np.inf
# A chi-square p-value below this at a fixed seed means the sampler is wrong (the seeds
# are fixed, so these tests are deterministic; 1e-4 leaves room for a change of seed).
P_MIN = 1e-4


def chisquare_ok(draws: np.ndarray, probs: np.ndarray) -> float:
    """p-value of a chi-square goodness-of-fit test of integer draws against probs."""
    probs = np.asarray(probs, dtype=np.float64)
    counts = np.bincount(np.asarray(draws).ravel(), minlength=probs.size)
    assert counts.size == probs.size
    assert counts[probs == 0].sum() == 0, "drew a category of probability 0"
    support = probs > 0
    if support.sum() == 1:
        return 1.0
    expected = probs[support] / probs[support].sum() * counts.sum()
    return float(stats.chisquare(counts[support], expected).pvalue)


# --------------------------------------------------------------------------- reference
def reference_filter(x, temperature=1.0, top_k=None, top_p=None, min_p=None):
    with np.errstate(all="ignore"):
        return _reference_filter(x, temperature, top_k, top_p, min_p)


def _reference_filter(x, temperature, top_k, top_p, min_p):
    """Hand-written float64 decoding distribution of one row (explicit loops, sorts).

    Tokens tie when their logits are equal; each filter renormalises what it keeps.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if temperature == 0:
        out = np.zeros(n)
        out[int(np.argmax(x))] = 1.0
        return out
    keep = x > -INF

    def renormalised():
        m = max(v for v, k in zip(x, keep, strict=True) if k)
        if m == INF:  # +inf tokens share the mass
            w = np.array([1.0 if (k and v == INF) else 0.0 for v, k in zip(x, keep, strict=True)])
        else:
            w = np.array([np.exp((v - m) / temperature) if k else 0.0 for v, k in zip(x, keep, strict=True)])
        return w / w.sum()

    p = renormalised()
    if top_k is not None and top_k < n:
        kth = sorted(x, reverse=True)[top_k - 1]
        keep &= x >= kth
        p = renormalised()
    if top_p is not None and top_p < 1:
        total, cut = 0.0, None
        for i in sorted(range(n), key=lambda i: -x[i]):
            total += p[i]
            if total >= top_p:
                cut = x[i]
                break
        if cut is not None:
            keep &= x >= cut
        p = renormalised()
    if min_p is not None and min_p > 0:
        keep &= p >= min_p * p.max()
        p = renormalised()
    return p


def hf_style_keep(x, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """The kept set by the documented rules of Hugging Face transformers' warpers.

    TopK removes scores below the k-th largest; TopP sorts ascending and removes the
    tokens whose cumulative probability is <= 1 - top_p (keeping the last); MinP removes
    probabilities below min_p times the largest. Each works on softmax of the
    previous output, with removed tokens at -inf.
    """
    s = np.asarray(x, dtype=np.float64) / temperature

    def probs(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    if top_k is not None:
        kth = np.sort(s)[::-1][min(top_k, s.size) - 1]
        s = np.where(s < kth, -INF, s)
    if top_p is not None:
        order = np.argsort(s, kind="stable")
        cum = np.cumsum(probs(s)[order])
        remove = cum <= 1 - top_p
        remove[-1] = False
        s = s.copy()
        s[order[remove]] = -INF
    if min_p is not None:
        p = probs(s)
        s = np.where(p < min_p * p.max(), -INF, s)
    return s > -INF


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": -1.0}, ValueError, "temperature must be a finite number >= 0"),
        ({"temperature": np.nan}, ValueError, "temperature"),
        ({"temperature": np.inf}, ValueError, "temperature"),
        ({"temperature": "1"}, TypeError, "temperature must be a real number"),
        ({"top_k": 0}, ValueError, "top_k must be a positive int or None"),
        ({"top_k": -3}, ValueError, "top_k"),
        ({"top_k": 2.0}, TypeError, "top_k must be a positive int"),
        ({"top_k": True}, TypeError, "top_k"),
        ({"top_p": 1.5}, ValueError, r"top_p must be a number in \[0, 1\]"),
        ({"top_p": -0.1}, ValueError, "top_p"),
        ({"top_p": np.nan}, ValueError, "top_p"),
        ({"min_p": 2.0}, ValueError, "min_p"),
        ({"size": -1}, ValueError, "size must not be negative"),
        ({"size": 2.5}, TypeError, "size must be None, an int or a tuple"),
        ({"rng": "seed"}, TypeError, "rng must be None, an int seed or a numpy.random.Generator"),
        ({"rng": -5}, ValueError, "rng must be a non-negative int seed"),
        ({"axis": (0,)}, TypeError, "axis must be an int"),
        ({"axis": None}, TypeError, "axis must be an int"),
    ],
)
def test_sample_logits_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        sample_logits(np.zeros((2, 3)), **kwargs)


@pytest.mark.parametrize(
    ("logits", "error", "match"),
    [
        ([[0.0, np.nan], [0.0, 1.0]], ValueError, "NaN in 1 distribution"),
        ([[0.0, 1.0], [-INF, -INF]], ValueError, r"no token above -inf \(first at flat batch index 1\)"),
        (np.zeros((3, 0)), ValueError, "empty distribution axis"),
        (np.array([1 + 1j, 2]), TypeError, "logits must be an array of real numbers"),
        (np.array(["a", "b"]), TypeError, "logits"),
    ],
)
@pytest.mark.parametrize("sampler", ["gumbel_max", "sample_logits", "filter_logits"])
def test_unsamplable_logits(sampler, logits, error, match):
    with pytest.raises(error, match=match):
        getattr(sampling, sampler)(logits)


def test_axis_out_of_range():
    with pytest.raises(np.exceptions.AxisError):
        gumbel_max(np.zeros((2, 3)), axis=2)
    with pytest.raises(np.exceptions.AxisError):
        sample_logits(np.float64(1.0))


def test_gumbel_softmax_bad_arguments():
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        gumbel_softmax([0.0, 1.0], -0.5)
    with pytest.raises(TypeError, match="hard must be a bool"):
        gumbel_softmax([0.0, 1.0], 1.0, hard="yes")


def test_inputs_not_modified():
    x = np.array([[0.0, 1.0, -INF], [2.0, 2.0, 1.0]])
    x.flags.writeable = False
    before = x.copy()
    sample_logits(x, top_k=1, top_p=0.5, min_p=0.1, rng=0)
    gumbel_max(x, rng=0)
    gumbel_softmax(x, 0.5, rng=0)
    filter_logits(x, top_p=0.3)
    np.testing.assert_array_equal(x, before)


# --------------------------------------------------------------------------- gumbel_max
@pytest.mark.parametrize(
    "probs",
    [
        [0.2, 0.3, 0.5],
        [0.01, 0.01, 0.98],
        [0.25, 0.0, 0.75, 0.0],
        list(np.arange(1, 21) / 210.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_gumbel_max_chisquare(probs, seed):
    with np.errstate(divide="ignore"):
        logits = np.log(probs) + 7.0  # unnormalised, with -inf for p = 0
    draws = gumbel_max(logits, size=20_000, rng=seed)
    assert draws.shape == (20_000,) and draws.dtype == np.intp
    assert chisquare_ok(draws, probs) > P_MIN


def test_gumbel_max_plus_inf_share_the_mass():
    draws = gumbel_max([INF, 0.0, INF, 1e308], size=20_000, rng=3)
    assert chisquare_ok(draws, [0.5, 0.0, 0.5, 0.0]) > P_MIN


def test_gumbel_max_batch_size_and_axis():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 5))
    d = gumbel_max(x, size=(7, 2), rng=0)
    assert d.shape == (7, 2, 4, 3)
    d0 = gumbel_max(x, size=6, axis=1, rng=0)
    assert d0.shape == (6, 4, 5) and d0.max() < 3
    # one draw from a 1-d distribution is a NumPy integer
    s = gumbel_max([0.0, 1.0], rng=0)
    assert isinstance(s, np.integer)
    assert gumbel_max(x, size=0, rng=0).shape == (0, 4, 3)
    # batched rows follow their own distributions
    logits = np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    draws = gumbel_max(logits, size=20_000, rng=11)
    for b in range(2):
        assert chisquare_ok(draws[:, b], np.exp(logits[b])) > P_MIN


def test_gumbel_max_reproducible_and_generator():
    x = np.random.default_rng(0).normal(size=(3, 10))
    np.testing.assert_array_equal(gumbel_max(x, size=50, rng=42), gumbel_max(x, size=50, rng=42))
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(gumbel_max(x, size=5, rng=g1), gumbel_max(x, size=5, rng=g2))
    assert not np.array_equal(gumbel_max(x, size=50, rng=1), gumbel_max(x, size=50, rng=2))


def test_gumbel_max_blocks_match_one_block(monkeypatch):
    """The memory-bounded loop draws the same noise stream as one big block."""
    x = np.random.default_rng(0).normal(size=(3, 4))
    whole = gumbel_max(x, size=37, rng=8)
    monkeypatch.setattr(sampling, "_BLOCK", 24)  # 2 draws per block
    np.testing.assert_array_equal(gumbel_max(x, size=37, rng=8), whole)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gumbel_max_extreme_logits(dtype):
    big = float(np.finfo(dtype).max)
    x = np.array([big, -big, big * 0.5, big], dtype=dtype)
    d = gumbel_max(x, size=2000, rng=0)
    assert set(np.unique(d)) <= {0, 3}
    assert chisquare_ok(d, [0.5, 0, 0, 0.5]) > P_MIN


# --------------------------------------------------------------------------- gumbel_softmax
def test_gumbel_softmax_is_on_the_simplex_and_keeps_dtype():
    rng = np.random.default_rng(0)
    for dtype in (np.float16, np.float32, np.float64):
        x = rng.normal(size=(5, 7)).astype(dtype)
        y = gumbel_softmax(x, 0.7, rng=1)
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_allclose(y.astype(np.float64).sum(-1), 1.0, rtol=2e-3)
        assert (y >= 0).all()
    y = gumbel_softmax(np.arange(6).reshape(2, 3), 1.0, rng=0)  # ints -> float64
    assert y.dtype == np.float64


def test_gumbel_softmax_limit_is_the_gumbel_max_sample():
    """tau -> 0 and hard=True give the one-hot of gumbel_max with the same noise."""
    x = np.random.default_rng(0).normal(size=(50, 6)) * 3
    idx = gumbel_max(x, rng=4)
    onehot = np.eye(6)[idx]
    np.testing.assert_array_equal(gumbel_softmax(x, 0.0, rng=4), onehot)
    np.testing.assert_array_equal(gumbel_softmax(x, 2.0, hard=True, rng=4), onehot)
    np.testing.assert_array_equal(gumbel_softmax(x, 1e-300, rng=4), onehot)
    soft = gumbel_softmax(x, 0.3, rng=4)
    np.testing.assert_array_equal(np.argmax(soft, axis=-1), idx)


@pytest.mark.parametrize("tau", [0.25, 1.0, 3.0])
@pytest.mark.parametrize("a", [-1.5, 0.0, 2.0])
def test_gumbel_softmax_concrete_distribution_ks(tau, a):
    """For K = 2, tau * logit(y_0) - a is standard logistic (the difference of two Gumbels)."""
    y = gumbel_softmax(np.tile([a, 0.0], (4000, 1)), tau, rng=21)
    t = tau * logit(y[:, 0]) - a
    assert stats.kstest(t, "logistic").pvalue > P_MIN


def test_gumbel_softmax_argmax_frequencies():
    p = np.array([0.1, 0.6, 0.3])
    y = gumbel_softmax(np.tile(np.log(p), (20_000, 1)), 5.0, rng=2)
    assert chisquare_ok(np.argmax(y, axis=-1), p) > P_MIN


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("tau", [1e-300, 1e-30, 1e-3, 1.0, 1e30, 1e300])
def test_gumbel_softmax_never_nan(dtype, tau):
    big = float(np.finfo(dtype).max)
    x = np.array(
        [[big, -big, 0.0, 1.0], [-INF, -INF, 3.0, -INF], [INF, 0.0, INF, -big], [0.0, 0.0, 0.0, 0.0]],
        dtype=dtype,
    )
    for hard in (False, True):
        y = gumbel_softmax(x, tau, hard=hard, rng=0)
        assert not np.isnan(y).any()
        np.testing.assert_allclose(y.astype(np.float64).sum(-1), 1.0, rtol=2e-3)
        assert y[1, 2] == 1 and y[2, 1] == 0 and y[2, 3] == 0
        if tau <= 1 or dtype == np.float64:  # -big is 2 * big behind, beyond any T here
            assert y[0, 1] == 0


def test_gumbel_softmax_nan_and_empty_rows_follow_softmax():
    x = np.array([[0.0, np.nan], [-INF, -INF], [0.0, 1.0]])
    for kw in ({}, {"hard": True}):
        y = gumbel_softmax(x, 0.5, rng=0, **kw)
        assert np.isnan(y[0]).all()
        np.testing.assert_array_equal(y[1], [0.0, 0.0])
        assert y[2].sum() == pytest.approx(1.0)
    assert gumbel_softmax(np.zeros((2, 0)), 1.0).shape == (2, 0)


def test_gumbel_softmax_axis():
    x = np.random.default_rng(0).normal(size=(3, 4))
    y = gumbel_softmax(x, 0.5, axis=0, rng=0)
    np.testing.assert_allclose(y.sum(axis=0), 1.0)
    np.testing.assert_allclose(y, gumbel_softmax(x.T, 0.5, rng=0).T)


# --------------------------------------------------------------------------- filters: hand cases
def kept(x, **kw):
    return np.exp(filter_logits(np.asarray(x, dtype=np.float64), **kw)) > 0


@pytest.mark.parametrize(
    ("probs", "kw", "expected"),
    [
        # top-k: ties at the k-th value are kept
        ([0.4, 0.1, 0.25, 0.25], {"top_k": 2}, [1, 0, 1, 1]),
        ([0.4, 0.1, 0.25, 0.25], {"top_k": 1}, [1, 0, 0, 0]),
        ([0.4, 0.1, 0.25, 0.25], {"top_k": 9}, [1, 1, 1, 1]),
        # top-p: the crossing token and every token tied with it
        ([0.5, 0.25, 0.25], {"top_p": 0.6}, [1, 1, 1]),
        ([0.5, 0.25, 0.25], {"top_p": 0.45}, [1, 0, 0]),
        ([0.1, 0.2, 0.3, 0.4], {"top_p": 0.65}, [0, 0, 1, 1]),
        ([0.1, 0.2, 0.3, 0.4], {"top_p": 0.75}, [0, 1, 1, 1]),
        ([0.1, 0.2, 0.3, 0.4], {"top_p": 0.0}, [0, 0, 0, 1]),
        ([0.1, 0.2, 0.3, 0.4], {"top_p": 1.0}, [1, 1, 1, 1]),
        # min-p: p >= min_p * max p, ties kept
        ([0.5, 0.25, 0.2, 0.05], {"min_p": 0.45}, [1, 1, 0, 0]),
        ([0.5, 0.25, 0.2, 0.05], {"min_p": 0.35}, [1, 1, 1, 0]),
        ([0.5, 0.25, 0.2, 0.05], {"min_p": 1.0}, [1, 0, 0, 0]),
        ([0.3, 0.3, 0.3, 0.1], {"min_p": 1.0}, [1, 1, 1, 0]),
        # order: top-k renormalises before top-p sees it (0.4/0.7 = 0.571 >= 0.5)
        ([0.4, 0.3, 0.2, 0.1], {"top_k": 2, "top_p": 0.5}, [1, 0, 0, 0]),
        ([0.4, 0.3, 0.2, 0.1], {"top_p": 0.5}, [1, 1, 0, 0]),
        # temperature before top-p: T = 0.2 sharpens [.5, .3, .2] to [.919, .071, .009]
        ([0.5, 0.3, 0.2], {"top_p": 0.7}, [1, 1, 0]),
        ([0.5, 0.3, 0.2], {"top_p": 0.7, "temperature": 0.2}, [1, 0, 0]),
        # temperature before min-p: T = 3 flattens, so min-p keeps more
        ([0.5, 0.3, 0.2], {"min_p": 0.5}, [1, 1, 0]),
        ([0.5, 0.3, 0.2], {"min_p": 0.5, "temperature": 3.0}, [1, 1, 1]),
        # greedy
        ([0.2, 0.4, 0.4], {"temperature": 0}, [0, 1, 0]),
        ([0.2, 0.4, 0.4], {"temperature": 0, "top_k": 3, "top_p": 0.9}, [0, 1, 0]),
    ],
)
def test_filters_hand_computed(probs, kw, expected):
    x = np.log(probs) - 3.0
    np.testing.assert_array_equal(kept(x, **kw), np.array(expected, dtype=bool))
    np.testing.assert_allclose(np.exp(filter_logits(x, **kw)), reference_filter(x, **kw), rtol=1e-12, atol=1e-300)


def test_filters_with_infinite_logits():
    x = np.array([INF, 0.0, INF, -INF])
    np.testing.assert_array_equal(np.exp(filter_logits(x)), [0.5, 0, 0.5, 0])
    np.testing.assert_array_equal(np.exp(filter_logits(x, top_k=1)), [0.5, 0, 0.5, 0])  # tie kept
    np.testing.assert_array_equal(np.exp(filter_logits(x, temperature=0)), [1, 0, 0, 0])
    y = np.array([-INF, 1.0, -INF, 0.0])
    np.testing.assert_array_equal(kept(y, top_k=3), [False, True, False, True])  # -inf never kept


def test_filter_keeps_dtype_and_axis():
    x = np.log(np.array([[0.5, 0.3], [0.3, 0.5], [0.2, 0.2]], dtype=np.float32))
    f = filter_logits(x, top_k=1, axis=0)
    assert f.dtype == np.float32 and f.shape == (3, 2)
    np.testing.assert_array_equal(np.isfinite(f), [[True, False], [False, True], [False, False]])
    h = filter_logits(x.astype(np.float16), top_p=0.1)
    assert h.dtype == np.float16


# --------------------------------------------------------------------------- filters: properties
logit_rows = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 12)),
    elements=st.one_of(st.integers(-6, 6).map(float), st.floats(-30, 30), st.just(-INF)),
)


@given(
    x=logit_rows,
    temperature=st.one_of(st.just(1.0), st.just(0.0), st.floats(0.05, 20)),
    top_k=st.one_of(st.none(), st.integers(1, 14)),
    top_p=st.one_of(st.none(), st.floats(0.0, 1.0)),
    min_p=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_filters_match_reference(x, temperature, top_k, top_p, min_p):
    x[:, 0] = np.where(np.isfinite(x[:, 0]), x[:, 0], 0.0)  # every row samplable
    kw = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p}
    got = np.exp(filter_logits(x, **kw))
    for row, g in zip(x, got, strict=True):
        ref = reference_filter(row, **kw)
        np.testing.assert_array_equal(g > 0, ref > 0)
        np.testing.assert_allclose(g, ref, rtol=1e-9, atol=1e-300)
        # at least one token, and the first most probable one is always kept
        assert g[int(np.argmax(row))] > 0
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-12)


@given(
    x=hnp.arrays(np.float64, st.integers(2, 30), elements=st.floats(-20, 20), unique=True),
    temperature=st.floats(0.1, 10),
    top_k=st.one_of(st.none(), st.integers(1, 30)),
    top_p=st.one_of(st.none(), st.floats(0.01, 0.99)),
    min_p=st.one_of(st.none(), st.floats(0.01, 0.99)),
)
def test_filters_match_transformers_rules_without_ties(x, temperature, top_k, top_p, min_p):
    """Where there are no ties, the kept set is that of HF's TopK/TopP/MinP warpers."""
    kw = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p}
    ref = hf_style_keep(x, **kw)
    got = kept(x, **kw)
    # a token whose cumulative mass is within rounding of 1 - top_p may go either way
    if not np.array_equal(got, ref):
        p = reference_filter(x, temperature=temperature, top_k=top_k)
        cum = np.cumsum(np.sort(p)[::-1])
        assert top_p is not None and np.min(np.abs(cum - top_p)) < 1e-12
    else:
        np.testing.assert_array_equal(got, ref)


def test_ties_differ_from_transformers_on_purpose():
    # HF's TopP drops one of two tokens tied at the cut-off; ours keeps both
    x = np.log([0.5, 0.25, 0.25])
    assert hf_style_keep(x, top_p=0.6).sum() == 2
    assert kept(x, top_p=0.6).sum() == 3


# --------------------------------------------------------------------------- sample_logits
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"temperature": 0.5},
        {"temperature": 2.0, "top_k": 3},
        {"top_p": 0.8},
        {"min_p": 0.2},
        {"temperature": 0.7, "top_k": 4, "top_p": 0.9, "min_p": 0.05},
    ],
)
def test_sample_logits_chisquare(kw):
    rng = np.random.default_rng(17)
    logits = rng.normal(size=(3, 8)) * 1.5
    logits[1, [2, 5]] = logits[1, 0]  # ties
    logits[2, 3] = -INF
    draws = sample_logits(logits, size=20_000, rng=123, **kw)
    assert draws.shape == (20_000, 3)
    target = np.exp(filter_logits(logits, **kw))
    for b in range(3):
        np.testing.assert_allclose(target[b], reference_filter(logits[b], **kw), rtol=1e-9, atol=1e-300)
        assert chisquare_ok(draws[:, b], target[b]) > P_MIN


def test_sample_logits_greedy_and_shapes():
    x = np.array([[1.0, 3.0, 3.0], [INF, 0.0, INF], [-INF, -1.0, -2.0]])
    np.testing.assert_array_equal(sample_logits(x, temperature=0), [1, 0, 1])
    d = sample_logits(x, temperature=0, size=(2, 5))
    assert d.shape == (2, 5, 3) and (d == [1, 0, 1]).all()
    assert isinstance(sample_logits([0.0, 1.0], rng=0), np.integer)
    y = np.random.default_rng(0).normal(size=(2, 6, 3))
    assert sample_logits(y, axis=1, size=4, rng=0).shape == (4, 2, 3)
    assert sample_logits(y, size=0, rng=0).shape == (0, 2, 6)
    # a greedy call takes nothing from the generator
    g = np.random.default_rng(3)
    sample_logits(y, temperature=0, rng=g)
    assert g.random() == np.random.default_rng(3).random()


def test_sample_logits_reproducible():
    x = np.random.default_rng(0).normal(size=(4, 50))
    a = sample_logits(x, top_p=0.9, size=100, rng=7)
    np.testing.assert_array_equal(a, sample_logits(x, top_p=0.9, size=100, rng=7))
    assert not np.array_equal(a, sample_logits(x, top_p=0.9, size=100, rng=8))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e-300, 1e-8, 1.0, 1e300])
def test_sample_logits_extreme_inputs_never_fail(dtype, temperature):
    big = float(np.finfo(dtype).max)
    x = np.array([[big, -big, big, 0.0], [-INF, 1.0, -INF, -INF], [INF, -INF, 0.0, big]], dtype=dtype)
    for kw in ({}, {"top_k": 2}, {"top_p": 0.5}, {"min_p": 0.9}):
        f = filter_logits(x, temperature=temperature, **kw)
        assert not np.isnan(f).any()
        d = sample_logits(x, temperature=temperature, size=200, rng=0, **kw)
        for b in range(3):
            ref = reference_filter(x[b], temperature=temperature, **kw)
            np.testing.assert_allclose(np.exp(f[b].astype(np.float64)), ref, rtol=2e-3, atol=1e-300)
            assert (ref[d[:, b]] > 0).all()
        if temperature <= 1:
            assert np.isin(d[:, 0], [0, 2]).all()
        assert (d[:, 1] == 1).all() and (d[:, 2] == 0).all()


def test_sample_logits_only_draws_kept_tokens():
    x = np.random.default_rng(1).normal(size=(16, 100)) * 3
    d = sample_logits(x, top_k=5, top_p=0.7, size=300, rng=0)
    keep = np.exp(filter_logits(x, top_k=5, top_p=0.7)) > 0
    assert keep[np.arange(16), d].all()


# --------------------------------------------------------------------------- the categorical core
class _FixedUniform:
    def __init__(self, u: float) -> None:
        self.u = u

    def random(self, shape):
        return np.full(shape, self.u)


@pytest.mark.parametrize("u", [0.0, 0.5, float(np.nextafter(1.0, 0.0))])
def test_categorical_never_draws_zero_weight(u):
    p = np.array([[0.0, 0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 1e-300, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1e-17]])
    idx = sampling._categorical(p, 3, _FixedUniform(u))
    assert (p[np.arange(3), idx] > 0).all()


def test_categorical_binary_search_path_agrees(monkeypatch):
    p = np.random.default_rng(0).random((5, 9))
    p[:, 3] = 0.0
    compare = sampling._categorical(p, 1000, np.random.default_rng(1))
    monkeypatch.setattr(sampling, "_BLOCK", 16)
    search = sampling._categorical(p, 1000, np.random.default_rng(1))
    np.testing.assert_array_equal(compare, search)
    monkeypatch.setattr(sampling, "_BLOCK", 1000 * 9 + 1)  # rows in chunks
    np.testing.assert_array_equal(compare, sampling._categorical(p, 1000, np.random.default_rng(1)))


def test_demo_section():
    text = sampling.demo_section()
    assert "gumbel_max" in text and "top_p" in text and "nan" not in text.lower()


def test_empty_batches():
    x = np.zeros((0, 5))
    assert sample_logits(x, size=3, rng=0).shape == (3, 0)
    assert sample_logits(x, top_k=2, top_p=0.5, min_p=0.1, rng=0).shape == (0,)
    assert sample_logits(x, temperature=0).shape == (0,)
    assert gumbel_max(x, size=2, rng=0).shape == (2, 0)
    assert gumbel_softmax(x, 1.0, rng=0).shape == (0, 5)
    assert filter_logits(x, top_p=0.3).shape == (0, 5)
