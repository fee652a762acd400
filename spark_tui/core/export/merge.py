"""Merge trained LoRA / DoRA adapters into the base weights (PEFT `merge_and_unload`).

The result is a standard Hugging Face folder (safetensors, config, generation
config, tokenizer with its chat template) that any tool can load, and that the
GGUF exporter takes as input.

QLoRA: the adapter was trained against 4-bit NF4 base weights, but merging into
dequantized 4-bit weights would bake the quantization error into the result.
We reload the base in 16-bit (bfloat16) and merge there, and say so.

The merge is checked: on fixed prompts the merged model's logits must equal
the adapter model's logits (same dtype, same inputs) within a stated tolerance.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import ExportError, Progress, atomic_output, report

CHECK_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about autumn leaves.",
)
# Allowed max |Δlogit| between the adapter model and the merged model:
# absolute + relative to the largest |logit|.  fp32 merges are exact up to
# float rounding; 16-bit merges round W + BA once per weight.
MERGE_TOLERANCE = {"float32": (1e-3, 1e-4), "float16": (0.05, 0.01), "bfloat16": (0.1, 0.03)}

MERGEABLE = ("LORA", "ADALORA", "IA3")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@dataclass
class MergeResult:
    out_dir: Path
    base_model: str
    adapter_dir: Path
    dtype: str
    qlora: bool
    dora: bool
    max_abs_diff: float | None = None
    tolerance: float | None = None
    top1_agreement: float | None = None
    checked: bool = False
    passed: bool = True
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        kind = "DoRA" if self.dora else ("QLoRA" if self.qlora else "LoRA")
        lines = [f"merged {kind} adapter into {self.base_model} -> {self.out_dir} ({self.dtype})"]
        if self.checked:
            lines.append(
                f"logits check: max |Δlogit| {self.max_abs_diff:.3g} (tolerance {self.tolerance:.3g}), "
                f"top-1 agreement {self.top1_agreement:.0%} - "
                + ("ok" if self.passed else "FAILED")
            )
        lines.extend(self.notes)
        return lines

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["out_dir"] = str(self.out_dir)
        d["adapter_dir"] = str(self.adapter_dir)
        d["summary"] = self.summary_lines()
        return d


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(
            f"{path} is missing: {adapter_dir} is not a PEFT adapter folder "
            "(has the run finished training?)"
        ) from exc


def resolve_base_model(adapter_cfg: dict[str, Any], model_id: str | None = None) -> str:
    """The base model to merge into: the run's model.id, else what PEFT recorded."""
    from spark_tui.core import models

    candidates = [model_id, adapter_cfg.get("base_model_name_or_path")]
    for c in candidates:
        if not c:
            continue
        try:
            return models.resolve_model_path(c)
        except Exception:  # a recorded path that no longer exists: try the next
            continue
    raise ExportError(
        "cannot find the base model of this adapter (adapter_config.json "
        f"base_model_name_or_path={adapter_cfg.get('base_model_name_or_path')!r}); "
        "pass it with --base"
    )


def _logits(model: Any, tok: Any, torch: Any) -> Any:
    outs = []
    for p in CHECK_PROMPTS:
        text = p
        if getattr(tok, "chat_template", None):
            try:
                text = tok.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
            except Exception:
                text = p
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            outs.append(model(ids.to(model.device)).logits[0].float().cpu())
    return torch.cat(outs, dim=0)


