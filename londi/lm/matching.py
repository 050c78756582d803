"""Map free text an LM generated onto the nearest admissible action, or say that none is near enough.

Generation-only backends (hf `mode=generate`, OpenAI-compatible endpoints) reply with text such as
"Action: go forward." or "I will open the door to the kitchen"; the env needs an index into its
admissible actions. Matching is tried from strict to loose: exact (after normalising case, quotes,
punctuation and whitespace) -> the reply's first line -> an action contained in the reply as whole
words (longest first) -> the closest by character similarity above `cutoff`. No match returns None: the
caller raises `PolicyError` rather than act at random.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

_PREFIX = re.compile(r"^\s*(?:>|\*+|-|next\s+action|action(?:\s*\d+)?|answer)\s*[:>-]?\s*", re.IGNORECASE)
_NON_WORD = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: "Go forward." -> "go forward"."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def _strip_prefix(line: str) -> str:
    prev = None
    while prev != line:
        prev, line = line, _PREFIX.sub("", line, count=1)
    return line


def match_action(text: str, admissible: Sequence[str], cutoff: float = 0.75) -> int | None:
    """Index of the admissible action `text` names, or None if none is near enough (see module doc)."""
    if not admissible or not text or not text.strip():
        return None
    norm_actions = [normalise(a) for a in admissible]
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    first = normalise(_strip_prefix(lines[0])) if lines else ""
    whole = normalise(_strip_prefix(text.strip()))
    for cand in (first, whole):
        if cand in norm_actions:
            return norm_actions.index(cand)
    for cand in (first, whole):
        padded = f" {cand} "
        contained = [i for i, a in enumerate(norm_actions) if a and f" {a} " in padded]
        if contained:
            return max(contained, key=lambda i: (len(norm_actions[i]), -padded.index(f" {norm_actions[i]} ")))
    best, best_ratio = None, cutoff
    for i, a in enumerate(norm_actions):
        ratio = difflib.SequenceMatcher(None, first, a).ratio()
        if ratio > best_ratio:
            best, best_ratio = i, ratio
    return best
