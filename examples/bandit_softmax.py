"""Softmax action selection on the 10-armed testbed (Sutton & Barto, chapter 2).

Two experiments, each vectorised over the independent runs (every step handles all
runs at once through :class:`softargmax.models.policy.BoltzmannPolicy`):

(a) sample-average action values with Boltzmann (softmax) exploration at several
    temperatures, against epsilon-greedy, on the standard testbed (q* ~ N(0, 1));
(b) the gradient bandit algorithm, a softmax over learned preferences updated along
    ``grad log pi(a) = onehot(a) - pi``, with and without the reward baseline, for
    step sizes 0.1 and 0.4 on a testbed shifted to q* ~ N(4, 1): the shape of the
    book's Figure 2.5 (the baseline matters: without it the shift of +4 in the rewards
    slows learning badly).

    python examples/bandit_softmax.py                        # 2000 runs x 1000 steps
    python examples/bandit_softmax.py --runs 100 --steps 200 --output-dir /tmp

Writes ``bandit_softmax.png`` into the output directory (needs matplotlib) and prints a
table of the percentage of optimal actions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from softargmax.models.policy import BoltzmannPolicy

Selector = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def boltzmann(temperature: float) -> Selector:
    policy = BoltzmannPolicy(temperature)

    def select(q: np.ndarray, step: int, rng: np.random.Generator) -> np.ndarray:
        return policy.sample(q, step, rng=rng)

    return select


def epsilon_greedy(epsilon: float) -> Selector:
    greedy = BoltzmannPolicy(0.0)  # the T = 0 limit: arg max, ties broken at random

    def select(q: np.ndarray, step: int, rng: np.random.Generator) -> np.ndarray:
        a = greedy.sample(q, rng=rng)
        explore = rng.random(q.shape[0]) < epsilon
        return np.where(explore, rng.integers(0, q.shape[1], q.shape[0]), a)

    return select


def run_action_values(
    select: Selector, q_star: np.ndarray, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sample-average estimates; returns (% optimal action, mean reward) per step."""
    runs, k = q_star.shape
    rows = np.arange(runs)
    best = np.argmax(q_star, axis=1)
    q = np.zeros((runs, k))
    n = np.zeros((runs, k))
    optimal, reward = np.empty(steps), np.empty(steps)
    for t in range(steps):
        a = select(q, t, rng)
        r = rng.normal(q_star[rows, a], 1.0)
        n[rows, a] += 1
        q[rows, a] += (r - q[rows, a]) / n[rows, a]
        optimal[t], reward[t] = 100 * np.mean(a == best), np.mean(r)
    return optimal, reward


def run_gradient_bandit(
    alpha: float, baseline: bool, q_star: np.ndarray, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The gradient bandit algorithm (Sutton & Barto, section 2.8)."""
    runs, k = q_star.shape
    rows = np.arange(runs)
    best = np.argmax(q_star, axis=1)
    policy = BoltzmannPolicy(1.0)
    h = np.zeros((runs, k))
    mean_reward = np.zeros(runs)
    optimal, reward = np.empty(steps), np.empty(steps)
    for t in range(steps):
        a = policy.sample(h, rng=rng)
        r = rng.normal(q_star[rows, a], 1.0)
        if baseline:
            mean_reward += (r - mean_reward) / (t + 1)
        h += alpha * (r - mean_reward)[:, None] * policy.grad_log_prob(h, a)
        optimal[t], reward[t] = 100 * np.mean(a == best), np.mean(r)
    return optimal, reward


def experiments(
    runs: int, steps: int, seed: int, temperatures: list[float], epsilons: list[float]
) -> dict[str, dict[str, np.ndarray]]:
    """Both experiments; {"a": {label: % optimal}, "b": {...}}."""
    k = 10
    seeds = np.random.SeedSequence(seed).spawn(2)
    q_a = np.random.default_rng(seeds[0]).normal(0.0, 1.0, (runs, k))
    q_b = np.random.default_rng(seeds[1]).normal(4.0, 1.0, (runs, k))
    out: dict[str, dict[str, np.ndarray]] = {"a": {}, "b": {}}
    methods = [(f"softmax T={t:g}", boltzmann(t)) for t in temperatures]
    methods += [(f"epsilon-greedy e={e:g}", epsilon_greedy(e)) for e in epsilons]
    for i, (label, sel) in enumerate(methods):
        out["a"][label] = run_action_values(sel, q_a, steps, np.random.default_rng([seed, 1, i]))[0]
    for j, (alpha, base) in enumerate([(0.1, True), (0.4, True), (0.1, False), (0.4, False)]):
        label = f"gradient alpha={alpha:g} {'with' if base else 'without'} baseline"
        out["b"][label] = run_gradient_bandit(alpha, base, q_b, steps, np.random.default_rng([seed, 2, j]))[0]
    return out


def plot(results: dict[str, dict[str, np.ndarray]], runs: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    titles = {
        "a": "(a) softmax exploration vs epsilon-greedy, q* ~ N(0, 1)",
        "b": "(b) gradient bandit (Fig. 2.5 shape), q* ~ N(4, 1)",
    }
    for key, a in zip("ab", ax, strict=True):
        for label, curve in results[key].items():
            a.plot(np.arange(1, len(curve) + 1), curve, lw=1, label=label)
        a.set_title(titles[key], fontsize=10)
        a.set_xlabel("steps")
        a.set_ylabel("% optimal action")
        a.set_ylim(0, 100)
        a.legend(fontsize=8)
    fig.suptitle(f"10-armed testbed, {runs} runs, softargmax.models.BoltzmannPolicy")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.05, 0.1, 0.3, 1.0])
    ap.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 0.01, 0.1])
    ap.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "output")
    ap.add_argument("--no-plot", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.steps < 1:
        raise SystemExit("--runs and --steps must be positive")

    t0 = time.perf_counter()
    results = experiments(args.runs, args.steps, args.seed, args.temperatures, args.epsilons)
    elapsed = time.perf_counter() - t0
    marks = sorted({min(m, args.steps) for m in (10, 100, args.steps // 2)})
    last = max(1, args.steps // 10)
    head = "".join(f"{'t=' + str(m):>8}" for m in marks)
    print(f"% optimal action ({args.runs} runs x {args.steps} steps, {elapsed:.1f} s)")
    print(f"{'method':<40}{head}{'last ' + str(last):>10}")
    for key in "ab":
        for label, curve in results[key].items():
            row = "".join(f"{curve[m - 1]:>8.1f}" for m in marks)
            print(f"{label:<40}{row}{curve[-last:].mean():>10.1f}")
    if not args.no_plot:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        path = args.output_dir / "bandit_softmax.png"
        plot(results, args.runs, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
