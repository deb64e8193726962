"""``softargmax demo``: a short tour of the library, printed as text.

The core sections are here; modules that add a section define ``demo_section() -> str``
and are listed in ``_SECTIONS`` (skipped while a module is absent).
"""

from __future__ import annotations

import importlib

import numpy as np

from .core import hardmax, log_softmax, logsumexp, softmax

_SECTIONS = (
    "softargmax.boltzmann",
    "softargmax.sampling",
    "softargmax.models.regression",
    "softargmax.models.calibration",
    "softargmax.models.policy",
    "softargmax.attention",
)


def _row(values: np.ndarray, width: int = 9) -> str:
    return " ".join(f"{float(v):{width}.4g}" for v in values)


def core_tour() -> str:
    lines = ["softargmax: the softmax function family", "=" * 40, ""]
    x = np.array([1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0])
    lines += [
        "softmax([1, 2, 3, 4, 1, 2, 3])",
        "  " + " ".join(f"{v:.7g}" for v in softmax(x)),
        "softmax([5, 7, 10])",
        "  " + " ".join(f"{v:.4f}" for v in softmax([5.0, 7.0, 10.0])),
        "",
        "Temperature sweep of [1, 2, 3, 4]: low T -> arg max, high T -> uniform",
        f"  {'T':>6} | {'p1':>9} {'p2':>9} {'p3':>9} {'p4':>9}",
    ]
    s = np.array([1.0, 2.0, 3.0, 4.0])
    for t in (0.05, 0.25, 1.0, 4.0, 100.0):
        lines.append(f"  {t:>6g} | {_row(softmax(s, temperature=t))}")
    ties = np.array([1.0, 3.0, 3.0, 2.0])
    lines += [
        "",
        "The arg max limit (beta -> inf) of [1, 3, 3, 2]: tied maxima share the mass",
        f"  beta = 1     {_row(softmax(ties))}",
        f"  beta = 10    {_row(softmax(ties, beta=10.0))}",
        f"  beta = 1000  {_row(softmax(ties, beta=1000.0))}",
        f"  hardmax      {_row(hardmax(ties))}",
        "",
        "logsumexp is a smooth max: max(x) <= logsumexp(x) <= max(x) + log(n)",
    ]
    for t in (1.0, 0.1, 0.01):
        lse = float(logsumexp(s, temperature=t)) * t
        lines.append(f"  T = {t:<5g} T * logsumexp(x / T) = {lse:.6f}   (max = 4)")
    lines += [
        "",
        "Exact at the edges",
        f"  softmax([1000, 1001])            = {_row(softmax([1000.0, 1001.0]))}   (naive exp overflows)",
        f"  log_softmax([0, -50])[0]         = {float(log_softmax([0.0, -50.0])[0]):.6e}   (naive: 0)",
        f"  softmax([inf, 1, inf])           = {_row(softmax([np.inf, 1.0, np.inf]))}",
        f"  softmax([1, 2], where=[F, F])    = {_row(softmax([1.0, 2.0], where=np.array([False, False])))}   (never NaN)",
        f"  logsumexp(100000 float16 zeros)  = {float(logsumexp(np.zeros(100_000, np.float16))):.4f}   (log 1e5 = 11.5129)",
        "",
    ]
    return "\n".join(lines)


def tour() -> str:
    parts = [core_tour()]
    for module in _SECTIONS:
        try:
            section = importlib.import_module(module).demo_section
        except (ImportError, AttributeError):
            continue
        parts.append(section().rstrip("\n") + "\n")
    return "\n".join(parts)
