"""numba kernels for NumPy input (imported lazily, never at ``import softargmax``)."""
