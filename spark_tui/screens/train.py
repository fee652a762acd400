"""Train step: a live window onto the training process (which keeps running without us).

The App's follow worker tails the run folder and calls `on_follow_update`; this
screen only draws.  Stop / Kill / Resume / Detach act on the process through
`spark_tui.core.train.process`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import ProgressBar, RichLog, Static

from spark_tui.core.base import names
from spark_tui.core.base.errors import SparkError
from spark_tui.core.base.progress import fmt_duration
from spark_tui.core.train import runs
from spark_tui.core.train.curves import Curves
from spark_tui.screens.base import StepScreen
from spark_tui.widgets.charts import LossChart, MetricChart
from spark_tui.widgets.first_look import FirstLookPanel


def status_line(st: dict[str, Any], last: dict[str, Any]) -> str:
    """The one-line summary; `last` is the newest training metrics line."""
    state = st.get("state", "new")
    step, total = st.get("step", 0) or 0, st.get("total_steps", 0) or 0
    if state == "preparing" and st.get("phase"):  # download, data, model load: what and how far
        doing = escape(str(st.get("phase_detail") or st["phase"]))
        return f"[b]{state}[/b] · {doing} · elapsed {fmt_duration(st.get('elapsed_s'))}"
    parts = [f"[b]{state}[/b]", f"step {step}/{total or '?'}"]
    if (st.get("world_size") or 1) > 1:  # a launched run: the figures are over all ranks
        parts.append(f"{st['world_size']} ranks")
    if last.get("loss") is not None:
        parts.append(f"loss {last['loss']:.4f}")
    if last.get("learning_rate") is not None:
        parts.append(f"lr {last['learning_rate']:.2e}")
    if last.get("tokens_per_s"):
        parts.append(f"{last['tokens_per_s']:.0f} tok/s")
    parts.append(f"elapsed {fmt_duration(st.get('elapsed_s'))}")
    if state in names.ACTIVE_STATES:
        parts.append(f"ETA {fmt_duration(st.get('eta_s'))}")
    return " · ".join(parts)


def _saved_where(st: dict[str, Any], run: Any) -> str:
    """Where the trained weights went, relative to the run folder when inside it."""
    out = str(st.get("output") or "")
    if not out:
        return "saved in the run folder"
    try:
        return f"saved to {Path(out).relative_to(run.path)}/ in the run folder"
    except (ValueError, AttributeError):
        return f"saved to {out}"


# Charts are redrawn at most this often: plotext builds each figure on the UI
# thread, and a key pressed during a build waits for it (bench/ui_latency.py).
CHART_MIN_INTERVAL_S = 1.0
CHART_AFTER_RESUME_S = 0.1  # a covered screen's charts wait for its first paint


class TrainScreen(StepScreen):
    STEP = "train"
    FOCUS_NEXT_WHEN_READY = True
    BINDINGS = [
        *StepScreen.BINDINGS,
        Binding("s", "stop_run", "Stop"),
        Binding("K", "kill_run", "Kill"),
        Binding("r", "resume_run", "Resume"),
        Binding("d", "detach", "Detach"),
    ]

    DEFAULT_CSS = """
    TrainScreen #train-status { height: 1; }
    TrainScreen #train-progress { height: 1; }
    TrainScreen #train-charts { height: 1fr; min-height: 8; }
    TrainScreen #loss-chart { width: 2fr; }
    TrainScreen #side-charts { width: 1fr; }
    TrainScreen #first-look { display: none; }
    TrainScreen #train-charts.looked #side-charts { display: none; }
    TrainScreen #train-charts.looked #first-look { display: block; }
    TrainScreen #train-charts.looked #loss-chart { width: 1fr; }
    TrainScreen #train-message { height: auto; max-height: 3; }
    TrainScreen #train-message.failed { color: $error; }
    TrainScreen #train-log { height: 4; border-top: solid $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.state = "new"
        self.curves = Curves()
        self.metrics: list[dict[str, Any]] = self.curves.rows
        self.updates = 0
        self._charts_at = 0.0  # monotonic time of the last chart drawing
        self._charts_waiting = False  # a timer will draw them, or the screen's resume

    def compose_body(self) -> ComposeResult:
        yield Static("Waiting for the training process…", id="train-status")
        yield ProgressBar(total=None, show_eta=False, id="train-progress")
        with Horizontal(id="train-charts"):
            yield LossChart(id="loss-chart")
            with Vertical(id="side-charts"):
                yield MetricChart(title="learning rate", id="lr-chart")
                yield MetricChart(title="grad norm", id="side-chart")
            yield FirstLookPanel(id="first-look")  # replaces the side charts once finished
        yield from self.compose_gauges()
        yield Static("", id="train-message")
        yield RichLog(id="train-log", max_lines=500, wrap=False, markup=False)

    def compose_gauges(self) -> ComposeResult:
        try:
            from spark_tui.widgets.gauges import MemoryGauges
        except ImportError:
            return
        yield MemoryGauges(id="gauges", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#next").label = "Evaluate ▶"
        run = self.app.current_run
        if run is not None:
            self.sub_title = run.id
            self.app.follow_run(run)

    # -- following ----------------------------------------------------------
    def on_follow_update(self, up: Any, curves: Curves) -> None:
        """One poll of the run folder.  Costs what the poll brought, not the run's length."""
        self.updates += 1
        self.curves = curves
        self.metrics = curves.rows  # the same list, not a copy
        st = up.status
        self.state = st.get("state", "new")
        self.show_text("#train-status", status_line(st, curves.last_train))
        for gauges in self.query("#gauges"):
            pid = st.get("pid") if self.state in names.ACTIVE_STATES else None
            if getattr(gauges, "pid", None) != pid:
                gauges.pid = pid
        bar = self.query_one("#train-progress", ProgressBar)
        total, step = st.get("total_steps") or None, st.get("step", 0) or 0
        if (bar.total, bar.progress) != (total, step):
            bar.update(total=total, progress=step)
        if up.metrics or up.reset:
            self._request_charts()
        if up.log:
            log = self.query_one("#train-log", RichLog)
            for line in up.log.splitlines():
                if line.strip():
                    log.write(line[-400:])
        if self.state == "finished":
            self._first_look()
        failed, text = self._message(st)
        msg = self.query_one("#train-message", Static)
        if msg.has_class("failed") != failed:
            msg.set_class(failed, "failed")
        self.show_text("#train-message", text)
        self.refresh_nav()

    def _message(self, st: dict[str, Any]) -> tuple[bool, str]:
        """(is it a failure, the message under the charts) for the run's state."""
        if self.state == "stalled":
            return True, (
                f"Stalled: {st.get('stalled', '')}.\nStill following; K kills it, then r resumes."
            )
        if self.state in ("failed", "died"):
            died = "The training process stopped without a word." if self.state == "died" else ""
            text = st.get("error") or died
            advice = st.get("advice")
            if isinstance(advice, list):
                advice = " · ".join(advice)
            # Three lines at most (80x24): the reason, then the advice and the key on one line.
            hint = "Press r to resume from the last complete checkpoint."
            if advice and "resume" in str(advice).lower() and "checkpoint" in str(advice).lower():
                advice = None  # the supervisor's generic advice says what the hint says
            return True, f"{text}\n{advice + ' · ' if advice else ''}{hint}".strip()
        if self.state == "stopped":
            return False, (
                "Stopped with a checkpoint. Press r to resume, or Next to evaluate what was saved."
            )
        if self.state == "finished":
            return False, f"Finished: {_saved_where(st, self.app.current_run)}. Next ▶ evaluates it."
        return False, ""

    def _request_charts(self) -> None:
        """Draw the charts now, or once when it is their turn: at most once a second, and
        not while another screen (Help) covers this one."""
        if self._charts_waiting:
            return
        wait = self._charts_at + CHART_MIN_INTERVAL_S - time.monotonic()
        if self.app.screen is not self:
            self._charts_waiting = True  # on_screen_resume draws them
        elif wait > 0:
            self._charts_waiting = True
            self.set_timer(wait, self._charts_due)
        else:
            self._draw_charts()

    def _charts_due(self) -> None:
        self._charts_waiting = False
        self._request_charts()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if self._charts_waiting:
            self.set_timer(CHART_AFTER_RESUME_S, self._charts_due)
        if self.state == "finished":
            self._first_look()  # picks up a look cancelled when the screen was left

    def on_screen_suspend(self) -> None:
        self.query_one("#first-look", FirstLookPanel).pause()

    def _first_look(self) -> None:
        """Next to the curve: what the finished run changed (core/evaluate/first_look)."""
        from spark_tui.core.evaluate.first_look import wanted

        run = self._run()
        charts = self.query_one("#train-charts")
        if run is None or not wanted(run):
            charts.remove_class("looked")
            return
        charts.add_class("looked")
        self.query_one("#first-look", FirstLookPanel).start(run)

    def _draw_charts(self) -> None:
        self._charts_at = time.monotonic()
        c = self.curves
        self.query_one("#loss-chart", LossChart).set_curves(c)
        self.query_one("#lr-chart", MetricChart).set_series([("lr", *c.points("learning_rate"))])
        side = self.query_one("#side-chart", MetricChart)
        if len(c.series["rewards/margins"]):
            side.title = "reward margin"
            side.set_series([
                ("margin", *c.points("rewards/margins")),
                ("accuracy", *c.points("rewards/accuracies")),
            ])
        else:
            side.set_series([("grad norm", *c.points("grad_norm"))])

    # -- controls -------------------------------------------------------------
    def _run(self) -> runs.Run | None:
        return self.app.current_run

    # Stop, Kill and Resume wait on the trainer (signals, locks, a launch): in a worker,
    # never on the event loop.
    def action_stop_run(self) -> None:
        run = self._run()
        if run is not None:
            self._control(run, "stop")

    def action_kill_run(self) -> None:
        from spark_tui.screens.confirm import ConfirmScreen

        run = self._run()
        if run is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._control(run, "kill")

        self.app.push_screen(
            ConfirmScreen("Kill the training process now? Progress since the last checkpoint is lost.",
                          yes="Kill", no="Cancel"),
            answered,
        )

    def action_resume_run(self) -> None:
        run = self._run()
        if run is not None:
            self._control(run, "resume")

    @work(thread=True, group="train-control", exit_on_error=False)
    def _control(self, run: runs.Run, action: str) -> None:
        from spark_tui.core.train import process

        say = self.app.call_from_thread
        try:
            if action == "stop":
                if process.stop_training(run):
                    say(self.notify, "Stopping after this step; a checkpoint will be saved.", title="Stop")
                else:
                    say(self.notify, "No training process is running.", title="Stop")
            elif action == "kill":
                if process.kill_training(run):
                    say(self.notify, "Killed. Resume continues from the last checkpoint.", title="Kill")
            else:
                process.resume_training(run)
                say(self.notify, "Resuming from the latest checkpoint.", title="Resume")
                say(self.app.follow_run, run)
        except SparkError as exc:
            say(self.notify, str(exc), severity="warning", title=action.capitalize())

    def action_detach(self) -> None:
        """Back to the welcome screen; the run goes on in its own process."""
        self.app.stop_following()
        from spark_tui.screens.welcome import WelcomeScreen

        while len(self.app.screen_stack) > 1 and not isinstance(self.app.screen, WelcomeScreen):
            self.app.pop_screen()
        self.app.notify("Training continues in the background; open it again from Runs.", title="Detached")

    def action_back(self) -> None:
        # Going back while the run trains would invite editing a running config.
        if self.state in names.ACTIVE_STATES:
            self.notify("Training is running: d detaches, s stops.", title="Back")
            return
        super().action_back()

    def validate_step(self) -> tuple[bool, str]:
        run = self._run()
        if run is None:
            return False, "No run."
        if self.state in names.ACTIVE_STATES or self.state == "new":
            return False, "Training…"
        if not run.output_dir.exists() and run.latest_checkpoint() is None:
            return False, "Nothing saved yet to evaluate."
        return True, ""


def _now() -> float:  # pragma: no cover - tiny helper for tests to patch
    return time.time()
