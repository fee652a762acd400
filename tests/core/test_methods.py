"""Config -> PEFT / bitsandbytes / TRL objects (no training here: these are fast)."""

from __future__ import annotations

import dataclasses

import pytest

from spark_tui.config import RunConfig, known_keys
from spark_tui.core import methods, trl_compat
from spark_tui.core.errors import SparkError

CPU = methods.Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
GPU_BF16 = methods.Hardware(
    device="cuda", name="GB10", bf16=True, fp16=True, cuda_capability=(12, 1)
)
GPU_OLD = methods.Hardware(device="cuda", name="T4", bf16=False, fp16=True, cuda_capability=(7, 5))


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


def _cfg(objective: str = "sft", method: str = "lora") -> RunConfig:
    cfg = RunConfig()
    cfg.method.objective = objective  # type: ignore[assignment]
    methods.apply_method(cfg, method)
    return cfg


# --------------------------------------------------------------------------- choices and help


@pytest.mark.parametrize(
    ("method", "adapter", "dora", "rslora"),
    [
        ("full", "full", False, False),
        ("lora", "lora", False, False),
        ("qlora", "qlora", False, False),
        ("dora", "lora", True, False),
        ("rslora", "lora", False, True),
    ],
)
def test_apply_method(method, adapter, dora, rslora):
    cfg = _cfg(method=method)
    assert (cfg.method.adapter, cfg.method.use_dora, cfg.method.use_rslora) == (
        adapter,
        dora,
        rslora,
    )


def test_unknown_method_names_the_choices():
    with pytest.raises(SparkError, match="full, lora, qlora, dora, rslora"):
        methods.apply_method(RunConfig(), "lorra")


def test_every_method_setting_has_a_one_line_help():
    for key in known_keys():
        section = key.split(".")[0]
        if section in ("method", "lora", "train", "preference"):
            text = methods.help_for(key)
            assert text, f"no help for {key}"
            assert "\n" not in text and len(text) < 120, key
    for table in (methods.OBJECTIVES, methods.ADAPTERS, methods.PRECISIONS, methods.OPTIMIZERS):
        assert table and all(table.values())


def test_course_preset_matches_the_course():
    cfg = methods.apply_preset(RunConfig(), "course")
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 32, 0.05)
    assert cfg.train.learning_rate == 2e-4
    assert cfg.train.epochs == 3.0 and cfg.train.max_steps == -1
    assert cfg.train.warmup_ratio == 0.03


def test_presets_are_valid_and_distinct():
    quick = methods.apply_preset(RunConfig(), "quick")
    best = methods.apply_preset(RunConfig(), "max_quality")
    assert 0 < quick.train.max_steps <= 100
    assert best.lora.r > quick.lora.r and best.method.use_dora
    assert set(methods.PRESETS) == {"quick", "course", "max_quality"}
    # Full fine-tuning gets a full-fine-tuning learning rate.
    full = _cfg(method="full")
    assert methods.apply_preset(full, "course").train.learning_rate < 1e-4
    with pytest.raises(SparkError, match="quick, course, max_quality"):
        methods.apply_preset(RunConfig(), "fastest")


def test_supported_objectives_follow_the_data():
    pairs = methods.supported_objectives({"format": {"format": "preference"}})
    assert all(pairs[o] == "" for o in ("dpo", "simpo", "orpo", "reward"))
    chat = methods.supported_objectives("messages")
    assert chat["sft"] == "" and chat["dpo"] and chat["kto"]
    kto = methods.supported_objectives("kto")
    assert kto["kto"] == "" and kto["dpo"]
    assert set(methods.supported_objectives(None).values()) == {""}


def test_combinations_that_cannot_train_are_refused():
    cfg = _cfg("dpo")
    cfg.method.adapter = "prompt_tuning"
    with pytest.raises(SparkError, match="SFT only"):
        methods.check_combination(cfg)
    cfg = _cfg(method="full")
    cfg.method.use_dora = True
    with pytest.raises(SparkError, match="DoRA"):
        methods.check_combination(cfg)


