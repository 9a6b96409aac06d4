"""gptbook.scaling: power laws fitted in log space, compute budgets, the frontier."""

from __future__ import annotations

import math
import random

import pytest

from gptbook import scaling
from gptbook.scaling import PowerLaw


def noisy(law: PowerLaw, x: list[float], noise: float, seed: int = 0) -> list[float]:
    """The law at x, each value times exp(a normal draw of std ``noise``)."""
    rng = random.Random(seed)
    return [law(v) * math.exp(rng.gauss(0, noise)) for v in x]


SIZES = [10 ** (3 + k / 2) for k in range(9)]  # 1e3 … 1e7


@pytest.mark.parametrize("exponent", [0.076, 0.3, 1.2])
def test_fit_recovers_a_known_exponent_from_noisy_points(exponent):
    law = PowerLaw(scale=5e4, exponent=exponent)
    fitted = scaling.fit_power_law(SIZES, noisy(law, SIZES, noise=0.01))
    assert fitted.exponent == pytest.approx(exponent, abs=0.01 + 0.02 * exponent)
    assert fitted.irreducible == 0
    exact = scaling.fit_power_law(SIZES, [law(v) for v in SIZES])
    assert exact.exponent == pytest.approx(exponent, rel=1e-9)
    assert exact.scale == pytest.approx(5e4, rel=1e-6)


def test_fit_with_a_floor_recovers_the_irreducible_loss():
    law = PowerLaw(scale=1e4, exponent=0.5, irreducible=1.5)
    y = noisy(law, SIZES, noise=0.002, seed=1)
    fitted = scaling.fit_power_law(SIZES, y, irreducible=True)
    assert fitted.irreducible == pytest.approx(1.5, abs=0.05)
    assert fitted.exponent == pytest.approx(0.5, abs=0.05)
    without = scaling.fit_power_law(SIZES, y)
    assert without.exponent < 0.25, "a floor ignored flattens the law"
    assert max(abs(math.log(fitted(v) / t)) for v, t in zip(SIZES, y)) < 0.01


def test_a_power_law_evaluates_and_prints():
    law = PowerLaw(scale=100.0, exponent=0.5, irreducible=1.0)
    assert law(25.0) == pytest.approx(3.0)
    assert str(law) == "L = 1 + (100 / x)^0.5"
    assert str(scaling.KAPLAN_N) == "L = (8.8e+13 / x)^0.076"


def test_fit_refuses_what_it_cannot_fit():
    with pytest.raises(ValueError, match="as many y as x"):
        scaling.fit_power_law([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3 points"):
        scaling.fit_power_law([1, 2], [2, 1], irreducible=True)
    with pytest.raises(ValueError, match="must be positive"):
        scaling.fit_power_law([1, 2, 0], [3, 2, 1])
    with pytest.raises(ValueError, match="two different values"):
        scaling.fit_power_law([5, 5], [2, 1])


def test_compute_budgets_follow_six_n_d_and_twenty_tokens_per_parameter():
    assert scaling.training_compute(1e9, 2e10) == 6 * 1e9 * 2e10
    chinchilla = scaling.training_compute(70e9, 1.4e12)  # 70B parameters, 1.4T tokens
    n, d = scaling.chinchilla_optimal(chinchilla)
    assert n == pytest.approx(70e9) and d == pytest.approx(1.4e12)
    assert scaling.training_compute(n, d) == pytest.approx(chinchilla)
    assert scaling.PF_DAY == pytest.approx(8.64e19)
    with pytest.raises(ValueError, match="positive, finite number of FLOPs"):
        scaling.chinchilla_optimal(0)


def test_frontier_keeps_the_points_nothing_cheaper_beats():
    curves = {
        "small": ([1, 2, 4, 8], [5.0, 4.0, 3.6, 3.5]),
        "large": ([4, 8, 16, 32], [4.5, 3.4, 2.9, 2.7]),
        "worse": ([2, 8], [6.0, 4.0]),
    }
    assert scaling.frontier(curves) == [
        (1, 5.0, "small"),
        (2, 4.0, "small"),
        (4, 3.6, "small"),
        (8, 3.4, "large"),
        (16, 2.9, "large"),
        (32, 2.7, "large"),
    ]
    assert scaling.elbows(curves) == {"small": (4, 3.6), "large": (32, 2.7)}


def isoflop_losses(compute: float, sizes: list[float], n_opt: float, noise: float = 0.0):
    """Synthetic IsoFLOP losses: a parabola in ln N with its lowest point at ``n_opt``."""
    rng = random.Random(int(compute))
    return [2.0 + 0.1 * math.log(n / n_opt) ** 2 + rng.gauss(0, noise) for n in sizes]


def test_fit_isoflop_finds_the_minimum_of_a_noisy_u():
    sizes = [1e3 * 2**k for k in range(7)]  # 1e3 … 6.4e4
    fit = scaling.fit_isoflop(sizes, isoflop_losses(1e12, sizes, 8e3, noise=0.002), 1e12)
    assert fit.opens_up and fit.inside
    assert fit.n_opt == pytest.approx(8e3, rel=0.1)
    assert fit.loss_opt == pytest.approx(2.0, abs=0.01)
    assert fit.d_opt == pytest.approx(1e12 / (6 * fit.n_opt))


def test_a_monotone_profile_has_no_minimum_inside():
    sizes = [1e3 * 2**k for k in range(5)]
    fit = scaling.fit_isoflop(sizes, isoflop_losses(1e12, sizes, 1e6), 1e12)
    assert fit.opens_up and not fit.inside  # the vertex lies beyond the largest size
    hump = scaling.fit_isoflop(sizes, [-v for v in isoflop_losses(1e12, sizes, 4e3)], 1e12)
    assert not hump.opens_up and not hump.inside


def test_compute_optimal_recovers_chinchilla_exponents():
    budgets = [1e10, 4e10, 1.6e11, 6.4e11]
    profiles = []
    for c in budgets:
        n_opt = 0.1 * c**0.5  # N_opt ∝ C^0.5, so D_opt ∝ C^0.5
        sizes = [n_opt * 2**k for k in range(-3, 4)]
        profiles.append(scaling.fit_isoflop(sizes, isoflop_losses(c, sizes, n_opt), c))
    law = scaling.fit_compute_optimal(profiles)
    assert law.a == pytest.approx(0.5, abs=1e-6)
    assert law.b == pytest.approx(0.5, abs=1e-6)
    n, d = law(1e12)
    assert scaling.training_compute(n, d) == pytest.approx(1e12, rel=1e-6)


def test_isoflop_fits_refuse_too_little_data():
    with pytest.raises(ValueError, match="at least 3 different sizes"):
        scaling.fit_isoflop([1e3, 2e3], [2.0, 1.9], 1e12)
    sizes = [1e3 * 2**k for k in range(5)]
    with pytest.raises(ValueError, match="at least 2 profiles"):
        scaling.fit_compute_optimal(
            [scaling.fit_isoflop(sizes, isoflop_losses(1e9, sizes, 4e3), 1e9)]
        )
