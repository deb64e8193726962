"""BoltzmannPolicy: probabilities, schedules, sampling, the score function, the bandit example."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from softargmax.models import policy as policy_module
from softargmax.models.policy import BoltzmannPolicy

INF = np.inf
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- probabilities
@given(
    q=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=st.floats(-50, 50)),
    t=st.floats(0.01, 100),
)
def test_probs_match_scipy(q, t):
    pol = BoltzmannPolicy(t)
    np.testing.assert_allclose(pol.probs(q), scipy.special.softmax(q / t, axis=-1), rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(pol.log_probs(q), scipy.special.log_softmax(q / t, axis=-1), rtol=1e-9, atol=1e-12)


def test_probs_greedy_limit_and_axis():
    q = np.array([[1.0, 3.0, 3.0], [0.0, -1.0, -INF]])
    np.testing.assert_array_equal(BoltzmannPolicy(0.0).probs(q), [[0, 0.5, 0.5], [1, 0, 0]])
    with np.errstate(divide="ignore"):
        expected = np.log([[0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_array_equal(BoltzmannPolicy(0.0).log_probs(q), expected)
    # tiny temperatures approach the limit without NaN
    np.testing.assert_allclose(BoltzmannPolicy(1e-300).probs(q), [[0, 0.5, 0.5], [1, 0, 0]])
    p = BoltzmannPolicy(2.0).probs(q.T, axis=0)
    np.testing.assert_allclose(p, BoltzmannPolicy(2.0).probs(q).T)


def test_probs_other_array_libraries(backend):
    q = backend.asarray(np.array([[0.5, 1.5, -1.0]]))
    for t in (0.5, 0.0):
        p = BoltzmannPolicy(t).probs(q)
        assert backend.is_own(p)
        np.testing.assert_allclose(backend.to_numpy(p), BoltzmannPolicy(t).probs(np.array([[0.5, 1.5, -1.0]])), rtol=1e-6)
    lp = BoltzmannPolicy(0.0).log_probs(q)
    assert backend.is_own(lp)


# --------------------------------------------------------------------------- schedules
def test_schedules():
    assert [BoltzmannPolicy(0.7).temperature_at(s) for s in (0, 10, 10**9)] == [0.7] * 3
    assert BoltzmannPolicy().temperature_at(5) == 1.0
    assert BoltzmannPolicy(0.7, "constant").temperature_at(3) == 0.7
    exp = BoltzmannPolicy(2.0, "exponential", decay=0.9)
    for s in (0, 1, 7, 100):
        assert exp.temperature_at(s) == pytest.approx(2.0 * 0.9**s, rel=1e-15)
    assert exp.temperature_at(100_000) == 0.0  # underflow: the greedy limit
    floored = BoltzmannPolicy(2.0, "exponential", decay=0.5, min_temperature=0.1)
    assert floored.temperature_at(3) == 0.25 and floored.temperature_at(10) == 0.1
    inv = BoltzmannPolicy(3.0, "inverse-time", decay=0.5)
    for s in (0, 1, 4, 1000):
        assert inv.temperature_at(s) == pytest.approx(3.0 / (1 + 0.5 * s), rel=1e-15)
    assert BoltzmannPolicy(3.0, "inverse-time", decay=0.0).temperature_at(99) == 3.0
    assert BoltzmannPolicy(3.0, "inverse-time", decay=1.0, min_temperature=1.0).temperature_at(99) == 1.0
    call = BoltzmannPolicy(schedule=lambda s: 5.0 / np.sqrt(1 + s))
    assert call.temperature_at(3) == 2.5
    assert call.temperature_at(np.int64(8)) == pytest.approx(5 / 3)


def test_schedule_drives_probabilities():
    q = np.array([0.0, 1.0])
    pol = BoltzmannPolicy(1.0, "exponential", decay=0.5)
    for s in (0, 1, 2, 5):
        t = 0.5**s
        np.testing.assert_allclose(pol.probs(q, s), scipy.special.softmax(q / t), rtol=1e-12)
    assert pol.probs(q, 5000).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((-1.0,), {}, ValueError, "temperature must be a finite number >= 0"),
        ((np.nan,), {}, ValueError, "temperature"),
        (("warm",), {}, TypeError, "temperature must be a real number"),
        ((1.0, "linear"), {}, ValueError, "schedule must be None, one of"),
        ((1.0, "exponential"), {}, ValueError, "schedule='exponential' needs decay"),
        ((1.0, "exponential"), {"decay": 1.5}, ValueError, r"decay must be in \(0, 1\]"),
        ((1.0, "exponential"), {"decay": 0.0}, ValueError, "decay"),
        ((1.0, "inverse-time"), {"decay": -0.1}, ValueError, "decay must be a finite number >= 0"),
        ((1.0,), {"decay": 0.5}, ValueError, "decay needs schedule="),
        ((1.0, lambda s: 1.0), {}, ValueError, "temperature must be left out"),
        ((None, lambda s: 1.0), {"decay": 0.5}, ValueError, "decay applies to the named schedules"),
        ((1.0,), {"min_temperature": -1.0}, ValueError, "min_temperature must be a finite number >= 0"),
    ],
)
def test_bad_construction(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        BoltzmannPolicy(*args, **kwargs)


def test_bad_steps_and_schedule_values():
    pol = BoltzmannPolicy(1.0)
    for bad, err in ((-1, ValueError), (1.5, TypeError), (True, TypeError), ("3", TypeError)):
        with pytest.raises(err, match="step must be a non-negative int"):
            pol.temperature_at(bad)
    for value in (-0.5, np.inf, np.nan):
        with pytest.raises(ValueError, match=r"schedule\(2\) must be a finite number >= 0"):
            BoltzmannPolicy(schedule=lambda s, v=value: v).temperature_at(2)
    with pytest.raises(TypeError, match=r"schedule\(0\) must be a real number"):
        BoltzmannPolicy(schedule=lambda s: "hot").probs([0.0, 1.0])


def test_repr():
    assert repr(BoltzmannPolicy(0.5, "exponential", decay=0.9)) == "BoltzmannPolicy(0.5, schedule='exponential', decay=0.9)"


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("t", [0.3, 1.0, 4.0])
def test_sample_chisquare(t):
    q = np.array([[0.0, 0.4, 1.0, -INF], [2.0, 2.0, 0.0, 1.0]])
    pol = BoltzmannPolicy(t)
    draws = pol.sample(q, size=20_000, rng=13)
    assert draws.shape == (20_000, 2)
    p = pol.probs(q)
    for b in range(2):
        counts = np.bincount(draws[:, b], minlength=4)
        keep = p[b] > 0
        assert counts[~keep].sum() == 0
        assert stats.chisquare(counts[keep], p[b][keep] * 20_000).pvalue > 1e-4


def test_greedy_sample_breaks_ties_uniformly():
    q = np.array([1.0, 3.0, 0.0, 3.0, 3.0])
    draws = BoltzmannPolicy(0.0).sample(q, size=9000, rng=2)
    counts = np.bincount(draws, minlength=5)
    assert counts[[0, 2]].sum() == 0
    assert stats.chisquare(counts[[1, 3, 4]]).pvalue > 1e-4


def test_sample_reproducible_shapes_and_errors():
    q = np.random.default_rng(0).normal(size=(6, 4))
    pol = BoltzmannPolicy(0.5, "inverse-time", decay=0.1)
    a = pol.sample(q, 3, rng=11)
    np.testing.assert_array_equal(a, pol.sample(q, 3, rng=11))
    g1, g2 = np.random.default_rng(4), np.random.default_rng(4)
    np.testing.assert_array_equal(pol.sample(q, rng=g1, size=5), pol.sample(q, rng=g2, size=5))
    assert pol.sample(q, size=(2, 3), rng=0).shape == (2, 3, 6)
    assert pol.sample(q, axis=0, rng=0).shape == (4,)
    assert isinstance(pol.sample([0.0, 1.0], rng=0), np.integer)
    with pytest.raises(ValueError, match="q holds a NaN"):
        pol.sample([0.0, np.nan], rng=0)
    with pytest.raises(ValueError, match="no token above -inf"):
        pol.sample([-INF, -INF], rng=0)


# --------------------------------------------------------------------------- score function
@pytest.mark.parametrize("t", [0.25, 1.0, 3.0])
def test_grad_log_prob_matches_torch_autograd(t):
    rng = np.random.default_rng(1)
    q = rng.normal(size=(5, 7)) * 2
    a = rng.integers(0, 7, size=5)
    g = BoltzmannPolicy(t).grad_log_prob(q, a)
    qt = torch.tensor(q, requires_grad=True)
    torch.log_softmax(qt / t, dim=-1)[torch.arange(5), torch.tensor(a)].sum().backward()
    np.testing.assert_allclose(g, qt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_grad_log_prob_finite_differences_and_axis():
    q = np.array([[0.3, -1.2, 2.0], [1.0, 1.0, 1.0]])
    a = np.array([2, 0])
    pol = BoltzmannPolicy(0.7)
    g = pol.grad_log_prob(q, a)
    h = 1e-6
    for i in range(2):
        for j in range(3):
            d = np.zeros_like(q)
            d[i, j] = h
            fd = (pol.log_probs(q + d)[i, a[i]] - pol.log_probs(q - d)[i, a[i]]) / (2 * h)
            assert g[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(pol.grad_log_prob(q.T, a, axis=0), g.T)
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-15)
    # a masked (-inf) action neither gets nor gives gradient
    gm = pol.grad_log_prob(np.array([0.0, -INF, 1.0]), np.array(0))
    assert gm[1] == 0 and not np.isnan(gm).any()


def test_grad_log_prob_errors():
    pol = BoltzmannPolicy(1.0)
    q = np.zeros((2, 3))
    with pytest.raises(ValueError, match="actions must have the batch shape"):
        pol.grad_log_prob(q, [0, 1, 2])
    with pytest.raises(TypeError, match="actions must be integer action indices"):
        pol.grad_log_prob(q, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"actions must be in \[0, 3\)"):
        pol.grad_log_prob(q, [0, 3])
    with pytest.raises(ValueError, match="needs a temperature > 0"):
        BoltzmannPolicy(0.0).grad_log_prob(q, [0, 1])


# --------------------------------------------------------------------------- the bandit example
@pytest.fixture(scope="module")
def bandit():
    return load_example("bandit_softmax")


def test_bandit_example_runs(bandit, tmp_path, capsys):
    argv = ["--runs", "40", "--steps", "30", "--temperatures", "0.1", "1", "--epsilons", "0.1",
            "--output-dir", str(tmp_path)]
    assert bandit.main(argv) == 0
    out = capsys.readouterr().out
    assert "softmax T=0.1" in out and "gradient alpha=0.4 without baseline" in out
    assert (tmp_path / "bandit_softmax.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradient_bandit_has_the_shape_of_figure_2_5(bandit):
    """With the baseline both step sizes learn far better than without it (q* ~ N(4, 1))."""
    rng = np.random.default_rng(0)
    q_star = rng.normal(4.0, 1.0, (400, 10))
    final = {}
    for alpha in (0.1, 0.4):
        for base in (True, False):
            curve, _ = bandit.run_gradient_bandit(alpha, base, q_star, 250, np.random.default_rng([7, int(base)]))
            final[alpha, base] = curve[-50:].mean()
    assert final[0.1, True] > final[0.1, False] + 10
    assert final[0.4, True] > final[0.4, False] + 20
    assert final[0.1, False] > final[0.4, False]
    assert min(final[0.1, True], final[0.4, True]) > 60


def test_demo_section():
    text = policy_module.demo_section()
    assert "gradient bandit" in text and "nan" not in text.lower()
