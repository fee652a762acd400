"""load_source picks the reader (bundled sets, paths, Hub ids); bad paths say what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_tui.core.data import DataError, bundled_dataset_path, load_source


def test_bundled_sets_exist_for_every_objective():
    for obj in ("sft", "dpo", "simpo", "orpo", "kto", "reward"):
        p = bundled_dataset_path(obj)
        assert p.name.endswith(".jsonl")
    src = load_source("default", objective="sft")
    assert src.rows and "bundled" in src.kind


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.csv", "empty.txt"])
def test_empty_files(tmp_path, name):
    p = tmp_path / name
    p.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name}: .*empty"):
        load_source(p)


def test_missing_path(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_source(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no such file"):
        load_source("./relative/nope")


def test_unknown_extension(tmp_path):
    p = tmp_path / "d.xlsx"
    p.write_bytes(b"PK\x03\x04...")
    with pytest.raises(DataError, match=r"unknown file type \.xlsx"):
        load_source(p)


def test_unreadable_file(tmp_path, two_rows):
    import os

    p = tmp_path / "secret.jsonl"
    p.write_text(json.dumps(two_rows[0]) + "\n")
    p.chmod(0)
    try:
        if os.access(p, os.R_OK):  # running as root: permissions do not apply
            pytest.skip("root can read any file")
        with pytest.raises(DataError, match="permission denied"):
            load_source(p)
    finally:
        p.chmod(0o644)


def test_user_file_is_never_modified(write_jsonl, two_rows):
    p = write_jsonl(two_rows)
    before = Path(p).read_bytes()
    load_source(p)
    assert Path(p).read_bytes() == before
