"""What the Method step offers, in one place, so the TUI, the CLI and the trainer agree.

The objectives, CLI methods, adapters, precisions, optimizers, schedulers and
trackers with their one-line explanations (the Method screen shows them, the
CLI takes its argparse choices from them), the help line of every setting,
and the rules for which objective/adapter combinations can train.  Nothing
heavy is imported: the CLI and the TUI import this before torch is loaded.
"""

from __future__ import annotations

from typing import Any

from spark_tui.config import METHODS, RunConfig
from spark_tui.core.base.errors import SparkError


class MethodError(SparkError):
    """A method/setting combination that cannot train; the message says what to change."""


OBJECTIVES: dict[str, dict[str, str]] = {
    "sft": {
        "title": "SFT (supervised fine-tuning)",
        "what": "Learn to answer like the examples: next-token loss on the assistant turns.",
        "when": "First stage for a new task, persona or format; needs instruction/chat data.",
        "data": "instructions",
    },
    "dpo": {
        "title": "DPO (direct preference optimization)",
        "what": "Prefer the chosen answer over the rejected one, relative to a frozen reference.",
        "when": "Proven baseline for preference pairs; run it after SFT.",
        "data": "preference",
    },
    "simpo": {
        "title": "SimPO (simple preference optimization)",
        "what": "Length-normalised preference margin with no reference model (TRL's CPO trainer).",
        "when": "Better quality than DPO in the course's numbers, and no reference model.",
        "data": "preference",
    },
    "orpo": {
        "title": "ORPO (odds-ratio preference optimization)",
        "what": "SFT loss plus an odds-ratio penalty on the rejected answer, in one stage.",
        "when": "Least memory and a single stage (no separate SFT): memory-constrained runs.",
        "data": "preference",
    },
    "kto": {
        "title": "KTO (Kahneman-Tversky optimization)",
        "what": "Learn from single answers marked good or bad instead of pairs.",
        "when": "You only have thumbs-up/down feedback, not chosen/rejected pairs.",
        "data": "kto",
    },
    "reward": {
        "title": "Reward model (Bradley-Terry)",
        "what": "Train a scorer that ranks the chosen answer above the rejected one.",
        "when": "You need a reward model for RLHF-style training or for ranking answers.",
        "data": "preference",
    },
}

# CLI --method values -> (adapter, use_dora, use_rslora)
# The same methods as a picker names them (`spark-tui quickstart`), recommended first.
METHOD_TITLES: dict[str, str] = {
    "lora": "LoRA (recommended)",
    "qlora": "QLoRA: 4-bit base, least memory",
    "dora": "DoRA: LoRA with magnitude/direction split",
    "rslora": "rsLoRA: LoRA scaled by alpha/sqrt(r), stable at high ranks",
    "full": "Full fine-tuning: most memory",
}

ADAPTERS: dict[str, str] = {
    "full": "Update every weight: best fit, most memory (weights + gradients + optimizer).",
    "lora": "Train small low-rank adapters beside frozen weights (~0.1-1 % of parameters).",
    "qlora": "LoRA on a 4-bit NF4 base with double quantization: the least memory.",
    "prompt_tuning": "Learn only a few virtual prompt tokens (tiny, weaker than LoRA). SFT only.",
    "prefix_tuning": "Learn key/value prefixes for every layer (tiny). SFT only.",
    "adalora": "LoRA that moves rank to the layers that need it during training. SFT only.",
    "ia3": "Learn per-channel scaling vectors (fewer parameters than LoRA). SFT only.",
}
SFT_ONLY_ADAPTERS = ("prompt_tuning", "prefix_tuning", "adalora", "ia3")

PRECISIONS: dict[str, str] = {
    "auto": "bf16 on GPUs that support it, else fp16 on GPUs, fp32 on CPU.",
    "bf16": "16-bit brain float: half the activation memory, stable (Ampere+, Grace Blackwell).",
    "fp16": "16-bit float with loss scaling: for older GPUs without bf16.",
    "fp32": "Full 32-bit: slowest and largest, always works (the only choice on most CPUs).",
}

OPTIMIZERS: dict[str, str] = {
    "adamw": "AdamW (PyTorch): the standard choice.",
    "adamw_8bit": "AdamW with 8-bit states (bitsandbytes): ~75 % less optimizer memory.",
    "paged_adamw_8bit": "8-bit AdamW whose states page to CPU under memory pressure (QLoRA).",
}

