"""The keyword arguments of the TRL config for each objective, and the steps a run takes.

Also the settings that depend on what is installed here: the transformers
optimizer name (8-bit AdamW needs CUDA and bitsandbytes) and the trackers to
report to (a missing package is skipped with a note for the log).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.method.choices import MethodError
from spark_tui.core.method.precision import Hardware, choose_attention, packing_note

# Our train.optimizer values -> transformers' optim names.
OPTIMIZER_NAMES = {
    "adamw": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
}
_REPORT_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def optimizer_name(cfg: RunConfig, hw: Hardware) -> tuple[str, str]:
    """(transformers optim name, note for the log).  8-bit optimizers need CUDA: CPU falls back."""
    name = OPTIMIZER_NAMES[cfg.train.optimizer]
    if name == "adamw_torch":
        return _plain_adamw(), ""
    if hw.device != "cuda":
        return (
            _plain_adamw(),
            f"train.optimizer = '{cfg.train.optimizer}' needs a CUDA GPU (bitsandbytes); "
            "using plain AdamW on this machine",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodError(
            f"train.optimizer = '{cfg.train.optimizer}' needs the 'bitsandbytes' package; "
            "install it or choose 'adamw'"
        )
    return name, ""


def _plain_adamw() -> str:
    """transformers' own default AdamW: the fused kernel from torch 2.8 (measurably faster)."""
    try:
        import dataclasses

        from transformers import TrainingArguments

        default = next(
            f.default for f in dataclasses.fields(TrainingArguments) if f.name == "optim"
        )
        name = str(getattr(default, "value", default))
        if name.startswith("adamw_torch"):
            return name
    except Exception:  # pragma: no cover - transformers missing or reshaped
        pass
    return "adamw_torch"


def report_to(cfg: RunConfig) -> tuple[list[str], str]:
    """(report_to list, note).  A tracker whose package is missing is skipped with a note."""
    choice = cfg.train.report_to
    if choice == "none":
        return [], ""
    pkg = _REPORT_PACKAGES[choice]
    if importlib.util.find_spec(pkg) is None:
        return [], f"train.report_to = '{choice}' but the '{pkg}' package is not installed; skipped"
    return [choice], ""


def estimate_total_steps(cfg: RunConfig, n_train_rows: int) -> int:
    """Optimizer steps the run will take (max_steps, or epochs x batches)."""
    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    batches = math.ceil(n_train_rows / cfg.train.micro_batch_size)
    per_epoch = max(1, batches // cfg.train.grad_accum)
    return max(1, math.ceil(cfg.train.epochs * per_epoch))


def trainer_kwargs(
    cfg: RunConfig,
    *,
    output_dir: str | Path,
    hw: Hardware,
    precision: str,
    has_eval: bool,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the TRL config of `cfg.method.objective`."""
    notes = notes if notes is not None else []
    t = cfg.train
    p = cfg.preference
    obj = cfg.method.objective
    optim, note = optimizer_name(cfg, hw)
    if note:
        notes.append(note)
    reporters, note = report_to(cfg)
    if note:
        notes.append(note)

    batch = t.micro_batch_size
    if obj == "kto" and batch < 2:
        notes.append(
            "KTO needs at least 2 rows per device batch (it estimates the KL term from "
            "mismatched pairs in the batch); micro_batch_size raised from 1 to 2"
        )
        batch = 2

    gc = t.gradient_checkpointing
    if gc and cfg.method.adapter in ("prefix_tuning", "prompt_tuning"):
        notes.append(
            "gradient checkpointing is off for prompt/prefix tuning (PEFT does not support it)"
        )
        gc = False

    kw: dict[str, Any] = {
        "output_dir": str(output_dir),
        "max_steps": t.max_steps if t.max_steps > 0 else -1,
        "num_train_epochs": t.epochs,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.scheduler,
        # transformers 5: warmup_steps takes a ratio when below 1 (warmup_ratio is gone).
        "warmup_steps": min(t.warmup_ratio, 0.999) if t.scheduler != "constant" else 0.0,
        "per_device_train_batch_size": batch,
        "per_device_eval_batch_size": batch,
        "gradient_accumulation_steps": t.grad_accum,
        "optim": optim,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": hw.device == "cpu",
        "gradient_checkpointing": gc,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if gc else None,
        "seed": t.seed,
        "data_seed": t.seed,
        "logging_strategy": "steps",
        "logging_steps": t.logging_steps,
        "logging_first_step": True,
        # Report NaN/inf losses as they are (the default averages them away and
        # would hide a diverging run from our guard).
        "logging_nan_inf_filter": False,
        "eval_strategy": "steps" if (has_eval and t.eval_steps > 0) else "no",
        "eval_steps": t.eval_steps if t.eval_steps > 0 else None,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        # Our own rotation keeps train.save_total_limit *verified* checkpoints
        # (core/train/checkpoints.rotate, from the callbacks' on_save): the trainer's
        # would keep the newest ones even when they were saved after the loss went NaN.
        "save_total_limit": None,
        "save_only_model": False,
        "report_to": reporters,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "neftune_noise_alpha": t.neftune_alpha if t.neftune_alpha > 0 else None,
        "max_length": cfg.data.max_length,
        "dataset_num_proc": None,
    }
    if obj == "sft":
        note = packing_note(choose_attention(hw, precision)) if t.packing else ""
        if note:
            notes.append(note)
        kw["packing"] = t.packing and not note
        if t.group_by_length and not kw["packing"] and batch * t.grad_accum > 1:
            # transformers' LengthGroupedSampler: batches of similar-length rows (the
            # order between groups stays random), so little of each batch is padding.
            kw["train_sampling_strategy"] = "group_by_length"
    if obj == "dpo":
        kw["beta"] = p.beta
        if p.reference == "precompute":
            kw["precompute_ref_log_probs"] = True
    if obj in ("simpo", "orpo"):
        kw["remove_unused_columns"] = False  # their collator needs the raw columns
    if obj == "simpo":
        kw.update(loss_type="simpo", cpo_alpha=0.0, beta=p.simpo_beta, simpo_gamma=p.simpo_gamma)
    elif obj == "orpo":
        kw["beta"] = p.orpo_lambda
    elif obj == "kto":
        kw.update(
            beta=p.beta,
            desirable_weight=p.kto_desirable_weight,
            undesirable_weight=p.kto_undesirable_weight,
        )
        if p.reference == "precompute":
            kw["precompute_ref_log_probs"] = True
    if t.packing and obj != "sft":
        notes.append("packing applies to SFT only; ignored for " + obj)
    for key in [k for k, v in kw.items() if v is None]:
        del kw[key]
    return kw


def tracker_env(cfg: RunConfig, run_dir: Path) -> dict[str, str]:
    """Environment for the trackers: TensorBoard writes into <run>/tensorboard.

    transformers 5 has no `logging_dir` argument any more; its TensorBoard
    callback reads TENSORBOARD_LOGGING_DIR (otherwise it writes under the
    checkpoints folder, where nobody looks and save_total_limit never prunes).
    """
    if cfg.train.report_to != "tensorboard":
        return {}
    return {"TENSORBOARD_LOGGING_DIR": str(Path(run_dir) / names.TENSORBOARD_DIR)}
