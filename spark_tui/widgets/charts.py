"""Terminal charts (textual-plotext) for training curves and metric-vs-parameter plots.

Charts only draw: the data is gathered elsewhere (a worker following the run
folder) and handed over with `set_series` (or, for the loss, `LossChart.set_curves`
with the run's incrementally kept `Curves`); `plot()` down-samples each series to
about twice the widget's width, without copying it, so a redraw costs the same at
step 10 and at step 100 000.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import RenderableType
from rich.text import Text
from textual_plotext import PlotextPlot

from spark_tui.core.train.curves import Curves, downsample

Series = tuple[str, Sequence[float], Sequence[float]]  # (label, xs, ys)
# Below this many points a series is listed, not plotted: plotext would stretch one or
# two points over an axis range it invents.
FEW_POINTS = 3


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def points_text(title: str, xlabel: str, series: Sequence[Series]) -> Text:
    """A chart with few points, as text: the title, then `label  step 2: 3.93` per point."""
    text = Text(title, style="bold")
    for label, xs, ys in series:
        for x, y in zip(xs, ys, strict=False):
            text.append(f"\n{label}  {xlabel} {_num(x)}: {_num(y)}")
    if not series:
        text.append("\nno points yet", style="dim")
    return text


def integer_ticks(lo: float, hi: float, most: int = 5) -> list[int]:
    """Up to `most` whole-number ticks from lo to hi (steps are counted, never 8.2)."""
    lo_i, hi_i = int(lo), int(-(-hi // 1))
    if hi_i - lo_i < most:
        return list(range(lo_i, hi_i + 1))
    span = hi_i - lo_i
    return sorted({lo_i + round(span * k / (most - 1)) for k in range(most)})


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
        self._few: Text | None = None  # the points as text, while there are few

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

    def render(self) -> RenderableType:
        return self._few if self._few is not None else super().render()

    def plot(self) -> None:
        few = all(len(xs) < FEW_POINTS for _label, xs, _ys in self._series)
        self._few = points_text(self.title, self.xlabel, self._series) if few else None
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
        ends = [float(x) for _label, xs, _ys in self._series if len(xs) for x in (xs[0], xs[-1])]
        if ends and all(x.is_integer() for x in ends):  # steps: whole-number ticks
            plt.xticks(integer_ticks(min(ends), max(ends)))


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