# --------------------------------------------------------------------------- hardware


def test_precision_by_hardware():
    assert methods.choose_precision("auto", CPU) == "fp32"
    assert methods.choose_precision("auto", GPU_BF16) == "bf16"
    assert methods.choose_precision("auto", GPU_OLD) == "fp16"
    with pytest.raises(SparkError, match="fp16.*GPU"):
        methods.choose_precision("fp16", CPU)
    with pytest.raises(SparkError, match="bf16"):
        methods.choose_precision("bf16", GPU_OLD)


def test_optimizer_names():
    cfg = RunConfig()
    # Plain AdamW is transformers' default kernel (fused from torch 2.8: what a plain script gets).
    from transformers import TrainingArguments

    plain = TrainingArguments(output_dir="/tmp/x").optim
    assert methods.optimizer_name(cfg, GPU_BF16) == (str(getattr(plain, "value", plain)), "")
    cfg.train.optimizer = "paged_adamw_8bit"
    assert methods.optimizer_name(cfg, GPU_BF16)[0] == "paged_adamw_8bit"
    cfg.train.optimizer = "adamw_8bit"
    assert methods.optimizer_name(cfg, GPU_BF16)[0] == "adamw_bnb_8bit"
    name, note = methods.optimizer_name(cfg, CPU)
    assert name.startswith("adamw_torch") and "CUDA" in note


def test_report_to_only_when_installed(monkeypatch):
    cfg = RunConfig()
    assert methods.report_to(cfg) == ([], "")
    cfg.train.report_to = "wandb"
    monkeypatch.setattr(methods.importlib.util, "find_spec", lambda name: None)
    reporters, note = methods.report_to(cfg)
    assert reporters == [] and "not installed" in note


def test_qlora_bnb_config():
    import torch

    cfg = _cfg(method="qlora")
    q = methods.bnb_config(cfg, GPU_BF16, "bf16")
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    assert methods.bnb_config(cfg, GPU_OLD, "fp16").bnb_4bit_compute_dtype == torch.float16
    assert methods.bnb_config(cfg, CPU, "fp32").bnb_4bit_compute_dtype == torch.float32
    assert methods.bnb_config(_cfg(method="lora"), GPU_BF16, "bf16") is None


# --------------------------------------------------------------------------- PEFT


def test_target_modules(tiny_llama):
    assert methods.resolve_target_modules("attention", tiny_llama) == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert methods.resolve_target_modules("all-linear", tiny_llama) == "all-linear"
    assert methods.resolve_target_modules("q_proj, v_proj", tiny_llama) == ["q_proj", "v_proj"]
    with pytest.raises(SparkError, match="does not have.*down_proj"):
        methods.resolve_target_modules("q_proj,query", tiny_llama)
    assert "lm_head" not in methods.linear_module_names(tiny_llama)


@pytest.mark.parametrize("method", ["lora", "dora", "rslora", "qlora"])
def test_lora_config(method, tiny_llama):
    import peft

    cfg = _cfg(method=method)
    cfg.lora.target_modules = "attention"
    pc = methods.build_peft_config(cfg, tiny_llama)
    assert isinstance(pc, peft.LoraConfig)
    assert (pc.r, pc.lora_alpha, pc.lora_dropout) == (16, 32, 0.05)
    assert pc.use_dora == (method == "dora") and pc.use_rslora == (method == "rslora")
    assert set(pc.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert str(pc.task_type) in ("CAUSAL_LM", "TaskType.CAUSAL_LM")


def test_reward_model_gets_a_seq_cls_adapter(tiny_llama):
    pc = methods.build_peft_config(_cfg("reward"), tiny_llama)
    assert str(pc.task_type) in ("SEQ_CLS", "TaskType.SEQ_CLS")
    assert methods.build_peft_config(_cfg(method="full"), tiny_llama) is None


@pytest.mark.parametrize("adapter", ["prompt_tuning", "prefix_tuning", "adalora", "ia3"])
def test_other_peft_methods_train_a_step(adapter, tiny_llama):
    """Each builds a PEFT model whose trainable parameters get gradients."""
    import copy

    import peft
    import torch

    cfg = RunConfig()
    cfg.method.adapter = adapter  # type: ignore[assignment]
    cfg.lora.num_virtual_tokens = 4
    pc = methods.build_peft_config(cfg, tiny_llama, total_steps=10)
    model = peft.get_peft_model(copy.deepcopy(tiny_llama), pc)
    ids = torch.randint(0, 64, (2, 8))
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)