SCHEDULERS: dict[str, str] = {
    "linear": "Decay the learning rate linearly to zero.",
    "cosine": "Cosine decay to zero: the usual default for fine-tuning.",
    "constant": "Keep the learning rate fixed (no warmup).",
    "constant_with_warmup": "Warm up, then keep the learning rate fixed.",
}

CHECKPOINTING: dict[str, str] = {
    "auto": "Only when the run would not fit without it (the Memory step says which).",
    "on": "Always: keeps one tensor per layer, recomputes the rest (~20-30 % slower).",
    "off": "Never: every activation is kept; fastest, most memory.",
}

REPORT_TO: dict[str, str] = {
    "none": "Only spark-tui's own metrics.jsonl.",
    "tensorboard": "Also write TensorBoard event files into the run folder.",
    "wandb": "Also log to Weights & Biases (needs `wandb login`).",
    "mlflow": "Also log to MLflow (uses MLFLOW_TRACKING_URI).",
}

FIELD_HELP: dict[str, str] = {
    "method.objective": "What the model learns from: examples (SFT) or preferences (DPO, SimPO, ORPO, KTO, reward).",
    "method.adapter": "Which weights train: all of them (full) or small adapters (LoRA, QLoRA, ...).",
    "method.use_dora": "DoRA: split each weight into magnitude and direction; +quality, a bit slower.",
    "method.use_rslora": "rsLoRA: scale adapters by alpha/sqrt(r) so high ranks stay stable.",
    "lora.r": "Adapter rank: 8 quick tests, 16 most tasks, 32-64 complex tasks.",
    "lora.alpha": "Adapter scaling; usually 2 x rank.",
    "lora.dropout": "Dropout on the adapter input; 0.05 is typical, 0 for tiny datasets.",
    "lora.target_modules": "Which layers get adapters: attention, all-linear, or a comma list of names.",
    "lora.num_virtual_tokens": "Prompt/prefix tuning: how many virtual tokens to learn.",
    "train.max_steps": "Stop after this many optimizer steps (-1 = train for the given epochs).",
    "train.epochs": "Passes over the training set; 1-3 for fine-tuning.",
    "train.learning_rate": "Step size: 2e-4 for LoRA, 1e-5..5e-5 for full fine-tuning, ~5e-7..5e-6 for DPO.",
    "train.scheduler": "How the learning rate changes over the run.",
    "train.warmup_ratio": "Fraction of steps that ramp the learning rate up from zero (3 %).",
    "train.micro_batch_size": "Rows per forward pass; lower it first when memory runs out.",
    "train.grad_accum": "Micro-batches summed per optimizer step: effective batch = micro x accum.",
    "train.optimizer": "AdamW, or 8-bit AdamW (bitsandbytes, GPU) to save optimizer memory.",
    "train.precision": "Number format for training; auto picks the best the hardware supports.",
    "train.gradient_checkpointing": "Recompute activations in the backward pass: much less memory, ~20-30 % slower; auto = only when needed.",
    "train.packing": "Pack several short examples into one sequence: faster on short rows.",
    "train.group_by_length": "SFT: batch rows of similar length together: little padding, faster.",
    "train.neftune_alpha": "NEFTune: noise on embeddings while training (5-15 helps chat; 0 = off).",
    "train.seed": "Random seed: the same seed and data give the same run.",
    "train.logging_steps": "Write metrics every N steps (0 = auto: every step on a CPU, up to every 10 on a GPU).",
    "train.liger_kernel": "SFT on a CUDA GPU: Liger's fused kernels when liger-kernel is installed (less memory, faster).",
    "train.eval_steps": "Evaluate on the validation set every N steps (0 = at the end only).",
    "train.save_steps": "Save a resumable checkpoint every N steps.",
    "train.save_total_limit": "Keep only the newest N checkpoints.",
    "train.keep_checkpoints": "Keep the checkpoints once a run finishes (off: pruned, only the output stays).",
    "train.report_to": "Also send metrics to TensorBoard, W&B or MLflow (when installed).",
    "data.max_length": "Longest sequence in tokens; longer rows are truncated. Memory grows with it.",
    "preference.beta": "DPO/KTO β: higher stays closer to the reference (0.1: TRL's default, DPO paper).",
    "preference.simpo_beta": "SimPO β, the reward scale (2.0: SimPO paper, the course's SimPOConfig).",
    "preference.simpo_gamma_beta_ratio": "SimPO margin as γ/β; γ = ratio × β (0.5: SimPO paper, course).",
    "preference.orpo_lambda": "ORPO λ, the odds-ratio term's weight vs SFT loss (0.1: ORPO paper, TRL).",
    "preference.kto_desirable_weight": "KTO weight of thumbs-up rows (1.0: KTO paper, TRL); raise if rarer.",
    "preference.kto_undesirable_weight": "KTO weight of thumbs-down rows (1.0: KTO paper, TRL); raise if rarer.",
    "preference.reference": "DPO/KTO reference model: the base with adapters off (PEFT), a copy, or precomputed.",
    "distributed.strategy": "Several processes through accelerate: DDP (a whole copy per GPU, data split) or FSDP (weights, gradients, optimizer sharded; GPUs only).",
    "distributed.processes_per_machine": "Processes on each machine: usually its number of GPUs (a DGX Spark has 1).",
    "distributed.machines": "Machines in the run, e.g. 2 linked DGX Sparks; each runs its own command (Review).",
    "distributed.machine_rank": "This machine's number: 0 is the main one, which writes the run's progress.",
    "distributed.main_address": "Machine 0's address on the link between the machines (the 200 GbE port on a Spark).",
    "distributed.main_port": "A free TCP port on machine 0 that every machine can reach (29500 by default).",
}


