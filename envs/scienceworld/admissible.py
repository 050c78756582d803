"""Building the admissible action list of a ScienceWorld state.

ScienceWorld's valid-action list (`getValidActionObjectCombinations`) is the raw material but
(a) misses some actions that `step` accepts and the gold path uses ("open door to kitchen" when it is already
open, "examine substance in metal pot"), and (b) is large (hundreds of entries, up to about 2,800 in a
full kitchen, mostly "move X to Y" / "pour X into Y" / "connect X to Y"). We therefore:

1. add the expert's next gold action (`must_include`);
2. drop "reset task" and "task" (the first would let a policy restart the episode);
3. cut at `max_actions` by the rule of `select_admissible` (every action type kept, the cap shared equally
   among the types) and report how many valid actions the cut removed;
4. deduplicate and sort the result, so the position of an action (the gold one included) carries no signal.

The rule reads only the action texts.

While ScienceWorld waits for the answer to an ambiguous request, only the option numbers are admissible.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

EXCLUDED_ACTIONS = frozenset({"reset task", "task"})
AMBIGUOUS_PREFIX = "Ambiguous request"
_OPTION_RE = re.compile(r"^\s*(\d+):", re.MULTILINE)


def ambiguity_options(observation: str) -> list[str]:
    """The option numbers ("0", "1", ...) of an "Ambiguous request" observation; [] for any other text."""
    if not observation.startswith(AMBIGUOUS_PREFIX):
        return []
    return _OPTION_RE.findall(observation)


TWO_WORD_VERBS = frozenset({"look at", "look in", "look around", "pick up", "put down", "focus on", "go to",
                            "teleport to"})


def action_type(action: str) -> str:
    """An action's type: its verb ("move", "look at", "teleport to"), the words before its first object.

    Read from the text alone, so the package's plain list of valid actions yields the same types as the JSON
    rows (the verbs match ScienceWorld's templates, with "go to" and "teleport to", which share one, apart).
    """
    words = action.split(" ")
    two = " ".join(words[:2])
    return two if two in TWO_WORD_VERBS else words[0]


def _objects_text(action: str) -> str:
    return action[len(action_type(action)):].strip()


def select_admissible(
    valid_actions: Iterable[str],
    max_actions: int,
    must_include: Iterable[str | None] = (),
) -> tuple[list[str], int]:
    """(sorted admissible list of at most `max_actions` actions, number of valid actions the cap cut).

    Rule: keep every string of `must_include` (the expert's next gold action; None entries are ignored);
    then take actions round-robin over the action types (`action_type`, in alphabetical order), so every
    type is kept once the cap holds one of each, and the cap is shared equally among the types (a type with
    fewer actions than its share keeps them all and leaves the rest to the others). Within a type, actions
    whose object text starts with something the agent carries ("put down X" is valid) come first, then
    with something it can pick up ("pick up X"), then the rest; ties are broken by a fixed hash of the
    action text (the same list for the same valid actions in every run and JVM, spread over the objects
    rather than alphabetical). "reset task" and "task" are never admissible.
    """
    required = [a for a in dict.fromkeys(must_include) if a]
    if len(required) > max_actions:
        raise ValueError(f"max_actions={max_actions} cannot hold the {len(required)} required actions")
    valid = sorted(set(valid_actions) - EXCLUDED_ACTIONS)
    carried = sorted({_objects_text(a) for a in valid if action_type(a) == "put down"}, key=len, reverse=True)
    movable = sorted({_objects_text(a) for a in valid if action_type(a) == "pick up"}, key=len, reverse=True)

    def about(names: list[str], objects: str) -> bool:
        return any(objects == n or objects.startswith(n + " ") for n in names)

    def rank(action: str) -> tuple[int, int, str]:
        objects = _objects_text(action)
        tier = 0 if about(carried, objects) else 1 if about(movable, objects) else 2
        return tier, zlib.crc32(action.encode()), action

    groups: dict[str, list[str]] = {}
    for action in valid:
        groups.setdefault(action_type(action), []).append(action)
    queues = [iter(sorted(g, key=rank)) for _, g in sorted(groups.items())]
    chosen = dict.fromkeys(required)
    while queues and len(chosen) < max_actions:
        still = []
        for queue in queues:
            if len(chosen) >= max_actions:
                break
            for action in queue:
                if action not in chosen:
                    chosen[action] = None
                    still.append(queue)
                    break
        queues = still
    return sorted(chosen), len(set(valid) - chosen.keys())
