"""`ScienceWorld-v0`: a Gymnasium 1.x text env over the `scienceworld` simulator (one JVM per env).

Actions: an int index into `info["admissible_actions"]` (the action space is `Discrete(max_actions)`, with
`info["action_mask"]` and `action_masks()` for MaskablePPO). For convenience `step` also accepts any action
string, which is sent to ScienceWorld verbatim (it need not be admissible). An action ScienceWorld does not
understand, or an index past the admissible list, is reported in `info["action_accepted"]` = False and costs a
step; it never raises.

Admissible list: ScienceWorld's valid actions plus the expert's next gold action, cut at `max_actions` when
longer (ScienceWorld offers hundreds, up to about 2,800 in a full kitchen) by the rule of
`admissible.select_admissible`: every action type is kept and the cap is shared equally among the types.
`info["admissible_cut"]` says how many valid actions the cut removed in this state (0: none).

Reset: like the package's `ScienceWorldEnv.reset`, `reset()` ends with a scored "look around" (not counted
as a step), so `info["score"]` starts at the score that look earns (e.g. 8 in find-living-thing) and the
first step's reward is only what that step adds. Rewards are score deltas, so an episode's return is its
final score minus its reset score (-100 minus it when the task fails: ScienceWorld then sets the score to -100).

`normalize_reward` divides each delta by 100 and clips it to [-1, 1] (a deliberately bounded step reward).
Scores of a task in progress lie in [0, 100], so only the failing step is clipped: its reward is exactly -1,
whatever the score before it. An episode's return is then (final - reset) / 100 unless it fails, and
(score before failing - reset) / 100 - 1 when it fails, not (-100 - reset) / 100.

JVM deaths: the JVM is restarted and the env says so: `info["jvm_restarted"]` on the reset or step where it
happened, and `info["jvm_restarts"]` counts the restarts of the current episode (a reset that restarted
it retries the same variation; a step that did ends the episode as truncated); `info["env_restarts"]`, the
same count under the key every env family uses, is what episodes.csv records.

Valid actions are queried at every state, as the package's `step` does, and never cached. No cheap key
names a state: the look and inventory texts miss what changes the valid actions (an opened drawer inside a
counter, a sink's drain), which made a cache keyed on them serve stale lists; and the query is not free of
side effects: ScienceWorld names look-alike objects (two oranges in the inventory) with draws from its
global random generator, the one that also moves bees and wandering animals, so the same actions need not
lead to the same state or the same names. `scripts/lockstep_scienceworld.py` plays ScienceWorld-v0 and the
package side by side and compares them.

Speed: that query dominates a step (tens of ms in a full kitchen), so a step costs about what the
package's `step` costs. Gold paths are cached per (task, variation, simplification), so only the first reset
of a variation pays for gold-path generation.
"""

from __future__ import annotations

import re
import string
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.scienceworld.admissible import ambiguity_options, select_admissible
from envs.scienceworld.jvm import DEFAULT_HEAP, JVM_ERRORS, ScienceWorldJVM
from envs.scienceworld.tasks import check_simplification, check_split, resolve_task

FAMILY = "scienceworld"
CHARSET = frozenset(string.printable)
REJECTED_PREFIXES = ("No known action matches that input", "Unknown action")
MIN_MAX_ACTIONS = 32  # room for the gold action and one action of each of the (at most 25) action types
RESET_ACTION = "look around"  # what the package's ScienceWorldEnv.reset() does after loading
RECOVERY_LOOKAHEAD = 3  # an off-path action equal to one of the next gold actions counts as doing it...
SKIPPABLE_GOLD = ("open door to ", "look around", "look at ", "examine ")  # ...if only these lie in between
_ROOM_RE = re.compile(r"This (?:room|outside location) is called the (.+?)\.")
# ScienceWorld's house, the same in every task and variation (read from each room's look-around text).
ROOM_DOORS: dict[str, tuple[str, ...]] = {
    "kitchen": ("bathroom", "hallway", "outside"),
    "bathroom": ("kitchen",),
    "hallway": ("art studio", "bedroom", "greenhouse", "kitchen", "living room", "workshop"),
    "living room": ("hallway",),
    "bedroom": ("hallway",),
    "art studio": ("hallway",),
    "workshop": ("hallway",),
    "greenhouse": ("hallway", "outside"),
    "outside": ("foundry", "greenhouse", "kitchen"),
    "foundry": ("outside",),
}


