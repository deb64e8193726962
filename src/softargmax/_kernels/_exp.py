"""A vectorisable exponential (and logarithm) for numba kernels, and the LLVM intrinsics
they need.

``exp(z)`` is computed as ``2**n * P(r)`` with ``n = round(z / ln 2)`` and
``r = z - n ln 2`` (Cody-Waite: ``ln 2`` split in two constants so that ``n * LN2_HI`` is
exact), a polynomial ``P`` on ``|r| <= ln(2)/2`` and ``2**n`` built from integer
arithmetic on the exponent bits. There are no table look-ups and no branches, so LLVM
turns a loop over these functions into SIMD code (AVX2 / AVX-512).

Two accuracies, both computed in float64 arithmetic:

* :func:`exp64` (degree-13 Taylor polynomial, truncation error 4e-18): about 1 ulp in
  float64. It takes the argument as an unevaluated sum ``z + z_lo`` so that a shift
  ``x - max`` carried with its rounding error (TwoSum) loses nothing.
* :func:`exp32` (degree-6 polynomial, relative error 4e-9 = 0.06 float32 ulp): for
  results that are rounded to float32.

and one in float32 arithmetic, twice the SIMD width:

* :func:`exp32f` (the same polynomial with float32 constants, about 1 float32 ulp,
  compensated argument ``z + z_lo``): the kernels' exp for float32 input.

The cross-entropy kernels take shorter ones, :func:`exp64_rounded` and
:func:`exp32f_2p64_rounded`, within the error that their rounded argument brings
anyway. There is also a logarithm, :func:`log1p_sum` (``log(1 + a + b)`` to 0.84
float64 ulp, no table and no branch either), for the ``log s`` of each distribution: a
loop over many short rows vectorises where a libm call per row does not.

Domain: ``z <= 354`` (``2**n`` is formed as ``2**(n + 512) * 2**-512``, which also
gives correctly rounded subnormal results). The kernels only call them with shifted
arguments ``z <= 0``. ``z = -inf`` gives 0, NaN gives NaN.

The intrinsics (:func:`maxnum`, :func:`fma`, bit casts) are LLVM operations that numba
does not expose: ``maxnum`` vectorises in a reduction where Python's ``max`` does not,
and ``fma`` gives the exact product error that the error-free transformations need.
:func:`max_skipping_nan` is a whole loop (the max of an array) written in vector IR,
and :func:`prefetch` a hint to the caches.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "exp32", "exp32f", "exp32f_2p64", "exp32f_2p64_1", "exp32f_2p64_rounded", "exp64", "exp_array", "exp_array32",
    "exp64_rounded", "exp_array32_rounded", "exp_array_rounded", "fma",
    "log1p_sum", "log_array", "max_skipping_nan", "maxnum", "prefetch",
]

_FLOATS = (types.float32, types.float64)
_BIAS32 = 127 + 64  # float32: 2**n is formed as 2**(n + 64) * 2**-64


def _llvm_float(ty: types.Type) -> ir.Type:
    return ir.DoubleType() if ty == types.float64 else ir.FloatType()


# --------------------------------------------------------------------------- intrinsics
@intrinsic
def maxnum(typingctx, a, b):  # type: ignore[no-untyped-def]
    """``llvm.maxnum``: the larger of two floats, ignoring a NaN operand."""
    if a != b or a not in _FLOATS:
        return None
    sig = a(a, b)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        lt = _llvm_float(a)
        name = "llvm.maxnum.f64" if a == types.float64 else "llvm.maxnum.f32"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lt, [lt, lt]), name)
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def max_skipping_nan(typingctx, a):  # type: ignore[no-untyped-def]
    """The largest entry of a contiguous 1-D float array, NaN entries ignored (``-inf``
    for an empty array or one of NaN only): one x86 ``maxps`` per vector, where a loop
    of :func:`maxnum` takes three (max, an unordered compare, a blend).

    Each step is ``acc = x > acc ? x : acc``, which leaves ``acc`` where ``x`` is NaN: the
    NaN rule of ``maxps`` with ``x`` as its first operand. LLVM's vectoriser does not
    widen that select in a reduction without no-NaN fast-math flags (which would let it
    drop the rule), so the loop is written here in vector IR: four accumulators of 64
    bytes (16 float32 or 8 float64 lanes; two AVX2 registers or one AVX-512 register
    each), their lanes reduced at the end, then the tail entries one by one. Between
    ``-0.0`` and ``+0.0`` either may come out, as with ``maxnum``.
    """
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype in _FLOATS):
        return None
    sig = a.dtype(a)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        lt = _llvm_float(a.dtype)
        lanes = 512 // a.dtype.bitwidth
        vt = ir.VectorType(lt, lanes)
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        n, data = ary.nitems, ary.data
        idx = n.type
        step = 4 * lanes

        def larger(x, acc):  # type: ignore[no-untyped-def]
            return builder.select(builder.fcmp_ordered(">", x, acc), x, acc)

        accs = [cgutils.alloca_once_value(builder, ir.Constant(vt, [float("-inf")] * lanes)) for _ in range(4)]
        n_main = builder.and_(n, ir.Constant(idx, -step))  # (step is a power of 2)
        with cgutils.for_range_slice(builder, ir.Constant(idx, 0), n_main, ir.Constant(idx, step)) as (i, _):
            for k, acc in enumerate(accs):
                ptr = builder.bitcast(builder.gep(data, [builder.add(i, ir.Constant(idx, k * lanes))]), vt.as_pointer())
                builder.store(larger(builder.load(ptr, align=a.dtype.bitwidth // 8), builder.load(acc)), acc)
        v = builder.load(accs[0])
        for acc in accs[1:]:
            v = larger(builder.load(acc), v)
        half = lanes
        while half > 1:  # fold the upper half of the lanes onto the lower
            half //= 2
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [*range(half, 2 * half), *[0] * (lanes - half)])
            v = larger(builder.shuffle_vector(v, v, mask), v)
        best = cgutils.alloca_once_value(builder, builder.extract_element(v, ir.Constant(ir.IntType(32), 0)))
        with cgutils.for_range_slice(builder, n_main, n, ir.Constant(idx, 1)) as (i, _):
            builder.store(larger(builder.load(builder.gep(data, [i])), builder.load(best)), best)
        return builder.load(best)

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``llvm.fma``: ``a * b + c`` with one rounding."""
    if not (a == b == c) or a not in _FLOATS:
        return None
    sig = a(a, b, c)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        lt = _llvm_float(a)
        name = "llvm.fma.f64" if a == types.float64 else "llvm.fma.f32"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(lt, [lt, lt, lt]), name)
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def prefetch(typingctx, a, i):  # type: ignore[no-untyped-def]
    """``llvm.prefetch`` of ``a[i]``'s cache line for reading, into every cache level: a
    hint (no fault, no effect on results) that lets a kernel busy with arithmetic have the
    memory it reads next fetched meanwhile. ``a`` is a contiguous 1-D array."""
    if not (isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and isinstance(i, types.Integer)):
        return None
    sig = types.void(a, i)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        ptr = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (read, locality 3: keep in all levels, data cache)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _f64_bits(typingctx, x):  # type: ignore[no-untyped-def]
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _pow2_f32(typingctx, t):  # type: ignore[no-untyped-def]
    """``2**(n + 64)`` as float32 from ``t = z * log2(e) + _SHIFTER32`` (``n`` in t's low bits).

    The int32 arithmetic is written in LLVM IR: numba would widen it to int64 and halve
    the SIMD width.
    """
    if t != types.float32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        bits = builder.add(bits, ir.Constant(i32, _BIAS32))
        bits = builder.shl(bits, ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _bits_f64(typingctx, i):  # type: ignore[no-untyped-def]
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


# --------------------------------------------------------------------------- exp
_LOG2E = 1.4426950408889634
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the low bits
_LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_BIAS = 1023 + 512
_TWO_M512 = 2.0**-512
_Z_MIN = -1000.0  # exp(-1000) underflows to 0; keeps the exponent field in range

# exp(r) = 1 + r + r**2 * Q(r): least-squares fit of the relative error on
# |r| <= 1.001 * ln(2)/2, 3.7e-9 at most (float32 needs 6e-8).
_Q0 = 0.49999988527797157
_Q1 = 0.166665178702334
_Q2 = 0.04166954428066885
_Q3 = 0.00836898723100514
_Q4 = 0.0013751150275601132

# 1/k! for the degree-13 Taylor polynomial (truncation 4.4e-18 on |r| <= ln(2)/2).
_C2 = 1.0 / 2
_C3 = 1.0 / 6
_C4 = 1.0 / 24
_C5 = 1.0 / 120
_C6 = 1.0 / 720
_C7 = 1.0 / 5040
_C8 = 1.0 / 40320
_C9 = 1.0 / 362880
_C10 = 1.0 / 3628800
_C11 = 1.0 / 39916800
_C12 = 1.0 / 479001600
_C13 = 1.0 / 6227020800


@njit(inline="never", cache=True, error_model="numpy", fastmath={"contract"})
def _reduce(z: float) -> tuple[float, float]:
    """``(r, 2**n)`` with ``z = n ln 2 + r`` (``r`` NaN for NaN ``z``)."""
    zc = z if not (z < _Z_MIN) else _Z_MIN  # keeps NaN
    t: float = zc * _LOG2E + _SHIFTER
    kf = t - _SHIFTER
    r = (zc - kf * _LN2_HI) - kf * _LN2_LO
    # the low bits of t hold n; shifting them into the exponent field gives 2**(n + 512)
    scale: float = _bits_f64((_f64_bits(t) + _BIAS) << 52)  # type: ignore[call-arg]
    return r, scale


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp64(z: float, z_lo: float) -> float:
    """``exp(z + z_lo)`` to about 1 float64 ulp, for ``z <= 354`` and ``|z_lo| <= 1e-10``.

    ``z_lo`` (the low part of the argument, ``|z_lo| <= ulp(z)``) must be finite; it is
    ignored where ``z`` underflows.
    """
    r, scale = _reduce(z)
    r = r + (z_lo if not (z < _Z_MIN) else 0.0)
    p = _C12 + r * _C13
    p = _C11 + r * p
    p = _C10 + r * p
    p = _C9 + r * p
    p = _C8 + r * p
    p = _C7 + r * p
    p = _C6 + r * p
    p = _C5 + r * p
    p = _C4 + r * p
    p = _C3 + r * p
    p = _C2 + r * p
    p = 1.0 + (r + (r * r) * p)
    return (p * scale) * _TWO_M512


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp32(z: float) -> float:
    """``exp(z)`` to 4e-9 relative (float32 accuracy with room to spare), for ``z <= 354``."""
    r, scale = _reduce(z)
    q = _Q3 + r * _Q4
    q = _Q2 + r * q
    q = _Q1 + r * q
    q = _Q0 + r * q
    p = 1.0 + (r + (r * r) * q)
    return (p * scale) * _TWO_M512


# exp(r) = 1 + r (1 + r P(r)), P of degree 9: Chebyshev interpolation (mpmath, 50 digits)
# of (exp(r) - 1 - r) / r**2 on |r| <= 1.001 ln(2)/2; relative error 1.7e-17 (0.15 u).
_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9 = (
    0.5000000000000001, 0.16666666666666669, 0.041666666666623824, 0.008333333333330039,
    0.0013888888917367081, 0.00019841269863171557, 2.4801521057868204e-05,
    2.7557268276905696e-06, 2.7620201591031547e-07, 2.5100472505694996e-08,
)
_LN2 = 0.6931471805599453  # ln 2 rounded to float64 (off by 2.3e-17)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp64_rounded(z: float) -> float:
    """``exp(z)`` as :func:`exp64`, five operations shorter, for an argument that carries
    a rounding error of its own (a shift ``x - m`` rounded to float64 is off by up to
    ``|z| u``, ``u = 2**-53``, and so is its exp, relatively), ``z <= 354``.

    ``ln 2`` is one float64 constant (``n ln 2`` then errs by up to ``|z| * 0.3 u``),
    the polynomial is of degree 11 instead of 13 and evaluated in Horner form. The tests
    compare it with mpmath: within ``1.5 u`` for ``|z| <= 1`` and ``1.5 |z| u`` beyond.
    """
    zc = z if not (z < _Z_MIN) else _Z_MIN  # keeps NaN
    t: float = zc * _LOG2E + _SHIFTER
    r = zc - (t - _SHIFTER) * _LN2
    p = _P8 + r * _P9
    p = _P7 + r * p
    p = _P6 + r * p
    p = _P5 + r * p
    p = _P4 + r * p
    p = _P3 + r * p
    p = _P2 + r * p
    p = _P1 + r * p
    p = _P0 + r * p
    p = 1.0 + r * (1.0 + r * p)
    scale: float = _bits_f64((_f64_bits(t) + _BIAS) << 52)  # type: ignore[call-arg]
    return (p * scale) * _TWO_M512


# float32 constants (a float64 constant would promote the arithmetic to float64)
_LOG2E_F = np.float32(_LOG2E)
_SHIFTER_F = np.float32(12582912.0)  # 1.5 * 2**23
_LN2_HI_F = np.float32(0.693359375)  # 9 significant bits: n * _LN2_HI_F is exact
_LN2_LO_F = np.float32(-2.12194440054690583e-4)
_Z_MIN_F = np.float32(-110.0)  # exp(-110) underflows float32 to 0
_TWO_M64_F = np.float32(2.0**-64)
_Q0_F = np.float32(_Q0)
_Q1_F = np.float32(_Q1)
_Q2_F = np.float32(_Q2)
_Q3_F = np.float32(_Q3)
_Q4_F = np.float32(_Q4)
_ZERO_F = np.float32(0.0)
_ONE_F = np.float32(1.0)


@njit(inline="always")
def _reduce32f(z: np.float32) -> tuple[np.float32, np.float32, np.float32]:
    """``(zc, r, t)``: ``z`` clamped to ``[-110, ...]`` (NaN kept), ``r = zc - n ln 2`` and
    ``t`` holding ``n`` in its low bits (inlined into callers compiled with ``contract``)."""
    zc = z if not (z < _Z_MIN_F) else _Z_MIN_F  # keeps NaN
    t = zc * _LOG2E_F + _SHIFTER_F
    kf = t - _SHIFTER_F
    r = (zc - kf * _LN2_HI_F) - kf * _LN2_LO_F
    return zc, r, t


@njit(inline="always")
def _poly32f(r: np.float32, t: np.float32) -> np.float32:
    """``exp(r) * 2**(n + 64)``."""
    q = _Q3_F + r * _Q4_F
    q = _Q2_F + r * q
    q = _Q1_F + r * q
    q = _Q0_F + r * q
    p = _ONE_F + (r + (r * r) * q)
    scale: np.float32 = _pow2_f32(t)  # type: ignore[call-arg]
    return p * scale


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp32f_2p64(z: np.float32, z_lo: np.float32) -> np.float32:
    """``exp(z + z_lo) * 2**64`` (:func:`exp32f` without its last scaling): for ``z >= -110``
    a normal float32, so that a product with ``2**-64 / s`` rounds a subnormal result only
    once; ``z < -110`` gives ``2**-95`` or less, which such a product rounds to 0."""
    _, r, t = _reduce32f(z)
    r = r + (z_lo if not (z < _Z_MIN_F) else _ZERO_F)
    return _poly32f(r, t)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp32f_2p64_1(z: np.float32) -> np.float32:
    """``exp(z) * 2**64`` of a plain (uncompensated) float32 argument: :func:`exp32f_2p64`
    without the low part, two operations fewer per element. For sums whose total is scaled
    by ``2**-64`` once in float64 (logsumexp), which saves the per-element product too."""
    _, r, t = _reduce32f(z)
    return _poly32f(r, t)


_LN2_F = np.float32(0.6931471805599453)  # ln 2 rounded to float32 (off by 1.9e-9)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp32f_2p64_rounded(z: np.float32) -> np.float32:
    """``exp(z) * 2**64`` as :func:`exp32f_2p64_1`, two operations shorter, for an argument
    that carries a rounding error of its own: a shift ``x - m`` rounded to float32 is off
    by up to ``|z| u`` (``u = 2**-24``), and so is its exp, relatively.

    ``r = z - n ln 2`` takes ``ln 2`` as one float32 constant (no Cody-Waite low part),
    which adds ``n * 1.9e-9``, about ``|z| * 0.046 u``, and the polynomial is evaluated
    in Horner form, ``1 + r (1 + r Q(r))``. The tests sweep the float32 arguments in
    ``[-87, 0]``: within ``1.1 u`` for ``|z| <= 1`` and ``1.1 |z| u`` beyond, the bound
    of the rounded shift.
    """
    zc = z if not (z < _Z_MIN_F) else _Z_MIN_F  # keeps NaN
    t = zc * _LOG2E_F + _SHIFTER_F
    r = zc - (t - _SHIFTER_F) * _LN2_F
    q = _Q3_F + r * _Q4_F
    q = _Q2_F + r * q
    q = _Q1_F + r * q
    q = _Q0_F + r * q
    p = _ONE_F + r * (_ONE_F + r * q)
    scale: np.float32 = _pow2_f32(t)  # type: ignore[call-arg]
    return p * scale


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def exp32f(z: np.float32, z_lo: np.float32) -> np.float32:
    """``exp(z + z_lo)`` in float32 arithmetic (16 AVX-512 lanes), for float32 ``z <= 40``.

    Same scheme as :func:`exp32` with float32 constants; the low part ``z_lo`` of a
    compensated argument (``|z_lo| <= ulp(z)``, finite) is added to the reduced argument,
    where it costs no precision. Worst error about 1 float32 ulp (the tests sweep the
    float32 inputs in [-87, 0]); subnormal results are rounded once.
    """
    return exp32f_2p64(z, z_lo) * _TWO_M64_F


# --------------------------------------------------------------------------- log
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # the bits of sqrt(1/2)
# 2 / (2i + 1), i = 1..11: log((1 + t) / (1 - t)) = 2t + t * t**2 * sum_i L_i t**(2i - 2),
# truncation below 2e-19 relative for |t| <= 3 - 2 sqrt(2) = 0.1716
_L1, _L2, _L3, _L4, _L5, _L6, _L7, _L8, _L9, _L10, _L11 = (2.0 / (2 * i + 1) for i in range(1, 12))


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def log1p_sum(a: float, b: float) -> float:
    """``log(1 + a + b)`` for ``1 + a + b > 0``, finite, to about 0.84 float64 ulp.

    ``s = 1 + (a + b)`` is formed with the rounding errors of both sums kept (``c``), and
    ``log s = k ln 2 + log f`` with ``s = 2**k f``, ``f`` in ``[sqrt(1/2), sqrt(2))``
    split off the exponent bits, and ``log f = log1p(g)``, ``g = f - 1`` (exact), by
    fdlibm's form ``g - (g**2/2 - t (g**2/2 + R(t**2)))``, ``t = g / (2 + g)``; the result
    is corrected by ``c / s``. So ``a + b`` tiny keeps its relative accuracy (``log1p``)
    and the result is never the log of a rounded sum. The tests check 0.84 ulp against
    mpmath over tiny, moderate and huge sums.
    """
    u = a + b
    s = 1.0 + u
    bb = s - 1.0
    c = ((1.0 - (s - bb)) + (u - bb)) + ((a - u) + b)  # TwoSum of 1 + u, and u's own error
    bits: int = _f64_bits(s)  # type: ignore[call-arg]
    k = (bits - _SQRT_HALF_BITS) >> 52
    f: float = _bits_f64(bits - (k << 52))  # type: ignore[call-arg]
    g = f - 1.0
    t = g / (2.0 + g)
    t2 = t * t
    r = _L10 + t2 * _L11
    r = _L9 + t2 * r
    r = _L8 + t2 * r
    r = _L7 + t2 * r
    r = _L6 + t2 * r
    r = _L5 + t2 * r
    r = _L4 + t2 * r
    r = _L3 + t2 * r
    r = _L2 + t2 * r
    r = _L1 + t2 * r
    r = t2 * r
    hfsq = 0.5 * g * g
    kf = np.float64(k)
    return kf * _LN2_HI + (g - (hfsq - (t * (hfsq + r) + (kf * _LN2_LO + c / s))))


@njit(["void(float64[::1], float64[::1], float64[::1])"], cache=True, error_model="numpy")
def log_array(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = log1p_sum(a, b)`` elementwise; for tests."""
    for i in range(a.shape[0]):
        out[i] = log1p_sum(a[i], b[i])


@njit(["void(float64[::1], float64[::1], boolean)"], parallel=True, cache=True, error_model="numpy")
def exp_array(z: np.ndarray, out: np.ndarray, low: bool) -> None:
    """``out = exp(z)`` elementwise with :func:`exp64` (or :func:`exp32` if ``low``); for tests."""
    for i in prange(z.shape[0]):
        out[i] = exp32(z[i]) if low else exp64(z[i], 0.0)


@njit(["void(float32[::1], float32[::1], float32[::1])"], parallel=True, cache=True, error_model="numpy")
def exp_array32(z: np.ndarray, z_lo: np.ndarray, out: np.ndarray) -> None:
    """``out = exp(z + z_lo)`` elementwise with :func:`exp32f`; for tests."""
    for i in prange(z.shape[0]):
        out[i] = exp32f(z[i], z_lo[i])


@njit(["void(float64[::1], float64[::1])"], parallel=True, cache=True, error_model="numpy")
def exp_array_rounded(z: np.ndarray, out: np.ndarray) -> None:
    """``out = exp(z)`` elementwise with :func:`exp64_rounded`; for tests."""
    for i in prange(z.shape[0]):
        out[i] = exp64_rounded(z[i])


@njit(["void(float32[::1], float32[::1])"], parallel=True, cache=True, error_model="numpy")
def exp_array32_rounded(z: np.ndarray, out: np.ndarray) -> None:
    """``out = exp(z)`` elementwise with :func:`exp32f_2p64_rounded`; for tests."""
    for i in prange(z.shape[0]):
        out[i] = exp32f_2p64_rounded(z[i]) * _TWO_M64_F
