"""The help panel (F1 or ?): course guidance for the current screen, in plain words."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Markdown

from spark_tui.screens.help_text import help_for


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close help")]

    def __init__(self, topic: str) -> None:
        super().__init__()
        self.topic = topic

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            with VerticalScroll(id="help-scroll"):
                yield Markdown(help_for(self.topic), id="help-text")
            yield Button("Close (Esc)", id="help-close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def on_screen_resume(self) -> None:  # shown again (the app keeps one per topic)
        self.query_one("#help-scroll").focus()

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
