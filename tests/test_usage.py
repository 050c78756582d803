"""The compute meter on CPU counts the calling thread's CPU time, not the whole process's."""

from __future__ import annotations

import threading
import time

from londi.lm.usage import ComputeMeter, Usage


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
    with meter.measure(Usage(model="m", calls=1)) as usage:
        threading.Thread(target=burn).start()
        done.wait(timeout=60)
    assert burned["s"] >= 0.2
    assert usage.device_kind == "cpu_thread"
    assert usage.device_seconds < 0.05  # process time counted the other thread's 0.2 s
    assert usage.wall_seconds >= 0.2


def test_cpu_device_seconds_count_the_calling_threads_work():
    meter = ComputeMeter()
    with meter.measure(Usage(model="m", calls=1)) as usage:
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.05:
            sum(range(1000))
    assert usage.device_seconds >= 0.05
    assert meter.total().device_seconds == usage.device_seconds
