"""Failure advice: out of memory and divergence, classified and explained."""

from __future__ import annotations

from spark_tui.config import RunConfig
from spark_tui.core.train.advice import divergence_advice, exploded, is_oom, oom_advice


def test_failure_classification_and_advice():
    assert is_oom(MemoryError())
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_oom(RuntimeError("shape mismatch"))
    cfg = RunConfig()
    msg, advice = oom_advice(cfg)
    assert msg.startswith("out of memory") and advice
    msg, advice = divergence_advice(cfg, 7, "loss", float("nan"))
    assert "nan" in msg and "step 7" in msg
    assert any("learning_rate" in a and "2e-05" in a for a in advice)
    assert exploded(5000.0, 4.0) and not exploded(12.0, 0.7)
    assert not exploded(30.0, 4.0)
