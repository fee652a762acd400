"""Method fit: which objectives a dataset supports, and why."""

from __future__ import annotations

from typing import Any

from spark_tui.config import OBJECTIVES
from spark_tui.core.data.normalize import KINDS

_NAMES = {"dpo": "DPO", "simpo": "SimPO", "orpo": "ORPO", "reward": "a reward model"}


def method_fit(fmt: str) -> dict[str, dict[str, Any]]:
    """{objective: {"ok": bool, "why": str}} for a detected format."""
    kind = KINDS.get(fmt, "conv")
    out: dict[str, dict[str, Any]] = {}
    for obj in OBJECTIVES:
        ok, why = _fit(kind, obj)
        out[obj] = {"ok": ok, "why": why}
    return out


def _fit(kind: str, obj: str) -> tuple[bool, str]:
    if kind == "conv":
        if obj == "sft":
            return True, "instructions with answers: supervised fine-tuning on the assistant turns"
        if obj == "kto":
            return False, "KTO needs a good/bad label for each answer; these rows have none"
        return False, (
            f"{_NAMES[obj]} needs a chosen and a rejected "
            "answer per prompt; build pairs with the 'pairs from two answer columns' or "
            "'generate rejected answers' recipe"
        )
    if kind == "text":
        if obj == "sft":
            return True, "plain text: continued pre-training on every token (no chat template)"
        return (
            False,
            "plain text has no prompts or preferences; only SFT (continued pre-training) fits",
        )
    if kind == "pref":
        if obj == "sft":
            return True, "preference pairs: SFT trains on the prompt and the chosen answer"
        if obj == "kto":
            return (
                True,
                "each pair gives one desirable (chosen) and one undesirable (rejected) example",
            )
        return True, f"prompt / chosen / rejected pairs: exactly what {_NAMES[obj]} learns from"
    # kto
    if obj == "kto":
        return True, "answers labelled desirable / undesirable: exactly what KTO learns from"
    if obj == "sft":
        return True, "SFT trains on the desirable (label true) rows only"
    return (
        False,
        "the rows are labelled one by one, not paired; pairs objectives need chosen and rejected",
    )


def supported(fmt: str) -> list[str]:
    return [o for o, v in method_fit(fmt).items() if v["ok"]]


def default_objective(fmt: str) -> str:
    """The objective a format suggests: pairs -> DPO, labels -> KTO, else SFT."""
    return {"pref": "dpo", "kto": "kto"}.get(KINDS.get(fmt, "conv"), "sft")
