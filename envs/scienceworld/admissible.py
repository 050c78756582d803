"""Building the admissible action list of a ScienceWorld state.

ScienceWorld's valid-combination list (`getValidActionObjectCombinationsJSON`) is the right raw material but
(a) misses many actions that `step` accepts and the gold path uses ("open door to kitchen" when it is already
open, "examine substance in metal pot", "pour metal pot into metal pot"), and (b) is huge (about 1000 entries in
the kitchen, mostly "move X to Y"/"pour X into Y" over furniture). We therefore:

1. always add the expert's next gold action while the agent is on the gold path;
2. keep everything useful first and cut at `max_actions` by tiers (0/1-object actions; 2-object actions whose
   first object is carried; whose first object can be picked up; the rest), in ScienceWorld's order;
3. drop "reset task" (it would let a policy restart the episode);
4. deduplicate and sort the result, so the position of an action (the gold one included) carries no signal.

While ScienceWorld waits for the answer to an ambiguous request, only the option numbers are admissible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

EXCLUDED_ACTIONS = frozenset({"reset task", "task"})
AMBIGUOUS_PREFIX = "Ambiguous request"
_OPTION_RE = re.compile(r"^\s*(\d+):", re.MULTILINE)


def parse_valid_json(payload: str) -> list[dict[str, Any]]:
    """Decode `getValidActionObjectCombinationsJSON()` into its list of {action, template_id, obj_ids} rows."""
    return json.loads(payload)["validActions"]


def ambiguity_options(observation: str) -> list[str]:
    """The option numbers ("0", "1", ...) of an "Ambiguous request" observation; [] for any other text."""
    if not observation.startswith(AMBIGUOUS_PREFIX):
        return []
    return _OPTION_RE.findall(observation)


def _tier(row: dict[str, Any], carried: set[int], movable: set[int]) -> int:
    ids = row.get("obj_ids") or []
    if len(ids) < 2:
        return 0
    if ids[0] in carried:
        return 1
    if ids[0] in movable:
        return 2
    return 3


def build_admissible(
    valid_rows: Sequence[dict[str, Any]],
    max_actions: int,
    must_include: Iterable[str | None] = (),
) -> list[str]:
    """Sorted, deduplicated list of at most `max_actions` actions, containing every string of `must_include`.

    `valid_rows` are ScienceWorld's valid combinations (see `parse_valid_json`); `must_include` typically holds the
    expert's next gold action (None entries are ignored).
    """
    required = [a for a in dict.fromkeys(must_include) if a]
    if len(required) > max_actions:
        raise ValueError(f"max_actions={max_actions} cannot hold the {len(required)} required actions")
    carried = {r["obj_ids"][0] for r in valid_rows if r["action"].startswith("put down ") and r.get("obj_ids")}
    movable = {r["obj_ids"][0] for r in valid_rows if r["action"].startswith("pick up ") and r.get("obj_ids")}
    ranked = sorted(
        (r for r in valid_rows if r["action"] not in EXCLUDED_ACTIONS),
        key=lambda r: _tier(r, carried, movable),  # stable: keeps ScienceWorld's order within a tier
    )
    chosen = dict.fromkeys(required)
    for row in ranked:
        if len(chosen) >= max_actions:
            break
        chosen.setdefault(row["action"], None)
    return sorted(chosen)