def merge_adapter(
    adapter_dir: str | Path,
    out_dir: str | Path,
    *,
    base_model: str | None = None,
    model_id: str | None = None,
    qlora: bool = False,
    dtype: str | None = None,
    chat_template: str | None = None,
    check: bool = True,
    progress: Progress | None = None,
) -> MergeResult:
    """Merge the adapter in `adapter_dir` into its base and save a full model in `out_dir`.

    `dtype`: "float32", "float16" or "bfloat16"; default: bfloat16 for QLoRA
    (the 16-bit reload), else the base checkpoint's own dtype.
    `chat_template`: a jinja template to store if the tokenizer has none.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from spark_tui.core.models import quiet_transformers

    start = time.monotonic()
    adapter_dir = Path(adapter_dir)
    out_dir = Path(out_dir)
    acfg = read_adapter_config(adapter_dir)
    if acfg.get("peft_type", "LORA") not in MERGEABLE:
        raise ExportError(
            f"{adapter_dir}: {acfg.get('peft_type')} adapters cannot be merged into the weights; "
            "only LoRA / QLoRA / DoRA / AdaLoRA / IA3 can (prompt and prefix tuning need the "
            "adapter at run time, which GGUF and Ollama do not support)"
        )
    base = base_model or resolve_base_model(acfg, model_id)
    steps = 5
    report(progress, "merge", 0, steps)

    # tokenizer: the run's own copy (it may carry a template or added tokens), else the base's
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else Path(base)
    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(tok_src))
    if chat_template and not getattr(tok, "chat_template", None):
        tok.chat_template = chat_template

    if dtype is None:
        if qlora:
            dtype = "bfloat16"
        else:
            dtype = _checkpoint_dtype(base)
    torch_dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        dtype
    ]
    notes: list[str] = []
    if qlora:
        notes.append(
            f"QLoRA: merged into the base reloaded in {dtype} (not into the dequantized 4-bit "
            "weights used during training)"
        )

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
    report(progress, "merge", 1, steps)
    n_rows = model.get_input_embeddings().weight.shape[0]
    if len(tok) > n_rows:
        model.resize_token_embeddings(len(tok))
        notes.append(f"embeddings resized {n_rows} -> {len(tok)} for tokens added in training")
    with quiet_transformers():
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    peft_model.eval()
    dora = bool(acfg.get("use_dora"))
    report(progress, "merge", 2, steps)

    before = _logits(peft_model, tok, torch) if check else None
    merged = peft_model.merge_and_unload(progressbar=False)
    merged.eval()
    report(progress, "merge", 3, steps)

    result = MergeResult(
        out_dir=out_dir,
        base_model=str(base),
        adapter_dir=adapter_dir,
        dtype=dtype,
        qlora=qlora,
        dora=dora,
        notes=notes,
    )
    if before is not None:
        after = _logits(merged, tok, torch)
        diff = float((before - after).abs().max())
        scale = float(before.abs().max())
        a, r = MERGE_TOLERANCE[dtype]
        result.checked = True
        result.max_abs_diff = diff
        result.tolerance = a + r * scale
        result.top1_agreement = float((before.argmax(-1) == after.argmax(-1)).float().mean())
        result.passed = diff <= result.tolerance
    report(progress, "merge", 4, steps)

    with atomic_output(out_dir, is_dir=True) as tmp:
        merged.config.dtype = torch_dtype
        with quiet_transformers():
            merged.save_pretrained(str(tmp), safe_serialization=True, max_shard_size="5GB")
            tok.save_pretrained(str(tmp))
        gen = getattr(merged, "generation_config", None)
        if gen is None:
            gen = GenerationConfig(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        gen.save_pretrained(str(tmp))
        # transformers 5 saves only tokenizer.json; keep the SentencePiece model if there was
        # one and the vocabulary did not grow (the GGUF exporter prefers its exact scores).
        for src_dir in (tok_src, Path(base)):
            sp = Path(src_dir) / "tokenizer.model"
            if sp.is_file() and not (tmp / "tokenizer.model").exists() and len(tok) <= n_rows:
                shutil.copy2(sp, tmp / "tokenizer.model")
        result.seconds = time.monotonic() - start
        (tmp / "merge_report.json").write_text(
            json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    report(progress, "merge", 5, steps)
    del merged, peft_model, model
    return result


def _checkpoint_dtype(base: str) -> str:
    """The dtype the base checkpoint is stored in (config.json), float32 when unknown."""
    cfg_path = Path(base) / "config.json"
    dt = None
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        dt = cfg.get("dtype") or cfg.get("torch_dtype")
    else:
        try:
            from transformers import AutoConfig

            c = AutoConfig.from_pretrained(base)
            dt = str(getattr(c, "dtype", None) or getattr(c, "torch_dtype", "") or "")
        except Exception:
            dt = None
    dt = str(dt or "float32").replace("torch.", "")
    return dt if dt in ("float32", "float16", "bfloat16") else "float32"
