"""Stop, Kill and Resume on the Train screen never block the event loop.

Each waits on the trainer (a signal, its lock, a launch: up to 10–20 s); the
screen hands them to a worker thread.  Here the core calls are replaced by
slow stand-ins that record the thread they run on.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from spark_tui.app import SparkTuiApp
from spark_tui.config import RunConfig
from spark_tui.core.train import process, runs
from spark_tui.screens.train import TrainScreen


@pytest.mark.parametrize(
    ("key", "call"),
    [("s", "stop_training"), ("r", "resume_training"), ("K", "kill_training")],
)
async def test_controls_run_in_a_worker(key, call, spark_home, monkeypatch, wait_until):
    run = runs.create_run(RunConfig(name="controls"))
    run.write_status(state="stopped", pid=os.getpid(), step=1, total_steps=5)
    ran: list[str] = []

    def slow(*_a, **_k):
        time.sleep(1.5)
        ran.append(threading.current_thread().name)
        return True

    monkeypatch.setattr(process, call, slow)
    monkeypatch.setattr(process, "start_training", slow)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.current_run = run
        app.show_step("train")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        start = time.monotonic()
        await pilot.press(key)
        if key == "K":  # the confirmation comes first
            await pilot.pause()
            await pilot.press("y")
        await pilot.pause()
        assert time.monotonic() - start < 1.0  # the loop answered while the call still ran
        await wait_until(pilot, lambda: bool(ran), 10, f"{call} to finish")
        assert ran[0] != threading.main_thread().name
