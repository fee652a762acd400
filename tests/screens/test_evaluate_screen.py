"""Pilot tests of the Evaluate step on a real (tiny) adapter of the default model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, RichLog, SelectionList

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "evaluate"))
import conftest_eval  # noqa: E402

from spark_tui.app import SparkTuiApp  # noqa: E402
from spark_tui.config import RunConfig  # noqa: E402
from spark_tui.core.train import runs  # noqa: E402
from spark_tui.screens.evaluate import EvaluateScreen  # noqa: E402
from spark_tui.widgets.charts import MetricChart  # noqa: E402

eval_root = conftest_eval.eval_root
sft_run = conftest_eval.sft_run




@pytest.mark.slow
async def test_evaluate_shows_base_vs_tuned_and_chat_streams(sft_run, spark_home, wait_until):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_evaluate(app, pilot, sft_run)
        saved = screen.result  # an eval.json from an earlier evaluation is shown at once
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.result is not None and screen.result is not saved, 600,
                         "a fresh evaluation")
        table = screen.query_one("#score-table", DataTable)
        rows = {str(table.get_row_at(i)[0]): table.get_row_at(i) for i in range(table.row_count)}
        assert "Perplexity" in rows and "ROUGE-L" in rows
        base, tuned = rows["Perplexity"][1], rows["Perplexity"][2]
        assert base != "–" and tuned != "–" and base != tuned
        assert (sft_run.path / "eval.json").exists()
        # Chat with the tuned model: a greedy answer streams into the log.
        screen.query_one("#eval-tabs").active = "tab-chat"
        await pilot.pause()
        inp = screen.query_one("#chat-input", Input)
        inp.focus()
        inp.value = "What is the capital of France?"
        await pilot.press("enter")
        await wait_until(pilot, lambda: not screen.chat_busy and screen.session is not None, 300, "the answer")
        log_text = "\n".join(str(line.text) for line in screen.query_one("#chat-log", RichLog).lines)
        assert "tuned:" in log_text
        assert screen.session.settings.temperature == 0.0  # greedy: the same answer every time
        answer = screen.session.messages[-1]
        assert answer["role"] == "assistant" and answer["content"].strip()


async def _open_evaluate(app, pilot, run, tab: str | None = None) -> EvaluateScreen:
    """Show the Evaluate step for `run` (optionally on one tab)."""
    app.current_run = run
    app.config = run.config()
    app.show_step("evaluate")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, EvaluateScreen)
    if tab:
        screen.query_one("#eval-tabs").active = tab
        await pilot.pause()
    return screen


def _fake_run(rank: int, losses: list[float]) -> runs.Run:
    cfg = RunConfig(name=f"r{rank}")
    cfg.lora.r = rank
    run = runs.create_run(cfg)
    with open(run.metrics_path, "w") as fh:
        for i, loss in enumerate(losses, 1):
            fh.write(json.dumps({"kind": "train", "step": i, "loss": loss, "tokens_per_s": 100.0}) + "\n")
    run.write_status(state="finished", step=len(losses), total_steps=len(losses))
    return run


async def test_compare_draws_two_curves_and_lists_differing_key(spark_home):
    a = _fake_run(4, [3.0, 2.5, 2.0, 1.8])
    _fake_run(16, [3.0, 2.2, 1.7, 1.4])
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_evaluate(app, pilot, a, "tab-compare")
        sl = screen.query_one("#compare-runs", SelectionList)
        sl.select_all()
        await pilot.pause()
        await pilot.click("#run-compare")
        await pilot.pause()
        chart = screen.query_one("#compare-chart", MetricChart)
        assert len(chart._series) == 2 and chart.points_drawn >= 8
        assert screen.comparison.differing == ["lora.r"]
        table = screen.query_one("#compare-table", DataTable)
        assert [str(c.label) for c in table.columns.values()][1] == "lora.r"


async def test_sweep_tab_queues_runs_and_plots_metric_vs_parameter(spark_home, monkeypatch):
    from textual.widgets import Button, Select

    from spark_tui.core.evaluate import sweep as sweep_core

    base = _fake_run(16, [3.0, 2.0])

    def fake_run_sweep(sw, **_kw):
        # Stand-in for training: each run "finishes" with a loss that falls with the rank.
        for entry, run in zip(sw.runs, sw.handles(), strict=True):
            with open(run.metrics_path, "w") as fh:
                fh.write(json.dumps({"kind": "train", "step": 1, "loss": 10.0 / entry.value}) + "\n")
            run.write_status(state="finished", step=1, total_steps=1)
        return sw

    monkeypatch.setattr(sweep_core, "run_sweep", fake_run_sweep)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _open_evaluate(app, pilot, base, "tab-sweep")
        screen.query_one("#sweep-param", Select).value = "lora.r"
        screen.query_one("#sweep-values").value = "4,8"
        screen.query_one("#run-sweep", Button).press()
        await app.workers.wait_for_complete()
        await pilot.pause()
        chart = screen.query_one("#sweep-chart", MetricChart)
        assert chart._series and list(chart._series[0][1]) == [4.0, 8.0]
        assert list(chart._series[0][2]) == [2.5, 1.25]
        assert screen.comparison is not None and screen.comparison.differing == ["lora.r"]
        assert len(runs.list_runs()) == 3  # the base run + one per value
