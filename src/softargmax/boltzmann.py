"""The Boltzmann (Gibbs) distribution of statistical mechanics.

For states of energy ``E_i`` at inverse temperature ``beta`` (units with k_B = 1),
``p_i = exp(-beta E_i) / Z`` with the partition function ``Z = sum_i exp(-beta E_i)``:
a softmax of ``-E`` with scale ``beta``. Everything is computed from
:mod:`softargmax.core` (``softmax``, ``log_softmax`` and ``logsumexp`` of ``-E``), so the
probabilities, ``ln Z`` and the thermodynamic quantities are free of overflow for any
finite energies and either sign of ``beta``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from ._validation import Scale, float_input, normalize_axis, resolve_scale
from .core import log_softmax, logsumexp, softmax

__all__ = ["Boltzmann"]


class Boltzmann:
    r"""The Boltzmann distribution ``p_i ∝ exp(-beta E_i)`` over the states along ``axis``.

    Parameters
    ----------
    energies : array_like
        Energies of the states along ``axis``; the other axes are a batch of
        independent systems. ``+inf`` marks a forbidden state (probability 0, ignored by
        every sum) when ``beta > 0``. Converted to a NumPy array; float16 and float32
        energies are computed in float64 and the results come back in their dtype.
    beta : float, optional
        Inverse temperature ``1 / (k_B T)``: finite and nonzero, either sign
        (``beta < 0`` is a negative absolute temperature, which favours high energies).
    temperature : float, optional
        ``T > 0``, the same as ``beta = 1 / T`` (divisions by ``T`` are exact). Give at
        most one of ``beta`` and ``temperature``; with neither, ``beta = 1``.
    axis : int, default -1
        The axis of the states.

    Attributes
    ----------
    beta : float
        The inverse temperature in use.
    temperature : float
        ``1 / beta``.
    energies : ndarray
        A read-only copy of the energies.

    Notes
    -----
    With ``Z = sum exp(-beta E_i)`` (k_B = 1, energies in units of the temperature):

    * ``log_partition`` is ``ln Z = logsumexp(-beta E)``, exact next to a dominant
      ground state; ``partition`` is ``Z`` itself and may overflow to ``inf``;
    * ``free_energy`` ``F = -ln Z / beta``;
    * ``mean_energy`` ``U = <E>``;
    * ``entropy`` ``S = -sum p ln p`` (nats), which equals ``beta (U - F)``;
    * ``heat_capacity`` ``C = beta^2 Var(E) = dU/dT``.

    The moments are summed relative to the most probable state ``E_r``, as the mean
    and variance of ``d_i = beta (E_i - E_r)``: accurate when all energies share a large
    offset (even when ``U`` itself rounds to ``E_r``), and free of overflow for huge
    energies at small ``beta``.

    Terms of probability 0 do not enter the moments (no ``0 * inf``). A distribution
    with a NaN energy gives NaN everywhere; one with no allowed state has zero
    probabilities, ``ln Z = -inf`` and NaN moments; ``-inf`` energies (for
    ``beta > 0``) share the mass and give ``U = F = -inf``, ``S = ln n``.

    Examples
    --------
    A two-level system with gap 1 at T = 1:

    >>> import numpy as np
    >>> from softargmax.boltzmann import Boltzmann
    >>> two = Boltzmann([0.0, 1.0], temperature=1.0)
    >>> two.probs
    array([0.73105858, 0.26894142])
    >>> float(two.log_partition), float(two.mean_energy), float(two.heat_capacity)
    (0.31326168751822286, 0.2689414213699951, 0.19661193324148185)

    Energies far beyond the float range of ``exp`` are no problem:

    >>> hot = Boltzmann([1e6, 1e6 + 1.0], beta=1.0)
    >>> hot.probs
    array([0.73105858, 0.26894142])
    >>> float(hot.free_energy)
    999999.6867383125

    A batch of three systems, and samples of the state index:

    >>> batch = Boltzmann(np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]]), beta=2.0)
    >>> batch.heat_capacity.shape
    (3,)
    >>> batch.sample(size=4, rng=0).shape
    (4, 3)
    """

    def __init__(
        self,
        energies: Any,
        *,
        beta: float | None = None,
        temperature: float | None = None,
        axis: int = -1,
    ) -> None:
        self._scale: Scale = resolve_scale(temperature, beta)
        if axis is None or isinstance(axis, tuple):
            msg = f"axis must be an int, got {axis!r}"
            raise TypeError(msg)
        try:
            arr = np.asarray(energies)
        except (TypeError, ValueError) as err:
            msg = f"energies could not be converted to an array: {err}"
            raise TypeError(msg) from None
        work, self._dtype, _ = float_input(np, arr, "energies")
        (self.axis,) = normalize_axis(axis, work.ndim)
        e = np.array(work, dtype=self._dtype, copy=True)
        e.flags.writeable = False
        self.energies = e
        # -E in float64: negation is exact, and core's scale then gives exp(-beta E).
        self._x = -np.asarray(work, dtype=np.float64)
        self.beta: float = self._scale.signed_beta
        self.temperature: float = (
            self._scale.temperature if self._scale.temperature is not None else 1.0 / self.beta
        )

    def __repr__(self) -> str:
        return f"Boltzmann(energies of shape {self.energies.shape}, beta={self.beta!r}, axis={self.axis})"

    # ----------------------------------------------------------------- internals
    @property
    def _kw(self) -> dict[str, Any]:
        """The scale for :mod:`softargmax.core`, with the user's T kept exact."""
        t = self._scale.temperature
        return {"temperature": t, "beta": None if t is not None else self.beta}

    def _out(self, a: Any) -> Any:
        a = np.asarray(a).astype(self._dtype, copy=False)
        return a[()] if a.ndim == 0 else a

    def _times_beta(self, v: np.ndarray) -> np.ndarray:
        t = self._scale.temperature
        return v / t if t is not None else v * self.beta

    def _sum(self, terms: np.ndarray) -> np.ndarray:
        """Sum over the state axis of ``terms`` where ``p > 0`` (no 0 * inf); NaN rows stay NaN."""
        p = self._p
        return np.sum(np.where((p > 0) | np.isnan(p), terms, 0.0), axis=self.axis)

    @cached_property
    def _p(self) -> np.ndarray:
        return np.asarray(softmax(self._x, axis=self.axis, **self._kw))

    @cached_property
    def _logp(self) -> np.ndarray:
        return np.asarray(log_softmax(self._x, axis=self.axis, **self._kw))

    @cached_property
    def _lnz(self) -> np.ndarray:
        return np.asarray(logsumexp(self._x, axis=self.axis, **self._kw))

    @cached_property
    def _moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ref, mu, var)``: the energy of the most probable state, and the mean and
        variance of ``beta (E - ref)``. Working relative to ``ref`` keeps full accuracy
        when the energies share a large offset (``U = ref + mu / beta`` may not even be
        representable, but ``C = var`` still is)."""
        e = -self._x
        ax = self.axis
        if e.shape[ax] == 0:  # no states: the moments are undefined
            nan = np.full(self._lnz.shape, np.nan)
            return nan, nan, nan
        with np.errstate(all="ignore"):
            ref = np.take_along_axis(e, np.expand_dims(np.argmax(self._p, axis=ax), ax), ax)
            d = self._times_beta(e - ref)
            # E - ref overflows only for huge energies at tiny beta: scale first
            d = np.where(np.isfinite(d), d, self._times_beta(e) - self._times_beta(ref))
            mu = self._sum(self._p * d)
            dev = d - np.expand_dims(mu, ax)
            var = self._sum(self._p * dev * dev)
            return np.squeeze(ref, ax), mu, var

    @cached_property
    def _u(self) -> np.ndarray:
        ref, mu, _ = self._moments
        t = self._scale.temperature
        with np.errstate(all="ignore"):
            shifted = ref + (mu * t if t is not None else mu / self.beta)
            # infinite energies in the support: the plain sum gives the limit (+-inf)
            direct = self._sum(self._p * -self._x)
            u = np.where(np.isfinite(shifted), shifted, direct)
            return np.where(self._lnz == -np.inf, np.nan, u)

    # ----------------------------------------------------------------- public
    @property
    def probs(self) -> Any:
        """Probabilities ``exp(-beta E_i) / Z``, of the energies' shape."""
        return self._out(self._p)

    @property
    def log_probs(self) -> Any:
        """Log-probabilities ``-beta E_i - ln Z``, of the energies' shape."""
        return self._out(self._logp)

    @property
    def log_partition(self) -> Any:
        """``ln Z`` per system (the batch shape)."""
        return self._out(self._lnz)

    @property
    def partition(self) -> Any:
        """``Z`` per system; ``inf`` where it overflows (use :attr:`log_partition`)."""
        with np.errstate(over="ignore"):
            return self._out(np.exp(self._lnz))

    @property
    def free_energy(self) -> Any:
        """Helmholtz free energy ``F = -ln Z / beta``."""
        t = self._scale.temperature
        with np.errstate(all="ignore"):
            f = -self._lnz * t if t is not None else -self._lnz / self.beta
        return self._out(f)

    @property
    def mean_energy(self) -> Any:
        """Internal energy ``U = sum p_i E_i``."""
        return self._out(self._u)

    @property
    def entropy(self) -> Any:
        """Gibbs entropy ``S = -sum p_i ln p_i`` in nats (k_B = 1)."""
        with np.errstate(all="ignore"):
            s = -self._sum(self._p * self._logp)
            return self._out(np.where(self._lnz == -np.inf, np.nan, s))

    @property
    def heat_capacity(self) -> Any:
        """Heat capacity ``C = beta^2 Var(E) = dU/dT`` (k_B = 1)."""
        c = self._moments[2]
        return self._out(np.where(self._lnz == -np.inf, np.nan, c))

    def sample(self, size: int | tuple[int, ...] | None = None, rng: Any = None) -> Any:
        """Draw states: indices along ``axis``, of shape ``size + batch``.

        Parameters
        ----------
        size : int or tuple of ints, optional
            Draws per system, prepended to the batch shape.
        rng : int, numpy.random.Generator or None
            Seed or generator.

        Returns
        -------
        ndarray of intp or NumPy integer
            State indices.

        Raises
        ------
        ValueError
            If a system has a NaN energy or no allowed state.

        Examples
        --------
        >>> import numpy as np
        >>> from softargmax.boltzmann import Boltzmann
        >>> b = Boltzmann([0.0, 1.0, 2.0], beta=1.0)
        >>> draws = b.sample(size=50_000, rng=0)
        >>> bool(np.abs(np.bincount(draws) / draws.size - b.probs).max() < 0.01)
        True
        """
        from .sampling import _as_result, _categorical, _check_support, _generator, _size

        shape = _size(size)
        gen = _generator(rng)
        logp = np.moveaxis(self._logp, self.axis, -1)
        batch = logp.shape[:-1]
        rows = logp.reshape(int(np.prod(batch)), logp.shape[-1])
        _check_support(rows, "energies")
        p = np.moveaxis(self._p, self.axis, -1).reshape(rows.shape)
        return _as_result(_categorical(p, int(np.prod(shape)), gen), shape, batch)


