"""Live memory gauges: system / unified memory, each GPU, and the training process.

Used by the Memory step and the Train screen.  A timer (default once a second)
starts a thread worker that calls `usage.sample(pid)`; the reading comes
back through `call_from_thread`, so NVML or /proc never block input.  A new
sample is not started while the previous one is still running.

Each gauge is a label, a bar, the value as text and a `Sparkline` of the last
readings.  Colours come from CSS classes only (`-ok`, `-warn`, `-crit`, set
by threshold) and `DEFAULT_CSS`: nothing is hard-coded in Python.

    gauges = MemoryGauges(pid=1234)          # follow a training process
    gauges.pid = other_pid                   # switch (None hides that row)
    MemoryGauges(sampler=fake, interval=0.1) # tests inject readings
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar, Sparkline

from spark_tui.core.model import usage

Sampler = Callable[[int | None], usage.Sample]


VALUE_CHARS = 23  # the value column's width less its padding: a reading never clips


def _gb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e9:.1f} GB"


def used_of(used: float | None, total: float, cache: float = 0) -> str:
    """ "3.7 / 25 GB +3 cache": used of total in one unit; the cache only where it fits."""
    u = (used or 0) / 1e9
    text = f"{u:.0f}" if u >= 100 else f"{u:.1f}"
    text += f" / {total / 1e9:.0f} GB"
    extra = f" +{cache / 1e9:.0f} cache" if cache else ""
    return text + extra if len(text + extra) <= VALUE_CHARS else text


class Gauge(Horizontal):
    """One labelled bar with its value and a sparkline history."""

    DEFAULT_CSS = """
    Gauge {
        height: 1;
        width: 1fr;
    }
    Gauge > .gauge--label {
        width: 18;
        color: $text-muted;
    }
    Gauge > ProgressBar {
        width: 24;
    }
    Gauge > ProgressBar > Bar {
        width: 22;
    }
    Gauge > .gauge--value {
        width: 24;
        padding-left: 1;
    }
    Gauge > Sparkline {
        width: 1fr;
        min-width: 10;
        height: 1;
    }
    Gauge.-ok Bar > .bar--bar { color: $success; }
    Gauge.-warn Bar > .bar--bar { color: $warning; }
    Gauge.-crit Bar > .bar--bar { color: $error; }
    Gauge.-ok Sparkline > .sparkline--max-color { color: $success; }
    Gauge.-ok Sparkline > .sparkline--min-color { color: $success-darken-2; }
    Gauge.-warn Sparkline > .sparkline--max-color { color: $warning; }
    Gauge.-warn Sparkline > .sparkline--min-color { color: $success-darken-2; }
    Gauge.-crit Sparkline > .sparkline--max-color { color: $error; }
    Gauge.-crit Sparkline > .sparkline--min-color { color: $warning-darken-2; }
    Gauge.-na .gauge--value { color: $text-disabled; }
    """

    def __init__(
        self,
        label: str,
        *,
        warn: float | None = 0.80,
        crit: float | None = 0.92,
        history: int = 60,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.label_text = label
        self.warn = warn
        self.crit = crit
        self.history: deque[float] = deque(maxlen=history)
        self.fraction: float | None = None
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Label(self.label_text, classes="gauge--label")
        yield ProgressBar(total=100, show_eta=False, show_percentage=False)
        yield Label("…", classes="gauge--value")
        yield Sparkline([], summary_function=max)

    def set_label(self, label: str) -> None:
        if label != self.label_text:
            self.label_text = label
            if self.is_mounted:
                self.query_one(".gauge--label", Label).update(label)

    def level(self, fraction: float | None) -> str:
        if fraction is None:
            return "-na"
        if self.crit is not None and fraction >= self.crit:
            return "-crit"
        if self.warn is not None and fraction >= self.warn:
            return "-warn"
        return "-ok"

    def update_value(self, fraction: float | None, text: str) -> None:
        """Show a new reading: `fraction` in 0..1 (None: not reported), `text` beside it."""
        self.fraction = None if fraction is None else max(0.0, min(1.0, fraction))
        self.text = text
        if self.fraction is not None:
            self.history.append(self.fraction * 100)
        for cls in ("-ok", "-warn", "-crit", "-na"):
            self.remove_class(cls)
        self.add_class(self.level(self.fraction))
        if not self.is_mounted:
            return
        self.query_one(ProgressBar).update(progress=(self.fraction or 0.0) * 100)
        self.query_one(".gauge--value", Label).update(text)
        self.query_one(Sparkline).data = list(self.history)


class MemoryGauges(Vertical):
    """System/unified memory, GPU utilisation / memory / temperature / power, process RSS."""

    DEFAULT_CSS = """
    MemoryGauges {
        height: auto;
        border: round $panel;
        padding: 0 1;
    }
    MemoryGauges.-compact {
        border: none;
        padding: 0;
    }
    MemoryGauges > #gpu-gauges {
        height: auto;
    }
    MemoryGauges .-hidden {
        display: none;
    }
    """

    BORDER_TITLE = "Live memory"

    pid: reactive[int | None] = reactive(None)

    def __init__(
        self,
        *,
        pid: int | None = None,
        interval: float = 1.0,
        sampler: Sampler | None = None,
        history: int = 60,
        compact: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.interval = min(interval, 1.0)  # at least once a second
        self.sampler: Sampler = sampler or usage.sample
        self.history = history
        self.latest: usage.Sample | None = None
        self.samples_taken = 0
        self._busy = False
        self._gpu_rows: set[str] = set()
        self.set_reactive(MemoryGauges.pid, pid)
        if compact:
            self.add_class("-compact")

    def compose(self) -> ComposeResult:
        yield Gauge("Memory", id="gauge-mem", history=self.history)
        yield Vertical(id="gpu-gauges")
        yield Gauge(
            "Training process",
            id="gauge-proc",
            history=self.history,
            classes="" if self.pid else "-hidden",
        )

    def on_mount(self) -> None:
        self.set_interval(self.interval, self._tick)
        self._tick()

    def watch_pid(self, pid: int | None) -> None:
        if self.is_mounted:
            self.query_one("#gauge-proc", Gauge).set_class(not pid, "-hidden")

    # ---- sampling ---------------------------------------------------------
    def _tick(self) -> None:
        if self._busy:
            return
        self._busy = True
        self._sample()

    @work(thread=True, exclusive=False, group="gauges", exit_on_error=False)
    def _sample(self) -> None:
        try:
            reading = self.sampler(self.pid)
        except Exception:
            reading = None
        try:
            self.app.call_from_thread(self._apply, reading)
        except Exception:  # the app is shutting down
            self._busy = False

    def _apply(self, s: usage.Sample | None) -> None:
        self._busy = False
        if s is None or not self.is_mounted:
            return
        self.latest = s
        self.samples_taken += 1
        mem = self.query_one("#gauge-mem", Gauge)
        mem.set_label("Unified memory" if s.unified_memory else "System memory")
        mem.update_value(
            s.mem_fraction if s.mem_total else None,
            used_of(s.mem_used, s.mem_total, s.page_cache),
        )
        for g in s.gpus:
            self._update_gpu(g, unified=s.unified_memory)
        proc = self.query_one("#gauge-proc", Gauge)
        if self.pid:
            rss = s.process_rss
            proc.update_value(
                rss / s.mem_total if (rss is not None and s.mem_total) else None,
                _gb(rss) if rss is not None else "not running",
            )

    def _gpu_gauge(self, key: str, label: str, warn: float | None, crit: float | None) -> Gauge:
        gid = f"gauge-{key}"
        if key not in self._gpu_rows:
            self._gpu_rows.add(key)
            gauge = Gauge(label, id=gid, warn=warn, crit=crit, history=self.history)
            self.query_one("#gpu-gauges", Vertical).mount(gauge)
            return gauge
        return self.query_one(f"#{gid}", Gauge)

    def _update_gpu(self, g: usage.GpuSample, *, unified: bool) -> None:
        n = g.index
        util = self._gpu_gauge(f"gpu{n}-util", f"GPU{n} util", None, None)
        util.update_value(
            g.utilization / 100 if g.utilization is not None else None,
            f"{g.utilization} %" if g.utilization is not None else "n/a",
        )
        if g.memory_total:
            mem = self._gpu_gauge(f"gpu{n}-mem", f"GPU{n} memory", 0.80, 0.92)
            mem.update_value(
                (g.memory_used or 0) / g.memory_total,
                used_of(g.memory_used, g.memory_total),
            )
        elif not unified and f"gpu{n}-mem" in self._gpu_rows:
            self.query_one(f"#gauge-gpu{n}-mem", Gauge).update_value(None, "not reported")
        if g.temperature is not None:
            temp = self._gpu_gauge(f"gpu{n}-temp", f"GPU{n} temp", 0.80, 0.90)
            temp.update_value(g.temperature / 100, f"{g.temperature} °C")
        if g.power_w is not None:
            power = self._gpu_gauge(f"gpu{n}-power", f"GPU{n} power", 0.90, 0.98)
            limit = g.power_limit_w or 0
            power.update_value(
                g.power_w / limit if limit else None,
                f"{g.power_w:.0f} W" + (f" / {limit:.0f}" if limit else ""),
            )
