"""metrics.jsonl on resume: lines after the checkpoint are dropped, torn lines skipped."""

from __future__ import annotations

import json

from spark_tui.core.train.metrics import truncate_metrics
from spark_tui.core.train.runs import Run


def test_truncate_metrics_keeps_lines_up_to_the_checkpoint(tmp_path):
    run = Run(tmp_path)
    lines = [{"kind": "train", "step": s, "loss": 1.0 / s} for s in range(1, 6)]
    lines.insert(3, {"kind": "eval", "step": 3, "eval_loss": 0.5})
    run.metrics_path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"torn": ')
    assert truncate_metrics(run, 3) == 4
    assert [(m["kind"], m["step"]) for m in run.metrics()] == [
        ("train", 1), ("train", 2), ("train", 3), ("eval", 3),
    ]  # fmt: skip
