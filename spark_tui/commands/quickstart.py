"""`spark-tui quickstart`: the wizard's essential questions as plain prompts (questionary).

For terminals where a full-screen app is unwelcome.  It asks model, data,
method preset and steps, writes the same `run.toml` the wizard writes, starts
the same detached training process and prints progress with Rich.  Ctrl-C
before the run starts changes nothing.
"""

from __future__ import annotations

import argparse
from typing import Any

from spark_tui.commands.args import add_command, add_detach
from spark_tui.core.base.errors import SparkError
from spark_tui.core.method.choices import METHOD_TITLES
from spark_tui.core.method.presets import PRESET_TITLES


class Cancelled(Exception):
    """The user pressed Ctrl-C (or Esc) at a prompt."""


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "quickstart",
        handle,
        help="answer a few questions in plain prompts, then train (no full-screen app)",
        description="Ask the essential questions (model, data, method, steps) with plain "
        "prompts, write run.toml and start training.",
    )
    add_detach(p)
    p.add_argument("--yes", action="store_true", help="take every default without asking")


def _ask(question: Any) -> Any:
    answer = question.ask()  # questionary returns None on Ctrl-C
    if answer is None:
        raise Cancelled
    return answer


MODEL_CHOICES = [
    ("default", "Bundled default: SmolLM2-135M-Instruct (offline, trains on a CPU)"),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "TinyLlama 1.1B Chat (quick GPU test)"),
    ("meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1 8B Instruct (gated)"),
    ("meta-llama/Llama-3.1-70B-Instruct", "Llama 3.1 70B Instruct (gated; QLoRA on a Spark)"),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen2.5 7B Instruct"),
]
DATA_CHOICES = [
    ("default:sft", "Bundled Sparky instructions (SFT)"),
    ("default:dpo", "Bundled preference pairs (DPO)"),
    ("default:kto", "Bundled thumbs up/down (KTO)"),
]
# The methods asked about, the first being the default (rsLoRA stays a `train --method` choice).
_METHOD_PICKS = [(m, METHOD_TITLES[m]) for m in ("lora", "qlora", "dora", "full")]
PRESET_CHOICES = list(PRESET_TITLES.items())


def ask_config(defaults_only: bool = False):
    """Ask the questions; returns a RunConfig (raises Cancelled on Ctrl-C)."""
    import questionary

    from spark_tui.config import RunConfig
    from spark_tui.core.method.choices import apply_method, check_combination
    from spark_tui.core.method.presets import apply_preset

    def choose(message: str, choices: list[tuple[str, str]]) -> str:
        if defaults_only:
            return choices[0][0]
        return _ask(
            questionary.select(
                message, choices=[questionary.Choice(title, value=v) for v, title in choices]
            )
        )

    model = choose("Which model?", [*MODEL_CHOICES, ("other", "Another Hub id or a local folder…")])
    if model == "other":
        model = _ask(questionary.text("Hub id (org/name) or folder path:")).strip() or "default"
    data = choose("Which data?", [*DATA_CHOICES, ("file", "A file of my own…")])
    objective = "sft"
    if data.startswith("default:"):
        objective = data.split(":", 1)[1]
        data = "default"
    else:
        data = _ask(questionary.path("Path to a .jsonl/.json/.csv/.parquet/.txt file:")).strip()
        objective = _objective_for(data)
    method = choose("How to adapt the model?", _METHOD_PICKS)
    preset = choose("Which preset?", PRESET_CHOICES)
    cfg = RunConfig()
    cfg.model.id = model
    cfg.data.path = data
    cfg.method.objective = objective  # type: ignore[assignment]
    apply_method(cfg, method)
    cfg = apply_preset(cfg, preset)
    default_steps = str(cfg.train.max_steps if cfg.train.max_steps > 0 else -1)
    steps = default_steps if defaults_only else _ask(
        questionary.text("Max steps (-1 = train for the preset's epochs):", default=default_steps,
                         validate=lambda s: s.strip().lstrip("-").isdigit() and s.strip() != "0")
    )
    cfg = cfg.with_value("train.max_steps", int(steps))
    check_combination(cfg)
    return cfg


def _objective_for(path: str) -> str:
    """The objective a user's file suggests (pairs -> DPO, labels -> KTO, else SFT)."""
    from spark_tui.core import data as data_core
    from spark_tui.core.data.fit import default_objective

    source = data_core.load_source(path)
    return default_objective(data_core.detect_format(source.rows).format)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spark_tui.commands.train import _ensure_model, follow
    from spark_tui.core.train import process
    from spark_tui.core.train.runs import create_run

    console = Console()
    try:
        cfg = ask_config(defaults_only=args.yes)
    except (Cancelled, KeyboardInterrupt):
        console.print("Cancelled: no changes were made.")
        return 130
    except SparkError:
        raise
    _ensure_model(cfg, console)
    run = create_run(cfg)
    console.print(f"Wrote [bold]{run.config_path}[/]; rerun it any time with "
                  f"`spark-tui train {run.config_path}`")
    process.start_training(run)
    if args.detach:
        console.print(f"Training in the background: `spark-tui attach {run.id}`")
        return 0
    return follow(run, console)
