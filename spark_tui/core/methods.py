"""Config -> the objects that do the training: PEFT configs, bitsandbytes, TRL trainer configs.

Everything the Method step offers is decided here, so the TUI, the CLI and the
training process agree on what a setting means:

- objectives (SFT, DPO, SimPO, ORPO, KTO, reward model) and which prepared data
  each one accepts (`supported_objectives`);
- adaptation (full, LoRA, QLoRA, DoRA/rsLoRA switches, prompt/prefix tuning,
  AdaLoRA, IA3) -> a PEFT config (`build_peft_config`) and `BitsAndBytesConfig`;
- precision (bf16 / fp16 / fp32 chosen by the hardware), optimizer names;
- the keyword arguments of the TRL config for each objective (`trainer_kwargs`);
- presets ("quick", "course", "max_quality") and one-line help for every field.

torch, transformers and peft are imported inside functions only: the TUI imports
this module to fill its forms before any of them is loaded.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.errors import SparkError


class MethodError(SparkError):
    """A method/setting combination that cannot train; the message says what to change."""


# --------------------------------------------------------------------------- choices + help

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
METHOD_CHOICES: dict[str, tuple[str, bool, bool]] = {
    "full": ("full", False, False),
    "lora": ("lora", False, False),
    "qlora": ("qlora", False, False),
    "dora": ("lora", True, False),
    "rslora": ("lora", False, True),
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
_OPTIMIZER_NAMES = {
    "adamw": "adamw_torch",
    "adamw_8bit": "adamw_bnb_8bit",
    "paged_adamw_8bit": "paged_adamw_8bit",
}

SCHEDULERS: dict[str, str] = {
    "linear": "Decay the learning rate linearly to zero.",
    "cosine": "Cosine decay to zero: the usual default for fine-tuning.",
    "constant": "Keep the learning rate fixed (no warmup).",
    "constant_with_warmup": "Warm up, then keep the learning rate fixed.",
}

REPORT_TO: dict[str, str] = {
    "none": "Only spark-tui's own metrics.jsonl.",
    "tensorboard": "Also write TensorBoard event files into the run folder.",
    "wandb": "Also log to Weights & Biases (needs `wandb login`).",
    "mlflow": "Also log to MLflow (uses MLFLOW_TRACKING_URI).",
}
_REPORT_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}

TARGET_PRESETS: dict[str, str] = {
    "attention": "Attention projections only (q, k, v, o): fewer parameters.",
    "all-linear": "Every linear layer (attention + MLP): the QLoRA paper's choice, best quality.",
}
_ATTENTION_NAMES = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),  # Llama, Mistral, Qwen, Gemma, Phi-3 (o_proj)
    ("query_key_value", "dense"),  # Falcon, GPT-NeoX, Bloom
    ("c_attn", "c_proj"),  # GPT-2
    ("Wqkv", "out_proj"),  # MPT, Phi-2
    ("qkv_proj", "o_proj"),  # Phi-3
)

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
    "train.gradient_checkpointing": "Recompute activations in the backward pass: much less memory, ~20 % slower.",
    "train.packing": "Pack several short examples into one sequence: faster on short rows.",
    "train.neftune_alpha": "NEFTune: noise on embeddings while training (5-15 helps chat; 0 = off).",
    "train.seed": "Random seed: the same seed and data give the same run.",
    "train.logging_steps": "Write metrics every N steps.",
    "train.eval_steps": "Evaluate on the validation set every N steps (0 = at the end only).",
    "train.save_steps": "Save a resumable checkpoint every N steps.",
    "train.save_total_limit": "Keep only the newest N checkpoints.",
    "train.report_to": "Also send metrics to TensorBoard, W&B or MLflow (when installed).",
    "data.max_length": "Longest sequence in tokens; longer rows are truncated. Memory grows with it.",
    "preference.beta": "Preference strength: DPO/KTO 0.1 (higher = stay closer to the reference); SimPO ~2.",
    "preference.simpo_gamma": "SimPO target margin gamma (as the gamma/beta ratio, ~0.5).",
    "preference.orpo_lambda": "ORPO weight of the odds-ratio term against the SFT loss (0.1).",
    "preference.kto_desirable_weight": "KTO weight of thumbs-up rows (raise it if they are rarer).",
    "preference.kto_undesirable_weight": "KTO weight of thumbs-down rows (raise it if they are rarer).",
    "preference.reference": "DPO/KTO reference model: the base with adapters off (PEFT), a copy, or precomputed.",
}


def help_for(dotted: str) -> str:
    """The one-line explanation of a setting ("" if none)."""
    return FIELD_HELP.get(dotted, "")


def apply_method(cfg: RunConfig, method: str) -> RunConfig:
    """Set adapter/DoRA/rsLoRA from a CLI --method value (full, lora, qlora, dora, rslora)."""
    try:
        adapter, dora, rslora = METHOD_CHOICES[method]
    except KeyError:
        raise MethodError(
            f"unknown method '{method}'; use one of {', '.join(METHOD_CHOICES)}"
        ) from None
    cfg.method.adapter = adapter  # type: ignore[assignment]
    cfg.method.use_dora = dora
    cfg.method.use_rslora = rslora
    return cfg


# --------------------------------------------------------------------------- presets

PRESETS: dict[str, str] = {
    "quick": "Quick test: a few minutes, r=8, 30 steps, short sequences — check the pipeline works.",
    "course": "Course defaults: r=16, alpha=32, dropout 0.05, lr 2e-4, 3 epochs, warmup 3 %.",
    "max_quality": "Max quality: r=64 DoRA on all linear layers, lr 1e-4, NEFTune 5, eval every 50 steps.",
}


def preset_quick(cfg: RunConfig | None = None) -> dict[str, Any]:
    changes: dict[str, Any] = {
        "lora.r": 8,
        "lora.alpha": 16,
        "lora.dropout": 0.05,
        "train.max_steps": 30,
        "train.epochs": 1.0,
        "train.learning_rate": 2e-4,
        "train.warmup_ratio": 0.03,
        "train.scheduler": "cosine",
        "train.logging_steps": 1,
        "train.eval_steps": 0,
        "train.save_steps": 10,
        "data.max_length": 256,
    }
    if cfg is not None and cfg.method.objective != "sft":
        changes["train.learning_rate"] = _preference_lr(cfg, quick=True)
    elif cfg is not None and cfg.model.id in ("", "default") and cfg.method.adapter != "full":
        # The bundled 135M model barely moves in 30 steps at 2e-4; at 1e-3 the
        # sample persona shows and held-out ROUGE-L roughly doubles (measured on CPU).
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


# --------------------------------------------------------------------------- data -> objectives


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
    if adapter == "prefix_tuning" and cfg.train.gradient_checkpointing:
        # PEFT's prefix tuning passes past_key_values, which checkpointing drops.
        pass  # handled in trainer_kwargs (checkpointing is turned off with a log note)


# --------------------------------------------------------------------------- hardware + precision


@dataclass
class Hardware:
    """What the training process can use (probed with torch, inside the process)."""

    device: str  # cuda | mps | cpu
    name: str
    bf16: bool
    fp16: bool
    cuda_capability: tuple[int, int] | None = None

    @property
    def is_gpu(self) -> bool:
        return self.device == "cuda"


def detect_hardware() -> Hardware:
    import torch

    if torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(0)
        return Hardware(
            device="cuda",
            name=torch.cuda.get_device_name(0),
            bf16=bool(torch.cuda.is_bf16_supported()),
            fp16=True,
            cuda_capability=(int(cap[0]), int(cap[1])),
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():  # pragma: no cover - macOS only
        return Hardware(device="mps", name="Apple GPU", bf16=False, fp16=True)
    return Hardware(device="cpu", name="CPU", bf16=False, fp16=False)


def choose_precision(requested: str, hw: Hardware) -> str:
    """'bf16' | 'fp16' | 'fp32' for the run; explicit choices the hardware cannot do are errors."""
    if requested == "auto":
        if hw.device == "cuda":
            return "bf16" if hw.bf16 else "fp16"
        return "fp32"
    if requested == "fp16" and hw.device == "cpu":
        raise MethodError("train.precision = 'fp16' needs a GPU; use 'fp32' (or 'auto') on CPU")
    if requested == "bf16" and hw.device == "cuda" and not hw.bf16:
        raise MethodError(f"{hw.name} has no bf16 support; use train.precision = 'fp16' or 'auto'")
    return requested


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_dtype(cfg: RunConfig, precision: str) -> Any:
    """The dtype the base weights are loaded in.

    Full fine-tuning keeps fp32 master weights and autocasts to bf16/fp16 (the
    HF Trainer's mixed precision; also what the memory estimator assumes).
    Adapter runs load a 16-bit frozen base (PEFT keeps the adapters in fp32).
    """
    if cfg.method.adapter == "full" or precision == "fp32":
        return torch_dtype("fp32")
    return torch_dtype(precision)


def optimizer_name(cfg: RunConfig, hw: Hardware) -> tuple[str, str]:
    """(transformers optim name, note for the log).  8-bit optimizers need CUDA: CPU falls back."""
    name = _OPTIMIZER_NAMES[cfg.train.optimizer]
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


def installed_trackers() -> list[str]:
    """The report_to choices usable here (for the Method step)."""
    return ["none"] + [k for k, pkg in _REPORT_PACKAGES.items() if importlib.util.find_spec(pkg)]


def bnb_config(cfg: RunConfig, hw: Hardware, precision: str) -> Any:
    """The BitsAndBytesConfig for QLoRA (4-bit NF4, double quantization), else None."""
    if cfg.method.adapter != "qlora":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MethodError("QLoRA needs the 'bitsandbytes' package; install it or use LoRA")
    import torch
    from transformers import BitsAndBytesConfig

    if hw.device == "cuda":
        compute = torch.bfloat16 if hw.bf16 else torch.float16
    else:
        compute = torch.bfloat16 if precision == "bf16" else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=torch.uint8,
    )


# --------------------------------------------------------------------------- PEFT


def linear_module_names(model: Any) -> list[str]:
    """Leaf names of the model's linear layers (q_proj, down_proj, ...), without the LM head."""
    import torch

    names: set[str] = set()
    linear_types: tuple[type, ...] = (torch.nn.Linear,)
    try:  # 4-bit / 8-bit layers of a quantized model
        import bitsandbytes as bnb  # noqa: F401

        linear_types = linear_types + (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)
    except Exception:
        pass
    try:
        from transformers.pytorch_utils import Conv1D

        linear_types = linear_types + (Conv1D,)
    except Exception:  # pragma: no cover
        pass
    for full, module in model.named_modules():
        if isinstance(module, linear_types):
            leaf = full.rsplit(".", 1)[-1]
            if leaf in ("lm_head", "score", "classifier", "embed_out"):
                continue
            names.add(leaf)
    return sorted(names)


def resolve_target_modules(spec: str, model: Any | None) -> str | list[str]:
    """'attention' -> the model's q/k/v/o names; 'all-linear' as is; a comma list checked."""
    spec = (spec or "all-linear").strip()
    if spec in ("all-linear", "all_linear", "all linear"):
        return "all-linear"
    available = linear_module_names(model) if model is not None else []
    if spec == "attention":
        for group in _ATTENTION_NAMES:
            present = [n for n in group if n in available]
            if model is None:
                return list(_ATTENTION_NAMES[0])
            if len(present) == len(group) or (present and group[0] in present):
                return present
        raise MethodError(
            "could not find attention projections in this model; "
            f"set lora.target_modules to a comma list of: {', '.join(available)}"
        )
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    if not wanted:
        raise MethodError("lora.target_modules is empty; use attention, all-linear or a comma list")
    if model is not None:
        missing = [w for w in wanted if w not in available]
        if missing:
            raise MethodError(
                f"lora.target_modules names {', '.join(missing)}, which this model does not have; "
                f"its linear layers are: {', '.join(available)}"
            )
    return wanted


def build_peft_config(
    cfg: RunConfig, model: Any | None = None, *, total_steps: int | None = None
) -> Any:
    """The PEFT config for the run's adapter (None for full fine-tuning)."""
    adapter = cfg.method.adapter
    if adapter == "full":
        return None
    check_combination(cfg)
    import peft

    task = "SEQ_CLS" if cfg.method.objective == "reward" else "CAUSAL_LM"
    lc = cfg.lora
    if adapter in ("lora", "qlora"):
        return peft.LoraConfig(
            r=lc.r,
            lora_alpha=lc.alpha,
            lora_dropout=lc.dropout,
            target_modules=resolve_target_modules(lc.target_modules, model),
            use_dora=cfg.method.use_dora,
            use_rslora=cfg.method.use_rslora,
            bias="none",
            task_type=task,
        )
    if adapter == "adalora":
        steps = max(int(total_steps or 0), 1)
        tinit = int(steps * 0.1)
        tfinal = int(steps * 0.2)
        if steps - tfinal <= tinit:
            tinit, tfinal = 0, 0
        return peft.AdaLoraConfig(
            init_r=max(lc.r + lc.r // 2, 2),
            target_r=lc.r,
            lora_alpha=lc.alpha,
            lora_dropout=lc.dropout,
            target_modules=resolve_target_modules(lc.target_modules, model),
            tinit=tinit,
            tfinal=tfinal,
            deltaT=max(1, steps // 20),
            total_step=steps,
            task_type=task,
        )
    if adapter == "ia3":
        spec = lc.target_modules.strip()
        kwargs: dict[str, Any] = {"task_type": task}
        if spec not in ("all-linear", "attention", ""):
            targets = resolve_target_modules(spec, model)
            kwargs["target_modules"] = targets
            kwargs["feedforward_modules"] = [
                t for t in targets if t in ("down_proj", "fc2", "dense_4h_to_h", "c_proj", "wo")
            ]
        return peft.IA3Config(**kwargs)
    if adapter == "prompt_tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=lc.num_virtual_tokens, task_type=task)
    if adapter == "prefix_tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=lc.num_virtual_tokens, task_type=task)
    raise MethodError(f"unknown method.adapter '{adapter}'")  # pragma: no cover


# --------------------------------------------------------------------------- TRL config kwargs


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
        "save_total_limit": t.save_total_limit,
        "save_only_model": False,
        "report_to": reporters,
        "logging_dir": str(Path(output_dir).parent / "tensorboard") if reporters else None,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "neftune_noise_alpha": t.neftune_alpha if t.neftune_alpha > 0 else None,
        "max_length": cfg.data.max_length,
        "dataset_num_proc": None,
    }
    if obj == "sft":
        kw["packing"] = t.packing
    if obj == "dpo":
        kw["beta"] = p.beta
        if p.reference == "precompute":
            kw["precompute_ref_log_probs"] = True
    if obj in ("simpo", "orpo"):
        kw["remove_unused_columns"] = False  # their collator needs the raw columns
    if obj == "simpo":
        kw.update(loss_type="simpo", cpo_alpha=0.0, simpo_gamma=p.simpo_gamma * p.beta, beta=p.beta)
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
    elif obj == "reward":
        pass
    if t.packing and obj != "sft":
        notes.append("packing applies to SFT only; ignored for " + obj)
    for key in [k for k, v in kw.items() if v is None]:
        del kw[key]
    return kw


def trainable_summary(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if hasattr(p, "ds_numel"):  # pragma: no cover - deepspeed
            n = p.ds_numel
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
