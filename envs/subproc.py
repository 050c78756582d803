"""A text env that lives in a worker process, so that several of them step at the same time.

Why: a ScienceWorld step is spent in its own JVM and in Python around it; with N envs in one process
they step one after another. `SubprocTextEnv(make)` runs `make()` in a worker process (spawned: no
forked torch or JVM state) and forwards `reset`, `step`, `expert_action` and `close` over a pipe.
`step_async(a)` returns at once and `step_wait()` collects the result, which is how
`londi.switch.vec.SwitchingVecEnv` overlaps the steps of its envs (`SwitchingEnv.send` / `finish`).

The proxy is its own `unwrapped` (the expert is asked in the worker) and carries the inner env's spaces,
spec, `family`, `max_steps` and `step_limit`, read again after every reset (a BabyAI level sets its step
limit at reset, per episode). An error in the worker is raised here with its traceback.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym

_ATTRS = ("family", "max_steps", "step_limit")


def _worker(conn: Any, make: Callable[[], gym.Env]) -> None:
    env = None
    try:
        env = make()
        inner = env.unwrapped
        conn.send(("ok", {"observation_space": env.observation_space, "action_space": env.action_space,
                          "spec": env.spec, **{k: getattr(inner, k, None) for k in _ATTRS}}))
        while True:
            cmd, arg = conn.recv()
            try:
                if cmd == "reset":
                    out = (env.reset(**arg), {k: getattr(inner, k, None) for k in _ATTRS})
                elif cmd == "step":
                    out = env.step(arg)
                elif cmd == "expert":
                    out = env.unwrapped.expert_action()
                elif cmd == "close":
                    break
                else:
                    raise ValueError(f"unknown command {cmd!r}")
                conn.send(("ok", out))
            except Exception as e:  # reported to the caller, the worker keeps serving
                conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        if env is not None:
            env.close()
        conn.close()


class WorkerError(RuntimeError):
    """The text env in a worker process raised; the message holds the worker's traceback."""


class SubprocTextEnv(gym.Env):
    """`make()`'s env, run in a worker process (see the module doc). `make` must be picklable."""

    def __init__(self, make: Callable[[], gym.Env], context: str = "spawn"):
        ctx = mp.get_context(context)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, make), daemon=True)
        self._proc.start()
        child.close()
        meta = self._recv()
        self.observation_space, self.action_space, self.spec = meta["observation_space"], meta["action_space"], meta["spec"]
        for k in _ATTRS:
            setattr(self, k, meta[k])
        self._waiting = False
        self._closed = False

    def _recv(self) -> Any:
        try:
            status, payload = self._conn.recv()
        except EOFError:
            raise WorkerError(f"the text env's worker process died (exit code {self._proc.exitcode})") from None
        if status == "error":
            raise WorkerError(f"in the text env's worker process: {payload}")
        return payload

    def _call(self, cmd: str, arg: Any = None) -> Any:
        if self._waiting:
            raise RuntimeError("step_async() is pending: call step_wait() first")
        self._conn.send((cmd, arg))
        return self._recv()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        out, attrs = self._call("reset", {"seed": seed, "options": options})
        for k, v in attrs.items():
            setattr(self, k, v)
        return out

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        return self._call("step", action)

    def step_async(self, action: Any) -> None:
        """Start a step and return at once; `step_wait()` returns its result."""
        if self._waiting:
            raise RuntimeError("step_async() called twice without step_wait()")
        self._conn.send(("step", action))
        self._waiting = True

    def step_wait(self) -> tuple[str, float, bool, bool, dict]:
        if not self._waiting:
            raise RuntimeError("step_wait() without step_async()")
        self._waiting = False
        return self._recv()

    def expert_action(self) -> str | None:
        return self._call("expert")

    @property
    def unwrapped(self) -> SubprocTextEnv:
        return self

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._waiting:
                self._recv()
            self._conn.send(("close", None))
        except (OSError, EOFError, WorkerError):
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()
