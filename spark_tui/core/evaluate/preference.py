"""Reward accuracy and margin of preference runs on their validation pairs.

The implicit reward follows the objective the run was trained with:

- DPO / KTO: ``β · Σ (log π_tuned − log π_base)`` over the completion tokens
  (the reference is the base model, i.e. the adapter switched off);
- SimPO / ORPO: ``β · mean log π_tuned`` over the completion tokens
  (reference-free, length-normalised, as their trainers log it; ORPO's β is
  ``preference.orpo_lambda``);
- reward models: the score of the chosen answer minus that of the rejected one.

Accuracy is the share of pairs whose chosen reward beats the rejected one (for
KTO: whose reward sign matches the label) and the margin is the mean difference.
Both models also get a reference-free "log-prob accuracy" (mean log-prob of
chosen > rejected) so base and tuned can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PREFERENCE_OBJECTIVES = ("dpo", "simpo", "orpo", "kto", "reward")


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _avg(lp: tuple[float, int]) -> float:
    return lp[0] / max(1, lp[1])


def implicit_rewards(
    objective: str,
    beta: float,
    tuned: Sequence[tuple[float, int]],
    base: Sequence[tuple[float, int]] | None,
) -> list[float]:
    """Per-completion implicit reward from (sum log-prob, token count) pairs (see module doc)."""
    if objective in ("simpo", "orpo"):
        return [beta * _avg(t) for t in tuned]
    if base is None:
        raise ValueError(f"{objective} rewards need the base model's log-probs")
    return [beta * (t[0] - b[0]) for t, b in zip(tuned, base, strict=True)]


def reward_description(objective: str, beta: float) -> str:
    if objective in ("simpo", "orpo"):
        return f"β·mean log π_tuned over completion tokens (β={beta:g})"
    if objective == "reward":
        return "reward-model score of chosen minus rejected"
    return f"β·Σ(log π_tuned − log π_base) over completion tokens (β={beta:g})"


def pair_summary(
    objective: str, beta: float, chosen: list[float], rejected: list[float]
) -> dict[str, Any]:
    diffs = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "objective": objective,
        "reward": reward_description(objective, beta),
        "beta": beta,
        "pairs": len(diffs),
        "accuracy": _mean([1.0 if d > 0 else 0.0 for d in diffs]),
        "margin": _mean(diffs),
        "chosen_reward": _mean(chosen),
        "rejected_reward": _mean(rejected),
    }


def logp_accuracy(lps: Sequence[tuple[float, int]]) -> float | None:
    """Share of pairs (chosen, rejected, interleaved) whose chosen answer has the higher
    mean log-prob."""
    ch, rj = lps[0::2], lps[1::2]
    return _mean([1.0 if _avg(c) > _avg(r) else 0.0 for c, r in zip(ch, rj, strict=True)])


def kto_summary(beta: float, rewards: list[float], labels: list[bool]) -> dict[str, Any]:
    """KTO's accuracy (reward sign matches the label) and margin (desirable − undesirable)."""
    good = [r for r, lab in zip(rewards, labels, strict=True) if lab]
    bad = [r for r, lab in zip(rewards, labels, strict=True) if not lab]
    acc = _mean([1.0 if (r > 0) == lab else 0.0 for r, lab in zip(rewards, labels, strict=True)])
    g, b = _mean(good), _mean(bad)
    return {
        "objective": "kto",
        "reward": reward_description("kto", beta),
        "beta": beta,
        "examples": len(rewards),
        "accuracy": acc,
        "margin": (g - b) if g is not None and b is not None else None,
        "chosen_reward": g,
        "rejected_reward": b,
    }
