"""numba kernels for the cross-entropy losses (NumPy input only; imported lazily).

Two families:

* ``ce_index`` / ``ce_prob``: one row of logits ``x[i, :]`` is one distribution. The
  passes over a row are those of the softmax kernels (:mod:`.core`): a vectorised max
  (which also records the max of each part of ``_PART`` entries), one pass of the
  branch-free polynomial exp summing ``n0 + rest`` (and storing the exponentials in the
  gradient when it is asked for; only the parts that hold the maximum compare each entry
  with it, to count ``n0``), and, for the gradient, one pass
  ``scale * (coef * p - t)`` while the row is still in cache; rows run in parallel.
  For logits larger than the last-level cache the exp pass, bound by its arithmetic,
  prefetches the next row of its range (and its target probabilities): the next max
  pass then reads from cache, not memory.
  Rows of fewer than ``core.SHORT`` classes run ``ce_short`` (index targets) or
  ``ce_prob_short`` (probabilities): the core short-row kernel's passes over transposed
  blocks of rows (vectorised across rows), then the loss and the gradient of the whole
  block. Each has a serial twin for small inputs.
* ``lce_fwd_*`` / ``lce_bwd_*``: one vocabulary chunk ``Z = hidden @ W[v0:v1].T`` of
  :func:`softargmax.losses.linear_cross_entropy`. The forward folds the chunk into a
  per-row online log-sum-exp state ``(m, r)`` with ``sum_c exp(x_c - m) = 1 + r``; the
  backward overwrites the chunk with its gradient. They are serial and ``nogil``: the
  chunks run on a pool of Python threads, each with its own state
  (:mod:`softargmax._threads`).

The loss of a row with target weights ``t_c >= 0`` (``A = sum_c t_c``) is

    ``A * lse - sum_c t_c x_c + z_loss * A * lse**2``,

computed as ``A * log1p(r) + sum_c t_c (m - x_c)`` so that a dominant maximum keeps full
relative accuracy, and its gradient is ``(A + 2 z_loss A lse) p - t``. Index targets
give ``t = a * ((1 - eps) onehot(y) + eps / C)`` with the row's weight ``a`` (0 for an
ignored row); probability targets ``t_c = w_c ((1 - eps) q_c + eps / C)``.

Edge rules (the same as the array-API reference in ``softargmax.losses``): a row with
``A = 0`` contributes exactly 0 loss and gradient whatever its logits hold; a NaN logit
makes its row NaN; ``+inf`` logits share the mass; a row whose logits are all ``-inf``
has infinite loss and gradient ``-t``; a ``t_c = 0`` entry never meets its ``-inf``
logit (no ``0 * inf``).

Rows whose maximum is not finite or that hold a NaN take a scalar routine with these
semantics (``_index_special`` / ``_prob_special``).

Accuracy: unlike the softmax kernels, these compute ``exp(x - m)`` from the shift
rounded once in the input's dtype (``exp32f_2p64_rounded`` in float32 lanes for
float32, ``exp64_rounded`` for float64), not carried with its rounding error: an
entry's relative error is then about ``|x - m| eps`` (the exp adds as much at most),
and ``|x - m| exp(x - m) <= 1/e`` makes each gradient entry accurate to about ``eps``
absolutely, as PyTorch's. The row's sum ``s`` errs by at most
``eps * sum_c p_c |x_c - m|`` relative, which is ``eps`` times at most the entropy of the
softmax (``<= eps log C``): ``log s``, hence the loss, by as much absolutely. This saves
the six operations per entry of the compensated shift.

The exponentials are summed in the input's dtype over parts of ``_PART = 256`` entries,
then in float64 across parts (blocks of ``SUM_BLOCK`` added with compensation). For
float32 that keeps the loop in 16 float32 SIMD lanes: a float64 accumulator halves the
width and costs a third of the time. Each part's sum is a tree of 64 vector lanes of 4
terms, so its relative error is at most about ``10 u`` (``u = 2**-24``), relative to the
sum without the maxima (``rest``): a confident row's tiny loss ``log1p(rest)`` keeps its
relative accuracy. The gradient pass also runs in the input's dtype, its coefficients
rounded to it (about ``3 u`` per entry, absolutely).

Fast math: the loops are compiled with ``reassoc`` and ``contract`` only (no ``nnan`` or
``ninf``: the NaN and infinity checks hold), which lets the sums vectorise. numba passes a
caller's fast-math flags on to each function it calls that sets none, so the functions
whose order of operations matters set ``fastmath=False``: the rows' finishes
(``_index_finish``, ``_prob_finish``: reassociated, ``z_loss * A * lse * lse`` became
``(z_loss * A) * lse**2``, which overflows where the term does not; a test covers it) and
the compensated sum ``core._two_sum_add``.

Validation happens in the public layer: the kernels assume C-contiguous arrays of one
floating dtype, in-range targets and finite, non-negative weights. Probability targets
are the exception: the ``ce_prob*`` and ``lce_fwd_prob`` kernels return each row's sum
of ``q`` (NaN for a row with a NaN or negative entry), which the public layer checks
after the call, so that ``q`` is read once.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numba.extending import overload

from ._exp import exp32f_2p64_rounded, exp64_rounded, max_skipping_nan, prefetch
from .core import (
    LOGSUMEXP,
    SUM_BLOCK,
    _finite,
    _like,
    _log_s,
    _neg_inf,
    _short_block,
    _short_scratch,
    _store_unit,
    _two_sum_add,
)

__all__ = [
    "ce_index",
    "ce_index_serial",
    "ce_prob",
    "ce_prob_serial",
    "ce_prob_short",
    "ce_prob_short_serial",
    "ce_short",
    "ce_short_serial",
    "lce_bwd_index",
    "lce_bwd_prob",
    "lce_fwd_index",
    "lce_fwd_prob",
]

_FLAGS = {"reassoc", "contract"}

# Argument kinds of the kernel signatures; inputs are read-only (NumPy read-only arrays
# are accepted, writeable ones convert), ``F`` is float32 or float64.
_KINDS = {
    "X": lambda f: nb.types.Array(f, 2, "C", readonly=True),  # F[:, ::1] input
    "G": lambda f: nb.types.Array(f, 2, "C"),  # F[:, ::1] output
    "V": lambda f: nb.types.Array(f, 1, "C", readonly=True),  # F[::1] input
    "VW": lambda f: nb.types.Array(f, 1, "C"),  # F[::1] output
    "I": lambda f: nb.types.Array(nb.int64, 1, "C", readonly=True),  # int64[::1] input
    "D": lambda f: nb.types.Array(nb.float64, 1, "C", readonly=True),  # float64[::1] input
    "DW": lambda f: nb.types.Array(nb.float64, 1, "C"),  # float64[::1] output
    "f8": lambda f: nb.float64,
    "i8": lambda f: nb.int64,
    "b1": lambda f: nb.boolean,
}


def _sigs(*kinds: str) -> list:  # type: ignore[type-arg]
    return [nb.void(*(_KINDS[k](f) for k in kinds)) for f in (nb.float32, nb.float64)]


@nb.njit(cache=True, nogil=True)
def _fill(g, value):  # type: ignore[no-untyped-def]
    for c in range(g.shape[0]):
        g[c] = value


# --------------------------------------------------------------------------- row passes
def _exp_term(d):  # type: ignore[no-untyped-def]  # pragma: no cover - numba stub
    raise NotImplementedError


@overload(_exp_term)
def _exp_term_ov(d):  # type: ignore[no-untyped-def]
    """``exp(d)`` of a rounded shift ``d = x - m`` in the dtype's own lanes, as the sums
    take it: :func:`exp32f_2p64_rounded` (times ``2**64``: ``core._store_unit``) for
    float32, :func:`exp64_rounded` for float64."""
    if d == nb.types.float32:
        return lambda d: exp32f_2p64_rounded(d)
    return lambda d: exp64_rounded(d)


@nb.njit(inline="always")
def _exp_plain(d):  # type: ignore[no-untyped-def]
    """``exp(d)``: :func:`_exp_term` scaled back."""
    return _exp_term(d) * _like(1.0 / _store_unit(d), d)


_PART = 256  # entries summed in the input's dtype before the sum is widened (module notes)
assert SUM_BLOCK % _PART == 0  # a block's parts are parts of the row (pmax's indices)


@nb.njit(inline="always")
def _prefetch_part(ahead, lo, hi):  # type: ignore[no-untyped-def]
    """Prefetch the cache lines of ``a[lo:hi]`` for each array ``a`` of the tuple ``ahead``."""
    for a in ahead:
        step = max(1, 64 // a.itemsize)  # entries per 64-byte cache line
        for j in range(lo, min(hi, a.shape[0]), step):
            prefetch(a, j)


@nb.njit(inline="always")
def _row_max_parts(x, one, pmax):  # type: ignore[no-untyped-def]
    """The row's maximum (NaN ignored, as :func:`core._row_max`), and into ``pmax`` (one
    entry per ``_PART`` entries of the row) each part's: the exp pass takes the parts
    without the maximum through its shorter loop."""
    m = _neg_inf(one)
    for p in range(pmax.shape[0]):
        pm = max_skipping_nan(x[p * _PART:(p + 1) * _PART])
        pmax[p] = pm
        m = max(m, pm)  # (pm is not NaN)
    return m


@nb.njit(inline="always")
def _part_maxima(x):  # type: ignore[no-untyped-def]
    """Scratch for :func:`_row_max_parts` over the rows of ``x`` (2-D)."""
    return np.empty(-(-x.shape[1] // _PART), dtype=x.dtype)


@nb.njit(inline="always")
def _exp_part(xs, os, one, m, store, split):  # type: ignore[no-untyped-def]
    """``(n0, part)`` of one part (module notes): with ``split`` the entries equal to the
    max are counted in ``n0`` and left out of ``part``; without, the part holds none."""
    # The loop holds only x's dtype, so float32 runs 16 AVX-512 lanes (a float64
    # accumulator in it would halve the width); without a store the terms are
    # _exp_term's, scaled back once per part by the caller. (Other loops here multiply by
    # ``one``, 1 in x's dtype as the core kernels' sign: LLVM left this loop scalar
    # without that product while it summed in float64; it vectorises now, and is faster
    # without it.)
    zero = one - one
    n0 = zero  # counts in the input's dtype: exact (parts are short), half the width
    part = zero
    for i in range(xs.shape[0]):
        y = xs[i]
        if store:
            e = _exp_plain(y - m)
            os[i] = e
        else:
            e = _exp_term(y - m)
        if split:
            top = y == m
            n0 += one if top else zero
            part += zero if top else e
        else:
            part += e
    return n0, part


@nb.njit(inline="always")
def _exp_blocks(x, one, m, out, store, ahead, pmax):  # type: ignore[no-untyped-def]
    # The parts' sums are widened to float64, and the sums of blocks of SUM_BLOCK entries
    # added with compensation. Comparing each entry with the max makes the part loop 15 %
    # (float32) to 35 % (float64) slower (AVX2): only the parts that hold it (by pmax) pay it.
    n = x.shape[0]
    unit = 1.0 if store else 1.0 / _store_unit(one)
    n0 = 0.0
    rest = 0.0
    comp = 0.0
    for lo in range(0, n, SUM_BLOCK):
        block = 0.0
        for plo in range(lo, min(n, lo + SUM_BLOCK), _PART):
            phi = min(n, plo + _PART)
            # this loop is bound by the exp's arithmetic: the next row's part is fetched
            # meanwhile, so that its max pass reads it from cache instead of memory
            _prefetch_part(ahead, plo, phi)
            xs = x[plo:phi]
            os = out[plo:phi] if store else out
            if pmax[plo // _PART] < m:
                c, part = _exp_part(xs, os, one, m, store, False)
            else:
                c, part = _exp_part(xs, os, one, m, store, True)
            n0 += np.float64(c)
            block += np.float64(part) * unit
        rest, comp = _two_sum_add(rest, comp, block)  # (fastmath=False: exact rounding)
    return n0, rest + comp


@nb.njit(inline="always")
def _row_exp(x, one, m, out, store, ahead, pmax):  # type: ignore[no-untyped-def]
    """``(n0, rest)`` of ``exp(x - m)`` over a row: the entries equal to the max (each
    ``exp(0) = 1``) and the float64 sum of the others, the sums of blocks of
    ``SUM_BLOCK`` entries added with compensation; stores each ``exp(x - m)`` in ``out``
    if ``store``. The shift is rounded once (see the module's notes). ``pmax`` holds the
    row's part maxima (:func:`_row_max_parts`); the arrays of the tuple ``ahead`` (what the
    caller reads next) are prefetched over the row's indices.

    Without the store, inlined (with the row functions that call it) into the loops over
    rows: a call per row costs the reference counts of the row's views and the arguments'
    copies, about a sixth of the time of a row of 1024 classes. The caller is compiled with
    ``fastmath=_FLAGS``, which lets the parts' sums vectorise. With the store, a call
    (:func:`_row_exp_store`).
    """
    if store:
        return _row_exp_store(x, one, m, out, ahead, pmax)
    return _exp_blocks(x, one, m, out, False, ahead, pmax)


@nb.njit(cache=True, fastmath=_FLAGS)
def _row_exp_store(x, one, m, out, ahead, pmax):  # type: ignore[no-untyped-def]
    """:func:`_row_exp` with the store, as a call. Inlined beside the loop without it (the
    store flag known only at run time), it made the float64 forward+backward 1.1-1.25x
    slower (scratch); its call costs little next to the gradient's second pass."""
    return _exp_blocks(x, one, m, out, True, ahead, pmax)


