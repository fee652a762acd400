"""Settings: precision and targets, RunConfig and explicit settings agree, bad values refused."""

from __future__ import annotations

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory.estimator import estimate, estimate_config
from spark_tui.core.memory.settings import Settings, settings_for_method
from spark_tui.core.model import catalog

L8 = "meta-llama/Llama-3.1-8B-Instruct"


def test_precision_and_targets(est) -> None:
    cpu = est("default", "lora", precision="auto", target="cpu")
    gpu = est("default", "lora", precision="auto", target="gpu")
    assert cpu.settings.resolved_precision == "fp32" and gpu.settings.resolved_precision == "bf16"
    assert cpu.weights == 2 * gpu.weights
    unified = est(L8, "lora", target="unified")
    assert unified.overhead > est(L8, "lora", target="gpu").overhead


def test_explicit_args_and_runconfig_agree() -> None:
    cfg = RunConfig()
    cfg = cfg.with_value("model.id", L8).with_value("data.max_length", 2048)
    cfg = cfg.with_value("train.micro_batch_size", 1).with_value("method.adapter", "qlora")
    from_cfg = estimate_config(cfg, target="gpu")
    explicit = estimate(catalog.get(L8).arch, adapter="qlora", max_length=2048, micro_batch=1)
    assert from_cfg.total == explicit.total


def test_bad_settings_and_unknown_model() -> None:
    with pytest.raises(SparkError):
        Settings(optimizer="sgd")
    with pytest.raises(SparkError, match="method"):
        settings_for_method("magic")
    with pytest.raises(SparkError, match="architecture"):
        estimate("nobody/unknown-model-xyz")
