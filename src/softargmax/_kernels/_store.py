"""Non-temporal (streaming) stores for the kernels' last write of a large output.

An ordinary store first reads the cache line it writes (read for ownership): a pass
that writes ``out`` from ``x`` moves three arrays' worth of memory, not two. A
non-temporal store writes whole lines past the caches without that read. LLVM's loop
vectoriser will not vectorise a loop with non-temporal stores whose alignment it cannot
prove, so :func:`log_unit_nt` writes its vector loop in LLVM IR: 64-byte vectors
(16 float32 or 8 float64 lanes) stored aligned, the unaligned head and the tail left to
the caller's scalar loop. A fence at the end orders the stores before the caller
returns (the parallel join then publishes them to other threads). On targets without
non-temporal stores LLVM emits ordinary ones.

Only for outputs much larger than the caches: the stored lines leave the caches, so a
caller that reads them next would read them from memory.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["address", "log_unit_nt"]

_FLOATS = (types.float32, types.float64)


@intrinsic
def address(typingctx, a):  # type: ignore[no-untyped-def]
    """The address of an array's data (to align the vector part of a loop)."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.ptrtoint(ary.data, ir.IntType(64))

    return types.int64(a), codegen


@intrinsic
def log_unit_nt(typingctx, x, out, i0, n, sign, chi, clo):  # type: ignore[no-untyped-def]
    """``out[i0:i0 + n] = (x * sign - chi) - clo`` with non-temporal stores: ``n`` a multiple
    of the lanes (64 bytes), ``out[i0]`` aligned to 64 bytes, contiguous 1-d arrays of
    one float dtype. Each operation rounds as in the scalar loop (``x * sign`` is exact:
    ``sign`` is +-1), so the results are the same bits."""
    if not (isinstance(x, types.Array) and isinstance(out, types.Array)):
        return None
    ft = x.dtype
    if ft not in _FLOATS or out.dtype != ft or not (sign == chi == clo == ft):
        return None
    if x.ndim != 1 or out.ndim != 1 or x.layout != "C" or out.layout != "C":
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        xa = context.make_array(signature.args[0])(context, builder, args[0])
        oa = context.make_array(signature.args[1])(context, builder, args[1])
        start, count, s, c_hi, c_lo = args[2:]
        lt = s.type
        lanes = 16 if ft == types.float32 else 8
        size = 4 if ft == types.float32 else 8
        vt = ir.VectorType(lt, lanes)
        i32 = ir.IntType(32)

        def splat(v):  # type: ignore[no-untyped-def]
            u = builder.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(i32, 0))
            return builder.shuffle_vector(u, u, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

        vs, vhi, vlo = splat(s), splat(c_hi), splat(c_lo)
        vx = builder.bitcast(builder.gep(xa.data, [start]), vt.as_pointer())
        vo = builder.bitcast(builder.gep(oa.data, [start]), vt.as_pointer())
        nvec = builder.udiv(count, ir.Constant(count.type, lanes))
        nontemporal = builder.module.add_metadata([ir.Constant(i32, 1)])
        with cgutils.for_range(builder, nvec) as loop:
            xv = builder.load(builder.gep(vx, [loop.index]))
            xv.align = size
            r = builder.fsub(builder.fsub(builder.fmul(xv, vs), vhi), vlo)
            st = builder.store(r, builder.gep(vo, [loop.index]))
            st.align = 64
            st.set_metadata("nontemporal", nontemporal)
        builder.fence("seq_cst")  # x86: mfence, which drains the write-combining buffers
        return context.get_dummy_value()

    return types.void(x, out, i0, n, sign, chi, clo), codegen
