"""benchmarks/learning_bands.py: failing training seeds per load band, read from learning JSON."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_script
from scipy.stats import fisher_exact

REPO = Path(__file__).resolve().parents[1]


def _bands():
    return load_script("learning_bands")


def _results(path: Path, gaps: dict[str, dict[str, dict[int, float]]]) -> Path:
    """A learning JSON with, per scenario, experiment and seed, a gap to the baselines."""
    assessment = {
        scenario: {
            "agents": {
                name: {
                    "models": [
                        {"model": f"runs/x/{name}/ppo_env_seed{seed}/best_model.zip", "gap_to_baselines": gap}
                        for seed, gap in per_seed.items()
                    ]
                }
                for name, per_seed in experiments.items()
            }
        }
        for scenario, experiments in gaps.items()
    }
    path.write_text(json.dumps({"assessment": assessment}), encoding="utf-8")
    return path


def test_bands_follow_the_arrivals_and_the_objective() -> None:
    bands = _bands()
    capacity = bands.default_capacity_per_s()
    assert capacity == pytest.approx(576.58, abs=0.01)
    expected = {
        "poisson_50": "busy",
        "high_load": "busy",
        "azure_trace_60_test": "busy",
        "poisson_25": "moderate",
        "default": "moderate",
        "azure_trace_30_test": "moderate",
        "azure_trace_slo_test": "slo",
        "poisson_rate_10": None,
        "bursty": None,
        "default_randomised": None,
    }
    assert {name: bands.band(name, capacity) for name in expected} == expected


def test_counts_seeds_per_band_merges_files_and_tests_against_the_reference(tmp_path: Path) -> None:
    bands = _bands()
    first = _results(
        tmp_path / "a.json",
        {
            "poisson_50": {"ref": {0: 0.03, 1: 0.0, 2: 0.0, 3: 0.0}, "new": {0: 0.0, 1: 0.0}},
            "poisson_25": {"ref": {0: 0.0, 1: 0.05, 2: 0.0, 3: 0.0}, "new": {0: 0.0, 1: 0.0}},
            "poisson_rate_1": {"ref": {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.021}, "new": {0: 0.0, 1: 0.0}},
        },
    )
    # A second file assesses ref's seed 0 again (counted from the first file) and new's seed 2.
    second = _results(
        tmp_path / "b.json",
        {
            "poisson_50": {"ref": {0: 0.0}, "new": {2: 0.5}},
            "azure_trace_slo_test": {"ref": {0: 0.0}, "new": {2: 0.0}},
        },
    )
    experiments = bands.collect([first, second])
    ref, new = experiments["ref"], experiments["new"]
    assert len(ref.models) == 4 and len(new.models) == 3
    band_of = {s: bands.band(s, 576.58) for s in ("poisson_50", "poisson_25", "poisson_rate_1")}
    assert [bands._seed_of(m) for m in ref.failing(band_of, "busy")] == ["0"]
    assert [bands._seed_of(m) for m in ref.failing(band_of, "moderate")] == ["1"]
    assert [bands._seed_of(m) for m in new.failing(band_of, "busy")] == ["2"]
    # seed 3 fails only at 1/s (no band) and is not clean; 0.02 exactly is within the goal
    assert [bands._seed_of(m) for m in ref.clean()] == ["2"]
    assert [bands._seed_of(m) for m in new.clean()] == ["0", "1"]

    summary = bands.summarise(experiments, "ref", "python benchmarks/learning_bands.py a.json b.json", 576.58)
    assert summary["experiments"]["new"]["failing"] == {"busy": ["2"], "moderate": [], "slo": []}
    assert "p_vs_reference" not in summary["experiments"]["ref"]
    page = bands.render(summary)
    p_busy = fisher_exact([[1, 2], [1, 3]])[1]
    assert f"| `new` | 3 | 1/3 (2), p = {p_busy:.3f} |" in page
    assert "| `ref` | 4 | 1/4 (0) | 1/4 (1) | 0/4 (-) | 1/4 |" in page


def test_bad_results_files_are_refused_with_the_path(tmp_path: Path) -> None:
    bands = _bands()
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"garbled\.json: not JSON"):
        bands.collect([garbled])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"other\.json: no 'assessment'"):
        bands.collect([other])
    bad_row = tmp_path / "bad_row.json"
    bad_row.write_text(
        json.dumps({"assessment": {"default": {"agents": {"ppo": {"models": [{"model": "m"}]}}}}}),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit, match=r"scenario 'default', agent 'ppo'.*gap_to_baselines"):
        bands.collect([bad_row])
    with pytest.raises(SystemExit, match=r"missing\.json: cannot read it"):
        bands.collect([tmp_path / "missing.json"])
    for scenario, message in (("../x.yaml", "not a scenario name"), ("nope", "unknown scenario 'nope'")):
        named = _results(tmp_path / "named.json", {scenario: {"ppo": {0: 0.0}}})
        with pytest.raises(SystemExit, match=message):
            bands.main([str(named)])
    good = _results(tmp_path / "good.json", {"default": {"ppo": {0: 0.0}}})
    with pytest.raises(SystemExit, match="--reference 'dqn': not among the experiments read"):
        bands.main([str(good), "--reference", "dqn"])
    with pytest.raises(SystemExit, match="--experiments 'ppo,dqn': dqn not read"):
        bands.main([str(good), "--experiments", "ppo,dqn"])


def test_the_committed_page_is_what_the_command_writes(tmp_path: Path) -> None:
    """docs/results/learning_bands.md and the JSON next to it are regenerated by the command
    written at the page's top (written here to tmp_path and compared)."""
    bands = _bands()
    page = (REPO / "docs" / "results" / "learning_bands.md").read_text(encoding="utf-8")
    argv = page.split("Produced by `", 1)[1].split("`", 1)[0].split()[2:]
    committed = REPO / argv[argv.index("--out") + 1]
    argv[argv.index("--out") + 1] = str(tmp_path / "bands.json")
    argv[argv.index("--markdown") + 1] = str(tmp_path / "page.md")
    bands.main([str(REPO / a) if a.startswith("benchmarks/") else a for a in argv])
    written_page = (tmp_path / "page.md").read_text(encoding="utf-8")
    assert written_page.split("(reads", 1)[1] == page.split("(reads", 1)[1]
    written = json.loads((tmp_path / "bands.json").read_text(encoding="utf-8"))
    expected = json.loads(committed.read_text(encoding="utf-8"))
    written["meta"].pop("command"), expected["meta"].pop("command")
    assert written == expected


