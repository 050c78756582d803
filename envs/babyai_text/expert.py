"""The BabyAI expert: minigrid's `BabyAIBot`, kept in step with an agent that may deviate from it.

The bot costs ~1 ms a step, so nothing runs until the expert is first asked for in an episode. From then
on the env calls `observe(action)` after every step and the bot replans from the real state
(`bot.replan(action_taken)`), which is how it stays correct after the agent ignored its advice. When the
bot raises (it does in a few % of off-policy episodes, e.g. after a box was toggled away) it is rebuilt
from the current state; a rebuilt bot has forgotten what it saw, so it may explore again, but it acts.
A bot cannot be built while the agent holds an object the bot did not plan to hold (it plans from empty
hands: its pick-up subgoal asserts them), so then the expert first puts the object down on a free cell in
front (turning to find one) and starts a bot once the hands are empty. Before this, an agent that had
picked up a wrong object got no expert action until it happened to drop it.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.world_object import WorldObj
from minigrid.minigrid_env import MiniGridEnv
from minigrid.utils.baby_ai_bot import BabyAIBot

from envs.babyai_text.describe import VIEW

ACTIONS = (
    "turn left",
    "turn right",
    "go forward",
    "pick up",
    "drop",
    "toggle",
)  # minigrid's action indices 0..5
TURN_LEFT, FORWARD, DROP = ACTIONS.index("turn left"), ACTIONS.index("go forward"), ACTIONS.index("drop")
MAX_SUBGOALS = 100  # the bot's plans hold < 20; more means it is pushing subgoals in an endless loop


class BotStuckError(RuntimeError):
    """The bot kept pushing subgoals without choosing an action."""


class _BoundedStack(list):
    def append(self, subgoal) -> None:
        if len(self) >= MAX_SUBGOALS:
            raise BotStuckError(f"the BabyAI bot pushed more than {MAX_SUBGOALS} subgoals without acting")
        super().append(subgoal)


def _new_bot(level: MiniGridEnv) -> BabyAIBot:
    """A bot whose subgoal stack is bounded: in some off-policy states (seen on PutNextLocal) its replan
    pushes subgoals forever and the run hangs with its memory growing; a bounded stack makes that an error
    the expert recovers from like any other."""
    bot = BabyAIBot(level)
    bot.stack = _BoundedStack(bot.stack)
    return bot


class BotExpert:
    """Lazily started `BabyAIBot` for one minigrid BabyAI env; `reset()` at each new episode."""

    def __init__(self, level: MiniGridEnv):
        if level.agent_view_size != VIEW:
            raise ValueError("the BabyAI bot and the text descriptions assume agent_view_size=7")
        self.level = level
        self.bot: BabyAIBot | None = None
        self._suggested: int | None = None
        self._held: WorldObj | None = None  # an object being put down before a bot can plan
        self._turns = 0  # turns in a row looking for a free cell to put it on
        self.rebuilds = 0  # how often the bot raised and was rebuilt (diagnostics)

    @property
    def active(self) -> bool:
        return self.bot is not None or self._held is not None

    def reset(self) -> None:
        """Forget the bot; the next `action()` starts one on the new episode."""
        self.bot, self._suggested, self._held, self._turns = None, None, None, 0

    def observe(self, action_taken: int) -> None:
        """Replan after the env applied `action_taken` (only while active)."""
        if self._held is not None:
            self._turns = self._turns + 1 if action_taken == TURN_LEFT else 0
            if self.level.carrying is self._held:
                self._suggested = self._put_down()
            else:
                self._held = None
                self._suggested = self._replan(None, rebuild=True)
        elif self.bot is not None:
            self._suggested = self._replan(action_taken)

    def action(self) -> str | None:
        """The bot's action string now, or None when it has none (it says 'done' or cannot plan)."""
        if not self.active:
            self._suggested = self._replan(None, rebuild=True)
        a = self._suggested
        return ACTIONS[a] if a is not None and 0 <= a < len(ACTIONS) else None

    def _replan(self, action_taken: int | None, rebuild: bool = False) -> int | None:
        if not rebuild and self.bot is not None:
            try:
                return int(self.bot.replan(action_taken))
            except Exception:  # the bot's internal asserts/errors: recover from the real state
                self.rebuilds += 1
        try:
            self.bot = _new_bot(self.level)
            return int(self.bot.replan())
        except Exception:
            self.bot = None  # the mission may have become impossible (target box toggled away)
            if self.level.carrying is None:
                return None
            self._held, self._turns = self.level.carrying, 0
            return self._put_down()

    def _put_down(self) -> int | None:
        """Drop on the free cell in front, else turn left (None once four turns found no free cell)."""
        if self.level.grid.get(*self.level.front_pos) is None:
            return DROP
        return TURN_LEFT if self._turns < 4 else None


