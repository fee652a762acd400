"""The first screen: what this machine has, start a new fine-tune, or pick up a run."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Static

from spark_tui.core.model import hardware
from spark_tui.core.train import runs as runs_core

TAGLINE = "From a pile of examples to a fine-tuned model answering in Ollama."


class WelcomeScreen(Screen):
    BINDINGS = [
        Binding("n", "new", "New fine-tune"),
        Binding("o", "open_run", "Open run"),
        Binding("r", "refresh_runs", "Refresh"),
        Binding("f1,question_mark", "app.help", "Help"),
        Binding("ctrl+q", "app.quit", "Quit"),
    ]
    STEP = "welcome"

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="welcome"):
            yield Static(f"[b]spark-tui[/b] — {TAGLINE}", id="tagline")
            yield Static("Probing this machine…", id="system-summary")
            with Horizontal(id="welcome-buttons"):
                yield Button("New fine-tune (n)", id="new", variant="primary")
                yield Button("Open a run (o)", id="open")
            yield Static("Runs", classes="section-title")
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)  # every key of the step fits in 80 columns

    def on_mount(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.add_columns("Run", "State", "Step", "Loss")
        self.query_one("#new", Button).focus()
        self.load_summary()
        self.action_refresh_runs()

    @work(thread=True, exclusive=True, group="welcome-probe", exit_on_error=False)
    def load_summary(self) -> None:
        p = hardware.probe(with_disk=True, with_processes=False)
        self.app.probe = p
        gb = hardware.fmt_bytes
        gpus = ", ".join(g.name for g in p.gpus) if p.gpus else "none (CPU only)"
        unified = " (unified memory)" if p.unified_memory else ""
        disk = f" · [b]Disk[/b] {gb(p.disk_free_home)} free" if p.disk_free_home is not None else ""
        text = (
            f"[b]CPU[/b] {p.cpu_cores_logical} cores ({p.machine}) · "
            f"[b]Memory[/b] {gb(p.mem_available)} of {gb(p.mem_total)} free{unified} · "
            f"[b]GPU[/b] {gpus}{disk}"
        )
        self.app.call_from_thread(self.query_one("#system-summary", Static).update, text)

    def action_refresh_runs(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        for run in reversed(runs_core.list_runs()):
            s = run.summary()
            loss = f"{s['final_loss']:.3f}" if s["final_loss"] is not None else "–"
            step = f"{s['step']}/{s['total_steps']}" if s["total_steps"] else str(s["step"])
            table.add_row(s["id"], s["state"], step, loss, key=s["path"])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new":
            self.action_new()
        elif event.button.id == "open":
            self.action_open_run()

    def action_new(self) -> None:
        self.app.start_wizard()

    def action_open_run(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count == 0:
            self.notify("No runs yet: start with New fine-tune (n).", title="Open a run")
            return
        table.focus()
        self.notify("Pick a run and press Enter.", title="Open a run")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.open_run(event.row_key.value)
