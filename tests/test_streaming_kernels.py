"""The numba paths of softargmax.streaming against its NumPy specification.

Pass one (the state of a chunk, on the core's kernels or on the row-state kernel of
``_kernels/streaming.py``) and pass two (a chunk normalised by a state computed elsewhere,
the new kernel) are compared with ``implementation="reference"`` (the NumPy path, itself
checked against the in-memory core in test_streaming.py), on adversarial data, serial and
parallel, rows and columns, rows cut in pieces, and with states whose special cases
(NaN, +inf, empty support) come from other chunks than the one being normalised.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softargmax import streaming as s
from softargmax._kernels import api
from softargmax._kernels import core as kc
from softargmax._validation import resolve_scale

SCALES = [resolve_scale(), resolve_scale(temperature=3.0), resolve_scale(beta=-0.7), resolve_scale(beta=2.5)]
RTOL = {np.float32: 2e-6, np.float64: 1e-13}


def assert_close(actual, expected, dtype):
    """Same inf/NaN pattern, values equal to the dtype's rounding (subnormal results to
    the absolute precision at the smallest normal number)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    fin = np.isfinite(expected)
    rtol = RTOL[np.dtype(dtype).type]
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=rtol, atol=rtol * float(np.finfo(dtype).tiny))


def cast(a, dtype):
    """The float64 reference rounded to ``dtype`` (log-probabilities below -3.4e38 become
    -inf in float32, in the kernel's store as here)."""
    with np.errstate(over="ignore"):
        return a.astype(dtype)


def assert_same_state(got, want, rtol):
    """Equal states. The float64 exp's ``rest`` matches elementwise; the float32 exp's
    (``rtol`` above 1e-12) to ``rtol`` of the sum ``n0 + rest``: it flushes terms below
    float32's range, which are nothing next to the maxima's ``n0 >= 1``."""
    np.testing.assert_array_equal(got.nan, want.nan)
    np.testing.assert_array_equal(got.m, want.m)
    np.testing.assert_allclose(got.n0, want.n0, rtol=0)
    if rtol <= 1e-12:
        np.testing.assert_allclose(got.rest, want.rest, rtol=rtol, atol=1e-300)
        return
    ok = ~np.asarray(want.nan)
    err = np.abs(got.rest - want.rest)[ok]
    bound = rtol * (want.n0 + want.rest)[ok]
    assert np.all(err <= bound), float(np.max(err / np.maximum(bound, 1e-300)))


def adversarial(shape, dtype, rng):
    x = rng.normal(scale=30, size=shape)
    flat = x.reshape(-1)
    n = flat.size
    info = np.finfo(dtype)
    for value, frac in ((np.inf, 0.01), (-np.inf, 0.05), (np.nan, 0.005), (float(info.max), 0.005),
                        (-float(info.max), 0.005), (float(info.tiny), 0.005)):
        flat[rng.choice(n, max(1, int(frac * n)), replace=False)] = value
    return x.astype(dtype)


@pytest.fixture(params=["serial", "parallel"])
def threads(request, monkeypatch):
    """Run the kernels in their serial form, or force the parallel form on small inputs."""
    if request.param == "parallel":
        monkeypatch.setattr(api, "PARALLEL_MIN", 0)
    else:
        monkeypatch.setattr(api, "PARALLEL_MIN", 1 << 62)
    return request.param


# (shape, axes): rows (long, short, a single one), columns, a tuple of axes moved last
LAYOUTS = [((9, 70), (1,)), ((40, 5), (1,)), ((1, 300), (1,)), ((13, 6), (0,)), ((3, 7, 11), (1,)),
           ((4, 5, 6), (0, 2)), ((2, 3, 40), (1, 2))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), LAYOUTS)
def test_state_kernels_equal_reference(shape, axes, dtype, threads):
    rng = np.random.default_rng(sum(shape))
    x = adversarial(shape, dtype, rng)
    mask = rng.random(shape) < 0.8
    for scale in SCALES:
        for m in (None, mask):
            want = s._block_state(x, axes, scale, m, None, np.float64, "reference")
            for precise in (True, False):
                got = s._block_state(x, axes, scale, m, None, np.float64, "numba", precise)
                # float32 data is summed with the float32 exp (float32 lanes, ~1 ulp), as the
                # core's logsumexp does: the state is accurate to float32 rounding
                rtol = 3e-7 if dtype == np.float32 else 1e-13
                assert_same_state(got, want, rtol)


