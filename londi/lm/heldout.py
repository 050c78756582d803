"""The reset seeds a distilled model was trained on, so that no evaluation scores it on those episodes.

`londi-distill` plays each training env's episodes with reset seeds laid out from its `seed`
(`distill_seed_ranges`: expert, noisy and DAgger episodes); it records them per env id in the model's
londi_distill.json (`train_seeds`, with those of the model it was fine-tuned from). A londi-train run plays
its own stream (`londi.runner.episode_seed_base`): run seed 0's block starts at 0 too, so on the same env id
the two can meet. An evaluation on such episodes measures a model on layouts it was trained on, which is
why `check_unseen` raises; a switcher *training* on them is only warned about (`seen_ranges`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SEED_STRIDE = 1_000_003  # distill seed s starts at s * SEED_STRIDE
NOISY_SEED_OFFSET = 500_000  # noise-injected expert episodes
DAGGER_SEED_STRIDE = 1_000_000  # DAgger round r (>= 1) starts at (r + 1) * DAGGER_SEED_STRIDE

Range = tuple[int, int]  # [first, end)


def distill_seed_ranges(seed: int, episodes: int, noisy_fraction: float, dagger_rounds: int,
                        dagger_episodes: int) -> list[Range]:
    """The reset seeds londi-distill plays in each training env for these settings (its `_collect_round`)."""
    base = int(seed) * SEED_STRIDE
    n_noisy = int(round(episodes * noisy_fraction))
    out = [(base, base + episodes - n_noisy), (base + NOISY_SEED_OFFSET, base + NOISY_SEED_OFFSET + n_noisy)]
    for r in range(1, int(dagger_rounds) + 1):
        first = base + DAGGER_SEED_STRIDE * (r + 1)
        out.append((first, first + int(dagger_episodes)))
    return merge([x for x in out if x[1] > x[0]])


def merge(ranges: Iterable[Sequence[int]]) -> list[Range]:
    """Sorted, overlapping or touching ranges joined."""
    out: list[Range] = []
    for lo, hi in sorted((int(a), int(b)) for a, b in ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def union(*per_env: Mapping[str, Sequence[Sequence[int]]]) -> dict[str, list[list[int]]]:
    """{env id: ranges} maps joined env by env (a fine-tuned model: its own and its initial model's)."""
    envs = sorted({e for m in per_env for e in m})
    return {e: [list(r) for r in merge(r for m in per_env for r in m.get(e, ()))] for e in envs}


def _overlap(ranges: Iterable[Sequence[int]], first: int, end: int) -> list[Range]:
    return [(max(lo, first), min(hi, end)) for lo, hi in ranges if lo < end and first < hi]


def seen_ranges(policies: Iterable[Any], env_id: str, first: int, end: int) -> list[str]:
    """For each policy trained on some of the reset seeds [first, end) of `env_id`: what and where."""
    out = []
    for p in policies:
        hit = _overlap(getattr(p, "trained_episode_seeds", lambda _id: [])(env_id), first, end)
        if hit:
            spans = ", ".join(f"{lo}..{hi - 1}" for lo, hi in hit[:3]) + (" ..." if len(hit) > 3 else "")
            out.append(f"{p.name} was trained on {env_id} reset seeds {spans}")
    return out


def check_unseen(policies: Iterable[Any], env_id: str, first: int, count: int, what: str) -> None:
    """Raise when an evaluation's episodes (reset seeds first..first+count-1) are some model's training ones."""
    from londi.errors import ConfigError

    seen = seen_ranges(policies, env_id, first, first + int(count))
    if seen:
        raise ConfigError(
            f"the {what} episodes (reset seeds {first}..{first + count - 1}) include training episodes of a "
            f"model: {'; '.join(seen)}. It would be scored on layouts it was trained on: use another run seed, "
            "or a model distilled with another `seed`"
        )
