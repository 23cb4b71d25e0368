"""What a forecast run cost: device, device-seconds and peak memory, for its metadata.

:class:`CostMeter` is wrapped around a runner's call (in-process, Pipes subprocess or pod)
and gives the metadata every forecast materialization records:

| key | meaning |
| --- | --- |
| ``device`` | where the rollout ran (``cpu``, ``cuda:0``; ``cuda`` for a pod whose entry asks GPUs) |
| ``gpus`` | GPUs the run held: 1 in process on CUDA, the registry's ``runtime.gpu`` for a pod, else 0 |
| ``gpu_seconds`` | on a GPU: wall seconds of the run times ``gpus`` (the device time it held) |
| ``cpu_seconds`` | on the CPU: user + system CPU seconds of this process and its finished children |
| ``peak_memory_bytes`` | on CUDA: ``torch.cuda.max_memory_allocated`` during the run (peak reset at the start); on the CPU: the process's peak resident set (``ru_maxrss``, a high-water mark since the process started, children included for a subprocess) |
| ``peak_memory_source`` | which of the two ``peak_memory_bytes`` is |

A batch of cycles run together shares the cost out evenly (:meth:`Cost.share`); the peak
memory is the batch's. A Kubernetes pod's CPU time and memory are not visible from the step
(its ``cpu_seconds`` then counts the step's own process only); its GPU-seconds are exact.
No torch import here: torch is asked only when the run already imported it.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, replace

_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB else


def _cpu_times() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss() -> int:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int(max(own, children)) * _MAXRSS_UNIT


def _cuda():
    """``torch.cuda`` when torch is already imported and CUDA initialized, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_initialized() else None
    except AttributeError:  # a stub torch module
        return None


@dataclass(frozen=True)
class Cost:
    """The cost of one run (or one cycle's share of a batch)."""

    device: str
    gpus: int
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int
    peak_memory_source: str

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def gpu_seconds(self) -> float:
        return self.wall_seconds * self.gpus if self.on_gpu else 0.0

    @property
    def device_seconds(self) -> float:
        """GPU-seconds on a GPU, else CPU-seconds: what skill per device-hour divides by."""
        return self.gpu_seconds if self.on_gpu else self.cpu_seconds

    def share(self, n: int) -> Cost:
        """One of ``n`` cycles run together: an even share of the time, the batch's peak."""
        return replace(self, wall_seconds=self.wall_seconds / n, cpu_seconds=self.cpu_seconds / n)

    def metadata(self) -> dict[str, object]:
        md: dict[str, object] = {"device": self.device, "gpus": self.gpus}
        if self.on_gpu:
            md["gpu_seconds"] = round(self.gpu_seconds, 3)
        else:
            md["cpu_seconds"] = round(self.cpu_seconds, 3)
        md["peak_memory_bytes"] = self.peak_memory_bytes
        md["peak_memory_source"] = self.peak_memory_source
        return md


class CostMeter:
    """``with CostMeter() as meter: md = runner.run(...)``, then ``meter.cost(device, gpus)``."""

    def __enter__(self) -> CostMeter:
        cuda = _cuda()
        if cuda is not None:
            for index in range(cuda.device_count()):
                cuda.reset_peak_memory_stats(index)
        self._wall = time.perf_counter()
        self._cpu = _cpu_times()
        self.wall_seconds = self.cpu_seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.perf_counter() - self._wall
        self.cpu_seconds = _cpu_times() - self._cpu

    def cost(self, device: str, gpus: int) -> Cost:
        """The run's cost on ``device`` holding ``gpus`` GPUs (0 on the CPU)."""
        cuda = _cuda() if device.startswith("cuda") else None
        if cuda is not None:
            index = int(device.split(":")[1]) if ":" in device else cuda.current_device()
            peak, source = int(cuda.max_memory_allocated(index)), "torch.cuda.max_memory_allocated"
        else:
            peak, source = _peak_rss(), "ru_maxrss (process peak RSS)"
        return Cost(
            device=device,
            gpus=gpus if device.startswith("cuda") else 0,
            wall_seconds=self.wall_seconds,
            cpu_seconds=self.cpu_seconds,
            peak_memory_bytes=peak,
            peak_memory_source=source,
        )
