"""The typed run config: one object every wizard step fills in and every run folder keeps.

`run.toml` is the single source of truth for a run.  The TUI, the CLI and the
detached training process all read and write it through this module, so a run
built in the wizard can be rerun headless with `spark-tui train run.toml`.

Validation is strict on purpose: an unknown key or a bad value raises
`ConfigError` naming the key and what is allowed, instead of being ignored and
silently training something else.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

import tomli_w

from spark_tui.core.base.errors import SparkError

Objective = Literal["sft", "dpo", "simpo", "orpo", "kto", "reward"]
Adapter = Literal["full", "lora", "qlora", "prompt_tuning", "prefix_tuning", "adalora", "ia3"]
Precision = Literal["auto", "bf16", "fp16", "fp32"]
Optimizer = Literal["adamw", "adamw_8bit", "paged_adamw_8bit"]
Scheduler = Literal["linear", "cosine", "constant", "constant_with_warmup"]
ReportTo = Literal["none", "tensorboard", "wandb", "mlflow"]
ChatTemplate = Literal["auto", "chatml", "llama3"]
RefHandling = Literal["auto", "adapter_disabled", "copy", "precompute"]
# "auto": on only when the run would not fit without it (core/memory/estimator).
Checkpointing = Literal["auto", "on", "off"]
# Several processes through accelerate launch: "none" = the one detached process.
Strategy = Literal["none", "ddp", "fsdp"]
DataFormat = Literal[
    "auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text",
    "preference", "kto",
]

# The choices as tuples, for argparse and validation everywhere (one home: the types above).
OBJECTIVES: tuple[str, ...] = get_args(Objective)
ADAPTERS: tuple[str, ...] = get_args(Adapter)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
# Objectives trained on chosen/rejected pairs, and those that compare with a reference model.
PAIRED_OBJECTIVES = frozenset({"dpo", "simpo", "orpo", "reward"})
REFERENCE_OBJECTIVES = frozenset({"dpo", "kto"})
# A method name as the CLI and the wizard say it -> (method.adapter, use_dora, use_rslora).
METHODS: dict[str, tuple[str, bool, bool]] = {
    "full": ("full", False, False),
    "lora": ("lora", False, False),
    "qlora": ("qlora", False, False),
    "dora": ("lora", True, False),
    "rslora": ("lora", False, True),
}

# Keys that must never be written into a run folder (see `to_toml`).
SECRET_KEYS = frozenset({"token", "hf_token", "api_key", "password"})


class ConfigError(SparkError, ValueError):
    """A bad key or value in a run config; the message names it and what is allowed."""


@dataclass
class ModelConfig:
    """Which model to start from."""

    id: str = "default"  # "default", a catalogue/Hub id, or a local folder
    revision: str = ""
    trust_remote_code: bool = False
    chat_template: ChatTemplate = "auto"  # "auto" = the tokenizer's own template


@dataclass
class DataConfig:
    """Where the examples come from and how they are prepared."""

    path: str = "default"  # "default", a file, a folder, or a Hub dataset id
    subset: str = ""
    split: str = "train"
    format: DataFormat = "auto"
    column_map: dict[str, str] = field(default_factory=dict)
    system_prompt: str = ""
    validation_path: str = ""
    val_fraction: float = 0.1
    max_length: int = 512
    seed: int = 42
    drop: list[str] = field(default_factory=list)  # lint categories to drop


@dataclass
class MethodConfig:
    """What is trained and how (objective x adaptation)."""

    objective: Objective = "sft"
    adapter: Adapter = "lora"
    use_dora: bool = False
    use_rslora: bool = False


@dataclass
class LoraConfig:
    """Low-rank adapter settings (also used by QLoRA, DoRA and rsLoRA)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"  # "attention", "all-linear" or a comma list
    num_virtual_tokens: int = 20  # prompt/prefix tuning only


@dataclass
class TrainConfig:
    """Optimisation settings passed to the TRL trainer."""

    max_steps: int = -1  # -1 = use epochs
    epochs: float = 3.0
    learning_rate: float = 2e-4
    scheduler: Scheduler = "cosine"
    warmup_ratio: float = 0.03
    micro_batch_size: int = 4
    grad_accum: int = 1
    optimizer: Optimizer = "adamw"
    precision: Precision = "auto"
    gradient_checkpointing: Checkpointing = "auto"
    packing: bool = False
    group_by_length: bool = True  # SFT: rows of similar length share a batch (less padding)
    neftune_alpha: float = 0.0
    seed: int = 42
    logging_steps: int = 0  # 0 = auto: every step on a CPU, up to every 10 on a GPU
    liger_kernel: bool = True  # Liger's fused kernels for SFT on a CUDA GPU, when installed
    eval_steps: int = 0  # 0 = evaluate at the end only
    save_steps: int = 50
    save_total_limit: int = 2
    keep_checkpoints: bool = False  # a finished run keeps its checkpoints (optimizer state)
    report_to: ReportTo = "none"


