"""What a hand-off needs to know beyond run.toml, and the settings both tools share.

Three facts decide what a run trains with (`RunFacts`): the precision its
hardware resolved "auto" to, the chat template its tokenizer renders (with that
template's built-in system prompt), and the number of prepared rows (which turns
the trainer's warmup ratio into steps).  The helpers here compute what both
LLaMA-Factory and Axolotl are given from them, the same way the trainer does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.data.templates import TEMPLATES
from spark_tui.core.method.peft_config import ATTENTION_NAMES
from spark_tui.core.method.trainer_args import (
    OPTIMIZER_NAMES,
    checkpointing_default,
    estimate_total_steps,
    logging_every,
)
from spark_tui.core.model.resolve import DEFAULT_HUB_ID, DEFAULT_MODEL_ID
from spark_tui.core.review.handoff_rows import default_system_prompt, layout_of, template_family

PRECISIONS = ("bf16", "fp16", "fp32")
CHECKPOINTING_NOTE = (
    "train.gradient_checkpointing = 'auto': spark-tui turns it off when the run fits "
    "without it; this tool is given it on (set it off where memory allows: faster)"
)
LIGER_NOTE = {
    "llamafactory": "train.liger_kernel: spark-tui uses Liger kernels for SFT on a GPU when "
    "liger-kernel is installed; here that is enable_liger_kernel: true (not set)",
    "axolotl": "train.liger_kernel: spark-tui uses Liger kernels for SFT on a GPU when "
    "liger-kernel is installed; here that is the axolotl.integrations.liger.LigerPlugin (not set)",
}
PACKING_NOTE = (
    "train.packing: spark-tui packs only where FlashAttention runs (elsewhere it trains "
    "unpacked); this tool packs wherever it is set"
)

# The run.toml settings both tools take as they are: (setting, LLaMA-Factory key, Axolotl key).
_SHARED_KEYS: tuple[tuple[str, str | None, str | None], ...] = (
    ("data.max_length", "cutoff_len", "sequence_len"),
    ("train.grad_accum", "gradient_accumulation_steps", "gradient_accumulation_steps"),
    ("train.epochs", "num_train_epochs", "num_epochs"),
    ("train.scheduler", "lr_scheduler_type", "lr_scheduler"),
    ("train.learning_rate", "learning_rate", "learning_rate"),
    ("train.save_steps", "save_steps", "save_steps"),
    ("train.save_total_limit", "save_total_limit", "save_total_limit"),
    ("train.seed", "seed", "seed"),
)

# Model-name hints -> LLaMA-Factory template, for when the chat template itself is not known.
_LF_NAME_HINTS = (
    ("llama-3", "llama3"),
    ("llama3", "llama3"),
    ("mistral", "mistral"),
    ("qwen", "qwen"),
    ("gemma", "gemma"),
    ("phi-3", "phi"),
    ("tinyllama", "zephyr"),
    ("smollm", "chatml"),
    ("llama-2", "llama2"),
)


@dataclass
class RunFacts:
    """What a run trains with beyond run.toml; None where it is not known (yet)."""

    precision: str | None = None  # "bf16" | "fp16" | "fp32" as trained
    template: str | None = None  # the chat template text the run renders with
    default_system: str | None = None  # that template's built-in system prompt ("" = none)
    train_rows: int | None = None
    eval_rows: int = 0
    text: bool = False  # plain-text rows (no chat template applies)


def base_model(cfg: RunConfig) -> str:
    # The bundled default is a local conversion of a public Hub model: other tools
    # on other machines should fetch the original.
    return DEFAULT_HUB_ID if cfg.model.id in ("", DEFAULT_MODEL_ID) else cfg.model.id


def lora_targets(cfg: RunConfig) -> list[str] | str:
    t = cfg.lora.target_modules.strip()
    if t == "all-linear":
        return "all"
    if t == "attention":
        return list(ATTENTION_NAMES[0])
    return [m.strip() for m in t.split(",") if m.strip()]


def trained_precision(cfg: RunConfig, precision: str | None = None) -> str | None:
    """The precision the run trains in: the resolved one when given, else an explicit setting."""
    if precision in PRECISIONS:
        return precision
    return None if cfg.train.precision == "auto" else cfg.train.precision


def batch_size(cfg: RunConfig) -> int:
    # The trainer raises KTO's batch to 2 (its KL estimate needs mismatched pairs in a batch).
    mbs = cfg.train.micro_batch_size
    return max(mbs, 2) if cfg.method.objective == "kto" else mbs


def total_steps(cfg: RunConfig, facts: RunFacts) -> int | None:
    """Optimizer steps of the run, when known (max_steps, or epochs over the prepared rows)."""
    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    if not facts.train_rows:
        return None
    return estimate_total_steps(
        cfg.with_value("train.micro_batch_size", batch_size(cfg)), facts.train_rows
    )


def warmup_steps(cfg: RunConfig, facts: RunFacts) -> int | None:
    """The warmup in steps as transformers computes it from the trainer's ratio (None: unknown)."""
    if cfg.train.scheduler == "constant":
        return 0
    total = total_steps(cfg, facts)
    if total is None:
        return None
    return math.ceil(total * min(cfg.train.warmup_ratio, 0.999))


