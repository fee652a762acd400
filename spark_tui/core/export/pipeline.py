"""The deploy round trip as the CLI and the Deploy screen drive it.

    merge (adapter runs) -> GGUF f16/bf16/q8_0 (ours) -> K-quants (llama.cpp)
      -> verify each file -> Modelfile(s) -> Ollama (CLI or REST) -> test prompt

Layout inside a run folder::

    merged/                    the merged HF model (+ merge_report.json)
    gguf/<run>-<type>.gguf     one file per exported type
    gguf/verify-<type>.json    the verification report of each file
    Modelfile                  FROM ./gguf/<run>-<type>.gguf
    Modelfile.safetensors      FROM ./merged (only for archs Ollama converts itself)

For a plain model folder (`--model-dir DIR`) the same files go to an output
folder (default `DIR-gguf/` next to it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json
from spark_tui.core.export import preflight
from spark_tui.core.export.common import ExportError, Progress, remove_path, temp_sibling
from spark_tui.core.export.quantize import ALL_TYPES, K_QUANTS


@dataclass
class ExportOutcome:
    model_dir: Path
    out_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    verifications: dict[str, Any] = field(default_factory=dict)  # type -> VerifyReport
    notes: list[str] = field(default_factory=list)
    preflight: preflight.DeployPreflight | None = None

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verifications.values())


def gguf_filename(stem: str, qtype: str) -> str:
    return f"{stem}-{qtype.lower()}.gguf"


def normalise_types(types: list[str] | tuple[str, ...]) -> list[str]:
    out = []
    for t in types:
        t = t.lower()
        if t not in ALL_TYPES:
            raise ExportError(f"unknown export type {t!r}; choose from {', '.join(ALL_TYPES)}")
        if t not in out:
            out.append(t)
    if not out:
        raise ExportError(f"no export type given; choose from {', '.join(ALL_TYPES)}")
    return out


# ---------------------------------------------------------------------------
# runs


def run_model_dir(run: Any) -> Path:
    """The full HF model of a run: merged/ for adapter runs, model/ for full fine-tuning."""
    merged = Path(run.path) / "merged"
    if (merged / "config.json").exists():
        return merged
    if (Path(run.model_dir) / "config.json").exists():
        return Path(run.model_dir)
    if (Path(run.adapter_dir) / "adapter_config.json").exists():
        raise ExportError(
            f"run {run.id} has an adapter but no merged model yet; run `spark-tui merge {run.id}` "
            "first (or export from the Deploy screen, which merges for you)"
        )
    raise ExportError(f"run {run.id} has no trained model yet (no adapter/ or model/ folder)")


def merge_preflight(
    run: Any,
    *,
    check: bool = True,
    base: str | None = None,
    available_bytes: int | None = None,
) -> preflight.DeployPreflight | None:
    """Memory and disk of merging the run's adapter (None for full fine-tuning, or when the
    base model's weights cannot be read here: the merge itself then says why)."""
    from spark_tui.core.export.merge import read_adapter_config, resolve_base_model

    if (Path(run.model_dir) / "config.json").exists():
        return None
    cfg = run.config()
    adapter_dir = Path(run.adapter_dir)
    adapter = sum(f.stat().st_size for f in adapter_dir.glob("adapter_model*") if f.is_file())
    try:
        acfg = read_adapter_config(adapter_dir)
        base_dir = resolve_base_model({} if base else acfg, base or cfg.model.id)
        return preflight.plan_merge(
            base_dir,
            Path(run.path) / "merged",
            adapter_bytes=adapter,
            merge_bytes_per_weight=2 if cfg.method.adapter == "qlora" else None,
            check=check,
            available_bytes=available_bytes,
        )
    except (ExportError, OSError):
        return None


