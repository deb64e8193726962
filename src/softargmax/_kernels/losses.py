"""numba kernels for the cross-entropy losses (NumPy input only; imported lazily).

Two families:

* ``ce_index`` / ``ce_prob`` (and ``ce_index_short`` for rows of a few classes): one row
  of logits ``x[i, :]`` is one distribution. Each row is read from memory once (the
  passes over a row after the first hit the cache), the loss and, when asked, the
  gradient ``scale * (coef * p - t)`` are written in the same call, rows run in
  parallel.
* ``lce_fwd_*`` / ``lce_bwd_*``: one vocabulary chunk ``Z = hidden @ W[v0:v1].T`` of
  :func:`softargmax.losses.linear_cross_entropy`. The forward folds the chunk into a
  per-row online log-sum-exp state ``(m, r)`` with ``sum_c exp(x_c - m) = 1 + r``; the
  backward overwrites the chunk with its gradient.

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

The exponential is the single function :func:`_exp` (``math.exp``, scalar). A
vectorisable polynomial exp can replace it there without touching the kernels.

Validation happens in the public layer: the kernels assume C-contiguous arrays of one
floating dtype, in-range targets and finite, non-negative weights.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = [
    "SHORT_ROW",
    "ce_index",
    "ce_index_short",
    "ce_prob",
    "lce_bwd_index",
    "lce_bwd_prob",
    "lce_fwd_index",
    "lce_fwd_prob",
]

# Rows of at most this many classes go to ``ce_index_short``.
SHORT_ROW = 32



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
def _exp(v):  # type: ignore[no-untyped-def]
    """The one exponential of this module (swap for a vectorisable one here)."""
    return math.exp(v)


# --------------------------------------------------------------------------- helpers
@nb.njit(cache=True, nogil=True)
def _row_max(x, i):  # type: ignore[no-untyped-def]
    """``(max, has_nan)`` of row ``i`` (a non-empty row), the max in ``x``'s dtype."""
    n = x.shape[1]
    m = x[i, 0]
    nan = False
    for c in range(n):
        v = x[i, c]
        if v > m:
            m = v
        elif v != v:
            nan = True
    return m, nan


@nb.njit(cache=True, nogil=True)
def _fill(g, i, value):  # type: ignore[no-untyped-def]
    for c in range(g.shape[1]):
        g[i, c] = value


