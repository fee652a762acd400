"""JSON and JSON Lines files load; a bad line or item raises DataError naming it."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.base.errors import SparkError
from spark_tui.core.data import DataError, load_source


def test_jsonl(write_jsonl, two_rows):
    src = load_source(write_jsonl(two_rows))
    assert src.rows == two_rows
    assert src.kind == "jsonl"
    assert src.lines == [1, 2]
    assert src.columns == ["instruction", "input", "output"]


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path, two_rows):
    p = tmp_path / "d.jsonl"
    p.write_text(
        json.dumps(two_rows[0]) + "\n\n" + json.dumps(two_rows[1]) + "\n", encoding="utf-8"
    )
    src = load_source(p)
    assert src.lines == [1, 3]
    assert src.where(1) == "line 3"


def test_json_array(tmp_path, two_rows):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(two_rows, indent=2), encoding="utf-8")
    src = load_source(p)
    assert src.rows == two_rows and src.kind == "json"


def test_json_object_holding_rows(tmp_path, two_rows):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"version": 1, "data": two_rows}), encoding="utf-8")
    src = load_source(p)
    assert src.rows == two_rows
    assert any("'data'" in n for n in src.notes)


def test_json_columns(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"instruction": ["a", "b"], "output": ["x", "y"]}), encoding="utf-8")
    assert load_source(p).rows == [
        {"instruction": "a", "output": "x"},
        {"instruction": "b", "output": "y"},
    ]


def test_json_file_that_is_really_jsonl(tmp_path, two_rows):
    p = tmp_path / "d.json"
    p.write_text("".join(json.dumps(r) + "\n" for r in two_rows), encoding="utf-8")
    src = load_source(p)
    assert src.rows == two_rows
    assert any("JSON Lines" in n for n in src.notes)


def test_utf16_with_bom(tmp_path, two_rows):
    p = tmp_path / "d.jsonl"
    p.write_bytes(("".join(json.dumps(r) + "\n" for r in two_rows)).encode("utf-16"))
    assert load_source(p).rows == two_rows


def test_few_invalid_utf8_lines_are_kept_and_flagged(tmp_path):
    p = tmp_path / "d.jsonl"
    good = "".join(
        json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(30)
    )
    bad = b'{"instruction": "caf\xe9", "output": "x"}\n'
    p.write_bytes(good.encode() + bad)
    src = load_source(p)
    assert len(src.rows) == 31
    assert src.invalid_utf8_rows == {30}
    assert "\ufffd" in src.rows[30]["instruction"]


def test_malformed_jsonl_names_file_line_and_column(tmp_path, two_rows):
    p = tmp_path / "broken.jsonl"
    p.write_text(
        json.dumps(two_rows[0]) + "\n" + '{"instruction": "x", "output": }\n', encoding="utf-8"
    )
    with pytest.raises(DataError) as ei:
        load_source(p)
    msg = str(ei.value)
    assert "broken.jsonl, line 2, column" in msg
    assert "not valid JSON" in msg and "fix or remove this line" in msg
    assert ei.value.line == 2 and ei.value.path == str(p)
    assert isinstance(ei.value, SparkError)


def test_jsonl_line_that_is_not_an_object(tmp_path, two_rows):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(two_rows[0]) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: expected a JSON object"):
        load_source(p)


def test_malformed_json_array(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[\n  {"a": 1},\n  {"a": 2,}\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json, line 3, column \d+: not valid JSON"):
        load_source(p)


def test_json_array_item_not_object(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[{"a": 1}, "oops"]', encoding="utf-8")
    with pytest.raises(DataError, match="item 2 of the array is a string"):
        load_source(p)


def test_mostly_invalid_jsonl_is_an_encoding_error(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b"".join(b'{"instruction": "caf\xe9", "output": "x"}\n' for _ in range(5)))
    with pytest.raises(DataError, match="not UTF-8: 5 lines"):
        load_source(p)
