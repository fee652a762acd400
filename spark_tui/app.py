"""The Textual app: step flow, global keys, theme.

Importing this module must stay cheap: torch and transformers are imported
lazily, in workers or in the training process (a test checks `-X importtime`).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import get_current_worker

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.train import runs as runs_core

# Wizard order.  Each step names the module and Screen class that implements it;
# modules are imported only when the step is first shown.
STEPS: list[tuple[str, str]] = [
    ("model", "spark_tui.screens.model:ModelScreen"),
    ("memory", "spark_tui.screens.memory:MemoryScreen"),
    ("dataset", "spark_tui.screens.dataset:DatasetScreen"),
    ("method", "spark_tui.screens.method:MethodScreen"),
    ("review", "spark_tui.screens.review:ReviewScreen"),
    ("train", "spark_tui.screens.train:TrainScreen"),
    ("evaluate", "spark_tui.screens.evaluate:EvaluateScreen"),
    ("deploy", "spark_tui.screens.deploy:DeployScreen"),
]
STEP_NAMES = [s for s, _ in STEPS]
PRELOAD_DELAY_S = 1.0  # after the first paint, before torch/transformers are preloaded
PRELOAD_RETRY_S = 30.0  # while a run trains, the preload waits


def _screen_class(step: str):
    target = dict(STEPS)[step]
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def step_available(step: str) -> bool:
    module = dict(STEPS)[step].partition(":")[0]
    return importlib.util.find_spec(module) is not None


class SparkTuiApp(App):
    """The wizard.  `self.config` is the RunConfig being built; `self.current_run` the run folder once made."""

    TITLE = "spark-tui"
    SUB_TITLE = "fine-tune · evaluate · deploy"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("f1", "help", "Help"),
    ]

    def __init__(self, preload: bool = True, open_run: str | None = None) -> None:
        super().__init__()
        self.open_run_at_start = open_run
        self.config = RunConfig()
        self.current_run: runs_core.Run | None = None
        self.preload = preload
        self.probe = None  # the Memory step's hardware probe, reused by later steps
        self.data_report = None  # the Dataset step's report: which objectives the data supports
        self.follow_curves = None  # the followed run's curves (core.train.curves.Curves)
        self._curves_run: Path | None = None

    def on_mount(self) -> None:
        from spark_tui.screens.welcome import WelcomeScreen

        self.push_screen(WelcomeScreen())
        if self.open_run_at_start:
            self.call_after_refresh(self.open_run, self.open_run_at_start)
        if self.preload:
            # After the first paint, and a moment later: importing torch holds the GIL
            # for long stretches, and the first screen and the first key come first.
            self.call_after_refresh(self.set_timer, PRELOAD_DELAY_S, self._maybe_preload)

    def _maybe_preload(self) -> None:
        """Preload now, unless a run trains: then torch would take the trainer's CPU and
        the UI's GIL for nothing the Train screen needs; try again when it is done."""
        if self.active_run() is not None:
            self.set_timer(PRELOAD_RETRY_S, self._maybe_preload)
            return
        self.preload_libraries()

    @work(thread=True, exclusive=True, group="preload", exit_on_error=False)
    def preload_libraries(self) -> None:
        """Import torch/transformers off the UI thread so later steps open quickly."""
        import contextlib

        from spark_tui.core.base.lazy import warm_imports

        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            warm_imports()

    # -- flow ---------------------------------------------------------------
    def start_wizard(self, config: RunConfig | None = None) -> None:
        self.config = config or RunConfig()
        self.current_run = None
        self.show_step(STEP_NAMES[0])

    def show_step(self, step: str) -> None:
        self.push_screen(_screen_class(step)())

    def next_step(self, current: str) -> None:
        idx = STEP_NAMES.index(current)
        for step in STEP_NAMES[idx + 1 :]:
            if step_available(step):
                self.show_step(step)
                return
        self.notify("That was the last step.", title="Done")

    def open_run(self, ref: str | Path) -> None:
        """Continue a run at the step its state calls for."""
        try:
            run = runs_core.resolve_run(str(ref))
            self.config = run.config()
        except Exception as exc:  # SparkError or an unreadable folder
            self.notify(str(exc), severity="error", title="Cannot open run")
            return
        self.current_run = run
        state = run.status().get("state", "new")
        if state == "new":
            step = "review"
        elif state == "finished":
            step = "evaluate"
        else:  # active, stopped, failed, died: the train screen follows or offers Resume
            step = "train"
        if step_available(step):
            self.show_step(step)
        else:
            self.notify(f"Run {run.id} is {state}.", title="Run")

    # -- following a run (app-lifetime: survives the Train screen being popped) --
    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow_run(self, run: runs_core.Run) -> None:
        """Tail the run folder and hand every update to the screens that draw it."""
        import time

        from spark_tui.core.train.process import RunFollower

        worker = get_current_worker()
        follower = RunFollower(run, interval=0.5, stop_when_done=False)
        idle_after_done = 0
        first = True  # a new follower reads the whole curve again: the curves start over
        while not worker.is_cancelled:
            up = follower.poll()
            # Every poll, even without new lines: the status (step, ETA, state) moves on its own.
            # Only the new lines travel; the UI thread files them into `follow_curves`.
            self.call_from_thread(self._dispatch_follow, run, up, first)
            first = False
            if up.done:
                idle_after_done += 1
                if idle_after_done > 2:  # a final state read twice more: nothing left to tail
                    return
            end = time.time() + 0.5
            while not worker.is_cancelled and time.time() < end:
                time.sleep(0.05)

    def stop_following(self) -> None:
        self.workers.cancel_group(self, "follow")

    def _dispatch_follow(self, run: runs_core.Run, up, first: bool = False) -> None:
        from spark_tui.core.train.curves import Curves

        if first or self.follow_curves is None or self._curves_run != run.path:
            self.follow_curves, self._curves_run = Curves(), run.path
        self.follow_curves.extend(up.metrics, reset=up.reset)
        for screen in self.screen_stack:
            handler = getattr(screen, "on_follow_update", None)
            if handler is not None:
                handler(up, self.follow_curves)

    def active_run(self) -> runs_core.Run | None:
        if self.current_run is None:
            return None
        return self.current_run if self.current_run.status().get("state") in names.ACTIVE_STATES else None

    # -- global actions -------------------------------------------------------
    def action_help(self) -> None:
        from spark_tui.screens.help import HelpScreen

        topic = getattr(self.screen, "STEP", "") or "welcome"
        if isinstance(self.screen, HelpScreen):
            return
        # Built once per topic and kept: composing the Markdown is most of what opening
        # help costs (a quarter of a second here), and the text never changes.
        name = f"help:{topic}"
        if not self.is_screen_installed(name):
            self.install_screen(HelpScreen(topic), name)
        self.push_screen(name)

    async def action_quit(self) -> None:
        run = self.active_run()
        if run is None:
            self.exit()
            return
        from spark_tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit(message=f"Training goes on in the background: spark-tui attach {run.id}")

        self.push_screen(
            ConfirmScreen(
                f"Run {run.id} is still training.\n\nIt keeps running in its own process "
                "after you quit; re-attach later from the welcome screen.\n\nQuit spark-tui?",
                yes="Quit",
                no="Stay",
            ),
            answered,
        )


def run_app(open_run: str | None = None) -> int:
    """Open the wizard; with `open_run`, at that run's step (`spark-tui open RUN`)."""
    SparkTuiApp(open_run=open_run).run()
    return 0
