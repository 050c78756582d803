"""Compute accounting: every LM call is measured here, and switchers/loggers read only this.

A `Usage` is one record of what some calls cost. A `ComputeMeter` accumulates them per model and is the
only way policies report cost (see `LMPolicy.act`, which wraps every backend call in `meter.measure`).

Device seconds, by the device the measured work runs on, which the caller names (`measure(usage,
device=...)`; `LMPolicy.act` passes its policy's `compute_device`), never guessed from the process: a
QUICK on CPU beside a DEEPTHINK on a GPU is timed on the CPU, though CUDA is initialised in the process:
- a CUDA device (`"cuda"`, `"cuda:N"`): CUDA event time around the call on that device's current stream
  (`device_kind="cuda"`);
- `"cpu"`: the CPU time of the calling thread (`time.thread_time()`, `device_kind="cpu_thread"`). Not process
  time: that also counts every other thread of the process while the call runs (a W&B or data-loader
  thread, a concurrent call, torch's intra-op workers spin-waiting for work), which made the same work
  cost 7-28x more at 2 torch threads than at 1 and vary 3x between identical runs on a loaded machine.
  At 1 torch thread the calling thread does all of the call's compute, so its time is the call's cost.
  At N > 1 it is the calling thread's share, which still includes its own spinning at intra-op barriers
  (5-11x the 1-thread figure on a loaded 2-core machine; results/switching.md). Hence `londi-train` pins
  N (`threads`, default 1) and records it: compare CPU device seconds only at the same `threads`;
- `"remote"`: a model served elsewhere (an OpenAI-compatible endpoint), whose device this process cannot
  see. The backend reports the seconds itself: each request's latency at the client (retry waits
  excluded), summed over the batch's requests, so concurrent requests in pool threads are not lost
  (`device_kind="remote"`). It bounds the server's time from above (network and queueing included);
- simulated policies (the expert standing in for a large LM) charge the seconds of a configured model
  size and keep them (`device_kind="simulated"`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DEVICE_CUDA = "cuda"
DEVICE_CPU_THREAD = "cpu_thread"  # a CPU model: device seconds are the calling thread's CPU seconds
DEVICE_CPU_PROCESS = "cpu_process"  # how runs made before `cpu_thread` measured CPU (whole process): still read
DEVICE_SIMULATED = "simulated"  # a policy that charges the cost of a configured model it does not run
DEVICE_REMOTE = "remote"  # a served model: the backend's summed request latencies (its device is not visible here)


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


def _device_clock(device: str) -> Callable[[], tuple[float, str]]:
    """Start timing work on `device`; the returned stop() gives (device seconds, device_kind).

    Why per device: the clock must be the one the work runs on. CUDA events only for a CUDA device (on a
    CPU model they would give wall-like time labelled as GPU time), the calling thread's CPU time for
    "cpu", and nothing for "remote" (the backend adds the seconds it measured to the usage itself).
    """
    name = str(device)
    if name == DEVICE_REMOTE:
        return lambda: (0.0, DEVICE_REMOTE)
    if name == "cpu":
        cpu0 = time.thread_time()
        return lambda: (time.thread_time() - cpu0, DEVICE_CPU_THREAD)
    if name == "cuda" or name.startswith("cuda:"):
        import torch

        stream = torch.cuda.current_stream(torch.device(name))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)

        def stop() -> tuple[float, str]:
            end.record(stream)
            end.synchronize()
            return start.elapsed_time(end) / 1000.0, DEVICE_CUDA

        return stop
    raise ValueError(
        f"the compute meter has no clock for device {name!r}: it times 'cpu' (calling-thread CPU time), "
        f"'cuda' / 'cuda:N' (CUDA events) and {DEVICE_REMOTE!r} (latency the backend measures); "
        "run the model on one of those"
    )


@dataclass
class ComputeMeter:
    """Accumulates `Usage` per model. Thread-safe; cheap enough to wrap every call."""

    totals: dict[str, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @contextlib.contextmanager
    def measure(self, usage: Usage, *, device: str) -> Iterator[Usage]:
        """Time the body and record `usage` (which the body fills with calls/tokens/FLOPs).

        `device` is where the body's work runs ("cpu", "cuda", "cuda:N", "remote"; see the module doc): it
        picks the clock, so each model is timed on its own device. Wall seconds always. A simulated
        usage keeps the device seconds it was given, as a remote one keeps those its backend added.
        """
        stop = None if usage.simulated else _device_clock(device)
        wall0 = time.perf_counter()
        try:
            yield usage
        finally:
            usage.wall_seconds += time.perf_counter() - wall0
            if stop is not None:
                seconds, usage.device_kind = stop()
                usage.device_seconds += seconds
            self.add(usage)

    def add(self, usage: Usage) -> None:
        with self._lock:
            prev = self.totals.get(usage.model, Usage(model=usage.model))
            self.totals[usage.model] = prev + usage

    def total(self, model: str | None = None) -> Usage:
        """The sum over every model, or over `model`'s own records only: its name and `"{model}/..."` (its
        online updates, `"{model}/train"`), not those of another model that shares this meter."""
        with self._lock:
            out = Usage()
            for key, u in self.totals.items():
                if model is None or key == model or key.startswith(f"{model}/"):
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
