"""Memory step: will this run fit?  Probe, estimate breakdown, verdict, suggestions, live gauges."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, OptionList, Static
from textual.widgets.option_list import Option

from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory import fit, suggestions
from spark_tui.core.memory.breakdown import fmt_gb
from spark_tui.core.memory.estimator import checkpointing_note, estimate_config
from spark_tui.core.memory.headroom import STATUS_LABELS
from spark_tui.core.model import hardware, sysmem
from spark_tui.screens.base import StepScreen


def verdict_line(verdict: fit.Verdict) -> str:
    """"Fits · lora · peak ≈ 3.1 GB of 24.3 GB · headroom 87 %" (the Memory and Review steps)."""
    e = verdict.estimate
    return (
        f"{verdict.label} · {e.settings.method} · peak ≈ {fmt_gb(e.total)} of "
        f"{fmt_gb(verdict.budget)} · headroom {verdict.headroom * 100:.0f} %"
    )


def probe_text(p: hardware.HardwareProbe) -> str:
    gb = hardware.fmt_bytes
    budget = p.budget()
    parts = [f"[b]Budget[/b] {gb(budget.bytes)} · {budget.source}"]
    parts.append(
        f"RAM {gb(p.mem_available)} free of {gb(p.mem_total)} · page cache {gb(p.page_cache)}"
        + (f" · swap {gb(p.swap_used)}/{gb(p.swap_total)}" if p.swap_total else "")
    )
    if p.gpus:
        for g in p.gpus:
            mem = f"{gb(g.memory_used)}/{gb(g.memory_total)}" if g.memory_total else "memory not reported (unified)"
            parts.append(f"GPU {g.name}: {mem}")
    else:
        parts.append("GPU: none — training runs on the CPU (fine for the bundled model)")
    return "\n".join(parts)


class MemoryScreen(StepScreen):
    STEP = "memory"
    FOCUS_NEXT_WHEN_READY = True

    DEFAULT_CSS = """
    MemoryScreen #mem-columns { height: 1fr; }
    MemoryScreen #mem-left { width: 44; }
    MemoryScreen #mem-right { width: 1fr; padding-left: 1; }
    MemoryScreen #breakdown { height: auto; max-height: 10; }
    MemoryScreen #verdict { text-style: bold; height: auto; }
    MemoryScreen #verdict.fits { color: $success; }
    MemoryScreen #verdict.tight { color: $warning; }
    MemoryScreen #verdict.wont_fit { color: $error; }
    MemoryScreen #suggestions { height: 1fr; min-height: 3; }
    MemoryScreen #probe { height: auto; color: $text-muted; }
    MemoryScreen #drop-cache { display: none; }
    MemoryScreen #drop-cache.visible { display: block; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.probe: hardware.HardwareProbe | None = None
        self.verdict: fit.Verdict | None = None
        self.error = ""

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="mem-columns"):
            with Vertical(id="mem-left"):
                yield Static("Estimating…", id="verdict")
                yield DataTable(id="breakdown", show_cursor=False)
            with Vertical(id="mem-right"):
                yield Static("Probing this machine…", id="probe")
                yield Static("Suggestions (Enter applies one):", classes="hint")
                yield OptionList(id="suggestions")
                yield Button("Drop page cache…", id="drop-cache", variant="warning")
        yield from self.compose_gauges()

    def compose_gauges(self) -> ComposeResult:
        try:
            from spark_tui.widgets.gauges import MemoryGauges
        except ImportError:  # the widget ships with the memory step's gauges
            return
        yield MemoryGauges(id="gauges")

    def on_mount(self) -> None:
        self.query_one("#breakdown", DataTable).add_columns("Part", "Memory")
        super().on_mount()
        self.recompute()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.recompute()

    @work(thread=True, exclusive=True, group="memory-estimate", exit_on_error=False)
    def recompute(self) -> None:
        try:
            probe = self.probe or hardware.probe(with_processes=True)
            est = estimate_config(self.app.config, hardware=probe)
            verdict = fit.verdict(est, probe)
        except SparkError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._show, probe, verdict)

    def _show_error(self, message: str) -> None:
        self.error = message
        self.verdict = None
        v = self.query_one("#verdict", Static)
        v.update(f"No estimate: {message}")
        self.refresh_nav()

    def _show(self, probe: hardware.HardwareProbe, verdict: fit.Verdict) -> None:
        self.probe, self.verdict, self.error = probe, verdict, ""
        self.app.probe = probe  # later steps estimate against the same machine
        self.query_one("#probe", Static).update(probe_text(probe))
        v = self.query_one("#verdict", Static)
        v.set_classes(verdict.status)
        v.update(verdict_line(verdict))
        table = self.query_one("#breakdown", DataTable)
        table.clear()
        for label, value in verdict.estimate.rows():
            table.add_row(label, value)
        ol = self.query_one("#suggestions", OptionList)
        ol.clear_options()
        for i, sg in enumerate(verdict.suggestions):
            ol.add_option(
                Option(
                    f"{sg.title} → {fmt_gb(sg.estimate.total)} ({STATUS_LABELS[sg.status]})",
                    id=str(i),
                )
            )
        for w in verdict.warnings:
            ol.add_option(Option(f"⚠ {w}", disabled=True))
        if ol.option_count == 0:
            ol.add_option(Option("None needed: this run fits as it is.", disabled=True))
        note = checkpointing_note(verdict.estimate)
        if note:
            ol.add_option(Option(f"ℹ {note}", disabled=True))
        self.query_one("#drop-cache", Button).set_class(
            verdict.drop_cache_hint and probe.unified_memory, "visible"
        )
        self.refresh_nav()

    @on(OptionList.OptionSelected, "#suggestions")
    def apply_suggestion(self, event: OptionList.OptionSelected) -> None:
        if self.verdict is None or event.option.id is None:
            return
        sg = self.verdict.suggestions[int(event.option.id)]
        try:
            self.app.config = suggestions.apply_suggestion(self.app.config, sg)
        except SparkError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"Applied: {sg.title}", title="Memory")
        self.recompute()

    @on(Button.Pressed, "#drop-cache")
    def drop_cache(self, event: Button.Pressed) -> None:
        event.stop()
        from spark_tui.screens.confirm import ConfirmScreen

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_drop_cache()

        self.app.push_screen(
            ConfirmScreen(
                "Flush dirty pages and drop the page cache now?\n\n"
                f"This runs: {sysmem.DROP_CACHES_COMMAND}\nIt needs root. Nothing is lost; "
                "files are re-read from disk when next used.",
                yes="Drop it",
                no="Cancel",
            ),
            answered,
        )

    @work(thread=True, exclusive=True, group="drop-cache", exit_on_error=False)
    def run_drop_cache(self) -> None:
        try:
            freed = sysmem.drop_page_cache()
        except SparkError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error", title="Page cache")
            return
        self.app.call_from_thread(
            self.notify, f"Freed about {hardware.fmt_bytes(freed)}", title="Page cache"
        )
        self.probe = None
        self.recompute()

    def validate_step(self) -> tuple[bool, str]:
        # No estimate (unknown architecture) or "won't fit" do not block: the estimate
        # can be wrong, and the user was told.  Only a running estimate does.
        if self.verdict is None and not self.error:
            return False, "Estimating…"
        return True, ""

    def action_next(self) -> None:
        if self.verdict is not None and self.verdict.status == "wont_fit":
            self.notify(
                "The estimate says this run won't fit; apply a suggestion or expect an out-of-memory stop.",
                severity="warning",
                title="Won't fit",
            )
        super().action_next()
