"""What this machine has: memory, page cache, swap, GPUs, CPU cores, free disk — and the budget.

`probe()` is the full picture for the Memory step and `spark-tui memory` (tens
of milliseconds: /proc/meminfo, NVML, two `statvfs` calls); `memory_budget()`
turns it into the number a run is checked against.  The pieces live beside it:
system memory and the page cache in `sysmem.py`, GPUs in `gpus.py`, and the
cheap once-a-second reading for live gauges in `usage.py`.

On unified memory (DGX Spark / GB10, see `gpus.py`) the budget is system
`MemAvailable`, which counts most of the page cache as available; the verdict
uses it but warns when the run only fits by reclaiming cache.  Nothing in this
module prints.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base import paths
from spark_tui.core.model import sysmem
from spark_tui.core.model.gpus import GpuInfo, probe_gpus


@dataclass
class HardwareProbe:
    mem_total: int
    mem_available: int
    mem_free: int
    page_cache: int  # "Cached" in /proc/meminfo
    buffers: int
    swap_total: int
    swap_used: int
    cpu_cores_logical: int
    cpu_cores_physical: int | None
    machine: str  # platform.machine(): x86_64, aarch64
    gpus: list[GpuInfo] = field(default_factory=list)
    unified_memory: bool = False
    nvml_status: str = "ok"  # why there are no GPUs, when there are none
    disk_free_home: int | None = None
    disk_free_hf_cache: int | None = None
    home_path: str = ""
    hf_cache_path: str = ""

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def reclaimable_cache(self) -> int:
        """Page cache and buffers: memory the kernel can give back (maybe not in time for CUDA)."""
        return self.page_cache + self.buffers

    @property
    def target(self) -> str:
        """What the estimator should assume: 'unified', 'gpu' or 'cpu'."""
        if self.unified_memory:
            return "unified"
        return "gpu" if self.gpus else "cpu"

    def budget(self) -> Budget:
        return memory_budget(self)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target"] = self.target
        d["budget"] = asdict(self.budget())
        return d


@dataclass
class Budget:
    """How much memory a training run may use, and where that number comes from."""

    bytes: int
    source: str  # human description: "unified memory (system RAM available)", ...
    target: str  # unified | gpu | cpu
    free_without_cache: (
        int  # what is free without reclaiming page cache (unified/cpu), else = bytes
    )
    page_cache: int  # page cache + buffers (0 on a discrete GPU: irrelevant there)


def memory_budget(probe: HardwareProbe) -> Budget:
    """The memory a run is checked against.

    * unified memory: system `MemAvailable` (counts reclaimable page cache);
    * discrete GPU: the free memory of the GPU with the most free memory;
    * CPU only: system `MemAvailable`.
    """
    if probe.unified_memory:
        return Budget(
            probe.mem_available,
            "unified memory: system RAM available (MemAvailable, counts page cache)",
            "unified",
            probe.mem_free,
            probe.reclaimable_cache,
        )
    gpus = [g for g in probe.gpus if g.memory_free is not None]
    if gpus:
        best = max(gpus, key=lambda g: g.memory_free or 0)
        free = best.memory_free or 0
        return Budget(free, f"GPU {best.index} ({best.name}) free memory", "gpu", free, 0)
    if probe.gpus:
        return Budget(
            probe.mem_available,
            "system RAM available (NVML reported no GPU memory figure)",
            "gpu",
            probe.mem_free,
            probe.reclaimable_cache,
        )
    return Budget(
        probe.mem_available,
        "system RAM available (CPU only)",
        "cpu",
        probe.mem_free,
        probe.reclaimable_cache,
    )


def _disk_free(path: Path) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing parent)."""
    p = path
    while True:
        try:
            return shutil.disk_usage(p).free
        except OSError:
            if p.parent == p:
                return None
            p = p.parent


def probe(*, with_disk: bool = True, with_processes: bool = True) -> HardwareProbe:
    """Probe the machine.  Never raises for missing GPUs, NVML or /proc files."""
    mi = sysmem.read_meminfo()
    total = mi.get("MemTotal", 0)
    gpus, status = probe_gpus(with_processes=with_processes, mem_total=total)
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    except Exception:
        physical, logical = None, os.cpu_count() or 1
    home, hf = paths.home(), paths.hf_cache_dir()
    return HardwareProbe(
        mem_total=total,
        mem_available=mi.get("MemAvailable", 0),
        mem_free=mi.get("MemFree", 0),
        page_cache=mi.get("Cached", 0),
        buffers=mi.get("Buffers", 0),
        swap_total=mi.get("SwapTotal", 0),
        swap_used=max(0, mi.get("SwapTotal", 0) - mi.get("SwapFree", 0)),
        cpu_cores_logical=int(logical),
        cpu_cores_physical=int(physical) if physical else None,
        machine=platform.machine(),
        gpus=gpus,
        unified_memory=any(g.unified for g in gpus),
        nvml_status=status,
        disk_free_home=_disk_free(home) if with_disk else None,
        disk_free_hf_cache=_disk_free(hf) if with_disk else None,
        home_path=str(home),
        hf_cache_path=str(hf),
    )


def fmt_bytes(n: int | float | None, unit: str = "GB") -> str:
    """Decimal units, like the estimator (1 GB = 10^9 bytes)."""
    if n is None:
        return "n/a"
    if unit == "GB":
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB"
