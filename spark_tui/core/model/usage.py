"""Live usage readings for the gauges: system memory, each GPU, and a training process's RSS.

`sample(pid)` is cheap (no disk, no process list) and meant to be called about
once a second from a worker thread; `probe()` in `hardware.py` is the full,
slower picture.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

from spark_tui.core.model import sysmem
from spark_tui.core.model.gpus import gpu_info, nvml, try_nvml


@dataclass
class GpuSample:
    index: int
    name: str
    utilization: int | None
    memory_used: int | None
    memory_total: int | None
    temperature: int | None
    power_w: float | None
    power_limit_w: float | None


@dataclass
class Sample:
    """One reading for the live gauges."""

    mem_total: int
    mem_used: int  # total - available (what the gauges show as "used")
    page_cache: int
    swap_used: int
    unified_memory: bool
    gpus: list[GpuSample] = field(default_factory=list)
    process_rss: int | None = None  # the training process and its children; None: no pid / gone

    @property
    def mem_fraction(self) -> float:
        return self.mem_used / self.mem_total if self.mem_total else 0.0


def process_rss(pid: int) -> int | None:
    """Resident memory of `pid` plus its children (dataloader workers), or None if it is gone."""
    try:
        import psutil

        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return int(total)
    except Exception:
        return None


def sample(pid: int | None = None) -> Sample:
    """A cheap reading (no disk, no process list): safe to call every second from a thread."""
    mi = sysmem.read_meminfo()
    total = mi.get("MemTotal", 0)
    gpus_out: list[GpuSample] = []
    unified = False
    nv, _status = nvml()
    if nv is not None:
        count = try_nvml(nv.nvmlDeviceGetCount) or 0
        machine = platform.machine().lower()
        for i in range(int(count)):
            try:
                g = gpu_info(nv, i, machine, total, with_processes=False)
            except Exception:
                continue
            unified = unified or g.unified
            gpus_out.append(
                GpuSample(
                    g.index,
                    g.name,
                    g.utilization,
                    g.memory_used,
                    g.memory_total,
                    g.temperature,
                    g.power_w,
                    g.power_limit_w,
                )
            )
    return Sample(
        mem_total=total,
        mem_used=max(0, total - mi.get("MemAvailable", 0)),
        page_cache=mi.get("Cached", 0) + mi.get("Buffers", 0),
        swap_used=max(0, mi.get("SwapTotal", 0) - mi.get("SwapFree", 0)),
        unified_memory=unified,
        gpus=gpus_out,
        process_rss=process_rss(pid) if pid else None,
    )
