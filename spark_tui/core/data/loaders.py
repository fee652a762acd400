"""Read rows from any common source into plain Python dicts.

Sources: ``.json`` (an array of rows, or an object holding one), ``.jsonl`` /
``.ndjson``, ``.csv``, ``.tsv``, ``.parquet``, ``.txt`` (plain text for
continued pre-training), a folder written by ``datasets.save_to_disk``, a
Hugging Face Hub dataset id (with subset and split), and the bundled sample
sets ("default").

Rows are kept as Python dicts on purpose: Arrow refuses rows whose types
differ (an answer that is a number in one row and text in another), and those
are exactly the rows the lint step must point at rather than crash on.  Line
based files are parsed line by line so a bad line is named precisely, and
reading reports progress (bytes read) through the ``progress`` callback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError

Progress = Callable[[str, float, float | None], None]

SUPPORTED = ".json, .jsonl, .ndjson, .csv, .tsv, .parquet, .txt, a save_to_disk folder or a Hub id"
BUNDLED = {
    "sft": "instructions.jsonl",
    "dpo": "preferences.jsonl",
    "simpo": "preferences.jsonl",
    "orpo": "preferences.jsonl",
    "reward": "preferences.jsonl",
    "kto": "kto.jsonl",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_PROGRESS_EVERY = 1 << 20  # report every MiB


@dataclass
class Source:
    """Rows read from one source, with where they came from."""

    rows: list[dict[str, Any]]
    path: str
    kind: str
    lines: list[int] | None = None  # source line of each row, for line-based files
    notes: list[str] = field(default_factory=list)
    size_bytes: int | None = None
    invalid_utf8_rows: set[int] = field(default_factory=set)  # rows decoded with replacement

    @property
    def columns(self) -> list[str]:
        """Every key seen in the first rows, in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows[:1000]:
            for key in row:
                seen.setdefault(key, None)
        return list(seen)

    def where(self, index: int) -> str:
        """'line 12' for line-based files, else 'row 12' (1-based)."""
        if self.lines is not None and index < len(self.lines):
            return f"line {self.lines[index]}"
        return f"row {index + 1}"

    def info(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "rows": len(self.rows),
            "columns": self.columns,
            "size_bytes": self.size_bytes,
            "notes": list(self.notes),
        }


def bundled_dataset_path(objective: str = "sft") -> Path:
    """The sample set shipped with spark-tui for an objective ("default" data)."""
    try:
        name = BUNDLED[objective]
    except KeyError:
        raise DataError(
            f"no bundled dataset for objective {objective!r}; known: {', '.join(BUNDLED)}"
        ) from None
    return Path(__file__).resolve().parents[2] / "data" / name


def load_source(
    path: str | os.PathLike[str],
    *,
    subset: str = "",
    split: str = "train",
    objective: str = "sft",
    progress: Progress | None = None,
) -> Source:
    """Read every row of a source.  Raises `DataError` with a message that says what to do."""
    text = str(path).strip()
    if not text:
        raise DataError("no dataset given; pick a file, a folder or a Hub dataset id")
    if text == "default":
        p = bundled_dataset_path(objective)
        if not p.exists():
            raise DataError(
                f"the bundled sample set {p.name} is missing from this installation; "
                "reinstall spark-tui or pick a file"
            )
        src = _load_path(p, split=split, progress=progress)
        src.kind = f"bundled {src.kind}"
        src.notes.append(f"bundled sample set for {objective}")
        return src
    p = Path(text).expanduser()
    if p.exists():
        return _load_path(p, split=split, progress=progress)
    if _looks_like_path(text):
        raise DataError(f"{text}: no such file or folder; check the path (supported: {SUPPORTED})")
    if _HUB_ID.match(text):
        return load_hub(text, subset=subset, split=split, progress=progress)
    raise DataError(f"{text}: no such file, and not a Hub dataset id like 'owner/name'")


def _looks_like_path(text: str) -> bool:
    if text.startswith((".", "/", "~")) or os.sep in text.rstrip("/") and text.count("/") > 1:
        return True
    suffix = Path(text).suffix.lower()
    return suffix in {".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt", ".arrow"}


def _load_path(p: Path, *, split: str, progress: Progress | None) -> Source:
    if p.is_dir():
        return load_saved_folder(p, split=split, progress=progress)
    if not os.access(p, os.R_OK):
        raise DataError(
            "cannot read this file (permission denied); check its permissions", path=str(p)
        )
    suffix = "".join(s.lower() for s in p.suffixes[-1:])
    loader = {
        ".jsonl": load_jsonl,
        ".ndjson": load_jsonl,
        ".json": load_json,
        ".csv": load_csv,
        ".tsv": load_tsv,
        ".parquet": load_parquet,
        ".txt": load_text,
    }.get(suffix)
    if loader is None:
        head = _read_head(p).lstrip()
        if head.startswith(b"{"):
            loader = load_jsonl
        elif head.startswith(b"["):
            loader = load_json
        elif head.startswith(b"PAR1"):
            loader = load_parquet
        else:
            raise DataError(
                f"unknown file type {suffix or '(no extension)'}; supported: {SUPPORTED}",
                path=str(p),
            )
    return loader(p, progress=progress)