class MyopicBotExpert(BotExpert):
    """The BabyAI bot restricted to what the current view shows, so its action is a function of the text.

    The bot plans from everything it has seen in the episode, which a prompt of the last one or two
    observations does not carry (on PutNextLocal and the mixed levels that decides about a third of its
    actions; on GoToLocal and PickupLocal the current view already decides 0.94-0.99 of them:
    `fresh_agreement`, results/distill.md). This expert forgets the map before every replan, so the
    bot knows only the cells in view now; where that leaves it nothing to go to (its plan would explore), it
    searches with a fixed rule that needs no memory: go forward unless the cell in front is taken or a wall
    is at most `SEARCH_WALL` steps ahead, else turn left. In a 6x6 room that walks a loop around the centre,
    from which two opposite views cover the whole room.
    """

    SEARCH_WALL = 3

    def _replan(self, action_taken: int | None, rebuild: bool = False) -> int | None:
        if self.bot is not None:
            self.bot.vis_mask[:] = False
        action = super()._replan(action_taken, rebuild)
        if self.bot is not None and self.bot.stack and self.bot.stack[-1].is_exploratory():
            return self._search()
        return action

    def _search(self) -> int:
        level = self.level
        front = level.grid.get(*level.front_pos)
        if front is not None and not (front.type == "door" and front.is_open):
            return TURN_LEFT
        pos = level.agent_pos
        for k in range(2, self.SEARCH_WALL + 1):  # first non-empty cell ahead: a wall that near turns
            x, y = pos[0] + k * level.dir_vec[0], pos[1] + k * level.dir_vec[1]
            if not (0 <= x < level.width and 0 <= y < level.height):
                break
            cell = level.grid.get(x, y)
            if cell is not None:
                if cell.type == "wall":
                    return TURN_LEFT
                break
        return FORWARD


def fresh_agreement(env, episodes: int, *, seed: int = 0, deviate_every: int = 0) -> tuple[int, int]:
    """How much an expert's action depends on its memory of the episode: (agreeing states, states) where its
    action equals that of an expert of the same kind built at that state, along `episodes` episodes of `env`
    (a BabyAI-Text env, reset seeds `seed`, `seed+1`, ...) that follow the expert, every `deviate_every`-th
    action replaced by a random move (0: never). A fresh expert has seen only the current view; one that
    agrees everywhere acts on what the view shows (plan state aside: a carried object, a half-done mission)."""
    base = env.unwrapped
    rng = np.random.default_rng(seed)
    agree = total = 0
    for ep in range(episodes):
        env.reset(seed=seed + ep)
        for step in range(base.max_steps):
            action = base.expert_action()
            if action is None:
                break
            agree, total = agree + (action == type(base.expert)(base.level).action()), total + 1
            if deviate_every and step % deviate_every == deviate_every - 1:
                index = int(rng.integers(3))  # turn left, turn right or go forward
            else:
                index = ACTIONS.index(action)
            _, _, terminated, truncated, _ = env.step(index)
            if terminated or truncated:
                break
    return agree, total
