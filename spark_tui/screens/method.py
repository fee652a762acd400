"""Method step: objective, adaptation and training settings, with presets and a live estimate."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Select, Static, TabbedContent, TabPane

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory.breakdown import fmt_gb
from spark_tui.core.memory.estimator import estimate_config
from spark_tui.core.method import choices, presets
from spark_tui.screens.base import StepScreen
from spark_tui.widgets.config_form import ConfigForm, Field, no_choice

PRESET_LABELS = {"quick": "Quick test (minutes)", "course": "Course defaults ★", "max_quality": "Max quality"}


def _choices(d: dict[str, str]) -> dict[str, str]:
    return {k: k for k in d}


def method_fields(objectives: dict[str, str]) -> list[Field]:
    return [
        Field("method.objective", "Objective", {k: choices.OBJECTIVES[k]["title"].split(" (")[0] for k in objectives}),
        Field("method.adapter", "Adaptation", _choices(choices.ADAPTERS), recommended="lora"),
        Field("method.use_dora", "DoRA"),
        Field("method.use_rslora", "rsLoRA"),
        Field("train.max_steps", "Max steps (-1: epochs)"),
        Field("train.epochs", "Epochs"),
        Field("data.max_length", "Max length (tokens)"),
    ]


LORA_FIELDS = [
    Field("lora.r", "Rank r", recommended=16),
    Field("lora.alpha", "Alpha", recommended=32),
    Field("lora.dropout", "Dropout", recommended=0.05),
    Field("lora.target_modules", "Target modules"),
    Field("lora.num_virtual_tokens", "Virtual tokens"),
]

TRAIN_FIELDS = [
    Field("train.learning_rate", "Learning rate"),
    Field("train.scheduler", "Schedule", _choices(choices.SCHEDULERS), recommended="cosine"),
    Field("train.warmup_ratio", "Warmup ratio", recommended=0.03),
    Field("train.micro_batch_size", "Micro-batch"),
    Field("train.grad_accum", "Grad accumulation"),
    Field("train.optimizer", "Optimizer", _choices(choices.OPTIMIZERS)),
    Field("train.precision", "Precision", _choices(choices.PRECISIONS), recommended="auto"),
    Field(
        "train.gradient_checkpointing",
        "Grad checkpointing",
        _choices(choices.CHECKPOINTING),
        recommended="auto",
    ),
    Field("train.packing", "Packing"),
    Field("train.neftune_alpha", "NEFTune alpha (0=off)"),
    Field("train.seed", "Seed"),
    Field("train.logging_steps", "Log every N (0=auto)"),
    Field("train.eval_steps", "Eval every N (0=end)"),
    Field("train.save_steps", "Checkpoint every N"),
    Field("train.report_to", "Also report to", _choices(choices.REPORT_TO), recommended="none"),
]

PREFERENCE_FIELDS = [
    Field("preference.beta", "DPO/KTO beta"),
    Field("preference.simpo_beta", "SimPO beta"),
    Field("preference.simpo_gamma_beta_ratio", "SimPO gamma/beta"),
    Field("preference.orpo_lambda", "ORPO lambda"),
    Field("preference.kto_desirable_weight", "KTO desirable weight"),
    Field("preference.kto_undesirable_weight", "KTO undesirable weight"),
    Field(
        "preference.reference",
        "Reference model",
        {"auto": "auto", "adapter_disabled": "base, adapters off", "copy": "a second copy", "precompute": "precomputed"},
    ),
]


DISTRIBUTED_FIELDS = [
    Field(
        "distributed.strategy",
        "Strategy",
        {"none": "one process", "ddp": "DDP (copies)", "fsdp": "FSDP (sharded)"},
        recommended="none",
    ),
    Field("distributed.processes_per_machine", "Processes per machine"),
    Field("distributed.machines", "Machines"),
    Field("distributed.machine_rank", "This machine's rank"),
    Field("distributed.main_address", "Main address"),
    Field("distributed.main_port", "Main port"),
]


def distributed_note(cfg: RunConfig, est) -> str:
    """The per-process peak of a distributed run ("" for one process)."""
    from spark_tui.core.memory.distributed import per_process
    from spark_tui.core.train.launch import is_distributed

    if not is_distributed(cfg):
        return ""
    d = cfg.distributed
    try:
        pp = per_process(est, d.strategy, d.processes_per_machine * d.machines, d.machines)
    except ValueError as exc:
        return f" · {exc}"
    return f" · {d.strategy.upper()}: {fmt_gb(pp.estimate.total)} per process"


def recommended_preset(probe) -> str:
    """Quick test on a machine without a GPU (minutes, not hours); course defaults elsewhere."""
    has_gpu = bool(probe is not None and getattr(probe, "gpus", None))
    return "course" if has_gpu else "quick"


class MethodScreen(StepScreen):
    STEP = "method"
    FOCUS_NEXT_WHEN_READY = True

    DEFAULT_CSS = """
    MethodScreen #preset-row { height: 1; }
    MethodScreen #preset-row Label { width: 24; }
    MethodScreen #preset { width: 30; }
    MethodScreen TabbedContent { height: 1fr; }
    MethodScreen TabPane { padding: 0; }
    MethodScreen #field-help { height: 2; color: $text-muted; }
    MethodScreen #estimate { height: auto; max-height: 2; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.objectives: dict[str, str] = {}
        self.enabled: list[str] = ["sft"]
        self.est_text = ""

    def compose_body(self) -> ComposeResult:
        # The Dataset step leaves its report on the app: only objectives the data supports.
        support = choices.supported_objectives(getattr(self.app, "data_report", None))
        self.objectives = dict(support)
        self.enabled = [k for k, why in support.items() if not why] or ["sft"]
        cfg: RunConfig = self.app.config
        if cfg.method.objective not in self.enabled:
            cfg.method.objective = self.enabled[0]  # type: ignore[assignment]
        with Horizontal(id="preset-row"):
            yield Label("Preset")
            yield Select(
                [(label, key) for key, label in PRESET_LABELS.items()],
                prompt="custom",
                id="preset",
                compact=True,
            )
        with TabbedContent(id="method-tabs"):
            with TabPane("Method", id="tab-method"):
                yield ConfigForm(method_fields({k: "" for k in self.enabled}), cfg, id="form-method")
            with TabPane("LoRA", id="tab-lora"):
                yield ConfigForm(LORA_FIELDS, cfg, id="form-lora")
            with TabPane("Training", id="tab-train"):
                yield ConfigForm(TRAIN_FIELDS, cfg, id="form-train")
            with TabPane("Preference", id="tab-pref"):
                yield ConfigForm(PREFERENCE_FIELDS, cfg, id="form-pref")
            with TabPane("Distributed", id="tab-dist"):
                yield ConfigForm(DISTRIBUTED_FIELDS, cfg, id="form-dist")
        yield Static(self._objective_note(), id="field-help")
        yield Static("", id="estimate")

    def _objective_note(self) -> str:
        cfg = self.app.config
        info = choices.OBJECTIVES[cfg.method.objective]
        off = [f"{k}: {why}" for k, why in self.objectives.items() if why]
        note = f"{info['what']} {info['when']}"
        if off:
            note += f"  [dim](not available: {off[0]}{' …' if len(off) > 1 else ''})[/dim]"
        return note

    def on_mount(self) -> None:
        if not getattr(self.app, "method_preset_applied", False):
            # First visit: start from the preset that suits this machine.
            self.app.method_preset_applied = True
            self.query_one("#preset", Select).value = recommended_preset(getattr(self.app, "probe", None))
        super().on_mount()
        self._sync_tabs()
        self.update_estimate()

    def _forms(self) -> list[ConfigForm]:
        return list(self.query(ConfigForm))

    @on(ConfigForm.Changed)
    def config_changed(self, event: ConfigForm.Changed) -> None:
        self.app.config = event.config
        for form in self._forms():
            if form is not event.form:
                form.config = event.config
        if event.key in ("method.objective", "method.adapter"):
            self._sync_tabs()
            self.query_one("#field-help", Static).update(self._objective_note())
        self.query_one("#preset", Select).clear()
        self.update_estimate()
        self.refresh_nav()

    @on(ConfigForm.Focused)
    def field_focused(self, event: ConfigForm.Focused) -> None:
        text = choices.help_for(event.key)
        if event.key == "method.objective":
            text = self._objective_note()
        self.query_one("#field-help", Static).update(text)

    @on(Select.Changed, "#preset")
    def preset_chosen(self, event: Select.Changed) -> None:
        if no_choice(event.value):  # cleared when a field is edited: now "custom"
            return
        try:
            new = presets.apply_preset(self.app.config, str(event.value))
        except SparkError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.config = new
        for form in self._forms():
            form.load(new)
        self.query_one("#field-help", Static).update(presets.PRESETS[str(event.value)])
        self._sync_tabs()
        self.update_estimate()
        self.refresh_nav()

    def _sync_tabs(self) -> None:
        cfg = self.app.config
        tabs = self.query_one("#method-tabs", TabbedContent)
        show_pref = cfg.method.objective != "sft"
        show_lora = cfg.method.adapter != "full"
        tabs.get_tab("tab-pref").display = show_pref
        tabs.get_tab("tab-lora").display = show_lora

    @work(thread=True, exclusive=True, group="method-estimate", exit_on_error=False)
    def update_estimate(self) -> None:
        try:
            est = estimate_config(self.app.config, hardware=getattr(self.app, "probe", None))
            gc = "on" if est.settings.gradient_checkpointing else "off"
            if self.app.config.train.gradient_checkpointing == "auto":
                gc += " (auto)"
            n = est.params_trainable
            trainable = f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n:,}"
            text = f"Memory estimate: {fmt_gb(est.total)} ({est.settings.method}) · " \
                   f"{trainable} trainable · checkpointing {gc}" \
                   + distributed_note(self.app.config, est)
        except SparkError as exc:
            text = f"Memory estimate unavailable: {exc}"
        self.est_text = text
        self.app.call_from_thread(self.query_one("#estimate", Static).update, text)

    def validate_step(self) -> tuple[bool, str]:
        for form in self._forms():
            errs = form.errors()
            if errs:
                key, msg = next(iter(errs.items()))
                return False, f"{key}: {msg}"
        try:
            choices.check_combination(self.app.config)
            self._check_launch()
        except SparkError as exc:
            return False, str(exc)
        return True, ""

    def _check_launch(self) -> None:
        """A distributed run this machine could not start is refused here, not at Start."""
        from spark_tui.core.train import launch

        cfg, probe = self.app.config, getattr(self.app, "probe", None)
        if launch.is_distributed(cfg) and probe is not None:
            launch.plan_for(cfg, cpu=not probe.gpus)
