"""softargmax.streaming: the mergeable accumulator and the chunked functions.

The oracle is the in-memory :mod:`softargmax.core` (itself checked against mpmath and
SciPy) on the same data; scipy.special and mpmath give independent checks on top.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import mpmath
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from softargmax import core
from softargmax.streaming import (
    LogSumExpAccumulator,
    log_softmax_chunked,
    logsumexp_chunked,
    softmax_chunked,
)

IMPLEMENTATIONS = ["reference", "numba"]
CHUNKED = {"softmax": softmax_chunked, "log_softmax": log_softmax_chunked}


def tol(dtype: np.dtype) -> float:
    return {np.float16: 2e-3, np.float32: 2e-6}.get(np.dtype(dtype).type, 1e-13)


def assert_same(actual: np.ndarray, expected: np.ndarray, dtype: np.dtype = np.float64) -> None:
    """Equal to rounding: same dtype, same shape, same inf/NaN pattern, close values."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    fin = np.isfinite(expected)
    np.testing.assert_allclose(actual[fin], expected[fin], rtol=tol(dtype), atol=1e-300)


def adversarial(shape: tuple[int, ...], dtype: type = np.float64, seed: int = 0) -> np.ndarray:
    """Random logits with +-inf, NaN, huge and tiny magnitudes sprinkled in (entries that
    end up in different chunks of the same row)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=30, size=shape)
    flat = x.reshape(-1)
    n = flat.size
    for value, frac in ((np.inf, 0.03), (-np.inf, 0.1), (np.nan, 0.02), (1e300, 0.01), (-1e300, 0.01)):
        flat[rng.choice(n, max(1, int(frac * n)), replace=False)] = value
    info = np.finfo(dtype)
    return np.clip(x, -float(info.max), float(info.max)).astype(dtype) if dtype != np.float64 else x


# (shape, axis, chunk_size): splitting and not splitting the axes, uneven chunks,
# tuple axes, axis=None and axis=().
CHUNKINGS = [
    ((7, 13), -1, (3, 5)),
    ((7, 13), -1, (2, 13)),
    ((7, 13), 0, (4, 13)),
    ((7, 13), 0, (7, 6)),
    ((7, 13), None, 10),
    ((4, 5, 6), (0, 2), (3, 2, 4)),
    ((4, 5, 6), (1, 2), 7),
    ((4, 5, 6), (0, 1), (4, 5, 1)),
    ((4, 5, 6), (), 11),
    ((31,), 0, 4),
]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("shape", "axis", "chunk_size"), CHUNKINGS)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_chunked_equals_in_memory(name, shape, axis, chunk_size, implementation):
    x = adversarial(shape)
    mask = np.random.default_rng(1).random(shape) < 0.8
    x_before = x.copy()
    for kw in ({}, {"where": mask}, {"temperature": 3.0}, {"beta": -0.5}, {"base": 2.0, "where": mask}):
        got = CHUNKED[name](x, axis, chunk_size=chunk_size, implementation=implementation, **kw)
        assert_same(got, getattr(core, name)(x, axis, **kw))
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("shape", "axis", "chunk_size"), CHUNKINGS)
def test_logsumexp_chunked_equals_in_memory(shape, axis, chunk_size, implementation):
    x = adversarial(shape, seed=2)
    rng = np.random.default_rng(3)
    mask = rng.random(shape) < 0.8
    b = rng.normal(size=shape)
    b[rng.random(shape) < 0.2] = 0.0
    for kw in ({}, {"where": mask, "keepdims": True}, {"temperature": 0.25}, {"beta": -2.0}):
        got = logsumexp_chunked(x, axis, chunk_size=chunk_size, implementation=implementation, **kw)
        assert_same(got, core.logsumexp(x, axis, **kw))
    got, sign = logsumexp_chunked(x, axis, b=b, chunk_size=chunk_size, return_sign=True, where=mask)
    want, want_sign = core.logsumexp(x, axis, b=b, return_sign=True, where=mask)
    assert_same(got, want)
    assert_same(sign, want_sign)
    assert_same(logsumexp_chunked(x, axis, b=b, chunk_size=chunk_size), core.logsumexp(x, axis, b=b))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.bool_])
def test_dtypes(dtype, implementation):
    rng = np.random.default_rng(4)
    x = (rng.normal(scale=5, size=(5, 17)) * (1 if dtype != np.bool_ else 0) + rng.random((5, 17))).astype(dtype)
    for name in ("softmax", "log_softmax"):
        got = CHUNKED[name](x, chunk_size=(2, 5), implementation=implementation)
        want = getattr(core, name)(x)
        assert got.dtype == want.dtype
        assert_same(got, want, want.dtype)
    assert_same(logsumexp_chunked(x, 1, chunk_size=(2, 5)), core.logsumexp(x, 1), core.logsumexp(x, 1).dtype)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_edge_rows_spanning_chunks(implementation):
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [inf, 1.0, 2.0, inf],  # +inf in both chunks: they share the mass
            [1.0, 2.0, 3.0, nan],  # NaN in the second chunk spoils the row
            [-inf, -inf, -inf, -inf],  # empty support
            [1e308, -1e308, 1e308, 0.0],  # huge magnitudes, no overflow
            [0.0, -50.0, -60.0, -70.0],  # a dominant maximum: log-probability exact
        ]
    )
    p = softmax_chunked(x, chunk_size=(5, 2), implementation=implementation)
    np.testing.assert_array_equal(p[0], [0.5, 0.0, 0.0, 0.5])
    assert np.isnan(p[1]).all()
    np.testing.assert_array_equal(p[2], 0.0)
    np.testing.assert_array_equal(p[3], [0.5, 0.0, 0.5, 0.0])
    lp = log_softmax_chunked(x, chunk_size=(5, 2), implementation=implementation)
    # mpmath: log(1 / (1 + e^-50 + e^-60 + e^-70))
    exact = -mpmath.log1p(mpmath.exp(-50) + mpmath.exp(-60) + mpmath.exp(-70))
    assert lp[4, 0] == pytest.approx(float(exact), rel=1e-15)
    np.testing.assert_array_equal(lp[2], -inf)
    lse = logsumexp_chunked(x, 1, chunk_size=(5, 2), implementation=implementation)
    assert lse[0] == inf and np.isnan(lse[1]) and lse[2] == -inf
    assert lse[3] == pytest.approx(1e308 + np.log(2), rel=1e-15)
    # a masked NaN is ignored; softmin swaps the roles of +inf and -inf
    m = np.array([[True, True, True, False]])
    assert_same(softmax_chunked(x[1:2], where=m, chunk_size=(1, 2)), core.softmax(x[1:2], where=m))
    assert_same(softmax_chunked(x[:1], beta=-1.0, chunk_size=(1, 3)), core.softmin(x[:1]))


def test_empty_and_zero_size():
    assert softmax_chunked(np.empty((0, 5)), chunk_size=2).shape == (0, 5)
    assert softmax_chunked(np.empty((3, 0)), chunk_size=2).shape == (3, 0)
    np.testing.assert_array_equal(logsumexp_chunked(np.empty((3, 0)), 1), np.full(3, -np.inf))
    assert logsumexp_chunked(np.empty(0)) == -np.inf
    assert float(logsumexp_chunked(np.float64(2.0))) == 2.0
    assert float(softmax_chunked(np.float64(2.0), axis=None)) == 1.0


def test_against_scipy_and_mpmath():
    rng = np.random.default_rng(5)
    x = rng.normal(scale=100, size=(6, 1000))
    b = rng.random((6, 1000))
    np.testing.assert_allclose(softmax_chunked(x, chunk_size=(3, 128)), scipy.special.softmax(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        logsumexp_chunked(x, 1, b=b, chunk_size=333), scipy.special.logsumexp(x, axis=1, b=b), rtol=1e-14
    )
    row = x[0]
    with mpmath.workdps(50):
        exact = mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v))) for v in row))
    assert float(logsumexp_chunked(row, chunk_size=7)) == pytest.approx(float(exact), rel=2e-16)


# --------------------------------------------------------------------------- accumulator
@st.composite
def partitioned(draw):
    n = draw(st.integers(1, 40))
    pool = st.one_of(
        st.floats(-1e3, 1e3),
        st.sampled_from([np.inf, -np.inf, np.nan, 0.0, 1e300, -1e300, 5e-324]),
    )
    data = np.array(draw(st.lists(pool, min_size=n, max_size=n)))
    k = draw(st.integers(1, min(n, 6)))
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1, unique=True))) if n > 1 else []
    scale = draw(st.sampled_from([{}, {"beta": 0.3}, {"temperature": 7.0}, {"beta": -1.5}]))
    order = draw(st.permutations(range(len(cuts) + 1)))
    return data, np.split(data, cuts), scale, order


def _acc(part: np.ndarray, scale: dict) -> LogSumExpAccumulator:
    return LogSumExpAccumulator(**scale).update(part)


def _same_state(a: LogSumExpAccumulator, b: LogSumExpAccumulator, rtol: float) -> None:
    np.testing.assert_array_equal(a.max, b.max)
    np.testing.assert_array_equal(a._state.nan, b._state.nan)
    np.testing.assert_allclose(a._state.n0, b._state.n0, rtol=rtol)
    np.testing.assert_allclose(a._state.rest, b._state.rest, rtol=rtol)


@given(partitioned())
def test_merge_commutative_and_associative(case):
    data, parts, scale, order = case
    accs = [_acc(p, scale) for p in parts]
    # commutative: exactly
    for a in accs:
        for b in accs:
            _same_state(a.copy().merge(b), b.copy().merge(a), rtol=0)
    # associative: any grouping and order, to rounding
    left = accs[0].copy()
    for a in accs[1:]:
        left.merge(a)
    right = accs[-1].copy()
    for a in reversed(accs[:-1]):
        right = a.copy().merge(right)
    shuffled = accs[order[0]].copy()
    for i in order[1:]:
        shuffled.merge(accs[i])
    _same_state(left, right, rtol=1e-13)
    _same_state(left, shuffled, rtol=1e-13)
    # and the result is the in-memory one
    want = core.logsumexp(data, **scale)
    for acc in (left, right, shuffled):
        assert_same(np.asarray(acc.logsumexp()), np.asarray(want))
    assert_same(left.softmax(data), core.softmax(data, **scale))


def test_accumulator_rows_and_masks():
    rng = np.random.default_rng(6)
    x = adversarial((5, 24), seed=7)
    mask = rng.random((5, 24)) < 0.7
    acc = LogSumExpAccumulator((5,), temperature=2.0)
    for cols in np.array_split(np.arange(24), 4):
        acc.update(x[:, cols], where=mask[:, cols])
    assert_same(acc.logsumexp(), core.logsumexp(x, 1, temperature=2.0, where=mask))
    assert_same(acc.softmax(x, where=mask), core.softmax(x, temperature=2.0, where=mask))
    assert_same(acc.log_softmax(x, where=mask), core.log_softmax(x, temperature=2.0, where=mask))
    out = np.empty((5, 24))
    assert acc.softmax(x, where=mask, out=out) is out
    # column-wise accumulation: axis=0 chunks of rows
    acc0 = LogSumExpAccumulator((24,))
    for rows in np.array_split(np.arange(5), 3):
        acc0.update(x[rows], axis=0)
    assert_same(acc0.logsumexp(), core.logsumexp(x, 0))
    # float32 chunks give a float32 result; weights with a sign
    acc32 = LogSumExpAccumulator().update(np.float32([1, 2])).update(np.float32([3]))
    assert acc32.logsumexp().dtype == np.float32
    accb = LogSumExpAccumulator().update([1.0, 2.0], b=[1.0, -3.0])
    lse, sign = accb.logsumexp(return_sign=True)
    want, want_sign = core.logsumexp([1.0, 2.0], b=[1.0, -3.0], return_sign=True)
    assert (lse, sign) == pytest.approx((want, want_sign), rel=1e-15)
    assert np.isnan(accb.logsumexp())
    assert LogSumExpAccumulator().logsumexp() == -np.inf


def test_accumulator_errors():
    acc = LogSumExpAccumulator((3,))
    with pytest.raises(ValueError, match="accumulator's shape is"):
        acc.update(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="other must have the shape"):
        acc.merge(LogSumExpAccumulator((2,)))
    with pytest.raises(ValueError, match="same scale"):
        acc.merge(LogSumExpAccumulator((3,), beta=2.0))
    with pytest.raises(TypeError, match="LogSumExpAccumulator"):
        acc.merge(np.zeros(3))
    with pytest.raises(TypeError, match="chunk must be an array of real numbers"):
        acc.update(np.zeros((3, 2), dtype=complex))
    with pytest.raises(TypeError, match="shape must be a tuple"):
        LogSumExpAccumulator((2.5,))
    with pytest.raises(TypeError, match="dtype must be float64"):
        LogSumExpAccumulator(dtype=np.float32)
    with pytest.raises(ValueError, match="temperature"):
        LogSumExpAccumulator(temperature=-1.0)
    with pytest.raises(ValueError, match="without weights"):
        LogSumExpAccumulator().update([1.0], b=[2.0]).softmax([1.0])


# --------------------------------------------------------------------------- sources
class Reader:
    """A minimal sliceable source (as Zarr or h5py): records the size of every read."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a
        self.shape, self.dtype = a.shape, a.dtype
        self.reads: list[int] = []

    def __getitem__(self, idx):
        block = self._a[idx].copy()
        self.reads.append(block.size)
        return block


