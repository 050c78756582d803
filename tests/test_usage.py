"""The compute meter times each model on its own device: on CPU the calling thread's CPU time (not the
whole process's), CUDA events only for a model on a CUDA device."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import torch

from londi.lm.policy import ActResult, LMPolicy
from londi.lm.state import TextState
from londi.lm.usage import ComputeMeter, Usage

STATE = TextState(obs="a wall", mission="go to the ball", admissible_actions=("turn left", "go forward"))


def test_cpu_device_seconds_exclude_other_threads():
    """A call that waits while another thread (a W&B or data thread, say) burns 0.2 s of CPU costs ~0."""
    burned = {}
    done = threading.Event()

    def burn() -> None:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.2:
            sum(range(1000))
        burned["s"] = time.thread_time() - t0
        done.set()

    meter = ComputeMeter()
    with meter.measure(Usage(model="m", calls=1), device="cpu") as usage:
        threading.Thread(target=burn).start()
        done.wait(timeout=60)
    assert burned["s"] >= 0.2
    assert usage.device_kind == "cpu_thread"
    assert usage.device_seconds < 0.05  # process time counted the other thread's 0.2 s
    assert usage.wall_seconds >= 0.2


def test_cpu_device_seconds_count_the_calling_threads_work():
    meter = ComputeMeter()
    with meter.measure(Usage(model="m", calls=1), device="cpu") as usage:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.05:
            sum(range(1000))
    assert usage.device_seconds >= 0.05
    assert meter.total().device_seconds == usage.device_seconds


class FakeEvent:
    """A CUDA event on an idle stream completes when recorded, so its timestamp is the host's clock then."""

    def __init__(self, enable_timing: bool = False):
        self.t = 0.0

    def record(self, stream: object = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, other: FakeEvent) -> float:
        return (other.t - self.t) * 1000.0


@pytest.fixture
def cuda_in_use(monkeypatch):
    """The process as it is once a DEEPTHINK runs on a GPU: CUDA available and initialised (stubbed)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)


class Blocked(LMPolicy):
    """A model on `device` whose call spends 0.2 s blocked (waiting on a loaded core, say), not computing."""

    def __init__(self, device: str):
        super().__init__("m")
        self._device = device

    @property
    def compute_device(self) -> str:
        return self._device

    def _act(self, states: Sequence[TextState], usage: Usage, return_hidden: bool) -> list[ActResult]:
        time.sleep(0.2)
        usage.calls += len(states)
        return [ActResult(index=0, action=s.admissible_actions[0]) for s in states]


def test_a_cpu_model_beside_a_cuda_one_is_timed_on_its_thread_not_with_cuda_events(cuda_in_use):
    pol = Blocked("cpu")
    pol.act([STATE])
    u = pol.meter.totals["m"]
    assert u.device_kind == "cpu_thread" and u.device_seconds < 0.05  # CUDA events gave ~0.2 s labelled "cuda"
    assert u.wall_seconds >= 0.2


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_model_is_timed_with_cuda_events(cuda_in_use, device):
    pol = Blocked(device)
    pol.act([STATE])
    u = pol.meter.totals["m"]
    assert u.device_kind == "cuda" and u.device_seconds >= 0.19


def test_a_device_without_a_clock_fails_at_the_call_with_the_choices():
    with pytest.raises(ValueError, match="no clock for device 'mps'.*'cpu'.*'cuda'.*'remote'"):
        Blocked("mps").act([STATE])


def test_a_models_total_holds_its_own_records_and_its_updates_only():
    meter = ComputeMeter()
    for name, flops in (("quick", 1.0), ("quick/train", 2.0), ("quickly", 4.0), ("deepthink", 8.0)):
        meter.add(Usage(model=name, flops=flops))
    assert (meter.total("quick").flops, meter.total().flops) == (3.0, 15.0)


def test_a_remote_model_keeps_the_seconds_its_backend_reported():
    meter = ComputeMeter()
    with meter.measure(Usage(model="m", calls=1), device="remote") as usage:
        usage.device_seconds += 1.5  # e.g. the requests' latencies, measured in pool threads
    assert (usage.device_kind, usage.device_seconds) == ("remote", 1.5)
