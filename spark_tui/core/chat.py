"""Multi-turn chat with a run's model: base, tuned (adapter on), merged folder or GGUF file.

    session = open_chat(run, source="tuned", settings=ChatSettings(temperature=0.7))
    for chunk in session.send("What is LoRA?"):
        print(chunk, end="")
    session.close()

`ChatSession.send` streams text chunks as the model produces them.  For
transformers models the generation runs in a background thread feeding a
`TextIteratorStreamer`; for GGUF files llama-cpp-python streams itself.  The
prompt is always rendered with the run's chat template (the same one training
used), and generation stops at the template's end-of-turn tokens (``<|im_end|>``,
``<|eot_id|>``, ...) as well as EOS.  ``temperature = 0`` means greedy decoding.

`stop()` (from another thread, e.g. the TUI's Escape key) ends the current
answer early; the partial answer is kept in the history.  A PEFT session can
switch between base and tuned with `set_source` without reloading anything:
the base is the same weights inside PEFT's ``disable_adapter()``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from spark_tui.core.errors import SparkError
from spark_tui.core.runs import Run, resolve_run

SOURCES = ("tuned", "base", "merged", "gguf")

# End-of-turn markers of the common chat templates.  One is a stop token when
# the tokenizer knows it and the template uses it (or it is the EOS token).
END_OF_TURN = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
)


class ChatError(SparkError):
    """A chat that cannot start or continue; the message says what to do."""


@dataclass
class ChatSettings:
    system_prompt: str = ""
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.9
    max_new_tokens: int = 256

    def validate(self) -> None:
        if not 0.0 <= self.temperature <= 5.0:
            raise ChatError(f"temperature {self.temperature} is out of range; use 0 (greedy) to 5")
        if not 0.0 < self.top_p <= 1.0:
            raise ChatError(f"top_p {self.top_p} is out of range; use a value in (0, 1]")
        if self.max_new_tokens < 1:
            raise ChatError("max_new_tokens must be at least 1")


# --------------------------------------------------------------------------- helpers


def stop_token_ids(tokenizer: Any, template: str | None = None) -> list[int]:
    """EOS plus the end-of-turn tokens the template uses, as ids the tokenizer knows."""
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ids.append(eos)
    elif isinstance(eos, list):
        ids.extend(int(x) for x in eos)
    try:
        vocab = tokenizer.get_vocab()
    except Exception:  # noqa: BLE001
        vocab = {}
    for tok in END_OF_TURN:
        if tok in vocab and (template is None or tok in template):
            tid = int(vocab[tok])
            if tid not in ids:
                ids.append(tid)
    return ids


def stop_strings(tokenizer: Any, template: str | None) -> list[str]:
    """The end-of-turn strings of `template` (for backends that stop on text)."""
    out = [t for t in END_OF_TURN if template and t in template]
    eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
    if isinstance(eos, str) and eos and eos not in out:
        out.append(eos)
    return out


def generation_config(
    tokenizer: Any,
    stop_ids: list[int],
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
) -> Any:
    """A fresh GenerationConfig (the model's own sampling defaults are not inherited)."""
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id
    if pad is None:
        pad = stop_ids[0] if stop_ids else 0
    kw: dict[str, Any] = {
        "max_new_tokens": int(max_new_tokens),
        "eos_token_id": list(stop_ids) if stop_ids else tokenizer.eos_token_id,
        "pad_token_id": pad,
    }
    if temperature <= 0:
        kw["do_sample"] = False
    else:
        kw.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0)
    return GenerationConfig(**kw)


