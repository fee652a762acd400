"""The Evaluate step from the command line: `eval`, `chat`, `compare`, `sweep`.

    spark-tui eval RUN [--json] [--max-prompts N] [--max-new-tokens N]
    spark-tui chat RUN [--base] [--system S] [--temperature T]
    spark-tui compare RUN RUN... [--markdown|--csv] [--out FILE]
    spark-tui sweep RUN.toml --param lora.r --values 4,8,16 [--max-steps N]

RUN is a run id (or a unique part of it) or a run folder.  Each command calls
the same `spark_tui.core` functions the TUI uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from spark_tui.commands.args import add_command, add_device, add_json, add_run
from spark_tui.core.base.errors import SparkError


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "eval",
        handle_eval,
        help="evaluate a run on its held-out split (tuned vs base)",
        description="Loss, perplexity, ROUGE and BLEU (and reward accuracy for preference runs) "
        "on the run's validation split, base and tuned side by side; saved to eval.json.",
    )
    add_run(p)
    add_json(p, "print eval.json instead of tables")
    p.add_argument(
        "--max-prompts", type=int, default=8, help="held-out prompts to answer (default 8)"
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=96, help="answer length bound (default 96)"
    )
    p.add_argument(
        "--max-rows", type=int, default=200, help="validation rows for the loss (0 = all)"
    )
    p.add_argument("--no-base", action="store_true", help="score the tuned model only")
    p.add_argument(
        "--base-only",
        action="store_true",
        help="score the base model only (no trained weights needed)",
    )
    add_device(p)

    p = add_command(
        subparsers,
        "chat",
        handle_chat,
        help="chat with a run's model (tuned, base, merged or GGUF)",
        description="A simple chat REPL on stdin. Commands: /exit, /reset, /base, /tuned. "
        "EOF (Ctrl-D) also exits.",
    )
    add_run(p, "run id or folder, or 'default' for the default model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--base", action="store_true", help="the base model (adapter off)")
    src.add_argument("--merged", action="store_true", help="the exported merged/ folder")
    src.add_argument("--gguf", nargs="?", const="", metavar="FILE", help="an exported GGUF file")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default 0.7)")
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--max-new-tokens", type=int, default=256)
    add_device(p)

    p = add_command(
        subparsers,
        "compare",
        handle_compare,
        help="compare runs: differing settings, speed, memory, losses, scores",
        description="One row per run: the settings that differ, duration, tokens/s, "
        "peak memory, final losses and evaluation scores.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run ids or folders")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print Markdown (default)")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--json", action="store_true", help="print JSON (with the loss curves)")
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of printing")

    p = add_command(
        subparsers,
        "sweep",
        handle_sweep,
        help="train one run per value of a setting, then compare them",
        description="Creates one run per value from RUN.toml (with the setting changed), "
        "trains them one after another, and prints the comparison.",
    )
    p.add_argument("config", metavar="RUN.toml", help="the base run config")
    p.add_argument(
        "--param", required=True, help="dotted setting, e.g. lora.r or train.learning_rate"
    )
    p.add_argument("--values", required=True, help="comma-separated values, e.g. 4,8,16")
    p.add_argument("--max-steps", type=int, default=None, help="train.max_steps for every run")
    p.add_argument("--metric", default="final_eval_loss", help="metric for the value table")
    p.add_argument("--dry-run", action="store_true", help="print the plan; create nothing")
    p.add_argument(
        "--inprocess", action="store_true", help="train in this process (no detached trainer)"
    )


# --------------------------------------------------------------------------- eval


def _progress_printer():
    if not sys.stderr.isatty():
        return None

    def show(frac: float, msg: str) -> None:
        sys.stderr.write(f"\r\033[K{frac * 100:5.1f}%  {msg[:70]}")
        sys.stderr.flush()

    return show


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def handle_eval(args: argparse.Namespace) -> int:
    from spark_tui.core.evaluate.run import EvalOptions, evaluate_run
    from spark_tui.core.train.runs import resolve_run

    run = resolve_run(args.run)
    opts = EvalOptions(
        max_prompts=max(0, args.max_prompts),
        max_new_tokens=max(1, args.max_new_tokens),
        max_rows=max(0, args.max_rows),
        compare_base=not args.no_base,
        base_only=args.base_only,
        device=args.device,
    )
    show = _progress_printer()
    try:
        result = evaluate_run(run, opts, progress=show)
    finally:
        if show is not None:
            sys.stderr.write("\r\033[K")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print_eval(result, run.path / "eval.json")
    return 0


def print_eval(result: dict[str, Any], path: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    sides = [s for s in ("base", "tuned") if s in result]
    rows = [
        ("loss", "loss", 4),
        ("perplexity", "perplexity", 2),
        ("ROUGE-1", "rouge1", 3),
        ("ROUGE-2", "rouge2", 3),
        ("ROUGE-L", "rougeL", 3),
        ("BLEU", "bleu", 2),
        ("log-prob accuracy", "logp_accuracy", 3),
    ]
    table = Table(
        title=f"{result.get('run_id')} · {result.get('split')} split", header_style="bold"
    )
    table.add_column("metric")
    for s in sides:
        table.add_column(s, justify="right")
    for label, key, digits in rows:
        if any(key in result[s] for s in sides):
            table.add_row(label, *(_num(result[s].get(key), digits) for s in sides))
    console.print(table)
    console.print(f"loss on {result.get('loss_on')}; ROUGE F1 0..1, BLEU 0..100 (sacrebleu)")
    pref = result.get("preference")
    if pref:
        n = pref.get("pairs", pref.get("examples"))
        console.print(
            f"reward accuracy {_num(pref.get('accuracy'))}, margin {_num(pref.get('margin'), 4)} "
            f"over {n} validation {'pairs' if 'pairs' in pref else 'examples'} — {pref.get('reward')}"
        )
    samples = result.get("samples") or []
    if samples:
        st = Table(title="held-out prompts", show_lines=True, header_style="bold")
        st.add_column("prompt / reference", ratio=1)
        for s in sides:
            st.add_column(f"{s} (ROUGE-L)", ratio=1)
        for smp in samples:
            cells = []
            for s in sides:
                sc = smp.get(f"{s}_scores") or {}
                cells.append(f"{smp.get(s, '')}\n[dim]ROUGE-L {_num(sc.get('rougeL'))}[/]")
            st.add_row(f"{smp['prompt']}\n[dim]{smp['reference']}[/]", *cells)
        console.print(st)
    if path is not None:
        console.print(f"saved to {path}")


# --------------------------------------------------------------------------- chat


def handle_chat(args: argparse.Namespace) -> int:
    from spark_tui.core.evaluate.chat import open_chat, open_model_chat
    from spark_tui.core.evaluate.chat_session import ChatSettings

    settings = ChatSettings(
        system_prompt=args.system,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
    )
    if args.run == "default":
        session = open_model_chat("default", settings=settings, device=args.device)
    else:
        source = "base" if args.base else "merged" if args.merged else "tuned"
        if args.gguf is not None:
            source = "gguf"
        session = open_chat(
            args.run,
            source=source,
            settings=settings,
            gguf_file=args.gguf or None,
            device=args.device,
        )
    interactive = sys.stdin.isatty()
    out = sys.stdout
    with session:
        if interactive:
            out.write(
                f"chatting with {session.source}; /exit or Ctrl-D to quit, /reset to start over\n"
            )
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            line = sys.stdin.readline()
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/reset":
                session.reset()
                out.write("(conversation cleared)\n")
                continue
            if text in ("/base", "/tuned"):
                try:
                    session.set_source(text[1:])
                    out.write(f"(now chatting with {text[1:]})\n")
                except SparkError as exc:
                    out.write(f"({exc})\n")
                continue
            if interactive:
                out.write(f"{session.source}> ")
            try:
                for chunk in session.send(text):
                    out.write(chunk)
                    out.flush()
            except KeyboardInterrupt:
                session.stop()
            out.write("\n")
            out.flush()
    return 0


# --------------------------------------------------------------------------- compare


def handle_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spark_tui.core.base.atomic import atomic_write_text
    from spark_tui.core.evaluate.compare import compare_runs

    cmp = compare_runs(args.runs)
    if args.json:
        text = json.dumps(cmp.to_dict(), indent=2, default=str) + "\n"
    elif args.csv or (args.out and not args.markdown and args.out.lower().endswith(".csv")):
        text = cmp.to_csv()
    else:
        text = cmp.to_markdown()
    if args.out:
        atomic_write_text(Path(args.out), text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- sweep


def handle_sweep(args: argparse.Namespace) -> int:
    from spark_tui.config import RunConfig
    from spark_tui.core.evaluate.sweep import create_sweep, plan_sweep, run_sweep

    base = RunConfig.load(args.config)
    configs = plan_sweep(base, args.param, args.values, max_steps=args.max_steps)
    if args.dry_run:
        for cfg in configs:
            print(f"{cfg.name}: {args.param} = {cfg.get(args.param)!r}")
        return 0
    sweep = create_sweep(base, args.param, args.values, max_steps=args.max_steps)
    print(
        f"sweep {sweep.id}: {len(sweep.runs)} runs ({args.param} = {', '.join(map(str, sweep.values))})"
    )
    print(f"manifest: {sweep.manifest_path}")
    show = _progress_printer()
    try:
        run_sweep(sweep, mode="inprocess" if args.inprocess else "auto", progress=show)
    finally:
        if show is not None:
            sys.stderr.write("\r\033[K")
    for r in sweep.runs:
        print(f"  {r.run_id}: {r.state}")
    if len(sweep.runs) >= 2:
        print()
        sys.stdout.write(sweep.compare().to_markdown())
    print()
    print(f"{args.param} -> {args.metric}")
    for value, metric in sweep.points(args.metric):
        print(f"  {value!r}: {_num(metric, 4)}")
    failed = [r for r in sweep.runs if r.state not in ("finished",)]
    return 1 if failed else 0
