"""System memory: /proc/meminfo (psutil where it is missing), and dropping the page cache.

On unified memory the page cache matters: files read recently (a 140 GB
download of Llama 3.1 70B, say) sit in the cache, and CUDA allocations do not
always make the kernel give that memory back in time.  `drop_page_cache()` runs
the course's `sync; echo 3 > /proc/sys/vm/drop_caches` — only when called
explicitly (after the user confirmed), only as root, as argument lists, never
via a shell.  Nothing in this module prints.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spark_tui.core.base.errors import SparkError

MEMINFO = Path("/proc/meminfo")
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
DROP_CACHES_COMMAND = "sync; echo 3 > /proc/sys/vm/drop_caches"


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


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


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
