"""The models an evaluation or a chat compares: a run's tuned model and its base.

`load_run_models(run)` loads the run's tokenizer (with the run's chat template)
and its tuned weights: a PEFT adapter on the base, full fine-tuned weights, the
exported merged folder, or only the base model.  With a PEFT adapter only one
copy of the weights is loaded and the base is the same model inside PEFT's
``disable_adapter()``; for full fine-tuning the base is loaded on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.errors import SparkError
from spark_tui.core.evaluate.decoding import stop_token_ids
from spark_tui.core.evaluate.errors import EvalError
from spark_tui.core.evaluate.quiet import quiet
from spark_tui.core.train.runs import Run, resolve_run


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested and requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():  # pragma: no cover - macOS only
        return "mps"
    return "cpu"


def dtype_for(device: str) -> Any:
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def has_tokenizer(folder: Path) -> bool:
    return folder.is_dir() and (
        (folder / "tokenizer_config.json").exists() or (folder / "tokenizer.json").exists()
    )


def _is_peft_folder(folder: Path) -> bool:
    return (folder / "adapter_config.json").exists()


@dataclass
class RunModels:
    """The tuned model of a run plus a way to switch to its base.

    ``use("tuned")`` / ``use("base")`` are context managers that yield a model.
    With a PEFT adapter both are the same object (the base is the adapter
    switched off); for full fine-tuning the base is loaded on first use.
    """

    run: Run | None
    tokenizer: Any
    template: str  # the chat template used for prompts (the run's)
    training_template: str | None  # its twin with {% generation %} markers, if known
    model: Any  # the tuned model (PeftModel for adapters); the base when there is no run output
    device: str
    kind: str  # "peft", "full" or "base"
    task: str  # "causal" or "reward"
    base_path: str
    stop_ids: list[int] = field(default_factory=list)
    mergeable: bool = False  # a LoRA/DoRA adapter on fp32 weights (`_set_merged`)
    mixable: bool = False  # a LoRA adapter without DoRA (`use_mixed`)
    _merged: bool = False
    _base: Any = None
    _load_kw: dict[str, Any] = field(default_factory=dict)

    @property
    def has_tuned(self) -> bool:
        return self.kind in ("peft", "full")

    @contextlib.contextmanager
    def use(self, side: str) -> Iterator[Any]:
        if side not in ("base", "tuned"):
            raise ValueError(f"side must be 'base' or 'tuned', not {side!r}")
        if side == "tuned" or self.kind == "base":
            if side == "tuned" and not self.has_tuned:
                raise EvalError("this model has no tuned weights (no adapter/ or model/ folder)")
            self._set_merged(side == "tuned")
            yield self.model
        elif self.kind == "peft":
            self._set_merged(False)
            with self.model.disable_adapter():
                yield self.model
        else:
            yield self.base_model()

    @property
    def can_mix_sides(self) -> bool:
        """Can base and tuned rows share one batch?  PEFT's mixed-adapter batches do it
        for LoRA (each row names its adapter, ``"__base__"`` none), not for DoRA."""
        return self.kind == "peft" and self.task == "causal" and self.mixable

    @contextlib.contextmanager
    def use_mixed(self) -> Iterator[tuple[Any, str]]:
        """(the model with its adapter unmerged, the adapter's name) for mixed batches."""
        if not self.can_mix_sides:
            raise EvalError("this model cannot mix base and tuned rows in one batch")
        self._set_merged(False)
        yield self.model, str(getattr(self.model, "active_adapter", "default"))

    def _set_merged(self, merged: bool) -> None:
        """Fold a LoRA adapter into the weights while the tuned side answers.

        An unmerged adapter adds two small matmuls and several Python calls to
        every adapted linear of every generated token — on a CPU about a third of
        the time.  Only fp32 weights are merged: there W + BA - BA gives W back to
        rounding, while 16-bit or 4-bit weights would drift (PEFT warns the same).
        """
        if self.kind != "peft" or not self.mergeable or merged == self._merged:
            return
        if merged:
            self.model.base_model.merge_adapter()
        else:
            self.model.base_model.unmerge_adapter()
        self._merged = merged

    def base_model(self) -> Any:
        if self.kind != "full":
            return self.model
        if self._base is None:
            self._base = load_plain_model(
                self.base_path, self.task, self.device, self._load_kw, self.tokenizer
            )
        return self._base

    def release_base(self) -> None:
        """Free a separately loaded base model (full fine-tuning only)."""
        self._base = None
        _free_memory(self.device)

    def close(self) -> None:
        self._base = None
        self.model = None
        _free_memory(self.device)


def model_device(model: Any, fallback: str) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return fallback


def _free_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        with contextlib.suppress(Exception):
            import torch

            torch.cuda.empty_cache()


def load_plain_model(path: str, task: str, device: str, kw: dict[str, Any], tok: Any) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if task == "reward" else AutoModelForCausalLM
    extra = {"num_labels": 1} if task == "reward" else {}
    model = cls.from_pretrained(path, **kw, **extra)
    if getattr(model.config, "pad_token_id", None) is None and tok is not None:
        model.config.pad_token_id = tok.pad_token_id
    if "device_map" not in kw:
        model.to(device)
    model.eval()
    return model


def resolve_template(tokenizer: Any, choice: str = "auto") -> tuple[str, str | None]:
    """(chat template, its training twin with generation markers or None)."""
    from spark_tui.core.data.templates import resolve_chat_template, training_chat_template

    chosen = resolve_chat_template(tokenizer, choice)
    return chosen.template, training_chat_template(chosen.template)


def load_run_models(
    run: Run | str | Path,
    *,
    device: str = "auto",
    task: str | None = None,
    output: str = "auto",
) -> RunModels:
    """Load the run's tuned model (adapter on a base, or full weights) and tokenizer.

    `output`: "auto" (adapter/ or model/, whichever the run has), "merged" (the
    exported merged/ folder), or "base" (no tuned weights: the base model only).
    """
    run = run if isinstance(run, Run) else resolve_run(run)
    cfg = run.config()
    from spark_tui.core.method import peft_config, precision
    from spark_tui.core.model.resolve import resolve_model_path

    task = task or ("reward" if cfg.method.objective == "reward" else "causal")
    device = pick_device(device)
    base_path = resolve_model_path(cfg.model.id)
    if output == "merged":
        folder = run.path / names.MERGED_DIR
        if not (folder / "config.json").exists():
            raise EvalError(f"{run.id} has no merged model; export it first (Export step)")
        kind = "full"
    elif output == "base":
        folder, kind = None, "base"
    else:
        folder = run.output_dir
        if run.model_dir.exists() and (run.model_dir / "config.json").exists():
            kind = "full"
        elif _is_peft_folder(run.adapter_dir):
            kind = "peft"
        else:
            raise EvalError(
                f"run {run.id} has no trained weights yet (no adapter/ or model/ folder); "
                "train it first, or evaluate the base model only (`spark-tui eval --base-only`)"
            )
    try:
        with quiet():
            from transformers import AutoTokenizer

            tok_src = str(folder) if folder is not None and has_tokenizer(folder) else base_path
            tok = AutoTokenizer.from_pretrained(
                tok_src, trust_remote_code=cfg.model.trust_remote_code
            )
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
            template, training_template = resolve_template(tok, cfg.model.chat_template)
            tok.chat_template = template

            kw: dict[str, Any] = {
                "dtype": dtype_for(device),
                "trust_remote_code": bool(cfg.model.trust_remote_code),
            }
            if cfg.model.revision:
                kw["revision"] = cfg.model.revision
            if kind == "peft" and cfg.method.adapter == "qlora":
                if device == "cpu":
                    hw = precision.Hardware(device="cpu", name="CPU", bf16=False, fp16=False)
                else:
                    hw = precision.detect_hardware()
                q = peft_config.bnb_config(cfg, hw, precision.choose_precision("auto", hw))
                if q is not None:
                    kw["quantization_config"] = q
                    kw["dtype"] = q.bnb_4bit_compute_dtype
                    if device == "cuda":
                        kw["device_map"] = {"": 0}
            base_kw = {
                k: v for k, v in kw.items() if k != "quantization_config" and k != "device_map"
            }
            if kind == "full":
                model = load_plain_model(str(folder), task, device, {**base_kw}, tok)
            elif kind == "peft":
                from peft import PeftModel

                base = load_plain_model(base_path, task, device, kw, tok)
                model = PeftModel.from_pretrained(base, str(folder), is_trainable=False)
                if "device_map" not in kw:
                    model.to(device)
                model.eval()
            else:
                model = load_plain_model(base_path, task, device, kw, tok)
    except SparkError:
        raise
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise EvalError(f"cannot load the model of run {run.id}: {first}") from exc
    return RunModels(
        run=run,
        tokenizer=tok,
        template=template,
        training_template=training_template,
        model=model,
        device=device,
        kind=kind,
        task=task,
        base_path=base_path,
        stop_ids=stop_token_ids(tok, template),
        mergeable=kind == "peft" and _can_merge(model),
        mixable=kind == "peft" and _can_mix(model),
        _load_kw=base_kw,
    )


def _lora_config(model: Any) -> Any:
    cfg = getattr(model, "peft_config", {}).get(getattr(model, "active_adapter", "default"))
    if cfg is None or str(getattr(cfg, "peft_type", "")).split(".")[-1] != "LORA":
        return None
    return cfg


def _can_mix(model: Any) -> bool:
    cfg = _lora_config(model)
    return cfg is not None and not getattr(cfg, "use_dora", False)


def _can_merge(model: Any) -> bool:
    """A LoRA-family adapter (LoRA, DoRA, rsLoRA) on unquantized fp32 weights."""
    import torch

    if _lora_config(model) is None:
        return False
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return False
    base = model.get_base_model()
    if getattr(base, "is_loaded_in_4bit", False) or getattr(base, "is_loaded_in_8bit", False):
        return False
    return all(p.dtype == torch.float32 for p in base.parameters())
