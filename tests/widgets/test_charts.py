"""Charts list a series' points while there are too few to plot without inventing axes."""

from __future__ import annotations

from textual.app import App, ComposeResult

from spark_tui.widgets.charts import LossChart, MetricChart


class _Host(App):
    def compose(self) -> ComposeResult:
        yield MetricChart(title="grad norm", id="chart")
        yield LossChart(id="loss")


async def test_few_points_are_listed_and_many_are_plotted():
    app = _Host()
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one("#chart", MetricChart)
        assert "no points yet" in str(chart.render())
        chart.set_series([("grad norm", [1, 2], [0.5, 0.25])])
        await pilot.pause()
        shown = str(chart.render())
        assert "grad norm  step 1: 0.5" in shown and "step 2: 0.25" in shown
        chart.set_series([("grad norm", [1, 2, 3, 4], [0.5, 0.25, 0.2, 0.1])])
        await pilot.pause()
        plotted = str(chart.render())
        assert "step 1: 0.5" not in plotted and "grad norm" in plotted  # plotext's title
        loss = app.query_one("#loss", LossChart)
        loss.set_losses([(1, 3.9312)], evals=[(1, 4.0)])
        await pilot.pause()
        shown = str(loss.render())
        assert "train  step 1: 3.931" in shown and "eval  step 1: 4" in shown


def test_step_axes_get_whole_number_ticks():
    from spark_tui.widgets.charts import integer_ticks

    assert integer_ticks(1, 30) == [1, 8, 15, 23, 30]
    assert integer_ticks(1, 3) == [1, 2, 3]  # short runs: every step
    assert all(isinstance(t, int) for t in integer_ticks(0, 1234))


async def test_a_plotted_loss_curve_labels_steps_without_fractions():
    app = _Host()
    async with app.run_test(size=(80, 24)) as pilot:
        loss = app.query_one("#loss", LossChart)
        loss.set_losses([(s, 4.0 - s / 10) for s in range(1, 31)])
        await pilot.pause()
        text = str(loss.render())
        assert " 8.2" not in text and "15.5" not in text
        assert "15" in text and "30" in text
