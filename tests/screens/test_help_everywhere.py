"""Every screen has help: F1 opens the help panel with that screen's topic."""

from __future__ import annotations

import pytest

from spark_tui.app import STEP_NAMES, SparkTuiApp
from spark_tui.screens.help import HelpScreen
from spark_tui.screens.help_text import HELP


@pytest.mark.parametrize("step", STEP_NAMES)
async def test_f1_opens_help_for_step(step, spark_home):
    assert step in HELP
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_step(step)
        await pilot.pause()
        assert getattr(app.screen, "STEP", "") == step
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and app.screen.topic == step
        await pilot.press("escape")
        await pilot.pause()
        assert getattr(app.screen, "STEP", "") == step