def test_the_chance_that_the_pick_is_clean_counts_every_subset() -> None:
    bands = _bands()
    rng = np.random.default_rng(3)
    for n in (1, 4, 7):
        scores = rng.normal(size=n).tolist()
        clean = (rng.random(n) < 0.5).tolist()
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            picks = [min(subset, key=lambda i: scores[i]) for subset in subsets]
            expected = sum(clean[i] for i in picks) / len(subsets)
            assert bands.pick_clean_chance(scores, clean, k) == pytest.approx(expected, abs=1e-12)
        assert bands.pick_clean_chance(scores, clean, 1) == pytest.approx(sum(clean) / n)
        assert bands.pick_clean_chance(scores, clean, n) == float(clean[int(np.argmin(scores))])
    for k in (0, 3):
        with pytest.raises(ValueError, match=r"k must be in \[1, 2\]"):
            bands.pick_clean_chance([0.1, 0.2], [True, False], k)


def _with_selection(path: Path, kept: dict[str, dict[int, object]]) -> Path:
    """Add each experiment's training evaluation per seed (``kept_gap``) to a results file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["experiments"] = {
        name: {
            "models": [f"runs/x/{name}/ppo_env_seed{seed}/best_model.zip" for seed in per_seed],
            "kept_gap": list(per_seed.values()),
        }
        for name, per_seed in kept.items()
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_pick_table_reads_the_training_evaluation_and_the_worst_gaps(tmp_path: Path) -> None:
    bands = _bands()
    # seeds 0-3: the training evaluation ranks 2, 0, 3, 1; seeds 1 and 3 fail somewhere
    gaps = {
        "poisson_50": {"ppo": {0: 0.01, 1: 0.03, 2: -0.01, 3: 0.0}},
        "poisson_25": {"ppo": {0: 0.015, 1: 0.0, 2: 0.005, 3: 0.08}},
    }
    path = _with_selection(_results(tmp_path / "r.json", gaps), {"ppo": {0: 0.02, 1: 0.09, 2: 0.01, 3: 0.05}})
    exp = bands.collect([path])["ppo"]
    assert [exp.worst[m] for m in exp.models] == [0.015, 0.03, 0.005, 0.08]
    pick = bands.summarise({"ppo": exp}, None, "cmd", 576.58)["experiments"]["ppo"]["pick"]
    assert pick["pick_of_all"] == {"seed": "2", "clean": True, "worst_gap": 0.005}
    # of the four 3-subsets, the pick is seed 2 in three and seed 0 (clean) in the fourth
    assert pick["chance_clean"]["3"]["chance"] == 1.0 and "5" not in pick["chance_clean"]
    assert pick["chance_clean"]["1"]["chance"] == 0.5
    low, high = pick["chance_clean"]["1"]["ci95"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    assert pick["spearman_worst_gap"]["rho"] == pytest.approx(0.8)
    page = bands.render(bands.summarise({"ppo": exp}, None, "cmd", 576.58))
    assert (
        "| `ppo` | 4 | 0.50 [" in page and "| - | seed 2: clean (worst +0.50%) | +0.80 (p = 0.200) |" in page
    )
    two = bands.collect(
        [
            _with_selection(
                _results(tmp_path / "two.json", {"poisson_50": {"ppo": {0: 0.0, 1: 0.03}}}),
                {"ppo": {0: 0.1, 1: 0.2}},
            )
        ]
    )
    assert (
        bands.summarise(two, None, "cmd", 576.58)["experiments"]["ppo"]["pick"]["spearman_worst_gap"] is None
    )
    assert "| seed 0: clean (worst +0.00%) | - |" in bands.render(bands.summarise(two, None, "cmd", 576.58))
    # the same files give the same page (the bootstrap's generator is seeded)
    assert bands.render(bands.summarise(bands.collect([path]), None, "cmd", 576.58)) == page

    without = _results(tmp_path / "plain.json", gaps)
    assert (
        bands.summarise(bands.collect([without]), None, "cmd", 576.58)["experiments"]["ppo"]["pick"] is None
    )
    hostile = _with_selection(
        _results(tmp_path / "h.json", gaps), {"ppo": {0: "0.1", 1: 0.0, 2: 0.0, 3: 0.0}}
    )
    with pytest.raises(
        SystemExit, match=r"h\.json: experiment 'ppo': kept_gap '0\.1' is not a finite number"
    ):
        bands.collect([hostile])
