"""Evaluate step: held-out scores base vs tuned, chat, blind A/B review, compare runs.

Everything heavy (loading models, generating) runs in thread workers through
`spark_tui.core.evaluate.run`, `chat`, `ab_review` and `compare`.
"""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    Input,
    ProgressBar,
    RichLog,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.selection_list import Selection
from textual.worker import get_current_worker

from spark_tui.core.base import names
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train import runs as runs_core
from spark_tui.screens.base import StepScreen
from spark_tui.widgets.charts import MetricChart
from spark_tui.widgets.phase_status import PhaseStatus

SWEEP_PARAMS = ["lora.r", "train.neftune_alpha", "train.learning_rate", "method.objective",
                "lora.alpha", "data.max_length"]
SCORE_ROWS = [
    ("loss", "Held-out loss"),
    ("perplexity", "Perplexity"),
    ("rouge1", "ROUGE-1"),
    ("rouge2", "ROUGE-2"),
    ("rougeL", "ROUGE-L"),
    ("bleu", "BLEU"),
]


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class EvaluateScreen(StepScreen):
    STEP = "evaluate"
    BINDINGS = [
        *StepScreen.BINDINGS,
        Binding("e", "evaluate", "Evaluate"),
        Binding("left_square_bracket", "prev_sample", "Prev"),
        Binding("right_square_bracket", "next_sample", "Next sample"),
    ]

    DEFAULT_CSS = """
    EvaluateScreen TabbedContent { height: 1fr; }
    EvaluateScreen TabPane { padding: 0; }
    EvaluateScreen .bar { height: 1; }
    EvaluateScreen .bar Button { margin-right: 1; }
    EvaluateScreen #eval-status { height: 1; }
    EvaluateScreen #eval-progress { height: 1; }
    EvaluateScreen #score-table { height: auto; max-height: 10; }
    EvaluateScreen #sample-view { height: 1fr; }
    EvaluateScreen #chat-log { height: 1fr; }
    EvaluateScreen #chat-input { height: 1; }
    EvaluateScreen #chat-source { width: 24; }
    EvaluateScreen #ab-view { height: 1fr; }
    EvaluateScreen #compare-runs { height: 5; }
    EvaluateScreen #compare-chart { height: 1fr; min-height: 6; }
    EvaluateScreen #compare-table { height: auto; max-height: 8; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.result: dict[str, Any] | None = None
        self.sample_index = 0
        self.session: Any = None
        self.session_source = ""
        self.chat_busy = False
        self.review: Any = None
        self.ab_position: int | None = None
        self.comparison: Any = None

    # -- layout ---------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="eval-tabs"):
            with TabPane("Scores", id="tab-scores"):
                with Horizontal(classes="bar"):
                    yield Button("Evaluate (e)", id="run-eval", variant="primary", compact=True)
                    yield PhaseStatus("", id="eval-status")
                yield ProgressBar(total=1, show_eta=False, id="eval-progress")
                yield DataTable(id="score-table", show_cursor=False)
                with VerticalScroll(id="sample-view"):
                    yield Static("", id="sample-text")
            with TabPane("Chat", id="tab-chat"):
                with Horizontal(classes="bar"):
                    yield Select([("tuned model", "tuned"), ("base model", "base")], value="tuned",
                                 allow_blank=False, id="chat-source", compact=True)
                    yield Static(" Enter sends · greedy decoding (spark-tui chat RUN --temperature T samples)", classes="hint")
                yield RichLog(id="chat-log", wrap=True, markup=False)
                yield Input(placeholder="Ask the model…", id="chat-input", compact=True)
            with TabPane("A/B review", id="tab-ab"):
                with Horizontal(classes="bar"):
                    yield Button("A better", id="pick-A", compact=True)
                    yield Button("B better", id="pick-B", compact=True)
                    yield Button("Tie", id="pick-tie", compact=True)
                    yield Static("", id="ab-status")
                with VerticalScroll(id="ab-view"):
                    yield Static("Evaluate first: the review shows base and tuned answers blind.",
                                 id="ab-text")
            with TabPane("Compare", id="tab-compare"):
                yield SelectionList[str](id="compare-runs")
                with Horizontal(classes="bar"):
                    yield Button("Compare selected", id="run-compare", compact=True)
                    yield Static("", id="compare-status")
                yield MetricChart(title="train loss", id="compare-chart")
                yield DataTable(id="compare-table", show_cursor=False)
            with TabPane("Sweep", id="tab-sweep"):
                with Horizontal(classes="bar"):
                    yield Select([(p, p) for p in SWEEP_PARAMS], value="lora.r", allow_blank=False,
                                 id="sweep-param", compact=True)
                    yield Input("4,8,16", placeholder="values, comma separated", id="sweep-values",
                                compact=True)
                with Horizontal(classes="bar"):
                    yield Input("", placeholder="max steps per run (blank: the run's)", id="sweep-steps",
                                type="integer", compact=True)
                    yield Button("Start sweep", id="run-sweep", compact=True)
                yield Static("One run per value, trained one after another from this run's config.",
                             id="sweep-status")
                yield MetricChart(title="final loss vs parameter", xlabel="value", id="sweep-chart")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#next").label = "Deploy ▶"
        self.query_one("#run-eval", Button).focus()
        table = self.query_one("#score-table", DataTable)
        table.add_columns("Metric", "Base", "Tuned")
        run = self.app.current_run
        if run is not None:
            from spark_tui.core.evaluate.results import load_eval

            try:
                saved = load_eval(run)
            except SparkError:
                saved = None
            if saved:
                self._show_result(saved)
        self._fill_compare_runs()

    # -- scores -----------------------------------------------------------------
    @on(Button.Pressed, "#run-eval")
    def _eval_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_evaluate()

    def action_evaluate(self) -> None:
        run = self.app.current_run
        if run is None:
            self.notify("No run to evaluate.", severity="error")
            return
        self.query_one("#eval-status", Static).update("loading…")
        self.run_evaluation(run)

    @work(thread=True, exclusive=True, group="evaluate", exit_on_error=False)
    def run_evaluation(self, run: runs_core.Run) -> None:
        from spark_tui.core.base.lazy import warm_imports
        from spark_tui.core.evaluate.run import EvalOptions, evaluate_run

        worker = get_current_worker()

        def progress(frac: float, message: str) -> None:
            self.app.call_from_thread(self._eval_progress, frac, message)

        try:
            warm_imports()
            result = evaluate_run(
                run, EvalOptions(),  # the CLI's defaults: the same eval.json from either
                progress=progress, cancel=lambda: worker.is_cancelled,
            )
        except SparkError as exc:
            self.app.call_from_thread(self._eval_error, str(exc))
            return
        except Exception as exc:  # never a traceback on screen
            self.app.call_from_thread(self._eval_error, f"{type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._show_result, result)

    def _eval_progress(self, frac: float, message: str) -> None:
        self.query_one("#eval-progress", ProgressBar).update(total=1, progress=frac)
        self.query_one("#eval-status", PhaseStatus).show(message)

    def _eval_error(self, message: str) -> None:
        self.query_one("#eval-status", PhaseStatus).end(message[:200])
        self.notify(message, severity="error", title="Evaluation")

    def _show_result(self, result: dict[str, Any]) -> None:
        self.result = result
        base, tuned = result.get("base") or {}, result.get("tuned") or {}
        table = self.query_one("#score-table", DataTable)
        table.clear()
        for key, label in SCORE_ROWS:
            if key in base or key in tuned:
                table.add_row(label, _fmt(base.get(key)), _fmt(tuned.get(key)))
        pref = result.get("preference")
        if pref:
            table.add_row("Reward accuracy", "", _fmt(pref.get("accuracy")))
            table.add_row("Reward margin", "", _fmt(pref.get("margin")))
        self.query_one("#eval-status", PhaseStatus).end(
            f"saved to eval.json · {len(result.get('samples') or [])} prompts ([ ] step)"
        )
        self.query_one("#eval-progress", ProgressBar).update(total=1, progress=1)
        self.sample_index = 0
        self._show_sample()
        if self.is_current and isinstance(self.focused, Button) and self.focused.id == "run-eval":
            self.query_one("#next", Button).focus()

    def _show_sample(self) -> None:
        samples = (self.result or {}).get("samples") or []
        if not samples:
            return
        self.sample_index %= len(samples)
        s = samples[self.sample_index]
        parts = [f"[b]Prompt {self.sample_index + 1}/{len(samples)}:[/b] {s.get('prompt', '')}",
                 f"[b]Reference:[/b] {s.get('reference', '')}"]
        for side in ("base", "tuned"):
            if side in s:
                sc = s.get(f"{side}_scores") or {}
                parts.append(f"[b]{side.title()}[/b] (ROUGE-L {_fmt(sc.get('rougeL'))}): {s[side]}")
        from rich.markup import escape

        self.query_one("#sample-text", Static).update(
            "\n".join(p if i == -1 else _escape_body(p, escape) for i, p in enumerate(parts))
        )

    def action_next_sample(self) -> None:
        self.sample_index += 1
        self._show_sample()

    def action_prev_sample(self) -> None:
        self.sample_index -= 1
        self._show_sample()

    # -- chat -------------------------------------------------------------------
    @on(Input.Submitted, "#chat-input")
    def chat_send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.chat_busy:
            return
        event.input.value = ""
        run = self.app.current_run
        if run is None:
            return
        source = str(self.query_one("#chat-source", Select).value)
        log = self.query_one("#chat-log", RichLog)
        log.write(f"you: {text}")
        self.chat_busy = True
        self.chat_worker(run, source, text)

    @work(thread=True, exclusive=True, group="chat", exit_on_error=False)
    def chat_worker(self, run: runs_core.Run, source: str, text: str) -> None:
        from spark_tui.core.base.lazy import warm_imports
        from spark_tui.core.evaluate import chat
        from spark_tui.core.evaluate.chat_session import ChatSettings

        try:
            warm_imports()
            if self.session is None:
                self.app.call_from_thread(self._chat_line, f"(loading the {source} model…)")
                self.session = chat.open_chat(run, source=source, settings=ChatSettings(temperature=0.0))
                self.session_source = source
            elif self.session_source != source:
                if self.session.can_switch:
                    self.session.set_source(source)
                else:
                    self.session.close()
                    self.session = chat.open_chat(run, source=source, settings=ChatSettings(temperature=0.0))
                self.session_source = source
            answer: list[str] = []
            for chunk in self.session.send(text):
                answer.append(chunk)
                self.app.call_from_thread(self._chat_stream, "".join(answer))
            self.app.call_from_thread(self._chat_done, "".join(answer))
        except SparkError as exc:
            self.app.call_from_thread(self._chat_done, None, str(exc))
        except Exception as exc:
            self.app.call_from_thread(self._chat_done, None, f"{type(exc).__name__}: {exc}")

    def _chat_line(self, text: str) -> None:
        self.query_one("#chat-log", RichLog).write(text)

    def _chat_stream(self, partial: str) -> None:
        self.query_one("#chat-input", Input).placeholder = f"{self.session_source}: {partial[-60:]}"

    def _chat_done(self, answer: str | None, error: str | None = None) -> None:
        self.chat_busy = False
        self.query_one("#chat-input", Input).placeholder = "Ask the model…"
        log = self.query_one("#chat-log", RichLog)
        if error:
            log.write(f"error: {error}")
        else:
            log.write(f"{self.session_source}: {answer}")

    # -- A/B review ----------------------------------------------------------------
    @on(TabbedContent.TabActivated, "#eval-tabs")
    def tab_changed(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-ab" and self.review is None:
            self._start_review()

    def _start_review(self) -> None:
        from spark_tui.core.evaluate import ab_review

        run = self.app.current_run
        if run is None:
            return
        try:
            self.review = ab_review.start_review(run)
        except SparkError as exc:
            self.query_one("#ab-text", Static).update(str(exc))
            return
        self.ab_position = self.review.next_unjudged()
        self._show_pair()

    def _show_pair(self) -> None:
        from rich.markup import escape

        rv = self.review
        status = self.query_one("#ab-status", Static)
        s = rv.summary()
        status.update(f" {len(rv.picks)}/{len(rv)} judged · tuned win rate {_fmt(s.get('win_rate'))}")
        if self.ab_position is None:
            self.query_one("#ab-text", Static).update(
                f"All pairs judged. Tuned wins {s.get('tuned_wins', 0)}, base wins "
                f"{s.get('base_wins', 0)}, ties {s.get('ties', 0)} — saved to ab_review.json."
            )
            return
        p = rv.pairs[self.ab_position]
        self.query_one("#ab-text", Static).update(
            f"[b]Prompt:[/b] {escape(p.prompt)}\n\n[b]A:[/b] {escape(p.a)}\n\n[b]B:[/b] {escape(p.b)}"
        )

    @on(Button.Pressed, "#pick-A")
    @on(Button.Pressed, "#pick-B")
    @on(Button.Pressed, "#pick-tie")
    def ab_pick(self, event: Button.Pressed) -> None:
        event.stop()
        if self.review is None or self.ab_position is None:
            return
        choice = (event.button.id or "").removeprefix("pick-")
        self.review.pick(self.ab_position, choice)
        self.ab_position = self.review.next_unjudged()
        self._show_pair()

    # -- compare ---------------------------------------------------------------------
    def _fill_compare_runs(self) -> None:
        sl = self.query_one("#compare-runs", SelectionList)
        current = self.app.current_run.id if self.app.current_run else ""
        for run in reversed(runs_core.list_runs()):
            s = run.status().get("state", "new")
            sl.add_option(Selection(f"{run.id} ({s})", str(run.path), run.id == current))

    @on(Button.Pressed, "#run-compare")
    def compare_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.compare([str(v) for v in self.query_one("#compare-runs", SelectionList).selected])

    def compare(self, paths: list[str]) -> None:
        from spark_tui.core.evaluate.compare import compare_runs

        try:
            comp = compare_runs(paths)
        except SparkError as exc:
            self.query_one("#compare-status", Static).update(str(exc))
            return
        self.comparison = comp
        series = []
        for rs in comp.runs:
            if rs.train_curve:
                series.append((rs.id[-18:], [p[0] for p in rs.train_curve], [p[1] for p in rs.train_curve]))
            if rs.eval_curve:
                series.append((rs.id[-12:] + " eval", [p[0] for p in rs.eval_curve],
                               [p[1] for p in rs.eval_curve]))
        self.query_one("#compare-chart", MetricChart).set_series(series)
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        cols = comp.columns
        table.add_columns(*cols)
        for row in comp.rows():
            table.add_row(*[_fmt(v) for v in row])
        differing = ", ".join(comp.differing) or "nothing"
        self.query_one("#compare-status", Static).update(f"differs: {differing}")

    # -- sweep -------------------------------------------------------------------------
    @on(Button.Pressed, "#run-sweep")
    def sweep_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        from spark_tui.core.evaluate import sweep as sweep_core

        run = self.app.current_run
        if run is None:
            return
        param = str(self.query_one("#sweep-param", Select).value)
        values = self.query_one("#sweep-values", Input).value
        steps_text = self.query_one("#sweep-steps", Input).value.strip()
        try:
            base = run.config()
            base.name = f"{run.id[-20:]}-sweep"
            sw = sweep_core.create_sweep(base, param, values,
                                         max_steps=int(steps_text) if steps_text else None)
        except (SparkError, ValueError) as exc:
            self.query_one("#sweep-status", Static).update(str(exc))
            return
        self.query_one("#sweep-status", Static).update(f"sweep {sw.id}: {len(sw.runs)} runs queued")
        self.run_sweep_worker(sw)

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def run_sweep_worker(self, sw) -> None:
        from spark_tui.core.evaluate import sweep as sweep_core

        worker = get_current_worker()

        def progress(frac: float, message: str) -> None:
            self.app.call_from_thread(self.query_one("#sweep-status", Static).update,
                                      f"{frac:.0%} {message}")

        try:
            sweep_core.run_sweep(sw, progress=progress, cancel=lambda: worker.is_cancelled)
        except SparkError as exc:
            self.app.call_from_thread(self.query_one("#sweep-status", Static).update, str(exc))
            return
        self.app.call_from_thread(self.show_sweep, sw)

    def show_sweep(self, sw) -> None:
        """The metric-vs-parameter plot, then the compare view of the sweep's runs."""
        pts = [(v, m) for v, m in sw.points("final_loss") if m is not None]
        numeric = all(isinstance(v, (int, float)) for v, _ in pts)
        xs = [float(v) if numeric else float(i) for i, (v, _) in enumerate(pts)]
        self.query_one("#sweep-chart", MetricChart).set_series([(sw.param, xs, [m for _, m in pts])])
        self.query_one("#sweep-status", Static).update(
            f"{sw.param}: " + ", ".join(f"{v} → {m:.3f}" for v, m in pts) + " (Compare tab: curves)"
        )
        sl = self.query_one("#compare-runs", SelectionList)
        sl.clear_options()
        for r in sw.handles():
            sl.add_option(Selection(r.id, str(r.path), True))
        self.compare([str(r.path) for r in sw.handles()])

    def validate_step(self) -> tuple[bool, str]:
        run = self.app.current_run
        if run is None:
            return False, "No run."
        if run.status().get("state") in names.ACTIVE_STATES:
            return False, "Still training."
        return True, ""

    def on_unmount(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            except Exception:
                pass


def _escape_body(part: str, escape) -> str:
    """Escape the model's text but keep our own bold label."""
    if part.startswith("[b]") and "[/b]" in part:
        head, _, body = part.partition("[/b]")
        return f"{head}[/b]{escape(body)}"
    return escape(part)
