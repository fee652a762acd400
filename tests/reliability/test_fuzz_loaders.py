"""Fuzzing every data reader: broken bytes in, only the project's own error out.

Files of every supported kind are written from random rows (mis-typed values,
NaN, huge numbers, lone surrogates, NUL bytes, nesting) and then damaged at the
byte level (truncated, bytes inserted or replaced, re-encoded as UTF-16 or
Latin-1, extra byte-order marks).  Reading them (`load_source`) and running
the preparation's row path (`prepare_dataset` without a tokenizer) must either
work or raise a `SparkError` whose message names the file, and the line when
it gives one; anything else escaping is a bug.  Every case also checks that
the source file is left byte-identical (hash and mtime), that nothing new
appears beside it and that the readers never open it for writing (an audit
hook watches every `open`).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.data import DataError, load_source, prepare_dataset
from spark_tui.core.data.read_datasets import load_saved_folder

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,  # nothing written into the shared checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---------------------------------------------------------------- watching the source file

_WATCHED: set[str] = set()
_WRITES: list[tuple[str, Any]] = []
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record any open of a watched file that could change it."""
    if event != "open" or not _WATCHED or not args or args[0] is None:
        return
    path, mode, flags = args[0], args[1], args[2]
    if isinstance(path, int):
        return
    name = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
    if os.path.abspath(name) not in _WATCHED:
        return
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & _WRITE_FLAGS
    )
    if writes:
        _WRITES.append((name, mode if mode is not None else flags))


if not getattr(sys, "_spark_tui_fuzz_audit", False):  # an audit hook cannot be removed: add once
    sys.addaudithook(_audit)
    sys._spark_tui_fuzz_audit = True  # type: ignore[attr-defined]


def _state(p: Path) -> tuple[int, int, str, list[str]]:
    st_ = p.stat()
    return (
        st_.st_mtime_ns,
        st_.st_size,
        hashlib.sha256(p.read_bytes()).hexdigest(),
        sorted(x.name for x in p.parent.iterdir()),
    )


def _event(what: str) -> None:
    """Outcome counts for `--hypothesis-show-statistics` (a no-op outside a fuzz run)."""
    with contextlib.suppress(Exception):
        event(what)


def read_and_prepare(
    path: Path, objective: str = "sft", drop: list[str] | None = None, tokenizer: Any = None
) -> Any:
    """Load and prepare `path`; only a SparkError naming the file may escape; the file is kept."""
    before = _state(path)
    cfg = RunConfig()
    cfg.data.path = str(path)
    cfg.data.drop = list(drop or [])
    cfg.method.objective = objective  # type: ignore[assignment]
    _WATCHED.add(str(path.resolve()))
    _WRITES.clear()
    try:
        src = load_source(path, objective=objective)
        assert src.rows, "a source without rows must be an error"
        out = prepare_dataset(cfg, tokenizer, source=src)
        _event("prepared")
        return out
    except SparkError as exc:
        _event(type(exc).__name__ + ": " + str(exc).split(": ", 1)[-1].split("(")[0][:30])
        msg = str(exc)
        assert str(path) in msg, f"the error does not name the file: {msg}"
        line = getattr(exc, "line", None)
        if line is not None:
            assert f"line {line}" in msg
            raw = path.read_bytes()
            assert 1 <= line <= raw.count(b"\n") + raw.count(b"\r") + 1, msg
        return exc
    finally:
        _WATCHED.clear()
        assert not _WRITES, f"the source was opened for writing: {_WRITES}"
        assert _state(path) == before, "the source file or its folder changed"


# ---------------------------------------------------------------- strategies