def merge_run(
    run: Any,
    *,
    check: bool = True,
    base: str | None = None,
    progress: Progress | None = None,
    available_bytes: int | None = None,
    plan: preflight.DeployPreflight | None = None,
):
    """Merge a run's adapter into run/merged/ (a no-op returning None for full fine-tuning).

    Refuses up front when the merge does not fit in memory or on disk; the logits
    check (both models at once) runs only when it fits, else it is skipped with a note.
    """
    from spark_tui.core.export.merge import merge_adapter

    if (Path(run.model_dir) / "config.json").exists():
        return None
    cfg = run.config()
    if plan is None:
        plan = merge_preflight(run, check=check, base=base, available_bytes=available_bytes)
    skipped = None
    if plan is not None:
        plan.check()
        stage = plan.get("merge check")
        if check and stage is not None and not stage.fits:
            skipped = f"merge logits check {stage.skip_reason()}"
    template = _template_for(cfg.model.chat_template)
    res = merge_adapter(
        Path(run.adapter_dir),
        Path(run.path) / "merged",
        base_model=base,
        model_id=cfg.model.id,
        qlora=cfg.method.adapter == "qlora",
        chat_template=template,
        check=check and skipped is None,
        progress=progress,
    )
    if skipped and isinstance(getattr(res, "notes", None), list):
        res.notes.append(skipped)
    return res


def _template_for(name: str) -> str | None:
    """The Dataset step's chatml / llama3 jinja template, for a named template override."""
    from spark_tui.core.data import templates

    return {"chatml": templates.CHATML_TEMPLATE, "llama3": templates.LLAMA3_TEMPLATE}.get(name)


# ---------------------------------------------------------------------------
# export


def export_model(
    model_dir: str | Path,
    out_dir: str | Path,
    types: list[str] | tuple[str, ...],
    *,
    stem: str | None = None,
    verify: bool = True,
    logits: bool = True,
    check_transformers: bool | None = None,
    llama_cpp_dir: str | Path | None = None,
    system: str | None = None,
    hf_answer: bool = True,
    max_new_tokens: int = 32,
    logit_prompts: int | None = None,
    available_bytes: int | None = None,
    plan: preflight.DeployPreflight | None = None,
    finetune: str | None = None,
    base_model: str | None = None,
    progress: Progress | None = None,
) -> ExportOutcome:
    """Export `model_dir` to every type in `types` under `out_dir`, verifying each file.

    `finetune` (the run's name) and `base_model` (the model it was tuned from) go into
    the GGUF's general.* metadata, which Ollama and llama.cpp show.

    The memory/disk preflight (`plan`, computed here when not given) refuses before
    any work when a required stage cannot fit; the logits check of a type that does
    not fit (or `logits=False`) is skipped with the reason in its report.
    """
    from spark_tui.core.export.gguf_writer import export_gguf, gguf_arch_for, read_config
    from spark_tui.core.export.quantize import export_with_checkout, quantize_gguf

    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    types = normalise_types(types)
    config = read_config(model_dir)
    if llama_cpp_dir is None:
        gguf_arch_for(config, str(model_dir / "config.json"))  # fail before any work
    stem = stem or model_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    if plan is None:
        plan = export_preflight(
            model_dir, out_dir, types, verify=verify, logits=logits,
            check_transformers=check_transformers, available_bytes=available_bytes,
        )  # fmt: skip
    plan.check()
    outcome = ExportOutcome(model_dir=model_dir, out_dir=out_dir, preflight=plan)

    need_f16 = llama_cpp_dir is None and any(t in K_QUANTS for t in types)
    order = (["f16"] if "f16" in types or need_f16 else []) + [t for t in types if t != "f16"]
    temp_f16: Path | None = None
    try:
        for t in order:
            final = out_dir / gguf_filename(stem, t)
            if t == "f16" and "f16" not in types:
                final = temp_f16 = temp_sibling(out_dir / gguf_filename(stem, "f16"))
            if llama_cpp_dir is not None:
                export_with_checkout(llama_cpp_dir, model_dir, final, t, progress=progress)
            elif t in K_QUANTS:
                f16 = temp_f16 or out_dir / gguf_filename(stem, "f16")
                quantize_gguf(f16, final, t, progress=progress)
            else:
                res = export_gguf(
                    model_dir,
                    final,
                    t,
                    name=stem,
                    finetune=finetune,
                    base_model=base_model,
                    progress=progress,
                )
                outcome.notes.extend(n for n in res.notes if n not in outcome.notes)
            if final != temp_f16:
                outcome.outputs[t] = final
    finally:
        if temp_f16 is not None:
            remove_path(temp_f16)

    if verify:
        from spark_tui.core.export.verify import Reference, verify_gguf

        # One Reference for all types: its cached logits/answers are computed once and its
        # HF model is freed before every llama.cpp load (never resident beside it).
        ref = Reference(model_dir)
        try:
            for t, path in outcome.outputs.items():
                rep = verify_gguf(
                    path,
                    model_dir,
                    gguf_type=t,
                    reference=ref,
                    system=system,
                    hf_answer=hf_answer,
                    max_new_tokens=max_new_tokens,
                    logit_prompts=logit_prompts,
                    check_transformers=check_transformers,
                    logits=logits,
                    available_bytes=plan.memory.bytes,
                    progress=progress,
                )
                outcome.verifications[t] = rep
                atomic_write_json(out_dir / f"verify-{t}.json", rep.to_dict())
        finally:
            ref.close()
    return outcome


