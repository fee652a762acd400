"""Command-line entry point: `spark-tui` opens the wizard; subcommands run headless.

Subcommands live in `spark_tui.commands.*`; each calls the same core functions
the TUI uses, so anything done in the wizard can be rerun from a script.
"""

from __future__ import annotations

import argparse
import sys

from spark_tui import __version__
from spark_tui.core.base.errors import SparkError


def build_parser() -> argparse.ArgumentParser:
    from spark_tui.commands import load_all

    parser = argparse.ArgumentParser(
        prog="spark-tui",
        description="Fine-tune an LLM from the terminal and deploy it to Ollama. "
        "With no command, opens the wizard.",
    )
    parser.add_argument("--version", action="version", version=f"spark-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in load_all():
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if not args_in:
        # The wizard: open it without importing the subcommands (first paint comes sooner).
        from spark_tui.app import run_app

        return run_app()
    parser = build_parser()
    args = parser.parse_args(args_in)
    if not getattr(args, "command", None):
        from spark_tui.app import run_app

        return run_app()
    try:
        code = int(args.func(args) or 0)
        if code == 0 and getattr(args, "open_run", None):  # `spark-tui open RUN`
            from spark_tui.app import run_app

            return run_app(open_run=args.open_run)
        return code
    except SparkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
