"""CSV / TSV, plain text and Parquet files load; bad ones raise DataError naming the line."""

from __future__ import annotations

import pytest

from spark_tui.core.data import DataError, load_source


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


def test_parquet(tmp_path, two_rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(two_rows), p)
    src = load_source(p)
    assert src.rows == two_rows and src.kind == "parquet"


def test_text_blocks_and_lines(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("First paragraph\nstill first.\n\nSecond one.\n", encoding="utf-8")
    src = load_source(p)
    assert src.rows == [{"text": "First paragraph\nstill first."}, {"text": "Second one."}]
    assert src.lines == [1, 4]
    q = tmp_path / "e.txt"
    q.write_text("one\ntwo\n", encoding="utf-8")
    assert load_source(q).rows == [{"text": "one"}, {"text": "two"}]


def test_wrong_encoding_says_what_to_do(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("instruction,output\ncafé,crème\n".encode("latin-1"))
    with pytest.raises(DataError) as ei:
        load_source(p)
    assert "latin.csv, line 2" in str(ei.value)
    assert "UTF-8" in str(ei.value) and "iconv" in str(ei.value)


def test_csv_row_with_too_many_fields(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("instruction,output\na,b\nc,d,e\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv, line 3: 3 fields but the header names 2"):
        load_source(p)