def room_of(look: str) -> str | None:
    """The room a look-around text describes ("kitchen", "outside"), or None."""
    m = _ROOM_RE.search(look)
    return m.group(1) if m else None


def route(start: str, goal: str) -> list[str]:
    """Rooms to walk through from `start` to `goal` (both excluded start, goal included); [] if unknown."""
    prev: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier and goal not in prev:
        nxt = []
        for room in frontier:
            for n in ROOM_DOORS.get(room, ()):
                if n not in prev:
                    prev[n] = room
                    nxt.append(n)
        frontier = nxt
    if goal not in prev:
        return []
    path: list[str] = []
    node: str | None = goal
    while node is not None and node != start:
        path.append(node)
        node = prev[node]
    return path[::-1]


def gold_rooms(start: str | None, gold: list[str]) -> list[str | None]:
    """The room the agent is in before each gold action (and after the last), following its moves."""
    rooms, room = [start], start
    for action in gold:
        for verb in ("go to ", "teleport to "):
            if action.startswith(verb) and action[len(verb):] in ROOM_DOORS:
                room = action[len(verb):]
        rooms.append(room)
    return rooms


def _ranges(values: list[int]) -> str:
    """Compact listing of sorted ints: "0-13, 20, 22-24"."""
    out: list[str] = []
    start = prev = None
    for v in sorted(values):
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = v
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ", ".join(out)


