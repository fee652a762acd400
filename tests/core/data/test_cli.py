"""`spark-tui data inspect|prepare` through spark_tui.cli.main."""

from __future__ import annotations

import json

from datasets import load_from_disk

from spark_tui.cli import main


def test_inspect_prints_detection_lint_and_stats(write_jsonl, alpaca_rows, capsys):
    rows = alpaca_rows(10)
    rows.append(dict(rows[0]))
    path = write_jsonl(rows)
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Alpaca (instruction / input / output)" in out
    assert "'instruction' and 'output' in 100% of 11 sampled rows" in out
    assert "Exact duplicates: 1  [keep]  e.g. line 11" in out
    assert "token-length histogram" in out
    assert "yes sft" in out and "no  dpo" in out
    assert "trained on" in out


def test_inspect_json(write_jsonl, capsys):
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    assert main(["data", "inspect", str(write_jsonl(rows)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"]["name"] == "preference"
    assert report["objective"] == "dpo"  # auto objective from the format
    assert report["stats"]["rows_before"] == 5


def test_inspect_with_format_map_and_no_model(write_jsonl, capsys):
    path = write_jsonl([{"q": f"Q{i}", "a": f"A{i}"} for i in range(4)])
    assert main(["data", "inspect", str(path), "--map", "q=instruction", "--map", "a=output",
                 "--format", "alpaca", "--model", "none", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["format"]["column_map"] == {"q": "instruction", "a": "output"}
    assert report["stats"]["tokens"]["exact"] is False


def test_prepare_writes_a_datasets_folder(write_jsonl, alpaca_rows, tmp_path, capsys):
    out = tmp_path / "prepared"
    args = ["data", "prepare", str(write_jsonl(alpaca_rows(20))), "--model", "default",
            "--out", str(out), "--objective", "sft", "--val-fraction", "0.25"]  # fmt: skip
    assert main(args) == 0
    assert "wrote 15 train and 5 validation rows" in capsys.readouterr().out
    ds = load_from_disk(str(out))
    assert set(ds) == {"train", "validation"}
    assert len(ds["train"]) == 15 and ds["train"].column_names == ["messages"]
    assert (out / "data_report.json").exists()


def test_prepare_bad_input_exits_nonzero_with_message(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n', encoding="utf-8")
    rc = main(["data", "prepare", str(bad), "--model", "default", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc != 0
    assert "bad.jsonl, line 2, column" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_bad_map_syntax(write_jsonl, alpaca_rows, capsys):
    rc = main(["data", "inspect", str(write_jsonl(alpaca_rows(2))), "--map", "nonsense"])
    assert rc != 0 and "SOURCE=FIELD" in capsys.readouterr().err


def test_prepare_objective_mismatch(write_jsonl, alpaca_rows, tmp_path, capsys):
    rc = main(["data", "prepare", str(write_jsonl(alpaca_rows(4))), "--out", str(tmp_path / "o"),
               "--objective", "kto"])  # fmt: skip
    assert rc != 0 and "cannot train kto" in capsys.readouterr().err
