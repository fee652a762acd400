"""Review step: the whole run at a glance, its memory verdict and CLI twin; saves run.toml."""

from __future__ import annotations

import shlex

from rich.markup import escape
from rich.syntax import Syntax
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory.estimator import estimate_config
from spark_tui.core.memory.fit import verdict
from spark_tui.core.review.cli_equiv import train_command_text
from spark_tui.core.train import launch, runs
from spark_tui.screens.base import StepScreen
from spark_tui.screens.memory import verdict_line


def summary_text(cfg: RunConfig) -> str:
    m, t, lo = cfg.method, cfg.train, cfg.lora
    adapter = m.adapter + (" + DoRA" if m.use_dora else "") + (" + rsLoRA" if m.use_rslora else "")
    length = f"{t.max_steps} steps" if t.max_steps > 0 else f"{t.epochs:g} epochs"
    lines = [
        f"[b]Model[/b] {cfg.model.id}   [b]Data[/b] {cfg.data.path}",
        f"[b]Objective[/b] {m.objective}   [b]Adaptation[/b] {adapter}"
        + (f" (r={lo.r}, α={lo.alpha}, {lo.target_modules})" if m.adapter in ("lora", "qlora") else ""),
        f"[b]Length[/b] {length} · lr {t.learning_rate:g} · batch {t.micro_batch_size}×{t.grad_accum}"
        f" · max length {cfg.data.max_length}"
        + (f" · NEFTune α={t.neftune_alpha:g}" if t.neftune_alpha else ""),
    ]
    return "\n".join(lines)


def launch_text(run: runs.Run, cfg: RunConfig) -> str:
    """What each machine of a distributed run runs, and what Start does here."""
    d = cfg.distributed
    lines = [
        f"[b]{d.strategy.upper()}[/b] over {d.processes_per_machine} process(es) × "
        f"{d.machines} machine(s) through accelerate (c copies); accelerate.yaml is "
        "written into the run folder. With several machines, the run folder must be at "
        "the same path on each (shared or copied):"
    ]
    lines += [f"  machine {r}: {escape(shlex.join(a))}" for r, a in launch.machine_commands(run, cfg)]
    lines.append(f"Start training here starts machine {d.machine_rank}'s processes.")
    return "\n".join(lines)


class ReviewScreen(StepScreen):
    STEP = "review"
    FOCUS_NEXT_WHEN_READY = True
    BINDINGS = [*StepScreen.BINDINGS, Binding("c", "copy_command", "Copy command")]

    DEFAULT_CSS = """
    ReviewScreen #review-summary { height: auto; }
    ReviewScreen #review-verdict { height: auto; text-style: bold; }
    ReviewScreen #review-verdict.fits { color: $success; }
    ReviewScreen #review-verdict.tight { color: $warning; }
    ReviewScreen #review-verdict.wont_fit { color: $error; }
    ReviewScreen #review-command { height: auto; color: $accent; }
    ReviewScreen #review-toml { height: 1fr; border-top: solid $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.command = ""
        self.saved: runs.Run | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="review-summary")
        yield Static("Estimating memory…", id="review-verdict")
        yield Static("", id="review-command")
        with VerticalScroll(id="review-toml"):
            yield Static("", id="review-toml-text")

    def on_mount(self) -> None:
        self.refresh_review()
        super().on_mount()
        self.query_one("#next").label = "Start training ▶"

    def on_screen_resume(self) -> None:
        self.refresh_review()
        super().on_screen_resume()

    def refresh_review(self) -> None:
        cfg: RunConfig = self.app.config
        self.save_config()
        self.query_one("#review-summary", Static).update(summary_text(cfg))
        self.command = train_command_text(cfg)
        where = f"spark-tui train {self.saved.config_path}" if self.saved else ""
        text = f"[b]Same run, headless[/b] (c copies):\n{self.command}" + (f"\nor: {where}" if where else "")
        if self.saved is not None and launch.is_distributed(cfg):
            text = launch_text(self.saved, cfg)
            self.command = "\n".join(shlex.join(a) for _, a in launch.machine_commands(self.saved, cfg))
        self.query_one("#review-command", Static).update(text)
        self.query_one("#review-toml-text", Static).update(
            Syntax(cfg.to_toml(), "toml", theme="ansi_dark", background_color="default")
        )
        self.estimate()

    def save_config(self) -> None:
        """Write run.toml now: into this wizard's run folder while it has not started."""
        cfg: RunConfig = self.app.config
        run = self.app.current_run
        try:
            if run is not None and run.status().get("state") == "new":
                cfg.save(run.config_path)
            else:
                run = runs.create_run(cfg)
                self.app.current_run = run
        except (SparkError, OSError) as exc:
            self.notify(f"Could not save run.toml: {exc}", severity="error")
            return
        self.saved = run

    @work(thread=True, exclusive=True, group="review-estimate", exit_on_error=False)
    def estimate(self) -> None:
        try:
            probe = getattr(self.app, "probe", None)
            if probe is None:
                from spark_tui.core.model import hardware

                probe = hardware.probe(with_processes=False)
                self.app.probe = probe
            v = verdict(estimate_config(self.app.config, hardware=probe), probe,
                        with_suggestions=False)
            text, cls = verdict_line(v), v.status
            d = self.app.config.distributed
            if launch.is_distributed(self.app.config):
                from spark_tui.core.memory.distributed import machine_verdict

                try:
                    pp, cls, _, line = machine_verdict(
                        v, d.strategy, d.processes_per_machine * d.machines, d.machines
                    )
                except ValueError as exc:
                    raise SparkError(f"[distributed]: {exc}") from exc
                text = f"{pp.summary()}\n{line}"
        except SparkError as exc:
            text, cls = f"No memory estimate: {exc}", ""
        self.app.call_from_thread(self._show_verdict, text, cls)

    def _show_verdict(self, text: str, cls: str) -> None:
        w = self.query_one("#review-verdict", Static)
        w.set_classes(cls)
        w.update(text)

    def action_copy_command(self) -> None:
        # OSC 52: works over SSH in terminals that allow it (tmux needs set-clipboard on).
        self.app.copy_to_clipboard(self.command)
        self.notify("Command copied to the clipboard (where the terminal allows it).")

    def validate_step(self) -> tuple[bool, str]:
        if self.saved is None:
            return False, "run.toml could not be saved"
        return True, ""

    def action_next(self) -> None:
        """Start the detached training process in a worker; the Train screen follows it.

        The launch checks the run (preflight: files, model folder, maybe one Hub
        request) and waits for the supervisor to report the trainer's pid: never
        on the event loop.
        """
        ok, reason = self.validate_step()
        if not ok:
            self.notify(reason, severity="warning", title="Not yet")
            return
        self.notify("Starting the training process…", title="Train")
        self._start()

    @work(thread=True, exclusive=True, group="review-start", exit_on_error=False)
    def _start(self) -> None:
        from spark_tui.core.train import process

        assert self.saved is not None
        try:
            process.start_training(self.saved)
        except SparkError as exc:
            self.app.call_from_thread(
                self.notify, str(exc), severity="error", title="Cannot continue"
            )
            return
        self.app.call_from_thread(self.app.next_step, self.STEP)
