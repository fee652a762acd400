"""`spark-tui handoff RUN`: write LLaMA-Factory and Axolotl configs equivalent to a run."""

from __future__ import annotations

import argparse
from typing import Any

from spark_tui.commands.args import add_command, add_run


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "handoff",
        handle,
        "export a run as LLaMA-Factory and Axolotl YAML (for bigger clusters)",
    )
    add_run(p, metavar=None)


def handle(args: argparse.Namespace) -> int:
    from spark_tui.core.review.handoff import write_run_handoff
    from spark_tui.core.train.runs import resolve_run

    files = write_run_handoff(resolve_run(args.run).path)
    print(f"LLaMA-Factory: {files.llamafactory_yaml} (+ {files.llamafactory_dataset_info.name})")
    print(f"Axolotl:       {files.axolotl_yaml}")
    if files.data_file:
        data = [f for f in (files.data_file, files.eval_file) if f]
        ax = [f for f in (files.axolotl_data_file, files.axolotl_eval_file) if f]
        print(f"Data:          {', '.join(str(f) for f in data)}")
        if ax:
            print(f"Axolotl data:  {', '.join(str(f) for f in ax)}")
        for tool, notes in files.notes.items():
            for note in notes:
                print(f"note ({tool}): {note}")
    else:
        print("Data:          not prepared yet (train the run first, or point the YAML at your file)")
    return 0
