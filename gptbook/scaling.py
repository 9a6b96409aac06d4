"""Scaling laws: power-law fits, compute budgets and the compute-efficient frontier.

Introduced in chapter 8. Kaplan et al. (2020) found that a language model's test loss falls as a
power of its size, L(N) = (N_c / N)^α_N, with α_N ≈ 0.076 and N_c ≈ 8.8e13 non-embedding
parameters (:data:`KAPLAN_N`); training costs about C = 6·N·D FLOPs for D tokens
(:func:`training_compute`). Hoffmann et al. (2022, "Chinchilla") found that for a fixed budget
parameters and tokens should grow together, about 20 tokens per parameter
(:func:`chinchilla_optimal`). Their second approach measures it: at each of a few budgets,
train models of several sizes for exactly that budget, fit a parabola in log N to each
"IsoFLOP" profile (:func:`fit_isoflop`), and fit how the minima grow with the budget
(:func:`fit_compute_optimal`).

    law = scaling.fit_power_law(n_params, val_loss)   # L ≈ (law.scale / N) ** law.exponent
    law(1e9)                                          # its prediction at a billion parameters
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .sizes import FLOPS_PER_PARAMETER_TOKEN  # 6: C = 6·N·D

#: FLOPs of one petaFLOP/s-day, the unit of Kaplan et al.'s and GPT-3's compute figures.
PF_DAY = 1e15 * 24 * 3600
#: Chinchilla's rule of thumb: compute-optimal training reads about 20 tokens per parameter.
TOKENS_PER_PARAMETER = 20
#: Points of the grid :func:`fit_power_law` searches for the irreducible loss.
IRREDUCIBLE_GRID = 400


@dataclass(frozen=True)
class PowerLaw:
    """y = irreducible + (scale / x) ** exponent: a loss that falls as a power of x (parameters,
    tokens or compute) towards a floor ``irreducible`` (0: no floor)."""

    scale: float
    exponent: float
    irreducible: float = 0.0

    def __call__(self, x):
        """The law at ``x`` (a number, or a NumPy array / tensor of them)."""
        return self.irreducible + (self.scale / x) ** self.exponent

    def __str__(self) -> str:
        floor = f"{self.irreducible:.3g} + " if self.irreducible else ""
        return f"L = {floor}({self.scale:.3g} / x)^{self.exponent:.3g}"


#: Kaplan et al.'s L(N): loss in nats per token against non-embedding parameters.
KAPLAN_N = PowerLaw(scale=8.8e13, exponent=0.076)


def _line(u: Sequence[float], v: Sequence[float]) -> tuple[float, float, float]:
    """Least squares v ≈ a + b·u: (a, b, the sum of squared residuals)."""
    n = len(u)
    mu, mv = sum(u) / n, sum(v) / n
    suu = sum((x - mu) ** 2 for x in u)
    b = sum((x - mu) * (y - mv) for x, y in zip(u, v)) / suu
    a = mv - b * mu
    return a, b, sum((y - a - b * x) ** 2 for x, y in zip(u, v))


def fit_power_law(x: Sequence[float], y: Sequence[float], irreducible: bool = False) -> PowerLaw:
    """The :class:`PowerLaw` through the points (x, y), fitted in log space: log y is a line in
    log x, of slope -exponent. With ``irreducible`` the floor L∞ is fitted too: the line is
    fitted to log(y - L∞) for L∞ on a grid below min(y), and the L∞ whose law best matches
    log y is kept."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y) or len(x) < 2 + irreducible:
        raise ValueError(
            f"fit_power_law needs as many y as x, and at least {2 + irreducible} points: "
            f"got {len(x)} x and {len(y)} y"
        )
    if not all(math.isfinite(v) for v in x + y):
        raise ValueError(f"x and y must be finite numbers (no NaN or inf), got x={x}, y={y}")
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("x and y must be positive: a power law is fitted to their logarithms")
    if len(set(y)) < 2:
        raise ValueError(
            "y is the same at every x: no power law falls through it (its exponent would be 0 "
            "and its scale undefined); fit points whose y changes"
        )
    if len(set(x)) < 2:
        raise ValueError("x needs at least two different values to give a slope")
    log_x, log_y = [math.log(v) for v in x], [math.log(v) for v in y]
    floors = (
        [min(y) * k / IRREDUCIBLE_GRID for k in range(IRREDUCIBLE_GRID)] if irreducible else [0.0]
    )
    best = None
    for floor in floors:
        a, b, _ = _line(log_x, [math.log(v - floor) for v in y])
        law = PowerLaw(scale=math.exp(-a / b) if b else math.inf, exponent=-b, irreducible=floor)
        error = sum((math.log(law(v)) - ly) ** 2 for v, ly in zip(x, log_y))
        if best is None or error < best[0]:
            best = (error, law)
    return best[1]


