"""Validation of user input: the one place where arguments are checked.

Every public function calls into this module before it touches the data, so the
kernels and the reference implementations may assume clean input: a floating
working array, a normalised tuple of axes, a resolved :class:`Scale` and a
boolean mask of the input's shape (or ``None``).

Messages name the parameter, what was expected and what arrived.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

__all__ = [
    "AxisError",
    "Scale",
    "check_implementation",
    "check_int",
    "check_out",
    "check_where",
    "float_input",
    "normalize_axis",
    "resolve_scale",
]

IMPLEMENTATIONS = ("auto", "reference", "numba")
_HALF_NAMES = ("float16", "bfloat16")


# --------------------------------------------------------------------------- scale
@dataclass(frozen=True)
class Scale:
    """The factor applied to the (shifted) inputs: ``exp(sign * factor * x)``.

    ``sign`` is +1 or -1 (negative beta, or :func:`softmin`); the magnitude is either
    ``beta`` (multiply) or ``temperature`` (divide, exact for the user's T). Exactly one
    of ``beta``/``temperature`` is set, or neither for the unit scale.
    """

    sign: int = 1
    beta: float | None = None
    temperature: float | None = None

    @property
    def is_unit(self) -> bool:
        return self.beta is None and self.temperature is None

    @property
    def factor(self) -> float:
        """The magnitude |beta| as a float (1/T for a temperature)."""
        if self.temperature is not None:
            return 1.0 / self.temperature
        return 1.0 if self.beta is None else self.beta

    @property
    def signed_beta(self) -> float:
        return self.sign * self.factor

    def negated(self) -> Scale:
        return Scale(-self.sign, self.beta, self.temperature)


_UNIT = Scale()
_SOFTMIN = Scale(-1)


def _real_scalar(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if getattr(value, "ndim", None) == 0 and not isinstance(value, (bool, np.bool_)):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        msg = f"{name} must be a real number, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return float(value)


def resolve_scale(
    temperature: Any = None, beta: Any = None, base: Any = None, *, negate: bool = False
) -> Scale:
    """Turn the mutually exclusive ``temperature``/``beta``/``base`` into a :class:`Scale`.

    ``beta`` multiplies the inputs, ``temperature`` T means beta = 1/T and ``base`` b
    means b**x, i.e. beta = ln b. ``negate`` flips the sign (softmin).
    """
    if temperature is None and beta is None and base is None:  # the common case, fast
        return _SOFTMIN if negate else _UNIT
    given = [n for n, v in (("temperature", temperature), ("beta", beta), ("base", base)) if v is not None]
    if len(given) > 1:
        msg = f"give at most one of temperature, beta and base; got {', '.join(given)}"
        raise ValueError(msg)
    sign = -1 if negate else 1
    if temperature is not None:
        t = _real_scalar(temperature, "temperature")
        if not (math.isfinite(t) and t > 0):
            msg = f"temperature must be a finite number > 0, got {t!r}"
            raise ValueError(msg)
        return Scale(sign, None, None if t == 1.0 else t)
    if base is not None:
        b = _real_scalar(base, "base")
        if not (math.isfinite(b) and b > 0 and b != 1):
            msg = f"base must be a finite number > 0 and != 1, got {b!r}"
            raise ValueError(msg)
        beta = math.log(b)
    if beta is None:
        return Scale(sign)
    bt = _real_scalar(beta, "beta")
    if not (math.isfinite(bt) and bt != 0):
        msg = f"beta must be a finite nonzero number, got {bt!r}"
        raise ValueError(msg)
    if bt < 0:
        sign, bt = -sign, -bt
    return Scale(sign, None if bt == 1.0 else bt, None)


# --------------------------------------------------------------------------- integers
def check_int(value: Any, name: str, minimum: int | None = 1, expected: str | None = None) -> int:
    """``value`` as a Python int >= ``minimum`` (no bound for None); bools are refused.

    A non-integer is a TypeError, a value below ``minimum`` a ValueError; both messages
    read "``name`` must be ``expected``, got ...", ``expected`` defaulting to
    "an int >= minimum".
    """
    if expected is None:
        expected = "an int" if minimum is None else f"an int >= {minimum}"
    if isinstance(value, (bool, np.bool_)):
        msg = f"{name} must be {expected}, got {value!r}"
        raise TypeError(msg)
    try:
        v = operator.index(value)
    except TypeError:
        msg = f"{name} must be {expected}, got {type(value).__name__} {value!r}"
        raise TypeError(msg) from None
    if minimum is not None and v < minimum:
        msg = f"{name} must be {expected}, got {v}"
        raise ValueError(msg)
    return int(v)


# --------------------------------------------------------------------------- axes
def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """Normalise ``axis`` (int, tuple of ints or None) to a sorted tuple of non-negative ints.

    ``None`` means every axis; ``()`` means no axis (each element its own distribution).
    Out-of-range axes raise :class:`numpy.exceptions.AxisError`; repeated axes a ValueError.
    """
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, fast
        return (axis % ndim,)
    if axis is None:
        return tuple(range(ndim))
    items = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in items:
        if isinstance(a, (bool, np.bool_)):
            msg = f"{name} must be an int, a tuple of ints or None, got {axis!r}"
            raise TypeError(msg)
        try:
            a = operator.index(a)
        except TypeError:
            msg = f"{name} must be an int, a tuple of ints or None, got {axis!r}"
            raise TypeError(msg) from None
        if not -ndim <= a < ndim:
            raise AxisError(a, ndim, msg_prefix=name)
        out.append(a % ndim)
    if len(set(out)) != len(out):
        msg = f"{name} contains a repeated axis: {axis!r}"
        raise ValueError(msg)
    return tuple(sorted(out))


# --------------------------------------------------------------------------- dtypes
def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None)
    if not isinstance(name, str):
        name = str(dtype)
    return name.rsplit(".", 1)[-1]


def _classify(xp: Any, dtype: Any) -> str:
    """'half', 'float', 'int' (ints and bools) or 'bad' for the dtype of an array."""
    if _dtype_name(dtype) in _HALF_NAMES:
        return "half"
    if isinstance(dtype, np.dtype):
        kind = dtype.kind
        return {"f": "float", "i": "int", "u": "int", "b": "int"}.get(kind, "bad")
    try:
        if xp.isdtype(dtype, "real floating"):
            return "float"
        if xp.isdtype(dtype, ("integral", "bool")):
            return "int"
    except (TypeError, ValueError):
        pass
    return "bad"


def default_float(xp: Any, device: Any = None) -> Any:
    """The array library's default floating dtype (float64 for NumPy, float32 for torch)."""
    try:
        return xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    except Exception:  # namespaces without the inspection API
        return xp.asarray(0.0).dtype


def supports_float64(xp: Any, device: Any = None) -> bool:
    """Whether float64 arrays can be made in this namespace on this device."""
    from . import _backend

    if _backend.is_jax_namespace(xp):
        import jax

        return bool(jax.config.read("jax_enable_x64"))
    try:
        dtypes = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
        return "float64" in dtypes
    except Exception:
        return True


def float_input(xp: Any, x: Any, name: str = "x") -> tuple[Any, Any, Any]:
    """Check that ``x`` is a real array and choose its dtypes.

    Returns ``(work, out_dtype, work_dtype)``: ``work`` is ``x`` cast to the working dtype
    (never a view that we write to), ``out_dtype`` is the dtype of the result.
    Integers and bools become the library's default float; float16/bfloat16 compute in
    float32 and come back in their own dtype; complex, object and string inputs are a
    TypeError.
    """
    if type(x) is np.ndarray and x.dtype.type in (np.float32, np.float64):  # fast path
        return x, x.dtype, x.dtype
    kind = _classify(xp, x.dtype)
    if kind == "bad":
        msg = f"{name} must be an array of real numbers, got dtype {_dtype_name(x.dtype)}"
        raise TypeError(msg)
    from ._backend import device_of

    dev = device_of(x)
    if kind == "int":
        out_dtype = default_float(xp, dev)
        work_dtype = out_dtype
    elif kind == "half":
        out_dtype = x.dtype
        work_dtype = xp.float32
    else:
        out_dtype = x.dtype
        work_dtype = x.dtype
    work = x if work_dtype == x.dtype else xp.astype(x, work_dtype)
    return work, out_dtype, work_dtype


def result_float_dtype(xp: Any, *dtypes: Any) -> Any:
    """The floating result type of several (already validated) dtypes."""
    floats = [d for d in dtypes if _classify(xp, d) in ("float", "half")]
    if not floats:
        return default_float(xp)
    if len(floats) == 1:
        return floats[0]
    try:
        return xp.result_type(*floats)
    except Exception:
        return np.result_type(*floats)


# --------------------------------------------------------------------------- masks
def check_where(xp: Any, where: Any, shape: tuple[int, ...], name: str = "where") -> Any:
    """A boolean mask broadcastable to ``shape``, broadcast to it; ``None`` passes through."""
    if where is None:
        return None
    from ._backend import asarray_like

    w = asarray_like(xp, where)
    if _dtype_name(w.dtype) != "bool":
        msg = f"{name} must be a boolean array, got dtype {_dtype_name(w.dtype)}"
        raise TypeError(msg)
    try:
        target = np.broadcast_shapes(tuple(w.shape), tuple(shape))
    except ValueError:
        target = None
    if target != tuple(shape):
        msg = f"{name} of shape {tuple(w.shape)} does not broadcast to the input's shape {tuple(shape)}"
        raise ValueError(msg)
    return w if tuple(w.shape) == tuple(shape) else xp.broadcast_to(w, tuple(shape))


# --------------------------------------------------------------------------- out=
def check_out(xp: Any, out: Any, shape: tuple[int, ...], dtype: Any, name: str = "out") -> None:
    """``out`` must be a writeable array of the result's exact shape and dtype."""
    if out is None:
        return
    if not hasattr(out, "shape") or not hasattr(out, "dtype"):
        msg = f"{name} must be an array, got {type(out).__name__}"
        raise TypeError(msg)
    if tuple(out.shape) != tuple(shape):
        msg = f"{name} must have the result's shape {tuple(shape)}, got {tuple(out.shape)}"
        raise ValueError(msg)
    if out.dtype != dtype:
        msg = f"{name} must have the result's dtype {_dtype_name(dtype)}, got {_dtype_name(out.dtype)}"
        raise TypeError(msg)
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        msg = f"{name} must be writeable"
        raise ValueError(msg)


def check_implementation(implementation: Any) -> str:
    if implementation not in IMPLEMENTATIONS:
        msg = f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        raise ValueError(msg)
    return str(implementation)
