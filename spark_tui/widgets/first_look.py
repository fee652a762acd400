"""The Train screen's "what changed" panel, shown next to the loss curve when a run finishes.

A thread worker calls `core.evaluate.first_look` (a few held-out rows and three
prompts, base and tuned) and the panel draws its lines; the figures come back
through `call_from_thread`, so scoring never blocks a key.  `pause()` cancels
the work at the next batch (the user moved on: the Evaluate step does the full
comparison); `start()` again resumes it, or shows the kept result at once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.widgets import Static

from spark_tui.core.base.errors import SparkError

log = logging.getLogger("spark_tui")


class FirstLookPanel(Static):
    """Held-out loss before → after and a few base-vs-tuned answers of a finished run."""

    DEFAULT_CSS = """
    FirstLookPanel { width: 1fr; height: 1fr; padding: 0 1; border-left: solid $panel; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.look: dict[str, Any] | None = None
        self.error = ""
        self._run_path: Path | None = None
        self._busy = False
        self._cancel = False

    @property
    def done(self) -> bool:
        return self.look is not None or bool(self.error)

    def start(self, run: Any) -> None:
        """Take (or show the kept) first look of `run`; a no-op while one is under way."""
        if Path(run.path) != self._run_path:
            self.look, self.error = None, ""
            self._run_path = Path(run.path)
        if self.done or self._busy:
            return
        self._busy, self._cancel = True, False
        self.update(Text("What changed: base and tuned on a few held-out prompts…", style="dim"))
        self._compute(run)

    def pause(self) -> None:
        """Stop the scoring at its next batch; `start` picks it up again."""
        self._cancel = True

    @work(thread=True, exclusive=True, group="first-look", exit_on_error=False)
    def _compute(self, run: Any) -> None:
        from spark_tui.core.evaluate import first_look
        from spark_tui.core.evaluate.errors import EvalCancelled

        try:
            look = first_look.first_look(
                run,
                progress=lambda f, m: self.app.call_from_thread(self._progress, f, m),
                cancel=lambda: self._cancel,
            )
        except EvalCancelled:
            self.app.call_from_thread(self._finish, None, "")
            return
        except SparkError as exc:
            self.app.call_from_thread(self._finish, None, str(exc))
            return
        except Exception as exc:  # never a traceback in the UI; the log has it
            log.exception("first look failed")
            self.app.call_from_thread(self._finish, None, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._finish, look, "")

    def _progress(self, fraction: float, message: str) -> None:
        if not self.done:
            self.update(Text(f"What changed: {message}… {fraction:.0%}", style="dim"))

    def _finish(self, look: dict[str, Any] | None, error: str) -> None:
        self._busy = False
        self.look, self.error = look, error
        self.draw()

    def draw(self) -> None:
        if self.look is not None:
            from spark_tui.core.evaluate.first_look import look_lines

            width = max(10, self.content_size.width or 38)
            text = Text("What changed\n", style="bold")
            text.append("\n".join(look_lines(self.look, width)))
            self.update(text)
        elif self.error:
            self.update(Text(f"No first look: {self.error}", style="dim"))

    def on_resize(self) -> None:
        if self.look is not None:
            self.draw()
