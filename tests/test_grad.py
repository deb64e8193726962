"""Derivatives: against float64 finite differences and torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softargmax import (
    log_softmax,
    log_softmax_vjp,
    softmax,
    softmax_jacobian,
    softmax_jvp,
    softmax_vjp,
)

SCALES = [{}, {"temperature": 0.7}, {"beta": -1.5}, {"base": 2.0}]


def _fd_jacobian(f, x, h=1e-6):
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        cols.append(((f(x + e) - f(x - e)) / (2 * h)).ravel())
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("kw", SCALES)
def test_jacobian_matches_finite_differences(kw):
    x = np.random.default_rng(0).normal(size=5)
    p = softmax(x, **kw)
    jac = softmax_jacobian(p, **kw)
    np.testing.assert_allclose(jac, _fd_jacobian(lambda z: softmax(z, **kw), x), atol=1e-8)
    np.testing.assert_allclose(jac, jac.T, atol=1e-15)
    np.testing.assert_allclose(jac.sum(axis=0), 0, atol=1e-15)


@pytest.mark.parametrize("kw", SCALES)
def test_jvp_vjp_log_vjp_against_torch_autograd(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 4, 5))
    v = rng.normal(size=(3, 4, 5))
    b = 1.0
    for k, val in kw.items():
        b = 1 / val if k == "temperature" else (np.log(val) if k == "base" else val)
    for axis in (-1, 1):
        xt = torch.tensor(x, requires_grad=True)
        pt = torch.softmax(b * xt, dim=axis)
        (g,) = torch.autograd.grad(pt, xt, torch.tensor(v))
        p = softmax(x, axis=axis, **kw)
        np.testing.assert_allclose(softmax_vjp(p, v, axis=axis, **kw), g.numpy(), rtol=1e-12, atol=1e-14)
        # JVP by forward-mode: the Jacobian is symmetric, so it equals the VJP
        np.testing.assert_allclose(softmax_jvp(p, v, axis=axis, **kw), g.numpy(), rtol=1e-12, atol=1e-14)
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.log_softmax(b * xt, dim=axis)
        (g,) = torch.autograd.grad(lt, xt, torch.tensor(v))
        lp = log_softmax(x, axis=axis, **kw)
        np.testing.assert_allclose(log_softmax_vjp(lp, v, axis=axis, **kw), g.numpy(), rtol=1e-12, atol=1e-14)


def test_jacobian_axis_layout():
    x = np.random.default_rng(2).normal(size=(2, 3, 4))
    p = softmax(x, axis=1)
    jac = softmax_jacobian(p, axis=1)
    assert jac.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(jac[1, 2], softmax_jacobian(p[1, :, 2]), atol=1e-16)
    pj = softmax(x, axis=(1, 2))
    assert softmax_jacobian(pj, axis=(1, 2)).shape == (2, 12, 12)


def test_masked_and_empty_rows_have_zero_finite_gradients():
    x = np.array([[1.0, 2.0, -np.inf], [-np.inf, -np.inf, -np.inf]])
    w = np.array([[True, True, True], [True, False, True]])
    p = softmax(x, where=w)
    g = np.array([[1.0, np.nan, 5.0], [np.inf, 2.0, np.nan]])
    g[0, 1] = 0.5
    vjp = softmax_vjp(p, g)
    assert np.isfinite(vjp).all() and vjp[0, 2] == 0 and (vjp[1] == 0).all()
    lp = log_softmax(x, where=w)
    lv = log_softmax_vjp(lp, g)
    assert np.isfinite(lv).all() and lv[0, 2] == 0 and (lv[1] == 0).all()
    jac = softmax_jacobian(p)
    assert np.isfinite(jac).all() and (jac[1] == 0).all()


@given(hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-20, 20)), st.sampled_from(SCALES))
def test_log_softmax_vjp_finite_differences(x, kw):
    g = np.linspace(-1, 1, x.size)
    lp = log_softmax(x, **kw)
    fd = _fd_jacobian(lambda z: log_softmax(z, **kw), x).T @ g
    np.testing.assert_allclose(log_softmax_vjp(lp, g, **kw), fd, atol=1e-6)


def test_dtypes_and_errors():
    p32 = softmax(np.array([1.0, 2.0], dtype=np.float32))
    assert softmax_jvp(p32, np.ones(2, np.float32)).dtype == np.float32
    assert softmax_jacobian(np.array([0.5, 0.5], np.float16)).dtype == np.float16
    with pytest.raises(ValueError, match="v of shape"):
        softmax_jvp(np.ones(3) / 3, np.ones(4))
    with pytest.raises(TypeError, match="p must be an array of real numbers"):
        softmax_jacobian(["a"])
    with pytest.raises(ValueError, match="temperature"):
        softmax_vjp(np.ones(2) / 2, np.ones(2), temperature=-1)


def test_other_backends(backend):
    p = softmax(backend.asarray([[1.0, 2.0, 3.0]]))
    g = backend.asarray([[1.0, 0.0, 0.0]])
    res = softmax_vjp(p, g)
    assert backend.is_own(res)
    np.testing.assert_allclose(
        backend.to_numpy(res), softmax_vjp(backend.to_numpy(p), [[1.0, 0.0, 0.0]]), rtol=1e-6
    )
    jac = softmax_jacobian(p)
    assert backend.is_own(jac) and tuple(jac.shape) == (1, 3, 3)
