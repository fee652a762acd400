"""An estimate's result: the peak of one training step, broken into the parts a user can act on.

Units: bytes internally; shown in decimal GB (1 GB = 10^9 bytes), the unit of
"128 GB" on a DGX Spark.  `Estimate.rows()` is what the Memory screen and
`spark-tui memory` show; `to_dict()` is the `--json` output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from spark_tui.core.memory.settings import Settings
from spark_tui.core.model.architecture import Architecture

GB = 1e9

BREAKDOWN_KEYS = (
    "weights",
    "adapters",
    "gradients",
    "optimizer",
    "activations",
    "reference",
    "overhead",
)
BREAKDOWN_LABELS = {
    "weights": "Model weights",
    "adapters": "Adapters",
    "gradients": "Gradients",
    "optimizer": "Optimizer states",
    "activations": "Activations",
    "reference": "Reference model",
    "overhead": "Runtime overhead",
}


@dataclass
class Estimate:
    """Peak memory of one training step, broken down (bytes)."""

    model: str
    arch: Architecture
    settings: Settings
    weights: int
    adapters: int
    gradients: int
    optimizer: int
    activations: int
    reference: int
    overhead: int
    overhead_fixed: int
    params_total: int
    params_trainable: int
    details: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.breakdown().values())

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def breakdown(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in BREAKDOWN_KEYS}

    def rows(self) -> list[tuple[str, str]]:
        """(label, "12.3 GB") for each part and the total: what screens and the CLI show."""
        rows = [(BREAKDOWN_LABELS[k], fmt_gb(v)) for k, v in self.breakdown().items()]
        rows.append(("Total peak", fmt_gb(self.total)))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.settings.method,
            "settings": dataclasses.asdict(self.settings),
            "precision": self.settings.resolved_precision,
            "reference": self.settings.resolved_reference,
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
            "breakdown_gb": {k: round(v / GB, 3) for k, v in self.breakdown().items()},
            "breakdown_bytes": self.breakdown(),
            "details_gb": {k: round(v / GB, 3) for k, v in self.details.items()},
            "total_bytes": self.total,
            "total_gb": round(self.total / GB, 2),
            "notes": list(self.notes),
        }


def fmt_gb(n: float) -> str:
    gb = n / GB
    if gb >= 10:
        return f"{gb:.1f} GB"
    if gb >= 0.995:
        return f"{gb:.2f} GB"
    return f"{gb * 1000:.0f} MB"