def _global_state(x, axes, scale, mask, rng):
    """A state as after merging with other chunks: the chunk's own state merged with one
    of made-up data, so that rows are NaN, +inf or empty because of entries elsewhere."""
    own = s._block_state(x, axes, scale, mask, None, np.float64, "reference")
    shape = own.m.shape
    other = rng.choice([0.0, 50.0, -50.0, np.inf, -np.inf, np.nan], size=shape, p=[0.4, 0.2, 0.1, 0.1, 0.1, 0.1])
    other_state = s._block_state(np.asarray(other, dtype=np.float64), axes, scale, None, None, np.float64, "reference")
    return s._merge(own, other_state, scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes"), LAYOUTS)
def test_normalise_kernel_equals_reference(shape, axes, dtype, threads):
    rng = np.random.default_rng(2 * sum(shape))
    x = adversarial(shape, dtype, rng)
    mask = rng.random(shape) < 0.8
    x_before = x.copy()
    for scale in SCALES:
        for m in (None, mask):
            state = _global_state(x, axes, scale, m, rng)
            for name in ("softmax", "log_softmax"):
                want = s._normalise(name, x, axes, scale, m, state, np.float64, "reference")
                got = s._normalise(name, x, axes, scale, m, state, np.float64, "numba")
                assert got.dtype == dtype
                assert_close(got, cast(want, dtype), dtype)
                # into a given out: written there and returned
                out = np.full(x.shape, -7.0, dtype)
                res = s._normalise(name, x, axes, scale, m, state, np.float64, "numba", out)
                np.testing.assert_array_equal(res, got)
                if len(axes) == 1 or axes == tuple(range(axes[0], axes[-1] + 1)):
                    assert res is out
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_cut_in_pieces(dtype, threads):
    """Rows longer than the kernels' piece (CHUNK): NaN, +inf and the max in different
    pieces; pass one merges the pieces' states, pass two normalises piece by piece."""
    k = 3 * kc.CHUNK + 5
    rng = np.random.default_rng(3)
    x = rng.normal(scale=5, size=(5, k)).astype(dtype)
    x[1, kc.CHUNK + 3] = np.nan
    x[2, [7, 2 * kc.CHUNK + 1]] = np.inf
    x[3, :] = -np.inf
    x[4, k - 1] = 80.0  # the max, in the last (short) piece
    for scale in (SCALES[0], SCALES[1]):
        want = s._block_state(x, (1,), scale, None, None, np.float64, "reference")
        for precise in (True, False):
            got = s._block_state(x, (1,), scale, None, None, np.float64, "numba", precise)
            assert_same_state(got, want, 3e-7 if dtype == np.float32 else 1e-13)
        np.testing.assert_array_equal(want.n0[2], 2.0)
        for name in ("softmax", "log_softmax"):
            ref = s._normalise(name, x, (1,), scale, None, want, np.float64, "reference")
            assert_close(s._normalise(name, x, (1,), scale, None, want, np.float64, "numba"), cast(ref, dtype), dtype)


finite_or_special = st.one_of(
    st.floats(-1e3, 1e3, width=32),
    st.sampled_from([np.inf, -np.inf, np.nan, 0.0, 3e38, -3e38, 1e-40]),
)


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    ndim = draw(st.integers(1, 3))
    shape = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=1, max_side=9))
    x = draw(hnp.arrays(dtype, shape, elements=finite_or_special))
    axes = tuple(sorted(draw(st.sets(st.integers(0, ndim - 1), min_size=1))))
    mask = draw(st.one_of(st.none(), hnp.arrays(np.bool_, shape)))
    scale = draw(st.sampled_from(SCALES))
    # the state of a "global" row: this chunk merged with other data
    other = draw(st.sampled_from([None, 0.0, 1e3, -1e3, np.inf, -np.inf, np.nan]))
    return x, axes, mask, scale, other


@settings(max_examples=150, deadline=None)
@given(cases())
# every entry excluded, one-entry distributions (the short-row kernel): no sums, not the
# tiny exps of the excluded entries
@example(case=(np.zeros((1, 2, 1), np.float32), (0, 2), np.zeros((1, 2, 1), bool), resolve_scale(), None))
# beta * max overflows float32, columns padded with excluded rows
@example(case=(np.full((1, 2), -3e38, np.float32), (0,), None, resolve_scale(beta=2.5), None))
def test_kernels_equal_reference_hypothesis(case):
    x, axes, mask, scale, other = case
    dtype = x.dtype.type
    want = s._block_state(x, axes, scale, mask, None, np.float64, "reference")
    for precise in (True, False):
        got = s._block_state(x, axes, scale, mask, None, np.float64, "numba", precise)
        assert_same_state(got, want, 3e-7 if dtype == np.float32 else 1e-12)
    state = want
    if other is not None:
        extra = s._block_state(np.full(want.m.shape, other), axes, scale, None, None, np.float64, "reference")
        state = s._merge(want, extra, scale)
    for name in ("softmax", "log_softmax"):
        ref = s._normalise(name, x, axes, scale, mask, state, np.float64, "reference")
        got = s._normalise(name, x, axes, scale, mask, state, np.float64, "numba")
        assert_close(got, cast(ref, dtype), dtype)