@dataclass
class PreferenceConfig:
    """Settings of the preference objectives (DPO, SimPO, ORPO, KTO)."""

    beta: float = 0.1  # DPO and KTO (TRL's DPOConfig/KTOConfig default)
    simpo_beta: float = 2.0  # SimPO's own scale (SimPO paper; the course's SimPOConfig)
    simpo_gamma_beta_ratio: float = 0.5  # SimPO margin as γ/β (the course's gamma_beta_ratio)
    orpo_lambda: float = 0.1  # ORPO paper's λ (TRL's ORPOConfig beta default)
    kto_desirable_weight: float = 1.0  # KTO paper / TRL default
    kto_undesirable_weight: float = 1.0
    reference: RefHandling = "auto"

    @property
    def simpo_gamma(self) -> float:
        """SimPO's absolute target margin γ = (γ/β) × β: the one place it is computed."""
        return self.simpo_gamma_beta_ratio * self.simpo_beta

    def beta_for(self, objective: str) -> float:
        """The β an objective trains with (ORPO's λ plays that part in TRL's ORPOConfig)."""
        return {"simpo": self.simpo_beta, "orpo": self.orpo_lambda}.get(objective, self.beta)


@dataclass
class DistributedConfig:
    """[distributed] Several processes or machines through `accelerate launch` (DDP or FSDP)."""

    strategy: Strategy = "none"  # none = one process; ddp; fsdp = full shard by decoder layer
    processes_per_machine: int = 1  # usually the number of GPUs on each machine
    machines: int = 1
    machine_rank: int = 0  # this machine's number (0 = the main one; `--machine-rank` overrides)
    main_address: str = "127.0.0.1"  # machine 0's address on the link between the machines
    main_port: int = 29500


