"""The installed ``softargmax`` command, run in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import softargmax

_SCRIPT = Path(sys.executable).with_name("softargmax")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "softargmax.cli"]
SRC = str(Path(softargmax.__file__).resolve().parents[1])


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [*COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def values(out: str) -> np.ndarray:
    return np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])


def test_softmax_seven_numbers():
    res = run("softmax", "1", "2", "3", "4", "1", "2", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "0.02364054 0.06426166 0.1746813 0.474833 0.02364054 0.06426166 0.1746813\n"
    assert res.stderr == ""


def test_python_dash_m_runs_the_command():
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "softargmax", "softmax", "0", "0"],
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert (res.returncode, res.stdout, res.stderr) == (0, "0.5 0.5\n", "")


def test_options():
    got = values(run("softmax", "1", "2", "3", "--temperature", "0.5").stdout)
    np.testing.assert_allclose(got[0], softargmax.softmax([1.0, 2.0, 3.0], temperature=0.5), rtol=1e-6)
    got = values(run("softmax", "--log", "1000", "1001").stdout)
    np.testing.assert_allclose(got[0], softargmax.log_softmax([1000.0, 1001.0]), rtol=1e-6)
    got = values(run("log-softmax", "-1e5", "-inf", "0", "--beta", "-2").stdout)
    np.testing.assert_array_equal(got[0], [-np.inf, 0.0, -np.inf])
    got = values(run("softmax", "1", "2", "--base", "2", "--precision", "3").stdout)
    assert run("softmax", "1", "2", "--base", "2", "--precision", "3").stdout == "0.333 0.667\n"
    np.testing.assert_allclose(got[0], [1 / 3, 2 / 3], rtol=1e-3)
    assert run("logsumexp", "1000", "1000").stdout == f"{1000 + np.log(2):.7g}\n"
    assert run("hardmax", "1", "3", "3").stdout == "0 0.5 0.5\n"
    assert run("softmin", "1", "2").stdout.split()[0].startswith("0.731")


def test_files_and_formats(tmp_path):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]])
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.csv").write_text("1,2,3\n4,5,7\n")
    (tmp_path / "x.txt").write_text("1 2 3\n\n4 5 7\n")
    expected = softargmax.softmax(x)
    for name in ("x.npy", "x.csv", "x.txt"):
        res = run("softmax", "-i", str(tmp_path / name), "--format", "json")
        assert res.returncode == 0, res.stderr
        np.testing.assert_allclose(json.loads(res.stdout), expected, rtol=1e-15)
    res = run("softmax", "-i", "-", "--format", "csv", stdin="1 2 3\n4 5 7\n")
    np.testing.assert_allclose(np.loadtxt(res.stdout.splitlines(), delimiter=","), expected, rtol=1e-15)
    out = tmp_path / "p.npy"
    assert run("softmax", "-i", str(tmp_path / "x.csv"), "--format", "npy", "-o", str(out)).returncode == 0
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-15)
    # --axis 0: each column is a distribution, printed one per line
    res = run("softmax", "-i", str(tmp_path / "x.txt"), "--axis", "0")
    np.testing.assert_allclose(values(res.stdout), softargmax.softmax(x, axis=0).T, rtol=1e-6)
    res = run("logsumexp", "-i", str(tmp_path / "x.txt"))
    np.testing.assert_allclose(values(res.stdout).ravel(), softargmax.logsumexp(x, axis=-1), rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (("softmax", "1", "two", "3"), None, "not a number: 'two'"),
        (("softmax",), None, "no numbers given"),
        (("softmax", "-i", "/no/such/file.csv"), None, "No such file"),
        (("softmax", "-i", "BAD.npy"), None, "cannot read"),
        (("softmax", "-i", "-"), "1 2\n3\n", "different lengths"),
        (("softmax", "-i", "-"), "", "no numbers"),
        (("softmax", "1", "2", "--temperature", "0"), None, "temperature must be"),
        (("softmax", "1", "2", "--temperature", "hot"), None, "invalid float value"),
        (("softmax", "1", "2", "--base", "1"), None, "base must be"),
        (("softmax", "1", "2", "--beta", "1", "--temperature", "2"), None, "not allowed with"),
        (("softmax", "1", "2", "--axis", "4"), None, "out of bounds"),
        (("softmax", "1", "2", "--format", "xml"), None, "invalid choice"),
        (("softmax", "1", "2", "--precision", "0"), None, "positive integer"),
        (("softmax", "1", "2", "-i", "x.csv"), None, "not both"),
        (("hardmax", "1", "2", "--beta", "2"), None, "hardmax takes no"),
        (("frobnicate",), None, "invalid choice"),
    ],
)
def test_user_mistakes_are_one_line_and_status_2(tmp_path, args, stdin, fragment):
    (tmp_path / "BAD.npy").write_text("this is not numpy")
    args = tuple(str(tmp_path / a) if a == "BAD.npy" else a for a in args)
    res = run(*args, stdin=stdin)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


def test_demo():
    res = run("demo")
    assert res.returncode == 0, res.stderr
    assert "0.02364054 0.06426166 0.1746813 0.474833" in res.stdout
    assert "hardmax" in res.stdout and "logsumexp" in res.stdout
