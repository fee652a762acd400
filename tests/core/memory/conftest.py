"""Fixtures of the Memory-step tests: an estimate at the course's settings, a DGX Spark probe."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spark_tui.core.memory.breakdown import GB, Estimate
from spark_tui.core.memory.estimator import estimate
from spark_tui.core.memory.settings import settings_for_method
from spark_tui.core.model.gpus import GpuInfo
from spark_tui.core.model.hardware import HardwareProbe

COURSE = dict(max_length=2048, micro_batch=1, gradient_checkpointing=True)


def _est(model: str, method: str, **kw) -> Estimate:
    return estimate(model, settings_for_method(method, **{**COURSE, **kw}))


def _spark_probe(*, available: float = 118, free: float = 100, cache: float = 15) -> HardwareProbe:
    """A DGX Spark as the probe sees it: GB10 with no NVML memory, 128 GB unified."""
    gpu = GpuInfo(0, "NVIDIA GB10", None, None, 0, 40, 10.0, 140.0, unified=True)
    return HardwareProbe(
        mem_total=int(128 * GB),
        mem_available=int(available * GB),
        mem_free=int(free * GB),
        page_cache=int(cache * GB),
        buffers=0,
        swap_total=0,
        swap_used=0,
        cpu_cores_logical=20,
        cpu_cores_physical=20,
        machine="aarch64",
        gpus=[gpu],
        unified_memory=True,
    )


@pytest.fixture
def est() -> Callable[..., Estimate]:
    """est(model, method, **settings): the estimate at 2048 tokens, micro-batch 1, checkpointing."""
    return _est


@pytest.fixture
def spark_probe() -> Callable[..., HardwareProbe]:
    """spark_probe(available=, free=, cache=) in GB: a DGX Spark's hardware probe."""
    return _spark_probe