def export_preflight(
    model_dir: str | Path,
    out_dir: str | Path,
    types: list[str] | tuple[str, ...],
    *,
    verify: bool = True,
    logits: bool = True,
    check_transformers: bool | None = None,
    available_bytes: int | None = None,
) -> preflight.DeployPreflight:
    """What `export_model` will need, stage by stage (shown before the work starts)."""
    return preflight.plan_export(
        model_dir,
        out_dir,
        normalise_types(types),
        verify=verify,
        logits=logits,
        check_transformers=check_transformers,
        available_bytes=available_bytes,
    )


# ---------------------------------------------------------------------------
# Ollama


def write_modelfiles(
    model_dir: str | Path,
    folder: str | Path,
    gguf_path: str | Path,
    *,
    system: str | None = None,
    num_ctx: int | None = None,
    family: str | None = None,
    quantize: str | None = "q4_K_M",
):
    """Write `Modelfile` (FROM the GGUF) and, where Ollama can convert the arch itself,
    `Modelfile.safetensors` (FROM the model folder).  Returns (gguf Modelfile, its path,
    safetensors Modelfile or None, its path or None)."""
    from transformers import AutoTokenizer

    from spark_tui.core.export.gguf_writer import read_config
    from spark_tui.core.export.modelfile import build_modelfile, supports_safetensors_import

    model_dir, folder, gguf_path = Path(model_dir), Path(folder), Path(gguf_path)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    config = read_config(model_dir)
    if num_ctx is None:
        num_ctx = min(int(config.get("max_position_embeddings") or 4096), 4096)
    mf = build_modelfile(
        _rel(gguf_path, folder), tok, system=system, num_ctx=num_ctx, family=family
    )
    mf_path = mf.write(folder / "Modelfile")
    st = st_path = None
    if supports_safetensors_import(config):
        st = build_modelfile(
            _rel(model_dir, folder),
            tok,
            system=system,
            num_ctx=num_ctx,
            family=family,
            quantize=quantize,
        )
        st_path = st.write(folder / "Modelfile.safetensors")
    return mf, mf_path, st, st_path


def _rel(target: Path, folder: Path) -> str:
    try:
        return "./" + str(target.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(target.resolve())


def save_summary(folder: str | Path, data: dict[str, Any]) -> None:
    """Merge one deploy action's result into `<folder>/deploy.json` (stamped with the time).

    For a run the folder is the run's own: the Deploy step shows the last report
    from there when the run is opened again.
    """
    path = Path(folder) / names.DEPLOY_FILE
    old = load_summary(folder)
    now = time.time()
    old.update({k: {**v, "saved": now} if isinstance(v, dict) else v for k, v in data.items()})
    atomic_write_json(path, old)


def load_summary(folder: str | Path) -> dict[str, Any]:
    """The saved deploy results of a folder ({} when none or unreadable)."""
    try:
        old = json.loads((Path(folder) / names.DEPLOY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return old if isinstance(old, dict) else {}