@dataclass
class RunConfig:
    """Everything a run needs.  Round-trips through TOML exactly."""

    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preference: PreferenceConfig = field(default_factory=PreferenceConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    # ---- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        data = self.to_dict()
        _check_no_secrets(data)
        return tomli_w.dumps(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        return _build(cls, _upgrade(data), "")

    @classmethod
    def from_toml(cls, text: str, source: str = "run.toml") -> RunConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc
        return cls.from_toml(text, str(path))

    def save(self, path: str | Path) -> None:
        from spark_tui.core.base.atomic import atomic_write_text

        atomic_write_text(Path(path), self.to_toml())

    # ---- dotted access (sweeps, CLI overrides) --------------------------
    def get(self, dotted: str) -> Any:
        obj: Any = self
        for part in dotted.split("."):
            if not dataclasses.is_dataclass(obj) or part not in {f.name for f in fields(obj)}:
                raise _unknown_setting(dotted)
            obj = getattr(obj, part)
        return obj

    def with_value(self, dotted: str, value: Any) -> RunConfig:
        """A copy with one dotted setting changed, validated like a TOML value."""
        data = self.to_dict()
        *parents, leaf = dotted.split(".")
        node = data
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise _unknown_setting(dotted)
            node = node[part]
        if leaf not in node:
            raise _unknown_setting(dotted)
        node[leaf] = value
        return RunConfig.from_dict(data)


def known_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted setting name, for error messages and sweeps."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(known_keys(tp, f"{prefix}{f.name}."))
        else:
            out.append(prefix + f.name)
    return out


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A run.toml written by an older version, in today's keys, training the same thing.

    Before SimPO had its own β, `preference.simpo_gamma` held the γ/β ratio and
    SimPO trained with the shared `preference.beta`.  Before "auto",
    `train.gradient_checkpointing` was true or false ("on" or "off" now).
    """
    train = data.get("train")
    if isinstance(train, dict) and isinstance(train.get("gradient_checkpointing"), bool):
        train = {**train, "gradient_checkpointing": "on" if train["gradient_checkpointing"] else "off"}
        data = {**data, "train": train}
    pref = data.get("preference")
    if not isinstance(pref, dict) or "simpo_gamma" not in pref:
        return data
    pref = dict(pref)
    pref.setdefault("simpo_gamma_beta_ratio", pref.pop("simpo_gamma"))
    objective = (data.get("method") or {}).get("objective")
    if objective == "simpo" and "simpo_beta" not in pref:
        pref["simpo_beta"] = pref.get("beta", PreferenceConfig.beta)
    return {**data, "preference": pref}


# Tables whose keys are the user's own names (column names), not settings.
_USER_NAMED_TABLES = frozenset({"column_map"})


def _check_no_secrets(data: dict[str, Any], path: str = "") -> None:
    for key, value in data.items():
        if key.lower() in SECRET_KEYS:
            raise ConfigError(f"refusing to write secret key '{path}{key}' into a run file")
        if isinstance(value, dict) and key not in _USER_NAMED_TABLES:
            _check_no_secrets(value, f"{path}{key}.")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list,):
        return "a list of " + _describe(get_args(tp)[0])
    if origin in (dict,):
        return "a table of strings"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"'{key}' = {value!r} is not allowed; use {_describe(tp)}")
        return value
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"'{key}': unsupported union type")  # not used by the schema
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"'{key}' = {value!r} must be {_describe(tp)}")
        (inner,) = get_args(tp)
        return [_coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"'{key}' must be {_describe(tp)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' = {value!r} must be true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' = {value!r} must be an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' = {value!r} must be a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' = {value!r} must be a string")
        return value
    raise ConfigError(f"'{key}': unsupported type {tp}")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"'{prefix.rstrip('.') or 'config'}' must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(
                f"unknown key '{prefix}{key}'{_did_you_mean(prefix, str(key), names)}; "
                f"allowed here: {', '.join(sorted(names))}"
            )
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(tp, data[f.name], prefix + f.name)
    obj = cls(**kwargs)
    _check_ranges(obj, prefix)
    _check_limits(obj, prefix)
    return obj


_RANGES: dict[str, tuple[float | None, float | None]] = {
    "val_fraction": (0.0, 0.9),
    "max_length": (16, 1_048_576),
    "r": (1, 4096),
    "alpha": (1, 65536),
    "dropout": (0.0, 0.9),
    "learning_rate": (1e-9, 10.0),
    "warmup_ratio": (0.0, 1.0),
    "micro_batch_size": (1, 4096),
    "grad_accum": (1, 65536),
    "neftune_alpha": (0.0, 100.0),
    "logging_steps": (0, None),
    "save_steps": (1, None),
    "epochs": (0.0, 1000.0),
    "beta": (0.0, 100.0),
    "num_virtual_tokens": (1, 1024),
}


def _check_ranges(obj: Any, prefix: str) -> None:
    for f in fields(obj):
        bounds = _RANGES.get(f.name)
        value = getattr(obj, f.name)
        if bounds is None or isinstance(value, (bool, str, list, dict)):
            continue
        lo, hi = bounds
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            rng = f"{lo if lo is not None else '-inf'} .. {hi if hi is not None else 'inf'}"
            raise ConfigError(f"'{prefix}{f.name}' = {value!r} is out of range; allowed: {rng}")
    if isinstance(obj, TrainConfig) and obj.max_steps == 0:
        raise ConfigError(f"'{prefix}max_steps' = 0 trains nothing; use -1 (epochs) or a positive count")


# ---- what a typo or a value a trainer would crash on looks like -------------------------

# Bounds of the settings `_RANGES` leaves open (same "lo .. hi" message).
_LIMITS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**32 - 1),  # numpy refuses other seeds when the trainer starts
    "max_steps": (-1, math.inf),  # -1 = train for `epochs`
    "simpo_beta": (0.0, 100.0),
    "simpo_gamma_beta_ratio": (0.0, 100.0),
    "orpo_lambda": (0.0, 100.0),
    "kto_desirable_weight": (0.0, 100.0),
    "kto_undesirable_weight": (0.0, 100.0),
    "processes_per_machine": (1, 1024),
    "machines": (1, 1024),
    "main_port": (1, 65535),
}


def _did_you_mean(prefix: str, key: str, names: set[str]) -> str:
    """A "did you mean" for a typo of a key of this table, or for a key of another table."""
    close = difflib.get_close_matches(key, sorted(names), n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{prefix}{close[0]}'?)"
    elsewhere = [k for k in known_keys() if k.rsplit(".", 1)[-1] == key]
    if elsewhere:
        return f" ('{key}' is a setting of another table: '{elsewhere[0]}')"
    return ""


def _unknown_setting(dotted: str) -> ConfigError:
    """A dotted setting (sweep, CLI override) that does not exist, with the closest real one."""
    close = difflib.get_close_matches(dotted, known_keys(), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown setting '{dotted}'{hint}; known: {', '.join(known_keys())}")


def _check_limits(obj: Any, prefix: str) -> None:
    """No NaN or infinity anywhere (every comparison with NaN passes), and `_LIMITS`."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"'{prefix}{f.name}' = {value!r} is not a finite number; give a number"
            )
        bounds = _LIMITS.get(f.name)
        if bounds is None or isinstance(value, (bool, str, list, dict)):
            continue
        lo, hi = bounds
        if not lo <= value <= hi:
            raise ConfigError(
                f"'{prefix}{f.name}' = {value!r} is out of range; allowed: {lo} .. {hi}"
            )
    if isinstance(obj, DistributedConfig) and not 0 <= obj.machine_rank < obj.machines:
        raise ConfigError(
            f"'{prefix}machine_rank' = {obj.machine_rank} is not one of the {obj.machines} "
            f"machines; allowed: 0 .. {obj.machines - 1}"
        )
    if isinstance(obj, TrainConfig) and obj.max_steps == -1 and obj.epochs == 0:
        raise ConfigError(
            f"'{prefix}epochs' = 0 with '{prefix}max_steps' = -1 trains nothing; "
            "give a number of epochs or a positive max_steps"
        )
