"""A finished run's Train screen shows what changed next to the curve, and keeps it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "evaluate"))
import conftest_eval  # noqa: E402

from spark_tui.app import SparkTuiApp  # noqa: E402
from spark_tui.core.base import names  # noqa: E402
from spark_tui.screens.train import TrainScreen  # noqa: E402
from spark_tui.widgets.first_look import FirstLookPanel  # noqa: E402


@pytest.mark.slow
async def test_a_finished_run_shows_losses_and_answers_before_and_after(
    spark_home, default_model_dir, wait_until
):
    run = conftest_eval.make_sft_run(spark_home / "runs", default_model_dir, name="looked")
    run.write_status(state="finished", step=6, total_steps=6)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.current_run = run
        app.show_step("train")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        panel = screen.query_one("#first-look", FirstLookPanel)
        await wait_until(pilot, lambda: panel.done, 240, "the first look")
        assert panel.error == ""
        shown = str(panel.render())
        assert "What changed" in shown and "held-out loss" in shown and "→" in shown
        assert "base:" in shown and "tuned:" in shown
        assert not screen.query_one("#side-charts").display or "looked" in screen.query_one(
            "#train-charts"
        ).classes
    assert (run.path / names.FIRST_LOOK_FILE).exists()
    # Opened again: the kept look is shown without scoring anything.
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.current_run = run
        app.show_step("train")
        await pilot.pause()
        panel = app.screen.query_one("#first-look", FirstLookPanel)
        await wait_until(pilot, lambda: panel.done, 30, "the kept first look")
        assert "held-out loss" in str(panel.render())
