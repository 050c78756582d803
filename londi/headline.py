"""The one-page summary across levels: per switcher family, the least DEEPTHINK compute that keeps at least
`share` (95%) of always_deepthink's success, read from `londi-report`'s summary.csv files.

A family (LONDI, LONDI-B, ...) has several settings (costs, budgets, targets); the cell shows the setting
with the fewest DEEPTHINK FLOPs among those that qualify on the mean success, the DEEPTHINK FLOPs it saved
against always_deepthink, and its success, each with the 95% interval over seeds. A family with no qualifying
setting shows its best success instead, so a loss is stated, not hidden. always_quick is a column too: where
it alone keeps 95%, every saving beside it is free and says nothing about the switcher.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

FAMILIES = ("always_quick", "londi", "londi_b", "lagrangian", "cascade", "heuristic", "random", "oracle")
TITLES = {"always_quick": "always_quick", "londi": "LONDI", "londi_b": "LONDI-B", "lagrangian": "Lagrangian", "cascade": "cascade",
          "heuristic": "heuristic", "random": "random", "oracle": "oracle"}


@dataclass
class Cell:
    """One family on one level: its chosen setting and whether it kept `share` of always_deepthink's success."""

    label: str
    success: tuple[float, float, float]  # mean, 95% interval over seeds
    saved: tuple[float, float, float]  # 1 - DEEPTHINK FLOPs / always_deepthink's, and its interval
    qualifies: bool

    def text(self) -> str:
        where = f", {self.label}" if self.label else ""
        if self.qualifies:
            return f"{_pct(self.saved)} ({_num(self.success)}{where})"
        return f"no: best {_num(self.success)}{where}"


def _num(v: tuple[float, float, float]) -> str:
    m, lo, hi = v
    return f"{m:.2f}" if math.isnan(lo) else f"{m:.2f} [{lo:.2f}, {hi:.2f}]"


def _pct(v: tuple[float, float, float]) -> str:
    m, lo, hi = v
    return f"{m:.0%}" if math.isnan(lo) else f"{m:.0%} [{lo:.0%}, {hi:.0%}]"


def interval(r: pd.Series, name: str) -> tuple[float, float, float]:
    """(mean, lo, hi) of a summary.csv quantity: its `_lo`/`_hi` columns (londi-report today), else mean ± the
    `_ci95` half-width of older summaries; NaN bounds where neither is there (one seed), shown as the mean
    alone, as londi-report shows it."""
    m = float(r[name])
    if pd.notna(r.get(f"{name}_lo")) and pd.notna(r.get(f"{name}_hi")):
        return m, float(r[f"{name}_lo"]), float(r[f"{name}_hi"])
    half = float(r.get(f"{name}_ci95", math.nan))
    if math.isnan(half):  # max/min below would turn NaN into the whole range [0, 1]
        return m, math.nan, math.nan
    lo, hi = m - half, m + half
    if name == "success":  # older summaries did not clip the interval to the range
        lo, hi = max(0.0, lo), min(1.0, hi)
    return m, lo, hi


def _label(r: pd.Series) -> str:
    """The setting that tells a family's rows apart: budget, else cost, and the `setting` column (a knob, or
    the config keys londi-report split a row by) beside it."""
    setting = r["setting"] if isinstance(r.get("setting"), str) else ""
    knob = f"b{float(r['budget']):g}" if pd.notna(r.get("budget")) else (
        f"c{float(r['cost']):g}" if pd.notna(r.get("cost")) else "")
    return f"{knob} ({setting})" if knob and setting else knob or setting


def family_cells(summary: pd.DataFrame, share: float = 0.95, where: str = "the summary"
                 ) -> tuple[pd.Series, dict[str, Cell]]:
    """(always_deepthink's row, {family: Cell}) for one level's summary.csv (`where` names it in errors).

    One level means one env and one always_deepthink row: the savings of one env measured against another
    env's always_deepthink, or against one of several references, would be a number nothing measured.
    """
    envs = sorted(set(summary["env"].astype(str))) if "env" in summary.columns else []
    if len(envs) > 1:
        raise ValueError(f"{where} holds {len(envs)} envs ({', '.join(envs)}): each level's switchers are compared "
                         "with its own always_deepthink; make one report folder per level (londi-report "
                         "dir=<one level's runs> out=<folder>) and pass each")
    base_rows = summary[summary["switcher"] == "always_deepthink"]
    if base_rows.empty:
        raise ValueError(f"no always_deepthink row in {where} of {envs}: the savings "
                         "are measured against it; run it (scripts/results_babyai.sh does)")
    if len(base_rows) > 1:
        settings = "; ".join(_label(r) or "-" for _, r in base_rows.iterrows())
        raise ValueError(f"{where} has {len(base_rows)} always_deepthink rows ({settings}), which londi-report split "
                         "by config: no one reference; report each config in a folder of its own")
    base = base_rows.iloc[0]
    target = share * float(base["success"])
    flops = float(base["deepthink_flops"])
    cells: dict[str, Cell] = {}
    for fam in FAMILIES:
        rows = summary[summary["switcher"] == fam]
        if rows.empty:
            continue
        ok = rows[rows["success"] >= target]
        r = ok.sort_values("deepthink_flops").iloc[0] if not ok.empty else rows.sort_values("success").iloc[-1]
        f, f_lo, f_hi = interval(r, "deepthink_flops")
        saved = (1.0 - f / flops, 1.0 - f_hi / flops, 1.0 - f_lo / flops) if flops > 0 else (math.nan,) * 3
        cells[fam] = Cell(label=_label(r), success=interval(r, "success"), saved=saved, qualifies=not ok.empty)
    return base, cells


def headline_table(dirs: Iterable[str | Path], share: float = 0.95, families: Sequence[str] = FAMILIES) -> str:
    """A markdown table, one row per report folder (level), one column per switcher family: the DEEPTHINK
    FLOPs saved against always_deepthink at >= `share` of its success (success and setting in brackets), or
    "no" and the family's best success."""
    head = ["level", "always_deepthink success", *(TITLES[f] for f in families)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in dirs:
        path = Path(d) / "summary.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: make it with londi-report dir=<runs> out={d}")
        base, cells = family_cells(pd.read_csv(path), share, where=str(path))
        row = [Path(d).name, _num(interval(base, "success"))]
        row += [cells[f].text() if f in cells else "not run" for f in families]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="londi-report output folders (each holding summary.csv)")
    p.add_argument("--share", type=float, default=0.95, help="share of always_deepthink's success to keep")
    args = p.parse_args(argv)
    print(headline_table(args.dirs, args.share), end="")


if __name__ == "__main__":
    main()