class Writer:
    def __init__(self, shape, dtype) -> None:
        self.a = np.full(shape, -1.0, dtype=dtype)
        self.shape, self.dtype = shape, np.dtype(dtype)

    def __setitem__(self, idx, value):
        self.a[idx] = value


def test_sliceable_source_reads_bounded_chunks():
    x = adversarial((20, 50), seed=8)
    src = Reader(x)
    out = Writer((20, 50), np.float64)
    where = Reader(np.random.default_rng(0).random((20, 50)) < 0.9)
    where.dtype = np.dtype(bool)
    assert softmax_chunked(src, out=out, chunk_size=64, where=where) is out
    assert max(src.reads) <= 64
    assert len(src.reads) == 20  # 20 rows of 50: a whole row per chunk, one pass
    assert_same(out.a, core.softmax(x, where=where._a))
    src.reads.clear()
    got = logsumexp_chunked(src, 1, chunk_size=16, progress=True)
    assert max(src.reads) <= 16
    assert_same(got, core.logsumexp(x, 1))


def test_memmap_in_and_out(tmp_path):
    x = adversarial((64, 300), np.float32, seed=9)
    np.save(tmp_path / "x.npy", x)
    src = np.load(tmp_path / "x.npy", mmap_mode="r")
    out = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float32, shape=x.shape)
    softmax_chunked(src, axis=0, out=out, chunk_size=1000)
    out.flush()
    want = core.softmax(x, axis=0)
    assert_same(np.asarray(out), want, np.float32)  # pages released from the process are not lost
    del out
    assert_same(np.load(tmp_path / "p.npy"), want, np.float32)
    np.testing.assert_array_equal(np.asarray(src), x)
    # a boolean memmap as the mask, read chunk by chunk
    mask = np.random.default_rng(10).random(x.shape) < 0.9
    np.save(tmp_path / "m.npy", mask)
    m = np.load(tmp_path / "m.npy", mmap_mode="r")
    got = log_softmax_chunked(src, axis=1, where=m, chunk_size=(64, 7))
    assert_same(got, core.log_softmax(x, axis=1, where=mask), np.float32)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memmap_resident_memory_is_bounded(tmp_path):
    """A 64 MB memmap in and another out, the axis split: the process's peak RSS grows by
    a small fraction of the 128 MB it reads and writes (pages are handed back)."""
    k = 1 << 20
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(16, k)).astype(np.float32))
    script = textwrap.dedent(
        f"""
        import numpy as np
        from softargmax.streaming import softmax_chunked
        from softargmax._kernels import streaming  # numba's own memory is not the data's

        # compile (or load) the kernels this run uses before the baseline
        softmax_chunked(np.zeros((2, 1 << 17), np.float32), chunk_size=1 << 16)

        def hwm():  # KiB; unlike ru_maxrss, VmHWM does not inherit pytest's peak
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))

        src = np.load({str(tmp_path / "x.npy")!r}, mmap_mode="r")
        out = np.lib.format.open_memmap({str(tmp_path / "p.npy")!r}, mode="w+", dtype=np.float32, shape=src.shape)
        base = hwm()
        softmax_chunked(src, out=out, chunk_size=1 << 16)  # rows of 2**20: two passes
        print(base, hwm())
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.environ.get("PYTHONPATH", ""), "src"] if p))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    base, peak = (int(v) for v in res.stdout.split())
    assert peak - base < 40_000  # KiB, against 131_072 KiB of data read and written
    p = np.load(tmp_path / "p.npy", mmap_mode="r")
    np.testing.assert_allclose(p[3].sum(dtype=np.float64), 1.0, rtol=1e-5)


def test_bad_input():
    x = np.zeros((4, 6))
    with pytest.raises(TypeError, match="source must be a sliceable array"):
        softmax_chunked([[1.0, 2.0]])
    with pytest.raises(TypeError, match="source must be a sliceable array"):
        logsumexp_chunked(iter([1.0]))
    with pytest.raises(ValueError, match=r"out must have the result's shape \(4, 6\), got \(4, 5\)"):
        softmax_chunked(x, out=np.empty((4, 5)))
    with pytest.raises(TypeError, match="out must have the result's dtype float64, got float32"):
        log_softmax_chunked(x, out=np.empty((4, 6), np.float32))
    with pytest.raises(ValueError, match=r"out must have the result's shape \(4,\)"):
        logsumexp_chunked(x, 1, out=np.empty(6))
    with pytest.raises(TypeError, match="out must be an array"):
        softmax_chunked(x, out=[0.0])
    with pytest.raises(ValueError, match="out must be writeable"):
        ro = np.empty((4, 6))
        ro.flags.writeable = False
        softmax_chunked(x, out=ro)
    with pytest.raises(TypeError, match="source must be an array of real numbers"):
        softmax_chunked(np.zeros(3, complex))
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        softmax_chunked(x, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        softmax_chunked(x, chunk_size=2.5)
    with pytest.raises(ValueError, match="one int >= 1 per axis"):
        softmax_chunked(x, chunk_size=(2,))
    with pytest.raises(TypeError, match="where must be a boolean array"):
        softmax_chunked(x, where=np.ones((4, 6)))
    with pytest.raises(ValueError, match="where of shape"):
        softmax_chunked(x, where=np.ones((3, 6), bool))
    with pytest.raises(ValueError, match="b of shape"):
        logsumexp_chunked(x, b=np.ones(5))
    with pytest.raises(ValueError, match="implementation must be one of"):
        softmax_chunked(x, implementation="cuda")
    with pytest.raises(ValueError, match="give at most one of"):
        softmax_chunked(x, beta=1.0, temperature=2.0)
    from numpy.exceptions import AxisError

    with pytest.raises(AxisError):
        softmax_chunked(x, axis=2)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_equals_two_passes(name, dtype):
    """Whole rows in one read (the core's fused kernels) give, to rounding, what pass one
    (the state, as softmax_chunked computes it) followed by pass two give."""
    from softargmax import streaming as s
    from softargmax._validation import resolve_scale

    x = adversarial((9, 40), dtype, seed=11)
    mask = np.random.default_rng(12).random((9, 40)) < 0.85
    for scale in (resolve_scale(), resolve_scale(temperature=3.0), resolve_scale(beta=-0.7)):
        for m in (None, mask):
            fused = s._softmax_block(name, x, (1,), scale, m, np.float64, "numba")
            state = s._block_state(x, (1,), scale, m, None, np.float64, "numba", precise=False)
            two = s._normalise(name, x, (1,), scale, m, state, np.float64, "numba")
            assert_same(two, fused, dtype)


def test_threads_and_one_thread_agree():
    """Chunks run on a thread pool (NumPy source and out) or one after the other (one
    numba thread, or a source that is not a NumPy array): the same result."""
    import numba

    x = adversarial((24, 3000), np.float32, seed=13)
    want = core.softmax(x)
    threaded = softmax_chunked(x, chunk_size=(5, 3000))  # one pass, 5 chunks
    threaded2 = log_softmax_chunked(x, chunk_size=(7, 1000))  # two passes
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        single = softmax_chunked(x, chunk_size=(5, 3000))
        single2 = log_softmax_chunked(x, chunk_size=(7, 1000))
    finally:
        numba.set_num_threads(before)
    assert_same(threaded, want, np.float32)
    assert_same(single, want, np.float32)
    assert_same(threaded2, core.log_softmax(x), np.float32)
    np.testing.assert_array_equal(threaded2, single2)
    # a single chunk runs in the calling thread, whose numba thread count is left alone
    softmax_chunked(x[:2], chunk_size=(2, 3000))
    assert numba.get_num_threads() == before
    out = Writer(x.shape, np.float32)
    softmax_chunked(Reader(x), out=out, chunk_size=(5, 3000))
    assert_same(out.a, want, np.float32)
