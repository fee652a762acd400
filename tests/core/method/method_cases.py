"""Shared test values for the method room: a CPU and two GPUs, and a config by method name."""

from __future__ import annotations

from spark_tui.config import RunConfig
from spark_tui.core.method import choices, precision

CPU = precision.Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
GPU_BF16 = precision.Hardware(device="cuda", name="GB10", bf16=True, fp16=True, capability=(12, 1))
GPU_OLD = precision.Hardware(device="cuda", name="T4", bf16=False, fp16=True, capability=(7, 5))


def method_cfg(objective: str = "sft", method: str = "lora") -> RunConfig:
    cfg = RunConfig()
    cfg.method.objective = objective  # type: ignore[assignment]
    choices.apply_method(cfg, method)
    return cfg
