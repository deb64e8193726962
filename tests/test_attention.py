"""Tests of softargmax.attention: exact (blockwise) attention, its vjp, merge, linear attention.

Oracles: a float64 materialised softmax(q k^T * scale + mask) v written here (independent
of the blockwise code), torch's scaled_dot_product_attention and autograd, float64 finite
differences, and the two code paths (array-API reference, threaded NumPy) against each
other.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softargmax.attention import (
    attention,
    attention_vjp,
    linear_attention,
    linear_attention_vjp,
    merge_attention,
)

torch = pytest.importorskip("torch")

PATHS = ["reference", "numpy"]
CAUSALS = [False, True, "bottom_right"]


# --------------------------------------------------------------------------- oracles
def visible(lq: int, lk: int, causal: object) -> np.ndarray | None:
    """The (Lq, Lk) boolean pattern of a causal alignment, or None."""
    if causal is False:
        return None
    offset = 0 if causal in (True, "top_left") else lk - lq
    return np.arange(lk)[None, :] - np.arange(lq)[:, None] <= offset


def ref_attention(q, k, v, mask=None, causal=False, scale=None):
    """float64 materialised attention: (out, lse); fully masked rows give 0 and -inf."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    d = q.shape[-1]
    scale = 1 / math.sqrt(d) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        mask = np.asarray(mask)
        s = np.where(mask, s, -np.inf) if mask.dtype == bool else s + mask
    vis = visible(q.shape[-2], k.shape[-2], causal)
    if vis is not None:
        s = np.where(vis, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True, initial=-np.inf)
    m = np.where(np.isneginf(m), 0.0, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.exp(s - m)
        ll = e.sum(-1, keepdims=True)
        empty = ll == 0  # NaN rows stay NaN
        out = np.where(empty, 0.0, (e / np.where(empty, 1, ll)) @ v)
        lse = np.where(empty, -np.inf, m + np.log(np.where(empty, 1, ll)))[..., 0]
    return out, lse


def torch_sdpa(q, k, v, mask=None, causal=False, scale=None, dout=None):
    """torch SDPA (with autograd when dout is given): out, (dq, dk, dv)."""
    tq, tk, tv = (torch.tensor(np.asarray(x), requires_grad=dout is not None) for x in (q, k, v))
    vis = visible(tq.shape[-2], tk.shape[-2], causal)
    tm = None if mask is None else torch.tensor(np.asarray(mask))
    if vis is not None:
        tv_ = torch.tensor(vis)
        tm = tv_ if tm is None else (tm & tv_ if tm.dtype == torch.bool else tm.masked_fill(~tv_, -math.inf))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, scale=scale)
    if dout is None:
        return out.detach().numpy(), None
    out.backward(torch.tensor(np.asarray(dout)))
    return out.detach().numpy(), tuple(np.nan_to_num(t.grad.numpy()) for t in (tq, tk, tv))


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-300))


def qkv(rng, batch, lq, lk, d=8, dv=5, dtype=np.float64):
    rng = np.random.default_rng(rng)
    return (
        rng.standard_normal((*batch, lq, d)).astype(dtype),
        rng.standard_normal((*batch, lk, d)).astype(dtype),
        rng.standard_normal((*batch, lk, dv)).astype(dtype),
    )


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("causal", CAUSALS)
@pytest.mark.parametrize(("lq", "lk"), [(1, 1), (37, 53), (53, 37), (64, 64), (5, 130)])
@pytest.mark.parametrize("block_size", [None, (7, 11), 16, (1, 3)])
def test_matches_float64_reference(path, causal, lq, lk, block_size):
    q, k, v = qkv(lq * 100 + lk, (2, 3), lq, lk)
    out, lse = attention(
        q, k, v, causal=causal, block_size=block_size, return_lse=True, implementation=path
    )
    ref, ref_lse = ref_attention(q, k, v, causal=causal)
    assert out.shape == ref.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("causal", CAUSALS)