@nb.njit(cache=True, fastmath=_FLAGS)
def _row_sum_exp(x, one, m, pmax):  # type: ignore[no-untyped-def]
    """:func:`_row_exp` without a store, as a call (for callers without ``fastmath``)."""
    return _exp_blocks(x, one, m, x, False, (x[:0],), pmax)


@nb.njit(cache=True, fastmath=_FLAGS)
def _mean_below(x, m):  # type: ignore[no-untyped-def]
    """``mean_c (m - x_c)`` (the uniform part of a smoothed target), in float64; each term
    divided before it is added, so that the sum of huge terms does not overflow."""
    inv = 1.0 / x.shape[0]
    acc = 0.0
    for i in range(x.shape[0]):
        acc += (np.float64(m) - np.float64(x[i])) * inv
    return acc


@nb.njit(cache=True, fastmath=_FLAGS)
def _grad_pass(g, one, k, su):  # type: ignore[no-untyped-def]
    """``g = k * g - su`` (``g`` holds ``exp(x - m)`` or ``p``), in ``g``'s dtype. A call,
    as :func:`_row_exp_store`."""
    kk = _like(k, one)
    ss = _like(su, one)
    for c in range(g.shape[0]):
        g[c] = kk * g[c] - ss


@nb.njit(cache=True, fastmath=_FLAGS)
def _prob_targets(x, q, w, eps, m, n_classes):  # type: ignore[no-untyped-def]
    """``(A, sum_c t_c (m - x_c), sum_c q_c, n_bad)`` with the first sum over
    ``t_c != 0`` (a zero target never meets -inf),
    ``t_c = w_c ((1 - eps) q_c + eps / n_classes)``, and ``n_bad`` the number of
    entries ``q_c`` that are NaN or negative (the validation's statistics)."""
    n = x.shape[0]
    weighted = w.shape[0] > 0
    big_a = 0.0
    cross = 0.0
    total = 0.0
    n_bad = 0.0
    for c in range(n):
        qc = q[c]
        total += qc
        n_bad += 0.0 if qc >= 0 else 1.0
        t = (1.0 - eps) * qc + eps / n_classes
        if weighted:
            t *= w[c]
        big_a += t
        d = np.float64(m) - np.float64(x[c])
        cross += t * d if t != 0 else 0.0
    return big_a, cross, total, n_bad


