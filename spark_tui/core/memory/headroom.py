"""Where a peak stands against the memory budget: fits, tight (under 15 % headroom) or won't fit.

Shared by the verdict (`fit.py`) and the suggestions, which classify every
candidate change against the same budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.core.model.hardware import Budget, HardwareProbe

TIGHT_HEADROOM = 0.15

STATUS_LABELS = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
STATUS_RANK = {"fits": 0, "tight": 1, "wont_fit": 2}


def classify(total: int, budget: int) -> tuple[str, float]:
    """(status, headroom) of a peak against a budget."""
    if budget <= 0:
        return "wont_fit", -1.0
    headroom = (budget - total) / budget
    if headroom < 0:
        return "wont_fit", headroom
    if headroom < TIGHT_HEADROOM:
        return "tight", headroom
    return "fits", headroom


def as_budget(hw: HardwareProbe | Budget | int) -> Budget:
    """A probe, a Budget or a byte count, as the Budget a peak is checked against."""
    from spark_tui.core.model.hardware import Budget, memory_budget

    if isinstance(hw, Budget):
        return hw
    if isinstance(hw, (int, float)):
        return Budget(int(hw), "given budget", "gpu", int(hw), 0)
    return memory_budget(hw)
