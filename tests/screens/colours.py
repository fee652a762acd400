"""Text a 256- or 16-colour terminal would not show.

Textual draws in truecolor and Rich turns every colour into the nearest of 256 or 16 when the
terminal has no more (TERM=xterm-256color, a plain xterm or the Linux console over SSH).  Two
colours that differ in truecolor can become the same one there: the text vanishes into its
background.  This renders the current screen the way `App.export_screenshot` does and
reports every run of text whose foreground and background differ in truecolor but match
after that downgrade (the same colour in truecolor is a deliberate blank, not a loss).
Box-drawing and block characters are left out: a bar's unfilled track, a tab's underline or
the footer's separator fading into the background loses no information (the value is
printed beside each bar); letters, digits, marks and chart points (braille) are checked.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.cells import cell_len
from rich.color import Color, ColorSystem
from rich.console import Console
from rich.style import Style

SYSTEMS = {"256 colours": ColorSystem.EIGHT_BIT, "16 colours": ColorSystem.STANDARD}


def _cells(app: Any) -> Iterator[tuple[int, int, str, Style | None]]:
    """(row, column, text, style) of each rendered segment of the current screen."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True,
        color_system="truecolor", record=True, legacy_windows=False, safe_box=False,
    )  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True))
    row = col = 0
    for seg in console._record_buffer:
        for i, part in enumerate(seg.text.split("\n")):
            if i:
                row, col = row + 1, 0
            if part:
                yield row, col, part, seg.style
                col += cell_len(part)


def _decoration(ch: str) -> bool:
    return "\u2500" <= ch <= "\u259f"  # box drawing, block elements


def _key(color: Color, system: ColorSystem) -> tuple[Any, ...]:
    c = color.downgrade(system)
    return (c.number, c.triplet)


def hidden_text(app: Any) -> list[str]:
    """One line per run of text that a 256- or 16-colour terminal shows as blank."""
    found: list[str] = []
    for row, col, text, style in _cells(app):
        shown = "".join(ch for ch in text if not ch.isspace() and not _decoration(ch))
        if style is None or not shown:
            continue
        fg, bg = style.color, style.bgcolor
        if style.reverse:
            fg, bg = bg, fg
        if fg is None or bg is None or fg.get_truecolor() == bg.get_truecolor():
            continue
        for name, system in SYSTEMS.items():
            if _key(fg, system) == _key(bg, system):
                found.append(
                    f"{name}: row {row} col {col} {shown[:30]!r}: "
                    f"{fg.get_truecolor().hex} on {bg.get_truecolor().hex} both become "
                    f"{fg.downgrade(system).name}"
                )
    return found


@dataclass
class Check:
    """run_before for `snap_compare` that also looks for lost text on the same app."""

    run_before: Callable[[Any], Awaitable[None]] | None = None
    ran: bool = False
    found: list[str] = field(default_factory=list)

    async def __call__(self, pilot: Any) -> None:
        if self.run_before is not None:
            await self.run_before(pilot)
        else:
            await pilot.pause()
        self.found, self.ran = hidden_text(pilot.app), True

    def assert_none_lost(self) -> None:
        assert self.ran, "the screen was never rendered"
        assert self.found == [], "\n".join(self.found)