class ScienceWorldTextEnv(gym.Env):
    """One ScienceWorld task as a text env; see the module docstring for the action convention.

    Args:
        task: task name ("boil"), index into `TASK_NAMES`, or paper id ("1-1").
        variation: a fixed variation, or None to sample one of `split` with the reset seed at every reset
            (`reset(options={"variation": k})` overrides it for one episode).
        simplification: "easy" (all simplifications), "" (none) or a comma-separated list.
        split: "train", "dev" or "test": where variations are sampled from and must belong to.
        step_limit: env steps before `truncated` (never `terminated`); `envs.make(max_episode_steps=N)` sets it.
        max_actions: size of the action space and cap on the admissible list (at least 32). A longer list is
            cut keeping the gold action and every action type (see the module docstring); raise it (e.g. to
            4096) to keep every valid action, at the cost of longer lists for a policy to score.
        include_task / include_look / include_inventory: what the observation text holds besides the
            last action's result.
        normalize_reward: divide the score delta (0-100 scale) by 100 and clip to [-1, 1]: the step that fails
            the task (score -> -100) gets exactly -1, so a failed episode returns its progress / 100 - 1 (module
            docstring).
        expert: generate gold paths so `expert_action()` works (first load of a variation is slower).
        expert_recovery: after the agent leaves the gold path, `expert_action()` walks back to the room of the
            next gold action and resumes the path there (False: it returns None from the first deviation).
        heap: JVM maximum heap (`-Xmx`), e.g. "1g".
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "ansi"]}
    family = FAMILY
    _split_cache: ClassVar[dict[tuple[str, str], list[int]]] = {}
    _gold_cache: ClassVar[dict[tuple[str, int, str], list[str]]] = {}

    def __init__(
        self,
        task: str | int = "boil",
        variation: int | None = 0,
        simplification: str = "easy",
        split: str = "train",
        step_limit: int = 100,
        max_actions: int = 128,
        include_task: bool = True,
        include_look: bool = True,
        include_inventory: bool = True,
        normalize_reward: bool = False,
        expert: bool = True,
        expert_recovery: bool = True,
        heap: str = DEFAULT_HEAP,
        max_obs_length: int = 16384,
        render_mode: str | None = None,
    ) -> None:
        self.task_name = resolve_task(task)
        self.simplification = check_simplification(simplification)
        self.split = check_split(split)
        if variation is not None and (isinstance(variation, bool) or int(variation) < 0):
            raise ValueError(f"variation must be a non-negative int or None, got {variation!r}")
        self.variation = None if variation is None else int(variation)
        if step_limit < 1:
            raise ValueError(f"need step_limit >= 1, got {step_limit}")
        if max_actions < MIN_MAX_ACTIONS:
            raise ValueError(
                f"max_actions={max_actions} is too small: the admissible list must hold one action of every "
                f"ScienceWorld action type and the gold action; use max_actions >= {MIN_MAX_ACTIONS}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.step_limit = int(step_limit)
        self.max_actions = int(max_actions)
        self.include_task, self.include_look, self.include_inventory = include_task, include_look, include_inventory
        self.normalize_reward = normalize_reward
        self.expert = expert
        self.expert_recovery = expert_recovery
        self.render_mode = render_mode
        self.max_obs_length = int(max_obs_length)
        self.observation_space = spaces.Text(max_length=self.max_obs_length, min_length=0, charset=CHARSET)
        self.action_space = spaces.Discrete(self.max_actions)
        self.jvm = ScienceWorldJVM(heap=heap)  # started lazily at the first reset
        self._episode_variation: int | None = None
        self._task_description = ""
        self._gold: list[str] = []
        self._gold_pos = 0
        self._on_gold_path = False
        self._gold_rooms: list[str | None] = []
        self._look = ""
        self._admissible: list[str] = []
        self._admissible_cut = 0
        self._jvm_restarts = 0  # JVM restarts during the current episode (its reset included)
        self._score = 0
        self._elapsed = 0
        self._done = False
        self._obs = ""
        self._loaded = False
        self._ambiguous = False

    # ------------------------------------------------------------------ public helpers
    @property
    def admissible_actions(self) -> list[str]:
        """The admissible actions of the current state (what an int action indexes)."""
        return list(self._admissible)

    def action_masks(self) -> np.ndarray:
        """Boolean mask over `Discrete(max_actions)` (the name sb3-contrib's MaskablePPO looks for)."""
        mask = np.zeros(self.max_actions, dtype=bool)
        mask[: len(self._admissible)] = True
        return mask

    def expert_action(self) -> str | None:
        """The next gold-path action; off the path, the way back to that action's room first.

        Without `expert_recovery` it is None from the first deviation on. Recovery is by navigation only:
        an object the agent moved or used up stays so, and a wrong "focus on" ends the episode anyway.
        """
        if not self.expert:
            raise RuntimeError("expert_action() needs gold paths: make the env with expert=True")
        if self._done or self._gold_pos >= len(self._gold):
            return None
        if not self._on_gold_path:
            if not self.expert_recovery:
                return None
            move = self._way_to(self._gold_rooms[self._gold_pos])
            if move is not None:
                return move
        return self._gold[self._gold_pos]

    def valid_actions(self) -> list[str]:
        """ScienceWorld's valid actions in the current state, uncut: the list the package's `step` returns.

        A fresh query each call; it draws from ScienceWorld's random generator when it names look-alike
        objects (so a second call may name them differently, and bees or animals may then move otherwise).
        """
        java_list = self.jvm.server.getValidActionObjectCombinations()
        joined = str(self.jvm.gateway.jvm.java.lang.String.join("\n", java_list))  # one round trip, not one each
        return [a for a in joined.split("\n") if a]

    def gold_path(self) -> list[str]:
        """The whole gold action sequence of the current episode's variation ([] when expert=False)."""
        return list(self._gold)

    def variations(self, split: str | None = None) -> list[int]:
        """Variation indices of `split` (default: the env's split) for this task; starts the JVM if needed."""
        split = check_split(split or self.split)
        key = (self.task_name, split)
        if key not in self._split_cache:
            srv = self.jvm.server
            srv.load(self.task_name, 0, self.simplification, False)
            self._loaded = False  # the query load is not an episode
            getter = {"train": srv.getVariationsTrain, "dev": srv.getVariationsDev, "test": srv.getVariationsTest}
            self._split_cache[key] = [int(v) for v in getter[split]()]
        return list(self._split_cache[key])

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self._jvm_restarts = 0
        variation: int | None = None
        try:
            variation = self._pick_variation(options.get("variation", self.variation))
            obs, info = self._reset(variation)
        except JVM_ERRORS:
            if self.jvm.alive():
                raise
            self.jvm.restart()  # one transparent retry on a fresh JVM, with the variation the seed gave
            self._jvm_restarts += 1
            if variation is None:  # died before the draw: draw now (the seed's stream is still untouched)
                variation = self._pick_variation(options.get("variation", self.variation))
            obs, info = self._reset(variation)
        info["jvm_restarted"] = self._jvm_restarts > 0
        return obs, info

    def _reset(self, variation: int) -> tuple[str, dict[str, Any]]:
        srv = self.jvm.server
        key = (self.task_name, variation, self.simplification)
        gold = self._gold_cache.get(key) if self.expert else None
        generate = self.expert and gold is None
        srv.load(self.task_name, variation, self.simplification, generate)
        if generate:
            gold = [str(a) for a in srv.getGoldActionSequence()]
            self._gold_cache[key] = gold
        self._gold = list(gold or [])
        self._gold_pos, self._on_gold_path = 0, self.expert
        self._episode_variation = variation
        self._loaded = True
        self._task_description = str(srv.freeActionTaskDesc())
        observation = str(srv.step(RESET_ACTION))  # the package's reset: a scored look around, not a step
        self._score, self._elapsed, self._done = int(round(100 * float(srv.getScore()))), 0, False
        look, inventory = str(srv.freeActionLook()), str(srv.freeActionInventory())
        self._look = look
        self._gold_rooms = gold_rooms(room_of(look), self._gold)
        self._obs = self._compose(observation, None, inventory)
        self._admissible = self._fetch_admissible(observation)
        return self._obs, self._info(action=None, accepted=True)

    def step(self, action: int | np.integer | str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not self._loaded:
            raise gym.error.ResetNeeded("Call reset() before step() (and after the JVM was restarted).")
        if self._done:
            raise gym.error.ResetNeeded("The episode is over (terminated or truncated): call reset().")
        self._elapsed += 1
        action_str, error = self._resolve(action)
        if action_str is None:
            return self._finish(f"Invalid action: {error}", 0, accepted=False, action=None, error=error, sent=False)
        try:
            srv = self.jvm.server
            observation = str(srv.step(action_str))
            score = int(round(100 * float(srv.getScore())))
            completed = bool(srv.getCompleted())
        except JVM_ERRORS as exc:
            if self.jvm.alive():
                raise
            return self._jvm_died(action_str, exc)
        self._advance_gold(action_str)
        reward = score - self._score
        self._score = score
        accepted = not observation.startswith(REJECTED_PREFIXES)
        terminated = completed or score < 0
        return self._finish(observation, reward, accepted=accepted, action=action_str, terminated=terminated)

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._obs
        if self.render_mode == "human":
            print(self._obs)
        return None

    def close(self) -> None:
        self.jvm.close()
        self._loaded = False
        super().close()

    # ------------------------------------------------------------------ internals
    def _pick_variation(self, variation: int | None) -> int:
        allowed = self.variations()
        if variation is None:
            return int(allowed[int(self.np_random.integers(len(allowed)))])
        if int(variation) not in set(allowed):
            raise ValueError(
                f"Variation {variation} is not in the {self.split!r} split of task {self.task_name!r}; "
                f"valid {self.split} variations: {_ranges(allowed)} (or variation=None to sample one)"
            )
        return int(variation)

    def _resolve(self, action: int | np.integer | str) -> tuple[str | None, str | None]:
        """Action string to send, or (None, why) for an index outside the admissible list."""
        if isinstance(action, str):
            return action, None
        idx = int(np.asarray(action).item())
        if not 0 <= idx < len(self._admissible):
            return None, f"index {idx} is outside the {len(self._admissible)} admissible actions"
        return self._admissible[idx], None

    def _advance_gold(self, action_str: str) -> None:
        pos = self._gold_pos
        if pos < len(self._gold) and action_str == self._gold[pos]:
            self._gold_pos += 1
            return
        self._on_gold_path = False
        for j in range(pos + 1, min(pos + 1 + RECOVERY_LOOKAHEAD, len(self._gold))):
            if not self._gold[j - 1].startswith(SKIPPABLE_GOLD):
                break  # e.g. "wait1" done before "move X to box": the move must still be done
            if action_str == self._gold[j]:
                self._gold_pos = j + 1
                break

    def _way_to(self, room: str | None) -> str | None:
        """The next navigation action towards `room`, or None when already there (or the room is unknown)."""
        here = room_of(self._look)
        if room is None or here is None or room == here:
            return None
        if self.simplification == "easy" or "teleportAction" in self.simplification.split(","):
            return f"teleport to {room}"
        path = route(here, room)
        if not path:
            return None
        nxt = path[0]
        if f"A door to the {nxt} (that is open)" in self._look:
            return f"go to {nxt}"
        return f"open door to {nxt}"

    def _finish(
        self, observation: str, reward: int, *, accepted: bool, action: str | None,
        terminated: bool = False, error: str | None = None, sent: bool = True,
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Observation, info and admissible list after a step (`sent`=False: nothing reached ScienceWorld, so
        the state and its admissible list are unchanged and not queried again)."""
        truncated = not terminated and self._elapsed >= self.step_limit
        self._done = terminated or truncated
        srv = self.jvm.server
        look, inventory = str(srv.freeActionLook()), str(srv.freeActionInventory())
        self._look = look
        self._obs = self._compose(observation, look if self.include_look else None, inventory)
        if sent:
            self._admissible = self._fetch_admissible(observation)
        info = self._info(action=action, accepted=accepted)
        if error is not None:
            info["error"] = error
        r = float(reward)
        if self.normalize_reward:
            r = float(np.clip(r / 100.0, -1.0, 1.0))
        return self._obs, r, terminated, truncated, info

    def _jvm_died(self, action_str: str, exc: BaseException) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """The JVM died mid-episode: start a fresh one, end this episode as truncated and say so."""
        self.jvm.restart()
        self._jvm_restarts += 1
        self._loaded, self._done, self._admissible, self._admissible_cut = False, True, [], 0
        info = self._info(action=action_str, accepted=False)
        info.update(jvm_restarted=True, success=False,
                    error=f"ScienceWorld JVM died ({type(exc).__name__}: {exc}); restarted, episode failed: reset()")
        return self._obs, 0.0, False, True, info

    def _fetch_admissible(self, observation: str) -> list[str]:
        """The admissible list of the current state; sets `_ambiguous` and `_admissible_cut`."""
        gold = self.expert_action() if self.expert else None
        options = ambiguity_options(observation)
        self._ambiguous = bool(options)
        if options:  # ScienceWorld only accepts an option number now
            valid = options
        else:  # one query per state, like the package's step (see the module docstring)
            valid = self.valid_actions()
        actions, self._admissible_cut = select_admissible(valid, self.max_actions, must_include=[gold])
        return actions

    def _compose(self, observation: str, look: str | None, inventory: str) -> str:
        parts = []
        if self.include_task:
            parts.append(self._task_description.strip())
        parts.append(observation.strip())
        if look is not None and look.strip() != observation.strip():
            parts.append(look.strip())
        if self.include_inventory:
            parts.append(inventory.strip())
        text = "\n\n".join(p for p in parts if p)
        text = "".join(c if c in CHARSET else "?" for c in text)
        return text[: self.max_obs_length]

    def _info(self, *, action: str | None, accepted: bool) -> dict[str, Any]:
        mask = self.action_masks().astype(np.int8)
        description = self._task_description.replace("Task Description:", "").strip()
        return {
            "admissible_actions": list(self._admissible),
            "admissible_cut": self._admissible_cut,
            "action_mask": mask,
            "score": self._score,
            "task": description,
            "mission": description,
            "task_name": self.task_name,
            "variation": self._episode_variation,
            "success": self._score >= 100,
            "family": FAMILY,
            "action": action,
            "action_accepted": accepted,
            "ambiguous": self._ambiguous,
            "jvm_restarted": False,
            "jvm_restarts": self._jvm_restarts,
            "env_restarts": self._jvm_restarts,
            "elapsed_steps": self._elapsed,
        }
