"""The 2-D Ising model on small periodic lattices, solved exactly by enumeration.

Every one of the 2**(L*L) spin configurations of an L x L torus (J = 1, k_B = 1,
no field) is listed, and :class:`softargmax.boltzmann.Boltzmann` over their energies
gives the free energy, internal energy, entropy and heat capacity at each temperature.
The heat capacity per spin has a peak that moves towards Onsager's critical
temperature T_c = 2 / ln(1 + sqrt 2) = 2.269 of the infinite lattice as L grows
(for L = 4 the exact peak is at T = 2.439, C/N = 0.8165; see tests/test_boltzmann.py,
which checks the enumeration against Kaufman's exact partition function).

    python examples/boltzmann_ising.py                    # L = 2, 3, 4
    python examples/boltzmann_ising.py --sizes 2 3 --n-temperatures 60 --output-dir /tmp

Writes ``ising_heat_capacity.png`` into the output directory (needs matplotlib) and
prints a table.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from softargmax.boltzmann import Boltzmann

T_ONSAGER = 2.0 / math.log(1.0 + math.sqrt(2.0))


def ising_energies(L: int, J: float = 1.0) -> np.ndarray:
    """Energies ``-J sum_<ij> s_i s_j`` of all 2**(L*L) states of the L x L torus.

    State ``k`` has spin ``i`` (row-major) down where bit ``i`` of ``k`` is set. Each
    site is bonded to its right and lower neighbours (2 L**2 bonds; for L = 2 the two
    bonds between a pair of neighbours are both counted, as on any torus).
    """
    if L < 2 or L * L > 20:
        raise ValueError(f"L must be between 2 and 4 (2**(L*L) states are enumerated), got {L}")
    n = L * L
    bits = (np.arange(2**n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
    s = (1 - 2 * bits).astype(np.int8).reshape(-1, L, L)
    bonds = s * np.roll(s, 1, axis=1) + s * np.roll(s, 1, axis=2)
    return -J * bonds.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)


def thermodynamics(energies: np.ndarray, temperatures: np.ndarray, n_spins: int) -> dict[str, np.ndarray]:
    """Per-spin free energy, energy, entropy and heat capacity at each temperature."""
    keys = ("free_energy", "mean_energy", "entropy", "heat_capacity")
    out = {k: np.empty(len(temperatures)) for k in keys}
    for i, t in enumerate(temperatures):
        b = Boltzmann(energies, temperature=float(t))
        for k in keys:
            out[k][i] = float(getattr(b, k)) / n_spins
    return out


def heat_capacity_peak(energies: np.ndarray, n_spins: int, lo: float, hi: float) -> tuple[float, float]:
    """The maximum of C/N on [lo, hi] (golden-section search; C/N is unimodal there)."""
    def c(t: float) -> float:
        return float(Boltzmann(energies, temperature=t).heat_capacity) / n_spins

    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = c(x1), c(x2)
    while b - a > 1e-7:
        if f1 > f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = c(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = c(x2)
    t = 0.5 * (a + b)
    return t, c(t)


def onsager_energy(temperatures: np.ndarray) -> np.ndarray:
    """Onsager's exact energy per spin of the infinite square lattice (J = k_B = 1)."""
    from scipy.special import ellipk

    k = 1.0 / np.asarray(temperatures, dtype=float)
    kappa = 2.0 * np.sinh(2 * k) / np.cosh(2 * k) ** 2
    m = np.minimum(kappa**2, 1.0 - 1e-16)  # log singularity at T_c
    return -(1 + 2 / np.pi * (2 * np.tanh(2 * k) ** 2 - 1) * ellipk(m)) / np.tanh(2 * k)


def onsager_heat_capacity(temperatures: np.ndarray) -> np.ndarray:
    """C/N = dU/dT of the infinite lattice, by a central difference of :func:`onsager_energy`."""
    t = np.asarray(temperatures, dtype=float)
    h = 1e-5 * t
    return (onsager_energy(t + h) - onsager_energy(t - h)) / (2 * h)


def plot(results: dict[int, dict[str, np.ndarray]], temperatures: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for L, r in results.items():
        ax[0].plot(temperatures, r["heat_capacity"], label=f"L = {L} (exact, {2 ** (L * L)} states)")
        ax[1].plot(temperatures, r["mean_energy"], label=f"L = {L}")
    try:
        ax[0].plot(temperatures, onsager_heat_capacity(temperatures), "k--", lw=1, label="L = inf (Onsager)")
        ax[1].plot(temperatures, onsager_energy(temperatures), "k--", lw=1, label="L = inf (Onsager)")
    except ImportError:  # scipy is optional here
        pass
    for a in ax:
        a.axvline(T_ONSAGER, color="grey", lw=0.8, ls=":")
        a.set_xlabel("temperature T (J / k_B)")
        a.legend(fontsize=8)
    ax[0].set_ylabel("heat capacity per spin C / N")
    ax[0].set_ylim(0, None)
    ax[1].set_ylabel("energy per spin U / N")
    fig.suptitle("2-D Ising model on an L x L torus: softargmax.Boltzmann over every state")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4], help="lattice sizes L (2..4)")
    ap.add_argument("--t-min", type=float, default=0.5)
    ap.add_argument("--t-max", type=float, default=5.0)
    ap.add_argument("--n-temperatures", type=int, default=200)
    ap.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    ap.add_argument("--no-plot", action="store_true", help="print the table only")
    args = ap.parse_args(argv)

    temperatures = np.linspace(args.t_min, args.t_max, args.n_temperatures)
    results = {}
    print(f"{'L':>2} {'states':>7} {'T_peak':>9} {'C/N peak':>9} {'U/N at T_peak':>14} {'seconds':>8}")
    for L in args.sizes:
        t0 = time.perf_counter()
        e = ising_energies(L)
        n = L * L
        r = thermodynamics(e, temperatures, n)
        i = int(np.argmax(r["heat_capacity"]))
        lo, hi = temperatures[max(i - 1, 0)], temperatures[min(i + 1, len(temperatures) - 1)]
        t_peak, c_peak = heat_capacity_peak(e, n, float(lo), float(hi))
        u_peak = float(Boltzmann(e, temperature=t_peak).mean_energy) / n
        results[L] = r
        print(f"{L:>2} {2**n:>7} {t_peak:>9.4f} {c_peak:>9.4f} {u_peak:>14.4f} {time.perf_counter() - t0:>8.2f}")
    print(f"infinite lattice: T_c = {T_ONSAGER:.4f} (Onsager)")
    if not args.no_plot:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = args.output_dir / "ising_heat_capacity.png"
        plot(results, temperatures, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
