"""The 256/16-colour check finds text that a smaller palette loses, and only that."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Static

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colours  # noqa: E402


class _Two(App):
    CSS = """
    Screen { background: #121212; }
    #lost { color: #1e1e1e; }
    #kept { color: #e0e0e0; }
    #bar { color: #1e1e1e; }
    """

    def compose(self) -> ComposeResult:
        yield Static("secret", id="lost")
        yield Static("plain", id="kept")
        yield Static("━━━━", id="bar")  # decoration: a lost track is no lost information


async def test_text_that_16_colours_lose_is_found():
    app = _Two()
    async with app.run_test(size=(30, 5)) as pilot:
        await pilot.pause()
        found = colours.hidden_text(app)
    assert any("16 colours" in f and "'secret'" in f for f in found), found
    assert not any("plain" in f or "━" in f for f in found), found
