"""GPUs through NVML (nvidia-ml-py): names, memory, utilisation, power, processes.

Unified memory (DGX Spark / GB10)
---------------------------------
On a GB10 the CPU and GPU share 128 GB of LPDDR5x.  NVML answers "Not
Supported" for the GPU's memory there, so the only honest budget is system
memory from `/proc/meminfo`.  A GPU is treated as unified when any of these
holds: NVML raises NotSupported (or another NVML error) for its memory; its name
contains "GB10"; or the machine is aarch64, NVML reports ATS addressing and the
"GPU memory" is missing or as large as system memory.

No NVIDIA GPU, no driver, or no `nvidia-ml-py` is a normal case: `probe_gpus`
returns no GPUs and a status line that says why.  NVML is initialised once per
process (`reset_nvml` forgets it).  Nothing in this module prints.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spark_tui.core.model import sysmem

UNIFIED_NAME_HINTS = ("GB10",)


@dataclass
class GpuProcess:
    pid: int
    name: str
    used_bytes: int | None  # None when NVML does not report it (unified memory)


@dataclass
class GpuInfo:
    index: int
    name: str
    memory_total: int | None  # bytes; None where NVML reports no memory (GB10)
    memory_used: int | None
    utilization: int | None  # percent
    temperature: int | None  # Celsius
    power_w: float | None
    power_limit_w: float | None
    unified: bool = False
    processes: list[GpuProcess] = field(default_factory=list)

    @property
    def memory_free(self) -> int | None:
        if self.memory_total is None or self.memory_used is None:
            return None
        return max(0, self.memory_total - self.memory_used)


_nvml_lock = threading.Lock()
_nvml_state: dict[str, Any] = {"module": None, "status": None}


def _import_pynvml() -> Any:
    """Import the NVML binding (nvidia-ml-py).  Tests replace this function."""
    import pynvml

    return pynvml


def reset_nvml() -> None:
    """Forget the NVML initialisation (tests, or after a driver change)."""
    with _nvml_lock:
        mod = _nvml_state.get("module")
        if mod is not None:
            try:
                mod.nvmlShutdown()
            except Exception:
                pass
        _nvml_state.update(module=None, status=None)


def nvml() -> tuple[Any | None, str]:
    """The initialised pynvml module, or None and the reason (initialised once per process)."""
    with _nvml_lock:
        if _nvml_state["status"] is not None:
            return _nvml_state["module"], _nvml_state["status"]
        try:
            mod = _import_pynvml()
        except ImportError:
            _nvml_state.update(module=None, status="nvidia-ml-py is not installed: no GPU probe")
            return None, _nvml_state["status"]
        try:
            mod.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            _nvml_state.update(module=None, status=f"no NVIDIA driver / NVML ({_short(exc)})")
            return None, _nvml_state["status"]
        _nvml_state.update(module=mod, status="ok")
        return mod, "ok"


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


def try_nvml(fn: Callable[[], Any]) -> Any:
    """Call an NVML getter; None when the device does not support it (normal on GB10)."""
    try:
        return fn()
    except Exception:
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _is_not_supported(nv: Any, exc: BaseException) -> bool:
    cls = getattr(nv, "NVMLError_NotSupported", None)
    if cls is not None and isinstance(exc, cls):
        return True
    return getattr(exc, "value", None) == getattr(nv, "NVML_ERROR_NOT_SUPPORTED", 3)


def gpu_info(nv: Any, index: int, machine: str, mem_total: int, *, with_processes: bool) -> GpuInfo:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    name = _text(try_nvml(lambda: nv.nvmlDeviceGetName(handle)) or f"GPU {index}")
    unified = any(hint in name.upper() for hint in UNIFIED_NAME_HINTS)
    total = used = None
    try:
        info = nv.nvmlDeviceGetMemoryInfo(handle)
        total, used = int(info.total), int(info.used)
    except Exception as exc:
        # NotSupported is GB10's answer: the GPU has no memory of its own to report.
        # Other failures leave the figure unknown without claiming unified memory.
        unified = unified or _is_not_supported(nv, exc)
    if not unified and machine in ("aarch64", "arm64"):
        mode = try_nvml(lambda: nv.nvmlDeviceGetAddressingMode(handle))
        ats = getattr(nv, "NVML_DEVICE_ADDRESSING_MODE_ATS", 2)
        if mode == ats and (total is None or total >= 0.9 * mem_total):
            unified = True
    util = try_nvml(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
    temp = try_nvml(
        lambda: nv.nvmlDeviceGetTemperature(handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0))
    )
    power = try_nvml(lambda: nv.nvmlDeviceGetPowerUsage(handle))
    limit = try_nvml(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
    gpu = GpuInfo(
        index=index,
        name=name,
        memory_total=None if unified else total,
        memory_used=None if unified else used,
        utilization=int(util.gpu) if util is not None else None,
        temperature=int(temp) if temp is not None else None,
        power_w=power / 1000.0 if power is not None else None,
        power_limit_w=limit / 1000.0 if limit is not None else None,
        unified=unified,
    )
    if with_processes:
        gpu.processes = _gpu_processes(nv, handle)
    return gpu


def _gpu_processes(nv: Any, handle: Any) -> list[GpuProcess]:
    procs: dict[int, GpuProcess] = {}
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        fn = getattr(nv, getter, None)
        items = try_nvml(lambda fn=fn: fn(handle)) if fn is not None else None
        for p in items or []:
            pid = int(getattr(p, "pid", 0))
            used = getattr(p, "usedGpuMemory", None)
            # NVML reports "not available" as None or as a huge sentinel value.
            if used is not None and (used < 0 or used >= 2**63 - 1 or used == 0xFFFFFFFFFFFFFFFF):
                used = None
            name = _process_name(nv, pid)
            prev = procs.get(pid)
            if prev is None or (used or 0) > (prev.used_bytes or 0):
                procs[pid] = GpuProcess(pid, name, int(used) if used is not None else None)
    return sorted(procs.values(), key=lambda p: -(p.used_bytes or 0))


def _process_name(nv: Any, pid: int) -> str:
    name = try_nvml(lambda: nv.nvmlSystemGetProcessName(pid))
    if name:
        return os.path.basename(_text(name))
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:
        return f"pid {pid}"


def probe_gpus(
    *, with_processes: bool = True, mem_total: int | None = None
) -> tuple[list[GpuInfo], str]:
    """GPUs seen by NVML, and a status line ("ok" or why there are none)."""
    nv, status = nvml()
    if nv is None:
        return [], status
    try:
        count = int(nv.nvmlDeviceGetCount())
    except Exception as exc:
        return [], f"NVML could not count GPUs ({_short(exc)})"
    if count == 0:
        return [], "no NVIDIA GPU found"
    machine = platform.machine().lower()
    if mem_total is None:
        mem_total = sysmem.read_meminfo().get("MemTotal", 0)
    gpus = []
    for i in range(count):
        try:
            gpus.append(gpu_info(nv, i, machine, mem_total, with_processes=with_processes))
        except Exception:
            continue  # one broken device must not hide the others
    return gpus, "ok" if gpus else "NVML found GPUs but could not read them"
