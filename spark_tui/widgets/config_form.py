"""A form bound to dotted RunConfig keys: one row per setting, validated as you type.

Each row is a label, an editor chosen by the value's type (Switch for booleans,
Select for choices, Input for numbers and text) and nothing else: the one-line
help of the focused field is shown by the screen, so 80x24 stays readable.
Values are validated with `RunConfig.with_value`, the same check `run.toml`
gets, and a bad value shows its reason beside the field instead of being kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from spark_tui.config import ConfigError, RunConfig


@dataclass
class Field:
    key: str  # dotted RunConfig key
    label: str
    choices: dict[str, str] | None = None  # value -> display label
    recommended: Any = None  # marked with ★ in the label


# What a Select holds when nothing is chosen: `Select.NULL` in Textual 8 (where
# `Select.BLANK` is only a deprecated False), `Select.BLANK` before.
NO_CHOICE = getattr(Select, "NULL", Select.BLANK)


def no_choice(value: object) -> bool:
    return value is NO_CHOICE or value is Select.BLANK


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-")


class ConfigForm(VerticalScroll):
    """Rows of settings bound to `config`; posts `ConfigForm.Changed` with a new config."""

    DEFAULT_CSS = """
    ConfigForm { height: 1fr; }
    ConfigForm .form-row { height: 1; margin: 0; }
    ConfigForm .form-label { width: 24; padding: 0 1 0 0; }
    ConfigForm .form-editor { width: 24; }
    ConfigForm Input.form-editor { width: 24; }
    ConfigForm .form-error { width: 1fr; color: $error; padding: 0 1; }
    ConfigForm Switch.form-editor { width: 8; height: 1; border: none; padding: 0; }
    ConfigForm .form-state { width: 4; padding: 0 0 0 1; }
    """

    class Changed(Message):
        def __init__(self, form: ConfigForm, key: str, config: RunConfig) -> None:
            super().__init__()
            self.form = form
            self.key = key
            self.config = config

    class Focused(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, fields: list[Field], config: RunConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fields = fields
        self.config = config
        self._loading = False

    def compose(self) -> ComposeResult:
        for f in self.fields:
            with Horizontal(classes="form-row"):
                star = " ★" if f.recommended is not None and self.config.get(f.key) == f.recommended else ""
                yield Label(f.label + star, classes="form-label")
                yield self._editor(f)
                if isinstance(self.config.get(f.key), bool) and f.choices is None:
                    # A one-row switch is a bare bar: the word says which way it is set.
                    yield Label(_on_off(self.config.get(f.key)), id=field_id(f.key) + "-state",
                                classes="form-state")  # fmt: skip
                yield Static("", id=field_id(f.key) + "-err", classes="form-error")

    def _editor(self, f: Field) -> Widget:
        value = self.config.get(f.key)
        wid = field_id(f.key)
        if f.choices is not None:
            options = [(label, v) for v, label in f.choices.items()]
            return Select(options, value=value, allow_blank=False, id=wid, classes="form-editor", compact=True)
        if isinstance(value, bool):
            return Switch(value=value, id=wid, classes="form-editor", animate=False)
        if isinstance(value, int):
            return Input(str(value), id=wid, type="integer", classes="form-editor", compact=True)
        if isinstance(value, float):
            return Input(_fmt_float(value), id=wid, type="number", classes="form-editor", compact=True)
        return Input(str(value), id=wid, classes="form-editor", compact=True)

    # -- syncing -----------------------------------------------------------
    def load(self, config: RunConfig) -> None:
        """Show another config (e.g. after a preset) without emitting Changed."""
        self.config = config
        self._loading = True
        try:
            for f in self.fields:
                value = config.get(f.key)
                w = self.query_one("#" + field_id(f.key))
                if isinstance(w, Select):
                    w.value = value
                elif isinstance(w, Switch):
                    w.value = bool(value)
                    self._show_state(w, bool(value))
                elif isinstance(w, Input):
                    w.value = _fmt_float(value) if isinstance(value, float) else str(value)
                self.query_one("#" + field_id(f.key) + "-err", Static).update("")
        finally:
            self.call_after_refresh(self._done_loading)

    def _done_loading(self) -> None:
        self._loading = False

    def _key_of(self, widget: Widget) -> str | None:
        for f in self.fields:
            if widget.id == field_id(f.key):
                return f.key
        return None

    def _apply(self, widget: Widget, raw: Any) -> None:
        if self._loading:
            return
        key = self._key_of(widget)
        if key is None:
            return
        err = self.query_one("#" + field_id(key) + "-err", Static)
        current = self.config.get(key)
        try:
            value = _parse(raw, current)
            new = self.config.with_value(key, value)
        except (ValueError, ConfigError) as exc:
            msg = str(exc)
            err.update(msg.split(": ", 1)[-1] if "'" in msg else msg)
            return
        err.update("")
        if new != self.config:
            self.config = new
            self.post_message(self.Changed(self, key, new))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value.strip() in ("", "-", "."):
            return
        self._apply(event.input, event.value)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if not no_choice(event.value):
            self._apply(event.select, event.value)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._show_state(event.switch, event.value)
        self._apply(event.switch, event.value)

    def _show_state(self, switch: Switch, value: bool) -> None:
        for label in self.query(f"#{switch.id}-state"):
            if isinstance(label, Label):
                label.update(_on_off(value))

    def on_descendant_focus(self, event) -> None:
        key = self._key_of(event.widget)
        if key:
            self.post_message(self.Focused(key))

    def errors(self) -> dict[str, str]:
        out = {}
        for f in self.fields:
            text = str(self.query_one("#" + field_id(f.key) + "-err", Static).render())
            if text.strip():
                out[f.key] = text
        return out


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def _fmt_float(v: float) -> str:
    return f"{v:g}"


def _parse(raw: Any, current: Any) -> Any:
    if isinstance(current, bool):
        return bool(raw)
    if isinstance(current, int) and not isinstance(raw, int):
        return int(str(raw).strip())
    if isinstance(current, float) and not isinstance(raw, float):
        return float(str(raw).strip())
    return raw
