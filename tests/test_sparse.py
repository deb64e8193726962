"""Tests of softargmax.sparse: sparsemax, entmax15, entmax_bisect, derivatives, losses.

Oracles: the ``entmax`` package (PyTorch; float64 runs as the reference for our float32),
an independent per-row bisection in float64 (``_oracle_row``, written from the definition),
finite differences in float64, and the reference path for the numba kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softargmax.core import softmax
from softargmax.sparse import (
    entmax15,
    entmax15_jvp,
    entmax15_loss,
    entmax15_vjp,
    entmax_bisect,
    entmax_bisect_jvp,
    entmax_bisect_loss,
    entmax_bisect_vjp,
    sparsemax,
    sparsemax_jvp,
    sparsemax_loss,
    sparsemax_vjp,
)

torch = pytest.importorskip("torch")
entmax = pytest.importorskip("entmax")

IMPLS = ["reference", "numba"]


# --------------------------------------------------------------------------- registry
def _map(alpha: float):
    """(ours, vjp, jvp, loss, entmax peer map, entmax peer loss) for an alpha."""
    if alpha == 2.0:
        return (sparsemax, sparsemax_vjp, sparsemax_jvp, sparsemax_loss,
                entmax.sparsemax, entmax.sparsemax_loss)
    if alpha == 1.5:
        return (entmax15, entmax15_vjp, entmax15_jvp, entmax15_loss,
                entmax.entmax15, entmax.entmax15_loss)

    def f(x, axis=-1, **kw):
        return entmax_bisect(x, alpha, axis, **kw)

    def vjp(p, g, axis=-1, **kw):
        return entmax_bisect_vjp(p, g, alpha, axis, **kw)

    def jvp(p, v, axis=-1, **kw):
        return entmax_bisect_jvp(p, v, alpha, axis, **kw)

    def loss(x, t, axis=-1, **kw):
        return entmax_bisect_loss(x, t, alpha, axis, **kw)

    return (f, vjp, jvp, loss, lambda t, dim=-1: entmax.entmax_bisect(t, alpha, dim=dim),
            lambda x, t: entmax.entmax_bisect_loss(x, t, alpha))


# exact maps and the bisection at a few alphas
ALPHAS = [2.0, 1.5, 1.25, 3.0]


def _oracle_row(z: np.ndarray, alpha: float) -> np.ndarray:
    """Independent float64 alpha-entmax of one row of float64 ``z`` (-inf = excluded),
    from the definition: bisection on tau over [max - 1, max] with 200 steps, then the
    edge policy of the module docstring. NaN must be handled by the caller."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(over="ignore"):
        return _oracle_row_(z, alpha)


def _oracle_row_(z: np.ndarray, alpha: float) -> np.ndarray:
    out = np.zeros_like(z)
    if z.size == 0 or np.all(z == -np.inf):
        return out
    if np.any(z == np.inf):
        out[z == np.inf] = 1.0 / np.count_nonzero(z == np.inf)
        return out
    x = (alpha - 1.0) * (z - z.max())
    lo, hi = -1.0, 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.sum(np.clip(x - mid, 0, None) ** (1 / (alpha - 1))) >= 1:
            lo = mid
        else:
            hi = mid
    p = np.clip(x - lo, 0, None) ** (1 / (alpha - 1))
    return p / p.sum()


