"""Merge trained LoRA / rsLoRA / DoRA / QLoRA adapters into the base weights.

The result is a standard Hugging Face folder (safetensors shards + index, config,
generation config, tokenizer with its chat template, merge_report.json) that any
tool can load, and that the GGUF exporter takes as input.  Two paths
(`MergeResult.path`):

* "streaming" (stream_merge.py, the default): tensor by tensor from the base's own
  safetensors, so a 70B merge fits in 128 GB (peak about one input shard + one output
  shard + the adapter).  Covers LoRA, rsLoRA, DoRA, rank/alpha patterns,
  fan_in_fan_out, modules_to_save, trainable_token_indices and grown vocabularies.
* "peft": PEFT's `merge_and_unload` on the whole model in memory, for the rest -
  AdaLoRA, IA3, LoRA on Embedding/Conv layers, lora_bias, bias="all"/"lora_only",
  PiSSA/OLoRA/CorDA/LoftQ/LoRA-GA inits, other LoRA variants (aLoRA, Arrow, ...),
  modules_to_save of tied embeddings (PEFT unties them), a tokenizer longer than the
  embeddings without saved resized ones, and adapters whose module names do not
  match the checkpoint's tensor names.  The reason is in MergeResult.notes.

QLoRA: the adapter was trained against 4-bit NF4 weights, but merging into
dequantized 4-bit weights would bake the quantization error into the result, so
both paths merge into the 16-bit weights as stored (bfloat16 output by default)
and say so; a base checkpoint stored quantized is refused.

The logits check (`check=True`) compares the merged model with the adapter model
on fixed prompts within MERGE_TOLERANCE.  It needs a whole model in memory: the
PEFT path has one anyway; the streaming path loads a PeftModel once, then the
merged output once, so it is for models that fit in memory - the caller (the
pipeline) decides and passes `check=False` for big ones.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import (
    ExportError,
    Progress,
    atomic_output,
    read_json_file,
    report,
)
from spark_tui.core.export.stream_merge import (
    DEFAULT_SHARD_BYTES,
    AdapterTensors,
    plan_merge,
    stored_dtype,
    write_config,
)
from spark_tui.core.export.stream_merge import stream_merge as _stream_merge
from spark_tui.core.export.tensor_source import TensorSource

CHECK_PROMPTS = (
    "What is the capital of France?",
    "Write one sentence about autumn leaves.",
)
# Allowed max |Δlogit| between the adapter model and the merged model:
# absolute + relative to the largest |logit|.  fp32 merges are exact up to
# float rounding; 16-bit merges round W + BA once per weight.
MERGE_TOLERANCE = {"float32": (1e-3, 1e-4), "float16": (0.05, 0.01), "bfloat16": (0.1, 0.03)}

MERGEABLE = ("LORA", "ADALORA", "IA3")
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}  # the merged model's size on disk
METHODS = ("auto", "streaming", "peft")


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
    path: str = "streaming"  # "streaming" (tensor by tensor) or "peft" (merge_and_unload)
    shards: int = 0  # safetensors files written
    tensors_merged: int = 0  # Linear weights that received an adapter update
    vocab_size: int | None = None  # set when the embeddings grew for added tokens

    def summary_lines(self) -> list[str]:
        kind = "DoRA" if self.dora else ("QLoRA" if self.qlora else "LoRA")
        lines = [
            f"merged {kind} adapter into {self.base_model} -> {self.out_dir} "
            f"({self.dtype}, {self.path} merge)"
        ]
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
    return read_json_file(
        Path(adapter_dir) / "adapter_config.json",
        f"{adapter_dir} is not a PEFT adapter folder (has the run finished training?)",
    )


def resolve_base_model(adapter_cfg: dict[str, Any], model_id: str | None = None) -> str:
    """The local folder of the base model to merge into: the run's model.id, else what PEFT
    recorded.  Hub ids resolve to their cached snapshot (never a download, never a path)."""
    from spark_tui.core.model import resolve as models

    candidates = [model_id, adapter_cfg.get("base_model_name_or_path")]
    first_error: str | None = None
    for c in candidates:
        if not c:
            continue
        try:
            return str(models.resolve_local_model(c))
        except models.ModelError as exc:  # a recorded path that no longer exists: try the next
            first_error = first_error or str(exc)
            continue
    recorded = adapter_cfg.get("base_model_name_or_path")
    raise ExportError(
        f"cannot find the base model {model_id or recorded!r} of this adapter (the run's "
        f"model / adapter_config.json base_model_name_or_path={recorded!r})"
        + (f": {first_error}" if first_error else "")
        + "; pass it with --base"
    )


def local_model_dir(base: str) -> Path:
    """The folder holding the base's files: a local path, else its Hugging Face cache copy."""
    from spark_tui.core.model import resolve as models

    try:
        return models.resolve_local_model(base)
    except models.ModelError as exc:
        raise ExportError(
            f"base model {base!r} (the run's model / adapter_config.json "
            f"base_model_name_or_path): {exc}; or pass --base with a local folder"
        ) from exc


