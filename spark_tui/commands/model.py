"""`spark-tui model list` and `spark-tui model info ID`: the Model step, headless."""

from __future__ import annotations

import argparse
import json
from typing import Any

from spark_tui.commands.args import add_command, add_json
from spark_tui.core.base.errors import SparkError
from spark_tui.core.model import catalog
from spark_tui.core.model import sources as model_sources
from spark_tui.core.model.hf_cache import list_cached_models


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "model",
        help="list the model catalogue or show one model's card",
        description="Models: the bundled default, the curated catalogue, the Hugging Face "
        "cache, local folders and Hub ids.",
    )
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    sub.required = True

    pl = add_command(
        sub, "list", cmd_list, "the catalogue and the models in the Hugging Face cache"
    )
    pl.add_argument("--search", default="", help="only entries matching these words")
    add_json(pl, "machine-readable output")

    pi = add_command(
        sub, "info", cmd_info, "one model's card: size, architecture, licence, local or not"
    )
    pi.add_argument("id", help="'default', a catalogue id or alias, a Hub id, or a local folder")
    pi.add_argument(
        "--offline", action="store_true", help="never ask the Hub (use the catalogue / cache)"
    )
    add_json(pi, "machine-readable output")


def _list_rows(search: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    entries = catalog.search(search) if search else list(catalog.all_entries())
    cached = {c.repo_id.lower(): c for c in list_cached_models()}
    rows = []
    for e in entries:
        c = cached.get(e.hub_id.lower())
        d = e.to_dict()
        if e.id == "default":
            from spark_tui.core.model import resolve as models

            d["local"] = models.default_model_ready()
        else:
            d["local"] = bool(c and c.has_weights)
        d["context"] = e.arch.max_context
        rows.append(d)
    known = {e.hub_id.lower() for e in catalog.all_entries()}
    extra = [
        c.to_dict()
        for key, c in sorted(cached.items())
        if key not in known and (not search or search.lower() in key)
    ]
    return rows, extra


def cmd_list(args: argparse.Namespace) -> int:
    rows, extra = _list_rows(args.search)
    if args.json:
        print(json.dumps({"catalogue": rows, "cached": extra}, indent=2))
        return 0
    print(f"{'ID':42s} {'SIZE':>6s} {'CONTEXT':>8s} {'GATED':5s} {'LOCAL':5s} LICENCE")
    for r in rows:
        print(
            f"{r['id']:42s} {r['size']:>6s} {r['context']:>8,d} "
            f"{'yes' if r['gated'] else 'no':5s} {'yes' if r['local'] else 'no':5s} "
            f"{r['license']}"
        )
    if extra:
        print("\nAlso in the Hugging Face cache:")
        for c in extra:
            state = "weights" if c["has_weights"] else "config only"
            print(f"  {c['repo_id']:40s} {c['size_bytes'] / 1e9:6.1f} GB  {state}")
    return 0


def card_lines(info: model_sources.ModelInfo) -> list[str]:
    """The model card as text lines (the Model screen shows the same fields)."""
    a = info.arch
    lines = [f"{info.name}  [{info.source}]", f"  id:            {info.id}"]
    if info.hub_id and info.hub_id != info.id:
        lines.append(f"  Hub id:        {info.hub_id}")
    lines.append(
        f"  parameters:    {info.size_label()}" + (f" ({info.params:,})" if info.params else "")
    )
    if a is not None:
        lines.append(
            f"  architecture:  {a.model_type}, {a.num_layers} layers, hidden {a.hidden_size}, "
            f"MLP {a.intermediate_size}, {a.num_heads} heads / {a.num_kv_heads} KV heads "
            f"(head dim {a.dim_head}), vocab {a.vocab_size:,}"
            + (", tied embeddings" if a.tie_embeddings else "")
        )
        lines.append(f"  context:       {a.max_context:,} tokens")
    else:
        lines.append("  architecture:  unknown")
    lines.append(f"  licence:       {info.license or 'unknown (see the model page)'}")
    gated = "unknown" if info.gated is None else ("yes" if info.gated else "no")
    lines.append(f"  gated:         {gated}")
    lines.append(f"  chat template: {info.chat_template or 'none found'}")
    where = info.local_path if info.present_locally else "no"
    lines.append(f"  local:         {where}")
    if info.size_on_disk:
        lines.append(f"  on disk:       {info.size_on_disk / 1e9:.1f} GB")
    for m in info.messages:
        lines.append(f"  - {m}")
    for w in info.warnings:
        lines.append(f"  ! {w}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    info = model_sources.resolve(args.id, online=False if args.offline else None)
    if info.source == "local" and info.folder is not None and not info.folder.has_config:
        raise SparkError("; ".join(info.folder.problems))
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    print("\n".join(card_lines(info)))
    return 0
