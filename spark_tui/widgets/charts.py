"""Terminal charts (textual-plotext) for training curves and metric-vs-parameter plots.

Charts only draw: the data is gathered elsewhere (a worker following the run
folder) and handed over with `set_series` (or, for the loss, `LossChart.set_curves`
with the run's incrementally kept `Curves`); `plot()` down-samples each series to
about twice the widget's width, without copying it, so a redraw costs the same at
step 10 and at step 100 000.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from spark_tui.core.train.curves import Curves, downsample

Series = tuple[str, Sequence[float], Sequence[float]]  # (label, xs, ys)


class MetricChart(PlotextPlot):
    """A line chart of one or more series sharing the x axis."""

    DEFAULT_CSS = """
    MetricChart { height: 1fr; min-height: 6; }
    """

    def __init__(self, title: str = "", xlabel: str = "step", ylog: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.xlabel = xlabel
        self.ylog = ylog
        self._series: list[Series] = []
        self.points_drawn = 0

    def set_series(self, series: list[Series]) -> None:
        self._series = [s for s in series if len(s[1])]
        self.replot()

    def replot(self) -> None:
        if self.is_mounted:
            self.plot()
            self.refresh()

    def on_mount(self) -> None:
        super().on_mount()
        self.plot()

    def on_resize(self) -> None:
        self.plot()

    def plot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(self.title)
        plt.xlabel(self.xlabel)
        max_points = max(8, 2 * (self.size.width or 40))
        drawn = 0
        for label, xs, ys in self._series:
            dx, dy = downsample(xs, ys, max_points)
            plt.plot(dx, dy, label=label, marker="braille")
            drawn += len(dx)
        self.points_drawn = drawn


class LossChart(MetricChart):
    """Train loss (raw and smoothed) and eval loss against the step."""

    def __init__(self, **kwargs) -> None:
        super().__init__(title="loss", **kwargs)

    def set_losses(
        self,
        train: Sequence[tuple[float, float]],
        evals: Sequence[tuple[float, float]] = (),
    ) -> None:
        """Draw from (step, loss) pairs (tests and one-off plots)."""
        curves = Curves()
        curves.extend({"step": x, "loss": y} for x, y in train)
        curves.extend({"step": x, "eval_loss": y, "kind": "eval"} for x, y in evals)
        self.set_curves(curves)

    def set_curves(self, curves: Curves) -> None:
        """Draw a run's train, smoothed (from 4 points on) and eval loss."""
        series: list[Series] = []
        train = curves.series["loss"]
        if len(train):
            series.append(("train", train.xs, train.ys))
            if len(train) > 3:
                series.append(("smoothed", *curves.points("smoothed")))
        series.append(("eval", *curves.points("eval_loss")))
        self.set_series(series)
