"""Model step: the bundled default, the catalogue, the HF cache, or a typed folder / Hub id."""

from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, OptionList, Static, Switch
from textual.widgets.option_list import Option

from spark_tui.core.base.progress import StageProgress
from spark_tui.core.model import catalog
from spark_tui.core.model import sources as model_sources
from spark_tui.core.model.folder import remote_code_warning
from spark_tui.core.model.hf_cache import CachedModel, list_cached_models
from spark_tui.screens.base import StepScreen


def _entry_label(e: catalog.CatalogEntry) -> str:
    lock = " (gated)" if e.gated else ""
    if e.id == "default":
        return f"★ Default: {e.name.replace(' (bundled)', '').replace(' Instruct', '')}, offline"
    return f"{e.name} {lock}"


def render_card(info: model_sources.ModelInfo) -> str:
    """The model card as Rich markup (kept here: presentation only)."""
    a = info.arch
    source = "" if f"({info.source})" in info.name else f"  [dim]({info.source})[/dim]"
    lines = [f"[b]{info.name}[/b]{source}"]
    if info.hub_id and info.hub_id != info.name:
        lines.append(f"Hub: {info.hub_id}")
    lines.append(f"Size: {info.size_label()} parameters")
    if a is not None:
        lines.append(
            f"Architecture: {a.model_type}, {a.num_layers} layers, hidden {a.hidden_size}, "
            f"{a.num_heads} heads / {a.num_kv_heads} KV"
        )
        lines.append(f"Context: {a.max_context:,} tokens · vocab {a.vocab_size:,}")
    if info.license:
        lines.append(f"Licence: {info.license}" + ("  [b]gated[/b]" if info.gated else ""))
    tmpl = info.chat_template or "none found (ChatML or Llama 3 will be offered)"
    lines.append(f"Chat template: {tmpl}")
    if info.present_locally:
        lines.append("Local: [green]present[/green]")
    elif info.hub_id and info.source != "local":  # the Train step would download it too
        lines.append("Local: not downloaded · Ctrl+D downloads it now")
    else:
        lines.append("Local: not complete")
    for m in info.messages:
        lines.append(f"[dim]• {m}[/dim]")
    for w in info.warnings:
        lines.append(f"[yellow]⚠ {w}[/yellow]")
    return "\n".join(lines)