def _read_head(p: Path, n: int = 64) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc.strerror})", path=str(p)) from exc


# ---------------------------------------------------------------------------
# text decoding


def _decode_all(p: Path, data: bytes) -> tuple[str, list[str]]:
    """Decode a whole file: UTF-8 (with or without BOM) or UTF-16 with a BOM."""
    notes: list[str] = []
    if not data.strip():
        raise DataError("the file is empty; add rows to it or pick another file", path=str(p))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        notes.append("read as UTF-16 (it has a UTF-16 byte-order mark)")
        return data.decode("utf-16"), notes
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), notes
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8, e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`",
            path=str(p),
            line=line,
        ) from exc


def _read_bytes(p: Path, progress: Progress | None) -> bytes:
    try:
        size = p.stat().st_size
        chunks = []
        done = 0
        with open(p, "rb") as fh:
            while True:
                chunk = fh.read(8 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                done += len(chunk)
                if progress:
                    progress("reading", done, size)
        return b"".join(chunks)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc.strerror})", path=str(p)) from exc


# ---------------------------------------------------------------------------
# JSON / JSON Lines


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
            data = _read_bytes(p, progress)
            text, notes = _decode_all(p, data)
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
            try:
                obj = loads(line)
            except json.JSONDecodeError as exc:
                if lineno == 1 and line.lstrip().startswith("[") and p.suffix.lower() != ".json":
                    fh.close()
                    src = load_json(p, progress=progress)
                    src.notes.append("the file holds one JSON array, not one object per line")
                    return src
                raise DataError(
                    f"not valid JSON: {exc.msg}. Each line must be one complete JSON object; "
                    "fix or remove this line",
                    path=str(p),
                    line=lineno,
                    column=exc.colno,
                ) from exc
            if not isinstance(obj, dict):
                raise DataError(
                    f"expected a JSON object {{...}} on each line, found {_kind(obj)}; "
                    'each line must be one row like {"instruction": ..., "output": ...}',
                    path=str(p),
                    line=lineno,
                )
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


def _parse_jsonl_text(p: Path, text: str, notes: list[str], size: int) -> Source:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON: {exc.msg}; fix or remove this line",
                path=str(p),
                line=lineno,
                column=exc.colno,
            ) from exc
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, found {_kind(obj)}", path=str(p), line=lineno)
        rows.append(obj)
        lines.append(lineno)
    if not rows:
        raise DataError(
            "the file is empty (no JSON rows); add rows or pick another file", path=str(p)
        )
    return Source(rows, str(p), "jsonl", lines, notes, size)


_ROW_KEYS = ("data", "rows", "examples", "train", "items", "records", "instances", "samples")


def load_json(p: Path, *, progress: Progress | None = None) -> Source:
    """A JSON array of rows, or an object holding one (or holding columns)."""
    data = _read_bytes(p, progress)
    text, notes = _decode_all(p, data)
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


# ---------------------------------------------------------------------------
# CSV / TSV / text / Parquet


def load_csv(p: Path, *, progress: Progress | None = None, delimiter: str = ",") -> Source:
    data = _read_bytes(p, progress)
    text, notes = _decode_all(p, data)
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError("the file is empty; add a header line and rows", path=str(p)) from None
    except csv.Error as exc:
        raise DataError(f"not valid CSV: {exc}", path=str(p), line=reader.line_num) from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(
            "the first line must name the columns (e.g. instruction,output)", path=str(p), line=1
        )
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    start_line = reader.line_num + 1
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                start_line = reader.line_num + 1
                continue
            if len(fields) > len(header):
                raise DataError(
                    f"{len(fields)} fields but the header names {len(header)}; "
                    "quote values that contain the separator"
                    + (' (",")' if delimiter == "," else " (tab)"),
                    path=str(p),
                    line=start_line,
                )
            row = {h: (fields[i] if i < len(fields) else None) for i, h in enumerate(header)}
            rows.append(row)
            lines.append(start_line)
            start_line = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"not valid CSV: {exc}", path=str(p), line=reader.line_num) from exc
    if not rows:
        raise DataError("the file has a header but no rows; add rows", path=str(p))
    return Source(rows, str(p), "tsv" if delimiter == "\t" else "csv", lines, notes, len(data))


def load_tsv(p: Path, *, progress: Progress | None = None) -> Source:
    return load_csv(p, progress=progress, delimiter="\t")


def load_text(p: Path, *, progress: Progress | None = None) -> Source:
    """Plain text for continued pre-training: blank-line separated blocks, else one row per line."""
    data = _read_bytes(p, progress)
    text, notes = _decode_all(p, data)
    text = text.replace("\r\n", "\n")
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    if re.search(r"\n\s*\n", text.strip()):
        lineno = 1
        for block in re.split(r"(\n\s*\n)", text):
            if block.strip() and not re.fullmatch(r"\n\s*\n", block):
                lead = len(block) - len(block.lstrip("\n"))
                rows.append({"text": block.strip()})
                lines.append(lineno + lead)
            lineno += block.count("\n")
        notes.append("plain text: one row per blank-line separated block")
    else:
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.strip():
                rows.append({"text": line.strip()})
                lines.append(lineno)
        notes.append("plain text: one row per line")
    return Source(rows, str(p), "txt", lines, notes, len(data))


def load_parquet(p: Path, *, progress: Progress | None = None) -> Source:
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(p)
        rows: list[dict[str, Any]] = []
        total = pf.metadata.num_rows
        for batch in pf.iter_batches(batch_size=10_000):
            rows.extend(batch.to_pylist())
            if progress:
                progress("reading", len(rows), total)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc})", path=str(p)) from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
        raise DataError(
            f"not a readable Parquet file ({type(exc).__name__}: {exc}); re-export it", path=str(p)
        ) from exc
    if not rows:
        raise DataError("the Parquet file holds no rows", path=str(p))
    return Source(rows, str(p), "parquet", None, [], p.stat().st_size)


# ---------------------------------------------------------------------------
# datasets folders and the Hub


def load_saved_folder(p: Path, *, split: str = "train", progress: Progress | None = None) -> Source:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    is_dict = (p / "dataset_dict.json").exists()
    if not is_dict and not (p / "state.json").exists():
        files = sorted(f.name for f in p.iterdir())[:8] if p.is_dir() else []
        raise DataError(
            "this folder is not a `datasets` save_to_disk folder (no dataset_dict.json or "
            f"state.json; it holds {', '.join(files) or 'nothing'}); pick a data file inside it",
            path=str(p),
        )
    try:
        from datasets import load_from_disk

        ds = load_from_disk(str(p))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot open this datasets folder ({exc})", path=str(p)) from exc
    notes = []
    if is_dict:
        splits = list(ds.keys())
        name = split if split in ds else None
        if name is None:
            if len(splits) == 1 or "train" in ds:
                name = "train" if "train" in ds else splits[0]
            else:
                raise DataError(
                    f"no split {split!r} in this folder; it has {', '.join(splits)}", path=str(p)
                )
        notes.append(f"split '{name}' of {', '.join(splits)}")
        ds = ds[name]
    return Source(_dataset_rows(ds, progress), str(p), "datasets folder", None, notes)


def _dataset_rows(ds: Any, progress: Progress | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    total = len(ds)
    step = 10_000
    for start in range(0, total, step):
        rows.extend(ds.select(range(start, min(total, start + step))).to_list())
        if progress:
            progress("reading", len(rows), total)
    return rows


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_offline(timeout: float = 3.0) -> bool:
    """True when the Hub cannot be reached (HF_HUB_OFFLINE set, or no connection in `timeout` s)."""
    if _env_offline():
        return True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    port = 443 if endpoint.startswith("https") else 80
    if ":" in host:
        host, port_s = host.rsplit(":", 1)
        port = int(port_s)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except OSError:
        return True


def load_hub(
    repo_id: str, *, subset: str = "", split: str = "train", progress: Progress | None = None
) -> Source:
    """A Hub dataset.  Offline, says so (after trying the local cache) instead of hanging."""
    env_offline = _env_offline()
    if not env_offline and hub_offline():
        raise DataError(
            f"'{repo_id}' looks like a Hugging Face Hub dataset id, but this machine is offline "
            "(huggingface.co cannot be reached). Connect to the internet, or set HF_HUB_OFFLINE=1 "
            "to use a copy already in the Hugging Face cache, or pick a downloaded file or folder."
        )
    if progress:
        progress("downloading", 0, None)
    what = f"'{repo_id}'" + (f" (subset '{subset}')" if subset else "") + f" split '{split}'"
    try:
        from datasets import load_dataset

        ds = load_dataset(repo_id, subset or None, split=split or "train")
    except Exception as exc:  # noqa: BLE001 - the hub raises many types
        if env_offline:
            raise DataError(
                f"the Hub dataset {what} is not in the local Hugging Face cache and this machine "
                "is offline (HF_HUB_OFFLINE is set); connect and unset it, or pick a downloaded "
                "file or folder"
            ) from exc
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"could not load the Hub dataset {what}: {msg}") from exc
    note = f"Hub dataset, split '{split}'" + (f", subset '{subset}'" if subset else "")
    return Source(_dataset_rows(ds, progress), repo_id, "hub", None, [note])
