"""Reading a run's saved evaluation (``eval.json``) and the few numbers a table shows.

The evaluation (`spark_tui.core.evaluate.run`) writes the file; compare, the
blind A/B review and the screens read it through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spark_tui.core.base import names
from spark_tui.core.base.atomic import read_json
from spark_tui.core.train.runs import Run, resolve_run


def load_eval(run: Run | str | Path) -> dict[str, Any] | None:
    """The run's eval.json, or None when it was never evaluated."""
    run = run if isinstance(run, Run) else resolve_run(run)
    data = read_json(run.path / names.EVAL_FILE, default=None)
    return data if isinstance(data, dict) else None


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a table shows: tuned loss/ppl/ROUGE/BLEU, base ROUGE-L, preference."""
    tuned = result.get("tuned") or {}
    base = result.get("base") or {}
    out: dict[str, Any] = {
        "eval_loss": tuned.get("loss"),
        "perplexity": tuned.get("perplexity"),
        "rouge1": tuned.get("rouge1"),
        "rouge2": tuned.get("rouge2"),
        "rougeL": tuned.get("rougeL"),
        "bleu": tuned.get("bleu"),
        "base_rougeL": base.get("rougeL"),
    }
    pref = result.get("preference")
    if pref:
        out["reward_accuracy"] = pref.get("accuracy")
        out["reward_margin"] = pref.get("margin")
    return out