class _StopOnEvent:
    """A StoppingCriteria that ends generation when an Event is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class Backend(Protocol):
    label: str

    def stream(
        self, messages: list[dict[str, str]], settings: ChatSettings, stop: threading.Event
    ) -> Iterator[str]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- transformers


class HFBackend:
    """A transformers model (base, tuned via PEFT, full or merged), streamed from a thread."""

    def __init__(self, models: Any, side: str = "tuned") -> None:
        from spark_tui.core.data.templates import Renderer

        self.models = models
        self.side = side
        self.renderer = Renderer(models.template, models.tokenizer)
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.side

    @property
    def can_switch(self) -> bool:
        return self.models.kind in ("peft", "full")

    def _context_limit(self, model: Any) -> int:
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            v = getattr(getattr(model, "config", None), name, None)
            if isinstance(v, int) and v > 0:
                return v
        return 2048

    def prompt_ids(
        self, messages: list[dict[str, str]], settings: ChatSettings, limit: int
    ) -> list[int]:
        """Token ids of the rendered prompt; the oldest turns are dropped to fit `limit`."""
        tok = self.models.tokenizer
        msgs = list(messages)
        while True:
            text = self.renderer.render(msgs, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            budget = limit - settings.max_new_tokens
            first = 1 if msgs and msgs[0]["role"] == "system" else 0
            if len(ids) <= budget or len(msgs) - first <= 1:
                return list(ids)[-max(1, budget) :]
            del msgs[first]  # drop the oldest turn (keep the system prompt)

    def stream(
        self, messages: list[dict[str, str]], settings: ChatSettings, stop: threading.Event
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        from spark_tui.core.evaluate import quiet

        models = self.models
        tok = models.tokenizer
        with self._lock, quiet(), models.use(self.side) as model:
            ids = self.prompt_ids(messages, settings, self._context_limit(model))
            dev = next(model.parameters()).device
            input_ids = torch.tensor([ids], dtype=torch.long, device=dev)
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
            gen_cfg = generation_config(
                tok,
                models.stop_ids,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_new_tokens=settings.max_new_tokens,
            )
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    with torch.inference_mode():
                        model.generate(
                            input_ids=input_ids,
                            attention_mask=torch.ones_like(input_ids),
                            generation_config=gen_cfg,
                            streamer=streamer,
                            stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                        )
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                    errors.append(exc)
                    streamer.end()

            thread = threading.Thread(target=work, name="spark-chat-generate", daemon=True)
            thread.start()
            try:
                for chunk in streamer:
                    if chunk:
                        yield chunk
            finally:
                stop.set()
                thread.join()
            if errors:
                raise ChatError(
                    f"generation failed: {type(errors[0]).__name__}: {errors[0]}"
                ) from errors[0]

    def close(self) -> None:
        self.models.close()


# --------------------------------------------------------------------------- llama.cpp


class LlamaCppBackend:
    """A GGUF file through llama-cpp-python (CPU, or GPU when its build has CUDA)."""

    def __init__(
        self,
        path: str | Path,
        template: str,
        tokenizer: Any = None,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int | None = None,
    ) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ChatError(
                "chatting with a GGUF file needs llama-cpp-python; install it "
                '(CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install llama-cpp-python)'
            ) from exc
        from spark_tui.core.data.templates import Renderer

        self.path = Path(path)
        if not self.path.is_file():
            raise ChatError(f"GGUF file {self.path} does not exist; export the run first")
        if n_gpu_layers is None:
            n_gpu_layers = -1 if _llama_supports_gpu() else 0
        self.llm = Llama(
            model_path=str(self.path), n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, verbose=False
        )
        self.renderer = Renderer(template, tokenizer)
        self.stop_strings = stop_strings(tokenizer, template)
        self.n_ctx = n_ctx
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return f"gguf:{self.path.name}"

    can_switch = False

    def stream(
        self, messages: list[dict[str, str]], settings: ChatSettings, stop: threading.Event
    ) -> Iterator[str]:
        msgs = list(messages)
        with self._lock:
            while True:
                text = self.renderer.render(msgs, add_generation_prompt=True)
                ids = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
                first = 1 if msgs and msgs[0]["role"] == "system" else 0
                if len(ids) + settings.max_new_tokens <= self.n_ctx or len(msgs) - first <= 1:
                    break
                del msgs[first]
            ids = ids[-max(1, self.n_ctx - settings.max_new_tokens) :]
            greedy = settings.temperature <= 0
            it = self.llm.create_completion(
                ids,
                max_tokens=settings.max_new_tokens,
                temperature=0.0 if greedy else settings.temperature,
                top_p=1.0 if greedy else settings.top_p,
                top_k=1 if greedy else 0,
                stop=self.stop_strings or None,
                stream=True,
            )
            try:
                for part in it:
                    if stop.is_set():
                        break
                    chunk = part["choices"][0].get("text") or ""
                    if chunk:
                        yield chunk
            finally:
                with contextlib.suppress(Exception):
                    it.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.close()


def _llama_supports_gpu() -> bool:
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- the session


@dataclass
class ChatSession:
    """One conversation.  `messages` holds the turns (the system prompt is added on render)."""

    backend: Any
    settings: ChatSettings = field(default_factory=ChatSettings)
    messages: list[dict[str, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def source(self) -> str:
        return self.backend.label

    @property
    def can_switch(self) -> bool:
        """True when `set_source` can toggle base/tuned without reloading."""
        return bool(getattr(self.backend, "can_switch", False))

    def set_source(self, side: str) -> None:
        if side not in ("base", "tuned"):
            raise ChatError(f"source must be 'base' or 'tuned', not {side!r}")
        if not self.can_switch:
            raise ChatError(f"this chat ({self.source}) cannot switch between base and tuned")
        self.backend.side = side

    def conversation(self) -> list[dict[str, str]]:
        """The messages as the model sees them (system prompt first, if any)."""
        sys = self.settings.system_prompt.strip()
        return ([{"role": "system", "content": sys}] if sys else []) + list(self.messages)

    def send(self, text: str) -> Iterator[str]:
        """Add a user turn and stream the answer; the answer joins the history when done."""
        self.settings.validate()
        if not text.strip():
            raise ChatError("the message is empty")
        self.messages.append({"role": "user", "content": text})
        self._stop.clear()
        parts: list[str] = []
        finished = False
        try:
            for chunk in self.backend.stream(self.conversation(), self.settings, self._stop):
                parts.append(chunk)
                yield chunk
            finished = True
        finally:
            if parts or finished:
                self.messages.append({"role": "assistant", "content": "".join(parts).strip()})
            else:
                self.messages.pop()  # nothing came back: forget the question too

    def reply(self, text: str) -> str:
        """`send` without streaming: the whole answer."""
        return "".join(self.send(text)).strip()

    def stop(self) -> None:
        """End the current answer early (thread-safe)."""
        self._stop.set()

    def reset(self) -> None:
        self.messages.clear()

    def undo(self) -> None:
        """Forget the last exchange (user turn and its answer)."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        if self.messages and self.messages[-1]["role"] == "user":
            self.messages.pop()

    def close(self) -> None:
        self.stop()
        self.backend.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def find_gguf(run: Run, name: str | None = None) -> Path:
    """The run's GGUF file: `name` inside gguf/ (or a path), else the newest one there."""
    if name:
        p = Path(name).expanduser()
        if p.is_file():
            return p
        p = run.path / "gguf" / name
        if p.is_file():
            return p
        raise ChatError(f"no GGUF file {name} in {run.path / 'gguf'}")
    files = sorted((run.path / "gguf").glob("*.gguf"), key=lambda f: f.stat().st_mtime)
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
    from spark_tui.core.evaluate import EvalError, load_run_models, quiet

    if source not in SOURCES:
        raise ChatError(f"unknown chat source {source!r}; use one of {', '.join(SOURCES)}")
    run = run if isinstance(run, Run) else resolve_run(run)
    settings = settings or ChatSettings()
    settings.validate()
    if source == "gguf":
        path = find_gguf(run, gguf_file)
        cfg = run.config()
        tok = _tokenizer_for(run, cfg)
        from spark_tui.core.evaluate import resolve_template

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
    from spark_tui.core.evaluate import (
        RunModels,
        dtype_for,
        load_plain_model,
        pick_device,
        quiet,
        resolve_template,
    )
    from spark_tui.core.models import resolve_model_path

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
    from spark_tui.core.evaluate import has_tokenizer, quiet
    from spark_tui.core.models import resolve_model_path

    for folder in (run.path / "merged", run.output_dir):
        if has_tokenizer(folder):
            src = str(folder)
            break
    else:
        src = resolve_model_path(cfg.model.id)
    with quiet():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(src)
