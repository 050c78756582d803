"""The one-page summary: per family, the least DEEPTHINK compute at >= 95% of always_deepthink's success."""

import math

import pandas as pd
import pytest

from londi.headline import family_cells, headline_table

ROWS = [  # switcher, budget, cost, setting, success, deepthink_flops
    ("always_deepthink", None, None, None, 1.00, 100.0),
    ("always_quick", None, None, None, 0.20, 0.0),
    ("londi", None, 0.05, None, 0.99, 60.0),
    ("londi", None, 0.2, None, 0.96, 40.0),   # qualifies (>= 0.95) and is cheaper: chosen
    ("londi", None, 0.5, None, 0.90, 10.0),   # cheapest, but below 95%
    ("londi_b", 2, 0.0, None, 0.60, 30.0),
    ("londi_b", 8, 0.0, None, 0.91, 70.0),    # none qualifies: the best success is shown
]


def _summary(rows=ROWS) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["switcher", "budget", "cost", "setting", "success", "deepthink_flops"])
    return df.assign(env="babyai_text/goto_local", success_ci95=0.01, deepthink_flops_ci95=5.0)


def test_each_family_gets_its_cheapest_setting_that_keeps_95_percent_of_the_success():
    base, cells = family_cells(_summary())
    assert base["success"] == 1.0
    assert cells["londi"].qualifies and cells["londi"].label == "c0.2"
    assert cells["londi"].saved == pytest.approx((0.6, 0.55, 0.65))  # the FLOPs interval, as a share saved
    assert not cells["londi_b"].qualifies and cells["londi_b"].label == "b8" and cells["londi_b"].success[0] == 0.91
    assert "lagrangian" not in cells and "always_deepthink" not in cells
    assert not cells["always_quick"].qualifies and cells["always_quick"].success[0] == 0.2  # the reference column
    assert family_cells(_summary(), share=0.9)[1]["londi"].label == "c0.5"  # a looser share admits the cheapest


def test_today_s_lo_hi_columns_are_read_as_they_are():
    df = _summary().assign(success_lo=0.5, success_hi=1.0, deepthink_flops_lo=30.0, deepthink_flops_hi=50.0)
    _, cells = family_cells(df)
    assert cells["londi"].success == (0.96, 0.5, 1.0) and cells["londi"].saved == pytest.approx((0.6, 0.5, 0.7))


def test_table_has_a_row_per_level_and_says_what_was_not_run(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _summary().to_csv(tmp_path / name / "summary.csv", index=False)
    table = headline_table([tmp_path / "a", tmp_path / "b"])
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| a | 1.00 [0.99, 1.00] | no: best 0.20 [0.19, 0.21] | 60% [55%, 65%] (0.96 [0.95, 0.97], c0.2) | no: best 0.91")
    assert "not run" in lines[3]
    with pytest.raises(FileNotFoundError, match="londi-report"):
        headline_table([tmp_path / "missing"])
    _summary(ROWS[1:]).to_csv(tmp_path / "a" / "summary.csv", index=False)
    with pytest.raises(ValueError, match="no always_deepthink row"):
        headline_table([tmp_path / "a"])


def test_a_summary_of_two_envs_is_refused_naming_the_folder_and_the_envs(tmp_path):
    """One env's switchers must not be measured against another env's always_deepthink."""
    other = _summary().assign(env="babyai_text/pickup_local", success=0.5)
    pd.concat([_summary(), other]).to_csv(tmp_path / "summary.csv", index=False)
    with pytest.raises(ValueError, match=rf"{tmp_path}/summary.csv holds 2 envs \(babyai_text/goto_local, "
                                         r"babyai_text/pickup_local\).*one report folder per level"):
        headline_table([tmp_path])


def test_several_always_deepthink_rows_are_refused_and_split_rows_show_their_keys():
    """Rows londi-report split by config: no one reference to measure against; a family's label shows the keys."""
    split = _summary().assign(setting=None)
    split.loc[split["switcher"] == "londi", "setting"] = "total_steps=50000"
    _, cells = family_cells(split)
    assert cells["londi"].label == "c0.2 (total_steps=50000)"
    two_refs = pd.concat([split, split[split["switcher"] == "always_deepthink"].assign(setting="deepthink.path=b")])
    with pytest.raises(ValueError, match="2 always_deepthink rows .*no one reference"):
        family_cells(two_refs)


def test_a_single_seed_row_shows_no_interval(tmp_path):
    """londi-report leaves one seed's bounds empty: the mean alone, not [0.00, 1.00] made up from NaN."""
    one = _summary().drop(columns=["success_ci95", "deepthink_flops_ci95"]).assign(
        success_lo=math.nan, success_hi=math.nan, deepthink_flops_lo=math.nan, deepthink_flops_hi=math.nan)
    _, cells = family_cells(one)
    assert cells["londi"].text() == "60% (0.96, c0.2)"
    one.to_csv(tmp_path / "summary.csv", index=False)
    row = headline_table([tmp_path]).strip().splitlines()[2]
    assert row.startswith(f"| {tmp_path.name} | 1.00 | no: best 0.20 | 60% (0.96, c0.2) | no: best 0.91, b8 |")
