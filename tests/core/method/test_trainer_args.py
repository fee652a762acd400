"""Config -> the TRL config arguments for each objective, optimizer names and trackers."""

from __future__ import annotations

import dataclasses

import pytest
from method_cases import CPU, GPU_BF16
from method_cases import method_cfg as _cfg

from spark_tui.config import RunConfig
from spark_tui.core.method import trainer_args, trl_compat


def test_optimizer_names():
    cfg = RunConfig()
    # Plain AdamW is transformers' default kernel (fused from torch 2.8: what a plain script gets).
    from transformers import TrainingArguments

    plain = TrainingArguments(output_dir="/tmp/x").optim
    assert trainer_args.optimizer_name(cfg, GPU_BF16) == (str(getattr(plain, "value", plain)), "")
    cfg.train.optimizer = "paged_adamw_8bit"
    assert trainer_args.optimizer_name(cfg, GPU_BF16)[0] == "paged_adamw_8bit"
    cfg.train.optimizer = "adamw_8bit"
    assert trainer_args.optimizer_name(cfg, GPU_BF16)[0] == "adamw_bnb_8bit"
    name, note = trainer_args.optimizer_name(cfg, CPU)
    assert name.startswith("adamw_torch") and "CUDA" in note


def test_report_to_only_when_installed(monkeypatch):
    cfg = RunConfig()
    assert trainer_args.report_to(cfg) == ([], "")
    cfg.train.report_to = "wandb"
    monkeypatch.setattr(trainer_args.importlib.util, "find_spec", lambda name: None)
    reporters, note = trainer_args.report_to(cfg)
    assert reporters == [] and "not installed" in note


@pytest.mark.parametrize("objective", ["sft", "dpo", "simpo", "orpo", "kto", "reward"])
def test_trl_config_for_each_objective(objective, tmp_path):
    cfg = _cfg(objective)
    cfg.train.neftune_alpha = 5.0
    cfg.train.max_steps = 3
    notes: list[str] = []
    kw = trainer_args.trainer_kwargs(
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
        # SimPO's own defaults (paper, course): β 2.0 and γ = 0.5 × β, not DPO's β 0.1.
        assert args.beta == 2.0
        assert args.simpo_gamma == pytest.approx(1.0)
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
    kw = trainer_args.trainer_kwargs(
        cfg, output_dir=tmp_path, hw=CPU, precision="fp32", has_eval=False, notes=notes
    )
    assert kw["per_device_train_batch_size"] == 2
    assert any("KTO needs at least 2" in n for n in notes)


def test_trl_configs_take_our_arguments():
    """Every argument we pass exists in this TRL (make_config would drop it otherwise)."""
    cfg = _cfg("sft")
    for objective in ("sft", "dpo", "simpo", "orpo", "kto", "reward"):
        cfg.method.objective = objective  # type: ignore[assignment]
        kw = trainer_args.trainer_kwargs(
            cfg, output_dir="/tmp/x", hw=CPU, precision="fp32", has_eval=True
        )
        known = {f.name for f in dataclasses.fields(trl_compat.trainer_classes(objective).config)}
        assert set(kw) <= known, (objective, set(kw) - known)


@pytest.mark.parametrize(
    ("objective", "batch", "packing"),
    [("sft", 4, False), ("sft", 1, False), ("sft", 4, True), ("dpo", 4, False)],
)
def test_sft_batches_group_rows_by_length(objective, batch, packing, tmp_path):
    """Length-grouped batches where they cut padding: SFT, more than one row a batch, not
    packed (packing needs FlashAttention; without it the run is grouped instead)."""
    cfg = _cfg(objective)
    cfg.train.micro_batch_size = batch
    cfg.train.packing = packing
    hw, prec = (GPU_BF16, "bf16") if packing else (CPU, "fp32")
    kw = trainer_args.trainer_kwargs(cfg, output_dir=tmp_path, hw=hw, precision=prec, has_eval=False)
    expected = objective == "sft" and batch > 1 and not kw.get("packing")
    assert (kw.get("train_sampling_strategy") == "group_by_length") is expected
    if expected and hw is CPU:  # (a bf16 config cannot be built on a machine without a GPU)
        args = trl_compat.make_config(trl_compat.trainer_classes(objective), **kw)
        assert args.train_sampling_strategy == "group_by_length"
    cfg.train.group_by_length = False
    kw = trainer_args.trainer_kwargs(cfg, output_dir=tmp_path, hw=hw, precision=prec, has_eval=False)
    assert "train_sampling_strategy" not in kw