def common_keys(
    cfg: RunConfig, tool: str, facts: RunFacts, notes: list[str]
) -> dict[str, Any]:
    """The `_SHARED_KEYS` settings under the names of `tool`, plus batch, optimizer,
    logging cadence and checkpointing (their "auto" resolved as on a GPU, where these tools run)."""
    out: dict[str, Any] = {}
    for setting, lf_name, axolotl_name in _SHARED_KEYS:
        name = lf_name if tool == "llamafactory" else axolotl_name
        if name is not None:
            out[name] = cfg.get(setting)
    out["logging_steps"] = logging_every(cfg, "cuda", total_steps(cfg, facts) or 1000)
    checkpointing = checkpointing_default(cfg)
    if tool == "llamafactory":
        out["disable_gradient_checkpointing"] = not checkpointing
    else:
        out["gradient_checkpointing"] = checkpointing
    if cfg.train.gradient_checkpointing == "auto":
        notes.append(CHECKPOINTING_NOTE)
    if cfg.train.liger_kernel and cfg.method.objective == "sft":
        notes.append(LIGER_NOTE[tool])
    batch_key = "per_device_train_batch_size" if tool == "llamafactory" else "micro_batch_size"
    out[batch_key] = batch_size(cfg)
    out["optim" if tool == "llamafactory" else "optimizer"] = OPTIMIZER_NAMES[cfg.train.optimizer]
    if cfg.train.max_steps > 0:
        out["max_steps"] = cfg.train.max_steps
    if cfg.train.neftune_alpha > 0:
        out["neftune_noise_alpha"] = cfg.train.neftune_alpha
    if tool == "axolotl" and cfg.method.objective == "sft" and not cfg.train.packing:
        out["group_by_length"] = cfg.train.group_by_length  # as spark-tui batches SFT rows
    return out


def note_unsupported_adapter(cfg: RunConfig, notes: list[str]) -> None:
    if cfg.method.adapter not in ("full", "lora", "qlora"):
        notes.append(
            f"method.adapter = '{cfg.method.adapter}' has no counterpart here; "
            "this file trains LoRA with the run's lora.* settings instead"
        )


def template_text(cfg: RunConfig, facts: RunFacts) -> str | None:
    return TEMPLATES.get(cfg.model.chat_template) or facts.template


def lf_template_name(cfg: RunConfig, facts: RunFacts) -> str:
    if cfg.model.chat_template in ("chatml", "llama3"):
        return cfg.model.chat_template
    family = template_family(facts.template)
    if family:
        return family
    model = base_model(cfg).lower()
    return next((name for needle, name in _LF_NAME_HINTS if needle in model), "chatml")


def system_prompt_for(cfg: RunConfig, facts: RunFacts) -> str | None:
    """The run's system prompt for chats without one: the template's own, else data.system_prompt."""
    if cfg.model.chat_template in ("chatml", "llama3"):
        own: str | None = ""  # spark-tui's ChatML and Llama 3 templates have none
    else:
        own = facts.default_system
    if own:
        return own
    if cfg.data.system_prompt:
        return cfg.data.system_prompt
    return own  # "" (known: none) or None (unknown)


def run_facts(
    cfg: RunConfig,
    rows: list[dict[str, Any]] | None,
    eval_rows: list[dict[str, Any]] | None,
    tokenizer: Any = None,
    precision: str | None = None,
) -> RunFacts:
    """The facts of a run from its prepared rows, its tokenizer (chat template set) and precision."""
    text = bool(rows) and layout_of(rows or []) == "text"
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    return RunFacts(
        precision=precision if precision in PRECISIONS else None,
        template=template if isinstance(template, str) and not text else None,
        default_system=None if text else default_system_prompt(tokenizer),
        train_rows=len(rows) if rows is not None else None,
        eval_rows=len(eval_rows or []),
        text=text,
    )
