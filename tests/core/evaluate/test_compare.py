"""Compare runs: exactly the differing keys, curves, speed, memory, eval scores, exports."""

from __future__ import annotations

import csv
import io
import json

import pytest

from spark_tui.cli import main
from spark_tui.config import RunConfig
from spark_tui.core.base.atomic import atomic_write_json
from spark_tui.core.evaluate import compare as cmp
from spark_tui.core.train.runs import create_run

GB = 1024**3


def _fake_run(root, name, r, *, gpu=False, rouge=None, loss0=3.0):
    cfg = RunConfig.from_dict({"name": name, "lora": {"r": r}, "train": {"max_steps": 4}})
    run = create_run(cfg, root=root)
    lines = []
    for step in range(1, 5):
        m = {
            "kind": "train",
            "step": step,
            "loss": loss0 - 0.5 * step,
            "tokens_per_s": 100.0 * step,
            "elapsed_s": 10.0 * step,
            "rss_bytes": int((1 + step / 10) * GB),
        }
        if gpu:
            m["gpu_mem_bytes"] = 2 * GB
            m["gpu_mem_peak_bytes"] = int((3 + step / 10) * GB)
        lines.append(m)
        if step % 2 == 0:
            lines.append(
                {"kind": "eval", "step": step, "eval_loss": loss0 - 0.4 * step, "rss_bytes": 5 * GB}
            )
    lines.append({"kind": "train", "step": 5, "loss": "nan"})  # non-finite values are skipped
    run.metrics_path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run.write_status(state="finished", started=1000.0, finished=1042.0, step=4, total_steps=4)
    if rouge is not None:
        atomic_write_json(
            run.path / "eval.json",
            {
                "tuned": {"loss": 1.5, "perplexity": 4.48, "rougeL": rouge, "bleu": 12.0},
                "base": {"rougeL": 0.1},
            },
        )
    return run


def test_table_lists_exactly_the_differing_key(tmp_path):
    a = _fake_run(tmp_path, "run-a", 4, rouge=0.3)
    b = _fake_run(tmp_path, "run-b", 16, gpu=True, rouge=0.4)
    c = cmp.compare_runs([a, b.path])  # a handle and a folder
    assert c.differing == ["lora.r"]
    assert c.columns[:2] == ["run", "lora.r"]

    ra, rb = c.runs
    assert ra.duration_s == pytest.approx(42.0)
    assert ra.tokens_per_s == pytest.approx(250.0)
    assert ra.peak_memory_bytes == 5 * GB and ra.peak_memory_source == "rss"
    assert rb.peak_memory_bytes == int(3.4 * GB) and rb.peak_memory_source == "gpu"
    assert ra.final_loss == pytest.approx(1.0) and ra.final_eval_loss == pytest.approx(1.4)
    assert c.curves[a.id]["train"] == [(1, 2.5), (2, 2.0), (3, 1.5), (4, 1.0)]
    assert c.curves[a.id]["eval"] == [(2, pytest.approx(2.2)), (4, pytest.approx(1.4))]
    assert ra.eval["rougeL"] == 0.3 and rb.eval["base_rougeL"] == 0.1
    assert c.metric_vs("lora.r", "rougeL") == [(4, 0.3), (16, 0.4)]

    md = c.to_markdown()
    header = md.splitlines()[0]
    assert "lora.r" in header and "name" not in header.split("|")[1:3]
    assert "train.max_steps" not in md  # same in both runs
    assert "| 16 |" in md and "5.00 GB" in md

    rows = list(csv.DictReader(io.StringIO(c.to_csv())))
    assert [r["lora.r"] for r in rows] == ["4", "16"]
    assert rows[0]["run"] == a.id and float(rows[1]["rougeL"]) == 0.4
    assert int(rows[0]["peak_memory"]) == 5 * GB


def test_several_differences_and_tables(tmp_path):
    base = RunConfig(name="x")
    other = base.with_value("data.column_map", {"q": "instruction"}).with_value(
        "train.learning_rate", 1e-4
    )
    a = create_run(base, root=tmp_path)
    b = create_run(other, root=tmp_path)
    c = cmp.compare_runs([a, b])
    assert c.differing == ["data.column_map", "train.learning_rate"]
    assert c.runs[0].state == "new" and c.runs[0].duration_s is None
    assert "–" in c.to_markdown()  # missing values are shown as a dash


def test_differing_keys_treat_equal_numbers_as_equal():
    assert (
        cmp.differing_keys([{"a": 1, "b": 2.0, "name": "x"}, {"a": 1.0, "b": 2.0, "name": "y"}])
        == []
    )
    assert cmp.differing_keys([{"a": 1}, {"a": 1, "b": 3}]) == ["b"]


def test_needs_two_runs(tmp_path):
    a = _fake_run(tmp_path, "solo", 4)
    with pytest.raises(cmp.CompareError, match="at least two"):
        cmp.compare_runs([a])


def test_save_and_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPARK_TUI_HOME", str(tmp_path))
    root = tmp_path / "runs"
    a = _fake_run(root, "cli-a", 4)
    b = _fake_run(root, "cli-b", 8)
    c = cmp.compare_runs([a, b])
    assert c.save(tmp_path / "t.csv").read_text() == c.to_csv()
    assert c.save(tmp_path / "t.md").read_text() == c.to_markdown()

    assert main(["compare", a.id, b.id, "--csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run,lora.r,")
    assert main(["compare", a.id, b.id, "--out", str(tmp_path / "o.md")]) == 0
    assert (tmp_path / "o.md").read_text().startswith("| run | lora.r |")
    capsys.readouterr()
    assert main(["compare", a.id, b.id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differing"] == ["lora.r"] and data["runs"] == [a.id, b.id]
    assert main(["compare", a.id]) == 2  # a SparkError becomes exit status 2