KEYS = ["instruction", "input", "output", "prompt", "completion", "chosen", "rejected", "label",
        "messages", "conversations", "text", "system", "role", "content", "from", "value"]  # fmt: skip
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "\ufeff", "\u2028", "\r", "é"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities too: json.dumps writes NaN / Infinity
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=10,
)
turn = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]), "content": values}
)
good_row = st.one_of(
    st.fixed_dictionaries({"instruction": texts, "output": texts}),
    st.fixed_dictionaries({"messages": st.lists(turn, max_size=4)}),
    st.fixed_dictionaries({"prompt": texts, "chosen": texts, "rejected": texts}),
    st.fixed_dictionaries({"prompt": texts, "completion": texts, "label": values}),
)
rows = st.one_of(
    good_row,
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), values, max_size=5),
)
SUFFIXES = [".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".txt", ""]  # "" = sniffed


def render(kind: str, data: list[dict[str, Any]], draw: Any) -> bytes:
    """Rows as the bytes of one file kind (some of it not quite what the kind expects)."""
    ascii_only = draw(st.booleans())
    if kind in (".jsonl", ".ndjson", ""):
        lines = [json.dumps(r, ensure_ascii=ascii_only) for r in data]
        return "\n".join(lines).encode("utf-8", "surrogatepass")
    if kind == ".json":
        doc: Any = data if draw(st.booleans()) else {"data": data}
        return json.dumps(
            doc, ensure_ascii=ascii_only, indent=draw(st.sampled_from([None, 1]))
        ).encode("utf-8", "surrogatepass")
    if kind in (".csv", ".tsv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t" if kind == ".tsv" else ",")
        header = list(dict.fromkeys(k for r in data for k in r)) or ["text"]
        writer.writerow(header)
        for r in data:
            writer.writerow([r.get(k, "") for k in header])
        return buf.getvalue().encode("utf-8", "surrogatepass")
    # .txt: the row texts, one per line or in blocks
    sep = draw(st.sampled_from(["\n", "\n\n"]))
    return sep.join(str(v) for r in data for v in r.values()).encode("utf-8", "surrogatepass")


@st.composite
def damage(draw: Any, raw: bytes) -> bytes:
    """Break `raw` the ways files really break (a few of these at once)."""
    for _ in range(draw(st.integers(0, 3))):
        op = draw(
            st.sampled_from(["cut", "insert", "replace", "nul", "bom", "utf16", "latin1", "crlf"])
        )
        at = draw(st.integers(0, len(raw)))
        if op == "cut":
            raw = raw[:at]
        elif op == "insert":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
        elif op == "replace" and raw:
            at = min(at, len(raw) - 1)
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=1)) + raw[at + 1 :]
        elif op == "nul":
            raw = raw[:at] + b"\x00" + raw[at:]
        elif op == "bom":
            raw = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])) + raw
        elif op == "utf16":
            raw = raw.decode("utf-8", "replace").encode(
                draw(st.sampled_from(["utf-16", "utf-16-le"]))
            )
        elif op == "latin1":
            raw = raw.decode("utf-8", "replace").encode("latin-1", "replace")
        elif op == "crlf":
            raw = raw.replace(b"\n", b"\r\n")
    return raw


# ---------------------------------------------------------------- the fuzz tests


@FUZZ
@given(
    data=st.data(),
    kind=st.sampled_from(SUFFIXES),
    content=st.lists(rows, min_size=0, max_size=6),
    objective=st.sampled_from(["sft", "dpo", "kto"]),
    drop=st.sampled_from([[], ["recommended"], ["control_chars:strip"]]),
)
def test_damaged_files_load_or_raise_a_data_error_naming_them(
    tmp_path_factory, data, kind, content, objective, drop
):
    raw = data.draw(damage(render(kind, content, data.draw)))
    path = tmp_path_factory.mktemp("fuzz") / f"data{kind}"
    path.write_bytes(raw)
    read_and_prepare(path, objective, drop)


@FUZZ
@given(raw=st.binary(max_size=300), kind=st.sampled_from(SUFFIXES))
def test_random_bytes_load_or_raise_a_data_error_naming_them(tmp_path_factory, raw, kind):
    path = tmp_path_factory.mktemp("bytes") / f"blob{kind}"
    path.write_bytes(raw)
    read_and_prepare(path)


@pytest.fixture(scope="module")
def tokenizer(default_model_dir: Path) -> Any:
    """The default model's tokenizer: real chat-template rendering and token counts."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_model_dir)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    content=st.lists(good_row, min_size=1, max_size=5),
    objective=st.sampled_from(["sft", "dpo", "kto"]),
    max_length=st.sampled_from([16, 64]),
)
def test_odd_rows_through_the_real_tokenizer(
    tmp_path_factory, tokenizer, content, objective, max_length
):
    """Rendering and counting odd rows with the model's own template is only DataError too."""
    path = tmp_path_factory.mktemp("tok") / "rows.jsonl"
    path.write_bytes(b"\n".join(json.dumps(r).encode() for r in content))
    before = _state(path)
    cfg = RunConfig()
    cfg.data.path = str(path)
    cfg.data.max_length = max_length
    cfg.data.drop = ["too_long:truncate"]
    cfg.method.objective = objective  # type: ignore[assignment]
    try:
        prepared = prepare_dataset(cfg, tokenizer)
        _event(f"prepared {len(prepared.train)} rows")
    except SparkError as exc:
        _event(type(exc).__name__ + ": " + str(exc).split(": ", 1)[-1].split("(")[0][:30])
        assert str(path) in str(exc), str(exc)
    assert _state(path) == before


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(cut=st.integers(0, 10_000), noise=st.binary(max_size=16))
def test_truncated_parquet_is_a_data_error(tmp_path_factory, cut, noise):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("pq")
    whole = folder / "whole.parquet"
    pq.write_table(
        pa.table({"instruction": [f"q{i}" for i in range(50)], "output": ["a"] * 50}), whole
    )
    raw = whole.read_bytes()
    path = folder / "data.parquet"
    path.write_bytes(raw[: cut % (len(raw) + 1)] + noise)
    read_and_prepare(path)


# ---------------------------------------------------------------- the cases fuzzing rarely finds

DEEP = 10_000


