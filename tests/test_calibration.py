"""Calibration: TemperatureScaling (recovers a known T, first-order condition, edges),
expected_calibration_error (hand-made cases, an independent loop implementation),
reliability_diagram (a real PNG) and the calibration_digits example."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import brentq
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from softargmax.models.calibration import (
    TemperatureScaling,
    demo_section,
    expected_calibration_error,
    reliability_diagram,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "calibration_digits.py"


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):  # tiny problems, shared machine
        yield


def synthetic(T0, n=20000, k=10, seed=0):
    """Labels drawn from softmax(z); the model reports T0 * z, i.e. temperature T0 fixes it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.5, size=(n, k))
    p = sp_softmax(z, axis=1)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return T0 * z, y


def nll_derivative_in_beta(logits, y, beta, w=None):
    """d/dbeta of the mean NLL of softmax(beta * z): E_p[z] - z_y (independent, scipy)."""
    p = sp_softmax(beta * logits, axis=1)
    d = (p * logits).sum(axis=1) - logits[np.arange(len(y)), y]
    return float(np.average(d, weights=w))


def guo_ece(probs, y, n_bins):
    """The loop of Guo et al.'s reference code (their ``_ECELoss``), in NumPy."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    acc = pred == y
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (conf > lo) & (conf <= hi)
        if lo == 0:
            in_bin |= conf == 0
        if in_bin.any():
            ece += in_bin.mean() * abs(acc[in_bin].mean() - conf[in_bin].mean())
    return ece


# --------------------------------------------------------------------------- temperature
@pytest.mark.parametrize("T0", [0.4, 1.0, 2.5, 7.0])
def test_recovers_known_temperature(T0):
    logits, y = synthetic(T0)
    ts = TemperatureScaling().fit(logits, y)
    # Statistical error of the MLE with 20 000 samples: about 1 %.
    assert ts.temperature_ == pytest.approx(T0, rel=0.03)
    # And it is the exact minimiser: the independent first-order condition in beta = 1/T,
    # solved by brentq, gives the same T to the solver's tolerance.
    beta = brentq(lambda b: nll_derivative_in_beta(logits, y, b), 0.01, 100.0, xtol=1e-14)
    assert ts.temperature_ == pytest.approx(1 / beta, rel=1e-6)
    assert ts.nll_ <= ts.nll_before_
    nll_at_t = -sp_log_softmax(logits / ts.temperature_, axis=1)[np.arange(len(y)), y].mean()
    assert ts.nll_ == pytest.approx(nll_at_t, rel=1e-12)


@settings(max_examples=25)
@given(
    n=st.integers(5, 200),
    k=st.integers(2, 6),
    scale=st.sampled_from([0.1, 1.0, 10.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_satisfies_first_order_condition(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, size=n)
    ts = TemperatureScaling().fit(logits, y)
    lo, hi = ts.bounds
    assert lo <= ts.temperature_ <= hi
    d = nll_derivative_in_beta(logits, y, 1 / ts.temperature_)
    at_bound = min(abs(math.log(ts.temperature_ / lo)), abs(math.log(ts.temperature_ / hi)))
    if at_bound > 1e-4:  # interior optimum: the derivative vanishes
        spread = np.abs(logits).max() + 1e-300
        assert abs(d) <= 1e-5 * spread
    elif ts.temperature_ < lo * 1.001:  # optimum below the interval: NLL still falling
        assert d <= 1e-9 * np.abs(logits).max()
    else:
        assert d >= -1e-9 * np.abs(logits).max()
    # The fitted T is at least as good as a grid of others.
    grid = np.geomspace(lo, hi, 41)
    nlls = [-sp_log_softmax(logits / t, axis=1)[np.arange(n), y].mean() for t in grid]
    assert ts.nll_ <= min(nlls) + 1e-9 * max(1.0, abs(min(nlls)))


def test_temperature_hits_the_bounds():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(500, 4))
    # Every prediction right: sharper is always better, T goes to the lower bound.
    ts = TemperatureScaling(bounds=(0.05, 20.0)).fit(z, z.argmax(axis=1))
    assert ts.temperature_ == 0.05
    # Every prediction wrong (always the smallest logit): flatter is better, the upper bound.
    ts = TemperatureScaling(bounds=(0.05, 20.0)).fit(z, z.argmin(axis=1))
    assert ts.temperature_ == 20.0


def test_transform_and_probabilities():
    logits, y = synthetic(3.0, n=5000)
    ts = TemperatureScaling().fit(logits, y)
    T = ts.temperature_
    assert_allclose(ts.transform(logits), logits / T, rtol=1e-15)
    P = ts.predict_proba(logits)
    assert_allclose(P, sp_softmax(logits / T, axis=1), rtol=1e-12, atol=1e-300)
    assert_allclose(ts.predict_log_proba(logits), sp_log_softmax(logits / T, axis=1), rtol=1e-12)
    assert_array_equal(P.argmax(axis=1), logits.argmax(axis=1))  # accuracy unchanged
    assert_allclose(ts.fit_transform(logits, y), logits / T)
    # Huge logits stay exact; -inf marks an impossible class (probability 0).
    ts = TemperatureScaling().fit(*synthetic(3.0, n=1000, k=3))
    T = ts.temperature_
    big = np.array([[1e300, -1e300, 0.0], [1.0, -np.inf, 2.0]])
    Pb = ts.predict_proba(big)
    assert np.isfinite(Pb).all()
    assert Pb[0, 0] == 1.0 and Pb[1, 1] == 0.0
    assert_allclose(Pb[1], sp_softmax(np.array([1.0, -np.inf, 2.0]) / T), rtol=1e-12)


def test_input_dtypes_and_binary_logodds():
    logits, y = synthetic(2.0, n=4000, k=2)
    two = TemperatureScaling().fit(logits, y)
    # 1-D log-odds of class 1 are the logits [0, z]; the same temperature.
    one = TemperatureScaling().fit(logits[:, 1] - logits[:, 0], y)
    assert one.temperature_ == pytest.approx(two.temperature_, rel=1e-6)
    assert one.transform(np.array([2.0, -4.0])).shape == (2,)
    assert one.predict_proba(np.array([2.0])).shape == (1, 2)
    f32 = TemperatureScaling().fit(logits.astype(np.float32), y)
    assert f32.temperature_ == pytest.approx(two.temperature_, rel=1e-5)
    ints = TemperatureScaling().fit(np.round(logits).astype(np.int64), y)
    assert 0.5 < ints.temperature_ < 5
    f16 = TemperatureScaling().fit(logits.astype(np.float16), y)
    assert f16.temperature_ == pytest.approx(two.temperature_, rel=1e-2)


def test_sample_weights_repetition_and_zero_weights():
    logits, y = synthetic(2.0, n=3000, seed=4)
    w = np.random.default_rng(1).integers(0, 4, size=len(y))
    weighted = TemperatureScaling().fit(logits, y, sample_weight=w)
    repeated = TemperatureScaling().fit(np.repeat(logits, w, axis=0), np.repeat(y, w))
    assert weighted.temperature_ == pytest.approx(repeated.temperature_, rel=1e-6)
    # A zero-weight sample does not count, even one whose true class has logit -inf.
    bad = logits.copy()
    bad[0, y[0]] = -np.inf
    w0 = np.ones(len(y))
    w0[0] = 0
    ts = TemperatureScaling().fit(bad, y, sample_weight=w0)
    ref = TemperatureScaling().fit(logits[1:], y[1:])
    assert ts.temperature_ == pytest.approx(ref.temperature_, rel=1e-6)


def test_inputs_not_modified_and_clone():
    logits, y = synthetic(2.0, n=1000)
    l0, y0 = logits.copy(), y.copy()
    ts = TemperatureScaling(bounds=(0.1, 10.0)).fit(logits, y)
    ts.transform(logits)
    ts.predict_proba(logits)
    assert_array_equal(logits, l0)
    assert_array_equal(y, y0)
    c = clone(ts)
    assert c.get_params() == {"bounds": (0.1, 10.0), "xtol": 1e-7}
    assert not hasattr(c, "temperature_")


@pytest.mark.parametrize(
    ("logits", "y", "kwargs", "exc", "match"),
    [
        ([[1.0, np.nan]], [0], {}, ValueError, "logits must not contain NaN"),
        ([[1.0, np.inf]], [0], {}, ValueError, r"\+inf"),
        ([[1.0, -np.inf]], [1], {}, ValueError, "true class are -inf in 1 sample"),
        ([[1.0, 2.0]], [2], {}, ValueError, r"class indices in \[0, 1\]"),
        ([[1.0, 2.0]], [-1], {}, ValueError, "class indices"),
        ([[1.0, 2.0]], [0.0], {}, TypeError, "integer class indices, got dtype float64"),
        ([[1.0, 2.0]], [0, 1], {}, ValueError, r"shape \(1,\)"),
        ([[1.0], [2.0]], [0, 0], {}, ValueError, "at least 2 classes"),
        ([[[1.0, 2.0]]], [0], {}, ValueError, "2-D"),
        ([["a", "b"]], [0], {}, TypeError, "logits must be an array of real numbers"),
        (np.zeros((0, 3)), np.zeros(0, int), {}, ValueError, "at least one sample"),
        ([[1.0, 2.0]], [0], {"sample_weight": [-1.0]}, ValueError, "non-negative"),
        ([[1.0, 2.0]], [0], {"sample_weight": [0.0]}, ValueError, "not all zero"),
        ([[1.0, 2.0]], [0], {"sample_weight": [1.0, 1.0]}, ValueError, "sample_weight must have"),
    ],
)
def test_fit_bad_input(logits, y, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TemperatureScaling().fit(np.asarray(logits), np.asarray(y), **kwargs)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"bounds": (0.0, 1.0)}, "0 < T_min < T_max"),
        ({"bounds": (2.0, 1.0)}, "0 < T_min < T_max"),
        ({"bounds": (1.0, np.inf)}, "0 < T_min < T_max < inf"),
        ({"bounds": 3.0}, "pair of floats"),
        ({"xtol": 0.0}, "xtol must be a real number > 0"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        TemperatureScaling(**params).fit(np.array([[1.0, 2.0]]), np.array([0]))


def test_unfitted_and_wrong_width():
    with pytest.raises(NotFittedError):
        TemperatureScaling().transform(np.zeros((2, 3)))
    ts = TemperatureScaling().fit(*synthetic(1.0, n=200, k=3))
    with pytest.raises(ValueError, match="3 classes as in fit, got 4"):
        ts.predict_proba(np.zeros((2, 4)))


# --------------------------------------------------------------------------- ECE
def test_ece_hand_made_cases():
    # Perfectly calibrated: 10 predictions at 0.7, 7 right.
    probs = np.tile([0.7, 0.3], (10, 1))
    y = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(probs, y) == pytest.approx(0.0, abs=1e-15)
    # Certain and always right / always wrong.
    onehot = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(onehot, np.array([0, 1, 2, 1])) == 0.0
    assert expected_calibration_error(onehot, np.array([1, 2, 0, 0])) == 1.0
    # Two bins of 10: (0.9, 1] at 0.95 with 8/10 right, (0.5, 0.6] at 0.55 with 9/10 right.
    probs = np.vstack([np.tile([0.95, 0.05], (10, 1)), np.tile([0.45, 0.55], (10, 1))])
    y = np.array([0] * 8 + [1] * 2 + [1] * 9 + [0])
    expected = 0.5 * abs(0.8 - 0.95) + 0.5 * abs(0.9 - 0.55)
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(expected, rel=1e-14)
    # One bin: |accuracy - mean confidence|.
    assert expected_calibration_error(probs, y, n_bins=1) == pytest.approx(
        abs(17 / 20 - 0.75), rel=1e-14
    )


def test_ece_bin_edges_are_right_closed():
    # With 5 bins, 0.6 belongs to (0.4, 0.6] with 0.5, not to (0.6, 0.8].
    probs = np.array([[0.5, 0.5], [0.6, 0.4]])
    y = np.array([0, 1])  # the first right (tie -> class 0), the second wrong
    assert expected_calibration_error(probs, y, n_bins=5) == pytest.approx(
        abs(0.5 - 0.55), rel=1e-12
    )
    # 0.6 + a hair goes to the next bin: two separate gaps.
    probs2 = np.array([[0.5, 0.5], [0.6000001, 0.3999999]])
    assert expected_calibration_error(probs2, y, n_bins=5) == pytest.approx(
        0.5 * 0.5 + 0.5 * 0.6000001, rel=1e-12
    )
    # Exactly 0 confidence (an all-zero row) is counted in the first bin.
    assert expected_calibration_error(np.zeros((1, 3)), np.array([0])) == 1.0


@settings(max_examples=60)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 5),
    n_bins=st.integers(1, 20),
    on_edges=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_ece_matches_reference_loop(n, k, n_bins, on_edges, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.5), size=n)
    if on_edges:  # confidences exactly on the bin edges
        edges = np.linspace(0, 1, n_bins + 1)
        conf = rng.choice(edges[edges >= 1 / k], size=n)
        probs = np.full((n, k), 0.0)
        probs[:, 0] = conf
        if k > 1:
            probs[:, 1:] = ((1 - conf) / (k - 1))[:, None] * (1 - 1e-12)
    y = rng.integers(0, k, size=n)
    ece = expected_calibration_error(probs, y, n_bins=n_bins)
    assert 0.0 <= ece <= 1.0
    assert ece == pytest.approx(guo_ece(probs, y, n_bins), rel=1e-12, abs=1e-15)


def test_ece_bad_input():
    with pytest.raises(ValueError, match="probabilities in"):
        expected_calibration_error([[0.5, np.nan]], [0])
    with pytest.raises(ValueError, match="probabilities in"):
        expected_calibration_error([[1.5, -0.5]], [0])
    with pytest.raises(ValueError, match="2-D"):
        expected_calibration_error([0.5, 0.5], [0, 1])
    with pytest.raises(ValueError, match="at least one sample"):
        expected_calibration_error(np.zeros((0, 2)), np.zeros(0, int))
    with pytest.raises(TypeError, match="n_bins must be an integer"):
        expected_calibration_error([[0.5, 0.5]], [0], n_bins=2.5)
    with pytest.raises(ValueError, match="n_bins must be an integer >= 1, got 0"):
        expected_calibration_error([[0.5, 0.5]], [0], n_bins=0)
    with pytest.raises(ValueError, match="shape"):
        expected_calibration_error([[0.5, 0.5]], [0, 1])


# --------------------------------------------------------------------------- plot
def test_reliability_diagram_writes_a_png(tmp_path):
    from matplotlib.image import imread

    logits, y = synthetic(3.0, n=2000)
    ts = TemperatureScaling().fit(logits, y)
    panels = {"before": sp_softmax(logits, axis=1), "after": ts.predict_proba(logits)}
    out = reliability_diagram(panels, y, tmp_path / "rel.png", n_bins=10, title="test")
    assert out == tmp_path / "rel.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(out)
    assert img.shape[1] > img.shape[0] > 100  # two panels side by side
    single = reliability_diagram(panels["after"], y, str(tmp_path / "one.png"))
    assert imread(single).shape[1] < img.shape[1]


def test_reliability_diagram_bad_input(tmp_path):
    with pytest.raises(OSError, match="existing folder"):
        reliability_diagram([[0.5, 0.5]], [0], tmp_path / "missing" / "r.png")
    with pytest.raises(ValueError, match="empty mapping"):
        reliability_diagram({}, [0], tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"probs\['a'\]"):
        reliability_diagram({"a": [[np.nan, 1.0]]}, [0], tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


# --------------------------------------------------------------------------- example, demo
def test_calibration_digits_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("calibration_digits", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--output-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    png = tmp_path / "calibration_digits.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line[:4] in
            ("ECE ", "NLL ")}
    ece_before, ece_after = (float(v) for v in rows["ECE"][:2])
    nll_before, nll_after = (float(v) for v in rows["NLL"][:2])
    assert nll_after < 0.5 * nll_before  # a strongly overconfident model, fixed
    assert ece_after < ece_before


def test_demo_section():
    text = demo_section()
    assert text.startswith("Temperature scaling")
    lines = text.splitlines()
    assert len(lines) == 4
    ece = [float(v) for v in lines[2].split()[2::2]]
    assert ece[1] < ece[0]
