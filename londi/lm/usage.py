"""Compute accounting: every LM call is measured here, and switchers/loggers read only this.

A `Usage` is one record of what some calls cost. A `ComputeMeter` accumulates them per model and is the
only way policies report cost (see `LMPolicy.act`, which wraps every backend call in `meter.measure`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

DEVICE_CUDA = "cuda"
DEVICE_CPU_PROCESS = "cpu_process"  # no GPU: device seconds are this process's CPU seconds
DEVICE_SIMULATED = "simulated"  # a policy that charges the cost of a configured model it does not run


@dataclass
class Usage:
    """What a batch of LM calls cost. Additive: `a + b` sums every count."""

    model: str = ""
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0
    wall_seconds: float = 0.0
    device_seconds: float = 0.0
    device_kind: str = DEVICE_CPU_PROCESS
    simulated: bool = False

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            model=self.model or other.model,
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            flops=self.flops + other.flops,
            wall_seconds=self.wall_seconds + other.wall_seconds,
            device_seconds=self.device_seconds + other.device_seconds,
            device_kind=self.device_kind if self.calls else other.device_kind,
            simulated=self.simulated or other.simulated,
        )

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tokens"] = self.tokens
        return d


def _cuda_timer():
    """Return (start, stop->seconds) using CUDA events when a GPU is in use, else None."""
    try:
        import torch

        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()

        def stop() -> float:
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0

        return stop
    except Exception:  # pragma: no cover - any CUDA trouble falls back to CPU accounting
        return None


@dataclass
class ComputeMeter:
    """Accumulates `Usage` per model. Thread-safe; cheap enough to wrap every call."""

    totals: dict[str, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextlib.contextmanager
    def measure(self, usage: Usage) -> Iterator[Usage]:
        """Time the body and record `usage` (which the body fills with calls/tokens/FLOPs).

        Wall seconds always; device seconds from CUDA events when CUDA is active, else process CPU
        seconds (`device_kind="cpu_process"`). A simulated usage keeps the device seconds it was given.
        """
        stop_cuda = _cuda_timer()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield usage
        finally:
            usage.wall_seconds += time.perf_counter() - wall0
            if not usage.simulated:
                if stop_cuda is not None:
                    usage.device_seconds += stop_cuda()
                    usage.device_kind = DEVICE_CUDA
                else:
                    usage.device_seconds += time.process_time() - cpu0
                    usage.device_kind = DEVICE_CPU_PROCESS
            self.add(usage)

    def add(self, usage: Usage) -> None:
        with self._lock:
            prev = self.totals.get(usage.model, Usage(model=usage.model))
            self.totals[usage.model] = prev + usage

    def total(self) -> Usage:
        with self._lock:
            out = Usage()
            for u in self.totals.values():
                out = out + u
            return out

    def reset(self) -> None:
        with self._lock:
            self.totals.clear()

    def state_dict(self) -> dict:
        with self._lock:
            return {k: v.as_dict() for k, v in self.totals.items()}

    def load_state_dict(self, state: dict) -> None:
        fields = {f.name for f in dataclasses.fields(Usage)}
        with self._lock:
            self.totals = {k: Usage(**{f: v[f] for f in fields if f in v}) for k, v in state.items()}
