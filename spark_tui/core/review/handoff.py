"""Hand a run over to other tools: an equivalent LLaMA-Factory YAML and Axolotl YAML.

People outgrow one box: the same run should be one command away on a cluster
with LLaMA-Factory (`llamafactory-cli train llamafactory.yaml`) or Axolotl
(`axolotl train axolotl.yaml`).  "Equivalent" means what each tool's own parser
and dataset loader make of the file (LLaMA-Factory 0.9.5, Axolotl 0.19, checked
by `scripts/check_handoff.py`): the precision the run trained in, the prepared
train/validation split as it is (never merged and re-split), the chat template
with its built-in system prompt, SimPO's absolute γ, the warmup as steps.
Settings a tool has no counterpart for, and places where a tool would train
differently, are listed in a comment at the top of its file.

Beyond run.toml, three facts decide what the run trains with (`RunFacts`): the
precision its hardware resolved "auto" to, the chat template its tokenizer
renders, and the number of prepared rows (the warmup in steps).
`write_run_handoff` reads them from the run folder; unknown ones are said so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spark_tui.config import RunConfig
from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.review.handoff_axolotl import axolotl_config
from spark_tui.core.review.handoff_facts import RunFacts, run_facts, system_prompt_for
from spark_tui.core.review.handoff_llamafactory import (
    DATASET_NAME,
    EVAL_DATASET_NAME,
    llamafactory_config,
    llamafactory_dataset_info,
)
from spark_tui.core.review.handoff_rows import axolotl_rows, llamafactory_rows

__all__ = [
    "DATASET_NAME",
    "EVAL_DATASET_NAME",
    "HandoffFiles",
    "RunFacts",
    "axolotl_config",
    "handoff_rows",
    "llamafactory_config",
    "llamafactory_dataset_info",
    "write_handoff",
    "write_run_handoff",
]


@dataclass
class HandoffFiles:
    llamafactory_yaml: Path
    llamafactory_dataset_info: Path
    axolotl_yaml: Path
    data_file: Path | None  # LLaMA-Factory's training rows (None: no prepared data yet)
    eval_file: Path | None = None
    axolotl_data_file: Path | None = None
    axolotl_eval_file: Path | None = None
    notes: dict[str, list[str]] = field(default_factory=dict)  # per tool, as in the headers


def _dump_yaml(data: dict[str, Any], tool: str, command: str, notes: list[str]) -> str:
    header = (
        f"# {tool} config written by spark-tui, equivalent to this run's run.toml.\n"
        f"# Run it with: {command}\n"
    )
    for note in notes:
        header += f"# NOTE: {note}\n"
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def write_handoff(
    cfg: RunConfig,
    out_dir: Path,
    rows: list[dict[str, Any]] | None = None,
    *,
    eval_rows: list[dict[str, Any]] | None = None,
    tokenizer: Any = None,
    precision: str | None = None,
) -> HandoffFiles:
    """Write llamafactory.yaml, dataset_info.json, axolotl.yaml and (with rows) the data files.

    `rows`/`eval_rows` are the prepared train/validation rows; `tokenizer` carries the
    chat template the run renders with; `precision` is what "auto" resolved to.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    facts = run_facts(cfg, rows, eval_rows, tokenizer, precision)
    system = system_prompt_for(cfg, facts)
    names = {"lf": "data.jsonl", "lf_eval": "eval.jsonl"}
    names.update(ax="axolotl_data.jsonl", ax_eval="axolotl_eval.jsonl")
    lf_notes: list[str] = []
    ax_notes: list[str] = []
    files: dict[str, Path | None] = dict.fromkeys(names)
    if rows is not None:
        files["lf"] = _write_jsonl(out_dir / names["lf"], llamafactory_rows(cfg, rows, system))
        files["ax"] = _write_jsonl(out_dir / names["ax"], axolotl_rows(cfg, rows, system, ax_notes))
    if eval_rows:
        files["lf_eval"] = _write_jsonl(
            out_dir / names["lf_eval"], llamafactory_rows(cfg, eval_rows, system)
        )
        files["ax_eval"] = _write_jsonl(
            out_dir / names["ax_eval"], axolotl_rows(cfg, eval_rows, system, [])
        )
    lf = out_dir / "llamafactory.yaml"
    info = out_dir / "dataset_info.json"
    ax = out_dir / "axolotl.yaml"
    lf_cfg = llamafactory_config(cfg, data_dir=str(out_dir), facts=facts, notes=lf_notes)
    ax_cfg = axolotl_config(
        cfg,
        str(out_dir / names["ax"]),
        facts=facts,
        notes=ax_notes,
        eval_file=str(out_dir / names["ax_eval"]),
    )
    atomic_write_text(
        lf, _dump_yaml(lf_cfg, "LLaMA-Factory", f"llamafactory-cli train {lf}", lf_notes)
    )
    dataset_info = llamafactory_dataset_info(
        cfg,
        names["lf"],
        names["lf_eval"] if facts.eval_rows else None,
        text=facts.text,
    )
    atomic_write_text(info, json.dumps(dataset_info, indent=2) + "\n")
    atomic_write_text(ax, _dump_yaml(ax_cfg, "Axolotl", f"axolotl train {ax}", ax_notes))
    return HandoffFiles(
        lf,
        info,
        ax,
        files["lf"],
        files["lf_eval"],
        files["ax"],
        files["ax_eval"],
        {"llamafactory": lf_notes, "axolotl": ax_notes},
    )


def handoff_rows(cfg: RunConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prepared (TRL-layout) rows as LLaMA-Factory reads them (no template facts applied)."""
    return llamafactory_rows(cfg, rows)


def _run_tokenizer(cfg: RunConfig) -> Any:
    """The run's tokenizer with the chat template it trains with, or None when not on disk."""
    try:
        from transformers import AutoTokenizer

        from spark_tui.core.data.templates import (
            apply_template_to_tokenizer,
            resolve_chat_template,
        )
        from spark_tui.core.model.resolve import resolve_local_model

        path = resolve_local_model(cfg.model.id, revision=cfg.model.revision or None)
        tok = AutoTokenizer.from_pretrained(
            str(path), trust_remote_code=bool(cfg.model.trust_remote_code)
        )
        apply_template_to_tokenizer(tok, resolve_chat_template(tok, cfg.model.chat_template))
        return tok
    except Exception:  # noqa: BLE001 - not downloaded here: the header says what is unknown
        return None


def write_run_handoff(run_path: Path) -> HandoffFiles:
    """Hand-off files for a run folder: its prepared splits, tokenizer and resolved precision."""
    from spark_tui.core.train.runs import Run

    run = Run(Path(run_path))
    cfg = run.config()
    rows = eval_rows = None
    if (run.data_dir / "dataset_dict.json").exists():
        from spark_tui.core.data.output import read_prepared

        data = read_prepared(run.data_dir)
        rows = data["train"].to_list()
        eval_rows = data["validation"].to_list() if "validation" in data else []
    precision = run.status().get("precision")
    return write_handoff(
        cfg,
        run.path / "handoff",
        rows,
        eval_rows=eval_rows,
        tokenizer=_run_tokenizer(cfg),
        precision=precision if isinstance(precision, str) else None,
    )
