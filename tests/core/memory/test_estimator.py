"""The peak-memory estimate: the course's sanity bands, the breakdown, how settings move it."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.memory.breakdown import BREAKDOWN_KEYS, GB
from spark_tui.core.memory.estimator import NF4_BYTES_DQ, OPT_BYTES, estimate
from spark_tui.core.memory.fit import verdict
from spark_tui.core.memory.settings import OPTIMIZERS, settings_for_method
from spark_tui.core.model import catalog

L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"
COURSE = dict(max_length=2048, micro_batch=1, gradient_checkpointing=True)  # as `est` uses


def test_llama_70b_qlora_in_40_to_60_gb(est) -> None:
    e = est(L70, "qlora")
    assert 40 * GB <= e.total <= 60 * GB, e.total_gb


def test_llama_8b_lora_in_14_to_24_gb(est) -> None:
    e = est(L8, "lora")
    assert 14 * GB <= e.total <= 24 * GB, e.total_gb


def test_llama_8b_full_adamw_well_over_100_gb_and_wont_fit_a_spark(est, spark_probe) -> None:
    e = est(L8, "full", optimizer="adamw")
    assert e.total > 120 * GB, e.total_gb
    v = verdict(e, spark_probe())
    assert v.status == "wont_fit"


def test_70b_qlora_fits_a_spark_and_8b_lora_fits(est, spark_probe) -> None:
    assert verdict(est(L70, "qlora", target="unified"), spark_probe()).status == "fits"
    assert verdict(est(L8, "lora", target="unified"), spark_probe()).status == "fits"


def test_breakdown_adds_up_and_serialises(est) -> None:
    e = est(L8, "lora")
    parts = e.breakdown()
    assert set(parts) == set(BREAKDOWN_KEYS)
    assert sum(parts.values()) == e.total
    assert all(v >= 0 for v in parts.values())
    d = e.to_dict()
    json.dumps(d)
    assert d["total_gb"] == pytest.approx(e.total / GB, abs=0.01)
    labels = [label for label, _ in e.rows()]
    assert labels[-1] == "Total peak" and "Reference model" in labels


def test_qlora_keeps_embeddings_and_head_in_16_bit(est) -> None:
    a = catalog.get(L8).arch
    e = est(L8, "qlora")
    non_linear = a.param_count() - a.linear_params
    expected = a.linear_params * NF4_BYTES_DQ + non_linear * 2
    assert e.weights == pytest.approx(expected, rel=1e-6)
    assert NF4_BYTES_DQ == pytest.approx(0.516, abs=0.002)
    no_dq = estimate(L8, settings_for_method("qlora", double_quant=False, **COURSE))
    assert no_dq.weights > e.weights


def test_full_ft_bytes_per_param(est) -> None:
    p = catalog.get(L8).params
    master = est(L8, "full")
    assert master.weights == 4 * p and master.gradients == 4 * p and master.optimizer == 8 * p
    pure = est(L8, "full", master_weights=False)
    assert pure.weights == 2 * p and pure.gradients == 2 * p and pure.optimizer == 4 * p
    eight = est(L8, "full", optimizer="adamw_8bit")
    paged = est(L8, "full", optimizer="paged_adamw_8bit")
    assert eight.optimizer == paged.optimizer < master.optimizer / 3.5


def test_optimizer_bytes_cover_every_optimizer() -> None:
    assert tuple(OPT_BYTES) == OPTIMIZERS


@pytest.mark.parametrize(
    ("field", "small", "large"),
    [
        ("max_length", 1024, 4096),
        ("micro_batch", 1, 4),
        ("gradient_checkpointing", True, False),
        ("lora_r", 8, 128),
    ],
)
def test_monotonic_in_the_settings(field: str, small, large, est) -> None:
    lo = est(L8, "lora", **{field: small})
    hi = est(L8, "lora", **{field: large})
    assert hi.total > lo.total


def test_methods_are_ordered(est) -> None:
    q, lo, d, f = (est(L8, m) for m in ("qlora", "lora", "dora", "full"))
    assert q.total < lo.total < d.total < f.total
    rs = est(L8, "rslora")
    assert rs.total == lo.total  # rsLoRA only changes the scaling
    assert d.params_trainable > lo.params_trainable  # magnitude vectors


def test_checkpointing_changes_activations_not_weights(est) -> None:
    on, off = est(L8, "lora"), est(L8, "lora", gradient_checkpointing=False)
    assert on.weights == off.weights and off.activations > 3 * on.activations


def test_preference_objectives(est) -> None:
    sft = est(L8, "lora")
    dpo = est(L8, "lora", objective="dpo")
    assert dpo.settings.resolved_reference == "adapter_disabled" and dpo.reference == 0
    assert dpo.activations > sft.activations  # chosen + rejected
    copy = est(L8, "lora", objective="dpo", reference="copy")
    assert copy.reference == copy.weights
    pre = est(L8, "lora", objective="dpo", reference="precompute")
    assert pre.reference == 0
    full_dpo = est(L8, "full", objective="dpo")
    assert full_dpo.settings.resolved_reference == "copy" and full_dpo.reference == full_dpo.weights
    for obj in ("simpo", "orpo"):
        e = est(L8, "lora", objective=obj)
        assert e.reference == 0 and e.settings.resolved_reference == "none"
        assert e.activations > dpo.activations  # they materialise full logits
    kto = est(L8, "lora", objective="kto", micro_batch=2)
    assert kto.settings.resolved_reference == "adapter_disabled"
    assert any("KTO" in n for n in est(L8, "lora", objective="kto").notes)
    reward = est(L8, "lora", objective="reward")
    assert reward.reference == 0
