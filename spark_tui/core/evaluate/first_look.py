"""A first look when a run finishes: held-out loss before and after, a few answers side by side.

Cheap on purpose (a few held-out rows, three prompts, short greedy answers) so
the Train screen can show, as soon as a run finishes, whether training changed
anything where the user is looking; the full comparison stays the Evaluate
step's.  Kept in the run folder (`first_look.json`), so opening the run again
shows it at once; a run trained again after it is looked at afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json, read_json
from spark_tui.core.evaluate.progress import CancelCheck, Progress
from spark_tui.core.evaluate.run import EvalOptions, evaluate_run
from spark_tui.core.train.runs import Run

FIRST_LOOK_VERSION = 1
OPTIONS = EvalOptions(max_prompts=3, max_new_tokens=48, max_rows=16)
# Objectives whose held-out answers and loss say something at a glance.
OBJECTIVES = frozenset({"sft", "dpo", "simpo", "orpo", "kto"})


def wanted(run: Run) -> bool:
    """Whether a finished run gets a first look (a reward model answers nothing)."""
    st = run.status()
    return st.get("state") == "finished" and run.config().method.objective in OBJECTIVES


def cached(run: Run) -> dict[str, Any] | None:
    """The kept first look, if it was taken after the run's last training finished."""
    look = read_json(run.path / names.FIRST_LOOK_FILE)
    if not isinstance(look, dict) or look.get("version") != FIRST_LOOK_VERSION:
        return None
    finished = run.status().get("updated") or 0
    return look if float(look.get("created", 0)) >= float(finished) else None


def first_look(
    run: Run, *, progress: Progress | None = None, cancel: CancelCheck | None = None
) -> dict[str, Any]:
    """Score base and tuned on a few held-out rows and prompts; keep and return the summary."""
    look = cached(run)
    if look is not None:
        return look
    result = evaluate_run(run, OPTIONS, progress=progress, cancel=cancel, save=False)
    look = summarize(result)
    atomic_write_json(Path(run.path) / names.FIRST_LOOK_FILE, look)
    return look


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    """The part of an evaluation the Train screen shows."""
    loss = {
        side: (result.get(side) or {}).get("loss")
        for side in ("base", "tuned")
        if (result.get(side) or {}).get("loss") is not None
    }
    pairs = [
        {"prompt": s.get("prompt", ""), "base": s.get("base", ""), "tuned": s.get("tuned", "")}
        for s in result.get("samples", [])
        if "tuned" in s
    ]
    return {
        "version": FIRST_LOOK_VERSION,
        "run_id": result.get("run_id"),
        "rows": result.get("rows", 0),
        "loss_on": result.get("loss_on"),
        "loss": loss,
        "pairs": pairs,
        "created": time.time(),
    }


def _one_line(text: str, width: int, prefix: str = "") -> str:
    flat = prefix + " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def look_lines(look: dict[str, Any], width: int) -> list[str]:
    """Plain lines for a panel `width` characters wide: the loss change, then each pair."""
    lines: list[str] = []
    loss = look.get("loss") or {}
    if "base" in loss and "tuned" in loss:
        b, t = float(loss["base"]), float(loss["tuned"])
        change = (t - b) / b * 100 if b else 0.0
        lines.append(_one_line(f"held-out loss {b:.3f} → {t:.3f} ({change:+.0f} %)", width))
        lines.append(_one_line(f"on {look.get('rows', 0)} rows", width))
    for pair in look.get("pairs", []):
        lines.append(_one_line(pair["prompt"], width, "» "))
        lines.append(_one_line(pair["base"], width, "  base:  "))
        lines.append(_one_line(pair["tuned"], width, "  tuned: "))
    return lines
