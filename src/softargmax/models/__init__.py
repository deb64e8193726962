"""Models built on softmax, with scikit-learn conventions.

``SoftmaxRegression`` and the calibration tools need scikit-learn and SciPy (the ``sklearn``
extra); they are imported on first access, so ``import softargmax.models`` does not.
"""

from __future__ import annotations

import importlib
from typing import Any

from .policy import BoltzmannPolicy

__all__ = [
    "BoltzmannPolicy",
    "SoftmaxRegression",
    "TemperatureScaling",
    "expected_calibration_error",
    "reliability_diagram",
]

_LAZY = {
    "SoftmaxRegression": ".regression",
    "TemperatureScaling": ".calibration",
    "expected_calibration_error": ".calibration",
    "reliability_diagram": ".calibration",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
