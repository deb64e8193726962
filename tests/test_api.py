"""The public surface: ``__all__`` is honest, every public name is documented with examples."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import softargmax


def test_all_names_exist_and_are_documented():
    for name in softargmax.__all__:
        obj = getattr(softargmax, name)
        if name.startswith("__"):
            continue
        doc = inspect.getdoc(obj) or ""
        assert "Examples" in doc, f"{name} has no Examples section"
        assert "Parameters" in doc or inspect.isclass(obj), f"{name} has no Parameters section"


def test_every_public_module_name_is_exported():
    """Each public module's ``__all__`` is re-exported at the top level."""
    for info in pkgutil.iter_modules(softargmax.__path__):
        if info.name.startswith("_") or info.name in ("cli", "bench", "dask"):
            continue  # softargmax.dask reuses core's names; Dask arrays are routed to it
        module = importlib.import_module(f"softargmax.{info.name}")
        if info.ispkg:  # subpackages (models, large_output) export their own names
            for sub in pkgutil.iter_modules(module.__path__):
                if sub.name.startswith("_"):
                    continue
                submodule = importlib.import_module(f"{module.__name__}.{sub.name}")
                for name in getattr(submodule, "__all__", []):
                    assert getattr(module, name) is getattr(submodule, name), f"{module.__name__}.{name}"
            continue
        for name in getattr(module, "__all__", []):
            assert name in softargmax.__all__, f"softargmax.{info.name}.{name} is not exported"
            assert getattr(softargmax, name) is getattr(module, name)


def test_subpackage_names_are_documented():
    import softargmax.large_output
    import softargmax.models

    for pkg in (softargmax.models, softargmax.large_output):
        for name in getattr(pkg, "__all__", []):
            assert "Examples" in (inspect.getdoc(getattr(pkg, name)) or ""), f"{pkg.__name__}.{name}"


def test_import_does_not_import_numba():
    # nor array_api_compat's NumPy namespace, which imports numpy.f2py, numpy.ma and
    # numpy.testing (about 0.1 s): it is made on the first call that needs it
    code = "import sys, softargmax; print('numba' in sys.modules, 'array_api_compat.numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_core_tour_example_runs():
    import runpy
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "core_tour.py"
    runpy.run_path(str(path), run_name="__main__")
