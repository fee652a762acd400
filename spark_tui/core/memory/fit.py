"""The verdict: does this estimate fit this machine, with warnings and (when not) suggestions.

Fits / tight (less than 15 % headroom) / won't fit, against
`hardware.memory_budget()` (unified memory: MemAvailable, warning when the run
only fits by reclaiming page cache).  A run that does not plainly fit gets the
ranked changes of `suggestions.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spark_tui.core.memory.breakdown import GB, Estimate, fmt_gb
from spark_tui.core.memory.headroom import STATUS_LABELS, as_budget, classify
from spark_tui.core.memory.suggestions import Suggestion, suggest

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.core.model.hardware import Budget, HardwareProbe


@dataclass
class Verdict:
    status: str  # fits | tight | wont_fit
    estimate: Estimate
    budget: int
    budget_source: str
    target: str
    headroom: float  # (budget - total) / budget; negative when it does not fit
    suggestions: list[Suggestion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    drop_cache_hint: bool = False  # unified memory: dropping the page cache would help

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def summary(self) -> str:
        e = self.estimate
        return (
            f"{self.label}: peak ≈ {fmt_gb(e.total)} of {fmt_gb(self.budget)} "
            f"({self.budget_source}); headroom {self.headroom * 100:.0f} %"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "label": self.label,
            "summary": self.summary,
            "budget_bytes": self.budget,
            "budget_gb": round(self.budget / GB, 2),
            "budget_source": self.budget_source,
            "target": self.target,
            "headroom": round(self.headroom, 4),
            "warnings": list(self.warnings),
            "drop_cache_hint": self.drop_cache_hint,
            "suggestions": [sg.to_dict() for sg in self.suggestions],
        }


def verdict(
    est: Estimate,
    hardware: HardwareProbe | Budget | int,
    *,
    with_suggestions: bool = True,
) -> Verdict:
    """Fits / tight / won't fit against a probe (or a Budget, or a byte count)."""
    budget = as_budget(hardware)
    total = est.total
    status, headroom = classify(total, budget.bytes)
    warnings: list[str] = []
    drop_hint = False
    if budget.target == "unified" and budget.page_cache > 0:
        cache = fmt_gb(budget.page_cache)
        if total > budget.free_without_cache:
            drop_hint = True
            warnings.append(
                f"Page cache holds {cache} of unified memory and this run only fits if the "
                "kernel gives it back; the GPU cannot always reclaim it in time. Drop it "
                "before loading: sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'"
            )
        else:
            warnings.append(f"Page cache holds {cache} (reclaimable, counted as available).")
    if est.settings.max_length > est.arch.max_context:
        warnings.append(
            f"Max length {est.settings.max_length} exceeds the model's context "
            f"({est.arch.max_context})."
        )
    v = Verdict(
        status=status,
        estimate=est,
        budget=budget.bytes,
        budget_source=budget.source,
        target=budget.target,
        headroom=headroom,
        warnings=warnings,
        drop_cache_hint=drop_hint,
    )
    if with_suggestions and status != "fits":
        v.suggestions = suggest(est, budget)
    return v
