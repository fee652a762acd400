"""Memory per process under DDP and FSDP: what is divided by the world size, what is not."""

from __future__ import annotations

import pytest

from spark_tui.core.memory.distributed import FSDP_GATHERED_LAYERS, per_process, verdict
from spark_tui.core.memory.estimator import estimate

GB128 = 128 * 10**9


def _70b(adapter: str = "lora"):
    return estimate("llama-3.1-70b", adapter=adapter, target="unified", gradient_checkpointing=True)


def test_70b_lora_bf16_fits_two_sparks_with_fsdp_and_not_one():
    est = _70b()
    assert est.settings.resolved_precision == "bf16"
    two = per_process(est, "fsdp", processes=2, machines=2)
    assert verdict(two, GB128, unified=True)[0] in ("fits", "tight")
    one = per_process(est, "fsdp", processes=1, machines=1)
    assert verdict(one, GB128, unified=True)[0] == "wont_fit"
    assert one.estimate.total == pytest.approx(est.total, rel=1e-6)


def test_fsdp_divides_weights_gradients_and_optimizer_not_activations():
    est = _70b()
    pp = per_process(est, "fsdp", processes=4, machines=2).estimate
    for part in ("weights", "gradients", "optimizer", "adapters"):
        assert getattr(pp, part) == pytest.approx(getattr(est, part) / 4, rel=1e-3), part
    gathered = pp.details["fsdp_unsharded_layers"]
    layer = est.weights / est.arch.num_layers
    assert gathered == pytest.approx(FSDP_GATHERED_LAYERS * layer, rel=0.05)  # ~2 layers
    assert pp.activations == est.activations + gathered
    assert any("FSDP" in n for n in pp.notes)


def test_ddp_keeps_a_whole_copy_in_every_process():
    est = _70b("qlora")
    pp = per_process(est, "ddp", processes=2, machines=1)
    assert pp.estimate.weights == est.weights and pp.estimate.optimizer == est.optimizer
    assert pp.estimate.total > est.total  # the gradient buckets on top
    assert pp.per_machine == 2 * pp.estimate.total  # two processes share one unified pool
    assert verdict(pp, GB128, unified=True)[1] < verdict(pp, GB128, unified=False)[1]


def test_uneven_splits_and_unknown_strategies_are_refused():
    with pytest.raises(ValueError, match="evenly"):
        per_process(_70b(), "fsdp", processes=3, machines=2)
    with pytest.raises(ValueError, match="strategy"):
        per_process(_70b(), "zero3", processes=2)
