"""Array-namespace dispatch: the one place that decides which code path runs.

NumPy input (and anything that is not an array: lists, scalars) may go to the numba
kernels; every other array library (PyTorch, JAX, CuPy, array-api-strict) goes to the
pure array-API reference path and gets its own array type back, on its own device.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat
import numpy as np

from ._validation import check_implementation

__all__ = ["asarray_like", "device_of", "get_namespace", "is_numpy", "numpy_kernel", "select_path", "write_into"]

# array_api_compat's NumPy namespace, made on first use: importing it walks NumPy's lazy
# submodules (numpy.testing, numpy.f2py, numpy.ma), about 0.1 s that a call on a NumPy
# array along the last axis never needs
NUMPY_NS: Any = None

is_jax_namespace = array_api_compat.is_jax_namespace


def numpy_namespace() -> Any:
    """array_api_compat's NumPy namespace (imported on the first call)."""
    global NUMPY_NS
    if NUMPY_NS is None:
        NUMPY_NS = array_api_compat.array_namespace(np.empty(0))
    return NUMPY_NS


def is_numpy(xp: Any) -> bool:
    return xp is not None and (xp is NUMPY_NS or array_api_compat.is_numpy_namespace(xp))


def is_dask_array(x: Any) -> bool:
    return array_api_compat.is_dask_array(x)


def get_namespace(*arrays: Any) -> tuple[Any, list[Any]]:
    """The common array namespace of ``arrays`` and the arrays converted into it.

    ``None`` entries stay ``None``. Python scalars, lists and NumPy scalars count as
    NumPy unless another argument is an array of a different library, in which case they
    are converted to that library.
    """
    for a in arrays:  # the common case (NumPy arrays and None), fast
        if a is not None and type(a) is not np.ndarray:
            break
    else:
        return (NUMPY_NS if NUMPY_NS is not None else numpy_namespace()), list(arrays)
    lib_arrays = [
        a for a in arrays
        if a is not None and array_api_compat.is_array_api_obj(a) and not isinstance(a, np.generic)
    ]
    xp = array_api_compat.array_namespace(*lib_arrays) if lib_arrays else numpy_namespace()
    if array_api_compat.is_numpy_namespace(xp):
        xp = numpy_namespace()
    return xp, [None if a is None else asarray_like(xp, a, like=lib_arrays) for a in arrays]


def write_into(out: Any, res: Any, name: str = "out") -> Any:
    """Copy ``res`` into the preallocated array ``out`` and return ``out``: NumPy's
    ``copyto``, else ``out[...] = res``; an immutable array (JAX) is a TypeError naming
    the parameter."""
    if isinstance(out, np.ndarray):
        np.copyto(out, res)
        return out
    try:
        out[...] = res
    except (TypeError, ValueError, NotImplementedError) as err:
        msg = f"{name} must be a mutable array; cannot write into {type(out).__name__}: {err}"
        raise TypeError(msg) from None
    return out


def asarray_like(xp: Any, a: Any, like: list[Any] | None = None) -> Any:
    """``a`` as an array of namespace ``xp`` (on the device of ``like[0]`` if given)."""
    if xp is NUMPY_NS:
        if isinstance(a, np.ndarray):
            return a
        try:
            return np.asarray(a)
        except (ValueError, TypeError) as err:
            msg = f"could not convert input to an array: {err}"
            raise TypeError(msg) from None
    if array_api_compat.is_array_api_obj(a) and array_api_compat.array_namespace(a) is xp:
        return a
    device = device_of(like[0]) if like else None
    if isinstance(a, np.ndarray) and a.dtype == np.float64 and not _can_float64(xp, device):
        a = a.astype(np.float32)
    return xp.asarray(a, device=device) if device is not None else xp.asarray(a)


def _can_float64(xp: Any, device: Any) -> bool:
    from ._validation import supports_float64

    return supports_float64(xp, device)


def device_of(x: Any) -> Any:
    try:
        return array_api_compat.device(x)
    except Exception:
        return None


# --------------------------------------------------------------------------- paths
# name -> (module, attribute, minimum size) of a NumPy kernel. Kept as strings so that
# numba is imported only when a kernel is first used.
#
# The contract of a kernel: ``kernel(x, axes, scale, mask, out)`` for the distributions
# (``softmax``, ``log_softmax``; softmin is softmax with ``scale.sign == -1``) and
# ``kernel(x, axes, scale, mask, b) -> (lse, sign)`` with keepdims shapes for
# ``logsumexp``. ``x`` is a validated NumPy float array (float16/bfloat16 already cast
# to float32), ``axes`` a sorted tuple, ``mask`` a bool array of x's shape or None, and
# ``out`` None or an array of the result dtype that the kernel fills and returns where it
# can (the caller copies a result returned apart into ``out``, as when ``out`` shares
# memory with ``x``).
_KERNELS: dict[str, tuple[str, str, int]] = {
    # the minimum size for implementation="auto": below it the first call would pay for
    # importing numba (see softargmax._kernels.api and benchmarks/compare.py)
    "softmax": ("softargmax._kernels.api", "softmax", 0),
    "log_softmax": ("softargmax._kernels.api", "log_softmax", 0),
    "logsumexp": ("softargmax._kernels.api", "logsumexp", 0),
}


def register_kernel(name: str, module: str, attr: str, min_size: int = 0) -> None:
    """Declare a NumPy kernel for ``name`` (imported on first use)."""
    _KERNELS[name] = (module, attr, min_size)


def select_path(name: str, implementation: Any, xp: Any, size: int) -> Any:
    """Return the kernel callable for ``name``, or ``None`` for the reference path.

    ``implementation="reference"`` always gives ``None``; ``"numba"`` demands a kernel
    (NumPy input only); ``"auto"`` takes the kernel for NumPy input of at least the
    kernel's minimum size.
    """
    if implementation == "auto" and xp is NUMPY_NS and xp is not None:  # the common case
        return numpy_kernel(name, size)
    implementation = check_implementation(implementation)
    if implementation == "reference":
        return None
    if not is_numpy(xp):
        if implementation == "numba":
            msg = f"implementation='numba' needs NumPy input, got arrays of {xp.__name__}"
            raise ValueError(msg)
        return None
    if implementation == "auto":
        return numpy_kernel(name, size)
    entry = _KERNELS.get(name)
    if entry is None:
        msg = f"implementation='numba' is not available for {name}"
        raise ValueError(msg)
    return _load(entry)


def numpy_kernel(name: str, size: int) -> Any:
    """The kernel that ``implementation="auto"`` picks for NumPy input of ``size``
    elements, or ``None`` (no kernel, or the input is below its minimum size)."""
    entry = _KERNELS.get(name)
    if entry is None or size < entry[2]:
        return None
    return _load(entry)


def _load(entry: tuple[str, str, int]) -> Any:
    fn = _LOADED.get(entry)
    if fn is None:
        fn = _LOADED[entry] = getattr(importlib.import_module(entry[0]), entry[1])
    return fn


# kernels already imported, by their _KERNELS entry (saves an import look-up per call)
_LOADED: dict[tuple[str, str, int], Any] = {}
