"""The two ways a chat's answer is produced: a transformers model or a GGUF file.

For transformers models (base, tuned via PEFT, full or merged) the generation
runs in a background thread feeding a `TextIteratorStreamer`; for GGUF files
llama-cpp-python streams itself.  The prompt is always rendered with the run's
chat template (the same one training used), and generation stops at the
template's end-of-turn tokens as well as EOS.  ``temperature = 0`` means greedy
decoding.  A PEFT backend switches between base and tuned without reloading
anything: the base is the same weights inside PEFT's ``disable_adapter()``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spark_tui.core.evaluate.chat_session import ChatError, ChatSettings
from spark_tui.core.evaluate.decoding import generation_config, stop_strings
from spark_tui.core.evaluate.quiet import quiet


class _StopOnEvent:
    """A StoppingCriteria that ends generation when an Event is set."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


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
