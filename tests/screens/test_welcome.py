from __future__ import annotations

from textual.widgets import Button, DataTable, Static

from spark_tui.app import SparkTuiApp
from spark_tui.config import RunConfig
from spark_tui.core.train import runs as runs_core
from spark_tui.screens.welcome import WelcomeScreen


async def test_welcome_screen_opens_at_80x24(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        assert app.screen.query_one("#new", Button)
        await app.workers.wait_for_complete()
        await pilot.pause()
        summary = str(app.screen.query_one("#system-summary", Static).render())
        assert "CPU" in summary and "Memory" in summary and "GB" in summary


async def test_welcome_lists_runs_and_help_opens(spark_home):
    run = runs_core.create_run(RunConfig(name="demo"))
    run.write_status(state="finished", step=3, total_steps=3)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs-table", DataTable)
        assert table.row_count == 1
        assert "finished" in str(table.get_row_at(0))
        await pilot.press("f1")
        await pilot.pause()
        from spark_tui.screens.help import HelpScreen

        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)


async def test_quit_asks_while_a_run_is_active(spark_home):
    import os

    run = runs_core.create_run(RunConfig(name="live"))
    run.write_status(state="training", pid=os.getpid(), heartbeat=__import__("time").time())
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.current_run = run
        await pilot.press("ctrl+q")
        await pilot.pause()
        from spark_tui.screens.confirm import ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0 or app.return_code is None


async def test_quit_without_run_exits_immediately(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert not app.is_running


async def test_open_run_starts_at_the_runs_step_and_help_opens_twice(spark_home):
    """`spark-tui open RUN`: a run not started yet opens at Review; the help panel kept
    for a topic opens and closes again."""
    from spark_tui.screens.help import HelpScreen
    from spark_tui.screens.review import ReviewScreen

    run = runs_core.create_run(RunConfig(name="later"))
    app = SparkTuiApp(preload=False, open_run=str(run.path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        assert app.current_run is not None and app.current_run.path == run.path
        for _ in range(2):
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen) and app.screen.topic == "review"
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ReviewScreen)


def test_open_command_refuses_an_unknown_run(spark_home, capsys):
    from spark_tui.cli import main

    assert main(["open", "no-such-run"]) == 2
    assert "no-such-run" in capsys.readouterr().err