# --------------------------------------------------------------------------- TRL


@pytest.mark.parametrize("objective", ["sft", "dpo", "simpo", "orpo", "kto", "reward"])
def test_trl_config_for_each_objective(objective, tmp_path):
    cfg = _cfg(objective)
    cfg.train.neftune_alpha = 5.0
    cfg.train.max_steps = 3
    notes: list[str] = []
    kw = methods.trainer_kwargs(
        cfg, output_dir=tmp_path, hw=CPU, precision="fp32", has_eval=False, notes=notes
    )
    classes = trl_compat.trainer_classes(objective)
    args = trl_compat.make_config(classes, **kw)
    assert args.max_steps == 3 and args.neftune_noise_alpha == 5.0
    assert args.bf16 is False and args.fp16 is False and args.use_cpu
    assert args.logging_nan_inf_filter is False
    assert args.report_to in ([], "none", ["none"]) or not args.report_to
    if objective == "simpo":
        assert classes.trainer.__name__ == "CPOTrainer"
        assert args.loss_type == "simpo" and args.cpo_alpha == 0.0
        assert args.simpo_gamma == pytest.approx(cfg.preference.simpo_gamma * cfg.preference.beta)
    if objective == "orpo":
        assert classes.trainer.__name__ == "ORPOTrainer"
        assert args.beta == cfg.preference.orpo_lambda
    if objective == "dpo":
        assert args.beta == cfg.preference.beta
    if objective == "kto":
        assert args.desirable_weight == 1.0 and args.undesirable_weight == 1.0


def test_kto_batch_is_raised_to_two(tmp_path):
    cfg = _cfg("kto")
    cfg.train.micro_batch_size = 1
    notes: list[str] = []
    kw = methods.trainer_kwargs(
        cfg, output_dir=tmp_path, hw=CPU, precision="fp32", has_eval=False, notes=notes
    )
    assert kw["per_device_train_batch_size"] == 2
    assert any("KTO needs at least 2" in n for n in notes)


def test_trl_compat_names_the_version_when_an_api_moved(monkeypatch):
    monkeypatch.setitem(
        trl_compat._LOCATIONS, "orpo", [("trl.nowhere", "ORPOTrainer", "ORPOConfig")]
    )
    with pytest.raises(trl_compat.TRLCompatError, match=r"TRL \d"):
        trl_compat.trainer_classes("orpo")
    assert trl_compat.available_objectives()["orpo"]
    assert trl_compat.available_objectives()["sft"] == ""


def test_trl_configs_take_our_arguments():
    """Every argument we pass exists in this TRL (make_config would drop it otherwise)."""
    cfg = _cfg("sft")
    for objective in ("sft", "dpo", "simpo", "orpo", "kto", "reward"):
        cfg.method.objective = objective  # type: ignore[assignment]
        kw = methods.trainer_kwargs(
            cfg, output_dir="/tmp/x", hw=CPU, precision="fp32", has_eval=True
        )
        known = {f.name for f in dataclasses.fields(trl_compat.trainer_classes(objective).config)}
        assert set(kw) <= known, (objective, set(kw) - known)
