"""softargmax.dask on the distributed scheduler (a LocalCluster of two worker processes).

The oracle is the in-memory :mod:`softargmax.core` on the computed array.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import softargmax  # noqa: E402
from softargmax import core  # noqa: E402
from softargmax import dask as sdask  # noqa: E402


def assert_same(actual, expected, rtol=1e-13):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(actual) & (actual > 0), np.isinf(expected) & (expected > 0))
    np.testing.assert_array_equal(np.isinf(actual) & (actual < 0), np.isinf(expected) & (expected < 0))
    fin = np.isfinite(expected)
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=rtol, atol=1e-300)


# One LocalCluster for the module, so the suite runs with ``pytest -n 2 --dist loadfile``
# (one file per xdist worker): two clusters started at once race for the scheduler's
# default HTTP port, and the warning that follows fails the start.
@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=50,
    )
    with cluster, distributed.Client(cluster) as c:
        yield c


def logits(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=20, size=shape)
    flat = x.reshape(-1)
    for value, frac in ((np.inf, 0.02), (-np.inf, 0.1), (np.nan, 0.01), (1e300, 0.01)):
        flat[rng.choice(flat.size, max(1, int(frac * flat.size)), replace=False)] = value
    return x


CASES = [
    ((8, 30), (3, 7), -1),  # the axis split, uneven chunks
    ((8, 30), (3, 30), -1),  # not split: one task per chunk
    ((8, 30), (5, 4), 0),
    ((4, 6, 10), (2, 4, 3), (0, 2)),  # tuple axes, split
    ((4, 6, 10), (4, 3, 10), None),
]


@pytest.mark.parametrize(("shape", "chunks", "axis"), CASES)
def test_distributed_equals_in_memory(client, shape, chunks, axis):
    x = logits(shape, seed=len(shape))
    mask = np.random.default_rng(1).random(shape) < 0.8
    dx = da.from_array(x, chunks=chunks)
    dmask = da.from_array(mask, chunks=chunks[::-1] if len(chunks) == 2 else chunks)
    lazy = {
        "softmax": softargmax.softmax(dx, axis),  # the public function routes Dask here
        "log_softmax": softargmax.log_softmax(dx, axis, where=dmask, temperature=2.0),
        "softmin": softargmax.softmin(dx, axis, where=mask),
        "logsumexp": softargmax.logsumexp(dx, axis, where=dmask, beta=-0.5),
    }
    assert all(isinstance(v, da.Array) for v in lazy.values())
    got = client.compute(lazy, sync=True)
    assert_same(got["softmax"], core.softmax(x, axis))
    assert_same(got["log_softmax"], core.log_softmax(x, axis, where=mask, temperature=2.0))
    assert_same(got["softmin"], core.softmin(x, axis, where=mask))
    assert_same(got["logsumexp"], core.logsumexp(x, axis, where=mask, beta=-0.5))


def test_distributed_logsumexp_weights_and_dtypes(client):
    rng = np.random.default_rng(2)
    x = logits((6, 40), seed=3)
    b = rng.normal(size=(6, 40))
    b[:, ::7] = 0.0
    x[0, 7] = np.nan  # excluded by b = 0
    dx, db = da.from_array(x, chunks=(2, 9)), da.from_array(b, chunks=(3, 11))
    lse, sign = softargmax.logsumexp(dx, 1, b=db, return_sign=True, keepdims=True)
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)  # 1e300 becomes +inf
    lazy = [lse, sign, softargmax.logsumexp(dx, 1, b=b), sdask.softmax(da.from_array(x32, chunks=(3, 13)))]
    got = client.compute(lazy, sync=True)
    want, want_sign = core.logsumexp(x, 1, b=b, return_sign=True, keepdims=True)
    assert_same(got[0], want)
    assert_same(got[1], want_sign)
    assert_same(got[2], core.logsumexp(x, 1, b=b))
    assert_same(got[3], core.softmax(x32), rtol=2e-6)


def test_spanning_edge_rows(client):
    inf, nan = np.inf, np.nan
    x = np.array([[inf, 1.0, 2.0, inf], [1.0, 2.0, 3.0, nan], [-inf] * 4, [0.0, -50.0, -60.0, -70.0]])
    dx = da.from_array(x, chunks=(2, 2))
    p, lp = client.compute([sdask.softmax(dx), sdask.log_softmax(dx)], sync=True)
    np.testing.assert_array_equal(p[0], [0.5, 0, 0, 0.5])
    assert np.isnan(p[1]).all()
    np.testing.assert_array_equal(p[2], 0.0)
    np.testing.assert_array_equal(lp[2], -inf)
    assert_same(lp, core.log_softmax(x), rtol=1e-15)


class Counter:
    """A block function that counts the real blocks it sees (not meta arrays)."""

    calls = 0

    def __call__(self, block):
        if block.size:
            Counter.calls += 1
        return block


@pytest.mark.parametrize("chunks", [(4, 5), (4, 20)])
def test_lazy_until_compute(chunks):
    Counter.calls = 0
    x = np.random.default_rng(4).normal(size=(8, 20))
    dx = da.from_array(x, chunks=chunks).map_blocks(Counter(), dtype=x.dtype, meta=np.empty((0, 0)))
    lazy = [sdask.softmax(dx), sdask.log_softmax(dx, where=x > 0), sdask.logsumexp(dx, 1, b=np.ones(20))]
    assert Counter.calls == 0
    got = [a.compute(scheduler="sync") for a in lazy]
    assert Counter.calls > 0
    assert_same(got[0], core.softmax(x))
    assert_same(got[2], core.logsumexp(x, 1, b=np.ones(20)))


def test_graph_grows_linearly():
    def tasks(nchunks):
        dx = da.zeros((4, 100 * nchunks), chunks=(4, 100))
        return len(dict(sdask.softmax(dx).__dask_graph__()))

    small, large = tasks(16), tasks(64)
    assert 3.5 < large / small < 4.5


def test_bad_input():
    dx = da.zeros((4, 6), chunks=2)
    with pytest.raises(TypeError, match="out must be None for Dask arrays"):
        softargmax.softmax(dx, out=np.empty((4, 6)))
    with pytest.raises(TypeError, match="where must be a boolean array"):
        sdask.softmax(dx, where=da.zeros((4, 6)))
    with pytest.raises(ValueError, match="where of shape"):
        sdask.softmax(dx, where=np.ones((3, 6), bool))
    with pytest.raises(ValueError, match="b of shape"):
        sdask.logsumexp(dx, b=np.ones(5))
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        sdask.softmax(da.zeros(3, dtype=complex))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        sdask.softmax(dx[dx[:, 0] > 0])
    with pytest.raises(ValueError, match="temperature"):
        sdask.log_softmax(dx, temperature=0.0)


# --------------------------------------------------------------------------- the split softmax
# softmax over trailing axes that are split across blocks keeps pass one's exps and
# rescales them in place (one exp per entry); the tests below run the sync scheduler
# (the distributed cases above take the same path).
SPLIT = [
    ((8, 30), (3, 7), -1),
    ((8, 30), (8, (10, 0, 20)), -1),  # a chunk of width 0
    ((5, 30), ((2, 3), (1, 29)), -1),
    ((4, 6, 10), (2, 4, 3), (1, 2)),
    ((4, 6, 10), (4, 6, 3), -1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "chunks", "axis"), SPLIT)
def test_split_softmax_equals_in_memory(shape, chunks, axis, dtype):
    with np.errstate(over="ignore"):
        x = logits(shape, seed=sum(shape)).astype(dtype)
    x[0] = -np.inf  # an empty row; others get +inf and NaN entries in one chunk only
    mask = np.random.default_rng(5).random(shape) < 0.8
    dx = da.from_array(x, chunks=chunks)
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    for kw in ({}, {"temperature": 3.0}, {"beta": -0.5}, {"where": mask}):
        got = sdask.softmax(dx, axis, **kw).compute(scheduler="sync")
        assert_same(got, core.softmax(x, axis, **kw), rtol)
    got = sdask.softmin(dx, axis, where=da.from_array(mask, chunks=4)).compute(scheduler="sync")
    assert_same(got, core.softmin(x, axis, where=mask), rtol)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_split_softmax_hypothesis(data):
    """Random shapes, chunkings (uneven, split or not), values with +-inf and NaN."""
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12))
    values = st.one_of(st.floats(-80, 80), st.sampled_from([np.inf, -np.inf, np.nan, 1e30, -1e30]))
    x = data.draw(hnp.arrays(dtype, shape, elements=values))
    chunks = tuple(data.draw(st.integers(1, n)) for n in shape)
    first = data.draw(st.integers(0, len(shape) - 1))
    axis = tuple(range(first, len(shape)))
    got = sdask.softmax(da.from_array(x, chunks=chunks), axis).compute(scheduler="sync")
    assert_same(got, core.softmax(x, axis), 2e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_split_softmax_one_exp_pass_per_block(monkeypatch, scheduler):
    """Pass one runs once per block (it is not fused into both of its readers)."""
    from softargmax import streaming

    calls = []
    stored = streaming._stored_rows

    def counting(x, *args):
        calls.append(x.shape)
        return stored(x, *args)

    monkeypatch.setattr(streaming, "_stored_rows", counting)
    x = np.random.default_rng(6).normal(size=(8, 30))
    dx = da.from_array(x, chunks=(3, 7))
    assert_same(sdask.softmax(dx).compute(scheduler=scheduler), core.softmax(x))
    assert len(calls) == dx.npartitions


def test_split_softmax_graphs_that_share_blocks():
    """Pass two scales pass one's exps in place: graphs computed together that differ
    only in the tree of merges (split_every) must not share those exps."""
    import dask

    x = np.random.default_rng(7).normal(size=(8, 30))
    dx = da.from_array(x, chunks=(3, 5))
    lazy = [sdask.softmax(dx, split_every=2), sdask.softmax(dx, split_every=3), sdask.softmax(dx), sdask.softmax(dx)]
    for scheduler in ("sync", "threads"):
        for got in dask.compute(*lazy, scheduler=scheduler):
            assert_same(got, core.softmax(x))


def test_split_softmax_pass_two_input_states():
    """Pass two's block: read-only exps (as a transfer may deliver them) are copied, not
    written; a second run on exps already rescaled in place is an error, not a wrong
    result."""
    from softargmax._validation import resolve_scale

    scale = resolve_scale()
    x = np.random.default_rng(8).normal(size=(4, 12)).astype(np.float32)
    halves = [np.ascontiguousarray(x[:, :5]), np.ascontiguousarray(x[:, 5:])]
    triples = [sdask._exp_block(h, axes=(1,), scale=scale, work_dtype=np.float32) for h in halves]
    merged = sdask._merge_blocks(np.concatenate([t[1] for t in triples], axis=1), (1,), True, scale)
    want = core.softmax(x)
    e, own, consumed = triples[0]
    frozen = e.copy()
    frozen.flags.writeable = False
    got = sdask._rescale_block((frozen, own, consumed), merged, axes=(1,), scale=scale, dtype=np.float32)
    assert_same(got, want[:, :5], 2e-6)
    assert got is not frozen and not consumed[0]
    got = sdask._rescale_block(triples[0], merged, axes=(1,), scale=scale, dtype=np.float32)
    assert got is e and consumed[0]
    assert_same(got, want[:, :5], 2e-6)
    with pytest.raises(RuntimeError, match="already rescaled"):
        sdask._rescale_block(triples[0], merged, axes=(1,), scale=scale, dtype=np.float32)
