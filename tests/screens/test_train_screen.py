"""The Train screen follows a real detached training process of the default model.

One live run serves the whole story: a TUI follows it, quits mid-run (the
process keeps training), a new TUI re-attaches from the run folder and shows
the whole curve, then Stop saves a checkpoint.
"""

from __future__ import annotations

import pytest
from textual.widgets import ProgressBar

from spark_tui.app import SparkTuiApp
from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.train import process, runs
from spark_tui.screens.train import TrainScreen
from spark_tui.widgets.charts import LossChart


def _losses(metrics) -> int:
    return len([m for m in metrics if m.get("loss") is not None])


@pytest.mark.slow
async def test_train_screen_follows_quits_reattaches_and_stops(spark_home, default_model_dir, wait_until):
    cfg = RunConfig(name="live-tui")
    cfg.train.max_steps = 60
    cfg.train.micro_batch_size = 2
    cfg.train.save_steps = 2
    cfg.train.logging_steps = 1
    cfg.data.max_length = 64
    cfg.lora.r = 4
    run = runs.create_run(cfg)
    process.start_training(run)
    try:
        # 1. Follow the live run, then quit the TUI mid-run.
        app = SparkTuiApp(preload=False)
        async with app.run_test(size=(100, 30)) as pilot:
            app.current_run = run
            app.show_step("train")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            await wait_until(pilot, lambda: _losses(screen.metrics) >= 2, 300, "two logged losses")
            assert screen.query_one("#train-progress", ProgressBar).progress >= 2
            chart = screen.query_one("#loss-chart", LossChart)  # drawn at most once a second
            await wait_until(pilot, lambda: chart.points_drawn >= 2, 10, "the chart to draw them")
            seen_before_quit = _losses(screen.metrics)
        # 2. The process keeps training without any TUI.
        assert run.status()["state"] in names.ACTIVE_STATES
        import asyncio
        import time

        end = time.time() + 300
        while _losses(run.metrics()) <= seen_before_quit + 1 and time.time() < end:
            await asyncio.sleep(0.5)
        assert _losses(run.metrics()) > seen_before_quit + 1
        # 3. A new TUI re-attaches from the welcome screen's run list and shows the whole curve.
        app2 = SparkTuiApp(preload=False)
        async with app2.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app2.open_run(str(run.path))
            await pilot.pause()
            screen = app2.screen
            assert isinstance(screen, TrainScreen)
            await wait_until(pilot, lambda: _losses(screen.metrics) > seen_before_quit + 1, 120, "the whole curve")
            first_steps = [m["step"] for m in screen.metrics if m.get("loss") is not None][:2]
            assert first_steps == [1, 2]  # from the start, not from when we re-attached
            # 4. Stop: a checkpoint is saved and the state says so.
            await pilot.press("s")
            await wait_until(pilot, lambda: screen.state in ("stopped", "finished"), 300, "the run to stop")
            assert run.latest_checkpoint() is not None or run.output_dir.exists()
            if screen.state == "stopped":
                assert "Stopped" in str(screen.query_one("#train-message").render())
    finally:
        process.kill_training(run)