def demo_section() -> str:
    """A short text tour of :class:`Boltzmann`, for ``softargmax demo``."""
    lines = ["Boltzmann distribution (softargmax.boltzmann.Boltzmann)"]
    lines.append("  two-level system, gap 1: T, p(excited), U, S, C")
    for t in (0.1, 0.5, 1.0, 10.0):
        b = Boltzmann([0.0, 1.0], temperature=t)
        lines.append(
            f"    T={t:<5g} p1={float(b.probs[1]):.4f}  U={float(b.mean_energy):.4f}  "
            f"S={float(b.entropy):.4f}  C={float(b.heat_capacity):.4f}"
        )
    e0 = 1e300
    e1 = float(np.nextafter(e0, np.inf))
    hot = Boltzmann([e0, e1], beta=1.0 / (e1 - e0))
    lines.append(
        f"  E = [1e300, next float], beta = 1/gap: p={np.round(hot.probs, 4).tolist()}, "
        f"C={float(hot.heat_capacity):.4f} (U itself rounds to 1e300)"
    )
    n = 8  # an 8-spin Ising ring, enumerated
    spins = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    e = -np.sum(spins * np.roll(spins, 1, axis=1), axis=1).astype(float)
    ts = np.linspace(0.2, 4.0, 400)
    c = np.array([float(Boltzmann(e, temperature=t).heat_capacity) for t in ts])
    lines.append(f"  8-spin Ising ring (256 states): heat capacity peaks at T={ts[np.argmax(c)]:.2f}, C/N={c.max() / n:.3f}")
    return "\n".join(lines)