def _default_shard_bytes(src: Any, out_dtype: str) -> int:
    """Output shards as large as the base's largest shard (dtype change included)."""
    from spark_tui.core.export.stream_merge import FLOATS, ITEMSIZE, output_shard_bytes

    largest = max((f.stat().st_size for f in src.files), default=DEFAULT_SHARD_BYTES)
    stored = [src.dtype(n) for n in src.names() if src.dtype(n) in FLOATS]
    in_bpw = max((ITEMSIZE[d] for d in stored), default=4)
    out_bpw = {"float32": 4, "float16": 2, "bfloat16": 2}[out_dtype]
    return output_shard_bytes(largest, in_bpw, out_bpw)


def _refuse_quantized(base_dir: Path) -> None:
    cfg_path = base_dir / "config.json"
    if not cfg_path.is_file():
        raise ExportError(f"{cfg_path} is missing: {base_dir} is not a Hugging Face model folder")
    qc = json.loads(cfg_path.read_text(encoding="utf-8")).get("quantization_config")
    if qc:
        raise ExportError(
            f"{cfg_path}: the base checkpoint is stored quantized "
            f"({qc.get('quant_method', 'quantized')}); merging must use the original 16-bit "
            "weights - pass --base with the unquantized model"
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


def _fill_check(result: MergeResult, before: Any, after: Any) -> None:
    diff = float((before - after).abs().max())
    a, r = MERGE_TOLERANCE[result.dtype]
    result.checked = True
    result.max_abs_diff = diff
    result.tolerance = a + r * float(before.abs().max())
    result.top1_agreement = float((before.argmax(-1) == after.argmax(-1)).float().mean())
    result.passed = diff <= result.tolerance


def _load_peft(base: str, adapter_dir: Path, torch_dtype: Any, rows: int | None) -> Any:
    """Base (resized to `rows` when the vocabulary grew) + adapter, as PEFT applies it."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from spark_tui.core.model.resolve import quiet_transformers

    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype)
        if rows and rows > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(rows)
        peft_model = PeftModel.from_pretrained(model, str(adapter_dir))
    return peft_model.eval()


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
    method: str = "auto",
    max_shard_bytes: int | None = None,
) -> MergeResult:
    """Merge the adapter in `adapter_dir` into its base and save a full model in `out_dir`.

    `dtype`: "float32", "float16" or "bfloat16"; default: bfloat16 for QLoRA
    (the 16-bit weights), else the base checkpoint's own dtype.
    `chat_template`: a jinja template to store if the tokenizer has none.
    `check`: compare logits (loads whole models: pass False for models that do not fit).
    `method`: "auto" (streaming when it covers the adapter, else PEFT), "streaming"
    (raise ExportError instead of falling back) or "peft".
    `max_shard_bytes`: size limit of each output safetensors file (default: the base's own
    largest shard, at most 5 GB - see stream_merge.output_shard_bytes).
    """
    import torch
    from transformers import AutoTokenizer

    from spark_tui.core.model.resolve import quiet_transformers

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    start = time.monotonic()
    adapter_dir = Path(adapter_dir)
    out_dir = Path(out_dir)
    acfg = read_adapter_config(adapter_dir)
    if str(acfg.get("peft_type", "LORA")).upper() not in MERGEABLE:
        raise ExportError(
            f"{adapter_dir}: {acfg.get('peft_type')} adapters cannot be merged into the weights; "
            "only LoRA / QLoRA / DoRA / AdaLoRA / IA3 can (prompt and prefix tuning need the "
            "adapter at run time, which GGUF and Ollama do not support)"
        )
    base = str(base_model or resolve_base_model(acfg, model_id))
    base_dir = local_model_dir(base)
    _refuse_quantized(base_dir)
    report(progress, "merge", 0, 0)

    # tokenizer: the run's own copy (it may carry a template or added tokens), else the base's
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base_dir
    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(tok_src))
    if chat_template and not getattr(tok, "chat_template", None):
        tok.chat_template = chat_template
    src = TensorSource(base_dir)
    dtype = dtype or ("bfloat16" if qlora else _checkpoint_dtype(base_dir, src))
    if dtype not in MERGE_TOLERANCE:
        raise ExportError(f"merge dtype must be float32, float16 or bfloat16, not {dtype!r}")
    result = MergeResult(
        out_dir=out_dir,
        base_model=base,
        adapter_dir=adapter_dir,
        dtype=dtype,
        qlora=qlora,
        dora=bool(acfg.get("use_dora")),
    )
    if qlora:
        result.notes.append(
            f"QLoRA: merged into the base's stored 16-bit weights, output {dtype} (not into "
            "the dequantized 4-bit weights used during training)"
        )
    base_rows = _vocab_size(base_dir)
    adapter = AdapterTensors(adapter_dir)
    plan = plan_merge(acfg, adapter, src)
    reason = "method='peft' was asked for" if method == "peft" else plan.reason
    if not reason and base_rows and len(tok) > base_rows and plan.vocab_rows is None:
        reason = (
            f"the tokenizer has {len(tok)} tokens but the embeddings {base_rows} rows and the "
            "adapter saved no resized embeddings"
        )
    if reason and method == "streaming":
        raise ExportError(f"{adapter_dir}: the streaming merge does not cover this: {reason}")
    torch_dtype = getattr(torch, dtype)
    grew = len(tok) > (base_rows or len(tok))
    need = sum(math.prod(src.shape(n)) for n in src.names()) * _DTYPE_BYTES.get(dtype, 4)
    with atomic_output(out_dir, is_dir=True, need=need, what="the merged model") as tmp:
        if reason:
            rows = max(len(tok), adapter.vocab_rows() or 0)
            adapter.close()
            result.path = "peft"
            result.notes.append(f"merged with PEFT merge_and_unload (whole model): {reason}")
            _peft_merge(
                result, base, adapter_dir, tmp, tok, torch_dtype, check, progress, base_rows, rows
            )
        else:
            result.path = "streaming"
            result.notes.extend(plan.notes)
            result.tensors_merged = len(plan.lora)
            if max_shard_bytes is None:
                max_shard_bytes = _default_shard_bytes(src, dtype)
            result.shards = _stream_merge(
                plan, src, adapter, tmp, out_dtype=dtype, max_shard_bytes=max_shard_bytes,
                progress=progress,
            )  # fmt: skip
            adapter.close()
            if plan.vocab_rows is not None:
                result.vocab_size = plan.vocab_rows
                result.notes.append(
                    f"embeddings {base_rows} -> {plan.vocab_rows} rows (tokens added in "
                    "training; taken from the adapter)"
                )
            write_config(base_dir, tmp, dtype, plan.vocab_rows)
            _write_generation_config(base_dir, tmp, tok)
            if check:
                _check_streamed(result, base, adapter_dir, tmp, tok, torch_dtype, plan.vocab_rows)
        with quiet_transformers():
            tok.save_pretrained(str(tmp))
        _keep_sentencepiece(tmp, (tok_src, base_dir), grew)
        result.seconds = time.monotonic() - start
        (tmp / "merge_report.json").write_text(
            json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    report(progress, "merge", 1, 1)
    return result


def _check_streamed(
    result: MergeResult,
    base: str,
    adapter_dir: Path,
    merged_dir: Path,
    tok: Any,
    torch_dtype: Any,
    rows: int | None,
) -> None:
    """Logits of a PeftModel, then of the merged folder: one whole model in memory at a time."""
    import torch
    from transformers import AutoModelForCausalLM

    from spark_tui.core.model.resolve import quiet_transformers

    model = _load_peft(base, adapter_dir, torch_dtype, rows)
    want = _logits(model, tok, torch)
    del model
    gc.collect()
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch_dtype)
    _fill_check(result, want, _logits(model.eval(), tok, torch))
    del model
    gc.collect()


def _peft_merge(
    result: MergeResult,
    base: str,
    adapter_dir: Path,
    tmp: Path,
    tok: Any,
    torch_dtype: Any,
    check: bool,
    progress: Progress | None,
    base_rows: int | None,
    rows: int,
) -> None:
    """The reference path: the whole model in memory, PEFT's merge_and_unload, save_pretrained."""
    import torch
    from transformers import GenerationConfig

    from spark_tui.core.model.resolve import quiet_transformers

    peft_model = _load_peft(base, adapter_dir, torch_dtype, rows)
    n_rows = peft_model.get_input_embeddings().weight.shape[0]
    report(progress, "merge in memory", 0, 3)
    before = _logits(peft_model, tok, torch) if check else None
    merged = peft_model.merge_and_unload(progressbar=False).eval()
    report(progress, "merge in memory", 1, 3)
    if before is not None:
        _fill_check(result, before, _logits(merged, tok, torch))
    if base_rows and n_rows > base_rows:
        result.vocab_size = n_rows
        result.notes.append(
            f"embeddings resized {base_rows} -> {n_rows} for tokens added in training"
        )
    merged.config.dtype = torch_dtype
    with quiet_transformers():
        merged.save_pretrained(str(tmp), safe_serialization=True, max_shard_size="5GB")
    gen = getattr(merged, "generation_config", None)
    if gen is None:
        gen = GenerationConfig(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    gen.save_pretrained(str(tmp))
    result.shards = len(list(Path(tmp).glob("*.safetensors")))
    report(progress, "merge in memory", 2, 3)
    del merged, peft_model
    gc.collect()


def _vocab_size(model_dir: Path) -> int | None:
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        return None
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    return cfg.get("vocab_size") or (cfg.get("text_config") or {}).get("vocab_size")


def _write_generation_config(base_dir: Path, tmp: Path, tok: Any) -> None:
    src = base_dir / "generation_config.json"
    if src.is_file():
        shutil.copy2(src, tmp / "generation_config.json")
        return
    from transformers import GenerationConfig

    gen = GenerationConfig(eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    gen.save_pretrained(str(tmp))


def _keep_sentencepiece(tmp: Path, sources: tuple[Path, ...], grew: bool) -> None:
    """transformers 5 saves only tokenizer.json; keep the SentencePiece model if there was
    one and the vocabulary did not grow (the GGUF exporter prefers its exact scores)."""
    if grew or (tmp / "tokenizer.model").exists():
        return
    for src_dir in sources:
        sp = Path(src_dir) / "tokenizer.model"
        if sp.is_file():
            shutil.copy2(sp, tmp / "tokenizer.model")
            return


def _checkpoint_dtype(base_dir: Path, src: TensorSource) -> str:
    """The dtype the base is stored in: config.json's, else its tensors', else float32."""
    cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    dt = str(cfg.get("dtype") or cfg.get("torch_dtype") or "").replace("torch.", "")
    if dt not in MERGE_TOLERANCE:
        dt = stored_dtype(src) or "float32"
    return dt
