"""From a loaded model to a trained one: the prepared data, the TRL trainer, the saved output.

`orchestrate._train` calls these in order, around `loading` (the model) and
the callbacks.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json, read_json
from spark_tui.core.train.runs import Run
from spark_tui.core.train.status import StatusWriter

log = logging.getLogger("spark_tui.training")


def phase_progress(status: StatusWriter, phase: str) -> Any:
    """A (stage, done, total) callback showing one phase's progress line in status.json.

    phase_detail is the line the screens print ("download · 3.2 / 16.0 GB · 20 % ·
    4:10 left"), phase_progress the fraction; status.json is rewritten at most twice
    a second.
    """
    from spark_tui.core.base.progress import StageProgress

    line, last = StageProgress(), [0.0]

    def progress(stage: str, done: float, total: float | None) -> None:
        text = line.update(str(stage), done, total)
        now = time.time()
        if now - last[0] < 0.5 and (total is None or done < total):
            return
        last[0] = now
        frac = float(done) / float(total) if total else None
        status.update(phase=phase, phase_detail=text, phase_progress=frac)

    return progress


def prepare_data(cfg: RunConfig, tok: Any, run: Run, status: StatusWriter) -> Any:
    """Prepare the run's data into `<run>/data`, its progress shown in status.json."""
    from spark_tui.core.data import prepare_dataset

    progress = phase_progress(status, "preparing data")
    prepared = prepare_dataset(cfg, tok, out_dir=run.data_dir, progress=progress)
    status.update(phase_detail=None, phase_progress=None)
    record_sources(cfg, run)
    return prepared


def fetch_model(cfg: RunConfig, model_path: str, status: StatusWriter, stop: Any) -> None:
    """Download a Hub model that is not in the cache yet, with bytes and time left.

    `stop()` true (the stop file) ends the wait; the partial files stay in the cache.
    """
    from spark_tui.core.model.download import download_model, needs_download, plan_download

    revision = cfg.model.revision or None
    if not needs_download(model_path, revision=revision):
        return
    status.update(phase="downloading model", phase_detail=None, phase_progress=None)
    plan = plan_download(
        model_path, revision=revision, trust_remote_code=bool(cfg.model.trust_remote_code)
    )
    log.info("downloading %s: %d files, %.2f GB", model_path, len(plan.files),
             plan.total_bytes / 1e9)  # fmt: skip
    progress = phase_progress(status, "downloading model")
    download_model(plan, progress=progress, should_stop=stop)
    status.update(phase_detail=None, phase_progress=None)


def record_sources(cfg: RunConfig, run: Run) -> None:
    """Fingerprint the data sources as prepared, for a later resume to compare against."""
    from spark_tui.core.data.fingerprint import fingerprint

    obj = cfg.method.objective
    atomic_write_json(
        run.data_dir / names.DATA_SOURCES,
        {
            "data": fingerprint(cfg.data.path, obj),
            "validation": fingerprint(cfg.data.validation_path, obj),
        },
    )


def resume_data(cfg: RunConfig, tok: Any, run: Run, notes: list[str]) -> Any | None:
    """The data prepared when the run started, with what changed in its sources since.

    None when the run folder holds no prepared copy (then it is prepared again).
    """
    from spark_tui.core.data.fingerprint import changes
    from spark_tui.core.data.output import load_prepared

    recorded = read_json(run.data_dir / names.DATA_SOURCES, default=None)
    prepared = load_prepared(run.data_dir, tok, cfg.model.chat_template) if recorded else None
    if prepared is None:
        notes.append(
            "no prepared copy of the data in the run folder: prepared again from the source"
        )
        return None
    obj = cfg.method.objective
    notes.append("resumed on the data prepared when the run started")
    for role in ("data", "validation"):
        notes.extend(changes(recorded.get(role), role, obj))
    return prepared


def split(dataset: Any, name: str) -> Any:
    """One split of the prepared dataset, or None when it is missing or empty."""
    try:
        ds = dataset[name]
    except (KeyError, TypeError):
        return None
    return ds if ds is not None and len(ds) > 0 else None


def build_trainer(
    cfg: RunConfig,
    run: Run,
    *,
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    hw: Any,
    precision: str,
    callbacks: Iterable[Any] = (),
    notes: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    checkpointing: bool | None = None,
) -> Any:
    """The TRL trainer for `cfg` on an already-loaded model.

    `checkpointing`: gradient checkpointing as the memory estimate decided it
    for "auto" (`core/memory/estimator.checkpointing_decision`).
    """
    from spark_tui.core.method import trl_compat
    from spark_tui.core.method.peft_config import build_peft_config
    from spark_tui.core.method.trainer_args import (
        estimate_total_steps,
        liger_choice,
        trainer_kwargs,
    )

    notes = notes if notes is not None else []
    classes = trl_compat.trainer_classes(cfg.method.objective)
    total = estimate_total_steps(cfg, len(train_dataset))
    peft_cfg = build_peft_config(cfg, model, total_steps=total)
    kwargs = trainer_kwargs(
        cfg,
        output_dir=run.checkpoints_dir,
        hw=hw,
        precision=precision,
        has_eval=eval_dataset is not None,
        notes=notes,
        checkpointing=checkpointing,
        total_steps=total,
    )
    liger, note = liger_choice(cfg, hw, getattr(getattr(model, "config", None), "model_type", None))
    if note:
        notes.append(note)
    if liger:
        kwargs["use_liger_kernel"] = True
    kwargs.update(overrides or {})
    args = trl_compat.make_config(classes, **kwargs)
    trainer_kw: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "callbacks": list(callbacks),
    }
    if peft_cfg is not None:
        trainer_kw["peft_config"] = peft_cfg
    if reference_is_a_copy(cfg, peft=peft_cfg is not None):
        import copy

        ref = copy.deepcopy(model).eval()
        ref.requires_grad_(False)
        trainer_kw["ref_model"] = ref
    return classes.trainer(**trainer_kw)


