"""Terminal charts (textual-plotext) for training curves and metric-vs-parameter plots.

Charts only draw: the data is gathered elsewhere (a worker following the run
folder) and handed over with `set_series`; `plot()` down-samples each series to
about twice the widget's width so redraws stay cheap on long runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

Series = tuple[str, Sequence[float], Sequence[float]]  # (label, xs, ys)


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list, list]:
    """Keep at most `max_points` evenly spaced points (always keeping the last one)."""
    n = len(xs)
    if n <= max_points or max_points < 2:
        return list(xs), list(ys)
    step = (n - 1) / (max_points - 1)
    idx = sorted({round(i * step) for i in range(max_points)})
    return [xs[i] for i in idx], [ys[i] for i in idx]


def ema(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider does."""
    out: list[float] = []
    last = None
    for v in values:
        last = v if last is None else weight * last + (1 - weight) * v
        out.append(last)
    return out


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
            dx, dy = downsample(list(xs), list(ys), max_points)
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
        smoothing: float = 0.8,
    ) -> None:
        series: list[Series] = []
        if train:
            xs = [p[0] for p in train]
            ys = [p[1] for p in train]
            series.append(("train", xs, ys))
            if len(ys) > 3 and smoothing > 0:
                series.append(("smoothed", xs, ema(ys, smoothing)))
        if evals:
            series.append(("eval", [p[0] for p in evals], [p[1] for p in evals]))
        self.set_series(series)
