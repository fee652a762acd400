"""`spark-tui data inspect|prepare`: the Dataset step from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spark_tui.commands.args import add_command, add_json, add_repeatable
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method.choices import OBJECTIVES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "data", help="inspect or prepare a dataset", description="Inspect or prepare a dataset."
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("file", help="a data file, a save_to_disk folder, a Hub id, or 'default'")
        q.add_argument(
            "--format",
            default="auto",
            help="force a format (alpaca, sharegpt, messages, "
            "prompt_completion, text, preference, kto)",
        )
        q.add_argument(
            "--model",
            default="default",
            help="model whose tokenizer and chat template are used ('default', a folder, "
            "a Hub id, or 'none' for estimated token counts)",
        )
        q.add_argument(
            "--objective",
            default="auto",
            choices=["auto", *OBJECTIVES],
            help="training objective (auto: from the data's format)",
        )
        add_repeatable(
            q, "--map", "SRC=FIELD", "rename a column, e.g. --map question=instruction (repeatable)"
        )
        q.add_argument("--system-prompt", default="", help="system prompt for rows without one")
        q.add_argument("--max-length", type=int, default=512, help="max tokens a row may have")
        add_repeatable(
            q,
            "--drop",
            "CATEGORY",
            "lint category to drop (e.g. exact_duplicate, too_long, "
            "too_long:truncate, recommended); repeatable",
        )
        q.add_argument("--chat-template", default="auto", choices=["auto", "chatml", "llama3"])
        q.add_argument("--subset", default="", help="Hub dataset subset")
        q.add_argument(
            "--split", default="train", help="split to read from a Hub id or datasets folder"
        )
        add_json(q, "print the report as JSON")

    common(add_command(sub, "inspect", cmd_inspect, "detect the format, lint, and print stats"))

    prep = add_command(
        sub, "prepare", cmd_prepare, "write a prepared dataset folder (train + validation)"
    )
    common(prep)
    prep.add_argument("--out", required=True, help="output folder (load_from_disk opens it)")
    prep.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of rows for validation"
    )
    prep.add_argument("--val-count", type=int, default=None, help="number of validation rows")
    prep.add_argument("--validation", default="", help="a separate validation file")
    prep.add_argument("--seed", type=int, default=42)


def _config(args: argparse.Namespace, objective: str) -> Any:
    from spark_tui.config import RunConfig

    data: dict[str, Any] = {
        "path": args.file,
        "subset": args.subset,
        "split": args.split,
        "format": args.format,
        "column_map": _parse_map(args.map),
        "system_prompt": args.system_prompt,
        "max_length": args.max_length,
        "drop": list(args.drop),
    }
    if hasattr(args, "val_fraction"):
        data.update(val_fraction=args.val_fraction, seed=args.seed, validation_path=args.validation)
    return RunConfig.from_dict(
        {
            "data": data,
            "method": {"objective": objective},
            "model": {
                "id": args.model if args.model != "none" else "default",
                "chat_template": args.chat_template,
            },
        }
    )


def _parse_map(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise SparkError(
                f"--map {item!r}: write it as SOURCE=FIELD, e.g. --map question=instruction"
            )
        out[src.strip()] = dst.strip()
    return out


def _objective(args: argparse.Namespace, source: Any) -> str:
    if args.objective != "auto":
        return args.objective
    from spark_tui.core.data import detect_format
    from spark_tui.core.data.fit import default_objective

    det = detect_format(source.rows, column_map=_parse_map(args.map), override=args.format)
    return default_objective(det.format)


def _run(args: argparse.Namespace, out_dir: str | None) -> Any:
    from spark_tui.core.data import load_source, prepare_dataset
    from spark_tui.core.data.tokenizer import load_tokenizer

    objective = args.objective if args.objective != "auto" else "sft"
    source = load_source(args.file, subset=args.subset, split=args.split, objective=objective)
    objective = _objective(args, source)
    cfg = _config(args, objective)
    tokenizer = load_tokenizer(args.model)
    val_count = getattr(args, "val_count", None)
    return prepare_dataset(
        cfg,
        tokenizer,
        out_dir=Path(out_dir) if out_dir else None,
        source=source,
        val_count=val_count,
    )


def cmd_inspect(args: argparse.Namespace) -> int:
    prepared = _run(args, None)
    if args.json:
        print(json.dumps(prepared.report, indent=2, ensure_ascii=False))
    else:
        print(format_report(prepared.report))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    prepared = _run(args, args.out)
    if args.json:
        print(json.dumps(prepared.report, indent=2, ensure_ascii=False))
        return 0
    print(format_report(prepared.report, preview=False))
    s = prepared.report["split"]
    print(f"\nwrote {s['train']} train and {s['validation']} validation rows to {args.out}")
    print("open it with: datasets.load_from_disk(" + repr(str(args.out)) + ")")
    return 0


def _bar(n: int, top: int, width: int = 30) -> str:
    return "#" * max(1 if n else 0, round(width * n / top)) if top else ""


def format_report(r: dict[str, Any], preview: bool = True) -> str:
    """The report as plain text for a terminal."""
    out: list[str] = []
    src = r["source"]
    out.append(f"source   {src['path']} ({src['kind']}, {src['rows']} rows)")
    for note in src.get("notes", []):
        out.append(f"         {note}")
    f = r["format"]
    out.append(f"format   {f['title']}" + ("  [set by hand]" if f["overridden"] else ""))
    for ev in f["evidence"]:
        out.append(f"  - {ev}")
    out.append(f"objective {r['objective']}  -> columns {', '.join(r['columns'])}")
    ct = r.get("chat_template")
    if ct:
        out.append(f"template {ct['name']} ({ct['note']})")
    out.append("\nmethod fit")
    for obj, v in r["method_fit"].items():
        out.append(f"  {'yes' if v['ok'] else 'no ':3} {obj:7} {v['why']}")
    out.append("\nlint")
    for item in r["lint"]:
        if not item["count"]:
            continue
        where = ", ".join(item.get("where") or [str(x) for x in item["examples"]])
        out.append(f"  {item['title']}: {item['count']}  [{item['action']}]  e.g. {where}")
        for detail, n in item.get("details", {}).items():
            if detail:
                out.append(f"      {n} x {detail}")
    if not any(i["count"] for i in r["lint"]):
        out.append("  no findings")
    if r.get("kto_balance"):
        out.append(f"  KTO balance: {r['kto_balance']['note']}")
    st = r["stats"]
    out.append(
        f"\nrows     {st['rows_before']} read, {st['rows_after']} kept "
        f"({st['rows_train']} train, {st['rows_validation']} validation)"
    )
    tok = st["tokens"]
    if "max" in tok:
        est = "" if tok["exact"] else " (estimated)"
        out.append(
            f"tokens{est}   min {tok['min']}  median {tok['median']}  mean {tok['mean']}  "
            f"p95 {tok['p95']}  max {tok['max']}  total {tok['total']}"
        )
    if st.get("trained_share") is not None:
        out.append(
            f"trained  {100 * st['trained_share']:.1f}% of tokens are trained on (answer part)"
        )
    h = st["histogram"]
    if h["counts"]:
        top = max(h["counts"])
        out.append("token-length histogram")
        for lo, hi, n in zip(h["edges"], h["edges"][1:], h["counts"], strict=False):
            out.append(f"  {lo:>6}-{hi - 1:<6} {n:>7} {_bar(n, top)}")
    if preview and r.get("preview"):
        out.append("\npreview of the first row ([...] is trained on; the rest is context)")
        for p in r["preview"]:
            text = "".join(f"[{s['text']}]" if s["trained"] else s["text"] for s in p["segments"])
            out.append(
                f"--- {p['part']}: {p['total_tokens']} tokens, {p['trained_tokens']} trained"
            )
            out.append(text)
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    from spark_tui.cli import main

    sys.exit(main(["data", *sys.argv[1:]]))
