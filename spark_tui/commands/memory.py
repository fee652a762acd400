"""`spark-tui memory`: the Memory step, headless — estimate, verdict and suggestions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from spark_tui.commands.args import add_command, add_json
from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory.breakdown import GB
from spark_tui.core.memory.estimator import estimate_config
from spark_tui.core.memory.fit import Verdict, verdict
from spark_tui.core.memory.report import report_lines
from spark_tui.core.memory.settings import METHODS, OBJECTIVES, OPTIMIZERS, settings_for_method
from spark_tui.core.model import hardware


def register(subparsers: Any) -> None:
    p = add_command(
        subparsers,
        "memory",
        cmd_memory,
        help="estimate a run's peak memory and whether it fits this machine",
        description="Estimate the peak memory of a fine-tuning run before loading anything, "
        "compare it with what this machine has, and suggest changes when it does not fit. "
        "Flags override the values of --config.",
    )
    p.add_argument("--config", help="a run.toml to start from (flags override it)")
    p.add_argument("--model", help="'default', a catalogue id, Hub id or local folder")
    p.add_argument("--method", choices=METHODS, help="full, lora, qlora, dora, rslora")
    p.add_argument("--objective", choices=OBJECTIVES)
    p.add_argument("--max-length", type=int, dest="max_length")
    p.add_argument("--batch", type=int, help="micro-batch size per step")
    p.add_argument("--grad-accum", type=int, dest="grad_accum")
    p.add_argument("--rank", type=int, help="LoRA rank r")
    p.add_argument("--targets", help="LoRA target modules: attention, all-linear or a comma list")
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--reference", choices=["auto", "adapter_disabled", "copy", "precompute"])
    p.add_argument(
        "--gradient-checkpointing",
        dest="checkpointing",
        choices=["auto", "on", "off"],
        help="auto (the default): off when the run fits without it on this machine",
    )
    p.add_argument(
        "--no-gradient-checkpointing",
        dest="checkpointing",
        action="store_const",
        const="off",
        help="estimate without gradient checkpointing (= --gradient-checkpointing off)",
    )
    p.add_argument(
        "--target",
        choices=["gpu", "unified", "cpu"],
        help="what to estimate for (default: this machine, from the probe)",
    )
    p.add_argument(
        "--budget-gb",
        type=float,
        dest="budget_gb",
        help="check against this many GB instead of this machine's memory",
    )
    p.add_argument(
        "--processes", type=int, default=1,
        help="processes in the whole run (one per GPU): the estimate per process",
    )  # fmt: skip
    p.add_argument("--machines", type=int, default=1, help="machines the processes are on")
    p.add_argument(
        "--strategy", choices=["fsdp", "ddp"], default="fsdp",
        help="with --processes: FSDP shards weights, gradients, optimizer (default); DDP copies",
    )  # fmt: skip
    add_json(p, "machine-readable output")


def build_config(args: argparse.Namespace):
    """The RunConfig described by --config plus the flags."""
    from spark_tui.config import RunConfig

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if not args.config:
        # The command's own defaults: SFT with LoRA, 2048 tokens, batch 1.
        cfg = cfg.with_value("data.max_length", 2048).with_value("train.micro_batch_size", 1)
    changes: dict[str, Any] = {}
    if args.model:
        changes["model.id"] = args.model
    if args.method:
        s = settings_for_method(args.method)
        changes["method.adapter"] = s.adapter
        changes["method.use_dora"] = s.use_dora
        changes["method.use_rslora"] = s.use_rslora
    simple = {
        "objective": "method.objective",
        "max_length": "data.max_length",
        "batch": "train.micro_batch_size",
        "grad_accum": "train.grad_accum",
        "rank": "lora.r",
        "targets": "lora.target_modules",
        "optimizer": "train.optimizer",
        "precision": "train.precision",
        "reference": "preference.reference",
        "checkpointing": "train.gradient_checkpointing",
    }
    for attr, key in simple.items():
        value = getattr(args, attr, None)
        if value is not None:
            changes[key] = value
    for key, value in changes.items():
        cfg = cfg.with_value(key, value)
    return cfg


def run_estimate(
    args: argparse.Namespace,
) -> tuple[Any, Verdict, hardware.HardwareProbe | None]:
    from spark_tui.core.model import sources as model_sources

    cfg = build_config(args)
    probe = None if args.budget_gb else hardware.probe(with_processes=False)
    target = args.target or (probe.target if probe else "gpu")
    arch, where = model_sources.hub_architecture(cfg.model.id)
    if arch is None:
        raise SparkError(
            f"no architecture for {cfg.model.id!r}: {where or 'unknown model'}. "
            "Pick a catalogue model (`spark-tui model list`) or a local folder."
        )
    if args.budget_gb:
        from spark_tui.core.model.hardware import Budget

        b = int(args.budget_gb * GB)
        budget: Any = Budget(b, f"--budget-gb {args.budget_gb:g}", target, b, 0)
    else:
        budget = probe
    est = estimate_config(cfg, arch=arch, target=target, hardware=budget)
    if where:
        est.notes.insert(0, f"Architecture: {where}.")
    return cfg, verdict(est, budget), probe


def _distributed(args: argparse.Namespace, v: Verdict) -> tuple[list[str], dict[str, Any]]:
    """Per-process peak and the verdict per machine (core/memory/distributed)."""
    from spark_tui.core.memory.distributed import machine_verdict

    try:
        pp, status, headroom, line = machine_verdict(
            v, args.strategy, args.processes, args.machines
        )
    except ValueError as exc:
        raise SparkError(f"--processes/--machines: {exc}") from exc
    lines = [pp.summary(), line, ""]
    lines += [f"  {label:<18}{value}" for label, value in pp.estimate.rows()]
    lines += [f"  • {n}" for n in pp.estimate.notes[-1:]]
    out = {"strategy": pp.strategy, "processes": pp.processes, "machines": pp.machines,
           "per_process": pp.estimate.to_dict(), "per_machine_bytes": pp.per_machine,
           "status": status, "headroom": round(headroom, 4)}  # fmt: skip
    return lines, out


def cmd_memory(args: argparse.Namespace) -> int:
    _cfg, v, probe = run_estimate(args)
    spread = (args.processes or 1) > 1 or (args.machines or 1) > 1
    dist_lines, dist = _distributed(args, v) if spread else ([], {})
    if args.json:
        out = v.estimate.to_dict()
        out["verdict"] = v.to_dict()
        out["total_peak_gb"] = out["total_gb"]
        if probe is not None:
            out["hardware"] = {
                "target": probe.target,
                "mem_total_gb": round(probe.mem_total / GB, 2),
                "mem_available_gb": round(probe.mem_available / GB, 2),
                "page_cache_gb": round(probe.reclaimable_cache / GB, 2),
                "gpus": [g.name for g in probe.gpus],
                "nvml": probe.nvml_status,
            }
        if dist:
            out["distributed"] = dist
        print(json.dumps(out, indent=2))
        return 0
    if dist_lines:
        print("\n".join([*dist_lines, "", "In one process:"]))
    print("\n".join(report_lines(v)))
    return 0
