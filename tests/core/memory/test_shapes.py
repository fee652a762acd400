"""Model shapes: the parameters LoRA adds on each architecture, and unknown target modules."""

from __future__ import annotations

import pytest

from spark_tui.core.base.errors import SparkError
from spark_tui.core.model import catalog

L8 = "meta-llama/Llama-3.1-8B-Instruct"


def test_lora_adapter_count_matches_peft_formula(est) -> None:
    a = catalog.get(L8).arch
    h, i, kv = a.hidden_size, a.intermediate_size, a.kv_dim
    per_layer = 16 * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + i) + (i + h))
    e = est(L8, "lora", lora_r=16)
    assert e.params_trainable == a.num_layers * per_layer
    assert e.adapters == 4 * e.params_trainable  # fp32 adapters
    attn = est(L8, "lora", target_modules="attention")
    assert attn.params_trainable == a.num_layers * 16 * (2 * (h + h) + 2 * (h + kv))
    assert est(L8, "lora", lora_r=64).params_trainable == 4 * e.params_trainable
    listed = est(L8, "lora", target_modules="q_proj,v_proj")
    assert listed.params_trainable == a.num_layers * 16 * ((h + h) + (h + kv))


def test_phi3_fused_projections(est) -> None:
    a = catalog.get("microsoft/Phi-3.5-mini-instruct").arch
    h, i = a.hidden_size, a.intermediate_size
    e = est("microsoft/Phi-3.5-mini-instruct", "lora")
    per_layer = 16 * ((h + 3 * h) + (h + h) + (h + 2 * i) + (i + h))
    assert e.params_trainable == a.num_layers * per_layer


def test_unknown_target_module(est) -> None:
    with pytest.raises(SparkError, match="target module"):
        est(L8, "lora", target_modules="not_a_layer")