class ModelScreen(StepScreen):
    STEP = "model"
    BINDINGS = [Binding("ctrl+d", "download", "Download")]

    DEFAULT_CSS = """
    ModelScreen #model-search { margin-bottom: 0; }
    ModelScreen #model-columns { height: 1fr; }
    ModelScreen #model-list { width: 45%; height: 1fr; }
    ModelScreen #model-card-scroll { width: 1fr; height: 1fr; padding: 0 1; border-left: solid $panel; }
    ModelScreen #model-download { height: auto; color: $text-muted; display: none; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.info: model_sources.ModelInfo | None = None
        self.error = ""
        self.selected_id = ""

    def compose_body(self) -> ComposeResult:
        yield Input(
            placeholder="Filter the list, or type a folder path / Hub id (org/name) and Enter",
            id="model-search",
            compact=True,
        )
        with Horizontal(id="model-columns"):
            yield OptionList(id="model-list")
            with VerticalScroll(id="model-card-scroll"):
                yield Static("Pick a model.", id="model-card")
        yield Static("", id="model-download")  # under the list and card: always in view
        with Horizontal(id="trust-row", classes="field-row"):
            yield Switch(value=False, id="trust-remote-code", animate=False)
            yield Label("trust_remote_code: runs the model's own code (trusted models only)")

    def on_mount(self) -> None:
        cfg = self.app.config.model
        self.query_one("#trust-remote-code", Switch).value = cfg.trust_remote_code
        self.fill_list("")
        self.list_cached()
        self.select_id(cfg.id or "default")
        super().on_mount()
        self.query_one("#model-list", OptionList).focus()

    # -- list ---------------------------------------------------------------
    def fill_list(self, text: str, cached: list[CachedModel] | None = None) -> None:
        ol = self.query_one("#model-list", OptionList)
        ol.clear_options()
        entries = catalog.search(text) if text.strip() else list(catalog.all_entries())
        for e in entries:
            ol.add_option(Option(_entry_label(e), id=e.id))
        known = {e.hub_id.lower() for e in catalog.all_entries()}
        for c in cached or getattr(self, "_cached", []):
            if c.repo_id.lower() in known:
                continue
            if text.strip() and text.lower() not in c.repo_id.lower():
                continue
            ol.add_option(Option(f"{c.repo_id} · in HF cache", id=c.repo_id))

    @work(thread=True, exclusive=True, group="model-cache", exit_on_error=False)
    def list_cached(self) -> None:
        cached = list_cached_models()
        self._cached = cached
        if cached:
            text = self.query_one("#model-search", Input).value
            self.app.call_from_thread(self.fill_list, text, cached)

    def select_id(self, model_id: str) -> None:
        ol = self.query_one("#model-list", OptionList)
        for i in range(ol.option_count):
            if ol.get_option_at_index(i).id == model_id:
                ol.highlighted = i
                return
        # A folder or Hub id typed earlier: show its card without a list entry.
        self.load_info(model_id)

    @on(Input.Changed, "#model-search")
    def filter_list(self, event: Input.Changed) -> None:
        self.fill_list(event.value)

    @on(Input.Submitted, "#model-search")
    def typed_model(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        matches = catalog.search(text)
        if len(matches) == 1:
            self.select_id(matches[0].id)
        else:
            self.load_info(text)

    @on(OptionList.OptionHighlighted, "#model-list")
    def highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.load_info(event.option.id)

    @on(OptionList.OptionSelected, "#model-list")
    def chosen(self, event: OptionList.OptionSelected) -> None:
        """Enter on a model: choose it and go on once its card is known."""
        if not event.option.id:
            return
        self._advance_when_ready = True
        if self.info is not None and self.selected_id == event.option.id:
            self._set_card(self.info, "", event.option.id)
        else:
            self.load_info(event.option.id)

    # -- card ---------------------------------------------------------------
    @work(thread=True, exclusive=True, group="model-info", exit_on_error=False)
    def load_info(self, model_id: str) -> None:
        self.app.call_from_thread(self._set_card, None, f"Looking up {model_id}…", model_id)
        try:
            info = model_sources.resolve(model_id)
        except Exception as exc:  # SparkError, or anything from the Hub client
            self.app.call_from_thread(self._set_card, None, str(exc), model_id)
            return
        self.app.call_from_thread(self._set_card, info, "", model_id)

    def _set_card(self, info: model_sources.ModelInfo | None, message: str, model_id: str) -> None:
        self.info = info
        self.selected_id = model_id
        self.error = message if info is None else ""
        card = self.query_one("#model-card", Static)
        if info is None:
            card.update(f"[yellow]{message}[/yellow]" if message else "")
        else:
            card.update(render_card(info))
        self.refresh_nav()
        if getattr(self, "_advance_when_ready", False) and info is not None:
            self._advance_when_ready = False
            self.action_next()

    # -- download -----------------------------------------------------------
    def action_download(self) -> None:
        info = self.info
        if info is None or not info.hub_id or info.present_locally:
            what = "it is already here" if info is not None and info.present_locally else (
                "only Hub models are downloaded")  # fmt: skip
            self.notify(f"Nothing to download: {what}.", title="Download")
            return
        self.download(info.hub_id, self.app.config.model.revision or None)

    @work(thread=True, exclusive=True, group="model-download", exit_on_error=False)
    def download(self, repo_id: str, revision: str | None) -> None:
        """The same download the Train step does (core/model/download), shown on the card.

        A thread cannot be cancelled: quitting ends it, and huggingface_hub resumes the
        partial files next time.
        """
        from spark_tui.core.model.download import download_model, plan_download

        line = StageProgress()
        say = lambda text: self.app.call_from_thread(self._download_line, text)  # noqa: E731
        say(f"{repo_id}: asking the Hub for its files…")
        try:
            trust = bool(self.app.config.model.trust_remote_code)
            plan = plan_download(repo_id, revision=revision, trust_remote_code=trust)
            download_model(plan, progress=lambda st, d, t: say(line.update(st, d, t)))
        except Exception as exc:  # ModelSourceError says what to do; anything else, plainly
            say(f"[red]{escape(str(exc))}[/red]")
            return
        say(f"[green]{repo_id} downloaded[/green] ({line.line()})")
        self.app.call_from_thread(self.load_info, repo_id)

    def _download_line(self, text: str) -> None:
        line = self.query_one("#model-download", Static)
        line.update(text)
        line.display = True

    # -- step contract ------------------------------------------------------
    def validate_step(self) -> tuple[bool, str]:
        if self.info is None:
            return False, self.error or "Pick a model first."
        if self.info.folder is not None and self.info.source == "local" and not self.info.folder.ok:
            return False, self.info.folder.problems[0]
        if self.info.needs_remote_code and not self.query_one("#trust-remote-code", Switch).value:
            return False, "This model needs trust_remote_code: turn it on only if you trust it."
        return True, ""

    @on(Switch.Changed, "#trust-remote-code")
    def trust_changed(self, event: Switch.Changed) -> None:
        if event.value:
            self.notify(
                remote_code_warning(self.selected_id or "this model"),
                severity="warning",
                title="trust_remote_code",
            )
        self.refresh_nav()

    def commit(self) -> None:
        assert self.info is not None
        cfg = self.app.config
        cfg.model.id = self.info.id
        cfg.model.trust_remote_code = self.query_one("#trust-remote-code", Switch).value