def reference_is_a_copy(cfg: RunConfig, *, peft: bool) -> bool:
    """Whether DPO/KTO gets a frozen copy of the just-loaded policy as its reference.

    With PEFT the reference is the base with adapters disabled, unless the user
    asked for a copy.  Full fine-tuning always needs a second model: a copy of
    the policy has its revision, dtype, device placement and trust_remote_code
    by construction, where TRL would reload it by name at the `main` revision.
    Precomputed reference log-probs need no model kept.
    """
    if cfg.method.objective not in ("dpo", "kto") or cfg.preference.reference == "precompute":
        return False
    return not peft or cfg.preference.reference == "copy"


def training_dtype(trainer: Any) -> Any:
    """The 16-bit dtype a full fine-tune trained in (bf16/fp16 autocast), None for fp32 or PEFT.

    Full fine-tuning keeps fp32 master weights (`precision.load_dtype`) but its
    result is a model for inference: saved in fp32 it is twice the size of the
    bf16 model it was trained as.  Adapters stay as PEFT keeps them.
    """
    import torch

    if getattr(trainer.model, "peft_config", None):
        return None
    args = trainer.args
    if getattr(args, "bf16", False):
        return torch.bfloat16
    if getattr(args, "fp16", False):
        return torch.float16
    return None


def save_output(trainer: Any, tokenizer: Any, dest: Path, *, main: bool = True) -> None:
    """Save weights + tokenizer into `dest` atomically (a temp folder renamed into place).

    A full fine-tune is saved in its training precision: the model is cast in
    place (one tensor at a time, never a second full copy), so call this only
    once training is done; config.json records the dtype it was saved in.
    Every rank of a distributed run calls it (FSDP gathers the weights collectively,
    as a full state dict: PEFT's way for an adapter Deploy can read); `main` writes.
    """
    fsdp = bool(getattr(trainer, "is_fsdp_enabled", False))
    if fsdp:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    dtype = None if fsdp else training_dtype(trainer)  # FSDP's flat parameters stay as they are
    if dtype is not None:
        trainer.model.to(dtype)
    tmp = dest.parent / f".{dest.name}.tmp"
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))  # rank 0 writes; under FSDP every rank takes part
    if not main:
        return
    tokenizer.save_pretrained(str(tmp))
    old = dest.parent / f".{dest.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