@nb.njit(cache=True, nogil=True)
def _inf_row_index(x, i, y, a, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    """A row whose maximum is +inf: the +inf entries share the mass (the limit)."""
    n = x.shape[1]
    n_inf = 0
    for c in range(n):
        if x[i, c] == np.inf:
            n_inf += 1
    log_n = math.log(n_inf)
    u = a * eps / n
    ty = a * (1.0 - eps) + u
    loss = 0.0
    for c in range(n):
        t = ty if c == y else u
        if t != 0:
            loss += t * log_n if x[i, c] == np.inf else np.inf
    if zl > 0:
        loss = np.inf
    if grad:
        coef = np.inf if zl > 0 else a
        pin = coef / n_inf
        for c in range(n):
            t = ty if c == y else u
            g[i, c] = scale * (pin - t) if x[i, c] == np.inf else -scale * t
    return loss


@nb.njit(cache=True, nogil=True)
def _inf_row_prob(x, q, w, i, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    n = x.shape[1]
    n_inf = 0
    for c in range(n):
        if x[i, c] == np.inf:
            n_inf += 1
    log_n = math.log(n_inf)
    loss = 0.0
    big_a = 0.0
    for c in range(n):
        t = (1.0 - eps) * q[i, c] + eps / n
        if w.shape[0] > 0:
            t *= w[c]
        big_a += t
        if t != 0:
            loss += t * log_n if x[i, c] == np.inf else np.inf
    if big_a == 0:
        if grad:
            _fill(g, i, 0.0)
        return 0.0
    if zl > 0:
        loss = np.inf
    if grad:
        coef = np.inf if zl > 0 else big_a
        pin = coef / n_inf
        for c in range(n):
            t = (1.0 - eps) * q[i, c] + eps / n
            if w.shape[0] > 0:
                t *= w[c]
            g[i, c] = scale * (pin - t) if x[i, c] == np.inf else -scale * t
    return loss


# --------------------------------------------------------------------------- rows
@nb.njit(cache=True, nogil=True)
def _index_row(x, i, y, a, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    n = x.shape[1]
    if a == 0:
        if grad:
            _fill(g, i, 0.0)
        return 0.0
    m, nan = _row_max(x, i)
    if nan:
        if grad:
            _fill(g, i, np.nan)
        return np.nan
    u = a * eps / n
    ty = a * (1.0 - eps)
    if m == -np.inf:  # empty support: the target has probability 0
        if grad:
            for c in range(n):
                g[i, c] = -scale * u
            g[i, y] -= scale * ty
        return np.inf
    if m == np.inf:
        return _inf_row_index(x, i, y, a, eps, zl, scale, g, grad)
    rest = 0.0
    n0 = 0
    dsum = 0.0
    for c in range(n):
        d = x[i, c] - m
        if d == 0:
            n0 += 1
            e = d + 1
        else:
            e = _exp(d)
            rest += e
        if grad:
            g[i, c] = e
        if eps > 0:
            dsum -= d
    log_s = math.log1p((n0 - 1) + rest)
    dy = m - x[i, y]
    loss = log_s
    if eps < 1:
        loss += (1.0 - eps) * dy
    if eps > 0:
        loss += eps * (dsum / n)
    loss *= a
    lse = m + log_s
    if zl > 0:
        loss += zl * a * lse * lse
    if grad:
        k = scale * (a + 2.0 * zl * a * lse) / (n0 + rest)
        su = scale * u
        for c in range(n):
            g[i, c] = k * g[i, c] - su
        g[i, y] -= scale * ty
    return loss


@nb.njit(cache=True, nogil=True)
def _prob_row(x, q, w, i, eps, zl, scale, g, grad):  # type: ignore[no-untyped-def]
    n = x.shape[1]
    weighted = w.shape[0] > 0
    m, nan = _row_max(x, i)
    big_a = 0.0
    for c in range(n):
        t = (1.0 - eps) * q[i, c] + eps / n
        if weighted:
            t *= w[c]
        big_a += t
    if big_a == 0:
        if grad:
            _fill(g, i, 0.0)
        return 0.0
    if nan:
        if grad:
            _fill(g, i, np.nan)
        return np.nan
    if m == np.inf:
        return _inf_row_prob(x, q, w, i, eps, zl, scale, g, grad)
    if m == -np.inf:
        if grad:
            for c in range(n):
                t = (1.0 - eps) * q[i, c] + eps / n
                if weighted:
                    t *= w[c]
                g[i, c] = -scale * t
        return np.inf
    rest = 0.0
    n0 = 0
    cross = 0.0
    for c in range(n):
        d = x[i, c] - m
        if d == 0:
            n0 += 1
            e = d + 1
        else:
            e = _exp(d)
            rest += e
        if grad:
            g[i, c] = e
        t = (1.0 - eps) * q[i, c] + eps / n
        if weighted:
            t *= w[c]
        if t != 0:
            cross -= t * d
    log_s = math.log1p((n0 - 1) + rest)
    loss = big_a * log_s + cross
    lse = m + log_s
    if zl > 0:
        loss += zl * big_a * lse * lse
    if grad:
        k = scale * (big_a + 2.0 * zl * big_a * lse) / (n0 + rest)
        for c in range(n):
            t = (1.0 - eps) * q[i, c] + eps / n
            if weighted:
                t *= w[c]
            g[i, c] = k * g[i, c] - scale * t
    return loss


# --------------------------------------------------------------------------- cross_entropy
@nb.njit(_sigs("X", "I", "D", "f8", "f8", "f8", "DW", "G", "b1"), cache=True, nogil=True, parallel=True)
def ce_index(x, y, a, eps, zl, scale, loss, g, grad):  # type: ignore[no-untyped-def]
    """Per-row loss (into ``loss``) and, if ``grad``, gradient (into ``g``) for class indices.

    ``a[i]`` is the row's weight (the class weight of its target, 0 for an ignored row).
    """
    for i in nb.prange(x.shape[0]):
        loss[i] = _index_row(x, i, y[i], a[i], eps, zl, scale, g, grad)


@nb.njit(
    _sigs("X", "X", "D", "f8", "f8", "f8", "DW", "G", "b1"), cache=True, nogil=True, parallel=True
)
def ce_prob(x, q, w, eps, zl, scale, loss, g, grad):  # type: ignore[no-untyped-def]
    """As :func:`ce_index` for probability targets ``q`` and class weights ``w`` (or empty)."""
    for i in nb.prange(x.shape[0]):
        loss[i] = _prob_row(x, q, w, i, eps, zl, scale, g, grad)


_BLOCK = 256


@nb.njit(_sigs("X", "I", "D", "f8", "f8", "f8", "DW", "G", "b1"), cache=True, nogil=True, parallel=True)
def ce_index_short(x, y, a, eps, zl, scale, loss, g, grad):  # type: ignore[no-untyped-def]
    """:func:`ce_index` for rows of at most :data:`SHORT_ROW` classes.

    Rows go in blocks of 256 per parallel task (less scheduling per row), each row is
    loaded once into a small buffer and its exponentials are kept there, so the
    logits are read once and the gradient written once. Rows with a non-finite
    maximum take the general path.
    """
    n_rows, n = x.shape
    n_blocks = (n_rows + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        buf = np.empty(SHORT_ROW, dtype=x.dtype)
        for i in range(blk * _BLOCK, min(n_rows, (blk + 1) * _BLOCK)):
            ai = a[i]
            if ai == 0 or n == 0:
                loss[i] = _index_row(x, i, y[i], ai, eps, zl, scale, g, grad)
                continue
            m = x[i, 0]
            nan = False
            for c in range(n):
                v = x[i, c]
                buf[c] = v
                if v > m:
                    m = v
                elif v != v:
                    nan = True
            if nan or m == np.inf or m == -np.inf:
                loss[i] = _index_row(x, i, y[i], ai, eps, zl, scale, g, grad)
                continue
            rest = 0.0
            n0 = 0
            dsum = 0.0
            for c in range(n):
                d = buf[c] - m
                if d == 0:
                    n0 += 1
                    buf[c] = 1
                else:
                    e = _exp(d)
                    buf[c] = e
                    rest += e
                dsum -= d
            yi = y[i]
            log_s = math.log1p((n0 - 1) + rest)
            li = log_s
            if eps < 1:
                li += (1.0 - eps) * (m - x[i, yi])
            if eps > 0:
                li += eps * (dsum / n)
            li *= ai
            lse = m + log_s
            if zl > 0:
                li += zl * ai * lse * lse
            loss[i] = li
            if grad:
                k = scale * (ai + 2.0 * zl * ai * lse) / (n0 + rest)
                su = scale * ai * eps / n
                for c in range(n):
                    g[i, c] = k * buf[c] - su
                g[i, yi] -= scale * ai * (1.0 - eps)


# --------------------------------------------------------------------------- linear_cross_entropy
@nb.njit(cache=True, nogil=True)
def _chunk_update(z, b, i, m, r):  # type: ignore[no-untyped-def]
    """Fold row ``i`` of the chunk (``z + b``) into the state ``(m[i], r[i])``."""
    n = z.shape[1]
    has_b = b.shape[0] > 0
    cm = z[i, 0] + b[0] if has_b else z[i, 0]
    arg = 0
    nan = False
    for c in range(n):
        v = z[i, c] + b[c] if has_b else z[i, c]
        if v > cm:
            cm = v
            arg = c
        elif v != v:
            nan = True
    if nan or cm == np.inf:
        r[i] = np.nan  # overflowed or NaN logits: the row is NaN
        return
    if cm == -np.inf:
        return
    mi = m[i]
    acc = 0.0
    if cm > mi:
        acc = (r[i] + 1.0) * math.exp(mi - cm)
        for c in range(n):
            if c != arg:
                v = z[i, c] + b[c] if has_b else z[i, c]
                acc += _exp(v - cm)
        r[i] = acc
        m[i] = cm
    else:
        for c in range(n):
            v = z[i, c] + b[c] if has_b else z[i, c]
            acc += _exp(v - mi)
        r[i] += acc


@nb.njit(
    _sigs("G", "V", "i8", "I", "D", "f8", "VW", "DW", "DW", "DW"),
    cache=True, nogil=True, parallel=True,
)
def lce_fwd_index(z, b, v0, y, a, eps, m, r, xy, sx):  # type: ignore[no-untyped-def]
    """Fold the chunk ``z + b`` (classes ``v0 .. v0 + z.shape[1]``) into the row states.

    ``xy[i]`` receives the target's logit when the target lies in the chunk; ``sx[i]``
    accumulates the sum of the logits (only when ``eps > 0``). Rows with ``a[i] == 0``
    are skipped.
    """
    n = z.shape[1]
    has_b = b.shape[0] > 0
    for i in nb.prange(z.shape[0]):
        if a[i] == 0:
            continue
        _chunk_update(z, b, i, m, r)
        yc = y[i] - v0
        if 0 <= yc < n:
            xy[i] = z[i, yc] + b[yc] if has_b else z[i, yc]
        if eps > 0:
            acc = 0.0
            for c in range(n):
                acc += z[i, c] + b[c] if has_b else z[i, c]
            sx[i] += acc


@nb.njit(
    _sigs("G", "V", "i8", "X", "D", "f8", "i8", "VW", "DW", "DW", "DW"),
    cache=True, nogil=True, parallel=True,
)
def lce_fwd_prob(z, b, v0, q, w, eps, n_classes, m, r, big_a, tx):  # type: ignore[no-untyped-def]
    """Probability-target version of :func:`lce_fwd_index`.

    Accumulates ``big_a[i] += sum_c t_c`` and ``tx[i] += sum_c t_c x_c`` (``t_c != 0``
    only) with ``t_c = w_c ((1 - eps) q_c + eps / n_classes)``.
    """
    n = z.shape[1]
    has_b = b.shape[0] > 0
    weighted = w.shape[0] > 0
    for i in nb.prange(z.shape[0]):
        _chunk_update(z, b, i, m, r)
        sa = 0.0
        st = 0.0
        for c in range(n):
            t = (1.0 - eps) * q[i, v0 + c] + eps / n_classes
            if weighted:
                t *= w[v0 + c]
            if t != 0:
                v = z[i, c] + b[c] if has_b else z[i, c]
                sa += t
                st += t * v
        big_a[i] += sa
        tx[i] += st


@nb.njit(
    _sigs("G", "V", "i8", "I", "D", "f8", "i8", "V", "D", "D", "f8"),
    cache=True, nogil=True, parallel=True,
)
def lce_bwd_index(z, b, v0, y, a, eps, n_classes, m, s, k, scale):  # type: ignore[no-untyped-def]
    """Overwrite the chunk with its gradient ``k p - scale t``, ``p = exp(x - m) / s``.

    ``m[i]`` is the row's maximum logit (in the chunk's dtype), ``s[i]`` the sum of
    ``exp(x - m)`` over all classes and ``k[i] = scale * (A + 2 z_loss A lse)`` the
    row's softmax coefficient.
    """
    n = z.shape[1]
    has_b = b.shape[0] > 0
    for i in nb.prange(z.shape[0]):
        ai = a[i]
        if ai == 0:
            _fill(z, i, 0.0)
            continue
        mi = m[i]
        ki = k[i] / s[i]
        su = scale * ai * eps / n_classes
        for c in range(n):
            v = z[i, c] + b[c] if has_b else z[i, c]
            z[i, c] = ki * _exp(v - mi) - su
        yc = y[i] - v0
        if 0 <= yc < n:
            z[i, yc] -= scale * ai * (1.0 - eps)


@nb.njit(
    _sigs("G", "V", "i8", "X", "D", "f8", "i8", "D", "V", "D", "D", "f8"),
    cache=True, nogil=True, parallel=True,
)
def lce_bwd_prob(z, b, v0, q, w, eps, n_classes, big_a, m, s, k, scale):  # type: ignore[no-untyped-def]
    """Probability-target version of :func:`lce_bwd_index` (rows with ``big_a == 0`` are 0)."""
    n = z.shape[1]
    has_b = b.shape[0] > 0
    weighted = w.shape[0] > 0
    for i in nb.prange(z.shape[0]):
        if big_a[i] == 0:
            _fill(z, i, 0.0)
            continue
        mi = m[i]
        ki = k[i] / s[i]
        for c in range(n):
            t = (1.0 - eps) * q[i, v0 + c] + eps / n_classes
            if weighted:
                t *= w[v0 + c]
            v = z[i, c] + b[c] if has_b else z[i, c]
            z[i, c] = ki * _exp(v - mi) - scale * t
