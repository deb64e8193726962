"""The Boltzmann distribution: closed forms, mpmath, thermodynamic identities, edges, Ising."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.exceptions import AxisError
from scipy import stats
from scipy.special import expit, log_expit

from softargmax import boltzmann
from softargmax.boltzmann import Boltzmann

INF = np.inf
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROPS = ("log_partition", "free_energy", "mean_energy", "entropy", "heat_capacity")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def mp_thermo(energies, beta, dps=60):
    """ln Z, F, U, S, C and the probabilities by direct sums in mpmath (exact inputs)."""
    with mpmath.workdps(dps):
        b = mpmath.mpf(beta)
        e = [mpmath.mpf(float(v)) for v in energies]
        m = min(e) if b > 0 else max(e)
        w = [mpmath.exp(-b * (v - m)) for v in e]
        z = mpmath.fsum(w)
        p = [x / z for x in w]
        lnz = -b * m + mpmath.log(z)
        u = mpmath.fsum(pi * v for pi, v in zip(p, e, strict=True))
        var = mpmath.fsum(pi * (v - u) ** 2 for pi, v in zip(p, e, strict=True))
        s = -mpmath.fsum(pi * mpmath.log(pi) for pi in p if pi > 0)
        return {
            "log_partition": float(lnz),
            "free_energy": float(-lnz / b),
            "mean_energy": float(u),
            "entropy": float(s),
            "heat_capacity": float(b * b * var),
            "probs": np.array([float(pi) for pi in p]),
        }


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("beta", [-3.0, -0.5, 0.01, 0.5, 1.0, 2.0, 40.0, 800.0])
@pytest.mark.parametrize("gap", [1.0, 0.25, 7.5])
def test_two_level_system(beta, gap):
    b = Boltzmann([0.0, gap], beta=beta)
    x = beta * gap
    p1 = expit(-x)
    assert b.probs[1] == pytest.approx(p1, rel=1e-14, abs=1e-300)
    assert b.probs[0] == pytest.approx(expit(x), rel=1e-14, abs=1e-300)
    assert float(b.log_partition) == pytest.approx(np.logaddexp(0.0, -x), rel=1e-14, abs=1e-300)
    assert float(b.mean_energy) == pytest.approx(gap * p1, rel=1e-13, abs=1e-300)
    # C = x^2 e^x / (1 + e^x)^2 = x^2 p0 p1
    c = x * x * expit(x) * expit(-x)
    assert float(b.heat_capacity) == pytest.approx(c, rel=1e-12, abs=1e-300)
    s = -(expit(x) * log_expit(x) + expit(-x) * log_expit(-x))
    assert float(b.entropy) == pytest.approx(s, rel=1e-12, abs=1e-300)


def test_temperature_is_exact_division():
    t = 3.0
    bt = Boltzmann([0.0, 1.0, 2.5], temperature=t)
    assert bt.beta == pytest.approx(1 / 3) and bt.temperature == 3.0
    ref = mp_thermo([0.0, 1.0, 2.5], mpmath.mpf(1) / 3)
    for k in PROPS:
        assert float(getattr(bt, k)) == pytest.approx(ref[k], rel=1e-14)
    assert Boltzmann([0.0, 1.0]).beta == 1.0  # neither: beta = 1


@pytest.mark.parametrize("beta", [0.05, 0.7, 3.0])
def test_truncated_harmonic_oscillator(beta):
    """E_n = n + 1/2, n < N: ln Z = -beta/2 + ln(1 - e^{-beta N}) - ln(1 - e^{-beta})."""
    n = 60
    energies = np.arange(n) + 0.5

    def lnz(b):
        return -b / 2 + mpmath.log(-mpmath.expm1(-b * n)) - mpmath.log(-mpmath.expm1(-b))

    with mpmath.workdps(50):
        b = mpmath.mpf(beta)
        u = -mpmath.diff(lnz, b)
        c = b**2 * mpmath.diff(lnz, b, 2)
        expected = {
            "log_partition": float(lnz(b)),
            "free_energy": float(-lnz(b) / b),
            "mean_energy": float(u),
            "entropy": float(lnz(b) + b * u),
            "heat_capacity": float(c),
        }
    osc = Boltzmann(energies, beta=beta)
    for k, v in expected.items():
        assert float(getattr(osc, k)) == pytest.approx(v, rel=1e-12), k


# --------------------------------------------------------------------------- mpmath, identities
energy_rows = hnp.arrays(
    np.float64,
    st.integers(1, 12),
    elements=st.floats(-1e3, 1e3, allow_subnormal=False),
)


@given(
    e=energy_rows,
    offset=st.sampled_from([0.0, 1e6, -1e9]),
    beta=st.sampled_from([-2.0, -0.01, 1e-4, 0.3, 1.0, 5.0]),
)
def test_against_mpmath(e, offset, beta):
    e = e + offset
    b = Boltzmann(e, beta=beta)
    ref = mp_thermo(e, beta)
    np.testing.assert_allclose(b.probs, ref["probs"], rtol=1e-9, atol=1e-300)
    spread = float(np.ptp(e)) + 1.0
    assert float(b.log_partition) == pytest.approx(ref["log_partition"], rel=1e-12, abs=1e-9 * abs(beta) * spread)
    assert float(b.free_energy) == pytest.approx(ref["free_energy"], rel=1e-12, abs=1e-9 * spread)
    assert float(b.mean_energy) == pytest.approx(ref["mean_energy"], rel=1e-12, abs=1e-9 * spread)
    assert float(b.entropy) == pytest.approx(ref["entropy"], rel=1e-10, abs=1e-13)
    assert float(b.heat_capacity) == pytest.approx(ref["heat_capacity"], rel=1e-10, abs=1e-13)


@given(e=energy_rows, t=st.floats(0.05, 50))
def test_thermodynamic_identities(e, t):
    b = Boltzmann(e, temperature=t)
    u, s, f, c = (float(getattr(b, k)) for k in ("mean_energy", "entropy", "free_energy", "heat_capacity"))
    scale = float(np.abs(e).max()) + t
    assert f == pytest.approx(u - t * s, abs=1e-10 * scale)
    # C = beta^2 Var(E) and C = dU/dT
    var = float(np.sum(b.probs * (e - u) ** 2))
    assert c == pytest.approx(var / t**2, rel=1e-7, abs=1e-10)
    h = 1e-5 * t
    du = (float(Boltzmann(e, temperature=t + h).mean_energy) - float(Boltzmann(e, temperature=t - h).mean_energy)) / (2 * h)
    assert c == pytest.approx(du, rel=1e-4, abs=1e-6 * scale / t)
    assert s >= -1e-15 and s <= np.log(e.size) + 1e-12
    if abs(float(b.log_partition)) < 700:
        assert float(b.partition) == pytest.approx(np.exp(float(b.log_partition)), rel=1e-14)


# --------------------------------------------------------------------------- huge and tiny
def test_huge_energies_next_floats_apart():
    e0 = 1e300
    e1 = float(np.nextafter(e0, INF))
    gap = e1 - e0
    b = Boltzmann([e0, e1], beta=1.0 / gap)
    np.testing.assert_allclose(b.probs, [1 / (1 + np.exp(-1)), 1 / (1 + np.e)], rtol=1e-14)
    assert float(b.heat_capacity) == pytest.approx(np.exp(1) / (1 + np.e) ** 2, rel=1e-12)
    assert float(b.mean_energy) == pytest.approx(e0 + gap / (1 + np.e), rel=1e-15)
    assert float(b.entropy) == pytest.approx(np.logaddexp(0, -1) + 1 / (1 + np.e), rel=1e-13)


@pytest.mark.parametrize("beta", [1.0, -1.0, 1e-300, 1e300])
def test_energies_at_the_float_range(beta):
    big = np.finfo(np.float64).max
    b = Boltzmann([big, -big, 0.0], beta=beta)
    for k in ("probs", "log_partition", "free_energy", "mean_energy", "entropy", "heat_capacity"):
        assert not np.isnan(getattr(b, k)).any(), k
    if beta >= 1:
        np.testing.assert_array_equal(b.probs, [0.0, 1.0, 0.0])
        assert float(b.log_partition) == beta * big if beta == 1 else np.isinf(b.log_partition)
        assert float(b.mean_energy) == -big and float(b.entropy) == 0 and float(b.heat_capacity) == 0
    if beta == 1e-300:  # beta E = [1.8e8, -1.8e8, 0]: still a point mass on -big
        assert float(b.mean_energy) == -big
    assert Boltzmann([big, big], beta=beta).probs.tolist() == [0.5, 0.5]


def test_tiny_energies_at_huge_beta():
    e = np.array([1e-300, 2e-300, 3e-300])
    b = Boltzmann(e, beta=1e300)
    ref = mp_thermo(e, 1e300)
    for k in PROPS:
        assert float(getattr(b, k)) == pytest.approx(ref[k], rel=1e-12), k
    # at beta = 1 they are a uniform distribution to the last bit
    np.testing.assert_allclose(Boltzmann(e).probs, 1 / 3, rtol=1e-15)


# --------------------------------------------------------------------------- edges
def test_forbidden_and_special_states():
    b = Boltzmann([0.0, INF, 1.0], beta=1.0)
    ref = mp_thermo([0.0, 1.0], 1.0)
    assert b.probs[1] == 0 and b.log_probs[1] == -INF
    for k in PROPS:
        assert float(getattr(b, k)) == pytest.approx(ref[k], rel=1e-14), k
    # negative beta: +inf energies take the mass, -inf are forbidden
    n = Boltzmann([0.0, -INF, 1.0], beta=-1.0)
    assert n.probs[1] == 0 and float(n.mean_energy) == pytest.approx(mp_thermo([0.0, 1.0], -1.0)["mean_energy"])
    # -inf energies at beta > 0 share the mass
    g = Boltzmann([-INF, 0.0, -INF], beta=2.0)
    np.testing.assert_array_equal(g.probs, [0.5, 0.0, 0.5])
    assert float(g.mean_energy) == -INF and float(g.free_energy) == -INF
    assert float(g.entropy) == pytest.approx(np.log(2))
    # no allowed state: zero probabilities, ln Z = -inf, undefined moments
    e = Boltzmann([INF, INF], beta=1.0)
    np.testing.assert_array_equal(e.probs, [0.0, 0.0])
    assert float(e.log_partition) == -INF and float(e.free_energy) == INF and float(e.partition) == 0
    assert np.isnan([e.mean_energy, e.entropy, e.heat_capacity]).all()


def test_no_states():
    b = Boltzmann(np.zeros((2, 0)), beta=2.0)
    assert b.probs.shape == (2, 0)
    np.testing.assert_array_equal(b.log_partition, [-INF, -INF])
    np.testing.assert_array_equal(b.free_energy, [INF, INF])
    for k in ("mean_energy", "entropy", "heat_capacity"):
        v = getattr(b, k)
        assert v.shape == (2,) and np.isnan(v).all(), k
    with pytest.raises(ValueError, match="empty distribution axis"):
        b.sample(rng=0)


def test_nan_spoils_only_its_row():
    b = Boltzmann(np.array([[0.0, np.nan], [0.0, 1.0]]))
    for k in ("probs",) + PROPS:
        v = np.asarray(getattr(b, k))
        assert np.isnan(v[0]).all(), k
        assert not np.isnan(v[1]).any(), k
    with pytest.raises(ValueError, match="energies holds a NaN"):
        b.sample(rng=0)
    with pytest.raises(ValueError, match="no token above -inf"):
        Boltzmann([INF, INF]).sample(rng=0)


def test_partition_overflows_to_inf_but_log_partition_does_not():
    b = Boltzmann([-1000.0, 0.0])
    with np.errstate(over="raise"):
        assert float(b.partition) == INF
    assert float(b.log_partition) == pytest.approx(1000.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes(dtype):
    e = np.array([0.0, 0.5, 1.5], dtype=dtype)
    b = Boltzmann(e, temperature=0.7)
    ref = mp_thermo(e.astype(np.float64), mpmath.mpf(1) / mpmath.mpf(0.7))
    rtol = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-13}[dtype]
    for k in ("probs",) + PROPS:
        v = getattr(b, k)
        assert v.dtype == dtype, k
        np.testing.assert_allclose(np.asarray(v, dtype=np.float64), ref[k], rtol=rtol)
    assert Boltzmann([0, 1, 2]).probs.dtype == np.float64
    assert Boltzmann([True, False]).energies.dtype == np.float64


def test_batch_and_axis():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(3, 4, 5)) * 3
    b = Boltzmann(e, beta=0.8, axis=1)
    assert b.probs.shape == e.shape
    np.testing.assert_allclose(b.probs.sum(axis=1), 1.0)
    for k in PROPS:
        v = getattr(b, k)
        assert v.shape == (3, 5), k
        for i, j in itertools.product(range(3), range(5)):
            assert v[i, j] == pytest.approx(float(getattr(Boltzmann(e[i, :, j], beta=0.8), k)), rel=1e-13, abs=1e-15)
    d = b.sample(size=(2, 6), rng=0)
    assert d.shape == (2, 6, 3, 5) and d.max() < 4


def test_inputs_not_modified_and_energies_read_only():
    e = np.array([0.0, 1.0, 2.0])
    b = Boltzmann(e, beta=1.0)
    e[0] = 100.0
    assert b.energies[0] == 0.0 and b.probs[0] > 0.5
    with pytest.raises(ValueError):
        b.energies[0] = 5.0
    assert "beta=1.0" in repr(b)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"beta": 1.0, "temperature": 1.0}, ValueError, "at most one of temperature, beta"),
        ({"beta": 0.0}, ValueError, "beta must be a finite nonzero number"),
        ({"beta": np.inf}, ValueError, "beta"),
        ({"temperature": -1.0}, ValueError, "temperature must be a finite number > 0"),
        ({"temperature": 0.0}, ValueError, "temperature"),
        ({"beta": "hot"}, TypeError, "beta must be a real number"),
        ({"axis": (0,)}, TypeError, "axis must be an int"),
        ({"axis": 3}, AxisError, None),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Boltzmann([[0.0, 1.0]], **kwargs)


def test_bad_energies():
    with pytest.raises(TypeError, match="energies must be an array of real numbers"):
        Boltzmann([1 + 2j, 0])
    with pytest.raises(AxisError):
        Boltzmann(1.0)


# --------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("beta", [-0.7, 0.3, 2.0])
def test_sample_chisquare(beta):
    e = np.array([0.0, 0.5, 1.0, 2.0, INF if beta > 0 else -INF, 3.0])
    b = Boltzmann(e, beta=beta)
    draws = b.sample(size=30_000, rng=5)
    counts = np.bincount(draws, minlength=e.size)
    assert counts[4] == 0
    keep = b.probs > 0
    assert stats.chisquare(counts[keep], b.probs[keep] * draws.size).pvalue > 1e-4


def test_sample_reproducible_and_many_states():
    e = np.random.default_rng(0).normal(size=70_000)
    b = Boltzmann(e, temperature=0.5)
    a = b.sample(size=5000, rng=1)  # the binary-search path (many draws, many states)
    np.testing.assert_array_equal(a, b.sample(size=5000, rng=1))
    # the most probable decile of states gets its share
    top = np.argsort(b.probs)[-7000:]
    share = float(b.probs[top].sum())
    assert np.isin(a, top).mean() == pytest.approx(share, abs=4 * np.sqrt(share * (1 - share) / 5000))
    assert isinstance(Boltzmann([0.0, 1.0]).sample(rng=0), np.integer)


# --------------------------------------------------------------------------- Ising
def kaufman_log_partition(k, m, n):
    """ln Z of the m x n Ising torus (J = 1, K = beta J), Kaufman (1949), as in Beale (1996)."""
    k = mpmath.mpf(k)
    c = mpmath.cosh(2 * k) * mpmath.coth(2 * k)

    def gamma(j):
        if j == 0:
            return 2 * k + mpmath.log(mpmath.tanh(k))
        return mpmath.acosh(c - mpmath.cos(mpmath.pi * j / n))

    odd = [gamma(2 * r + 1) for r in range(n)]
    even = [gamma(2 * r) for r in range(n)]
    z = (
        mpmath.fprod(2 * mpmath.cosh(m * g / 2) for g in odd)
        + mpmath.fprod(2 * mpmath.sinh(m * g / 2) for g in odd)
        + mpmath.fprod(2 * mpmath.cosh(m * g / 2) for g in even)
        + mpmath.fprod(2 * mpmath.sinh(m * g / 2) for g in even)
    )
    return mpmath.log(z / 2 * (2 * mpmath.sinh(2 * k)) ** (m * n / mpmath.mpf(2)))


@pytest.fixture(scope="module")
def ising():
    return load_example("boltzmann_ising")


def test_ising_energies_against_a_naive_loop(ising):
    L = 3
    fast = ising.ising_energies(L)
    for state in range(0, 2 ** (L * L), 7):
        s = [[1 - 2 * ((state >> (L * i + j)) & 1) for j in range(L)] for i in range(L)]
        e = -sum(s[i][j] * (s[i][(j + 1) % L] + s[(i + 1) % L][j]) for i in range(L) for j in range(L))
        assert fast[state] == e


@pytest.mark.parametrize("L", [2, 3, 4])
def test_ising_enumeration_matches_kaufman(ising, L):
    e = ising.ising_energies(L)
    with mpmath.workdps(40):
        for t in (0.8, 2.0, 2.269, 2.5, 4.0, 20.0):
            lnz = float(kaufman_log_partition(1 / mpmath.mpf(t), L, L))
            assert float(Boltzmann(e, temperature=t).log_partition) == pytest.approx(lnz, rel=1e-14)


def test_ising_4x4_heat_capacity_peak(ising):
    """Peak of C/N for L = 4 from the library against mpmath on the density of states."""
    e = ising.ising_energies(4)
    levels, g = np.unique(e, return_counts=True)
    assert g.sum() == 2**16 and dict(zip(levels[:4], g[:4], strict=True)) == {-32: 2, -24: 32, -20: 64, -16: 424}

    def c_per_spin(t):
        b = 1 / t
        w = [int(gi) * mpmath.exp(-b * (float(x) - levels[0])) for x, gi in zip(levels, g, strict=True)]
        z = mpmath.fsum(w)
        u = mpmath.fsum(wi * float(x) for wi, x in zip(w, levels, strict=True)) / z
        e2 = mpmath.fsum(wi * float(x) ** 2 for wi, x in zip(w, levels, strict=True)) / z
        return b * b * (e2 - u * u) / 16

    with mpmath.workdps(40):
        t_ref = mpmath.findroot(lambda t: mpmath.diff(c_per_spin, t), mpmath.mpf("2.4"))
        c_ref = float(c_per_spin(t_ref))
        for t in (1.0, 2.269, 3.5):
            assert float(Boltzmann(e, temperature=t).heat_capacity) / 16 == pytest.approx(float(c_per_spin(t)), rel=1e-12)
    t_peak, c_peak = ising.heat_capacity_peak(e, 16, 2.2, 2.7)
    assert t_peak == pytest.approx(float(t_ref), abs=1e-6)
    assert c_peak == pytest.approx(c_ref, rel=1e-12)
    # the finite-size peak lies above Onsager's T_c and moves towards it as L grows
    t3, _ = ising.heat_capacity_peak(ising.ising_energies(3), 9, 2.2, 2.8)
    assert ising.T_ONSAGER < t_peak < t3


def test_ising_onsager_reference(ising):
    # low temperature: the L = 4 torus and the infinite lattice agree (finite-size effects ~ e^{-8/T})
    e = ising.ising_energies(4)
    t = np.array([0.8, 1.0])
    r = ising.thermodynamics(e, t, 16)
    np.testing.assert_allclose(ising.onsager_energy(t), r["mean_energy"], rtol=1e-6)
    np.testing.assert_allclose(ising.onsager_heat_capacity(t), r["heat_capacity"], rtol=5e-3)


def test_ising_example_runs(ising, tmp_path, capsys):
    assert ising.main(["--sizes", "2", "3", "--n-temperatures", "40", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "T_peak" in out and "512" in out
    png = tmp_path / "ising_heat_capacity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="L must be between 2 and 4"):
        ising.ising_energies(5)


def test_demo_section():
    text = boltzmann.demo_section()
    assert "heat capacity peaks" in text and "nan" not in text.lower()
