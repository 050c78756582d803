"""ScienceWorld task names, resolved from a name, a paper id ("1-1"), a paper title or an index, without a JVM."""

from __future__ import annotations

import difflib

from scienceworld.constants import ID2TASK
from scienceworld.utils import infer_task

TASK_NAMES: tuple[str, ...] = tuple(ID2TASK.values())  # 30 tasks, in the paper's order (index 0 = "boil")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
SIMPLIFICATIONS: tuple[str, ...] = (
    "easy", "teleportAction", "selfWateringFlowerPots", "openContainers", "openDoors", "noElectricalAction",
)


def resolve_task(task: str | int) -> str:
    """Canonical task name for `task` (name, index into `TASK_NAMES`, id like "1-1", or paper title)."""
    if isinstance(task, bool):
        raise TypeError(f"task must be a name or an index, got {task!r}")
    if isinstance(task, int):
        if not 0 <= task < len(TASK_NAMES):
            raise ValueError(f"Task index {task} is out of range 0..{len(TASK_NAMES) - 1}. Tasks: {_listing()}")
        return TASK_NAMES[task]
    if isinstance(task, str) and task.strip().isdigit():
        return resolve_task(int(task))
    name = infer_task(str(task).strip())
    if name not in TASK_NAMES:
        close = difflib.get_close_matches(name, TASK_NAMES, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"Unknown ScienceWorld task {task!r}.{hint} Valid tasks (name or index): {_listing()}")
    return name


def check_simplification(simplification: str) -> str:
    """Validate a comma-separated simplification string ("" for none, "easy" for all)."""
    for part in filter(None, simplification.split(",")):
        if part not in SIMPLIFICATIONS:
            raise ValueError(
                f"Unknown ScienceWorld simplification {part!r}; valid: {', '.join(SIMPLIFICATIONS)} "
                "(comma-separated, or '' for none)"
            )
    return simplification


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def _listing() -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(TASK_NAMES))