@pytest.mark.parametrize(("lq", "lk"), [(37, 53), (131, 97), (64, 64)])
def test_float32_against_reference_and_torch(path, causal, lq, lk):
    q, k, v = qkv(7, (2, 2), lq, lk, d=16, dv=16, dtype=np.float32)
    out, lse = attention(q, k, v, causal=causal, block_size=(32, 24), return_lse=True, implementation=path)
    assert out.dtype == np.float32 and lse.dtype == np.float32
    ref, ref_lse = ref_attention(q, k, v, causal=causal)
    expect, _ = torch_sdpa(q, k, v, causal=causal)
    assert rel_err(out, ref) <= 1e-5
    assert rel_err(out, expect) <= 1e-5
    finite = np.isfinite(ref_lse)
    np.testing.assert_array_equal(np.isfinite(lse), finite)
    np.testing.assert_allclose(lse[finite], ref_lse[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_large_problem_float32_against_torch(path):
    # Several default-size blocks, odd lengths, as the threaded path runs them.
    q, k, v = qkv(3, (3,), 700, 1100, d=32, dv=24, dtype=np.float32)
    for causal in CAUSALS:
        out = attention(q, k, v, causal=causal, implementation=path, num_threads=2)
        expect, _ = torch_sdpa(q, k, v, causal=causal)
        assert rel_err(out, expect) <= 1e-5


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("causal", CAUSALS)
def test_boolean_mask_with_fully_masked_rows(path, causal):
    q, k, v = qkv(1, (2,), 19, 23)
    rng = np.random.default_rng(2)
    mask = rng.random((2, 19, 23)) < 0.6
    mask[0, 3] = False  # fully masked rows
    mask[1, 0] = False
    mask[1, -1] = False
    out, lse = attention(q, k, v, mask=mask, causal=causal, block_size=(4, 5), return_lse=True, implementation=path)
    ref, ref_lse = ref_attention(q, k, v, mask=mask, causal=causal)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(out[0, 3], 0.0)
    assert np.isneginf(lse[0, 3]) and np.isneginf(lse[1, 0])
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)
    expect, _ = torch_sdpa(q, k, v, mask=mask, causal=causal)
    np.testing.assert_allclose(out, expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_additive_float_mask(path):
    q, k, v = qkv(4, (2, 1), 13, 17)
    rng = np.random.default_rng(5)
    mask = rng.normal(size=(1, 3, 13, 17)) * 3
    mask[..., 2, :] = -np.inf  # a fully masked row
    mask[..., 5, ::2] = -np.inf
    out, lse = attention(q, k, v, mask=mask, block_size=(4, 6), return_lse=True, implementation=path)
    assert out.shape == (2, 3, 13, 5)
    ref, ref_lse = ref_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)
    expect, _ = torch_sdpa(np.broadcast_to(q, (2, 3, 13, 8)), k, v, mask=mask)
    np.testing.assert_allclose(out, expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(23,), (1, 23), (11, 1), (2, 1, 11, 23), (1, 3, 1, 23)])
def test_mask_broadcasting(path, shape):
    q, k, v = qkv(6, (2, 3), 11, 23)
    mask = np.random.default_rng(1).random(shape) < 0.7
    out = attention(q, k, v, mask=mask, causal="bottom_right", block_size=5, implementation=path)
    ref, _ = ref_attention(q, k, v, mask=mask, causal="bottom_right")
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)


def test_causal_alignments():
    q, k, v = qkv(8, (), 4, 6)
    top = attention(q, k, v, causal=True)
    np.testing.assert_array_equal(top, attention(q, k, v, causal="top_left"))
    # top left: query 0 sees key 0 only; bottom right: query 0 sees keys 0..2
    np.testing.assert_allclose(top[0], v[0], rtol=1e-14)
    bottom = attention(q, k, v, causal="bottom_right")
    np.testing.assert_allclose(bottom[-1], attention(q[-1:], k, v)[0], rtol=1e-14)
    np.testing.assert_allclose(bottom[0], attention(q[:1], k[:3], v[:3])[0], rtol=1e-14)
    # Lq > Lk bottom right: the first Lq - Lk queries see no key at all
    out, lse = attention(k, q, v[:4], causal="bottom_right", return_lse=True)
    np.testing.assert_array_equal(out[:2], 0.0)
    assert np.isneginf(lse[:2]).all() and np.isfinite(lse[2:]).all()
    # equal lengths: the alignments agree
    q, k, v = qkv(9, (), 7, 7)
    np.testing.assert_array_equal(attention(q, k, v, causal=True), attention(q, k, v, causal="bottom_right"))


