"""The core functions: worked examples, edge semantics, accuracy, properties, backends."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.exceptions import AxisError

import softargmax as sa
from softargmax import hardmax, log_softmax, logsumexp, softmax, softmin

from .oracles import PEERS, mp_log_softmax, mp_logsumexp, mp_softmax

INF = np.inf
NAN = np.nan
FLOATS = [np.float16, np.float32, np.float64]
EPS = {np.float16: 2**-10, np.float32: 2**-23, np.float64: 2**-52}


# --------------------------------------------------------------------------- worked examples
@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (
            [1, 2, 3, 4, 1, 2, 3],
            [0.02364054, 0.06426166, 0.1746813, 0.474833, 0.02364054, 0.06426166, 0.1746813],
        ),
        ([5, 7, 10], [0.0064, 0.0471, 0.9465]),
        ([[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[0.0900, 0.2447, 0.6652]] * 3),
    ],
)
def test_worked_examples(backend, implementation, x, expected):
    p = softmax(backend.asarray(x, dtype=np.float64), implementation=implementation)
    assert backend.is_own(p)
    np.testing.assert_allclose(backend.to_numpy(p), expected, atol=5e-5)


def test_integer_input_is_default_float(implementation):
    p = softmax([1, 2, 3, 4, 1, 2, 3], implementation=implementation)
    assert p.dtype == np.float64
    b = softmax(np.array([True, False]), implementation=implementation)
    np.testing.assert_allclose(b, [np.e / (1 + np.e), 1 / (1 + np.e)])


# --------------------------------------------------------------------------- mpmath constants
def test_log_softmax_next_to_dominant_max(implementation):
    # mpmath: log(1 / (1 + exp(-50))) = -1.9287498479639177830e-22
    lp = log_softmax([0.0, -50.0], implementation=implementation)
    assert lp[0] == pytest.approx(-1.9287498479639177830e-22, rel=1e-15)
    # mpmath: log1p(exp(-40) + exp(-45)) for logsumexp([0, -40, -45])
    lse = logsumexp([0.0, -40.0, -45.0], implementation=implementation)
    assert lse == pytest.approx(4.2483542552915889e-18 + 2.8625185805493936e-20, rel=1e-15)


def test_large_shift_keeps_relative_accuracy(implementation):
    # exp(-700.25) is normal: a naive shift loses ~700 ulp of it, we keep 1.
    x = np.array([700.5, 0.25])
    p = softmax(x, implementation=implementation)
    assert p[1] == pytest.approx(mp_softmax(x)[1], rel=1e-15)
    t = softmax(x, temperature=3.0, implementation=implementation)
    np.testing.assert_allclose(t, mp_softmax(x, temperature=3.0), rtol=1e-15)


def test_float16_logsumexp_of_many_zeros(implementation):
    out = logsumexp(np.zeros(100_000, dtype=np.float16), implementation=implementation)
    assert out.dtype == np.float16
    assert out == np.float16(np.log(100_000))


# --------------------------------------------------------------------------- edge semantics
@pytest.mark.parametrize(
    ("x", "p", "lp", "lse"),
    [
        ([INF, 1.0], [1, 0], [0, -INF], INF),
        ([INF, INF], [0.5, 0.5], [-np.log(2), -np.log(2)], INF),
        ([INF, -INF, INF, 2.0], [0.5, 0, 0.5, 0], [-np.log(2), -INF, -np.log(2), -INF], INF),
        ([-INF, -INF], [0, 0], [-INF, -INF], -INF),
        ([-INF, 3.0], [0, 1], [-INF, 0], 3.0),
        ([1.0, NAN], [NAN, NAN], [NAN, NAN], NAN),
        ([INF, NAN], [NAN, NAN], [NAN, NAN], NAN),
        ([1e308, -1e308], [1, 0], [0, -INF], 1e308),
        ([1.7e308, 1.7e308], [0.5, 0.5], [-np.log(2), -np.log(2)], 1.7e308),
    ],
)
def test_edge_table(backend, implementation, x, p, lp, lse):
    xa = backend.asarray(x, dtype=np.float64)
    np.testing.assert_array_equal(backend.to_numpy(softmax(xa, implementation=implementation)), p)
    np.testing.assert_allclose(
        backend.to_numpy(log_softmax(xa, implementation=implementation)), lp, rtol=1e-15
    )
    got = backend.to_numpy(logsumexp(xa, implementation=implementation))
    np.testing.assert_array_equal(got, lse)  # 1e308 + log(2) rounds to 1e308


def test_nan_confined_to_its_row(implementation):
    x = np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0], [NAN, NAN, NAN]])
    p = softmax(x, implementation=implementation)
    assert np.isnan(p[0]).all() and np.isnan(p[2]).all()
    np.testing.assert_allclose(p[1], [0.09003057, 0.24472847, 0.66524096], rtol=1e-7)
    lse = logsumexp(x, axis=1, implementation=implementation)
    assert np.isnan(lse[0]) and np.isfinite(lse[1]) and np.isnan(lse[2])


def test_masks(backend, implementation):
    x = backend.asarray([[1.0, 2.0, NAN, 3.0], [0.0, 1.0, 2.0, 3.0]])
    w = backend.asarray([[True, True, False, True], [False, False, False, False]])
    p = backend.to_numpy(softmax(x, where=w, implementation=implementation))
    np.testing.assert_allclose(p[0], list(softmax([1.0, 2.0, 3.0]))[:2] + [0.0] + [softmax([1.0, 2.0, 3.0])[2]])
    np.testing.assert_array_equal(p[1], 0.0)
    lp = backend.to_numpy(log_softmax(x, where=w, implementation=implementation))
    assert lp[0, 2] == -INF and (lp[1] == -INF).all()
    lse = backend.to_numpy(logsumexp(x, axis=1, where=w, implementation=implementation))
    assert lse[0] == pytest.approx(float(logsumexp([1.0, 2.0, 3.0]))) and lse[1] == -INF


def test_mask_broadcasts():
    x = np.arange(6.0).reshape(2, 3)
    p = softmax(x, where=np.array([True, False, True]))
    np.testing.assert_allclose(p[:, 1], 0.0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="where"):
        softmax(x, where=np.ones((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="where"):
        softmax(x, where=np.ones(3))


def test_negative_beta_and_softmin_swap_infinities(implementation):
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(softmin(x), softmax(-x), rtol=1e-15)
    np.testing.assert_allclose(softmax(x, beta=-2.0), softmax(-2 * x), rtol=1e-15)
    np.testing.assert_array_equal(softmin([-INF, 1.0, -INF], implementation=implementation), [0.5, 0, 0.5])
    np.testing.assert_array_equal(softmin([INF, 1.0], implementation=implementation), [0, 1])
    np.testing.assert_array_equal(softmax([INF, 1.0], beta=-1.0, implementation=implementation), [0, 1])


def test_scales(implementation):
    x = np.array([0.5, 1.0, 4.0])
    np.testing.assert_allclose(softmax(x, beta=2.5, implementation=implementation), mp_softmax(x, beta=2.5), rtol=1e-15)
    np.testing.assert_allclose(softmax(x, base=2.0, implementation=implementation), 2**x / (2**x).sum(), rtol=1e-14)
    np.testing.assert_allclose(softmax(x, temperature=0.5, implementation=implementation), mp_softmax(x, beta=2.0), rtol=1e-15)
    # logsumexp with a scale is the un-divided value
    assert logsumexp(x, beta=3.0, implementation=implementation) == pytest.approx(float(mp_logsumexp(x, beta=3.0)), rel=1e-15)
    # no overflow when beta * x would overflow
    p = softmax([1e300, 0.5e300], beta=1e10, implementation=implementation)
    np.testing.assert_array_equal(p, [1.0, 0.0])
    q = softmax([1e308, -1e308], beta=1e-308, implementation=implementation)
    np.testing.assert_allclose(q, mp_softmax(np.array([1.0, -1.0]), beta=1.0), rtol=1e-13)


@pytest.mark.parametrize(
    ("kw", "exc", "match"),
    [
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"temperature": -1.0}, ValueError, "temperature"),
        ({"temperature": INF}, ValueError, "temperature"),
        ({"beta": 0.0}, ValueError, "beta"),
        ({"beta": NAN}, ValueError, "beta"),
        ({"base": 1.0}, ValueError, "base"),
        ({"base": -2.0}, ValueError, "base"),
        ({"base": 0.0}, ValueError, "base"),
        ({"beta": 1.0, "temperature": 2.0}, ValueError, "at most one"),
        ({"beta": "2"}, TypeError, "beta"),
        ({"temperature": True}, TypeError, "temperature"),
        ({"beta": np.ones(2)}, TypeError, "beta"),
    ],
)
def test_bad_scale(kw, exc, match):
    for fn in (softmax, log_softmax, logsumexp, softmin):
        with pytest.raises(exc, match=match):
            fn([1.0, 2.0], **kw)


@pytest.mark.parametrize("x", [[1 + 2j, 3j], np.array(["a", "b"]), np.array([1.0, None], dtype=object)])
def test_bad_dtypes(x):
    for fn in (softmax, log_softmax, logsumexp, softmin, hardmax):
        with pytest.raises(TypeError, match="x must be an array of real numbers"):
            fn(x)


def test_axes():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    for axis in (0, 1, 2, -1, -3):
        np.testing.assert_allclose(softmax(x, axis=axis), mp_softmax(x, axis=axis), rtol=1e-15)
    joint = softmax(x, axis=(0, 2))
    ref = np.exp(x) / np.exp(x).sum(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(joint, ref, rtol=1e-14)
    np.testing.assert_allclose(softmax(x, axis=None), np.exp(x) / np.exp(x).sum(), rtol=1e-14)
    np.testing.assert_array_equal(softmax(x, axis=()), np.ones_like(x))
    np.testing.assert_array_equal(logsumexp(x, axis=()), x)
    assert logsumexp(x).shape == ()
    assert logsumexp(x, axis=(0, 2), keepdims=True).shape == (1, 3, 1)
    with pytest.raises(AxisError):
        softmax(x, axis=3)
    with pytest.raises(AxisError):
        softmax(np.float64(2.0))
    assert softmax(np.float64(2.0), axis=None) == 1.0
    with pytest.raises(ValueError, match="repeated"):
        softmax(x, axis=(1, -2))
    with pytest.raises(TypeError, match="axis"):
        softmax(x, axis=1.0)


def test_empty_axes():
    assert softmax(np.zeros((3, 0))).shape == (3, 0)
    assert log_softmax(np.zeros((0, 3))).shape == (0, 3)
    np.testing.assert_array_equal(logsumexp(np.zeros((3, 0)), axis=1), [-INF] * 3)
    assert logsumexp([]) == -INF
    assert logsumexp(np.zeros((0, 2)), axis=1).shape == (0,)


def test_dtypes_preserved(implementation):
    for dt in [np.float16, np.float32, np.float64, ml_dtypes.bfloat16]:
        x = np.array([1.0, 2.0, 3.0], dtype=dt)
        for fn in (softmax, log_softmax, softmin):
            assert fn(x, implementation=implementation).dtype == dt
        assert logsumexp(x, implementation=implementation).dtype == dt
    assert hardmax(np.array([1, 2], dtype=np.int32)).dtype == np.float64
    assert isinstance(logsumexp([1.0, 2.0]), np.float64)


def test_out(implementation):
    x = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    out = np.empty_like(x)
    res = softmax(x, out=out, implementation=implementation)
    assert res is out
    np.testing.assert_allclose(out, softmax(x), rtol=1e-6)
    with pytest.raises(ValueError, match="out must have the result's shape"):
        softmax(x, out=np.empty((4, 4), np.float32))
    with pytest.raises(TypeError, match="out must have the result's dtype"):
        softmax(x, out=np.empty((4, 5), np.float64))
    ro = np.empty_like(x)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        log_softmax(x, out=ro)


@pytest.mark.parametrize(("shape", "axis"), [
    ((50, 7), -1), ((3000, 10), -1), ((40, 5000), -1), ((4, 300000), -1), ((3, 400000), -1),
    ((5000, 40), 0), ((300, 3000), 0), ((6, 50, 70), (0, 2)),
])
@pytest.mark.parametrize("fn", [softmax, log_softmax, softmin, hardmax])
def test_out_may_be_the_input(implementation, shape, axis, fn):
    """``fn(x, out=x)`` (and an out that overlaps x in part) gives the out-of-place result:
    short, long and split rows, columns, a tuple of axes, special rows, a mask."""
    rng = np.random.default_rng(2)
    kw = {} if fn is hardmax else {"implementation": implementation}
    for dtype in (np.float32, np.float64):
        x = (3 * rng.standard_normal(shape)).astype(dtype)
        k = shape[-1] + 1
        x.reshape(-1)[[0, k, 2 * k]] = [INF, NAN, -INF]  # in three different distributions
        want = fn(x, axis=axis, **kw)
        y = x.copy()
        assert fn(y, axis=axis, out=y, **kw) is y
        np.testing.assert_array_equal(y, want)
        w = rng.random(shape) > 0.3
        want = fn(x, axis=axis, where=w, **kw)
        y = x.copy()
        fn(y, axis=axis, where=w, out=y, **kw)
        np.testing.assert_array_equal(y, want)
    buf = (3 * rng.standard_normal((shape[0], shape[-1] + 1)))  # out shifted by one entry
    x2, out2 = buf[:, :-1], buf[:, 1:]
    if len(shape) == 2:
        want = fn(x2.copy(), axis=axis, **kw)
        fn(x2, axis=axis, out=out2, **kw)
        np.testing.assert_array_equal(out2, want)


def test_inputs_not_modified(implementation):
    x = np.array([[1.0, NAN, INF], [3.0, -INF, 2.0]])
    keep = x.copy()
    w = np.array([True, False, True])
    for fn in (softmax, log_softmax, softmin):
        fn(x, where=w, implementation=implementation)
    logsumexp(x, b=np.ones(3), axis=1, implementation=implementation)
    np.testing.assert_array_equal(x, keep)


def test_hardmax():
    np.testing.assert_array_equal(hardmax([1.0, 3.0, 3.0, 2.0]), [0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(hardmax([-INF, -INF]), [0, 0])
    np.testing.assert_array_equal(hardmax([INF, 1.0, INF]), [0.5, 0, 0.5])
    assert np.isnan(hardmax([1.0, NAN])).all()
    np.testing.assert_array_equal(hardmax([5.0, 1.0], where=np.array([False, True])), [0, 1])
    # the beta -> inf limit of softmax
    x = np.array([0.3, 1.0, 1.0, -2.0])
    np.testing.assert_allclose(softmax(x, beta=1e4), hardmax(x), atol=1e-300)


# --------------------------------------------------------------------------- logsumexp b / sign
def test_logsumexp_b_matches_scipy():
    from scipy.special import logsumexp as sp_lse

    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6))
    b = rng.uniform(0.1, 2, size=(5, 6))
    np.testing.assert_allclose(logsumexp(x, axis=1, b=b), sp_lse(x, axis=1, b=b), rtol=1e-14)
    b2 = rng.normal(size=(5, 6))
    ours = logsumexp(x, axis=1, b=b2, return_sign=True)
    theirs = sp_lse(x, axis=1, b=b2, return_sign=True)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)
    np.testing.assert_array_equal(ours[1], theirs[1])
    # broadcasting b against x, b = 0 ignores even an infinite x
    np.testing.assert_allclose(logsumexp(x, axis=1, b=np.array(2.0)), sp_lse(x, axis=1) + np.log(2))
    assert logsumexp([INF, 1.0], b=[0.0, 1.0]) == 1.0
    # negative sum without return_sign is NaN (as in SciPy), zero sum is -inf with sign 0
    assert np.isnan(logsumexp([1.0, 2.0], b=[1.0, -1.0]))
    lse, sign = logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert lse == -INF and sign == 0
    with pytest.raises(ValueError, match="b of shape"):
        logsumexp(np.ones(3), b=np.ones(2))


# --------------------------------------------------------------------------- accuracy vs mpmath
finite64 = st.floats(-700, 700, allow_nan=False, width=64)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=finite64))
def test_float64_relative_accuracy(x):
    p = softmax(x)
    ref = mp_softmax(x)
    normal = ref >= np.finfo(np.float64).tiny
    np.testing.assert_allclose(p[normal], ref[normal], rtol=1e-15, atol=0)
    lp = log_softmax(x)
    ref = mp_log_softmax(x)
    normal = np.abs(ref) >= np.finfo(np.float64).tiny
    np.testing.assert_allclose(lp[normal], ref[normal], rtol=1e-15, atol=0)
    lse = logsumexp(x, axis=-1)
    ref_lse = mp_logsumexp(x)
    # relative to the condition of logsumexp near 0: |err| <= eps * (|m| + |lse|)
    tol = 1e-15 * (np.abs(ref_lse) + np.abs(x).max(axis=-1))
    assert np.all(np.abs(lse - ref_lse) <= tol)


@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=st.floats(-80, 80, width=32)),
    st.sampled_from([None, 0.5, 3.0]),
)
def test_float32_relative_accuracy(x, temperature):
    p = softmax(x, temperature=temperature)
    ref = mp_softmax(x, temperature=temperature)
    normal = ref >= np.finfo(np.float32).tiny
    np.testing.assert_allclose(p[normal], ref[normal], rtol=3e-7, atol=0)


# --------------------------------------------------------------------------- properties
def _arrays(dtype):
    info = np.finfo(dtype)
    big = float(dtype(float(info.max) * 0.9))
    elements = st.one_of(
        st.floats(-big, big, width=np.dtype(dtype).itemsize * 8, allow_nan=False, allow_infinity=False),
        st.sampled_from([INF, -INF, NAN, 0.0, -0.0, float(info.tiny), big, -big]),
    )
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5), elements=elements)


@st.composite
def case(draw, dtype=None):
    dtype = dtype or draw(st.sampled_from(FLOATS))
    x = draw(_arrays(dtype))
    axis = draw(st.one_of(st.none(), st.integers(-x.ndim, x.ndim - 1), st.just(tuple(range(x.ndim))[:2])))
    mask = draw(st.one_of(st.none(), hnp.arrays(np.bool_, x.shape)))
    return x, axis, mask


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))


SCALES = st.sampled_from([{}, {}, {"temperature": 0.5}, {"temperature": 3.0}, {"beta": -1.0}, {"beta": -0.25}, {"base": 10.0}])


def _beta(kw):
    if "temperature" in kw:
        return 1 / kw["temperature"]
    if "base" in kw:
        return float(np.log(kw["base"]))
    return kw.get("beta", 1.0)


@given(case(), SCALES, st.booleans())
def test_properties(c, kw, strided):
    x, axis, mask = c
    if strided and x.ndim:
        # a non-contiguous view of the same values
        big = np.repeat(x, 2, axis=-1)
        x = big[..., ::2]
        assert not x.flags.c_contiguous or x.shape[-1] <= 1 or x.size == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(x, axis=axis, where=mask, **kw)
        lp = log_softmax(x, axis=axis, where=mask, **kw)
        lse = logsumexp(x, axis=axis, where=mask, keepdims=True, **kw)
    assert p.dtype == x.dtype and lp.dtype == x.dtype and p.shape == x.shape
    axes = _axes(axis, x.ndim)
    xs = -x if _beta(kw) < 0 else x  # softmin: -inf shares the mass, +inf is excluded
    xm = np.where(mask, xs, -INF) if mask is not None else xs
    beta = abs(_beta(kw))
    nan_rows = np.isnan(xm).any(axis=axes, keepdims=True) if x.size else np.zeros_like(lse, bool)
    # no NaN from non-NaN input
    assert not np.isnan(p[~np.broadcast_to(nan_rows, x.shape)]).any()
    assert not np.isnan(lse[~nan_rows]).any()
    if x.size == 0:
        return
    # excluded entries: exactly 0 / -inf
    if mask is not None:
        assert (p[~mask] == 0).all() and (lp[~mask] == -INF).all()
    # sums to one within K eps, or zero for an empty support
    k = int(np.prod([x.shape[a] for a in axes]))
    total = p.astype(np.float64).sum(axis=axes, keepdims=True)
    ok = ~nan_rows
    empty = (xm == -INF).all(axis=axes, keepdims=True)
    eps = EPS[x.dtype.type]
    assert np.all(np.abs(total[ok & ~empty] - 1) <= max(k, 2) * eps)
    assert np.all(total[ok & empty] == 0)
    assert np.all(lse[ok & empty] == -INF)
    # log_softmax == x - logsumexp on finite rows (float64 for the check)
    finite_rows = np.isfinite(lse) & ok
    sel = np.broadcast_to(finite_rows, x.shape) & np.isfinite(xm)
    with np.errstate(invalid="ignore", over="ignore"):
        bx = beta * xm.astype(np.float64)
        expect = bx - lse.astype(np.float64)
        scale = np.abs(bx) + np.abs(np.broadcast_to(lse, x.shape).astype(np.float64))
    sel &= np.isfinite(expect) & (np.abs(expect) <= float(np.finfo(x.dtype).max))
    assert np.all(np.abs(lp[sel].astype(np.float64) - expect[sel]) <= 8 * eps * scale[sel] + 8 * eps)


@given(case(np.float32), SCALES)
def test_bfloat16_follows_float32(c, kw):
    x, axis, mask = c
    xb = x.astype(ml_dtypes.bfloat16)
    p = softmax(xb, axis=axis, where=mask, **kw)
    assert p.dtype == ml_dtypes.bfloat16
    ref = softmax(xb.astype(np.float32), axis=axis, where=mask, **kw).astype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(p.astype(np.float32), ref.astype(np.float32))


@given(case(np.float64), st.floats(-50, 50))
def test_shift_invariance(c, shift):
    x, axis, mask = c
    assume(np.isfinite(x).all() and np.abs(x).max(initial=0) < 1e6)
    p = softmax(x, axis=axis, where=mask)
    q = softmax(x + shift, axis=axis, where=mask)
    np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-300)


@given(hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-30, 30)))
def test_gradient_of_logsumexp_is_softmax(x):
    h = 1e-6
    grad = np.array([(logsumexp(x + h * e) - logsumexp(x - h * e)) / (2 * h) for e in np.eye(len(x))])
    np.testing.assert_allclose(grad, softmax(x), atol=1e-7)


# --------------------------------------------------------------------------- peers
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_peers(name, dtype):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(7, 33)) * 20).astype(dtype)
    ours = getattr(sa, name)(x, axis=-1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    # peers compute log_softmax as z - log(sum exp z): absolute error ~ eps * |logsumexp|
    atol = 8 * np.finfo(dtype).eps * np.abs(x).max() if name != "softmax" else np.finfo(dtype).tiny
    for peer, fn in PEERS[name].items():
        np.testing.assert_allclose(ours, fn(x, axis=-1), rtol=tol, atol=atol, err_msg=peer)


def test_other_backends_keep_type_and_match_numpy(backend):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    xa = backend.asarray(x)
    w = backend.asarray(np.array([True, True, False, True]))
    for fn in (softmax, log_softmax, softmin):
        res = fn(xa, axis=0, temperature=2.0)
        assert backend.is_own(res)
        np.testing.assert_allclose(backend.to_numpy(res), fn(x, axis=0, temperature=2.0), rtol=1e-6)
        res = fn(xa, where=w)
        np.testing.assert_allclose(backend.to_numpy(res), fn(x, where=np.array([True, True, False, True])), rtol=1e-6)
    lse = logsumexp(xa, axis=1)
    assert backend.is_own(lse)
    np.testing.assert_allclose(backend.to_numpy(lse), logsumexp(x, axis=1), rtol=1e-6)
    res = hardmax(xa)
    np.testing.assert_array_equal(backend.to_numpy(res), hardmax(x))


def test_torch_half_types():
    torch = pytest.importorskip("torch")
    for dt in (torch.float16, torch.bfloat16):
        x = torch.tensor([1.0, 2.0, 3.0], dtype=dt)
        p = softmax(x)
        assert p.dtype == dt
        np.testing.assert_allclose(p.float().numpy(), [0.0900, 0.2447, 0.6652], atol=4e-3)
    assert softmax(torch.tensor([1, 2])).dtype == torch.get_default_dtype()


def test_implementation_argument():
    with pytest.raises(ValueError, match="implementation"):
        softmax([1.0], implementation="fast")
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="needs NumPy input"):
        softmax(torch.ones(3), implementation="numba")
