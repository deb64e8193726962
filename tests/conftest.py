"""Shared fixtures: array backends, implementations, hypothesis profiles, ``--runslow``."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """Tiny BLAS calls under ``pytest -n 2`` are much slower with threads fighting for 2 cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Backend:
    """An array library under test: converts NumPy arrays in and out."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name in ("numpy", "numpy_readonly"):
            self.xp: Any = np
        elif name == "array_api_strict":
            import array_api_strict

            self.xp = array_api_strict
        elif name == "torch":
            import torch

            torch.set_num_threads(1)
            self.xp = torch
        elif name == "jax":
            import jax.numpy as jnp

            self.xp = jnp
        else:  # pragma: no cover
            raise ValueError(name)

    def __repr__(self) -> str:
        return self.name

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
        if self.name == "numpy":
            return a.copy()
        if self.name == "numpy_readonly":
            a = a.copy()
            a.flags.writeable = False
            return a
        if self.name == "torch":
            import torch

            return torch.from_numpy(np.ascontiguousarray(a).copy())
        return self.xp.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        if self.name == "torch":
            return a.detach().cpu().numpy()
        if self.name == "array_api_strict":
            return np.asarray(a._array) if hasattr(a, "_array") else np.asarray(a)
        return np.asarray(a)

    def is_own(self, a: Any) -> bool:
        if self.name in ("numpy", "numpy_readonly"):
            return isinstance(a, (np.ndarray, np.generic))
        if self.name == "torch":
            import torch

            return isinstance(a, torch.Tensor)
        if self.name == "jax":
            import jax

            return isinstance(a, jax.Array)
        return type(a).__module__.startswith("array_api_strict")


BACKENDS = ["numpy", "numpy_readonly"] + [
    n for n, mod in (("array_api_strict", "array_api_strict"), ("torch", "torch"), ("jax", "jax"))
    if have(mod)
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return Backend(request.param)


def _implementations() -> list[str]:
    from softargmax import _backend

    return ["reference", "numba"] if "softmax" in _backend._KERNELS else ["reference"]


@pytest.fixture(params=_implementations())
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)
