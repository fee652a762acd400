"""A cheap system summary for the welcome screen (psutil only: no torch, no NVML init cost).

The full probe with GPUs, unified memory and page cache is `hardware.py`; this
module is what the first screen can afford to call before anything heavy loads.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil

from spark_tui.core import paths


@dataclass
class SystemSummary:
    cpu: str
    cores: int
    mem_total_gb: float
    mem_available_gb: float
    disk_free_gb: float
    disk_path: str
    arch: str


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _existing_parent(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def summary() -> SystemSummary:
    vm = psutil.virtual_memory()
    home = _existing_parent(paths.home())
    disk = shutil.disk_usage(home)
    return SystemSummary(
        cpu=_cpu_name(),
        cores=os.cpu_count() or 1,
        mem_total_gb=vm.total / 1024**3,
        mem_available_gb=vm.available / 1024**3,
        disk_free_gb=disk.free / 1024**3,
        disk_path=str(home),
        arch=platform.machine(),
    )


def gpu_names() -> list[str]:
    """GPU names through NVML; an empty list when there is no GPU or no driver (a normal case)."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
