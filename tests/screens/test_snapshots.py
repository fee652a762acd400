"""Snapshot tests (pytest-textual-snapshot) of screens whose content is deterministic.

Regenerate after an intended change with `pytest tests/screens/test_snapshots.py --snapshot-update`.
Each also checks that no text is lost at 256 or 16 colours (`colours.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from textual.app import App

import spark_tui.app
from spark_tui.app import SparkTuiApp
from spark_tui.screens.confirm import ConfirmScreen
from spark_tui.screens.help import HelpScreen
from spark_tui.screens.help_text import HELP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colours  # noqa: E402

SIZE = (80, 24)


class _Host(App):
    CSS_PATH = str(Path(spark_tui.app.__file__).with_name("app.tcss"))

    def __init__(self, screen) -> None:
        super().__init__()
        self._first = screen

    def on_mount(self) -> None:
        self.push_screen(self._first)


@pytest.mark.parametrize("topic", sorted(HELP))
def test_help_panel(snap_compare, topic):
    check = colours.Check()
    assert snap_compare(_Host(HelpScreen(topic)), terminal_size=SIZE, run_before=check)
    check.assert_none_lost()


def test_quit_confirmation(snap_compare):
    screen = ConfirmScreen("Run demo is still training.\n\nQuit spark-tui?", yes="Quit", no="Stay")
    check = colours.Check()
    assert snap_compare(_Host(screen), terminal_size=SIZE, run_before=check)
    check.assert_none_lost()


def test_method_screen(snap_compare, spark_home):
    app = SparkTuiApp(preload=False)

    async def open_method(pilot):
        app.show_step("method")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()

    check = colours.Check(open_method)
    assert snap_compare(app, terminal_size=SIZE, run_before=check)
    check.assert_none_lost()
