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


def _budget(gb: float):
    from spark_tui.core.memory.breakdown import GB
    from spark_tui.core.model.hardware import Budget

    return Budget(int(gb * GB), "test budget", "gpu", int(gb * GB), 0)


def test_an_out_of_memory_after_auto_turned_it_off_advises_turning_it_on(monkeypatch):
    from spark_tui.core.model import hardware

    monkeypatch.setattr(hardware, "probe", lambda **kw: _budget(500))  # fits without it
    _msg, advice = oom_advice(RunConfig())
    assert advice[0].startswith("set train.gradient_checkpointing = 'on'") and len(advice) >= 3
    _msg, advice = oom_advice(RunConfig().with_value("train.gradient_checkpointing", "on"))
    assert "auto had turned it off" not in " ".join(advice)
