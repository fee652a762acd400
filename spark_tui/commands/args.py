"""Arguments several subcommands share, declared once so they read and behave the same.

A subcommand and its handler, the RUN argument, --json, --detach, --device and
repeatable flags.  Only argparse: every command module imports this when
`spark-tui` starts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], int]

RUN_HELP = "run id or folder"


def add_command(
    subparsers: Any, name: str, func: Handler, help: str, description: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand (or sub-action) whose handler is `func`."""
    p = subparsers.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def add_run(
    p: argparse.ArgumentParser,
    help: str = RUN_HELP,
    *,
    metavar: str | None = "RUN",
    nargs: str | None = None,
) -> None:
    """The positional RUN: a run id (or a unique part of it) or a run folder."""
    p.add_argument("run", nargs=nargs, metavar=metavar, help=help)


def add_json(p: argparse.ArgumentParser, help: str = "print the result as JSON") -> None:
    p.add_argument("--json", action="store_true", help=help)


def add_detach(p: argparse.ArgumentParser, help: str = "start the run and return at once") -> None:
    p.add_argument("--detach", action="store_true", help=help)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cuda, cpu or mps")


def add_repeatable(p: argparse.ArgumentParser, flag: str, metavar: str, help: str) -> None:
    """A flag that may be given several times; its values arrive as a list (empty if none)."""
    p.add_argument(flag, action="append", default=[], metavar=metavar, help=help)
