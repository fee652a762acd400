"""The Train screen's charts: drawn at most once a second, and never under the Help panel."""

from __future__ import annotations

import asyncio

from spark_tui.app import SparkTuiApp
from spark_tui.core.train.curves import Curves
from spark_tui.core.train.process import FollowUpdate
from spark_tui.screens import train as train_screen
from spark_tui.screens.train import TrainScreen
from spark_tui.widgets.charts import LossChart


def _line(step: int) -> dict:
    return {"kind": "train", "step": step, "loss": 3.0 - step / 100, "learning_rate": 1e-4}


async def test_charts_are_throttled_and_wait_while_help_covers_them(spark_home, monkeypatch):
    monkeypatch.setattr(train_screen, "CHART_MIN_INTERVAL_S", 0.3)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.current_run = None  # no follower: the test hands the updates over itself
        screen = TrainScreen()
        app.push_screen(screen)
        await pilot.pause()
        chart = screen.query_one("#loss-chart", LossChart)
        curves = Curves()
        status = {"state": "training", "step": 1, "total_steps": 100}

        def update(step: int) -> None:
            up = FollowUpdate(status=dict(status, step=step), metrics=[_line(step)])
            curves.extend(up.metrics)
            screen.on_follow_update(up, curves)

        update(1)
        assert chart.points_drawn == 1  # the first update draws at once
        update(2)
        update(3)
        assert chart.points_drawn == 1  # within the interval: one drawing is due later
        await asyncio.sleep(0.5)
        await pilot.pause()
        assert chart.points_drawn == 3  # ... and it has all the points
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen is not screen
        await asyncio.sleep(0.4)
        update(4)
        await asyncio.sleep(0.5)
        await pilot.pause()
        assert chart.points_drawn == 3  # covered: nothing drawn
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await asyncio.sleep(0.3)
        await pilot.pause()
        assert chart.points_drawn == 8  # drawn once shown again: train + smoothed, 4 each
