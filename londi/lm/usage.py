"""Compute accounting: every LM call is measured here, and switchers/loggers read only this.

A `Usage` is one record of what some calls cost. A `ComputeMeter` accumulates them per model and is the
only way policies report cost (see `LMPolicy.act`, which wraps every backend call in `meter.measure`).

Device seconds, by where the model runs:
- GPU (CUDA initialised): CUDA event time around the call (`device_kind="cuda"`);
- CPU: the CPU time of the calling thread (`time.thread_time()`, `device_kind="cpu_thread"`). Not process
  time: that also counts every other thread of the process while the call runs (a W&B or data-loader
  thread, a concurrent call, torch's intra-op workers spin-waiting for work), which made the same work
  cost 7-28x more at 2 torch threads than at 1 and vary 3x between identical runs on a loaded machine.
  At 1 torch thread the calling thread does all of the call's compute, so its time is the call's cost.
  At N > 1 it is the calling thread's share, which still includes its own spinning at intra-op barriers
  (5-11x the 1-thread figure on a loaded 2-core machine; results/switching.md). Hence `londi-train` pins
  N (`threads`, default 1) and records it: compare CPU device seconds only at the same `threads`;
- simulated policies (the expert standing in for a large LM) charge the seconds of a configured model
  size and keep them (`device_kind="simulated"`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

DEVICE_CUDA = "cuda"
DEVICE_CPU_THREAD = "cpu_thread"  # no GPU: device seconds are the calling thread's CPU seconds
DEVICE_CPU_PROCESS = "cpu_process"  # how runs made before `cpu_thread` measured CPU (whole process): still read
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
    device_kind: str = DEVICE_CPU_THREAD
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

        Wall seconds always; device seconds from CUDA events when CUDA is active, else the calling
        thread's CPU seconds (`device_kind="cpu_thread"`, see the module doc). A simulated usage keeps
        the device seconds it was given.
        """
        stop_cuda = _cuda_timer()
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            yield usage
        finally:
            usage.wall_seconds += time.perf_counter() - wall0
            if not usage.simulated:
                if stop_cuda is not None:
                    usage.device_seconds += stop_cuda()
                    usage.device_kind = DEVICE_CUDA
                else:
                    usage.device_seconds += time.thread_time() - cpu0
                    usage.device_kind = DEVICE_CPU_THREAD
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
