"""The Train screen follows a real detached training process of the default model."""

from __future__ import annotations

import pytest
from textual.widgets import ProgressBar

from spark_tui.app import SparkTuiApp
from spark_tui.config import RunConfig
from spark_tui.core import process, runs
from spark_tui.screens.train import TrainScreen
from spark_tui.widgets.charts import LossChart


@pytest.mark.slow
async def test_train_screen_follows_live_run_and_stops(spark_home, default_model_dir, wait_until):
    cfg = RunConfig(name="live-tui")
    cfg.train.max_steps = 40
    cfg.train.micro_batch_size = 2
    cfg.train.save_steps = 2
    cfg.train.logging_steps = 1
    cfg.data.max_length = 64
    cfg.lora.r = 4
    run = runs.create_run(cfg)
    process.start_training(run)
    app = SparkTuiApp(preload=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.current_run = run
            app.show_step("train")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            await wait_until(pilot, lambda: len([m for m in screen.metrics if m.get("loss") is not None]) >= 2,
                            300, "two logged losses")
            bar = screen.query_one("#train-progress", ProgressBar)
            assert bar.progress >= 2
            assert screen.query_one("#loss-chart", LossChart).points_drawn >= 2
            await pilot.press("s")
            await wait_until(pilot, lambda: screen.state in ("stopped", "finished"), 300, "the run to stop")
            assert run.latest_checkpoint() is not None or run.output_dir.exists()
            assert "Stopped" in str(screen.query_one("#train-message").render()) or screen.state == "finished"
    finally:
        process.kill_training(run)
