"""`spark-tui recipe`: course recipes from the command line; the source file is never modified."""

from __future__ import annotations

import json

from spark_tui.cli import main


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_alpaca_pairs_system_chatml(tmp_path, capsys):
    src = _write(tmp_path / "raw.jsonl", [{"q": "Hi?", "good": "Hello.", "bad": "Go away."}])
    before = src.read_text()
    assert main(["recipe", "alpaca", str(src), "--instruction", "q", "--output", "good",
                 "--out", str(tmp_path / "a.jsonl")]) == 0
    assert _read(tmp_path / "a.jsonl") == [{"instruction": "Hi?", "input": "", "output": "Hello."}]
    assert main(["recipe", "pairs", str(src), "--prompt", "q", "--chosen", "good", "--rejected", "bad",
                 "--out", str(tmp_path / "p.jsonl")]) == 0
    assert _read(tmp_path / "p.jsonl") == [{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}]
    assert main(["recipe", "system", str(tmp_path / "a.jsonl"), "--prompt", "You are Sparky.",
                 "--out", str(tmp_path / "s.jsonl")]) == 0
    assert _read(tmp_path / "s.jsonl")[0]["system"] == "You are Sparky."
    assert main(["recipe", "chatml", str(tmp_path / "s.jsonl"), "--out", str(tmp_path / "t.jsonl")]) == 0
    text = _read(tmp_path / "t.jsonl")[0]["text"]
    assert "<|im_start|>system\nYou are Sparky.<|im_end|>" in text and "Hello." in text
    assert src.read_text() == before  # the user's file is untouched
    assert "wrote 1 rows" in capsys.readouterr().out


def test_missing_column_is_a_clear_error(tmp_path, capsys):
    src = _write(tmp_path / "raw.jsonl", [{"q": "Hi?"}])
    assert main(["recipe", "alpaca", str(src), "--instruction", "q", "--output", "answer",
                 "--out", str(tmp_path / "a.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "row 1" in err and "answer" in err


def test_refuses_to_overwrite_the_source(tmp_path, capsys):
    src = _write(tmp_path / "raw.jsonl", [{"instruction": "Hi?", "output": "Hello."}])
    assert main(["recipe", "system", str(src), "--prompt", "x", "--out", str(src)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
