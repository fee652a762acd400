"""What a run sets that changes its memory: the estimator's `Settings`, read from a RunConfig.

The estimate, the verdict, the suggestions and `spark-tui memory` all speak in
`Settings`; `CONFIG_KEYS` maps each field back to its run.toml key, so a
suggestion can say which line of the config to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spark_tui.config import (
    ADAPTERS,
    METHODS,
    OBJECTIVES,
    OPTIMIZERS,
    PAIRED_OBJECTIVES,
    REFERENCE_OBJECTIVES,
)
from spark_tui.core.base.errors import SparkError

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.config import RunConfig


# Settings field -> RunConfig dotted key (for suggestions).
CONFIG_KEYS = {
    "adapter": "method.adapter",
    "use_dora": "method.use_dora",
    "use_rslora": "method.use_rslora",
    "objective": "method.objective",
    "max_length": "data.max_length",
    "micro_batch": "train.micro_batch_size",
    "grad_accum": "train.grad_accum",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "lora_r": "lora.r",
    "lora_dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
    "num_virtual_tokens": "lora.num_virtual_tokens",
    "optimizer": "train.optimizer",
    "precision": "train.precision",
    "reference": "preference.reference",
}


def to_config_value(name: str, value: Any) -> Any:
    """A Settings field's value as its run.toml key takes it (checkpointing: "on"/"off")."""
    if name == "gradient_checkpointing":
        return "on" if value else "off"
    return value


def from_config_value(name: str, value: Any) -> Any:
    """A run.toml value as the Settings field `name` holds it."""
    if name == "gradient_checkpointing":
        return value != "off" if isinstance(value, str) else bool(value)
    return value


@dataclass(frozen=True)
class Settings:
    """Everything about a run that changes its memory, besides the architecture."""

    adapter: str = "lora"  # full | lora | qlora | prompt_tuning | prefix_tuning | adalora | ia3
    use_dora: bool = False
    use_rslora: bool = False
    objective: str = "sft"
    max_length: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    gradient_checkpointing: bool = True
    lora_r: int = 16
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    num_virtual_tokens: int = 20
    optimizer: str = "adamw"
    precision: str = "bf16"  # bf16 | fp16 | fp32 | auto (bf16 on a GPU, fp32 on a CPU)
    master_weights: bool = True  # full FT in 16-bit: fp32 master weights (HF mixed precision)
    reference: str = "auto"  # auto | adapter_disabled | copy | precompute
    double_quant: bool = True
    target: str = "gpu"  # gpu | unified | cpu: decides runtime overhead and "auto" precision

    def __post_init__(self) -> None:
        checks = {
            "adapter": (self.adapter, ADAPTERS),
            "objective": (self.objective, OBJECTIVES),
            "optimizer": (self.optimizer, OPTIMIZERS),
            "precision": (self.precision, ("bf16", "fp16", "fp32", "auto")),
            "reference": (self.reference, ("auto", "adapter_disabled", "copy", "precompute")),
            "target": (self.target, ("gpu", "unified", "cpu")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise SparkError(f"{name} {value!r} is not known; use one of {', '.join(allowed)}")
        for name in ("max_length", "micro_batch", "grad_accum"):
            if getattr(self, name) < 1:
                raise SparkError(f"{name} must be at least 1")

    @property
    def peft(self) -> bool:
        return self.adapter != "full"

    @property
    def resolved_precision(self) -> str:
        if self.precision == "auto":
            return "fp32" if self.target == "cpu" else "bf16"
        return self.precision

    @property
    def act_bytes(self) -> int:
        return 4 if self.resolved_precision == "fp32" else 2

    @property
    def w16_bytes(self) -> int:
        return 4 if self.resolved_precision == "fp32" else 2

    @property
    def method(self) -> str:
        """The CLI's method name: full, lora, qlora, dora, rslora (or the PEFT type)."""
        if self.adapter in ("lora", "qlora") and self.use_dora:
            return "dora" if self.adapter == "lora" else "qlora+dora"
        if self.adapter == "lora" and self.use_rslora:
            return "rslora"
        return self.adapter

    @property
    def resolved_reference(self) -> str:
        if self.objective not in REFERENCE_OBJECTIVES:
            return "none"
        if self.reference == "auto":
            return "adapter_disabled" if self.peft else "copy"
        if self.reference == "adapter_disabled" and not self.peft:
            return "copy"  # full fine-tuning has no adapters to switch off
        return self.reference

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.max_length * (2 if self.objective in PAIRED_OBJECTIVES else 1)


def settings_for_method(method: str, **kwargs: Any) -> Settings:
    """Settings for a CLI method name (full, lora, qlora, dora, rslora) plus overrides."""
    m = method.lower()
    if m in METHODS:
        adapter, dora, rslora = METHODS[m]
        base: dict[str, Any] | None = {"adapter": adapter, "use_dora": dora, "use_rslora": rslora}
    else:
        base = {"adapter": m} if m in ADAPTERS else None
    if base is None:
        raise SparkError(f"method {method!r} is not known; use one of {', '.join(METHODS)}")
    return Settings(**{**base, **kwargs})


def settings_from_config(cfg: RunConfig, target: str = "gpu") -> Settings:
    """The estimator's view of a RunConfig (`target` from the hardware probe)."""
    return Settings(
        adapter=cfg.method.adapter,
        use_dora=cfg.method.use_dora,
        use_rslora=cfg.method.use_rslora,
        objective=cfg.method.objective,
        max_length=cfg.data.max_length,
        micro_batch=cfg.train.micro_batch_size,
        grad_accum=cfg.train.grad_accum,
        # "auto" counts as on here; estimator.estimate_config decides it against a machine.
        gradient_checkpointing=cfg.train.gradient_checkpointing != "off",
        lora_r=cfg.lora.r,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        num_virtual_tokens=cfg.lora.num_virtual_tokens,
        optimizer=cfg.train.optimizer,
        precision=cfg.train.precision,
        reference=cfg.preference.reference,
        target=target,
    )
