"""The default RL preset learns within a hundred children (a small strategy_efficiency run)."""

from __future__ import annotations

from tests.conftest import load_benchmark

bench = load_benchmark("strategy_efficiency")


def test_default_reinforce_beats_random_search_at_100_children():
    # 6 decisions x 4 choices (4,096 architectures): 100 children see 2.4% of them.
    problem = bench.ChainFormula(num=6, size=4, seed=1)
    best = {}
    for name in ("random", "reinforce"):
        factory = bench.PRESETS[name][1]
        best[name] = [bench.run(factory, problem, seed, 100)["curve"][-1] for seed in range(10)]
    diff, lo, _ = bench.bootstrap_difference(best["reinforce"], best["random"])
    assert lo > 0, (diff, lo, best)
