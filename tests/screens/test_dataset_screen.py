from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from textual.widgets import Button, Select, SelectionList, Static

from spark_tui.app import SparkTuiApp
from spark_tui.screens.dataset import DatasetScreen

sys.path.insert(0, str(Path(__file__).resolve().parent))
from waiting import workers_done  # noqa: E402


async def _settle(app, pilot, cond, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        await workers_done(app)
        await pilot.pause()
        if cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_bundled_set_detected_linted_previewed(spark_home, default_model_dir):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_step("dataset")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        await _settle(app, pilot, lambda: screen.prepared is not None or screen.error)
        assert screen.prepared is not None, screen.error
        fmt = str(screen.query_one("#format-text", Static).render())
        assert "messages" in fmt.lower() or "openai" in fmt.lower()
        # Preview marks trained tokens.
        screen.query_one("#data-tabs").active = "tab-preview"
        await pilot.pause()
        head = str(screen.query_one("#preview-head", Static).render())
        assert "Row 1 of" in head
        text = screen.query_one("#preview-text", Static).render()
        assert "trained" in str(text)
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert "Row 2 of" in str(screen.query_one("#preview-head", Static).render())
        # Toggle a lint fix: the data is prepared again with the new choice.
        sl = screen.query_one("#lint-list", SelectionList)
        assert sl.option_count >= 1
        before = list(app.config.data.drop)
        idx = next(i for i in range(sl.option_count) if not sl.get_option_at_index(i).disabled)
        sl.toggle(sl.get_option_at_index(idx).value)
        await _settle(app, pilot, lambda: list(app.config.data.drop) != before)
        assert not screen.query_one("#next", Button).disabled
        screen.action_next()
        await pilot.pause()
        assert app.data_report["format"] == "messages"
        assert not isinstance(app.screen, DatasetScreen)


async def test_broken_file_shows_line_and_blocks_next(spark_home, default_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n{not json\n")
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.config.data.path = str(bad)
        app.show_step("dataset")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#source-select", Select).value = "file"
        await _settle(app, pilot, lambda: bool(screen.error) or screen.prepared is not None)
        assert screen.error and "bad.jsonl" in screen.error and "line 2" in screen.error
        assert screen.query_one("#next", Button).disabled


async def test_typed_relative_path_is_read_from_the_start_folder_and_offered_again(
    spark_home, default_model_dir, tmp_path, monkeypatch
):
    from textual.widgets import Input

    from spark_tui.widgets.data_source import RECENT_PREFIX, DataFileTree

    start = tmp_path / "project"
    (start / "data").mkdir(parents=True)
    rows = [{"instruction": f"Say {i}", "output": f"{i} said."} for i in range(12)]
    (start / "data" / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(start)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_step("dataset")
        screen = app.screen
        await _settle(app, pilot, lambda: screen.prepared is not None or screen.error)
        inp = screen.query_one("#path-input", Input)
        inp.value = "data/mine.jsonl"  # relative to the folder spark-tui was started from
        inp.focus()
        await pilot.press("enter")
        await _settle(
            app,
            pilot,
            lambda: (
                app.config.data.path.endswith("mine.jsonl")
                and screen.prepared is not None
                or bool(screen.error)
            ),
        )
        assert not screen.error, screen.error
        assert app.config.data.path == str(start / "data" / "mine.jsonl")
        screen.action_toggle_tree()
        await pilot.pause()
        assert screen.query_one("#file-tree", DataFileTree).path == start
    # A second visit offers the file at the top of the source list, named relative to here.
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.show_step("dataset")
        screen = app.screen
        await _settle(app, pilot, lambda: screen.prepared is not None or screen.error)
        select = screen.query_one("#source-select", Select)
        options = dict((key, label) for label, key in select._options)
        key = RECENT_PREFIX + str(start / "data" / "mine.jsonl")
        assert options[key] == "Recent: data/mine.jsonl"
        select.value = key
        await _settle(
            app,
            pilot,
            lambda: app.config.data.path.endswith("mine.jsonl") and screen.prepared is not None,
        )
        assert "mine.jsonl" in str(screen.query_one("#data-status", Static).render())
