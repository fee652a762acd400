"""Config -> PEFT and bitsandbytes objects on a tiny random Llama (fast, no training)."""

from __future__ import annotations

import pytest
from method_cases import CPU, GPU_BF16, GPU_OLD
from method_cases import method_cfg as _cfg

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method import peft_config


@pytest.fixture(scope="module")
def tiny_llama():
    """A 2-layer random Llama with the default model's module names (builds in milliseconds)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def test_qlora_bnb_config():
    import torch

    cfg = _cfg(method="qlora")
    q = peft_config.bnb_config(cfg, GPU_BF16, "bf16")
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert peft_config.bnb_config(cfg, GPU_OLD, "fp16").bnb_4bit_compute_dtype == torch.float16
    assert peft_config.bnb_config(cfg, CPU, "fp32").bnb_4bit_compute_dtype == torch.float32
    assert peft_config.bnb_config(_cfg(method="lora"), GPU_BF16, "bf16") is None


def test_target_modules(tiny_llama):
    assert peft_config.resolve_target_modules("attention", tiny_llama) == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert peft_config.resolve_target_modules("all-linear", tiny_llama) == "all-linear"
    assert peft_config.resolve_target_modules("q_proj, v_proj", tiny_llama) == ["q_proj", "v_proj"]
    with pytest.raises(SparkError, match="does not have.*down_proj"):
        peft_config.resolve_target_modules("q_proj,query", tiny_llama)
    assert "lm_head" not in peft_config.linear_module_names(tiny_llama)


@pytest.mark.parametrize("method", ["lora", "dora", "rslora", "qlora"])
def test_lora_config(method, tiny_llama):
    import peft

    cfg = _cfg(method=method)
    cfg.lora.target_modules = "attention"
    pc = peft_config.build_peft_config(cfg, tiny_llama)
    assert isinstance(pc, peft.LoraConfig)
    assert (pc.r, pc.lora_alpha, pc.lora_dropout) == (16, 32, 0.05)
    assert pc.use_dora == (method == "dora") and pc.use_rslora == (method == "rslora")
    assert set(pc.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert str(pc.task_type) in ("CAUSAL_LM", "TaskType.CAUSAL_LM")


def test_reward_model_gets_a_seq_cls_adapter(tiny_llama):
    pc = peft_config.build_peft_config(_cfg("reward"), tiny_llama)
    assert str(pc.task_type) in ("SEQ_CLS", "TaskType.SEQ_CLS")
    assert peft_config.build_peft_config(_cfg(method="full"), tiny_llama) is None


@pytest.mark.parametrize("adapter", ["prompt_tuning", "prefix_tuning", "adalora", "ia3"])
def test_other_peft_methods_train_a_step(adapter, tiny_llama):
    """Each builds a PEFT model whose trainable parameters get gradients."""
    import copy

    import peft
    import torch

    cfg = RunConfig()
    cfg.method.adapter = adapter  # type: ignore[assignment]
    cfg.lora.num_virtual_tokens = 4
    pc = peft_config.build_peft_config(cfg, tiny_llama, total_steps=10)
    model = peft.get_peft_model(copy.deepcopy(tiny_llama), pc)
    ids = torch.randint(0, 64, (2, 8))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


def test_trainable_counts_use_peft_so_4bit_weights_count_whole(tiny_llama):
    """QLoRA's Params4bit holds two 4-bit values per stored element; PEFT's count knows it."""
    import copy

    import torch
    from peft import get_peft_model

    model = get_peft_model(copy.deepcopy(tiny_llama), peft_config.build_peft_config(_cfg(), model=tiny_llama))
    trainable, total = peft_config.trainable_summary(model)
    naive_total = sum(p.numel() for p in model.parameters())
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    assert total == naive_total

    class Params4bit(torch.nn.Parameter):  # the class name PEFT looks for (bitsandbytes')
        pass

    layer = model.base_model.model.model.layers[0].mlp.down_proj.base_layer
    packed = layer.weight.detach().flatten()[: layer.weight.numel() // 2].to(torch.uint8)
    layer.weight = Params4bit(packed.reshape(-1, 1), requires_grad=False)
    _, total_4bit = peft_config.trainable_summary(model)
    assert total_4bit == total  # the packed half is counted as the values it holds
    assert sum(p.numel() for p in model.parameters()) < total_4bit  # where the naive sum falls short
