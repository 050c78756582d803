"""scripts/lagrangian_cycle.py: the late-training row it prints for one Lagrangian run folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.helpers import load_script


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _run(tmp_path: Path, lambdas: list[float], fracs: list[float], calls: list[int]) -> Path:
    run = tmp_path / "lagrangian" / "lagrangian-d2-s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("switcher:\n  target_calls: 2\n")
    metrics = [{"global_step": i, "switch/lambda": lam, "switch/deepthink_frac": f, "eval/success_rate": "",
                "eval/deepthink_calls": ""} for i, (lam, f) in enumerate(zip(lambdas, fracs, strict=True))]
    metrics.append({"global_step": len(lambdas), "switch/lambda": "", "switch/deepthink_frac": "",
                    "eval/success_rate": 0.75, "eval/deepthink_calls": 1.5})
    _write_csv(run / "metrics.csv", metrics)
    _write_csv(run / "episodes.csv", [{"phase": "train", "deepthink_calls": c} for c in calls]
               + [{"phase": "eval", "deepthink_calls": 99}])
    return run


def test_the_row_reads_the_second_half_of_training_and_the_final_evaluation(tmp_path):
    run = _run(tmp_path, lambdas=[5.0, 5.0, 0.0, 0.0, 0.0, 2.0], fracs=[0.5, 0.5, 0.05, 0.4, 0.2, 0.05],
               calls=[9, 9, 1, 3])
    row = load_script("lagrangian_cycle").cycle_row(run)
    assert row["target"] == 2.0 and row["points"] == 3
    assert row["lambda=0"] == pytest.approx(2 / 3) and row["lambda max"] == 2.0
    assert row["share<0.1"] == pytest.approx(1 / 3) and row["share>0.35"] == pytest.approx(1 / 3)
    assert row["train calls/ep"] == 2.0  # the last two training episodes; the eval episode is not counted
    assert (row["eval success"], row["eval calls/ep"]) == (0.75, 1.5)


def test_a_run_without_a_multiplier_is_refused(tmp_path):
    run = _run(tmp_path, lambdas=[], fracs=[], calls=[1])
    with pytest.raises(SystemExit, match="not a Lagrangian run"):
        load_script("lagrangian_cycle").cycle_row(run)