# --------------------------------------------------------------------------- kept exps (Dask)
def split_softmax(x, axes, split_axis, bounds, scale, mask):
    """softmax of ``x`` over its trailing ``axes`` cut at ``bounds`` along ``split_axis``:
    pass one keeps each piece's exps (``_stored_rows``), the pieces' states are merged in
    any order, pass two rescales each piece in place (``_rescaled_rows``)."""
    pieces = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        idx = (slice(None),) * split_axis + (slice(a, b),)
        pieces.append((idx, np.ascontiguousarray(x[idx]), None if mask is None else mask[idx]))
    stored = [s._stored_rows(piece, axes, scale, m) for _, piece, m in pieces]
    final = stored[-1][1]
    for _, own in stored[-2::-1]:  # merged from the right: any order gives the same
        final = s._merge(own, final, scale)
    out = np.empty(x.shape, stored[0][0].dtype)
    for (idx, piece, m), (e, own) in zip(pieces, stored, strict=True):
        assert e.shape == piece.shape
        s._rescaled_rows(e, axes, own, final, scale, m)
        out[idx] = e
    return out


def reference_softmax(x, axes, scale, mask, dtype):
    """The NumPy specification on the whole array in float64, rounded to ``dtype``."""
    state = s._block_state(x.astype(np.float64), axes, scale, mask, None, np.float64, "reference")
    return cast(s._normalise("softmax", x.astype(np.float64), axes, scale, mask, state, np.float64, "reference"),
                dtype)


SPLITS = [((9, 70), (1,), 1, [0, 20, 21, 70]), ((9, 70), (1,), 1, [0, 35, 35, 70]),  # an empty piece
          ((1, 300), (1,), 1, [0, 1, 150, 300]), ((3, 7, 11), (1, 2), 1, [0, 3, 7]),
          ((3, 7, 11), (1, 2), 2, [0, 4, 5, 11]), ((3, 7, 11), (2,), 2, [0, 6, 11])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axes", "split_axis", "bounds"), SPLITS)
def test_kept_exps_equal_reference(shape, axes, split_axis, bounds, dtype):
    rng = np.random.default_rng(sum(shape) + len(bounds))
    x = adversarial(shape, dtype, rng)
    if shape[0] > 2:  # an empty row, and rows whose +inf or NaN lie in one piece only
        x[0] = -np.inf
        x[1, ..., -1] = np.inf
        x[-1, ..., 0] = np.nan
    mask = rng.random(shape) < 0.8
    x_before = x.copy()
    for scale in SCALES:
        for m in (None, mask):
            got = split_softmax(x, axes, split_axis, bounds, scale, m)
            assert got.dtype == dtype
            assert_close(got, reference_softmax(x, axes, scale, m, dtype), dtype)
    np.testing.assert_array_equal(x, x_before)


def test_kept_exps_tiny_probabilities_rounded_once():
    """A piece far below the row's max: its stored exps are normal numbers relative to its
    own max, the factor (float64) takes them to float32 subnormals in one rounding."""
    x = np.zeros((2, 6), np.float32)
    x[:, 3:] = [[-95.0, -96.5, -100.0], [-103.0, -104.0, -120.0]]
    got = split_softmax(x, (1,), 1, [0, 3, 6], SCALES[0], None)
    want = cast(np.exp(x.astype(np.float64)) / np.exp(x.astype(np.float64)).sum(axis=1, keepdims=True), np.float32)
    assert np.all(want[:, 3:] < np.finfo(np.float32).tiny)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=100, deadline=None)
@given(cases(), st.data())
def test_kept_exps_hypothesis(case, data):
    x, _, mask, scale, _ = case
    axes = tuple(range(data.draw(st.integers(0, x.ndim - 1)), x.ndim))
    split_axis = data.draw(st.sampled_from(axes))
    n = x.shape[split_axis]
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    got = split_softmax(x, axes, split_axis, [0, *cuts, n], scale, mask)
    assert_close(got, reference_softmax(x, axes, scale, mask, x.dtype), x.dtype)
