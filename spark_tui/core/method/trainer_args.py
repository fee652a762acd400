"""The keyword arguments of the TRL config for each objective, and the steps a run takes.

Also the settings that depend on the hardware and on what is installed here:
the transformers optimizer name (8-bit AdamW needs CUDA and bitsandbytes), the
trackers to report to (a missing package is skipped with a note for the log),
the logging cadence and the data loader (a GPU step is cheap enough that a log
or a host-side collate every step shows), and Liger's fused kernels.
"""

from __future__ import annotations

import importlib.util
import math
import os
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


# On a GPU each log reads the loss back from the device (a sync that stalls the
# queued kernels): log at most every this many steps there, ~100 points per run.
GPU_LOG_EVERY_MAX = 10
GPU_LOG_POINTS = 100


def logging_every(cfg: RunConfig, device: str, total_steps: int) -> int:
    """train.logging_steps, with 0 ("auto") resolved: every step on a CPU, sparser on a GPU."""
    if cfg.train.logging_steps > 0:
        return cfg.train.logging_steps
    if device != "cuda":
        return 1
    return max(1, min(GPU_LOG_EVERY_MAX, total_steps // GPU_LOG_POINTS))


def checkpointing_default(cfg: RunConfig) -> bool:
    """Whether a run checkpoints when no memory estimate decided "auto" (then: on, the safe side)."""
    return cfg.train.gradient_checkpointing != "off"


def dataloader_kwargs(hw: Hardware) -> dict[str, Any]:
    """Loader workers and pinned memory on a GPU; none on a CPU, where workers compete with the step.

    Rows are tokenized before training, so a worker only collates and pads; two
    (four on a big host) keep the next batch ready while the GPU computes.
    """
    if hw.device != "cuda":
        return {"dataloader_num_workers": 0, "dataloader_pin_memory": False}
    workers = 4 if (os.cpu_count() or 1) >= 16 else 2
    return {
        "dataloader_num_workers": workers,
        "dataloader_pin_memory": True,
        "dataloader_persistent_workers": True,
        "dataloader_prefetch_factor": 2,
    }


def liger_choice(cfg: RunConfig, hw: Hardware, model_type: str | None) -> tuple[bool, str]:
    """(use Liger, note).  Liger's Triton kernels (fused linear cross-entropy, RMSNorm,
    RoPE, SwiGLU) cut SFT memory and time on a CUDA GPU; only for the model
    types liger-kernel patches, and only for SFT (TRL's preference trainers
    use their own Liger losses with other limits)."""
    if not cfg.train.liger_kernel or hw.device != "cuda" or cfg.method.objective != "sft":
        return False, ""
    if importlib.util.find_spec("liger_kernel") is None:
        return False, "Liger kernels: not installed (`pip install liger-kernel` speeds up SFT on a GPU)"
    try:
        from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    except Exception as exc:  # a liger-kernel that moved its table
        return False, f"Liger kernels: not used ({type(exc).__name__}: {exc})"
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        return False, f"Liger kernels: no kernels for model type {model_type!r}; not used"
    return True, "Liger kernels on (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU)"


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
    checkpointing: bool | None = None,
    total_steps: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the TRL config of `cfg.method.objective`.

    `checkpointing`: what the memory estimate decided for "auto" (None: on
    unless the config says "off").  `total_steps`: for the GPU logging cadence.
    """
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

    gc = checkpointing_default(cfg) if checkpointing is None else checkpointing
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
        # DDP (a launched run): every trainable parameter takes part in each forward, so
        # no extra pass over the graph looking for unused ones (torch warns when it finds none).
        "ddp_find_unused_parameters": False,
        "gradient_checkpointing": gc,
        "gradient_checkpointing_kwargs": {"use_reentrant": False} if gc else None,
        "seed": t.seed,
        "data_seed": t.seed,
        "logging_strategy": "steps",
        "logging_steps": logging_every(cfg, hw.device, total_steps or 0),
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
        **dataloader_kwargs(hw),
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
