"""JSON and JSON Lines files: one row per line, or an array of rows (or columns) in one document.

JSON Lines is parsed line by line so a bad line is named precisely, a line with
invalid UTF-8 is kept (flagged for the lint step) unless most lines have them,
and a file whose extension lies (an array in a ``.jsonl``, lines in a ``.json``)
is read as what it holds, with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.source import Progress, Source, decode_all, read_bytes

_PROGRESS_EVERY = 1 << 20  # report every MiB

_ROW_KEYS = ("data", "rows", "examples", "train", "items", "records", "instances", "samples")


def load_jsonl(p: Path, *, progress: Progress | None = None) -> Source:
    """One JSON object per line.  A bad line raises a DataError naming it."""
    try:
        size = p.stat().st_size
        fh = open(p, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc.strerror})", path=str(p)) from exc
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    invalid: set[int] = set()
    bad_lines: list[int] = []
    notes: list[str] = []
    done = 0
    next_report = _PROGRESS_EVERY
    loads = json.loads
    with fh:
        first = fh.read(4)
        fh.seek(0)
        if first.startswith((b"\xff\xfe", b"\xfe\xff")):
            fh.close()
            data = read_bytes(p, progress)
            text, notes = decode_all(p, data)
            return _parse_jsonl_text(p, text, notes, size)
        for lineno, raw in enumerate(fh, 1):
            done += len(raw)
            if progress and done >= next_report:
                progress("reading", done, size)
                next_report = done + _PROGRESS_EVERY
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
                had_bad = False
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                had_bad = True
                bad_lines.append(lineno)
            if lineno == 1 and _array_start(line, p) and not _parses(loads, line):
                fh.close()
                src = load_json(p, progress=progress)
                src.notes.append("the file holds one JSON array, not one object per line")
                return src
            obj = _json_row(p, line, lineno, loads)
            if had_bad:
                invalid.add(len(rows))
            rows.append(obj)
            lines.append(lineno)
    if progress:
        progress("reading", size, size)
    if not rows:
        raise DataError(
            "the file is empty (no JSON rows); add rows or pick another file", path=str(p)
        )
    if bad_lines and len(bad_lines) > max(2, len(rows) // 10):
        raise DataError(
            f"not UTF-8: {len(bad_lines)} lines have invalid bytes (first: line {bad_lines[0]}); "
            "re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`",
            path=str(p),
        )
    if bad_lines:
        notes.append(f"{len(bad_lines)} lines had invalid UTF-8 bytes (replaced by U+FFFD)")
    return Source(rows, str(p), "jsonl", lines, notes, size, invalid)


def _array_start(line: str, p: Path) -> bool:
    return line.lstrip().startswith("[") and p.suffix.lower() != ".json"


def _parses(loads: Any, line: str) -> bool:
    """False only for a line that is not complete JSON (e.g. the first line of an array)."""
    try:
        loads(line)
    except json.JSONDecodeError:
        return False
    except (RecursionError, ValueError):
        pass  # complete but unreadable: `_json_row` says so, with the line
    return True


def _json_row(p: Path, line: str, lineno: int, loads: Any = json.loads) -> dict[str, Any]:
    """One JSON Lines row, or the DataError that names the file, the line and what to do."""
    try:
        obj = loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"not valid JSON: {exc.msg}. Each line must be one complete JSON object; "
            "fix or remove this line",
            path=str(p),
            line=lineno,
            column=exc.colno,
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise _unparsable(p, exc, lineno) from None
    if not isinstance(obj, dict):
        raise DataError(
            f"expected a JSON object {{...}} on each line, found {_kind(obj)}; "
            'each line must be one row like {"instruction": ..., "output": ...}',
            path=str(p),
            line=lineno,
        )
    return obj


def _parse_jsonl_text(p: Path, text: str, notes: list[str], size: int) -> Source:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        rows.append(_json_row(p, line, lineno))
        lines.append(lineno)
    if not rows:
        raise DataError(
            "the file is empty (no JSON rows); add rows or pick another file", path=str(p)
        )
    return Source(rows, str(p), "jsonl", lines, notes, size)


def load_json(p: Path, *, progress: Progress | None = None) -> Source:
    """A JSON array of rows, or an object holding one (or holding columns)."""
    data = read_bytes(p, progress)
    text, notes = decode_all(p, data)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            src = _parse_jsonl_text(p, text, notes, len(data))
            src.notes.append("the .json file holds one JSON object per line; read it as JSON Lines")
            return src
        raise DataError(
            f"not valid JSON: {exc.msg}; fix the file (a JSON array of rows [{{...}}, ...])",
            path=str(p),
            line=exc.lineno,
            column=exc.colno,
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise _unparsable(p, exc, None) from None
    rows: Any
    if isinstance(obj, list):
        rows = obj
    elif isinstance(obj, dict):
        rows, note = _rows_from_object(p, obj)
        notes.append(note)
    else:
        raise DataError(
            f"the file holds {_kind(obj)}; expected an array of rows [{{...}}, ...]", path=str(p)
        )
    if not rows:
        raise DataError(
            "the file holds no rows (an empty array); add rows or pick another file", path=str(p)
        )
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(
                f"item {i + 1} of the array is {_kind(row)}; every item must be an object {{...}}",
                path=str(p),
            )
    return Source(rows, str(p), "json", None, notes, len(data))


def _rows_from_object(p: Path, obj: dict[str, Any]) -> tuple[list[Any], str]:
    lists = {k: v for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
    if lists:
        key = next((k for k in _ROW_KEYS if k in lists), None) or max(
            lists, key=lambda k: len(lists[k])
        )
        return lists[key], f"rows read from the object's '{key}' array"
    cols = {k: v for k, v in obj.items() if isinstance(v, list)}
    if cols and len(cols) == len(obj) and len({len(v) for v in cols.values()}) == 1:
        n = len(next(iter(cols.values())))
        return [
            {k: v[i] for k, v in cols.items()} for i in range(n)
        ], "read as columns (one list per field)"
    raise DataError(
        "the file holds one JSON object without an array of rows in it; "
        'expected [{...}, ...] or {"data": [{...}, ...]}',
        path=str(p),
    )


def _unparsable(p: Path, exc: BaseException, line: int | None) -> DataError:
    """Valid-looking JSON Python cannot read: nested too deeply, or a number too long."""
    if isinstance(exc, RecursionError):
        what = (
            f"nested more deeply than the JSON reader allows (about {sys.getrecursionlimit()} "
            "levels of [ ] or { }); flatten "
        )
        what += "this row" if line is not None else "the rows"
    else:
        reason = str(exc).split(";")[0]  # e.g. a number of more than 4300 digits
        what = f"not readable as JSON ({reason}); store such values as strings in "
        what += "this row" if line is not None else "the file"
    return DataError(what, path=str(p), line=line)


def _kind(obj: Any) -> str:
    return {
        list: "an array",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "true/false",
        type(None): "null",
        dict: "an object",
    }.get(type(obj), type(obj).__name__)
