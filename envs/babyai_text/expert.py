"""The BabyAI expert: minigrid's `BabyAIBot`, kept in step with an agent that may deviate from it.

The bot costs ~1 ms a step, so nothing runs until the expert is first asked for in an episode. From then
on the env calls `observe(action)` after every step and the bot replans from the real state
(`bot.replan(action_taken)`), which is how it stays correct after the agent ignored its advice. When the
bot raises (it does in a few % of off-policy episodes, e.g. after a box was toggled away) it is rebuilt
from the current state; a rebuilt bot has forgotten what it saw, so it may explore again, but it acts.
"""

from __future__ import annotations

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


class BotExpert:
    """Lazily started `BabyAIBot` for one minigrid BabyAI env; `reset()` at each new episode."""

    def __init__(self, level: MiniGridEnv):
        if level.agent_view_size != VIEW:
            raise ValueError("the BabyAI bot and the text descriptions assume agent_view_size=7")
        self.level = level
        self.bot: BabyAIBot | None = None
        self._suggested: int | None = None
        self.rebuilds = 0  # how often the bot raised and was rebuilt (diagnostics)

    @property
    def active(self) -> bool:
        return self.bot is not None

    def reset(self) -> None:
        """Forget the bot; the next `action()` starts one on the new episode."""
        self.bot, self._suggested = None, None

    def observe(self, action_taken: int) -> None:
        """Replan after the env applied `action_taken` (only while active)."""
        if self.bot is not None:
            self._suggested = self._replan(action_taken)

    def action(self) -> str | None:
        """The bot's action string now, or None when it has none (it says 'done' or cannot plan)."""
        if self.bot is None:
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
            self.bot = BabyAIBot(self.level)
            return int(self.bot.replan())
        except Exception:
            self.bot = None  # the mission may have become impossible (target box toggled away)
            return None
