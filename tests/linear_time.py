"""How a function's cost grows with its input: the worst case over adversarial inputs at 5,000 characters against
the worst case at 500. A linear function gives about 10; the quadratic link expression gave about 100.

Times are the minimum over rounds (noise on a shared machine only adds time), each round timing both sizes
back to back so that both see the same load; a ratio over the bound is measured again before it counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Final

SMALL: Final = 500
LARGE: Final = 5000
#: "At most about 10 times": linear is 10 (or less, with fixed costs), quadratic 100.
BOUND: Final = 15.0
ROUNDS: Final = 7
ATTEMPTS: Final = 3


def _cost(function: Callable[[str], object], value: str, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        function(value)
    return (time.perf_counter() - start) / repeat


def _repeats(function: Callable[[str], object], value: str) -> int:
    """Enough calls for about 2 ms of work, so that neither the clock's resolution nor one interruption decides."""
    single = max(_cost(function, value, 1), 1e-7)
    return max(1, min(2000, int(0.002 / single)))


def worst_case_ratio(function: Callable[[str], object],
                     inputs: Iterable[Callable[[int], str]]) -> tuple[float, float, float]:
    """(worst time at 500, worst time at 5,000, their ratio), each input family built at both sizes."""
    families = list(inputs)
    ratio = small_worst = large_worst = 0.0
    for _ in range(ATTEMPTS):
        small_best = [float("inf")] * len(families)
        large_best = [float("inf")] * len(families)
        for _ in range(ROUNDS):
            for i, make in enumerate(families):
                small, large = make(SMALL), make(LARGE)
                assert len(small) == SMALL and len(large) == LARGE, (len(small), len(large))
                small_best[i] = min(small_best[i], _cost(function, small, _repeats(function, small)))
                large_best[i] = min(large_best[i], _cost(function, large, _repeats(function, large)))
        small_worst, large_worst = max(small_best), max(large_best)
        ratio = large_worst / small_worst
        if ratio <= BOUND:
            break
    return small_worst, large_worst, ratio


def sized(unit: str, tail: str = "") -> Callable[[int], str]:
    """`unit` repeated, then `tail`, cut to exactly n characters (the tail kept)."""
    def make(n: int) -> str:
        return (unit * (n // max(1, len(unit)) + 1))[:n - len(tail)] + tail
    return make