def test_fully_masked_rows_zero_where_jax_gives_mean():
    jax = pytest.importorskip("jax")
    q, k, v = qkv(10, (), 3, 5, d=4, dv=4, dtype=np.float32)
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False
    ours = attention(q, k, v, mask=mask)
    np.testing.assert_array_equal(ours[1], 0.0)
    theirs = np.asarray(
        jax.nn.dot_product_attention(q[None, :, None], k[None, :, None], v[None, :, None], mask=mask[None, None])
    )[0, :, 0]
    np.testing.assert_allclose(theirs[1], v.mean(axis=0), rtol=1e-5)  # the documented difference
    np.testing.assert_allclose(theirs[[0, 2]], ours[[0, 2]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", PATHS)
def test_large_logits_do_not_overflow(path):
    q, k, v = qkv(11, (2,), 9, 10)
    for factor in (1e3, 1e150):
        out = attention(q * factor, k, v, scale=1.0, implementation=path, block_size=3)
        assert np.isfinite(out).all()
        winners = np.argmax(q @ np.swapaxes(k, -1, -2), axis=-1)
        np.testing.assert_allclose(out, np.take_along_axis(v, winners[..., None], axis=-2), rtol=1e-12)


@pytest.mark.parametrize("path", PATHS)
def test_nan_stays_in_its_row_and_masked_nan_is_ignored(path):
    q, k, v = qkv(12, (), 6, 7)
    q[2, 0] = np.nan
    out = attention(q, k, v, block_size=3, implementation=path)
    assert np.isnan(out[2]).all() and np.isfinite(np.delete(out, 2, axis=0)).all()
    q[2, 0] = 0.0
    k[4, 1] = np.nan  # only reached through masked entries
    mask = np.ones((6, 7), dtype=bool)
    mask[:, 4] = False
    out = attention(q, k, v, mask=mask, block_size=3, implementation=path)
    ref, _ = ref_attention(q, np.nan_to_num(k), v, mask=mask)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    k[4, 1] = 0.0
    k[6, 1] = np.nan  # hidden from queries 0..5 by causality (top left)
    out = attention(q, k, v, causal=True, block_size=3, implementation=path)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("path", PATHS)
def test_empty_axes(path):
    q, k, v = qkv(13, (2,), 0, 5)
    out, lse = attention(q, k, v, return_lse=True, implementation=path)
    assert out.shape == (2, 0, 5) and lse.shape == (2, 0)
    q, k, v = qkv(13, (2,), 4, 0)
    out, lse = attention(q, k, v, return_lse=True, implementation=path)
    np.testing.assert_array_equal(out, np.zeros((2, 4, 5)))
    assert np.isneginf(lse).all()
    dq, dk, dv = attention_vjp(q, k, v, out, lse, np.ones_like(out), implementation=path)
    np.testing.assert_array_equal(dq, 0.0)
    assert dk.shape == k.shape and dv.shape == v.shape
    q, k, v = qkv(13, (0,), 4, 5)
    assert attention(q, k, v, implementation=path).shape == (0, 4, 5)
    q, k, v = qkv(13, (), 3, 4, d=0)  # no features: uniform weights, the mean of v
    np.testing.assert_allclose(attention(q, k, v, implementation=path), np.broadcast_to(v.mean(0), (3, 5)))


def test_batch_broadcasting_and_dtypes():
    q, _, _ = qkv(14, (2, 1), 9, 9)
    _, k, v = qkv(15, (1, 3), 9, 9)
    out = attention(q, k, v)
    ref, _ = ref_attention(q, k, v)
    assert out.shape == (2, 3, 9, 5)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    # float16 in -> float16 out (computed in float32); float32 with float64 -> float64
    h = attention(q.astype(np.float16), k.astype(np.float16), v.astype(np.float16), return_lse=True)
    assert h[0].dtype == np.float16 and h[1].dtype == np.float32
    assert rel_err(h[0], ref) < 3e-3
    assert attention(q.astype(np.float32), k, v).dtype == np.float64
    # lists are arrays too
    np.testing.assert_allclose(attention(q[0, 0].tolist(), k[0, 0].tolist(), v[0, 0].tolist()), ref[0, 0])


@pytest.mark.parametrize("path", PATHS)
def test_inputs_not_modified(path):
    q, k, v = qkv(16, (2,), 40, 50, dtype=np.float32)
    mask = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    copies = [a.copy() for a in (q, k, v, mask)]
    out, lse = attention(q, k, v, mask=mask, causal=True, block_size=8, return_lse=True, implementation=path)
    dout = np.ones_like(out)
    attention_vjp(q, k, v, out, lse, dout, mask=mask, causal=True, block_size=8, implementation=path)
    for a, c in zip((q, k, v, mask), copies, strict=True):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dout, 1.0)


def test_threads_do_not_change_results():
    q, k, v = qkv(17, (3,), 130, 150, dtype=np.float32)
    kw = dict(causal=True, block_size=(16, 32), implementation="numpy")
    one, lse1 = attention(q, k, v, num_threads=1, return_lse=True, **kw)
    three = attention(q, k, v, num_threads=3, **kw)
    np.testing.assert_array_equal(one, three)
    dout = np.random.default_rng(0).normal(size=one.shape).astype(np.float32)
    g1 = attention_vjp(q, k, v, one, lse1, dout, num_threads=1, **kw)
    g3 = attention_vjp(q, k, v, one, lse1, dout, num_threads=3, **kw)
    for a, b in zip(g1, g3, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@given(
    lq=st.integers(1, 24),
    lk=st.integers(1, 24),
    bq=st.integers(1, 9),
    bk=st.integers(1, 9),
    causal=st.sampled_from(CAUSALS),
    masked=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_paths_agree_with_reference_hypothesis(lq, lk, bq, bk, causal, masked, seed):
    q, k, v = qkv(seed, (2,), lq, lk, d=3, dv=2)
    mask = np.random.default_rng(seed).random((lq, lk)) < 0.5 if masked else None
    ref, ref_lse = ref_attention(q, k, v, mask=mask, causal=causal)
    for path in PATHS:
        out, lse = attention(
            q, k, v, mask=mask, causal=causal, block_size=(bq, bk), return_lse=True, implementation=path
        )
        np.testing.assert_allclose(out, ref, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(lse, ref_lse, rtol=1e-11, atol=1e-12)
        dout = np.random.default_rng(seed + 1).normal(size=out.shape)
        grads = attention_vjp(q, k, v, out, lse, dout, mask=mask, causal=causal, block_size=(bq, bk), implementation=path)
        expect = torch_sdpa(q, k, v, mask=mask, causal=causal, dout=dout)[1]
        for g, e in zip(grads, expect, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-10)


@given(
    lq=st.integers(0, 20),
    lk=st.integers(0, 20),
    block=st.integers(1, 8),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    causal=st.sampled_from(CAUSALS),
    magnitude=st.sampled_from([1e-3, 1.0, 30.0]),
    holes=st.floats(0.0, 1.0),
    nan_row=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dtypes_additive_masks_and_nan_hypothesis(lq, lk, block, dtype, causal, magnitude, holes, nan_row, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (x.astype(dtype) for x in qkv(seed, (2,), lq, lk, d=4, dv=3))
    q = (q * magnitude).astype(dtype)
    mask = np.where(rng.random((lq, lk)) < holes, -np.inf, rng.normal(size=(lq, lk))).astype(dtype)
    if nan_row and lq:
        q[1, lq // 2, 0] = np.nan
    ref, ref_lse = ref_attention(q, k, v, mask=mask, causal=causal)
    tol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    outs = []
    for path in PATHS:
        out, lse = attention(
            q, k, v, mask=mask, causal=causal, block_size=block, return_lse=True, implementation=path
        )
        assert out.dtype == dtype and out.shape == ref.shape
        np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
        ok = ~np.isnan(ref)
        assert rel_err(out[ok], ref[ok]) <= tol
        np.testing.assert_array_equal(np.isneginf(lse), np.isneginf(ref_lse))
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=10 * tol, atol=10 * tol)


# --------------------------------------------------------------------------- backward
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("causal", CAUSALS)
@pytest.mark.parametrize(("lq", "lk"), [(29, 41), (41, 29), (32, 32)])
def test_vjp_against_torch_autograd(path, causal, lq, lk):
    q, k, v = qkv(lq + 7 * lk, (2,), lq, lk, d=6, dv=4)
    mask = np.random.default_rng(0).random((2, lq, lk)) < 0.8
    mask[0, 1] = False
    out, lse = attention(q, k, v, mask=mask, causal=causal, block_size=(8, 6), return_lse=True, implementation=path)
    dout = np.random.default_rng(1).normal(size=out.shape)
    grads = attention_vjp(q, k, v, out, lse, dout, mask=mask, causal=causal, block_size=(8, 6), implementation=path)
    _, expect = torch_sdpa(q, k, v, mask=mask, causal=causal, dout=dout)
    for g, e, x in zip(grads, expect, (q, k, v), strict=True):
        assert g.shape == x.shape and g.dtype == x.dtype
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-11)
    np.testing.assert_array_equal(grads[0][0, 1], 0.0)  # fully masked row


def test_vjp_float32_against_torch():
    q, k, v = qkv(21, (2, 2), 300, 260, d=32, dv=16, dtype=np.float32)
    for causal in CAUSALS:
        for path in PATHS:
            out, lse = attention(q, k, v, causal=causal, return_lse=True, implementation=path, block_size=(64, 96))
            dout = np.random.default_rng(2).normal(size=out.shape).astype(np.float32)
            grads = attention_vjp(q, k, v, out, lse, dout, causal=causal, implementation=path, block_size=(64, 96))
            _, expect = torch_sdpa(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), causal=causal, dout=dout.astype(np.float64))
            for g, e in zip(grads, expect, strict=True):
                assert g.dtype == np.float32
                assert rel_err(g, e) <= 1e-5


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("causal", CAUSALS)
def test_vjp_finite_differences(path, causal):
    q, k, v = qkv(22, (), 5, 7, d=3, dv=2)
    mask = np.random.default_rng(3).normal(size=(5, 7))
    dout = np.random.default_rng(4).normal(size=(5, 2))

    def loss(q, k, v):
        return float(np.sum(attention(q, k, v, mask=mask, causal=causal, scale=0.7, implementation=path) * dout))

    out, lse = attention(q, k, v, mask=mask, causal=causal, scale=0.7, return_lse=True, implementation=path)
    grads = attention_vjp(q, k, v, out, lse, dout, mask=mask, causal=causal, scale=0.7, block_size=2, implementation=path)
    rng = np.random.default_rng(5)
    for i, g in enumerate(grads):
        for _ in range(3):
            direction = rng.normal(size=g.shape)
            args = [q, k, v]
            h = 1e-6
            plus = [a + h * direction if j == i else a for j, a in enumerate(args)]
            minus = [a - h * direction if j == i else a for j, a in enumerate(args)]
            fd = (loss(*plus) - loss(*minus)) / (2 * h)
            assert abs(fd - np.sum(g * direction)) <= 1e-7 * max(1.0, abs(fd))


def test_vjp_broadcast_batch_axes_are_summed():
    q, _, _ = qkv(23, (2, 1), 6, 6)
    _, k, v = qkv(24, (3,), 6, 6)
    out, lse = attention(q, k, v, return_lse=True)
    dout = np.random.default_rng(0).normal(size=out.shape)
    dq, dk, dv = attention_vjp(q, k, v, out, lse, dout)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    qb = np.broadcast_to(q, (2, 3, 6, 8))
    kb, vb = np.broadcast_to(k, (2, 3, 6, 8)), np.broadcast_to(v, (2, 3, 6, 5))
    _, (eq, ek, ev) = torch_sdpa(qb.copy(), kb.copy(), vb.copy(), dout=dout)
    np.testing.assert_allclose(dq, eq.sum(axis=1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(dk, ek.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(dv, ev.sum(axis=0), rtol=1e-10)


def test_vjp_float16_dtypes():
    q, k, v = qkv(25, (), 8, 8, dtype=np.float16)
    out, lse = attention(q, k, v, return_lse=True)
    grads = attention_vjp(q, k, v, out, lse, np.ones_like(out))
    assert [g.dtype for g in grads] == [np.float16] * 3


# --------------------------------------------------------------------------- merge
@pytest.mark.parametrize("causal", [False, "bottom_right"])
def test_merge_equals_one_shot(causal):
    q, k, v = qkv(30, (2,), 9, 20)
    mask = np.random.default_rng(0).random((9, 20)) < 0.7
    mask[4] = False
    mask[6, :12] = False  # empty in the first two parts only
    cuts = [0, 5, 5, 12, 20]  # one part is empty
    parts = []
    vis = visible(9, 20, causal)
    full_mask = mask if vis is None else mask & vis
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        parts.append(attention(q, k[:, a:b], v[:, a:b], mask=full_mask[:, a:b], return_lse=True))
    out, lse = merge_attention([o for o, _ in parts], [s for _, s in parts])
    ref, ref_lse = attention(q, k, v, mask=mask, causal=causal, return_lse=True)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-13)
    np.testing.assert_array_equal(out[:, 4], 0.0)
    # associativity: merging merged halves gives the same
    left = merge_attention([o for o, _ in parts[:2]], [s for _, s in parts[:2]])
    right = merge_attention([o for o, _ in parts[2:]], [s for _, s in parts[2:]])
    again = merge_attention([left[0], right[0]], [left[1], right[1]])
    np.testing.assert_allclose(again[0], out, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(again[1], lse, rtol=1e-13)


def test_merge_large_lse_and_dtypes():
    o1, o2 = np.ones((3, 2), np.float32), 3 * np.ones((3, 2), np.float32)
    l1 = np.array([1000.0, -np.inf, 5.0], np.float32)
    l2 = np.array([1000.0, -np.inf, -np.inf], np.float32)
    out, lse = merge_attention([o1, o2], [l1, l2])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[2, 2], [0, 0], [1, 1]])
    np.testing.assert_allclose(lse, [1000 + math.log(2), -np.inf, 5.0], rtol=1e-7)


def test_merge_errors():
    o = np.zeros((3, 2))
    with pytest.raises(ValueError, match="same length"):
        merge_attention([o, o], [np.zeros(3)])
    with pytest.raises(ValueError, match="non-empty"):
        merge_attention([], [])
    with pytest.raises(TypeError, match="outs"):
        merge_attention(o, [np.zeros(3)])
    with pytest.raises(TypeError, match=r"lses\[0\]"):
        merge_attention([o], [np.zeros(3, dtype=int)])
    with pytest.raises(ValueError, match="do not broadcast"):
        merge_attention([o], [np.zeros(4)])


# --------------------------------------------------------------------------- backends
def test_array_libraries_get_their_own_type(backend):
    q, k, v = qkv(40, (2,), 11, 13, dtype=np.float32)
    mask = np.random.default_rng(0).random((11, 13)) < 0.8
    mask[3] = False
    bq, bk, bv, bm = (backend.asarray(x) for x in (q, k, v, mask))
    # JAX compiles every operation for every new shape: one block there keeps it quick.
    blocks = None if backend.name == "jax" else (4, 5)
    out, lse = attention(bq, bk, bv, mask=bm, causal="bottom_right", block_size=blocks, return_lse=True)
    assert backend.is_own(out) and backend.is_own(lse)
    ref, ref_lse = ref_attention(q, k, v, mask=mask, causal="bottom_right")
    assert rel_err(backend.to_numpy(out), ref) <= 1e-5
    np.testing.assert_allclose(backend.to_numpy(lse), ref_lse, rtol=1e-5, atol=1e-5)
    dout = backend.asarray(np.ones((2, 11, 5), dtype=np.float32))
    grads = attention_vjp(bq, bk, bv, out, lse, dout, mask=bm, causal="bottom_right", block_size=blocks)
    _, expect = torch_sdpa(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), mask=mask, causal="bottom_right", dout=np.ones((2, 11, 5)))
    for g, e in zip(grads, expect, strict=True):
        assert backend.is_own(g)
        assert rel_err(backend.to_numpy(g), e) <= 1e-5
    merged = merge_attention([out, out], [lse, lse])
    assert backend.is_own(merged[0])
    np.testing.assert_allclose(backend.to_numpy(merged[0]), backend.to_numpy(out), rtol=1e-6)
    lin = linear_attention(bq, bk, bv, causal=True)
    assert backend.is_own(lin)
    np.testing.assert_allclose(backend.to_numpy(lin), ref_linear(q, k, v, causal=True), rtol=1e-5, atol=1e-6)
    lgrads = linear_attention_vjp(bq, bk, bv, dout, causal=True)
    assert all(backend.is_own(g) for g in lgrads)


# --------------------------------------------------------------------------- errors
def test_bad_input_errors():
    q, k, v = qkv(50, (2,), 4, 5)
    with pytest.raises(ValueError, match=r"k must have the feature size d of q"):
        attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"v must have as many rows as k"):
        attention(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"mask of shape \(3, 5\)"):
        attention(q, k, v, mask=np.ones((3, 5), dtype=bool))
    with pytest.raises(ValueError, match="batch axes"):
        attention(q, k, v, mask=np.ones((3, 4, 5), dtype=bool))
    with pytest.raises(ValueError, match="batch axes"):
        attention(q, np.concatenate([k, k, k]), v)
    with pytest.raises(TypeError, match=r"q must be a floating-point array, got dtype int64"):
        attention(q.astype(np.int64), k, v)
    with pytest.raises(TypeError, match=r"v must be a floating-point array, got dtype bool"):
        attention(q, k, v > 0)
    with pytest.raises(TypeError, match=r"k must be a floating-point array, got dtype complex128"):
        attention(q, k.astype(complex), v)
    with pytest.raises(TypeError, match=r"mask must be a boolean array .* got dtype int64"):
        attention(q, k, v, mask=np.ones((4, 5), dtype=np.int64))
    with pytest.raises(ValueError, match=r"q must have at least 2 dimensions"):
        attention(q[0, 0], k, v)
    with pytest.raises(ValueError, match="causal must be"):
        attention(q, k, v, causal="lower")
    with pytest.raises(ValueError, match="block_size must be positive"):
        attention(q, k, v, block_size=0)
    with pytest.raises(TypeError, match="block_size must be"):
        attention(q, k, v, block_size=2.5)
    with pytest.raises(ValueError, match="scale must be a finite"):
        attention(q, k, v, scale=np.nan)
    with pytest.raises(TypeError, match="scale must be a real"):
        attention(q, k, v, scale="big")
    with pytest.raises(ValueError, match="num_threads"):
        attention(q, k, v, num_threads=0)
    with pytest.raises(ValueError, match="implementation must be"):
        attention(q, k, v, implementation="fast")
    out, lse = attention(q, k, v, return_lse=True)
    with pytest.raises(ValueError, match=r"lse must have shape \(2, 4\)"):
        attention_vjp(q, k, v, out, lse[:, :3], out)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 4, 5\)"):
        attention_vjp(q, k, v, out, lse, out[:, :, :2])
    with pytest.raises(TypeError, match="dout must be a floating-point array"):
        attention_vjp(q, k, v, out, lse, np.ones(out.shape, dtype=int))
    with pytest.raises(ValueError, match="feature_map must be"):
        linear_attention(q, k, v, feature_map="softmax")
    with pytest.raises(TypeError, match="q must be a floating-point"):
        linear_attention(q.astype(np.int32), k, v)
    with pytest.raises(ValueError, match="dout must have the output's shape"):
        linear_attention_vjp(q, k, v, out[:, :2])
    array_api_strict = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match="implementation='numpy' needs NumPy input"):
        attention(*(array_api_strict.asarray(x) for x in (q, k, v)), implementation="numpy")


# --------------------------------------------------------------------------- linear attention
def phi(x, name="elu1"):
    x = np.asarray(x, dtype=np.float64)
    if name == "elu1":
        return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))
    return np.maximum(x, 0)


