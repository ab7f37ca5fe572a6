"""benchmarks/learning_bursts.py: the decisions of an agent on spikes, counted from the records."""

from __future__ import annotations

import pytest

from agents.baselines import Greedy
from batchenv.scenarios import load_scenario
from benchmarks import learning_bursts


def test_greedy_against_itself_and_a_scheduler_that_sends_everything_to_llm3() -> None:
    bursts = learning_bursts
    config = load_scenario("bursty_low").replace(horizon_s=30.0)
    seeds = [1, 2, 3]
    greedy = bursts.episode_rows(config, Greedy(config), seeds)
    same = bursts.summarise(greedy, greedy["costs"])
    assert same["gap_to_greedy"] == 0.0 and same["distilled_share"] == 0.0
    assert same["episodes_worse_than_2pct"] == 0
    served = sum(b["requests"] for b in same["by_batch_size"])
    assert served == sum(size * n for size, n in greedy["batches"][0].items()) > 0
    # everything on LLM-3 at once: every request on a distilled model, a lower quality costs more
    small = bursts.episode_rows(config, Greedy(config, model=2), seeds)
    worse = bursts.summarise(small, greedy["costs"])
    assert worse["distilled_share"] == 1.0 and worse["gap_to_greedy"] > 0
    assert all(b["distilled"] in (None, 1.0) for b in worse["by_batch_size"])
    text = bursts.markdown(
        {
            "models": {"m.zip": worse},
            "meta": {
                "command": "c",
                "date": "d",
                "scenario": "bursty_low",
                "seeds": seeds,
                "horizon_s": 30.0,
            },
        }
    )
    assert worse["episodes_worse_than_2pct"] == 3
    assert f"| `m.zip` | {worse['gap_to_greedy']:+.2%} |" in text and "| 3 of 3 | 1.000 |" in text


def test_bad_flags() -> None:
    bursts = learning_bursts
    for flags in (["--seeds", "x"], ["--horizon-s", "0"], ["--models", "missing.zip", "--seeds", "1"]):
        with pytest.raises(SystemExit) as exit_info:
            bursts.main(flags)
        assert exit_info.value.code == 2


def test_sample_spread_of_the_timeout_against_itself_and_of_ten_episode_blocks() -> None:
    """The sample-size table: a gap over each block of ten episodes, over all of them and over
    the card's seeds, computed as evaluate.py does (seed-paired, to the tuned timeout)."""
    from evaluation.stats import paired_gap

    config = load_scenario("bursty_low").replace(horizon_s=20.0)
    seeds = list(range(100, 120))
    same = learning_bursts.sample_spread(config, "timeout", seeds, [0, 1])
    assert same["gap"] == 0.0 and same["block_gaps"] == [0.0, 0.0] and same["covered"] == 2
    spread = learning_bursts.sample_spread(config, "greedy(model=LLM-3)", seeds, [0, 1])
    assert len(spread["block_gaps"]) == 2 and spread["block_min"] <= spread["gap"] <= spread["block_max"]
    timeout = learning_bursts._costs(config, "timeout", seeds[:10])
    llm3 = learning_bursts._costs(config, "greedy(model=LLM-3)", seeds[:10])
    assert spread["block_gaps"][0] == paired_gap(llm3, timeout)[0]
