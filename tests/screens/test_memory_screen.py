from __future__ import annotations

from textual.widgets import DataTable, OptionList, Static

from spark_tui.app import SparkTuiApp
from spark_tui.screens.memory import MemoryScreen


async def test_memory_screen_verdict_and_suggestion_updates(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # A run that cannot fit this CI box: 70B with full fine-tuning.
        app.config.model.id = "meta-llama/Llama-3.1-70B-Instruct"
        app.config.method.adapter = "full"
        app.config.data.max_length = 2048
        app.config.train.micro_batch_size = 1
        app.show_step("memory")
        await pilot.pause()
        assert isinstance(app.screen, MemoryScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        verdict = str(screen.query_one("#verdict", Static).render())
        assert "Won't fit" in verdict
        table = screen.query_one("#breakdown", DataTable)
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert any("Optimizer" in x or "optimizer" in x for x in labels)
        assert any("Total" in x for x in labels)
        ol = screen.query_one("#suggestions", OptionList)
        assert ol.option_count >= 1
        before_total = screen.verdict.estimate.total
        first = ol.get_option_at_index(0)
        sg = screen.verdict.suggestions[int(first.id)]
        ol.highlighted = 0
        ol.action_select()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        for key, value in sg.changes.items():
            assert app.config.get(key) == value
        assert app.screen.verdict.estimate.total < before_total
