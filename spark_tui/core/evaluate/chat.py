"""Multi-turn chat with a run's model: base, tuned (adapter on), merged folder or GGUF file.

    session = open_chat(run, source="tuned", settings=ChatSettings(temperature=0.7))
    for chunk in session.send("What is LoRA?"):
        print(chunk, end="")
    session.close()

This module opens the session on the chosen model; the conversation itself is
`spark_tui.core.evaluate.chat_session` and the streaming backends are
`spark_tui.core.evaluate.chat_backends`.  A PEFT session can switch between
base and tuned with `set_source` without reloading anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.evaluate.chat_backends import HFBackend, LlamaCppBackend
from spark_tui.core.evaluate.chat_session import ChatError, ChatSession, ChatSettings
from spark_tui.core.evaluate.decoding import stop_token_ids
from spark_tui.core.evaluate.errors import EvalError
from spark_tui.core.evaluate.models import (
    RunModels,
    dtype_for,
    has_tokenizer,
    load_plain_model,
    load_run_models,
    pick_device,
    resolve_template,
)
from spark_tui.core.evaluate.quiet import quiet
from spark_tui.core.train.runs import Run, resolve_run

SOURCES = ("tuned", "base", "merged", "gguf")


def find_gguf(run: Run, name: str | None = None) -> Path:
    """The run's GGUF file: `name` inside gguf/ (or a path), else the newest one there."""
    if name:
        p = Path(name).expanduser()
        if p.is_file():
            return p
        p = run.path / names.GGUF_DIR / name
        if p.is_file():
            return p
        raise ChatError(f"no GGUF file {name} in {run.path / names.GGUF_DIR}")
    files = sorted((run.path / names.GGUF_DIR).glob("*.gguf"), key=lambda f: f.stat().st_mtime)
    if not files:
        raise ChatError(f"run {run.id} has no GGUF files; export one first (Export step)")
    return files[-1]


def open_chat(
    run: Run | str | Path,
    *,
    source: str = "tuned",
    settings: ChatSettings | None = None,
    gguf_file: str | None = None,
    device: str = "auto",
) -> ChatSession:
    """A chat with one of the run's models: "tuned", "base", "merged" or "gguf".

    "tuned" and "base" share one loaded model when the run has an adapter (so
    `set_source` can switch).  "base" on a run without trained weights loads
    only the base model.
    """
    if source not in SOURCES:
        raise ChatError(f"unknown chat source {source!r}; use one of {', '.join(SOURCES)}")
    run = run if isinstance(run, Run) else resolve_run(run)
    settings = settings or ChatSettings()
    settings.validate()
    if source == "gguf":
        path = find_gguf(run, gguf_file)
        cfg = run.config()
        tok = _tokenizer_for(run, cfg)
        template, _ = resolve_template(tok, cfg.model.chat_template)
        with quiet():
            backend: Any = LlamaCppBackend(path, template, tok)
        return ChatSession(backend, settings)
    if run.config().method.objective == "reward" and source != "base":
        raise ChatError(
            f"run {run.id} trained a reward model: it scores answers and cannot chat; "
            "chat with the base model instead"
        )
    output = {"merged": "merged", "tuned": "auto", "base": "auto"}[source]
    try:
        models = load_run_models(run, device=device, task="causal", output=output)
    except EvalError:
        if source != "base":
            raise
        models = load_run_models(run, device=device, task="causal", output="base")
    side = "base" if source == "base" else "tuned"
    return ChatSession(HFBackend(models, side), settings)


def open_model_chat(
    model_id: str = "default",
    *,
    settings: ChatSettings | None = None,
    chat_template: str = "auto",
    device: str = "auto",
) -> ChatSession:
    """A chat with a plain model (no run): "default", a local folder or a Hub id."""
    from spark_tui.core.model.resolve import resolve_model_path

    settings = settings or ChatSettings()
    settings.validate()
    path = resolve_model_path(model_id)
    with quiet():
        from transformers import AutoTokenizer

        dev = pick_device(device)
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        template, training = resolve_template(tok, chat_template)
        model = load_plain_model(path, "causal", dev, {"dtype": dtype_for(dev)}, tok)
    models = RunModels(
        run=None,
        tokenizer=tok,
        template=template,
        training_template=training,
        model=model,
        device=dev,
        kind="base",
        task="causal",
        base_path=path,
        stop_ids=stop_token_ids(tok, template),
    )
    return ChatSession(HFBackend(models, "base"), settings)


def _tokenizer_for(run: Run, cfg: Any) -> Any:
    from spark_tui.core.model.resolve import resolve_model_path

    for folder in (run.path / names.MERGED_DIR, run.output_dir):
        if has_tokenizer(folder):
            src = str(folder)
            break
    else:
        src = resolve_model_path(cfg.model.id)
    with quiet():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(src)