@pytest.mark.parametrize(
    ("name", "raw", "line"),
    [
        ("deep.jsonl", b'{"instruction": "q", "output": "a"}\n{"x": ' + b"[" * DEEP + b"]" * DEEP + b"}\n", 2),
        ("deep.json", b'[{"instruction": ' + b"[" * DEEP + b"]" * DEEP + b', "output": "a"}]', None),
        ("deep-utf16.jsonl", ('{"x": ' + "[" * DEEP + "]" * DEEP + "}\n").encode("utf-16"), 1),
        ("deep-lines.json", b'{"a": 1}\n{"b": ' + b"[" * DEEP + b"]" * DEEP + b"}\n", 2),
        ("digits.jsonl", b'{"instruction": "q", "output": ' + b"7" * 5000 + b"}\n", 1),
        ("digits.json", b'[{"instruction": "q", "output": ' + b"7" * 5000 + b"}]", None),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
def test_deep_nesting_and_huge_numbers_are_data_errors(tmp_path, name, raw, line):
    path = tmp_path / name
    path.write_bytes(raw)
    err = read_and_prepare(path)
    assert isinstance(err, DataError), err
    assert err.line == line
    assert "nested more deeply" in str(err) or "4300 digits" in str(err)


@pytest.mark.parametrize("depth", [200, 900, 990])
@pytest.mark.parametrize("kind", [".jsonl", ".json"])
def test_nesting_near_the_limit_is_read_or_refused(tmp_path, depth, kind):
    """Rows nested as deep as the parser allows go through the row path too, or are refused."""
    deep = "[" * depth + '"x"' + "]" * depth
    rows = [
        f'{{"instruction": "q{i}", "output": "a{i}", "meta": {deep}, "input": {deep}}}'
        for i in range(3)
    ]
    text = "\n".join(rows) if kind == ".jsonl" else "[" + ",".join(rows) + "]"
    path = tmp_path / f"nested{kind}"
    path.write_text(text, encoding="utf-8")
    out = read_and_prepare(path)
    if isinstance(out, DataError):
        assert "nested more deeply" in str(out) or "no rows are left" in str(out), out


@pytest.mark.parametrize(
    ("name", "raw", "words"),
    [
        ("odd.jsonl", b"\xff\xfe{\x00}\x00{", "not valid UTF-16"),
        ("surrogate.csv", b"\xff\xfe" + "a,b\n".encode("utf-16-le") + b"\x00\xd8", "not valid UTF-16"),
        ("surrogate.txt", b"\xfe\xff\xdc\x00", "not valid UTF-16"),
        ("latin1.json", '[{"instruction": "café", "output": "x"}]'.encode("latin-1"), "not valid UTF-8"),
        ("nul.jsonl", b'{"instruction": "q\x00", "output": "a"}\n', "not valid JSON"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)  # fmt: skip
def test_bad_encodings_are_data_errors(tmp_path, name, raw, words):
    path = tmp_path / name
    path.write_bytes(raw)
    err = read_and_prepare(path)
    assert isinstance(err, DataError) and words in str(err), err


@pytest.mark.parametrize("kind", [".jsonl", ".csv", ".txt"])
def test_a_5mb_single_line_is_read_in_bounded_time(tmp_path, kind):
    big = "x" * (5 << 20)
    raw = {
        ".jsonl": json.dumps({"instruction": "q", "output": big}),
        ".csv": "instruction,output\nq," + big,
        ".txt": big,
    }[kind]
    path = tmp_path / f"big{kind}"
    path.write_text(raw, encoding="utf-8")
    start = time.monotonic()
    out = read_and_prepare(path, drop=["too_long"])
    assert time.monotonic() - start < 30
    # The one row is far over max_length: dropped, so nothing is left to train on.
    assert isinstance(out, DataError) and "no rows are left" in str(out), out


def test_a_5mb_line_of_brackets_is_a_data_error(tmp_path):
    path = tmp_path / "brackets.jsonl"
    path.write_bytes(b"[" * (5 << 20))
    err = read_and_prepare(path)
    assert isinstance(err, DataError) and err.line == 1


def test_a_broken_save_to_disk_folder_is_a_data_error(tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "state.json").write_text('{"_data_files": [{"filename": "nope.arrow"}]')
    before = _state(folder / "state.json")
    with pytest.raises(DataError, match=str(folder)):
        load_saved_folder(folder)
    assert _state(folder / "state.json") == before
    with pytest.raises(DataError, match="not a `datasets` save_to_disk folder"):
        load_saved_folder(tmp_path)


def test_a_read_only_source_prepares_and_stays_untouched(tmp_path):
    """Writing the prepared copy elsewhere works with a read-only file in a read-only folder."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "data.jsonl"
    path.write_text(
        "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(8)),
        encoding="utf-8",
    )
    before = _state(path)
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        cfg = RunConfig()
        cfg.data.path = str(path)
        _WATCHED.add(str(path.resolve()))
        prepared = prepare_dataset(cfg, None, out_dir=tmp_path / "out")
        assert len(prepared.train) + len(prepared.validation) == 8
        with pytest.raises(DataError, match="refusing to write the prepared data over the source"):
            prepare_dataset(cfg, None, out_dir=path)
    finally:
        _WATCHED.clear()
        folder.chmod(0o755)
        path.chmod(0o644)
    assert not _WRITES, _WRITES
    assert _state(path)[1:3] == before[1:3]  # chmod changes ctime, not the bytes or mtime
    assert path.stat().st_mtime_ns == before[0]
