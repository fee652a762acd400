"""Suggestions: ranked changes that make a run fit, each applying to the RunConfig."""

from __future__ import annotations

from spark_tui.config import RunConfig
from spark_tui.core.memory.breakdown import GB
from spark_tui.core.memory.estimator import estimate_config
from spark_tui.core.memory.fit import verdict
from spark_tui.core.memory.headroom import STATUS_RANK
from spark_tui.core.memory.suggestions import apply_suggestion, suggest
from spark_tui.core.model import catalog

L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"


def test_suggestions_are_ranked_and_apply_to_the_config(spark_probe) -> None:
    cfg = RunConfig()
    for key, value in {
        "model.id": L8,
        "method.adapter": "full",
        "data.max_length": 2048,
        "train.micro_batch_size": 4,
        "train.grad_accum": 2,
        "train.gradient_checkpointing": False,
        "train.optimizer": "adamw",
    }.items():
        cfg = cfg.with_value(key, value)
    e = estimate_config(cfg, target="unified")
    v = verdict(e, spark_probe())
    assert v.status == "wont_fit"
    sug = v.suggestions
    assert sug, "expected suggestions"
    keys = [s.key for s in sug]
    assert "gradient_checkpointing" in keys and "qlora" in keys and "micro_batch" in keys
    # fitting ones first, then the rest; each cheaper than the current estimate
    statuses = [s.status for s in sug]
    assert statuses == sorted(statuses, key=lambda s: STATUS_RANK[s])
    assert statuses[0] == "fits"
    for s in sug:
        assert s.estimate.total < e.total and s.saves == e.total - s.estimate.total
        new_cfg = apply_suggestion(cfg, s)  # dotted keys are valid RunConfig keys
        again = estimate_config(new_cfg, target="unified")
        assert again.total == s.estimate.total, s.key
    mb = next(s for s in sug if s.key == "micro_batch")
    assert mb.changes["train.micro_batch_size"] * mb.changes["train.grad_accum"] == 8
    assert next(s for s in sug if s.key == "qlora").changes == {"method.adapter": "qlora"}


def test_paged_optimizer_and_shorter_length_suggestions(est) -> None:
    e = est(L8, "full", optimizer="adamw", max_length=8192)
    sug = suggest(e, 120 * GB)
    by = {s.key: s for s in sug}
    assert by["paged_optimizer"].changes == {"train.optimizer": "paged_adamw_8bit"}
    assert by["paged_optimizer"].estimate.optimizer < e.optimizer
    if "max_length" in by:
        assert by["max_length"].changes["data.max_length"] < 8192


def test_smaller_model_and_combined_suggestions(est) -> None:
    e = est(L70, "lora")  # ~150 GB of 16-bit weights
    v = verdict(e, 30 * GB)
    keys = [s.key for s in v.suggestions]
    small = next(s for s in v.suggestions if s.key == "smaller_model")
    entry = catalog.get(small.changes["model.id"])
    assert entry is not None and entry.params < 70e9 and small.status == "fits"
    assert entry.family.split()[0] == "Llama"
    assert "qlora" in keys


def test_reference_copy_suggestion(est) -> None:
    e = est(L8, "lora", objective="dpo", reference="copy")
    sug = suggest(e, int(e.total * 0.97))
    ref = next(s for s in sug if s.key == "reference")
    assert ref.changes == {"preference.reference": "adapter_disabled"}
    assert ref.estimate.reference == 0