def _oracle(x: np.ndarray, alpha: float, axis=-1, where=None) -> np.ndarray:
    """Apply ``_oracle_row`` over ``axis`` (int or tuple), with ``where`` and NaN rows."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    if where is not None:
        x = np.where(np.broadcast_to(where, x.shape), x, -np.inf)
    axes = tuple(range(x.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    axes = tuple(sorted(a % x.ndim for a in axes)) if x.ndim else ()
    rest = [i for i in range(x.ndim) if i not in axes]
    t = np.transpose(x, rest + list(axes))
    rows = t.reshape(int(np.prod(t.shape[: len(rest)])), -1)
    out = np.empty_like(rows)
    for i, r in enumerate(rows):
        out[i] = np.nan if np.isnan(r).any() else _oracle_row(r, alpha)
    out = np.transpose(out.reshape(t.shape), np.argsort(rest + list(axes)))
    # where-excluded entries are 0 even in a NaN row (an included -inf there is NaN)
    return out if where is None else np.where(np.broadcast_to(where, x.shape), out, 0.0)


def _call(alpha, x, **kw):
    return _map(alpha)[0](x, **kw)


# --------------------------------------------------------------------------- vs entmax
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
@pytest.mark.parametrize("shape", [(64, 1000), (300, 7), (5, 1)])
def test_against_entmax_float32(alpha, implementation, shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    f, vjp, _, _, peer, _ = _map(alpha)
    p = f(x, implementation=implementation)
    assert p.dtype == np.float32
    # entmax in float64 on the same float32 inputs: our float32 is rounded from the truth.
    t64 = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    r64 = peer(t64, dim=-1)
    r64.backward(torch.from_numpy(g.astype(np.float64)))
    np.testing.assert_allclose(p, r64.detach().numpy(), rtol=1e-6, atol=1e-12)
    dx = vjp(p, g, implementation=implementation)
    assert dx.dtype == np.float32
    np.testing.assert_allclose(dx, t64.grad.numpy(), rtol=1e-6, atol=1e-6 * np.abs(g).max())
    # entmax itself in float32: within 1e-6 (normwise per row) once entmax's own float32
    # error (its distance to its float64 run) is allowed for; ours is at rounding level.
    t32 = torch.from_numpy(x).requires_grad_()
    r32 = peer(t32, dim=-1)
    r32.backward(torch.from_numpy(g))
    for ours, theirs32, theirs64 in ((p, r32.detach().numpy(), r64.detach().numpy()),
                                     (dx, t32.grad.numpy(), t64.grad.numpy())):
        scale = np.abs(theirs64).max(-1)
        own = np.abs(theirs32 - theirs64).max(-1)
        assert np.all(np.abs(ours - theirs64).max(-1) <= 1e-6 * scale)
        assert np.all(np.abs(ours - theirs32).max(-1) <= 1e-6 * scale + own)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_against_entmax_float64_dim0(alpha, implementation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 6)) * 3
    f, vjp, _, _, peer, _ = _map(alpha)
    ref = peer(torch.from_numpy(x), dim=0).numpy()
    p = f(x, axis=0, implementation=implementation)
    np.testing.assert_allclose(p, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(p, _oracle(x, alpha, axis=0), rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_losses_against_entmax(alpha, implementation):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 30)) * 2
    target = rng.integers(0, 30, size=50)
    *_, loss, _, peer_loss = _map(alpha)
    tx = torch.from_numpy(x).requires_grad_()
    ref = peer_loss(tx, torch.from_numpy(target))
    ref.sum().backward()
    ours = loss(x, target, reduction="none", implementation=implementation)
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    total, grad = loss(x, target, reduction="sum", return_grad=True, implementation=implementation)
    np.testing.assert_allclose(total, ref.sum().item(), rtol=1e-10)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    mean, gmean = loss(x, target, return_grad=True, implementation=implementation)
    np.testing.assert_allclose(mean, ref.mean().item(), rtol=1e-10)
    np.testing.assert_allclose(gmean, tx.grad.numpy() / 50, rtol=1e-10, atol=1e-12)
    # float32: our loss against entmax's float64 loss
    x32 = x.astype(np.float32)
    ref32 = peer_loss(torch.from_numpy(x32.astype(np.float64)), torch.from_numpy(target))
    ours32 = loss(x32, target, reduction="none", implementation=implementation)
    assert ours32.dtype == np.float32
    np.testing.assert_allclose(ours32, ref32.numpy(), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- maths
@pytest.mark.parametrize("implementation", IMPLS)
def test_bisection_agrees_with_exact(implementation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((100, 500)) * rng.uniform(0.1, 10, size=(100, 1))
    np.testing.assert_allclose(
        entmax_bisect(x, 2.0, implementation=implementation),
        sparsemax(x, implementation=implementation), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        entmax_bisect(x, 1.5, implementation=implementation),
        entmax15(x, implementation=implementation), rtol=1e-10, atol=1e-14)
    # few bisection steps: still a distribution with exact zeros, close to exact
    p = entmax_bisect(x, 1.5, n_iter=10, implementation=implementation)
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-12)
    assert np.abs(p - entmax15(x)).max() < 0.1


@pytest.mark.parametrize("implementation", IMPLS)
def test_tends_to_softmax(implementation):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 200))
    errs = [np.abs(entmax_bisect(x, 1 + eps, implementation=implementation) - softmax(x)).max()
            for eps in (1e-1, 1e-2, 1e-3)]
    assert errs[2] < 2e-3
    assert errs[0] > 5 * errs[1] > 25 * errs[2]


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_simplex_with_exact_zeros(alpha, implementation):
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = (rng.standard_normal((200, 300)) * 3).astype(dtype)
        p = _call(alpha, x, implementation=implementation)
        eps = np.finfo(dtype).eps
        assert np.all(p >= 0)
        np.testing.assert_allclose(p.sum(-1), 1, atol=300 * eps)
        zeros = p == 0
        assert zeros.sum(-1).min() > 100  # sparse: most entries exactly 0
        # zeros are exactly the entries below the threshold: in order of x
        top_zero = np.where(zeros, x, -np.inf).max(-1)
        low_nonzero = np.where(zeros, np.inf, x).min(-1)
        assert np.all(top_zero <= low_nonzero)
        # shift invariance
        np.testing.assert_allclose(_call(alpha, x + dtype(1000), implementation=implementation),
                                   p, atol=2e-4 if dtype == np.float32 else 1e-9)


def test_closed_forms():
    # two entries a >= b: sparsemax p1 = min(1, (1 + a - b) / 2)
    assert sparsemax([0.5, 0.0]).tolist() == [0.75, 0.25]
    assert sparsemax([1.0, 0.0]).tolist() == [1.0, 0.0]
    # 1.5-entmax of [t, 0]: p1 - p2 = t/... ; at t = 0 both 1/2
    np.testing.assert_allclose(entmax15([0.0, 0.0]), [0.5, 0.5], rtol=1e-15)
    # entmax15([2, 0]): X = [1, 0], support {1} since tau = 0 = X_2: p = [1, 0]
    assert entmax15([2.0, 0.0]).tolist() == [1.0, 0.0]
    # uniform rows
    for alpha in ALPHAS:
        np.testing.assert_allclose(_call(alpha, np.full(7, 3.0)), np.full(7, 1 / 7), rtol=1e-12)


# --------------------------------------------------------------------------- derivatives
def _fd_jvp(f, x, v, h=1e-6):
    return (f(x + h * v) - f(x - h * v)) / (2 * h)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_jvp_vjp_finite_differences(alpha, implementation):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 40)) * 2
    v = rng.standard_normal(x.shape)
    f, vjp, jvp, *_ = _map(alpha)
    p = f(x, implementation=implementation)
    fd = _fd_jvp(lambda z: f(z, implementation=implementation), x, v)
    np.testing.assert_allclose(jvp(p, v, implementation=implementation), fd, atol=1e-6)
    # symmetric Jacobian: <u, J v> == <J u, v>
    u = rng.standard_normal(x.shape)
    lhs = np.sum(u * jvp(p, v, implementation=implementation), -1)
    rhs = np.sum(vjp(p, u, implementation=implementation) * v, -1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)
    # axis tuple: derivative over the joint distribution
    x3 = rng.standard_normal((3, 4, 5))
    v3 = rng.standard_normal(x3.shape)
    p3 = f(x3, axis=(0, 2), implementation=implementation)
    fd3 = _fd_jvp(lambda z: f(z, axis=(0, 2), implementation=implementation), x3, v3)
    np.testing.assert_allclose(jvp(p3, v3, axis=(0, 2), implementation=implementation), fd3,
                               atol=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_loss_gradient_finite_differences(alpha):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 9))
    target = rng.integers(0, 9, size=6)
    loss = _map(alpha)[3]
    _, grad = loss(x, target, reduction="sum", return_grad=True)
    v = rng.standard_normal(x.shape)
    fd = (loss(x + 1e-6 * v, target, reduction="sum") - loss(x - 1e-6 * v, target, reduction="sum")) / 2e-6
    np.testing.assert_allclose(np.sum(grad * v), fd, rtol=1e-6)


@pytest.mark.parametrize("implementation", IMPLS)
def test_derivative_edges(implementation):
    p = np.array([[0.5, 0.0, 0.5], [0.0, 0.0, 0.0], [np.nan, 0.0, np.nan], [1.0, 0.0, 0.0]])
    g = np.array([[1.0, np.inf, 0.0], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [2.0, np.nan, 5.0]])
    for vjp in (sparsemax_vjp, entmax15_vjp, lambda a, b, **k: entmax_bisect_vjp(a, b, 1.7, **k)):
        r = vjp(p, g, implementation=implementation)
        # equal p on the support: g_p equal, J g = g_p * (g - mean g) on the support
        scale = r[0, 0] / 0.5
        np.testing.assert_allclose(r[0], [0.5 * scale, 0.0, -0.5 * scale])
        assert 0 < scale <= 1
        assert r[1].tolist() == [0.0, 0.0, 0.0]
        assert np.isnan(r[2, [0, 2]]).all() and r[2, 1] == 0
        assert r[3].tolist() == [0.0, 0.0, 0.0]
    # broadcast cotangent, float16 p
    r = sparsemax_vjp(np.array([0.25, 0.75, 0.0], dtype=np.float16), np.float64(1.0),
                      implementation=implementation)
    assert r.dtype == np.float64 and r.tolist() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- edges
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_edge_policy(alpha, implementation):
    inf, nan = np.inf, np.nan
    x = np.array([
        [inf, 1.0, inf, -inf],      # +inf entries share
        [-inf, -inf, -inf, -inf],   # empty support
        [1.0, nan, 2.0, 3.0],       # NaN row
        [1.0, 2.0, -inf, 2.0],      # -inf excluded
        [1e308, -1e308, 1e308, 0.0],  # huge: no overflow
        [5.0, 5.0, 5.0, 5.0],
    ])
    p = _call(alpha, x, implementation=implementation)
    assert p[0].tolist() == [0.5, 0.0, 0.5, 0.0]
    assert p[1].tolist() == [0.0] * 4
    assert np.isnan(p[2]).all()
    np.testing.assert_allclose(p[3], _oracle_row(x[3], alpha), rtol=1e-12)
    assert p[3, 2] == 0.0
    np.testing.assert_allclose(p[4], [0.5, 0.0, 0.5, 0.0], rtol=1e-15)
    np.testing.assert_allclose(p[5], 0.25, rtol=1e-15)
    # where: excluded -> exact 0 even when NaN or +inf; fully masked -> zeros
    w = np.array([[True, False, True, True]] * 6)
    w[1] = False
    xm = x.copy()
    xm[:, 1] = nan
    q = _call(alpha, xm, where=w, implementation=implementation)
    assert np.all(q[:, 1] == 0)
    assert q[1].tolist() == [0.0] * 4
    exp = _oracle(xm, alpha, where=w)
    np.testing.assert_allclose(q, exp, rtol=1e-10, atol=1e-15)
    # float32 at the edges
    x32 = np.array([[3e38, -3e38, 3e38], [np.float32(1), np.inf, -np.inf]], dtype=np.float32)
    q32 = _call(alpha, x32, implementation=implementation)
    assert q32.dtype == np.float32
    assert q32.tolist() == [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]]


def test_kernel_growth_and_orders():
    """Rows whose support does not fit the initial top-k buffer, arriving in any order."""
    rng = np.random.default_rng(8)
    k = 5000
    rows = [
        np.zeros(k),  # everything in the support
        np.linspace(0, 1e-3, k),  # ascending: candidates arrive in increasing order
        np.linspace(1e-3, 0, k),  # descending
        rng.uniform(0, 0.01, k),
        np.r_[rng.uniform(-0.9, 0, k - 1), 0.0],  # the max last
        rng.standard_normal(k) * 1e-3,
    ]
    x = np.stack(rows)
    for alpha in ALPHAS:
        a = _call(alpha, x, implementation="numba")
        b = _call(alpha, x, implementation="reference")
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(a, _oracle(x, alpha), rtol=1e-7, atol=1e-14)


@pytest.mark.parametrize("alpha", [2.0, 1.5, 1.25])
def test_half_precision(alpha):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 64)) * 4
    for dtype in (np.float16, ml_dtypes.bfloat16):
        xh = x.astype(dtype)
        for impl in IMPLS:
            p = _call(alpha, xh, implementation=impl)
            assert p.dtype == dtype
            pf = p.astype(np.float32)
            assert np.all(np.isfinite(pf)) and np.all(pf >= 0)
            np.testing.assert_allclose(pf.sum(-1), 1, atol=64 * float(ml_dtypes.finfo(dtype).eps))
            # computed in float32 (float64 inside), then rounded once
            np.testing.assert_array_equal(p, _call(alpha, xh.astype(np.float32)).astype(dtype))
    # overflowing float16 magnitudes
    big = np.array([60000.0, -60000.0, 60000.0], dtype=np.float16)
    assert _call(alpha, big).tolist() == [0.5, 0.0, 0.5]


def test_integer_and_bool_input():
    p = sparsemax(np.array([[0, 1, 3]]))
    assert p.dtype == np.float64 and p.tolist() == [[0.0, 0.0, 1.0]]
    np.testing.assert_allclose(entmax15(np.array([True, True])), [0.5, 0.5], rtol=1e-15)


@pytest.mark.parametrize("implementation", IMPLS)
def test_axes(implementation):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 5))
    for alpha in (2.0, 1.5, 2.5):
        for axis in (0, 1, -1, (0, 2), (2, 0), None, ()):
            p = _call(alpha, x, axis=axis, implementation=implementation)
            np.testing.assert_allclose(p, _oracle(x, alpha, axis=axis), rtol=1e-8, atol=1e-14)
    # 0-d input, non-contiguous input
    assert float(sparsemax(np.float64(3.0), axis=None)) == 1.0
    xt = x.transpose(2, 0, 1)[:, :, ::2]
    np.testing.assert_allclose(entmax15(xt, implementation=implementation),
                               _oracle(np.ascontiguousarray(xt), 1.5), rtol=1e-8, atol=1e-14)
    # empty arrays
    assert sparsemax(np.zeros((0, 4)), implementation=implementation).shape == (0, 4)
    assert entmax15(np.zeros((3, 0)), implementation=implementation).shape == (3, 0)


def test_inputs_not_modified():
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 0.0, 1.0]])
    x0 = x.copy()
    w = np.array([True, False, True])
    for impl in IMPLS:
        sparsemax(x, where=w, implementation=impl)
        entmax_bisect_loss(x, [0, 0], implementation=impl, return_grad=True)
        np.testing.assert_array_equal(x, x0)


# --------------------------------------------------------------------------- backends
@pytest.mark.parametrize("alpha", [2.0, 1.5, 1.7])
def test_backends(backend, alpha):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 9)).astype(np.float32)
    x[0, 3] = np.inf
    x[1, 2] = np.nan
    x[2, :] = -np.inf
    xa = backend.asarray(x)
    p = _call(alpha, xa)
    assert backend.is_own(p)
    pn = backend.to_numpy(p)
    assert pn.dtype == np.float32
    exp = _call(alpha, x, implementation="reference")
    np.testing.assert_allclose(pn, exp, rtol=1e-6, atol=1e-7, equal_nan=True)
    np.testing.assert_allclose(pn, _oracle(x, alpha), rtol=1e-5, atol=1e-7, equal_nan=True)
    w = backend.asarray(np.array([True, False] * 4 + [True]))
    pw = backend.to_numpy(_call(alpha, xa, where=w))
    np.testing.assert_allclose(pw, _oracle(x, alpha, where=np.array([True, False] * 4 + [True])),
                               rtol=1e-5, atol=1e-7, equal_nan=True)
    _, vjp, jvp, loss, *_ = _map(alpha)
    g = backend.asarray(rng.standard_normal((6, 9)).astype(np.float32))
    d = vjp(p, g)
    assert backend.is_own(d)
    np.testing.assert_allclose(backend.to_numpy(d), vjp(exp, backend.to_numpy(g)), rtol=1e-5,
                               atol=1e-6, equal_nan=True)
    t = backend.asarray(np.array([3, 0, 0, 1, 2, 3]))
    lv, lg = loss(xa, t, reduction="none", return_grad=True)
    assert backend.is_own(lv) and backend.is_own(lg)
    lref, gref = loss(x, np.array([3, 0, 0, 1, 2, 3]), reduction="none", return_grad=True)
    np.testing.assert_allclose(backend.to_numpy(lv), lref, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(backend.to_numpy(lg), gref, rtol=1e-5, atol=1e-6, equal_nan=True)


# --------------------------------------------------------------------------- losses
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("implementation", IMPLS)
def test_loss_semantics(alpha, implementation):
    loss = _map(alpha)[3]
    kw = {"implementation": implementation}
    # large margin: exactly zero loss and gradient
    l0, g0 = loss([[0.0, 10.0, 0.0]], [1], return_grad=True, **kw)
    assert float(l0) == 0.0 and not g0.any()
    # non-negative, ignore_index, mean over counted samples, reduction="none" shape
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 5))
    t = rng.integers(0, 5, size=(4, 3))
    t[0, 0] = -100
    per = loss(x, t, ignore_index=-100, reduction="none", **kw)
    assert per.shape == (4, 3) and per[0, 0] == 0 and np.all(per >= 0)
    m, gm = loss(x, t, ignore_index=-100, return_grad=True, **kw)
    np.testing.assert_allclose(m, per.sum() / 11, rtol=1e-12)
    assert not gm[0, 0].any()
    np.testing.assert_allclose(gm.sum(-1), 0, atol=1e-12)
    # class axis 1
    per1 = loss(np.moveaxis(x, -1, 1), t, axis=1, ignore_index=-100, reduction="none", **kw)
    np.testing.assert_allclose(per1, per, rtol=1e-12)
    # everything ignored: mean 0, zero gradient
    m, gm = loss(x, np.full((4, 3), 7), ignore_index=7, return_grad=True, **kw)
    assert float(m) == 0.0 and not gm.any()
    # edges: NaN confined, +inf target -> finite limit, target not at +inf -> inf,
    # target excluded -> inf, empty row -> inf
    inf, nan = np.inf, np.nan
    xe = np.array([[1.0, nan, 0.0], [inf, 0.0, inf], [inf, 0.0, 1.0], [0.0, 1.0, 2.0],
                   [0.0, 1.0, 2.0], [-inf, -inf, -inf]])
    w = np.array([[True] * 3] * 4 + [[True, True, False]] + [[True] * 3])
    le, ge = loss(xe, [0, 2, 1, 2, 2, 0], where=w, reduction="none", return_grad=True, **kw)
    assert np.isnan(le[0]) and np.isnan(ge[0]).all()
    h_uniform2 = (1 - 2 * 0.5**alpha) / (alpha * (alpha - 1))
    np.testing.assert_allclose(le[1], h_uniform2, rtol=1e-12)
    np.testing.assert_allclose(ge[1], [0.5, 0.0, -0.5])
    assert le[2] == inf and le[4] == inf and le[5] == inf
    assert np.isfinite(le[3])
    assert np.all(np.isfinite(ge[1:]))
    # float16 loss
    lh = loss(np.array([[1.0, 2.0, 3.0]], dtype=np.float16), [0], **kw)
    assert lh.dtype == np.float16
    np.testing.assert_allclose(float(lh), float(loss([[1.0, 2.0, 3.0]], [0])), rtol=1e-3)


# --------------------------------------------------------------------------- errors
def test_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect(x, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect(x, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect(x, np.inf)
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect(x, np.nan)
    with pytest.raises(TypeError, match="alpha"):
        entmax_bisect(x, "2")
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect_vjp(x, x, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        entmax_bisect_loss(x, [0, 1], alpha=-2)
    with pytest.raises(ValueError, match="n_iter"):
        entmax_bisect(x, n_iter=0)
    with pytest.raises(TypeError, match="n_iter"):
        entmax_bisect(x, n_iter=10.0)
    with pytest.raises(TypeError, match="n_iter"):
        entmax_bisect(x, n_iter=True)
    with pytest.raises(TypeError, match="x must be an array of real numbers"):
        sparsemax(np.ones(3, dtype=complex))
    with pytest.raises(np.exceptions.AxisError):
        entmax15(x, axis=2)
    with pytest.raises(TypeError, match="where"):
        sparsemax(x, where=np.ones((2, 3)))
    with pytest.raises(ValueError, match="where"):
        sparsemax(x, where=np.ones((4,), dtype=bool))
    with pytest.raises(ValueError, match="implementation"):
        sparsemax(x, implementation="fast")
    with pytest.raises(ValueError, match="numba"):
        sparsemax(torch.ones(3), implementation="numba")
    with pytest.raises(ValueError, match="v of shape"):
        sparsemax_jvp(x, np.ones(4))
    with pytest.raises(TypeError, match="target"):
        sparsemax_loss(x, [0.0, 1.0])
    with pytest.raises(TypeError, match="target"):
        sparsemax_loss(x, [True, False])
    with pytest.raises(ValueError, match="target"):
        sparsemax_loss(x, [0, 3])
    with pytest.raises(ValueError, match="target"):
        sparsemax_loss(x, [0, -1])
    with pytest.raises(ValueError, match="target"):
        entmax15_loss(x, [0, 1, 2])
    with pytest.raises(ValueError, match="reduction"):
        entmax15_loss(x, [0, 1], reduction="average")
    with pytest.raises(TypeError, match="axis"):
        entmax15_loss(x, [0, 1], axis=(0, 1))
    with pytest.raises(TypeError, match="ignore_index"):
        sparsemax_loss(x, [0, 1], ignore_index=1.5)
    with pytest.raises(ValueError, match="0-d"):
        sparsemax_loss(np.float64(1.0), 0)


# --------------------------------------------------------------------------- hypothesis
_specials = st.sampled_from([np.inf, -np.inf, np.nan, 0.0, 1e300, -1e300, 1e-300])


@st.composite
def _cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6))
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-20, 20)))
    n_special = draw(st.integers(0, 3)) if x.size else 0
    for _ in range(n_special):
        idx = tuple(draw(st.integers(0, s - 1)) for s in shape)
        x[idx] = draw(_specials)
    ndim = len(shape)
    axis = draw(st.one_of(
        st.integers(-ndim, ndim - 1),
        st.none(),
        st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple),
    ))
    where = draw(st.one_of(st.none(), hnp.arrays(np.bool_, shape)))
    alpha = draw(st.sampled_from([2.0, 1.5, 1.3, 2.8]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32
        return x.astype(dtype), axis, where, alpha


@given(_cases())
def test_hypothesis_against_oracle(case):
    x, axis, where, alpha = case
    with np.errstate(all="ignore"):
        exp = _oracle(x.astype(np.float64), alpha, axis=axis, where=where)
    for impl in IMPLS:
        p = _call(alpha, x, axis=axis, where=where, implementation=impl)
        p = np.asarray(p)
        assert p.dtype == x.dtype and p.shape == x.shape
        tol = 1e-5 if x.dtype == np.float32 else 1e-8
        np.testing.assert_allclose(p, exp, rtol=tol, atol=tol, equal_nan=True)
        if where is not None:  # exact zeros, even in a NaN row (as in the core)
            assert np.all(p[~where] == 0)
        # never NaN unless the (included) distribution has a NaN
        assert np.array_equal(np.isnan(p), np.isnan(exp))


@given(_cases(), st.integers(0, 2**32 - 1))
def test_hypothesis_kernel_matches_reference_derivatives(case, seed):
    x, axis, where, alpha = case
    rng = np.random.default_rng(seed)
    p = _call(alpha, x, axis=axis, where=where)
    g = rng.standard_normal(x.shape).astype(x.dtype)
    vjp = _map(alpha)[1]
    a = vjp(p, g, axis=axis, implementation="numba")
    b = vjp(p, g, axis=axis, implementation="reference")
    tol = 1e-5 if x.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, equal_nan=True)
    assert np.all(a[np.asarray(p) == 0] == 0)


def test_math_constants():
    # sparsemax([0, 0.5, 1]): tau = (1.5 - 1) / 2 = 0.25 -> [0, .25, .75]; exact in binary.
    assert sparsemax([0.0, 0.5, 1.0]).tolist() == [0.0, 0.25, 0.75]
    # 1.5-entmax of [0, 1]: X = [0, .5]; (0.5 - tau)^2 + (-tau)^2 = 1 -> tau = (0.5 - sqrt(1.75)) / 2
    tau = (0.5 - math.sqrt(1.75)) / 2
    np.testing.assert_allclose(entmax15([0.0, 1.0]), [tau**2, (0.5 - tau) ** 2], rtol=1e-15)
