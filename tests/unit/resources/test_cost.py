"""A forecast run's cost: CPU-seconds and peak RSS on the CPU, GPU-seconds and CUDA peak on a GPU."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from resources.cost import CostMeter


def test_cpu_run_records_cpu_seconds_and_peak_rss():
    with CostMeter() as meter:
        total = 0.0
        for _ in range(30):
            total += float(np.linalg.norm(np.random.default_rng(0).random((200, 200))))
    cost = meter.cost("cpu", gpus=1)
    md = cost.metadata()
    assert md["device"] == "cpu" and md["gpus"] == 0  # no GPU held on the CPU
    assert md["cpu_seconds"] > 0 and "gpu_seconds" not in md
    assert md["peak_memory_bytes"] > 10 * 2**20  # a Python process with numpy: > 10 MiB
    assert md["peak_memory_source"] == "ru_maxrss (process peak RSS)"
    assert cost.device_seconds == cost.cpu_seconds


class _FakeCuda:
    """What CostMeter asks of ``torch.cuda``."""

    def __init__(self) -> None:
        self.reset = []

    def is_initialized(self) -> bool:
        return True

    def device_count(self) -> int:
        return 2

    def reset_peak_memory_stats(self, index: int) -> None:
        self.reset.append(index)

    def current_device(self) -> int:
        return 0

    def max_memory_allocated(self, index: int) -> int:
        return {0: 123, 1: 456}[index]


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.SimpleNamespace(cuda=_FakeCuda())
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


def test_gpu_run_records_gpu_seconds_and_the_cuda_peak(fake_torch):
    with CostMeter() as meter:
        pass
    assert fake_torch.cuda.reset == [0, 1]  # the peak is this run's, not the process's
    meter.wall_seconds = 30.0  # as if the rollout took 30 s
    md = meter.cost("cuda:1", gpus=1).metadata()
    assert md["device"] == "cuda:1" and md["gpus"] == 1
    assert md["gpu_seconds"] == 30.0 and "cpu_seconds" not in md
    assert md["peak_memory_bytes"] == 456
    assert md["peak_memory_source"] == "torch.cuda.max_memory_allocated"
    # A pod holding 4 GPUs for the same time; a batch of 3 cycles shares it.
    pod = meter.cost("cuda", gpus=4)
    assert pod.gpu_seconds == 120.0 and pod.metadata()["peak_memory_bytes"] == 123
    assert pod.share(3).gpu_seconds == pytest.approx(40.0)
    assert pod.share(3).peak_memory_bytes == 123
