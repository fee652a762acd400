"""`spark-tui recipe ...`: the course's data recipes, writing a new JSONL (the source is never touched).

    spark-tui recipe alpaca FILE --instruction question --output answer --out alpaca.jsonl
    spark-tui recipe chatml FILE --out text.jsonl            # render with ChatML to {"text": ...}
    spark-tui recipe system FILE --prompt "You are Sparky." --out with_system.jsonl
    spark-tui recipe pairs FILE --prompt q --chosen good --rejected bad --out pairs.jsonl
    spark-tui recipe reject FILE --model default --out pairs.jsonl   # rejected answers sampled
"""

from __future__ import annotations

import argparse
from typing import Any

from spark_tui.commands.args import add_command


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("recipe", help="course data recipes: to Alpaca, ChatML, system prompts, pairs")
    sub = p.add_subparsers(dest="recipe", metavar="RECIPE", required=True)

    def base(name: str, help_: str) -> argparse.ArgumentParser:
        q = add_command(sub, name, handle, help_)
        q.add_argument("file", help="a data file or folder (see `spark-tui data inspect`)")
        q.add_argument("--out", required=True, help="the JSONL file to write")
        return q

    q = base("alpaca", "raw rows with any column names -> Alpaca instruction/input/output")
    q.add_argument("--instruction", required=True, help="column holding the instruction")
    q.add_argument("--output", required=True, help="column holding the answer")
    q.add_argument("--input", help="column holding extra input (optional)")
    q.add_argument("--system", help="column holding a system prompt (optional)")
    q = base("chatml", "render instruction rows with ChatML into plain {'text': ...} rows")
    q.add_argument("--system-prompt", default="", help="system prompt for rows without one")
    q = base("system", "add a system prompt to every row")
    q.add_argument("--prompt", required=True)
    q.add_argument("--overwrite", action="store_true", help="replace system prompts already there")
    q = base("pairs", "preference pairs from a prompt column and two answer columns")
    q.add_argument("--prompt", required=True)
    q.add_argument("--chosen", required=True, help="the better answer's column")
    q.add_argument("--rejected", required=True, help="the worse answer's column")
    q = base("reject", "preference pairs from instructions, rejected answers sampled from a model")
    q.add_argument("--model", default="default", help="model that writes the rejected answers")
    q.add_argument("--max-new-tokens", type=int, default=128)


def handle(args: argparse.Namespace) -> int:
    from spark_tui.core.data import load_source
    from spark_tui.core.data import recipes as r

    source = load_source(args.file)
    rows = source.rows
    if args.recipe == "alpaca":
        out = r.raw_to_alpaca(rows, instruction=args.instruction, output=args.output,
                              input=args.input, system=args.system)
    elif args.recipe == "chatml":
        out = r.apply_template(rows, system_prompt=args.system_prompt)
    elif args.recipe == "system":
        out = r.add_system_prompt(rows, args.prompt, overwrite=args.overwrite)
    elif args.recipe == "pairs":
        out = r.pairs_from_columns(rows, prompt=args.prompt, chosen=args.chosen, rejected=args.rejected)
    else:
        out = _reject(rows, args)
    path = r.write_jsonl(out, args.out, source=source.path)
    print(f"wrote {len(out)} rows to {path}")
    return 0


def _reject(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from rich.progress import Progress

    from spark_tui.core.base.lazy import warm_imports
    from spark_tui.core.data import recipes as r
    from spark_tui.core.data.tokenizer import load_tokenizer
    from spark_tui.core.model.resolve import quiet_transformers, resolve_model_path

    warm_imports()
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(args.model)
    with quiet_transformers():
        model = AutoModelForCausalLM.from_pretrained(resolve_model_path(args.model))
    with Progress(transient=True) as prog:
        task = prog.add_task("sampling rejected answers", total=len(rows))

        def progress(_stage: str, done: float, total: float | None) -> None:
            prog.update(task, completed=done, total=total or len(rows))

        return r.generate_rejected(rows, model, tok, progress=progress,
                                   max_new_tokens=args.max_new_tokens)