@nb.njit(cache=True, fastmath=_FLAGS)
def _prob_grad_pass(g, q, w, eps, k, scale, n_classes, one):  # type: ignore[no-untyped-def]
    """``g = k * g - scale * t`` for probability targets, in ``g``'s dtype (as
    :func:`_grad_pass`; float32 keeps its SIMD width): ``scale * t_c`` is
    ``w_c (a q_c + b)`` with ``a = scale (1 - eps)`` and ``b = scale eps / n_classes``
    rounded to it."""
    kk = _like(k, one)
    a = _like(scale * (1.0 - eps), one)
    b = _like(scale * eps / n_classes, one)
    if w.shape[0] > 0:
        for c in range(g.shape[0]):
            g[c] = kk * g[c] - _like(w[c], one) * (a * q[c] + b)
    else:
        for c in range(g.shape[0]):
            g[c] = kk * g[c] - (a * q[c] + b)


# --------------------------------------------------------------------------- special rows
@nb.njit(cache=True, nogil=True)
def _status(x):  # type: ignore[no-untyped-def]
    """``(has_nan, number of +inf entries)`` of a row."""
    n_inf = 0
    for v in x:
        if v != v:
            return True, 0
        if v == np.inf:
            n_inf += 1
    return False, n_inf


@nb.njit(cache=True, nogil=True)
def _special_row(x, t, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    """A counted row (target weights ``t``, ``sum t > 0``) holding a NaN, a +inf or only
    -inf (empty support: every ``t_c != 0`` meets probability 0)."""
    n = x.shape[0]
    nan, n_inf = _status(x)
    if nan:
        if grad:
            _fill(g, np.nan)
        return np.nan
    # +inf entries share the mass (the limit); without any, the loss is infinite
    log_n = math.log(max(n_inf, 1))
    big_a = 0.0
    loss = 0.0
    for c in range(n):
        big_a += t[c]
        if t[c] != 0:
            loss += t[c] * log_n if (n_inf > 0 and x[c] == np.inf) else np.inf
    if zl > 0:
        loss = np.inf
    if grad:
        pin = (np.inf if zl > 0 else big_a) / n_inf if n_inf > 0 else 0.0
        for c in range(n):
            g[c] = scale * (pin - t[c]) if (n_inf > 0 and x[c] == np.inf) else -scale * t[c]
    return loss


@nb.njit(cache=True, nogil=True)
def _index_special(x, y, a, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    """:func:`_special_row` for class index ``y`` with weight ``a > 0``."""
    n = x.shape[0]
    t = np.full(n, a * eps / n)
    t[y] += a * (1.0 - eps)
    return _special_row(x, t, zl, scale, g, grad)


@nb.njit(cache=True, nogil=True)
def _prob_special(x, q, w, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    """:func:`_special_row` for probability targets ``q`` and class weights ``w``."""
    n = x.shape[0]
    t = np.empty(n)
    for c in range(n):
        t[c] = (1.0 - eps) * q[c] + eps / n
        if w.shape[0] > 0:
            t[c] *= w[c]
    return _special_row(x, t, zl, scale, g, grad)


# --------------------------------------------------------------------------- rows
@nb.njit(inline="always")
def _weight(a, i):  # type: ignore[no-untyped-def]
    """Row ``i``'s weight: ``a[i]``, or 1 where ``a`` is empty (no class weights and no
    ignored rows: a million short rows need no array of ones)."""
    return a[i] if a.shape[0] > 0 else 1.0


@nb.njit(cache=True, error_model="numpy", fastmath=False)  # (n > 0: no division check)
def _index_finish(x_y, below, n, a, eps, zl, scale, m, log_s):  # type: ignore[no-untyped-def]
    """Loss of a normal row of ``n`` classes from its max ``m``, ``log s``, its target's
    logit ``x_y`` and ``below = mean_c (m - x_c)`` (0 unless ``eps > 0``), and the
    gradient's coefficients ``(k, su, sy)``: the gradient is ``k * exp(x - m) / s - su``,
    minus ``sy`` at the target. Branch-free (selects only), so that the short-row kernel's
    loop over the rows of a block runs in SIMD lanes; a row of weight 0 gets 0. Without
    fast math (see the module's notes)."""
    mr = np.float64(m)
    keep = 1.0 - eps
    t = log_s + (keep * (mr - np.float64(x_y)) if keep != 0 else 0.0) + eps * below
    lse = mr + log_s
    z = zl * a * lse * lse if zl > 0 else 0.0  # (lse**2 may overflow where zl = 0)
    loss = a * t + z if a != 0 else 0.0
    return loss, scale * (a + 2.0 * zl * a * lse), scale * a * eps / n, scale * a * keep


@nb.njit(cache=True, error_model="numpy", fastmath=False)  # (s > 0: no division check)
def _prob_finish(big_a, cross, m, log_s, zl, scale, s):  # type: ignore[no-untyped-def]
    """Loss of a normal row with probability targets from ``A = sum_c t_c``,
    ``cross = sum_c t_c (m - x_c)``, its max ``m``, ``log s`` and the divisor ``s`` of its
    exps, and the gradient's coefficient ``k``: the gradient is ``k * exp(x - m) - scale t``.
    As :func:`_index_finish`, branch-free and without fast math (see the module's notes)."""
    lse = np.float64(m) + log_s
    z = zl * big_a * lse * lse if zl > 0 else 0.0  # (lse**2 may overflow where zl = 0)
    return big_a * log_s + cross + z, scale * (big_a + 2.0 * zl * big_a * lse) / s


@nb.njit(inline="always")
def _index_row(x, y, a, eps, zl, scale, g, grad, one, ahead, pmax):  # type: ignore[no-untyped-def]
    """Loss (returned) and, if ``grad``, gradient (into ``g``) of one row, class index ``y``;
    prefetches the tuple of arrays ``ahead`` (the next row) as it goes."""
    if a == 0:
        if grad:
            _fill(g, 0.0)
        return 0.0
    m = _row_max_parts(x, one, pmax)
    if not _finite(m):
        return _index_special(x, y, a, eps, zl, scale, g, grad)
    n0, rest = _row_exp(x, one, m, g, grad, ahead, pmax)
    if rest != rest:
        return _index_special(x, y, a, eps, zl, scale, g, grad)
    below = _mean_below(x, m) if eps > 0 else 0.0
    loss, k, su, sy = _index_finish(x[y], below, x.shape[0], a, eps, zl, scale, m, _log_s(n0, rest))
    if grad:
        _grad_pass(g, one, k / (n0 + rest), su)
        g[y] -= sy
    return loss


@nb.njit(inline="always")
def _prob_row(x, q, w, eps, zl, scale, g, grad, one, ahead, pmax):  # type: ignore[no-untyped-def]
    """As :func:`_index_row` for probability targets ``q`` and class weights ``w``;
    returns ``(loss, sum_c q_c)``, the sum NaN if an entry of ``q`` is NaN or negative."""
    m = _row_max_parts(x, one, pmax)
    big_a, cross, total, n_bad = _prob_targets(x, q, w, eps, m if _finite(m) else one - one, x.shape[0])
    if n_bad > 0:
        total = np.nan
    if big_a == 0:
        if grad:
            _fill(g, 0.0)
        return 0.0, total
    if not _finite(m):
        return _prob_special(x, q, w, eps, zl, scale, g, grad), total
    n0, rest = _row_exp(x, one, m, g, grad, ahead, pmax)
    if rest != rest:
        return _prob_special(x, q, w, eps, zl, scale, g, grad), total
    loss, k = _prob_finish(big_a, cross, m, _log_s(n0, rest), zl, scale, n0 + rest)
    if grad:
        _prob_grad_pass(g, q, w, eps, k, scale, x.shape[0], one)
    return loss, total


@nb.njit(cache=True, fastmath=_FLAGS)  # (the row functions are inlined: see _row_exp)
def _index_rows(x, y, a, eps, zl, scale, loss, g, grad, ahead, r0, r1):  # type: ignore[no-untyped-def]
    one = np.ones(1, dtype=x.dtype)[0]
    empty = np.empty(0, dtype=x.dtype)
    pmax = _part_maxima(x)
    for i in range(r0, r1):
        gi = g[i] if grad else empty
        nxt = x[i + 1] if ahead and i + 1 < r1 else x[i, :0]
        loss[i] = _index_row(x[i], y[i], _weight(a, i), eps, zl, scale, gi, grad, one, (nxt,), pmax)


@nb.njit(cache=True, fastmath=_FLAGS)  # (the row functions are inlined: see _row_exp)
def _prob_rows(x, q, w, eps, zl, scale, loss, qsum, g, grad, ahead, r0, r1):  # type: ignore[no-untyped-def]
    one = np.ones(1, dtype=x.dtype)[0]
    empty = np.empty(0, dtype=x.dtype)
    pmax = _part_maxima(x)
    for i in range(r0, r1):
        gi = g[i] if grad else empty
        nxt = (x[i + 1], q[i + 1]) if ahead and i + 1 < r1 else (x[i, :0], q[i, :0])
        loss[i], qsum[i] = _prob_row(x[i], q[i], w, eps, zl, scale, gi, grad, one, nxt, pmax)


@nb.njit(inline="always")
def _normal(m, rest, r):  # type: ignore[no-untyped-def]
    """Row ``r`` of a short block has a finite max and a sum that is not NaN (the others
    are redone by the special-row routines)."""
    return _finite(m[r]) and rest[r] == rest[r]


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")  # (special rows divide by 0: redone)
def _short_ce_tasks(x, y, a, eps, zl, scale, loss, g, grad, rpb, b0, b1):  # type: ignore[no-untyped-def]
    """Blocks ``b0..b1`` of ``rpb`` short rows (class indices): the core short-row
    kernel's logsumexp passes over a transposed block (:func:`.core._short_block`:
    max, the exps of the shift rounded once, ``(n0, rest)``), then the loss and the
    gradient's coefficients of all the block's rows in loops vectorised across rows, and
    the gradient ``k * exp(x - m) - su`` (``- sy`` at the target) from the block's exps,
    transposed back in one loop. Rows with NaN, ``+inf`` or no finite max are redone by
    :func:`_index_special`; a row of weight 0 gets 0 whatever its logits hold."""
    nrow, k = x.shape
    one = np.ones(1, dtype=x.dtype)[0]
    big = _store_unit(one)  # float32 exps are summed and kept times 2**64
    xflat = x.reshape(nrow * k)
    gflat = g.reshape(g.size)
    xt, et, m, mm, n0, rest = _short_scratch(x, rpb)
    below = np.zeros(rpb)
    xy = np.empty(rpb)
    ls = np.empty(rpb)
    kc = np.empty(rpb)
    su = np.empty(rpb)
    sy = np.empty(rpb)
    yb = np.empty(rpb, dtype=np.int64)
    empty = np.empty(0, dtype=x.dtype)
    for b in range(b0, b1):
        r0 = b * rpb
        r1 = min(nrow, r0 + rpb)
        nr = r1 - r0
        _short_block(xflat[r0 * k:r1 * k], one, 1.0, 0.0, LOGSUMEXP, nr, k, xt, et, m, mm, n0, rest)
        for r in range(nr):
            yb[r] = y[r0 + r]
            xy[r] = xt[yb[r] * nr + r]
        if eps > 0:  # mean_c (m - x_c), the uniform part of the smoothed target
            inv = 1.0 / k
            for r in range(nr):
                below[r] = 0.0
            for j in range(k):
                xj = xt[j * nr:(j + 1) * nr]
                for r in range(nr):
                    below[r] += (np.float64(mm[r]) - np.float64(xj[r])) * inv
        for r in range(nr):  # a loop of its own, as in the core: vectorised
            rest[r] /= big
            ls[r] = _log_s(n0[r], rest[r])
        for r in range(nr):  # across rows in SIMD lanes (_index_finish has no branches)
            loss[r0 + r], kr, su[r], sy[r] = _index_finish(xy[r], below[r], k, _weight(a, r0 + r), eps, zl, scale,
                                                           mm[r], ls[r])
            kc[r] = kr / ((n0[r] + rest[r]) * big)
        special = False
        for r in range(nr):
            special |= not _normal(m, rest, r)
        if grad:
            of = gflat[r0 * k:r1 * k]
            for j in range(k):
                ej = et[j * nr:(j + 1) * nr]
                for r in range(nr):
                    of[r * k + j] = ej[r] * kc[r] - su[r]
            for r in range(nr):  # the target's term, apart: a select in the loop above costs 2x
                of[r * k + yb[r]] -= sy[r]
        if special:
            for r in range(r0, r1):
                if not _normal(m, rest, r - r0):
                    gi = g[r] if grad else empty
                    ar = _weight(a, r)
                    if ar == 0:
                        loss[r] = 0.0
                        if grad:
                            _fill(gi, 0.0)
                    else:
                        loss[r] = _index_special(x[r], y[r], ar, eps, zl, scale, gi, grad)


@nb.njit(cache=True, fastmath=_FLAGS, error_model="numpy")  # (special rows divide by 0: redone)
def _short_prob_tasks(x, q, w, eps, zl, scale, loss, qsum, g, grad, rpb, b0, b1):  # type: ignore[no-untyped-def]
    """:func:`_short_ce_tasks` for probability targets ``q`` and class weights ``w`` (or
    empty): after the core passes over a transposed block, the targets
    ``t_c = w_c ((1 - eps) q_c + eps / K)``, their total ``A`` and the cross term
    ``sum_c t_c (m - x_c)`` (over ``t_c != 0``) in loops across the block's rows, with
    the row sums of ``q`` (NaN for a row with a NaN or negative entry), then the
    loss ``A log s + cross (+ z_loss A lse**2)`` and the gradient
    ``k exp(x - m) - scale t``. Rows with NaN, ``+inf`` or no finite max are redone by
    :func:`_prob_special`; a row with ``A = 0`` gets 0 whatever its logits hold."""
    nrow, k = x.shape
    one = np.ones(1, dtype=x.dtype)[0]
    big = _store_unit(one)  # float32 exps are summed and kept times 2**64
    xflat = x.reshape(nrow * k)
    qflat = q.reshape(nrow * k)
    gflat = g.reshape(g.size)
    xt, et, m, mm, n0, rest = _short_scratch(x, rpb)
    tt = np.empty(rpb * k)  # the block's targets, transposed as xt
    qt = np.empty(rpb * k, dtype=q.dtype)  # the block's q, transposed as xt
    big_a = np.empty(rpb)
    cross = np.empty(rpb)
    total = np.empty(rpb)
    n_bad = np.empty(rpb)
    kc = np.empty(rpb)
    weighted = w.shape[0] > 0
    keep = 1.0 - eps
    uniform = eps / k
    empty = np.empty(0, dtype=x.dtype)
    for b in range(b0, b1):
        r0 = b * rpb
        r1 = min(nrow, r0 + rpb)
        nr = r1 - r0
        _short_block(xflat[r0 * k:r1 * k], one, 1.0, 0.0, LOGSUMEXP, nr, k, xt, et, m, mm, n0, rest)
        qf = qflat[r0 * k:r1 * k]
        for j in range(k):  # transposed as x (a loop of its own: strided reads)
            qj = qt[j * nr:(j + 1) * nr]
            for r in range(nr):
                qj[r] = qf[r * k + j]
        for r in range(nr):
            big_a[r] = 0.0
            cross[r] = 0.0
            total[r] = 0.0
            n_bad[r] = 0.0
        for j in range(k):
            wj = w[j] if weighted else 1.0
            xj = xt[j * nr:(j + 1) * nr]
            qj = qt[j * nr:(j + 1) * nr]
            tj = tt[j * nr:(j + 1) * nr]
            for r in range(nr):
                qv = qj[r]
                total[r] += qv
                n_bad[r] += 0.0 if qv >= 0 else 1.0
                t = (keep * qv + uniform) * wj
                tj[r] = t
                big_a[r] += t
                d = np.float64(mm[r]) - np.float64(xj[r])
                cross[r] += t * d if t != 0 else 0.0  # (a zero target never meets -inf)
        for r in range(nr):
            qsum[r0 + r] = total[r] if n_bad[r] == 0 else np.nan
        for r in range(nr):  # a loop of its own, as in the core: vectorised
            rest[r] /= big
            s = (n0[r] + rest[r]) * big
            lo, kc[r] = _prob_finish(big_a[r], cross[r], mm[r], _log_s(n0[r], rest[r]), zl, scale, s)
            loss[r0 + r] = lo if big_a[r] != 0 else 0.0
        special = False
        for r in range(nr):
            special |= not _normal(m, rest, r)
        if grad:
            of = gflat[r0 * k:r1 * k]
            for j in range(k):
                ej = et[j * nr:(j + 1) * nr]
                tj = tt[j * nr:(j + 1) * nr]
                for r in range(nr):
                    of[r * k + j] = ej[r] * kc[r] - scale * tj[r]
        if special:
            for r in range(r0, r1):
                if not _normal(m, rest, r - r0):
                    gi = g[r] if grad else empty
                    if big_a[r - r0] == 0:
                        loss[r] = 0.0
                        if grad:
                            _fill(gi, 0.0)
                    else:
                        loss[r] = _prob_special(x[r], q[r], w, eps, zl, scale, gi, grad)


# --------------------------------------------------------------------------- cross_entropy
_CE_INDEX = ("X", "I", "D", "f8", "f8", "f8", "DW", "G", "b1")
_CE_PROB = ("X", "X", "D", "f8", "f8", "f8", "DW", "DW", "G", "b1")


@nb.njit(_sigs(*_CE_INDEX, "b1", "i8"), cache=True, parallel=True)
def ce_index(x, y, a, eps, zl, scale, loss, g, grad, ahead, ntask):  # type: ignore[no-untyped-def]
    """Per-row loss (into ``loss``) and, if ``grad``, gradient (into ``g``) for class indices.

    ``a[i]`` is the row's weight (the class weight of its target, 0 for an ignored row);
    an empty ``a`` weighs every row 1. With ``ahead`` each row's exp pass prefetches the
    next row: for logits read from memory, not from cache (where it costs time).
    Rows are split into ``ntask`` parallel ranges.
    """
    n = x.shape[0]
    for t in nb.prange(ntask):
        _index_rows(x, y, a, eps, zl, scale, loss, g, grad, ahead, t * n // ntask, (t + 1) * n // ntask)


@nb.njit(_sigs(*_CE_INDEX, "b1"), cache=True)
def ce_index_serial(x, y, a, eps, zl, scale, loss, g, grad, ahead):  # type: ignore[no-untyped-def]
    """:func:`ce_index` on the calling thread."""
    _index_rows(x, y, a, eps, zl, scale, loss, g, grad, ahead, 0, x.shape[0])


@nb.njit(_sigs(*_CE_PROB, "b1", "i8"), cache=True, parallel=True)
def ce_prob(x, q, w, eps, zl, scale, loss, qsum, g, grad, ahead, ntask):  # type: ignore[no-untyped-def]
    """As :func:`ce_index` for probability targets ``q`` and class weights ``w`` (or empty).

    Also writes the validation's statistics: ``qsum[i]`` is the sum of row ``q[i]``, NaN
    if the row holds a NaN or negative entry (the caller checks them after the call:
    ``q`` is read once).
    """
    n = x.shape[0]
    for t in nb.prange(ntask):
        _prob_rows(x, q, w, eps, zl, scale, loss, qsum, g, grad, ahead, t * n // ntask, (t + 1) * n // ntask)


@nb.njit(_sigs(*_CE_PROB, "b1"), cache=True)
def ce_prob_serial(x, q, w, eps, zl, scale, loss, qsum, g, grad, ahead):  # type: ignore[no-untyped-def]
    """:func:`ce_prob` on the calling thread."""
    _prob_rows(x, q, w, eps, zl, scale, loss, qsum, g, grad, ahead, 0, x.shape[0])


@nb.njit(_sigs(*_CE_INDEX, "i8", "i8"), cache=True, parallel=True)
def ce_short(x, y, a, eps, zl, scale, loss, g, grad, rpb, ntask):  # type: ignore[no-untyped-def]
    """:func:`ce_index` for rows shorter than ``core.SHORT``, in blocks of ``rpb`` rows
    (:func:`_short_ce_tasks`) split into ``ntask`` parallel ranges."""
    nb_ = -(-x.shape[0] // rpb)
    for t in nb.prange(ntask):
        _short_ce_tasks(x, y, a, eps, zl, scale, loss, g, grad, rpb, t * nb_ // ntask, (t + 1) * nb_ // ntask)


@nb.njit(_sigs(*_CE_INDEX, "i8"), cache=True)
def ce_short_serial(x, y, a, eps, zl, scale, loss, g, grad, rpb):  # type: ignore[no-untyped-def]
    """:func:`ce_short` on the calling thread."""
    _short_ce_tasks(x, y, a, eps, zl, scale, loss, g, grad, rpb, 0, -(-x.shape[0] // rpb))


@nb.njit(_sigs(*_CE_PROB, "i8", "i8"), cache=True, parallel=True)
def ce_prob_short(x, q, w, eps, zl, scale, loss, qsum, g, grad, rpb, ntask):  # type: ignore[no-untyped-def]
    """:func:`ce_prob` for rows shorter than ``core.SHORT``, in blocks of ``rpb`` rows
    (:func:`_short_prob_tasks`) split into ``ntask`` parallel ranges."""
    nb_ = -(-x.shape[0] // rpb)
    for t in nb.prange(ntask):
        _short_prob_tasks(x, q, w, eps, zl, scale, loss, qsum, g, grad, rpb, t * nb_ // ntask, (t + 1) * nb_ // ntask)


@nb.njit(_sigs(*_CE_PROB, "i8"), cache=True)
def ce_prob_short_serial(x, q, w, eps, zl, scale, loss, qsum, g, grad, rpb):  # type: ignore[no-untyped-def]
    """:func:`ce_prob_short` on the calling thread."""
    _short_prob_tasks(x, q, w, eps, zl, scale, loss, qsum, g, grad, rpb, 0, -(-x.shape[0] // rpb))


# --------------------------------------------------------------------------- linear_cross_entropy
@nb.njit(cache=True, fastmath=_FLAGS)
def _add_bias(z, b):  # type: ignore[no-untyped-def]
    for c in range(z.shape[0]):
        z[c] += b[c]


@nb.njit(cache=True)
def _chunk_row(z, b, one, i, m, r, pmax):  # type: ignore[no-untyped-def]
    """Add the bias to row ``i`` of the chunk (in place) and fold the row into the state
    ``(m[i], r[i])``, ``sum exp(x - m[i]) = 1 + r[i]`` over the classes seen so far
    (``pmax``: :func:`_part_maxima` of the chunk)."""
    zr = z[i]
    if b.shape[0] > 0:
        _add_bias(zr, b)
    cm = _row_max_parts(zr, one, pmax)
    if cm == -np.inf:  # only -inf and NaN: no mass, unless a NaN makes the row NaN
        nan, _ = _status(zr)
        if nan:
            r[i] = np.nan
        return
    if cm == np.inf:
        r[i] = np.nan  # overflowed logits: the row is NaN
        return
    mi = m[i]
    new_max = cm > mi
    top = cm if new_max else mi
    n0, rest = _row_sum_exp(zr, one, top, pmax)
    if new_max:
        # the old sum 1 + r moves to the new maximum; this chunk holds n0 >= 1 maxima
        r[i] = (r[i] + 1.0) * math.exp(np.float64(mi) - np.float64(cm)) + ((n0 - 1.0) + rest)
        m[i] = cm
    else:
        r[i] += n0 + rest


@nb.njit(cache=True, fastmath=_FLAGS)
def _sum(z):  # type: ignore[no-untyped-def]
    acc = 0.0
    for c in range(z.shape[0]):
        acc += z[c]
    return acc


@nb.njit(cache=True, fastmath=_FLAGS)
def _exp_grad_pass(z, one, m, k, su):  # type: ignore[no-untyped-def]
    """``z = k * exp(z - m) - su`` in place."""
    kk = _like(k, one)
    ss = _like(su, one)
    for c in range(z.shape[0]):
        z[c] = kk * _exp_plain(z[c] * one - m) - ss  # * one: see _exp_part


@nb.njit(
    _sigs("G", "V", "i8", "I", "D", "f8", "VW", "DW", "DW", "DW"),
    cache=True, nogil=True,
)
def lce_fwd_index(z, b, v0, y, a, eps, m, r, xy, sx):  # type: ignore[no-untyped-def]
    """Fold the chunk ``z + b`` (classes ``v0 .. v0 + z.shape[1]``) into the row states.

    ``z`` is overwritten by ``z + b``. ``xy[i]`` receives the target's logit when the
    target lies in the chunk; ``sx[i]`` accumulates the sum of the logits (only when
    ``eps > 0``). Rows with ``a[i] == 0`` are skipped.
    """
    n = z.shape[1]
    one = np.ones(1, dtype=z.dtype)[0]
    pmax = _part_maxima(z)
    for i in range(z.shape[0]):
        if a[i] == 0:
            continue
        _chunk_row(z, b, one, i, m, r, pmax)
        yc = y[i] - v0
        if 0 <= yc < n:
            xy[i] = z[i, yc]
        if eps > 0:
            sx[i] += _sum(z[i])


@nb.njit(
    _sigs("G", "V", "i8", "X", "D", "f8", "i8", "VW", "DW", "DW", "DW", "DW"),
    cache=True, nogil=True,
)
def lce_fwd_prob(z, b, v0, q, w, eps, n_classes, m, r, big_a, tx, qs):  # type: ignore[no-untyped-def]
    """Probability-target version of :func:`lce_fwd_index`.

    Accumulates ``big_a[i] += sum_c t_c`` and ``tx[i] += sum_c t_c x_c`` (``t_c != 0``
    only) with ``t_c = w_c ((1 - eps) q_c + eps / n_classes)``, and for the validation
    ``qs[i] += sum_c q_c`` (NaN if an entry is NaN or negative).
    """
    n = z.shape[1]
    one = np.ones(1, dtype=z.dtype)[0]
    wc = w[v0:v0 + n] if w.shape[0] > 0 else w
    pmax = _part_maxima(z)
    for i in range(z.shape[0]):
        _chunk_row(z, b, one, i, m, r, pmax)
        sa, minus_tx, total, n_bad = _prob_targets(z[i], q[i, v0:v0 + n], wc, eps, one - one, n_classes)
        big_a[i] += sa
        tx[i] -= minus_tx
        qs[i] += total if n_bad == 0 else np.nan


@nb.njit(
    _sigs("G", "V", "i8", "I", "D", "f8", "i8", "V", "D", "D", "f8"),
    cache=True, nogil=True,
)
def lce_bwd_index(z, b, v0, y, a, eps, n_classes, m, s, k, scale):  # type: ignore[no-untyped-def]
    """Overwrite the chunk with its gradient ``k p - scale t``, ``p = exp(x - m) / s``.

    ``m[i]`` is the row's maximum logit (in the chunk's dtype), ``s[i]`` the sum of
    ``exp(x - m)`` over all classes and ``k[i] = scale * (A + 2 z_loss A lse)`` the
    row's softmax coefficient.
    """
    n = z.shape[1]
    has_b = b.shape[0] > 0
    one = np.ones(1, dtype=z.dtype)[0]
    for i in range(z.shape[0]):
        ai = a[i]
        if ai == 0:
            _fill(z[i], 0.0)
            continue
        if has_b:
            _add_bias(z[i], b)
        _exp_grad_pass(z[i], one, m[i], k[i] / s[i], scale * ai * eps / n_classes)
        yc = y[i] - v0
        if 0 <= yc < n:
            z[i, yc] -= scale * ai * (1.0 - eps)


@nb.njit(
    _sigs("G", "V", "i8", "X", "D", "f8", "i8", "D", "V", "D", "D", "f8"),
    cache=True, nogil=True,
)
def lce_bwd_prob(z, b, v0, q, w, eps, n_classes, big_a, m, s, k, scale):  # type: ignore[no-untyped-def]
    """Probability-target version of :func:`lce_bwd_index` (rows with ``big_a == 0`` are 0)."""
    n = z.shape[1]
    has_b = b.shape[0] > 0
    one = np.ones(1, dtype=z.dtype)[0]
    wc = w[v0:v0 + n] if w.shape[0] > 0 else w
    for i in range(z.shape[0]):
        if big_a[i] == 0:
            _fill(z[i], 0.0)
            continue
        if has_b:
            _add_bias(z[i], b)
        _exp_grad_pass(z[i], one, m[i], 1.0, 0.0)
        _prob_grad_pass(z[i], q[i, v0:v0 + n], wc, eps, k[i] / s[i], scale, n_classes, one)
