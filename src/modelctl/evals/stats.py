"""Paired comparison of two pass/fail sides on the same examples, with an exact interval.

Only discordant pairs carry information about the difference in pass rate: with `b` examples
that pass on the candidate only and `c` that pass on the baseline only, out of `n` pairs,

    delta = (b - c) / n = (b + c) / n * (2p - 1),   p = b / (b + c).

Conditional on `b + c`, `b` is binomial with parameter p (this is McNemar's exact test), so a
Clopper-Pearson interval for p maps to an interval for delta. No random numbers, so the same
data always gives the same verdict; no SciPy, so the incomplete beta function is computed here
(Lentz's continued fraction, as in Numerical Recipes 6.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b): Newton steps on I_x(a, b) = q, kept inside a shrinking
    bisection bracket so it always converges (a few steps from the normal approximation)."""
    lo, hi = 0.0, 1.0
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    z = math.sqrt(2) * _erfinv(2 * q - 1)
    x = min(max(mean + z * sd, 1e-12), 1 - 1e-12)
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    for _ in range(100):
        f = betainc(a, b, x) - q
        if f < 0:
            lo = x
        else:
            hi = x
        if hi - lo < 1e-12 or abs(f) < 1e-14:
            break
        density = math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x))
        step = x - f / density if density > 0 else -1.0
        x = step if lo < step < hi else (lo + hi) / 2
    return x


def _erfinv(y: float) -> float:
    """Inverse error function (Giles' single-precision approximation, refined by Newton)."""
    y = min(max(y, -1 + 1e-15), 1 - 1e-15)
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w -= 2.5
        p = 2.81022636e-08
        for c in (
            3.43273939e-07,
            -3.5233877e-06,
            -4.39150654e-06,
            0.00021858087,
            -0.00125372503,
            -0.00417768164,
            0.246640727,
            1.50140941,
        ):
            p = c + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        for c in (
            0.000100950558,
            0.00134934322,
            -0.00367342844,
            0.00573950773,
            -0.0076224613,
            0.00943887047,
            1.00167406,
            2.83297682,
        ):
            p = c + p * w
    x = p * y
    for _ in range(2):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided interval for a binomial proportion."""
    if trials == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    lower = 0.0 if successes == 0 else beta_ppf(alpha / 2, successes, trials - successes + 1)
    upper = (
        1.0 if successes == trials else beta_ppf(1 - alpha / 2, successes + 1, trials - successes)
    )
    return lower, upper


@dataclass(frozen=True)
class Paired:
    n: int  # pairs compared
    candidate_passed: int
    baseline_passed: int
    only_candidate: int  # b: candidate passes, baseline fails
    only_baseline: int  # c: baseline passes, candidate fails
    delta: float  # candidate rate - baseline rate
    ci_low: float
    ci_high: float


def compare(pairs: list[tuple[bool, bool]], confidence: float) -> Paired:
    """Candidate vs baseline pass/fail on the same examples: difference and exact interval."""
    n = len(pairs)
    cand = sum(1 for c, _ in pairs if c)
    base = sum(1 for _, b in pairs if b)
    b = sum(1 for c, bb in pairs if c and not bb)
    c = sum(1 for cc, bb in pairs if bb and not cc)
    return compare_counts(n, cand, base, b, c, confidence)


def compare_counts(n: int, cand: int, base: int, b: int, c: int, confidence: float) -> Paired:
    if n == 0:
        return Paired(0, 0, 0, 0, 0, 0.0, -1.0, 1.0)
    delta = (b - c) / n
    discordant = b + c
    if discordant == 0:
        low = high = 0.0
    else:
        p_low, p_high = clopper_pearson(b, discordant, confidence)
        scale = discordant / n
        low, high = scale * (2 * p_low - 1), scale * (2 * p_high - 1)
    return Paired(n, cand, base, b, c, delta, round(low, 6), round(high, 6))


METHOD = "exact conditional interval on discordant pairs (McNemar / Clopper-Pearson)"
