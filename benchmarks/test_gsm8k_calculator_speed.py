"""The calculator scores degenerate generations in linear time: a 30-term operator chain and a 100 kB solution each
in under 50 ms (the old inline-equation regex took 2 s at 11 terms, x4 per further term).

`make bench` times them; under `make test` (--benchmark-disable) they run once with the same bound.
"""
import time

import pytest

from pic.tasks.gsm8k.calculator import calculator_energy

GOAL_S = 0.050
CASES = {
    "30-term operator chain": " " + " + ".join(str(i) for i in range(1, 31)) + " = x",
    "100 kB solution": ("She has 3 + 4 = 7 apples and 2 * 5 = 11 pears, 50 * 10% = 5. " * 1700)[:100_000],
}


@pytest.mark.parametrize("name", list(CASES))
def test_degenerate_solutions_are_scored_in_under_50_ms(benchmark, name):
    text = CASES[name]
    if benchmark.disabled:
        start = time.perf_counter()
        calculator_energy(text)
        assert time.perf_counter() - start < GOAL_S
        return
    benchmark.pedantic(calculator_energy, args=(text,), rounds=5, iterations=1)
    assert benchmark.stats.stats.max < GOAL_S
