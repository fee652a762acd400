"""What this machine has: memory, page cache, swap, GPUs (via NVML), CPU cores, free disk.

Two entry points:

* `probe()` — the full picture for the Memory step and `spark-tui memory`
  (tens of milliseconds: /proc/meminfo, NVML, two `statvfs` calls);
* `sample(pid)` — a cheap reading for live gauges (system memory, each GPU's
  utilisation / memory / temperature / power, and the RSS of a training process
  and its children), meant to be called about once a second from a worker thread.

Unified memory (DGX Spark / GB10)
---------------------------------
On a GB10 the CPU and GPU share 128 GB of LPDDR5x.  NVML answers "Not
Supported" for the GPU's memory there, so the only honest budget is system
memory from `/proc/meminfo`.  A GPU is treated as unified when any of these
holds: NVML raises NotSupported (or another NVML error) for its memory; its name
contains "GB10"; or the machine is aarch64, NVML reports ATS addressing and the
"GPU memory" is missing or as large as system memory.

On unified memory the page cache matters: files read recently (a 140 GB
download of Llama 3.1 70B, say) sit in the cache, and CUDA allocations do not
always make the kernel give that memory back in time.  `MemAvailable` counts
most of the cache as available; the verdict uses it but warns when the run
only fits by reclaiming cache.  `drop_page_cache()` runs the course's
`sync; echo 3 > /proc/sys/vm/drop_caches` — only when called explicitly
(after the user confirmed), only as root, as argument lists, never via a shell.

No NVIDIA GPU, no driver, or no `nvidia-ml-py` is a normal case: `gpus` is empty
and `nvml_status` says why.  Nothing in this module prints.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core import paths
from spark_tui.core.errors import SparkError

MEMINFO = Path("/proc/meminfo")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
DROP_CACHES_COMMAND = "sync; echo 3 > /proc/sys/vm/drop_caches"
UNIFIED_NAME_HINTS = ("GB10",)


# --------------------------------------------------------------------------- data


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


# --------------------------------------------------------------------------- /proc/meminfo


def read_meminfo(path: Path = MEMINFO) -> dict[str, int]:
    """/proc/meminfo as bytes by key; falls back to psutil where the file is missing."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return _meminfo_from_psutil()
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1].lower() == "kb":
            value *= 1024
        out[key.strip()] = value
    if "MemAvailable" not in out and "MemFree" in out:  # very old kernels
        out["MemAvailable"] = out["MemFree"] + out.get("Cached", 0) + out.get("Buffers", 0)
    return out


def _meminfo_from_psutil() -> dict[str, int]:
    import psutil

    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    return {
        "MemTotal": vm.total,
        "MemFree": getattr(vm, "free", vm.available),
        "MemAvailable": vm.available,
        "Cached": getattr(vm, "cached", 0),
        "Buffers": getattr(vm, "buffers", 0),
        "SwapTotal": sw.total,
        "SwapFree": sw.free,
    }


# --------------------------------------------------------------------------- NVML

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


def _nvml() -> tuple[Any | None, str]:
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


def _try(fn: Callable[[], Any]) -> Any:
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


def _gpu_info(
    nv: Any, index: int, machine: str, mem_total: int, *, with_processes: bool
) -> GpuInfo:
    handle = nv.nvmlDeviceGetHandleByIndex(index)
    name = _text(_try(lambda: nv.nvmlDeviceGetName(handle)) or f"GPU {index}")
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
        mode = _try(lambda: nv.nvmlDeviceGetAddressingMode(handle))
        ats = getattr(nv, "NVML_DEVICE_ADDRESSING_MODE_ATS", 2)
        if mode == ats and (total is None or total >= 0.9 * mem_total):
            unified = True
    util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
    temp = _try(lambda: nv.nvmlDeviceGetTemperature(handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0)))
    power = _try(lambda: nv.nvmlDeviceGetPowerUsage(handle))
    limit = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
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
        items = _try(lambda fn=fn: fn(handle)) if fn is not None else None
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
    name = _try(lambda: nv.nvmlSystemGetProcessName(pid))
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
    nv, status = _nvml()
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
        mem_total = read_meminfo().get("MemTotal", 0)
    gpus = []
    for i in range(count):
        try:
            gpus.append(_gpu_info(nv, i, machine, mem_total, with_processes=with_processes))
        except Exception:
            continue  # one broken device must not hide the others
    return gpus, "ok" if gpus else "NVML found GPUs but could not read them"


# --------------------------------------------------------------------------- probe


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
    mi = read_meminfo()
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


# --------------------------------------------------------------------------- live sample


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
    mi = read_meminfo()
    total = mi.get("MemTotal", 0)
    gpus_out: list[GpuSample] = []
    unified = False
    nv, _status = _nvml()
    if nv is not None:
        count = _try(nv.nvmlDeviceGetCount) or 0
        machine = platform.machine().lower()
        for i in range(int(count)):
            try:
                g = _gpu_info(nv, i, machine, total, with_processes=False)
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


# --------------------------------------------------------------------------- page cache


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def drop_page_cache(
    *,
    runner: Callable[..., Any] = subprocess.run,
    drop_caches_path: Path = DROP_CACHES,
) -> int:
    """Flush dirty pages and drop the page cache (the course's step before loading a big model).

    Runs `sync` (an argument list, no shell), then writes "3" to
    /proc/sys/vm/drop_caches.  Call this ONLY after the user explicitly
    confirmed.  Returns the page cache freed, in bytes (approximate).
    Raises `SparkError` when not root or when the kernel refuses.
    """
    if not is_root():
        raise SparkError(
            "dropping the page cache needs root; run this in a root shell (or the container "
            f"as root): sudo sh -c '{DROP_CACHES_COMMAND}'"
        )
    before = read_meminfo().get("Cached", 0)
    try:
        runner(["sync"], check=True, capture_output=True, timeout=300)
    except Exception as exc:
        raise SparkError(f"`sync` failed before dropping the page cache: {_short(exc)}") from exc
    try:
        with open(drop_caches_path, "w") as fh:
            fh.write("3\n")
    except OSError as exc:
        raise SparkError(
            f"could not write to {drop_caches_path} ({exc.strerror}); inside a container "
            "/proc/sys is often read-only: run the command on the host instead: "
            f"sudo sh -c '{DROP_CACHES_COMMAND}'"
        ) from exc
    after = read_meminfo().get("Cached", 0)
    return max(0, before - after)


# --------------------------------------------------------------------------- formatting


def fmt_bytes(n: int | float | None, unit: str = "GB") -> str:
    """Decimal units, like the estimator (1 GB = 10^9 bytes)."""
    if n is None:
        return "n/a"
    if unit == "GB":
        return f"{n / 1e9:.1f} GB"
    return f"{n / 1e6:.0f} MB"
