"""What to change so a run fits: ranked suggestions, each with its new estimate.

Changes that make the run fit come first, and among them the ones that cost
the least quality or speed (gradient checkpointing, reference handling, paged
8-bit optimizer, micro-batch with more accumulation, LoRA, QLoRA, shorter max
length, several of these combined, smaller model).  Each carries its new
estimate and the config change as dotted run.toml keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from spark_tui.core.memory.breakdown import GB, Estimate
from spark_tui.core.memory.estimator import estimate
from spark_tui.core.memory.headroom import STATUS_RANK, as_budget, classify
from spark_tui.core.memory.settings import (
    CONFIG_KEYS,
    Settings,
    from_config_value,
    to_config_value,
)
from spark_tui.core.model import catalog

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.config import RunConfig
    from spark_tui.core.model.hardware import Budget, HardwareProbe


@dataclass
class Suggestion:
    """One change that lowers the peak, with its new estimate."""

    key: str  # stable id: gradient_checkpointing, qlora, max_length, ...
    title: str
    changes: dict[str, Any]  # RunConfig dotted key -> value
    estimate: Estimate
    status: str  # verdict status with this change applied
    saves: int  # bytes saved against the current estimate
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "changes": dict(self.changes),
            "total_gb": round(self.estimate.total / GB, 2),
            "saves_gb": round(self.saves / GB, 2),
            "status": self.status,
            "detail": self.detail,
        }


# Lower = preferred when several changes make the run fit (less quality or speed lost).
_PREFERENCE = {
    "gradient_checkpointing": 0,
    "reference": 1,
    "paged_optimizer": 2,
    "micro_batch": 3,
    "lora": 4,
    "qlora": 5,
    "max_length": 6,
    "combined": 7,
    "smaller_model": 8,
}


def _changes_for(old: Settings, new: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if getattr(old, f.name) != getattr(new, f.name) and f.name in CONFIG_KEYS:
            out[CONFIG_KEYS[f.name]] = to_config_value(f.name, getattr(new, f.name))
    return out


def _candidates(est: Estimate, budget: Budget) -> list[tuple[str, str, Settings, str]]:
    """(key, title, new settings, detail) for each single change worth trying."""
    s = est.settings
    out: list[tuple[str, str, Settings, str]] = []
    if not s.gradient_checkpointing:
        out.append(
            (
                "gradient_checkpointing",
                "Turn on gradient checkpointing",
                replace(s, gradient_checkpointing=True),
                "Keeps one tensor per layer and recomputes the rest: ~30 % slower steps.",
            )
        )
    if s.resolved_reference == "copy":
        ref = "adapter_disabled" if s.peft else "precompute"
        out.append(
            (
                "reference",
                f"Reference model: {ref.replace('_', ' ')}",
                replace(s, reference=ref),
                "No second copy of the weights in memory.",
            )
        )
    if s.optimizer != "paged_adamw_8bit" and est.params_trainable > 0:
        out.append(
            (
                "paged_optimizer",
                "Use the paged 8-bit AdamW optimizer",
                replace(s, optimizer="paged_adamw_8bit"),
                "Optimizer states in 8 bits (2 bytes/param instead of 8), paged on spikes.",
            )
        )
    min_mb = 2 if s.objective == "kto" else 1
    if s.micro_batch > min_mb:
        effective = s.micro_batch * s.grad_accum
        best = _halve_until_fits(
            est, budget, s.micro_batch // 2, min_mb,
            lambda mb: replace(s, micro_batch=mb, grad_accum=max(1, effective // mb)),
        )  # fmt: skip
        if best is not None:
            out.append(
                (
                    "micro_batch",
                    f"Micro-batch {best.micro_batch} with {best.grad_accum} accumulation steps",
                    best,
                    f"Same effective batch ({effective}); fewer tokens in memory at once.",
                )
            )
    if s.adapter == "full":
        out.append(
            (
                "lora",
                "Train LoRA adapters instead of all weights",
                replace(s, adapter="lora"),
                "Frozen 16-bit base: no gradients or optimizer states for the base weights.",
            )
        )
    if s.adapter in ("full", "lora"):
        out.append(
            (
                "qlora",
                "Switch to QLoRA (4-bit NF4 base)",
                replace(s, adapter="qlora"),
                "Base weights in 4 bits (~0.52 bytes/param); slightly slower, small quality cost.",
            )
        )
    if s.max_length > 256:
        best = _halve_until_fits(
            est, budget, s.max_length // 2, 256, lambda n: replace(s, max_length=n)
        )
        if best is not None:
            out.append(
                (
                    "max_length",
                    f"Shorter max length: {best.max_length} tokens",
                    best,
                    "Longer examples are truncated: check the Data step's length statistics.",
                )
            )
    return out


def _halve_until_fits(
    est: Estimate, budget: Budget, start: int, floor: int, make: Callable[[int], Settings]
) -> Settings | None:
    """Halve a size from `start` down to `floor` until the run fits (else the smallest tried)."""
    best = None
    value = start
    while value >= floor:
        best = make(value)
        if classify(estimate(est.arch, best).total, budget.bytes)[0] == "fits":
            break
        value //= 2
    return best


def suggest(est: Estimate, budget: Budget | HardwareProbe | int) -> list[Suggestion]:
    """Ranked changes that lower the peak, each with its new estimate."""
    budget = as_budget(budget)
    s = est.settings
    found: list[Suggestion] = []
    for key, title, new, detail in _candidates(est, budget):
        e = estimate(est.arch, new, model=est.model)
        if e.total >= est.total * 0.99:
            continue
        status = classify(e.total, budget.bytes)[0]
        found.append(
            Suggestion(key, title, _changes_for(s, new), e, status, est.total - e.total, detail)
        )
    # A smaller model from the catalogue, same family first.
    entry = catalog.by_hub_id(est.model) or catalog.get(est.model)
    family = entry.family if entry else None
    for cand in catalog.smaller_than(est.params_total, family=family):
        e = estimate(cand.arch, s, model=cand.id)
        status = classify(e.total, budget.bytes)[0]
        if status == "fits":
            found.append(
                Suggestion(
                    "smaller_model",
                    f"Smaller model: {cand.name}",
                    {"model.id": cand.id},
                    e,
                    status,
                    est.total - e.total,
                    f"{cand.size_label()} parameters instead of "
                    f"{est.params_total / 1e9:.1f}B; fits with the current settings.",
                )
            )
            break
    # No single change of the settings fits: combine them greedily in order of preference.
    if not any(sg.status == "fits" for sg in found if sg.key != "smaller_model"):
        singles = sorted(
            (sg for sg in found if sg.key != "smaller_model"),
            key=lambda sg: _PREFERENCE.get(sg.key, 99),
        )
        cur = s
        titles: list[str] = []
        for sg in singles:
            nxt = _apply_to_settings(cur, sg.changes)
            if estimate(est.arch, nxt).total < estimate(est.arch, cur).total:
                cur = nxt
                titles.append(sg.title)
            if classify(estimate(est.arch, cur).total, budget.bytes)[0] == "fits":
                break
        if len(titles) > 1:
            e = estimate(est.arch, cur, model=est.model)
            found.append(
                Suggestion(
                    "combined",
                    "Combine: " + "; ".join(t[0].lower() + t[1:] for t in titles),
                    _changes_for(s, cur),
                    e,
                    classify(e.total, budget.bytes)[0],
                    est.total - e.total,
                    "No single change is enough.",
                )
            )
    found.sort(
        key=lambda sg: (STATUS_RANK[sg.status], _PREFERENCE.get(sg.key, 99), sg.estimate.total)
    )
    return found


def _apply_to_settings(s: Settings, changes: dict[str, Any]) -> Settings:
    back = {v: k for k, v in CONFIG_KEYS.items()}
    return replace(
        s, **{back[k]: from_config_value(back[k], v) for k, v in changes.items() if k in back}
    )


def apply_suggestion(cfg: RunConfig, suggestion: Suggestion | dict[str, Any]) -> RunConfig:
    """A copy of `cfg` with a suggestion's dotted-key changes applied (validated)."""
    changes = suggestion.changes if isinstance(suggestion, Suggestion) else suggestion
    for key, value in changes.items():
        cfg = cfg.with_value(key, value)
    return cfg
