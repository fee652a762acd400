"""Deploy step: merge the adapter, export and verify GGUF, write the Modelfile, register with Ollama.

Each action runs `spark-tui merge|export|ollama` as a child process: llama.cpp
mutes the whole process's stdout/stderr while it loads a model, which would
blank the TUI.  The child reports progress as JSON lines on stderr
(SPARK_TUI_PROGRESS=json) and its result as JSON on stdout.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, ProgressBar, RichLog, Select, Static
from textual.worker import get_current_worker

from spark_tui.core.base.progress import StageProgress
from spark_tui.core.export.pipeline import load_summary
from spark_tui.screens.base import StepScreen

GGUF_TYPES = {
    "q4_k_m": "q4_k_m (small, the usual choice)",
    "q8_0": "q8_0 (near exact)",
    "f16": "f16 (exact, large)",
    "q5_k_m": "q5_k_m",
    "q6_k": "q6_k",
    "bf16": "bf16",
}


def default_ollama_name(run_id: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", run_id.lower()).strip("-._")
    slug = re.sub(r"^\d{8}-\d{6}-", "", slug) or "spark-tui-model"
    return slug[:60]


def deploy_command(action: str, run_path: str, gguf_type: str, name: str) -> list[str]:
    """The child command for one action (an argument list, never a shell string)."""
    base = [sys.executable, "-m", "spark_tui"]
    if action == "merge":
        return [*base, "merge", run_path, "--json"]
    if action == "export":
        return [*base, "export", run_path, "--type", gguf_type, "--json"]
    return [*base, "ollama", run_path, "--name", name, "--type", gguf_type, "--json"]


class DeployScreen(StepScreen):
    STEP = "deploy"
    BINDINGS = [*StepScreen.BINDINGS, Binding("a", "deploy_all", "Do all")]

    DEFAULT_CSS = """
    DeployScreen .opt-row { height: 1; }
    DeployScreen .opt-row Label { width: 16; }
    DeployScreen .opt-row Select { width: 36; }
    DeployScreen .opt-row Input { width: 1fr; }
    DeployScreen #deploy-buttons { height: 1; margin-top: 1; }
    DeployScreen #deploy-buttons Button { margin-right: 2; }
    DeployScreen #deploy-stage { height: 1; }
    DeployScreen #deploy-progress { height: 1; }
    DeployScreen #deploy-log { height: 1fr; border-top: solid $panel; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, dict[str, Any]] = {}
        self.busy = False
        self.shown_report = False  # the last deploy of this run, from its deploy.json
        self._progress = StageProgress()

    def compose_body(self) -> ComposeResult:
        run = self.app.current_run
        with Horizontal(classes="opt-row"):
            yield Label("GGUF type")
            yield Select(
                [(v, k) for k, v in GGUF_TYPES.items()],
                value="q4_k_m",
                allow_blank=False,
                id="gguf-type",
                compact=True,
            )
        with Horizontal(classes="opt-row"):
            yield Label("Ollama name")
            yield Input(
                default_ollama_name(run.id if run else "model"), id="ollama-name", compact=True
            )
        with Horizontal(id="deploy-buttons"):
            yield Button("Merge", id="do-merge", compact=True)
            yield Button("Export GGUF", id="do-export", compact=True)
            yield Button("Ollama", id="do-ollama", compact=True)
            yield Button("Do all (a)", id="do-all", variant="primary", compact=True)
        yield Static("Merge → export and verify GGUF → Modelfile → Ollama.", id="deploy-stage")
        yield ProgressBar(total=None, show_eta=False, id="deploy-progress")
        yield RichLog(id="deploy-log", wrap=True, markup=True, max_lines=2000)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#next").label = "Finish ▶"
        self.query_one("#do-all", Button).focus()
        self.show_saved_report()

    def show_saved_report(self) -> None:
        """Opened again on a deployed run: its last merge, export and Ollama results."""
        run = self.app.current_run
        saved = load_summary(run.path) if run is not None else {}
        actions = [a for a in ("merge", "export", "ollama") if isinstance(saved.get(a), dict)]
        if not actions:
            return
        self.query_one("#deploy-stage", Static).update(
            "Last deploy of this run (deploy.json) — Do all (a) runs it again."
        )
        self.query_one("#deploy-log", RichLog).auto_scroll = False  # a report reads from the top
        self._log(f"[dim]Files are in the run folder, {escape(str(run.path))}[/dim]")
        for action in actions:
            result = saved[action]
            self._show_result(action, 0 if result.get("ok", True) else 1, result, [])
        self.query_one("#deploy-progress", ProgressBar).update(total=1, progress=1)
        self.shown_report = True

    def _rel(self, path: Any) -> str:
        """A path inside the run folder as the run folder's own (short enough for 80 columns)."""
        run = self.app.current_run
        text = str(path)
        if run is not None and text.startswith(str(run.path) + os.sep):
            return text[len(str(run.path)) + 1 :]
        return text

    @on(Button.Pressed, "#do-merge")
    def _merge(self, event: Button.Pressed) -> None:
        event.stop()
        self.start(["merge"])

    @on(Button.Pressed, "#do-export")
    def _export(self, event: Button.Pressed) -> None:
        event.stop()
        self.start(["export"])

    @on(Button.Pressed, "#do-ollama")
    def _ollama(self, event: Button.Pressed) -> None:
        event.stop()
        self.start(["ollama"])

    @on(Button.Pressed, "#do-all")
    def _all(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_deploy_all()

    def action_deploy_all(self) -> None:
        self.start(["merge", "export", "ollama"])

    def start(self, actions: list[str]) -> None:
        run = self.app.current_run
        if run is None:
            self.notify("No run to deploy.", severity="error")
            return
        if self.busy:
            self.notify("Already working…")
            return
        name = self.query_one("#ollama-name", Input).value.strip() or default_ollama_name(run.id)
        gtype = str(self.query_one("#gguf-type", Select).value)
        self.busy = True
        self.query_one("#deploy-log", RichLog).auto_scroll = True  # follow the new work
        self.run_actions(actions, str(run.path), gtype, name)

    @work(thread=True, exclusive=True, group="deploy", exit_on_error=False)
    def run_actions(self, actions: list[str], run_path: str, gtype: str, name: str) -> None:
        try:
            for action in actions:
                ok = self._run_child(action, run_path, gtype, name)
                if not ok or get_current_worker().is_cancelled:
                    break
        finally:
            self.app.call_from_thread(self._done)

    def _run_child(self, action: str, run_path: str, gtype: str, name: str) -> bool:
        cmd = deploy_command(action, run_path, gtype, name)
        env = {**os.environ, "SPARK_TUI_PROGRESS": "json"}
        self.app.call_from_thread(self._stage, f"{action}: starting", None, None)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None and proc.stdout is not None
        other: list[str] = []
        for line in proc.stderr:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
                self.app.call_from_thread(
                    self._stage, f"{action}: {ev.get('stage', '')}", ev.get("done"), ev.get("total")
                )
            except json.JSONDecodeError:
                other.append(line)
                self.app.call_from_thread(self._log, line)
        out = proc.stdout.read()
        rc = proc.wait()
        try:
            result = json.loads(out) if out.strip() else {}
        except json.JSONDecodeError:
            result = {"raw": out}
        self.results[action] = {"rc": rc, **result}
        self.app.call_from_thread(self._show_result, action, rc, result, other)
        return rc == 0

    def _stage(self, text: str, done: Any, total: Any) -> None:
        self.query_one("#deploy-stage", Static).update(self._progress.update(text, done, total))
        self.query_one("#deploy-progress", ProgressBar).update(
            total=total or None, progress=done or 0
        )

    def _log(self, text: str) -> None:
        self.query_one("#deploy-log", RichLog).write(text)

    def _show_result(self, action: str, rc: int, result: dict[str, Any], other: list[str]) -> None:
        log = self.query_one("#deploy-log", RichLog)
        ok = "[green]done[/green]" if rc == 0 else "[red]failed[/red]"
        log.write(f"[b]{action}[/b] {ok}")
        if action == "merge":
            for line in result.get("summary", []) or []:
                log.write(f"  {line}")
            if result.get("message"):
                log.write(f"  {result['message']}")
            if result.get("out_dir"):
                log.write(f"  merged model: {self._rel(result['out_dir'])}/")
        elif action == "export":
            for t, path in (result.get("outputs") or {}).items():
                verified = (result.get("verified") or {}).get(t)
                mark = "verified" if verified else "NOT verified" if verified is False else ""
                log.write(f"  {t}: {self._rel(path)} {mark}")
                # the three checks (tokenization, tensors, logits), each with its verdict
                checks = (result.get("checks") or {}).get(t) or {}
                if checks:
                    log.write(
                        "    " + " · ".join(f"{k}: {escape(str(v))}" for k, v in checks.items())
                    )
            for v in (result.get("verifications") or {}).values():
                for line in v.get("summary", []) or []:
                    log.write(f"    {line}")
            for note in result.get("notes", []) or []:
                log.write(f"  note: {note}")
        elif action == "ollama":
            if result.get("modelfile"):
                log.write(f"  Modelfile: {self._rel(result['modelfile'])}")
            if result.get("registered"):
                log.write(
                    f"  registered as [b]{result.get('name')}[/b]; try: ollama run {result.get('name')}"
                )
                if result.get("answer"):
                    log.write(f"  Ollama answered: {result['answer']}")
            else:
                if result.get("message"):
                    log.write(f"  [yellow]{result['message']}[/yellow]")
                if result.get("command"):
                    cmd = result["command"]
                    cmd = shlex.join(cmd) if isinstance(cmd, list) else str(cmd)
                    log.write(f"  Run later: {escape(cmd)}")
        if rc != 0 and not result:
            log.write("  " + (other[-1] if other else f"exit code {rc}"))
        self.refresh_nav()

    def _done(self) -> None:
        self.busy = False
        self.query_one("#deploy-progress", ProgressBar).update(total=1, progress=1)
        self.refresh_nav()
        self.query_one("#next", Button).focus()

    def validate_step(self) -> tuple[bool, str]:
        if self.busy:
            return False, "Working…"
        return True, ""

    def action_next(self) -> None:
        """Finish: back to the welcome screen (the run folder keeps everything)."""
        if self.busy:
            self.notify("Still working…")
            return
        from spark_tui.screens.welcome import WelcomeScreen

        while len(self.app.screen_stack) > 1 and not isinstance(self.app.screen, WelcomeScreen):
            self.app.pop_screen()
        if isinstance(self.app.screen, WelcomeScreen):
            self.app.screen.action_refresh_runs()
