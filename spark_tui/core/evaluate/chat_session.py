"""One conversation with a model: its turns, its settings, and the backend that answers.

`ChatSession.send` streams text chunks as the backend produces them; the answer
joins the history when done.  `stop()` (from another thread, e.g. the TUI's
Escape key) ends the current answer early; the partial answer is kept in the
history.  The backends (transformers or llama.cpp) live in
`spark_tui.core.evaluate.chat_backends`; `spark_tui.core.evaluate.chat` opens a
session on one of a run's models.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from spark_tui.core.base.errors import SparkError


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


class Backend(Protocol):
    label: str

    def stream(
        self, messages: list[dict[str, str]], settings: ChatSettings, stop: threading.Event
    ) -> Iterator[str]: ...

    def close(self) -> None: ...


@dataclass
class ChatSession:
    """One conversation.  `messages` holds the turns (the system prompt is added on render)."""

    backend: Backend
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
