"""CSV / TSV, plain text and Parquet files.

CSV rows keep the line they start on (a quoted field may span lines), so lint
findings and errors point at the right spot; plain text becomes one ``text``
row per blank-line separated block, else per line (continued pre-training).
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.source import Progress, Source, decode_all, read_bytes


def load_csv(p: Path, *, progress: Progress | None = None, delimiter: str = ",") -> Source:
    data = read_bytes(p, progress)
    text, notes = decode_all(p, data)
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
    data = read_bytes(p, progress)
    text, notes = decode_all(p, data)
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
                progress("reading rows", len(rows), total)
    except OSError as exc:
        raise DataError(f"cannot read this file ({exc})", path=str(p)) from exc
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
        raise DataError(
            f"not a readable Parquet file ({type(exc).__name__}: {exc}); re-export it", path=str(p)
        ) from exc
    if not rows:
        raise DataError("the Parquet file holds no rows", path=str(p))
    return Source(rows, str(p), "parquet", None, [], p.stat().st_size)
