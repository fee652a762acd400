"""Which weights train: the PEFT config for the adapter, QLoRA's 4-bit config, the count.

LoRA/QLoRA (with the DoRA and rsLoRA switches), AdaLoRA, IA3, prompt and
prefix tuning -> a peft config; QLoRA -> a `BitsAndBytesConfig`; target-module
specs ("attention", "all-linear", a comma list) resolved against the model.
torch, transformers, peft and bitsandbytes are imported inside functions only.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.method.choices import MethodError, check_combination
from spark_tui.core.method.precision import Hardware

# The attention projections' names by model family (the first group is the usual one).
ATTENTION_NAMES = (
    ("q_proj", "k_proj", "v_proj", "o_proj"),  # Llama, Mistral, Qwen, Gemma, Phi-3 (o_proj)
    ("query_key_value", "dense"),  # Falcon, GPT-NeoX, Bloom
    ("c_attn", "c_proj"),  # GPT-2
    ("Wqkv", "out_proj"),  # MPT, Phi-2
    ("qkv_proj", "o_proj"),  # Phi-3
)


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
        for group in ATTENTION_NAMES:
            present = [n for n in group if n in available]
            if model is None:
                return list(ATTENTION_NAMES[0])
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


def trainable_summary(model: Any) -> tuple[int, int]:
    """(trainable parameters, all parameters).

    A PEFT model counts itself: its count knows that a 4-bit (QLoRA) weight packs
    two values per byte, which a plain `numel()` sum halves.
    """
    counter = getattr(model, "get_nb_trainable_parameters", None)
    if callable(counter):
        trainable, total = counter()
        return int(trainable), int(total)
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        if hasattr(p, "ds_numel"):  # pragma: no cover - deepspeed
            n = p.ds_numel
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