def training_compute(n_params: float, n_tokens: float) -> float:
    """FLOPs to train ``n_params`` parameters on ``n_tokens`` tokens: C ≈ 6·N·D."""
    for name, value in (("n_params", n_params), ("n_tokens", n_tokens)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive, finite number, got {value!r}")
    return FLOPS_PER_PARAMETER_TOKEN * n_params * n_tokens


def chinchilla_optimal(compute: float) -> tuple[float, float]:
    """The compute-optimal (parameters, tokens) for a budget of ``compute`` FLOPs by the
    Chinchilla rule: D = 20·N and C = 6·N·D, so N = √(C / 120)."""
    if not (compute > 0 and math.isfinite(compute)):
        raise ValueError(f"compute must be a positive, finite number of FLOPs, got {compute}")
    n = math.sqrt(compute / (FLOPS_PER_PARAMETER_TOKEN * TOKENS_PER_PARAMETER))
    return n, TOKENS_PER_PARAMETER * n


def frontier(curves: dict[str, tuple[Sequence[float], Sequence[float]]]) -> list[tuple]:
    """The compute-efficient frontier of loss-against-compute curves, ``{name: (compute,
    loss)}``: the points no other point beats with as little compute or less, in order of
    compute, as (compute, loss, name)."""
    points = sorted(
        (c, loss, name)
        for name, (compute, losses) in curves.items()
        for c, loss in zip(compute, losses, strict=True)
    )
    kept, best = [], math.inf
    for c, loss, name in points:
        if loss < best:
            kept.append((c, loss, name))
            best = loss
    return kept


def elbows(curves: dict[str, tuple[Sequence[float], Sequence[float]]]) -> dict[str, tuple]:
    """Where each curve leaves the frontier: its last frontier point, (compute, loss), after
    which a larger model reaches lower loss for the same compute. Curves never on the frontier
    are left out."""
    found = {}
    for c, loss, name in frontier(curves):
        found[name] = (c, loss)
    return found


#: How far from 0 the log of a fitted vertex may lie: e^700 is near the largest float.
VERTEX_LOG_LIMIT = 700.0


@dataclass(frozen=True)
class IsoFLOP:
    """One IsoFLOP profile's fit (chapter 8): loss ≈ c0 + c1·u + c2·u², u = ln N, for models
    that all trained on ``compute`` FLOPs. ``n_opt`` is the parabola's lowest point, the
    compute-optimal size (meaningful only when ``opens_up``: c2 > 0); ``d_opt`` is the tokens it
    reads there, C / (6·N_opt)."""

    compute: float
    coefficients: tuple[float, float, float]
    n_range: tuple[float, float]

    @property
    def opens_up(self) -> bool:
        """Whether the parabola has a minimum (a U), not a maximum."""
        return self.coefficients[2] > 0

    @property
    def n_opt(self) -> float:
        """The N at the parabola's vertex: exp(-c1 / (2·c2)), its log kept within
        ±:data:`VERTEX_LOG_LIMIT` (a nearly flat fit, as a run too short to learn gives, has
        its vertex far out)."""
        _, c1, c2 = self.coefficients
        u = -c1 / (2 * c2) if c2 else VERTEX_LOG_LIMIT
        return math.exp(max(-VERTEX_LOG_LIMIT, min(VERTEX_LOG_LIMIT, u)))

    @property
    def d_opt(self) -> float:
        """The tokens the optimal size reads on this budget: C / (6·N_opt)."""
        return self.compute / (FLOPS_PER_PARAMETER_TOKEN * self.n_opt)

    @property
    def loss_opt(self) -> float:
        """The fitted loss at ``n_opt``."""
        return self(self.n_opt)

    @property
    def inside(self) -> bool:
        """Whether the minimum is a real one: the parabola opens upward and its vertex lies
        strictly between the smallest and the largest size tried."""
        return self.opens_up and self.n_range[0] < self.n_opt < self.n_range[1]

    def __call__(self, n):
        """The fitted loss at ``n`` parameters (a number or a NumPy array)."""
        import numpy as np

        u = np.log(n)
        c0, c1, c2 = self.coefficients
        return c0 + c1 * u + c2 * u * u


def fit_isoflop(n_params: Sequence[float], losses: Sequence[float], compute: float) -> IsoFLOP:
    """The parabola in ln N through one IsoFLOP profile: the losses of models of
    ``n_params`` parameters that each trained on ``compute`` FLOPs (Hoffmann et al.'s
    approach 2), fitted by least squares."""
    import numpy as np

    n, y = np.asarray(n_params, dtype=float), np.asarray(losses, dtype=float)
    if n.shape != y.shape or n.ndim != 1 or len(set(n.tolist())) < 3:
        raise ValueError(
            f"fit_isoflop needs one loss per size and at least 3 different sizes, got "
            f"{n.size} sizes and {y.size} losses: train more sizes on this budget"
        )
    if n.min() <= 0 or not compute > 0:
        raise ValueError("sizes and compute must be positive: the parabola is in their logs")
    c2, c1, c0 = np.polyfit(np.log(n), y, 2)
    return IsoFLOP(float(compute), (float(c0), float(c1), float(c2)), (n.min(), n.max()))


@dataclass(frozen=True)
class ComputeOptimal:
    """How the compute-optimal size and tokens grow with the budget: N_opt ∝ C^a and
    D_opt ∝ C^b (chapter 8). With C = 6·N·D, a + b = 1; Chinchilla measured a ≈ b ≈ 0.5."""

    n_law: PowerLaw
    d_law: PowerLaw

    @property
    def a(self) -> float:
        """The exponent of N_opt ∝ C^a."""
        return -self.n_law.exponent

    @property
    def b(self) -> float:
        """The exponent of D_opt ∝ C^b."""
        return -self.d_law.exponent

    def __call__(self, compute):
        """(N_opt, D_opt) for a budget of ``compute`` FLOPs."""
        return self.n_law(compute), self.d_law(compute)


#: Chinchilla's measured exponents of N_opt ∝ C^a and D_opt ∝ C^b (approach 2: 0.49, 0.51).
CHINCHILLA_A, CHINCHILLA_B = 0.49, 0.51


def fit_compute_optimal(profiles: Sequence[IsoFLOP]) -> ComputeOptimal:
    """Power laws through the IsoFLOP minima, N_opt against C and D_opt against C (each fitted
    by :func:`fit_power_law`; its exponent is the negative of the growth exponent)."""
    if len(profiles) < 2 or not all(p.opens_up for p in profiles):
        raise ValueError(
            "fit_compute_optimal needs at least 2 profiles, each with a minimum (a parabola "
            "opening upward): add budgets, or widen the sizes tried so each profile is a U"
        )
    compute = [p.compute for p in profiles]
    return ComputeOptimal(
        fit_power_law(compute, [p.n_opt for p in profiles]),
        fit_power_law(compute, [p.d_opt for p in profiles]),
    )
