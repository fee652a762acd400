"""Presets ("quick", "course", "max_quality") and the learning rate used when none is named.

A preset is a set of dotted-key changes, shown to the user before it is
applied, and adjusted to the run (full fine-tuning and preference objectives
take smaller learning rates).
"""

from __future__ import annotations

from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.method.choices import MethodError

PRESETS: dict[str, str] = {
    "quick": "Quick test: about 3 minutes on a CPU, r=16, 30 steps — see the model change.",
    "course": "Course defaults: r=16, alpha=32, dropout 0.05, lr 2e-4, 3 epochs, warmup 3 %.",
    "max_quality": "Max quality: r=64 DoRA on all linear layers, lr 1e-4, NEFTune 5, eval every 50 steps.",
}
# The same presets as a picker names them (`spark-tui quickstart`).
PRESET_TITLES: dict[str, str] = {
    "quick": "Quick test: a few minutes",
    "course": "Course defaults: r=16, alpha=32, 3 epochs",
    "max_quality": "Max quality",
}


def preset_quick(cfg: RunConfig | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "lora.r": 16,
        "lora.alpha": 32,
        "lora.dropout": 0.05,
        "train.max_steps": 30,
        "train.epochs": 1.0,
        "train.learning_rate": 2e-4,
        "train.warmup_ratio": 0.03,
        "train.scheduler": "cosine",
        "train.logging_steps": 0,  # auto: every step on a CPU
        "train.eval_steps": 0,
        "train.save_steps": 10,
        "data.max_length": 512,
        # 30 steps see few batches: grouping rows by length makes each batch
        # one kind of row and the model learns less (bench/quick_run.py).
        "train.group_by_length": False,
    }
    if cfg is not None and cfg.method.objective != "sft":
        changes["train.learning_rate"] = _preference_lr(cfg, quick=True)
    elif cfg is not None and cfg.model.id in ("", "default") and cfg.method.adapter != "full":
        # The bundled 135M model barely moves in 30 steps at 2e-4; at 1e-3, r=16
        # and 512 tokens held-out ROUGE-L rises by ~0.15 and the sample persona
        # shows (bench/quick_run.py, RESULTS.md "Quick run").
        changes["train.learning_rate"] = 1e-3
    return changes


def preset_course(cfg: RunConfig | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "lora.r": 16,
        "lora.alpha": 32,
        "lora.dropout": 0.05,
        "train.max_steps": -1,
        "train.epochs": 3.0,
        "train.learning_rate": 2e-4,
        "train.warmup_ratio": 0.03,
        "train.scheduler": "cosine",
    }
    if cfg is not None and cfg.method.adapter == "full":
        changes["train.learning_rate"] = 2e-5
    return changes


def preset_max_quality(cfg: RunConfig | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "lora.r": 64,
        "lora.alpha": 128,
        "lora.dropout": 0.05,
        "lora.target_modules": "all-linear",
        "train.max_steps": -1,
        "train.epochs": 3.0,
        "train.learning_rate": 1e-4,
        "train.warmup_ratio": 0.05,
        "train.scheduler": "cosine",
        "train.grad_accum": 4,
        "train.neftune_alpha": 5.0,
        "train.eval_steps": 50,
        "train.save_steps": 50,
    }
    if cfg is None or cfg.method.adapter in ("lora", "qlora"):
        changes["method.use_dora"] = True
    if cfg is not None and cfg.method.adapter == "full":
        changes["train.learning_rate"] = 1e-5
    return changes


_PRESET_FUNCS = {"quick": preset_quick, "course": preset_course, "max_quality": preset_max_quality}


def preset_changes(name: str, cfg: RunConfig | None = None) -> dict[str, Any]:
    """The dotted-key changes a preset makes (shown to the user before applying)."""
    try:
        return _PRESET_FUNCS[name](cfg)
    except KeyError:
        raise MethodError(f"unknown preset '{name}'; use one of {', '.join(PRESETS)}") from None


def apply_preset(cfg: RunConfig, name: str) -> RunConfig:
    """A copy of `cfg` with a preset's changes applied (validated like a TOML value)."""
    out = cfg
    for key, value in preset_changes(name, cfg).items():
        out = out.with_value(key, value)
    return out


def recommended_learning_rate(cfg: RunConfig) -> float:
    """The learning rate to use when the user named none.

    2e-4 is the course's LoRA default for 7B+ models; the bundled 135M model
    barely moves at that rate in a short run (measured on CPU: held-out
    ROUGE-L 0.13 -> 0.15 at 2e-4, 0.25 at 1e-3), so it gets 1e-3.  Full
    fine-tuning and preference objectives keep their usual smaller rates.
    """
    if cfg.method.objective != "sft":
        return _preference_lr(cfg, quick=False)
    if cfg.method.adapter == "full":
        return 2e-5
    if cfg.model.id in ("", "default"):
        return 1e-3
    return 2e-4


def _preference_lr(cfg: RunConfig, quick: bool) -> float:
    if cfg.method.adapter == "full":
        return 5e-6
    return 5e-5 if not quick else 1e-4