def ref_linear(q, k, v, causal=False, feature_map="elu1"):
    """float64 materialised linear attention: (phi(q) phi(k)^T masked) v / row sums."""
    w = phi(q, feature_map) @ np.swapaxes(phi(k, feature_map), -1, -2)
    vis = visible(np.shape(q)[-2], np.shape(k)[-2], causal)
    if vis is not None:
        w = np.where(vis, w, 0.0)
    den = w.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (w @ np.asarray(v, dtype=np.float64)) / np.where(den > 0, den, 1), 0.0)


def torch_linear(q, k, v, dout, causal=False, feature_map="elu1"):
    tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))

    def f(x):
        return torch.nn.functional.elu(x) + 1 if feature_map == "elu1" else torch.relu(x)

    w = f(tq) @ f(tk).transpose(-1, -2)
    vis = visible(q.shape[-2], k.shape[-2], causal)
    if vis is not None:
        w = w * torch.tensor(vis)
    den = w.sum(-1, keepdim=True)
    out = (w @ tv) / den
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), [t.grad.numpy() for t in (tq, tk, tv)]


@pytest.mark.parametrize("causal", CAUSALS)
@pytest.mark.parametrize("feature_map", ["elu1", "relu"])
@pytest.mark.parametrize(("lq", "lk", "block"), [(37, 37, 8), (20, 45, 7), (45, 20, 6), (16, 16, None), (3, 3, 1)])
def test_linear_against_materialised_and_torch_autograd(causal, feature_map, lq, lk, block):
    if feature_map == "relu":  # keep every normaliser positive
        q, k, v = (np.abs(x) + 0.1 for x in qkv(lq + lk, (2,), lq, lk, d=4, dv=3))
    else:
        q, k, v = qkv(lq + lk, (2,), lq, lk, d=4, dv=3)
    out = linear_attention(q, k, v, causal=causal, feature_map=feature_map, block_size=block)
    np.testing.assert_allclose(out, ref_linear(q, k, v, causal, feature_map), rtol=1e-12, atol=1e-13)
    dout = np.random.default_rng(0).normal(size=out.shape)
    grads = linear_attention_vjp(q, k, v, dout, causal=causal, feature_map=feature_map, block_size=block)
    if causal == "bottom_right" and lq > lk:  # rows that see nothing: 0 in ours, 0/0 in torch
        keep = slice(lq - lk, None)
        q2 = q[:, keep]
        out2, expect = torch_linear(q2, k, v, dout[:, keep], "bottom_right", feature_map)
        grads2 = linear_attention_vjp(q2, k, v, dout[:, keep], causal=causal, feature_map=feature_map, block_size=block)
        np.testing.assert_allclose(grads[0][:, keep], grads2[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(grads[1], grads2[1], rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(out[:, : lq - lk], 0.0)
        np.testing.assert_array_equal(grads[0][:, : lq - lk], 0.0)
        grads = grads2
    else:
        _, expect = torch_linear(q, k, v, dout, causal, feature_map)
    for g, e in zip(grads, expect, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_linear_finite_differences_and_broadcasting():
    q, _, _ = qkv(60, (2, 1), 9, 9, d=3, dv=2)
    _, k, v = qkv(61, (3,), 9, 9, d=3, dv=2)
    dout = np.random.default_rng(0).normal(size=(2, 3, 9, 2))

    def loss(q, k, v):
        return float(np.sum(linear_attention(q, k, v, causal=True, block_size=4) * dout))

    grads = linear_attention_vjp(q, k, v, dout, causal=True, block_size=4)
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]
    rng = np.random.default_rng(1)
    for i, g in enumerate(grads):
        direction = rng.normal(size=g.shape)
        args = [q, k, v]
        plus = [a + 1e-6 * direction if j == i else a for j, a in enumerate(args)]
        minus = [a - 1e-6 * direction if j == i else a for j, a in enumerate(args)]
        fd = (loss(*plus) - loss(*minus)) / 2e-6
        assert abs(fd - np.sum(g * direction)) <= 1e-7 * max(1.0, abs(fd))


def test_linear_dtypes_and_zero_normaliser():
    q, k, v = qkv(62, (), 6, 6, dtype=np.float32)
    assert linear_attention(q, k, v).dtype == np.float32
    assert linear_attention(q.astype(np.float16), k, v.astype(np.float16)).dtype == np.float32
    h = linear_attention(q.astype(np.float16), k.astype(np.float16), v.astype(np.float16))
    assert h.dtype == np.float16
    out = linear_attention(-np.abs(q), k, v, feature_map="relu")  # phi(q) = 0: zeros, not NaN
    np.testing.assert_array_equal(out, 0.0)
    grads = linear_attention_vjp(-np.abs(q), k, v, np.ones((6, 5), np.float32), feature_map="relu")
    assert all(np.isfinite(g).all() for g in grads)


# --------------------------------------------------------------------------- example
def test_example_runs_small(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    pytest.importorskip("matplotlib")
    path = Path(__file__).resolve().parents[1] / "examples" / "attention_linear_vs_exact.py"
    spec = importlib.util.spec_from_file_location("attention_linear_vs_exact", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--lengths", "16", "48", "--heads", "1", "--dim", "8", "--repeat", "1",
                        "--output-dir", str(tmp_path)]) == 0
    assert (tmp_path / "attention_linear_vs_exact.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "linear faster than exact (full)" in text
    rows = module.run([16, 48], heads=1, dim=8, repeat=1, seed=0)
    assert [r["L"] for r in rows] == [16, 48]
    assert all(0 < r["diff_x1"] < 10 and r["exact_full_MB"] > 0 for r in rows)


def test_demo_section():
    from softargmax.attention import demo_section

    text = demo_section()
    assert text.startswith("attention:") and "[0.0, 0.0]" in text
    err = float(text.split("float64 materialised softmax: ")[1].split()[0])
    assert err < 1e-5


@pytest.mark.parametrize("path", PATHS)
def test_non_contiguous_inputs(path):
    rng = np.random.default_rng(70)
    # JAX's (B, L, H, d) layout, swapped to (B, H, L, d) views: no copies are made
    q, k, v = (rng.standard_normal(s).swapaxes(1, 2) for s in ((3, 40, 2, 16), (3, 50, 2, 16), (3, 50, 2, 8)))
    out, lse = attention(q, k, v, causal=True, return_lse=True, implementation=path, block_size=(7, 9))
    dout = rng.standard_normal(out.shape)[..., ::-1]
    grads = attention_vjp(q, k, v, out, lse, dout, causal=True, implementation=path, block_size=(7, 9))
    expect_out, expect = torch_sdpa(*(np.ascontiguousarray(x) for x in (q, k, v)), causal=True, dout=np.ascontiguousarray(dout))
    np.testing.assert_allclose(out, expect_out, rtol=1e-12, atol=1e-13)
    for g, e in zip(grads, expect, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)
