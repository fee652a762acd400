"""Dataset step: pick a file (or a bundled set), see the detected format, lint, split, preview.

All the work happens in `spark_tui.core.data`; this screen loads in a worker,
re-prepares when a choice changes, and draws the report.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    DirectoryTree,
    Input,
    Label,
    ProgressBar,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.selection_list import Selection
from textual.worker import get_current_worker

from spark_tui.core import data as data_core
from spark_tui.core.base.errors import SparkError
from spark_tui.core.base.progress import StageProgress
from spark_tui.core.data import recent as recent_core
from spark_tui.core.data.tokenizer import load_tokenizer
from spark_tui.screens.base import StepScreen
from spark_tui.screens.dataset_view import histogram_series, render_preview
from spark_tui.widgets.charts import MetricChart
from spark_tui.widgets.data_source import (
    BUNDLED,
    FILE_KEY,
    RECENT_PREFIX,
    DataFileTree,
    source_options,
)

_PREPARE_LOCK = threading.Lock()
class DatasetScreen(StepScreen):
    STEP = "dataset"
    FOCUS_NEXT_WHEN_READY = True
    BINDINGS = [
        *StepScreen.BINDINGS,
        Binding("f", "toggle_tree", "Files"),
        Binding("left_square_bracket", "prev_row", "Prev row"),
        Binding("right_square_bracket", "next_row", "Next row"),
    ]

    DEFAULT_CSS = """
    DatasetScreen #source-row { height: 1; }
    DatasetScreen #source-select { width: 46; }
    DatasetScreen #path-input { width: 1fr; }
    DatasetScreen #tree-slot { height: auto; }
    DatasetScreen #file-tree { height: 8; display: none; }
    DatasetScreen #file-tree.visible { display: block; }
    DatasetScreen #data-progress { height: 1; }
    DatasetScreen #data-status { height: auto; max-height: 2; }
    DatasetScreen #data-status.error { color: $error; }
    DatasetScreen TabbedContent { height: 1fr; }
    DatasetScreen TabPane { padding: 0; }
    DatasetScreen .opt-row { height: 1; }
    DatasetScreen .opt-row Label { width: 18; }
    DatasetScreen .opt-row Input { width: 1fr; }
    DatasetScreen .opt-row Select { width: 30; }
    DatasetScreen #lint-list { height: 1fr; }
    DatasetScreen #lint-help { height: 2; color: $text-muted; }
    DatasetScreen #hist-chart { height: 1fr; min-height: 6; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.source: Any = None
        self.source_key = ""
        self.prepared: Any = None
        self.error = ""
        self.preview_index = 0
        self.tokenizer: Any = None
        self._loading = False
        self._stage = StageProgress()

    # -- layout -------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        cfg = self.app.config.data
        with Horizontal(id="source-row"):
            yield Select(
                source_options(self._user_path()),
                value=self._initial_source_key(),
                allow_blank=False,
                id="source-select",
                compact=True,
            )
            yield Input(
                "" if cfg.path == "default" else cfg.path,
                placeholder="file, folder or org/name",  # fits beside the select at 80 columns
                id="path-input",
                compact=True,
            )
        # The file tree is mounted on first use (f): its loader worker runs for as
        # long as the tree exists.
        yield Vertical(id="tree-slot")
        yield ProgressBar(total=None, show_eta=False, id="data-progress")
        yield Static("", id="data-status")
        with TabbedContent(id="data-tabs"):
            with TabPane("Format", id="tab-format"):
                with VerticalScroll():
                    yield Static("", id="format-text")
                    with Horizontal(classes="opt-row"):
                        yield Label("Format")
                        yield Select(
                            [("auto-detect", "auto")]
                            + [(data_core.FORMAT_TITLES.get(f, f), f) for f in data_core.FORMATS],
                            value=cfg.format,
                            allow_blank=False,
                            id="format-select",
                            compact=True,
                        )
                    with Horizontal(classes="opt-row"):
                        yield Label("Column map")
                        yield Input(
                            ", ".join(f"{k}={v}" for k, v in cfg.column_map.items()),
                            placeholder="only if columns differ, e.g. question=instruction",
                            id="column-map",
                            compact=True,
                        )
                    with Horizontal(classes="opt-row"):
                        yield Label("System prompt")
                        yield Input(cfg.system_prompt, placeholder="(none)", id="system-prompt", compact=True)
                    with Horizontal(classes="opt-row"):
                        yield Label("Validation share")
                        yield Input(f"{cfg.val_fraction:g}", id="val-fraction", type="number", compact=True)
            with TabPane("Lint", id="tab-lint"):
                yield Static("Checked categories are dropped/fixed (space toggles):", classes="hint")
                yield SelectionList[str](id="lint-list")
                yield Static("", id="lint-help")
            with TabPane("Stats", id="tab-stats"):
                yield Static("", id="stats-text")
                yield MetricChart(title="tokens per row", xlabel="tokens", id="hist-chart")
            with TabPane("Preview", id="tab-preview"):
                with VerticalScroll():
                    yield Static("", id="preview-head")
                    yield Static("", id="preview-text")

    def _user_path(self) -> str:
        """The run's data path when it is the user's own (not a bundled set)."""
        path = self.app.config.data.path
        bundled = {str(data_core.bundled_dataset_path(obj)) for _l, obj in BUNDLED.values()}
        return "" if path in ("default", "") or path in bundled else path

    def _initial_source_key(self) -> str:
        cfg = self.app.config
        if cfg.data.path == "default":
            return {"dpo": "bundled:dpo", "simpo": "bundled:dpo", "orpo": "bundled:dpo",
                    "reward": "bundled:dpo", "kto": "bundled:kto"}.get(cfg.method.objective, "bundled:sft")
        for key, (_label, obj) in BUNDLED.items():
            if cfg.data.path == str(data_core.bundled_dataset_path(obj)):
                return key
        return RECENT_PREFIX + cfg.data.path if cfg.data.path else FILE_KEY

    def on_mount(self) -> None:
        super().on_mount()
        self.reload()

    # -- choosing the source ------------------------------------------------
    def current_path(self) -> tuple[str, str]:
        """(path for DataConfig, objective the source suggests)."""
        key = self.query_one("#source-select", Select).value
        if isinstance(key, str) and key in BUNDLED:
            obj = BUNDLED[key][1]
            return str(data_core.bundled_dataset_path(obj)), obj
        if isinstance(key, str) and key.startswith(RECENT_PREFIX):
            return key[len(RECENT_PREFIX):], ""
        # relative to the folder spark-tui was started from; ~ expanded; Hub ids kept
        return recent_core.resolve_typed(self.query_one("#path-input", Input).value), ""

    @on(Select.Changed, "#source-select")
    def source_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value.startswith(RECENT_PREFIX):
            self.query_one("#path-input", Input).value = event.value[len(RECENT_PREFIX):]
        if event.value == FILE_KEY:
            self.query_one("#path-input", Input).focus()
            if self.query_one("#path-input", Input).value.strip():
                self.reload()
            return
        self.reload()

    @on(Input.Submitted, "#path-input")
    def path_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#source-select", Select).value = FILE_KEY
        self.reload()

    def action_toggle_tree(self) -> None:
        trees = self.query("#file-tree")
        if not trees:
            tree = DataFileTree(id="file-tree")  # the folder spark-tui was started from
            self.query_one("#tree-slot").mount(tree)
        else:
            tree = trees.first(DataFileTree)
        tree.toggle_class("visible")
        if tree.has_class("visible"):
            tree.focus()

    @on(DirectoryTree.FileSelected, "#file-tree")
    def file_picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#path-input", Input).value = str(event.path)
        self.query_one("#file-tree").remove_class("visible")
        self.query_one("#source-select", Select).value = FILE_KEY
        self.reload()

    # -- options that re-prepare ---------------------------------------------
    @on(Select.Changed, "#format-select")
    def format_changed(self, _event: Select.Changed) -> None:
        if self.source is not None:
            self.reload(keep_source=True)

    @on(Input.Submitted, "#column-map")
    @on(Input.Submitted, "#system-prompt")
    @on(Input.Submitted, "#val-fraction")
    def option_submitted(self, _event: Input.Submitted) -> None:
        self.reload(keep_source=True)

    @on(SelectionList.SelectedChanged, "#lint-list")
    def lint_changed(self, _event: SelectionList.SelectedChanged) -> None:
        # Filling the list also fires this: only a real change of choice re-prepares.
        if self._loading or self.prepared is None:
            return
        applied = {f"{f['category']}:{f['action']}" for f in self.prepared.report["lint"]}
        offered = {str(o.value) for o in self._lint_options()}
        if set(self._drop()) != (applied & offered):
            self.reload(keep_source=True)

    def _lint_options(self):
        sl = self.query_one("#lint-list", SelectionList)
        return [sl.get_option_at_index(i) for i in range(sl.option_count)]

    @on(SelectionList.SelectionHighlighted, "#lint-list")
    def lint_highlighted(self, event: SelectionList.SelectionHighlighted) -> None:
        value = str(event.selection.value)
        cid = value.partition(":")[0]
        finding = next((f for f in self.prepared.report["lint"] if f["category"] == cid), None) if self.prepared else None
        if finding:
            where = ", ".join(finding.get("where") or [str(i) for i in finding["examples"]])
            self.query_one("#lint-help", Static).update(f"{finding['help']} Examples: {where}")

    def _column_map(self) -> dict[str, str]:
        text = self.query_one("#column-map", Input).value.strip()
        out: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            src, sep, dst = part.partition("=")
            if not sep or not src.strip() or not dst.strip():
                raise SparkError(f"column map entry {part!r}: write it as source_column=field")
            out[src.strip()] = dst.strip()
        return out

    def _drop(self) -> list[str]:
        if self.prepared is None:
            return list(self.app.config.data.drop or data_core.RECOMMENDED_DROP)
        return [str(v) for v in self.query_one("#lint-list", SelectionList).selected]

    def build_data_config(self):
        """The DataConfig the widgets describe (raises SparkError on a bad value)."""
        cfg = self.app.config
        path, suggested = self.current_path()
        if not path:
            raise SparkError("pick a bundled set, type a path, or press f to browse files")
        try:
            val = float(self.query_one("#val-fraction", Input).value or "0.1")
        except ValueError as exc:
            raise SparkError("validation share must be a number like 0.1") from exc
        fmt = self.query_one("#format-select", Select).value
        new = cfg
        for key, value in (
            ("data.path", path),
            ("data.format", fmt),
            ("data.column_map", self._column_map()),
            ("data.system_prompt", self.query_one("#system-prompt", Input).value),
            ("data.val_fraction", val),
            ("data.drop", self._drop()),
        ):
            new = new.with_value(key, value)
        return new, suggested

    # -- preparing ------------------------------------------------------------
    def reload(self, keep_source: bool = False) -> None:
        try:
            cfg, suggested = self.build_data_config()
        except SparkError as exc:
            self._show_error(str(exc))
            return
        if not keep_source or cfg.data.path != self.source_key:
            self.source = None
        self._set_status("Loading…", error=False)
        self.prepare(cfg, suggested)

    @work(thread=True, exclusive=True, group="dataset-prepare", exit_on_error=False)
    def prepare(self, cfg, suggested: str) -> None:
        # A cancelled thread worker keeps running: one preparation at a time (two
        # threads importing transformers at once can half-initialise it), and a
        # superseded one never draws.
        with _PREPARE_LOCK:
            if get_current_worker().is_cancelled:
                return
            self._prepare(cfg, suggested)

    def _prepare(self, cfg, suggested: str) -> None:
        last = [0.0]

        def progress(stage: str, done: float, total: float | None) -> None:
            # Throttled: call_from_thread waits for the UI, so a per-batch update would
            # make preparation as slow as the screen's refresh rate.
            now = time.monotonic()
            if now - last[0] >= 0.25 or (total is not None and done >= total):
                last[0] = now
                self.app.call_from_thread(self._progress, stage, done, total)

        try:
            if self.tokenizer is None:
                self.app.call_from_thread(self._progress, "loading the model's tokenizer", 0, None)
                self.tokenizer = load_tokenizer(
                    cfg.model.id, trust_remote_code=cfg.model.trust_remote_code,
                    progress=lambda f, m: progress(f"bundled model: {m}", f, 1.0))
            source = self.source
            if source is None:
                source = data_core.load_source(
                    cfg.data.path, subset=cfg.data.subset, split=cfg.data.split,
                    objective=suggested or cfg.method.objective, progress=progress,
                )
            det = data_core.detect_format(source.rows, column_map=cfg.data.column_map, override=cfg.data.format)
            objective = cfg.method.objective
            fit = data_core.method_fit(det.format)
            if not fit[objective]["ok"]:
                objective = suggested if suggested and fit.get(suggested, {}).get("ok") else \
                    data_core.fit.default_objective(det.format)
            prepared = data_core.prepare_dataset(cfg, self.tokenizer, source=source, progress=progress,
                                                 objective=objective)
        except SparkError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        except Exception as exc:  # a library error on odd input: never a traceback on screen
            self.app.call_from_thread(self._show_error, f"{type(exc).__name__}: {exc}")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_prepared, cfg, source, prepared, objective)

    def _progress(self, stage: str, done: float, total: float | None) -> None:
        bar = self.query_one("#data-progress", ProgressBar)
        bar.update(total=total or None, progress=done)
        self._set_status(self._stage.update(stage, done, total), error=False)

    def _set_status(self, text: str, error: bool) -> None:
        st = self.query_one("#data-status", Static)
        st.set_class(error, "error")
        st.update(text)

    def _show_error(self, message: str) -> None:
        self.error = message
        self.prepared = None
        self._set_status(message, error=True)
        self.refresh_nav()

    def _show_prepared(self, cfg, source, prepared, objective: str) -> None:
        self.error = ""
        self.source, self.source_key, self.prepared = source, cfg.data.path, prepared
        if self.query_one("#source-select", Select).value not in BUNDLED:
            recent_core.remember(cfg.data.path)  # offered again next time
        cfg.method.objective = objective
        self.app.config = cfg
        rep = prepared.report
        split = rep["split"]
        self._set_status(
            f"{Path(source.path).name}: {prepared.detection.title} · {split['train']} train / "
            f"{split['validation']} validation rows · objective {objective}",
            error=False,
        )
        self.query_one("#data-progress", ProgressBar).update(total=1, progress=1)
        fmt = rep["format"]
        fit = rep["method_fit"]
        lines = [f"[b]{fmt['title']}[/b]" + (" (chosen by you)" if fmt["overridden"] else " (detected)")]
        lines += [f"• {e}" for e in fmt["evidence"][:4]]
        if fmt["column_map"]:
            lines.append("Columns mapped: " + ", ".join(f"{k}→{v}" for k, v in fmt["column_map"].items()))
        ok = [o for o, v in fit.items() if v["ok"]]
        lines.append(f"[b]Can train[/b] {', '.join(ok)} — {fit[objective]['why']}")
        if rep.get("chat_template"):
            ct = rep["chat_template"]
            name = "the model's own" if ct.get("name") == "model" else str(ct.get("name", "")).upper()
            note = f" — {ct['note']}" if ct.get("note") and ct.get("name") != "model" else ""
            lines.append(f"Chat template: {name}{note}")
        for note in source.notes[:2]:
            lines.append(f"[dim]{note}[/dim]")
        self.query_one("#format-text", Static).update("\n".join(lines))
        self._fill_lint(rep)
        self._fill_stats(prepared)
        self.preview_index = 0
        self._show_preview()
        self.refresh_nav()

    def _fill_lint(self, rep: dict[str, Any]) -> None:
        self._loading = True
        sl = self.query_one("#lint-list", SelectionList)
        sl.clear_options()
        for f in rep["lint"]:
            if f["forced"]:
                label = f"{f['title']}: {f['count']} (always dropped)"
                sl.add_option(Selection(label, f"{f['category']}:drop", True, disabled=True))
                continue
            for action in f["actions"][1:]:
                label = f"{f['title']}: {f['count']} → {action}"
                sl.add_option(Selection(label, f"{f['category']}:{action}", f["action"] == action))
        self.call_after_refresh(self._done_loading)

    def _done_loading(self) -> None:
        self._loading = False

    def _fill_stats(self, prepared) -> None:
        st = prepared.report["stats"]
        lines = []
        for key, value in st.items():
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                lines.append(f"{key.replace('_', ' ')}: {value}")
        self.query_one("#stats-text", Static).update("  ·  ".join(lines[:8]))
        lengths = prepared.lengths.get("train", []) + prepared.lengths.get("validation", [])
        xs, ys = histogram_series(lengths)
        self.query_one("#hist-chart", MetricChart).set_series([("rows", xs, ys)])

    def _show_preview(self) -> None:
        if self.prepared is None or len(self.prepared.train) == 0:
            return
        n = len(self.prepared.train)
        self.preview_index %= n
        row = self.prepared.train[self.preview_index]
        try:
            previews = data_core.preview_example(row, self.tokenizer, self.prepared.template)
        except SparkError as exc:
            self.query_one("#preview-text", Static).update(str(exc))
            return
        self.query_one("#preview-head", Static).update(
            f"Row {self.preview_index + 1} of {n} ([ and ] step) · "
            "[dim]dim = prompt (not trained)[/dim] · [reverse]highlighted = trained[/reverse]"
        )
        self.query_one("#preview-text", Static).update(render_preview(previews))

    def action_next_row(self) -> None:
        self.preview_index += 1
        self._show_preview()

    def action_prev_row(self) -> None:
        self.preview_index -= 1
        self._show_preview()

    # -- step contract --------------------------------------------------------
    def validate_step(self) -> tuple[bool, str]:
        if self.error:
            return False, self.error.split("\n")[0][:70]
        if self.prepared is None:
            return False, "Loading the data…"
        return True, ""

    def commit(self) -> None:
        cfg = self.app.config
        if cfg.data.path == str(data_core.bundled_dataset_path(cfg.method.objective)):
            # The bundled set for this objective: keep run.toml portable across machines.
            cfg.data.path = "default"
        rep = self.prepared.report
        self.app.data_report = {"format": rep["format"]["name"], "report": rep}

