"""Boltzmann (softmax) exploration: action selection by a softmax over action values."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .._backend import get_namespace
from .._validation import _real_scalar, check_int
from ..core import hardmax, log_softmax, softmax
from ..grad import log_softmax_vjp

__all__ = ["BoltzmannPolicy"]

SCHEDULES = ("constant", "exponential", "inverse-time")


def _step(step: Any) -> int:
    return check_int(step, "step", 0, "a non-negative int")


def _nonneg(value: Any, name: str) -> float:
    v = _real_scalar(value, name)
    if not (math.isfinite(v) and v >= 0):
        msg = f"{name} must be a finite number >= 0, got {v!r}"
        raise ValueError(msg)
    return v


class BoltzmannPolicy:
    r"""Softmax action selection: ``pi(a) ∝ exp(q_a / T_t)``.

    Parameters
    ----------
    temperature : float, optional
        The (initial) temperature ``T_0 >= 0``, default 1. ``T = 0`` is the greedy limit:
        the best actions share the probability equally (:func:`softargmax.hardmax`).
        Leave it out when ``schedule`` is a callable.
    schedule : {None, "constant", "exponential", "inverse-time"} or callable
        How the temperature depends on the step ``t``:

        * ``None`` or ``"constant"``: ``T_t = T_0``;
        * ``"exponential"``: ``T_t = max(T_0 * decay**t, min_temperature)``,
          ``0 < decay <= 1``;
        * ``"inverse-time"``: ``T_t = max(T_0 / (1 + decay * t), min_temperature)``,
          ``decay >= 0``;
        * a callable ``step -> temperature`` (its values are checked at each call).
    decay : float, optional
        The decay parameter, required by the two decaying schedules.
    min_temperature : float, default 0
        A floor for the decaying schedules.

    Notes
    -----
    Each method takes the step ``t`` (default 0) and uses ``T_t``; the policy keeps no
    state, so one object serves many runs. Action values ``q`` hold the actions along
    ``axis``; the other axes are a batch (independent bandit runs, states, ...).
    :meth:`probs` and :meth:`log_probs` accept any array library that
    :func:`softargmax.softmax` accepts; :meth:`sample` works on NumPy.

    References
    ----------
    .. [1] R. S. Sutton, A. G. Barto, "Reinforcement Learning: An Introduction",
       2nd ed., 2018, sections 2.3 (softmax action selection) and 2.8 (gradient bandit).

    Examples
    --------
    >>> import numpy as np
    >>> from softargmax.models.policy import BoltzmannPolicy
    >>> q = np.array([1.0, 2.0, 2.0])
    >>> BoltzmannPolicy(1.0).probs(q)
    array([0.15536240, 0.42231880, 0.42231880])
    >>> BoltzmannPolicy(0.0).probs(q)              # greedy, ties shared
    array([0. , 0.5, 0.5])
    >>> pol = BoltzmannPolicy(2.0, "exponential", decay=0.5)
    >>> pol.temperature_at(0), pol.temperature_at(3)
    (2.0, 0.25)
    >>> BoltzmannPolicy(schedule=lambda t: 1.0 / (1 + t)).temperature_at(4)
    0.2
    >>> BoltzmannPolicy(1.0).sample(np.zeros((5, 3)), rng=0)     # one action per row
    array([1, 0, 0, 0, 2])
    """

    def __init__(
        self,
        temperature: float | None = None,
        schedule: str | Callable[[int], float] | None = None,
        *,
        decay: float | None = None,
        min_temperature: float = 0.0,
    ) -> None:
        self.temperature = temperature
        self.schedule = schedule
        self.decay = decay
        self.min_temperature = min_temperature
        self._floor = _nonneg(min_temperature, "min_temperature")
        if callable(schedule):
            if temperature is not None:
                msg = "temperature must be left out when schedule is a callable (it gives the temperature)"
                raise ValueError(msg)
            if decay is not None:
                msg = "decay applies to the named schedules only, not to a callable schedule"
                raise ValueError(msg)
            self._kind = "callable"
            self._fn: Callable[[int], float] = schedule
            self._t0 = math.nan
            return
        kind = "constant" if schedule is None else schedule
        if kind not in SCHEDULES:
            msg = f"schedule must be None, one of {SCHEDULES} or a callable, got {schedule!r}"
            raise ValueError(msg)
        self._kind = str(kind)
        self._t0 = 1.0 if temperature is None else _nonneg(temperature, "temperature")
        if self._kind == "constant":
            if decay is not None:
                msg = "decay needs schedule='exponential' or 'inverse-time'"
                raise ValueError(msg)
            return
        if decay is None:
            msg = f"schedule={self._kind!r} needs decay"
            raise ValueError(msg)
        d = _real_scalar(decay, "decay")
        if self._kind == "exponential" and not 0 < d <= 1:
            msg = f"decay must be in (0, 1] for schedule='exponential', got {d!r}"
            raise ValueError(msg)
        if self._kind == "inverse-time" and not (math.isfinite(d) and d >= 0):
            msg = f"decay must be a finite number >= 0 for schedule='inverse-time', got {d!r}"
            raise ValueError(msg)
        self._decay = d

    def __repr__(self) -> str:
        parts = [] if self.temperature is None else [repr(self.temperature)]
        if self.schedule is not None:
            parts.append(f"schedule={self.schedule!r}")
        if self.decay is not None:
            parts.append(f"decay={self.decay!r}")
        if self.min_temperature:
            parts.append(f"min_temperature={self.min_temperature!r}")
        return f"BoltzmannPolicy({', '.join(parts)})"

    def temperature_at(self, step: int = 0) -> float:
        """The temperature ``T_t`` at step ``t`` (>= 0).

        Examples
        --------
        >>> from softargmax.models.policy import BoltzmannPolicy
        >>> BoltzmannPolicy(1.0, "inverse-time", decay=0.5).temperature_at(2)
        0.5
        """
        t = _step(step)
        if self._kind == "constant":
            return self._t0
        if self._kind == "callable":
            value = self._fn(t)
            return _nonneg(value, f"schedule({t})")
        if self._kind == "exponential":
            # decay**t underflows to 0 for huge t: the greedy limit, no error
            temp = self._t0 * self._decay**t if self._t0 > 0 else 0.0
        else:
            temp = self._t0 / (1.0 + self._decay * t)
        return max(temp, self._floor)

    def probs(self, q: Any, step: int = 0, axis: int = -1) -> Any:
        """Action probabilities ``softmax(q / T_t)`` along ``axis`` (hardmax at ``T = 0``)."""
        t = self.temperature_at(step)
        if t == 0:
            return hardmax(q, axis=axis)
        return softmax(q, axis=axis, temperature=t)

    def log_probs(self, q: Any, step: int = 0, axis: int = -1) -> Any:
        """Log-probabilities of the actions (``log`` of :meth:`probs`)."""
        t = self.temperature_at(step)
        if t == 0:
            p = hardmax(q, axis=axis)
            xp, _ = get_namespace(p)
            with np.errstate(divide="ignore"):
                return xp.log(p)
        return log_softmax(q, axis=axis, temperature=t)

    def sample(
        self,
        q: Any,
        step: int = 0,
        *,
        size: int | tuple[int, ...] | None = None,
        axis: int = -1,
        rng: int | np.random.Generator | None = None,
    ) -> Any:
        """Draw actions: indices along ``axis``, of shape ``size + batch``.

        Ties at ``T = 0`` are broken uniformly at random. Raises ``ValueError`` for
        a batch entry whose values hold a NaN or are all ``-inf``.
        """
        from ..sampling import _as_result, _categorical, _check_support, _generator, _rows, _size

        shape = _size(size)
        gen = _generator(rng)
        x, batch, _, _ = _rows(q, axis, "q")
        _check_support(x, "q")
        p = np.asarray(self.probs(x, step), dtype=np.float64)
        return _as_result(_categorical(p, math.prod(shape), gen), shape, batch)

    def grad_log_prob(self, q: Any, actions: Any, step: int = 0, axis: int = -1) -> Any:
        r"""The score ``d log pi(a) / d q = (onehot(a) - pi) / T_t``, of ``q``'s shape.

        The policy-gradient direction of REINFORCE and of the gradient bandit
        algorithm; ``actions`` holds one action index per batch entry (the shape of
        ``q`` without ``axis``). Needs ``T_t > 0``.

        Examples
        --------
        >>> import numpy as np
        >>> from softargmax.models.policy import BoltzmannPolicy
        >>> BoltzmannPolicy(1.0).grad_log_prob(np.zeros((2, 4)), [0, 3])
        array([[ 0.75, -0.25, -0.25, -0.25],
               [-0.25, -0.25, -0.25,  0.75]])
        """
        t = self.temperature_at(step)
        if t == 0:
            msg = "grad_log_prob needs a temperature > 0: the greedy policy has no gradient"
            raise ValueError(msg)
        logp = np.asarray(log_softmax(q, axis=axis, temperature=t))
        ax = axis % logp.ndim if logp.ndim else 0
        batch = logp.shape[:ax] + logp.shape[ax + 1 :]
        a = np.asarray(actions)
        if a.dtype.kind not in "iu":
            msg = f"actions must be integer action indices, got dtype {a.dtype}"
            raise TypeError(msg)
        if a.shape != batch:
            msg = f"actions must have the batch shape {batch} (q's shape without axis), got {a.shape}"
            raise ValueError(msg)
        n = logp.shape[ax]
        if a.size and (a.min() < 0 or a.max() >= n):
            msg = f"actions must be in [0, {n}), got values in [{a.min()}, {a.max()}]"
            raise ValueError(msg)
        onehot = np.moveaxis(np.arange(n) == a[..., None], -1, ax).astype(logp.dtype)
        return log_softmax_vjp(logp, onehot, axis=axis, temperature=t)


def demo_section() -> str:
    """A short text tour of :class:`BoltzmannPolicy`, for ``softargmax demo``."""
    q = np.array([0.2, 1.0, 0.9, -0.5])
    lines = ["Boltzmann exploration (softargmax.models.BoltzmannPolicy)", f"  action values q = {q.tolist()}"]
    for t in (10.0, 1.0, 0.1, 0.0):
        lines.append(f"    T={t:<5g} pi = {np.round(BoltzmannPolicy(t).probs(q), 3).tolist()}")
    pol = BoltzmannPolicy(1.0, "exponential", decay=0.99, min_temperature=0.01)
    temps = ", ".join(f"T_{s}={pol.temperature_at(s):.3f}" for s in (0, 100, 500, 1000))
    lines.append(f"  exponential schedule (decay 0.99, floor 0.01): {temps}")
    # a 10-armed bandit, 500 runs x 300 steps, gradient bandit with baseline (alpha 0.1)
    rng = np.random.default_rng(0)
    runs, k, steps, alpha = 500, 10, 300, 0.1
    q_star = rng.normal(4.0, 1.0, (runs, k))
    best = np.argmax(q_star, axis=1)
    h = np.zeros((runs, k))
    baseline = np.zeros(runs)
    pol = BoltzmannPolicy(1.0)
    optimal = 0.0
    for t in range(steps):
        a = pol.sample(h, rng=rng)
        r = rng.normal(q_star[np.arange(runs), a], 1.0)
        baseline += (r - baseline) / (t + 1)
        h += alpha * (r - baseline)[:, None] * pol.grad_log_prob(h, a)
        if t >= steps - 50:
            optimal += np.mean(a == best) / 50
    lines.append(f"  gradient bandit (10 arms, {runs} runs, {steps} steps): optimal action {100 * optimal:.0f}% of the last 50 steps")
    return "\n".join(lines)
