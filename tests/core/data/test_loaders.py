"""Every source kind loads; every bad input raises DataError naming the file (and line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_tui.core.data import DataError, bundled_dataset_path, load_source
from spark_tui.core.errors import SparkError

ROWS = [
    {"instruction": "Say hi", "input": "", "output": "Hi!"},
    {"instruction": "Add 2 and 3", "input": "", "output": "5"},
]


def test_jsonl(write_jsonl):
    src = load_source(write_jsonl(ROWS))
    assert src.rows == ROWS
    assert src.kind == "jsonl"
    assert src.lines == [1, 2]
    assert src.columns == ["instruction", "input", "output"]


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    src = load_source(p)
    assert src.lines == [1, 3]
    assert src.where(1) == "line 3"


def test_json_array(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS, indent=2), encoding="utf-8")
    src = load_source(p)
    assert src.rows == ROWS and src.kind == "json"


def test_json_object_holding_rows(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"version": 1, "data": ROWS}), encoding="utf-8")
    src = load_source(p)
    assert src.rows == ROWS
    assert any("'data'" in n for n in src.notes)


def test_json_columns(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"instruction": ["a", "b"], "output": ["x", "y"]}), encoding="utf-8")
    assert load_source(p).rows == [
        {"instruction": "a", "output": "x"},
        {"instruction": "b", "output": "y"},
    ]


def test_json_file_that_is_really_jsonl(tmp_path):
    p = tmp_path / "d.json"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    src = load_source(p)
    assert src.rows == ROWS
    assert any("JSON Lines" in n for n in src.notes)


def test_csv_and_tsv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('instruction,input,output\nSay hi,,Hi!\n"Add 2, 3",,5\n', encoding="utf-8")
    src = load_source(p)
    assert src.rows[1] == {"instruction": "Add 2, 3", "input": "", "output": "5"}
    assert src.lines == [2, 3]
    t = tmp_path / "d.tsv"
    t.write_text("instruction\toutput\nSay hi\tHi!\n", encoding="utf-8")
    assert load_source(t).rows == [{"instruction": "Say hi", "output": "Hi!"}]


def test_csv_multiline_field_line_numbers(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('instruction,output\n"two\nlines",x\ny,z\n', encoding="utf-8")
    src = load_source(p)
    assert src.rows[0]["instruction"] == "two\nlines"
    assert src.lines == [2, 4]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), p)
    src = load_source(p)
    assert src.rows == ROWS and src.kind == "parquet"


def test_text_blocks_and_lines(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("First paragraph\nstill first.\n\nSecond one.\n", encoding="utf-8")
    src = load_source(p)
    assert src.rows == [{"text": "First paragraph\nstill first."}, {"text": "Second one."}]
    assert src.lines == [1, 4]
    q = tmp_path / "e.txt"
    q.write_text("one\ntwo\n", encoding="utf-8")
    assert load_source(q).rows == [{"text": "one"}, {"text": "two"}]


def test_save_to_disk_folders(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))
    assert load_source(tmp_path / "one").rows == ROWS
    DatasetDict(
        {"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}
    ).save_to_disk(str(tmp_path / "dict"))
    assert load_source(tmp_path / "dict").rows == ROWS
    assert load_source(tmp_path / "dict", split="test").rows == ROWS[:1]


def test_bundled_sets_exist_for_every_objective():
    for obj in ("sft", "dpo", "simpo", "orpo", "kto", "reward"):
        p = bundled_dataset_path(obj)
        assert p.name.endswith(".jsonl")
    src = load_source("default", objective="sft")
    assert src.rows and "bundled" in src.kind


def test_utf16_with_bom(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(("".join(json.dumps(r) + "\n" for r in ROWS)).encode("utf-16"))
    assert load_source(p).rows == ROWS


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


# ---------------------------------------------------------------------------
# errors


def test_malformed_jsonl_names_file_line_and_column(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text(
        json.dumps(ROWS[0]) + "\n" + '{"instruction": "x", "output": }\n', encoding="utf-8"
    )
    with pytest.raises(DataError) as ei:
        load_source(p)
    msg = str(ei.value)
    assert "broken.jsonl, line 2, column" in msg
    assert "not valid JSON" in msg and "fix or remove this line" in msg
    assert ei.value.line == 2 and ei.value.path == str(p)
    assert isinstance(ei.value, SparkError)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n", encoding="utf-8")
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


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.csv", "empty.txt"])
def test_empty_files(tmp_path, name):
    p = tmp_path / name
    p.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name}: .*empty"):
        load_source(p)


def test_wrong_encoding_says_what_to_do(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("instruction,output\ncafé,crème\n".encode("latin-1"))
    with pytest.raises(DataError) as ei:
        load_source(p)
    assert "latin.csv, line 2" in str(ei.value)
    assert "UTF-8" in str(ei.value) and "iconv" in str(ei.value)


def test_mostly_invalid_jsonl_is_an_encoding_error(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(b"".join(b'{"instruction": "caf\xe9", "output": "x"}\n' for _ in range(5)))
    with pytest.raises(DataError, match="not UTF-8: 5 lines"):
        load_source(p)


def test_csv_row_with_too_many_fields(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("instruction,output\na,b\nc,d,e\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv, line 3: 3 fields but the header names 2"):
        load_source(p)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_source(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no such file"):
        load_source("./relative/nope")


def test_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="not a `datasets` save_to_disk folder"):
        load_source(tmp_path)


def test_unknown_extension(tmp_path):
    p = tmp_path / "d.xlsx"
    p.write_bytes(b"PK\x03\x04...")
    with pytest.raises(DataError, match=r"unknown file type \.xlsx"):
        load_source(p)


def test_unreadable_file(tmp_path):
    import os

    p = tmp_path / "secret.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n")
    p.chmod(0)
    try:
        if os.access(p, os.R_OK):  # running as root: permissions do not apply
            pytest.skip("root can read any file")
        with pytest.raises(DataError, match="permission denied"):
            load_source(p)
    finally:
        p.chmod(0o644)


def test_hub_id_offline_says_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        load_source("someone/some-dataset")


def test_hub_probe_times_out_quickly(monkeypatch):
    import time

    from spark_tui.core.data import hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    t = time.perf_counter()
    assert hub_offline() is True
    assert time.perf_counter() - t < 5


def test_user_file_is_never_modified(write_jsonl):
    p = write_jsonl(ROWS)
    before = Path(p).read_bytes()
    load_source(p)
    assert Path(p).read_bytes() == before


def test_hub_id_not_reachable_says_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(DataError, match="offline .*cannot be reached.*HF_HUB_OFFLINE=1"):
        load_source("someone/some-dataset")


def test_hub_dataset_from_the_local_cache_when_offline(monkeypatch, tmp_path):
    """Offline with HF_HUB_OFFLINE set, a dataset already cached still loads (here: a stub)."""
    import datasets

    calls = {}

    def fake_load_dataset(repo, subset, split):
        calls["args"] = (repo, subset, split)
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    src = load_source("someone/cached", subset="en", split="test")
    assert src.rows == ROWS and src.kind == "hub"
    assert calls["args"] == ("someone/cached", "en", "test")