def help_for(dotted: str) -> str:
    """The one-line explanation of a setting ("" if none)."""
    return FIELD_HELP.get(dotted, "")


def apply_method(cfg: RunConfig, method: str) -> RunConfig:
    """Set adapter/DoRA/rsLoRA from a CLI --method value (full, lora, qlora, dora, rslora)."""
    try:
        adapter, dora, rslora = METHODS[method]
    except KeyError:
        raise MethodError(
            f"unknown method '{method}'; use one of {', '.join(METHODS)}"
        ) from None
    cfg.method.adapter = adapter  # type: ignore[assignment]
    cfg.method.use_dora = dora
    cfg.method.use_rslora = rslora
    return cfg


# --------------------------------------------------------------------------- which combinations train


def _report_format(report: Any) -> str:
    """The detected format name from a data report (dict or object), a Detection, or a string."""
    if report is None:
        return ""
    if isinstance(report, str):
        return report
    for attr in ("format", "detection", "detected_format"):
        value = report.get(attr) if isinstance(report, dict) else getattr(report, attr, None)
        if isinstance(value, str) and value:
            return value
        if value is not None and value is not report:
            inner = _report_format(value)
            if inner:
                return inner
    return ""


def supported_objectives(report: Any) -> dict[str, str]:
    """Objective -> "" when the prepared data supports it, else the one-line reason it does not.

    `report` is the data report (`PreparedData.report` or its dict), a Detection,
    or a format name; None (no data chosen yet) enables everything.  The rules
    are the Dataset step's (`core.data.fit.method_fit`), so both steps agree.
    """
    fmt = _report_format(report)
    if not fmt:
        return dict.fromkeys(OBJECTIVES, "")
    from spark_tui.core.data.fit import method_fit

    fit = method_fit(fmt)
    return {
        obj: "" if fit.get(obj, {}).get("ok") else fit.get(obj, {}).get("why", "")
        for obj in OBJECTIVES
    }


def check_combination(cfg: RunConfig) -> None:
    """Raise MethodError for objective/adapter/setting combinations that cannot train."""
    obj, adapter = cfg.method.objective, cfg.method.adapter
    if adapter in SFT_ONLY_ADAPTERS and obj != "sft":
        raise MethodError(
            f"method.adapter = '{adapter}' works with SFT only; use lora, qlora or full for {obj}"
        )
    if (cfg.method.use_dora or cfg.method.use_rslora) and adapter not in ("lora", "qlora"):
        raise MethodError(
            "DoRA and rsLoRA are switches on LoRA/QLoRA; set method.adapter to lora or qlora"
        )
