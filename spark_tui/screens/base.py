"""The frame every wizard step shares: step bar, body, a hint line for Next, Back/Next buttons."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from spark_tui.core.base.errors import SparkError
from spark_tui.widgets.step_bar import StepBar


class StepScreen(Screen):
    """Base class of a wizard step.

    Subclasses set `STEP`, implement `compose_body()`, and override
    `validate_step()` to say whether Next is allowed (and why not), and
    `commit()` to write their choices into `self.app.config`.
    """

    STEP = ""
    # Focus Next once the step is valid, so a newcomer taking every default only
    # presses Enter (the tmux walkthrough counts the keys).
    FOCUS_NEXT_WHEN_READY = False
    _next_focused = False
    BINDINGS = [
        Binding("ctrl+n", "next", "Next"),
        Binding("ctrl+b", "back", "Back"),
        Binding("f1,question_mark", "app.help", "Help"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield StepBar(self.STEP, id="step-bar")
        with Vertical(id="step-body"):
            yield from self.compose_body()
        with Horizontal(id="step-nav"):
            yield Button("◀ Back", id="back", compact=True)
            yield Static("", id="next-reason")
            yield Button("Next ▶", id="next", variant="primary", compact=True)
        yield Footer(compact=True)  # every key of the step fits in 80 columns

    def compose_body(self) -> ComposeResult:  # pragma: no cover - abstract
        yield Static("")

    # -- validation -------------------------------------------------------
    def validate_step(self) -> tuple[bool, str]:
        """(ok, reason shown next to Next when not ok)."""
        return True, ""

    def commit(self) -> None:
        """Write this step's choices into the app's RunConfig."""

    def show_text(self, selector: str, text: str) -> None:
        """Update a Static only when its text changes: an update re-lays the screen out,
        and a screen polled twice a second would otherwise repaint for nothing."""
        shown = self.__dict__.setdefault("_shown_text", {})
        if shown.get(selector) == text:
            return
        self.query_one(selector, Static).update(text)
        shown[selector] = text

    def refresh_nav(self) -> None:
        ok, reason = self.validate_step()
        try:
            nxt = self.query_one("#next", Button)
            if nxt.disabled != (not ok):
                nxt.disabled = not ok
            self.show_text("#next-reason", reason if not ok else "")
        except Exception:  # not mounted yet
            return
        if ok and self.FOCUS_NEXT_WHEN_READY and not self._next_focused and self.is_current:
            self._next_focused = True
            nxt.focus()

    def on_mount(self) -> None:
        self.refresh_nav()

    def on_screen_resume(self) -> None:
        self.refresh_nav()

    # -- navigation -------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            event.stop()
            self.action_next()
        elif event.button.id == "back":
            event.stop()
            self.action_back()

    def action_next(self) -> None:
        ok, reason = self.validate_step()
        if not ok:
            self.notify(reason, severity="warning", title="Not yet")
            return
        try:
            self.commit()
        except SparkError as exc:
            self.notify(str(exc), severity="error", title="Cannot continue")
            return
        self.app.next_step(self.STEP)

    def action_back(self) -> None:
        self.app.pop_screen()
