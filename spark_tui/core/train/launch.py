"""A run on several processes or machines: its `accelerate.yaml`, the command each machine
runs, and why a launched run ended when one of its ranks died.

A run whose `[distributed]` strategy is ddp or fsdp is started by `process.start_training`
through `accelerate launch` (torch's elastic launcher under it) instead of one trainer
process; every rank runs `entry.py` and rank 0 writes the run folder (`ranks.py`).  The
other machines run the same run folder, at the same path (a shared filesystem or a copy of
the folder: before training it holds only run.toml and accelerate.yaml), with their own
machine rank: `spark-tui launch RUN --machine-rank N`.

No torch here: the TUI and the CLI call it before anything heavy is imported.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train.accelerate_config import (
    CONFIG_FILE,
    LaunchPlan,
    accelerate_config,
    decoder_layer_classes,
    launch_command,
    write_config,
)
from spark_tui.core.train.runs import Run

# How this process starts accelerate's launcher: its module, by the same interpreter (an
# `accelerate` on PATH may belong to another environment).
LAUNCHER = (sys.executable, "-m", "accelerate.commands.accelerate_cli")


# accelerate turns FSDP on only for GPU-type devices (AcceleratorState: MULTI_GPU, …); on
# CPUs the same config would silently train as DDP, so it is refused instead.
FSDP_NEEDS_GPUS = (
    "FSDP needs GPUs: accelerate runs FSDP only over GPUs (NCCL); on CPUs the run would "
    "train as DDP with the whole model in every process. Choose DDP for a CPU machine"
)


def is_distributed(cfg: RunConfig) -> bool:
    d = cfg.distributed
    return d.strategy != "none" and d.processes_per_machine * d.machines > 1


def plan_for(cfg: RunConfig, *, cpu: bool | None = None) -> LaunchPlan:
    """The launch plan of a run's `[distributed]` section (`cpu`: None = probe this machine)."""
    d = cfg.distributed
    if cpu is None:
        from spark_tui.core.model.gpus import probe_gpus

        cpu = not probe_gpus(with_processes=False, mem_total=0)[0]
    plan = LaunchPlan(
        strategy=d.strategy,
        processes_per_machine=d.processes_per_machine,
        machines=d.machines,
        main_address=d.main_address,
        main_port=d.main_port,
        cpu=cpu,
        # What the Trainer's own bf16/fp16 flags choose ("auto": bf16 on a GPU); they win.
        mixed_precision={"fp32": "no", "auto": "no" if cpu else "bf16"}.get(
            cfg.train.precision, cfg.train.precision
        ),
    )
    try:
        plan.check()
    except ValueError as exc:
        raise SparkError(f"[distributed] in run.toml: {exc}") from exc
    if plan.cpu and plan.strategy == "fsdp":
        raise SparkError(FSDP_NEEDS_GPUS)
    return plan


def layer_classes(cfg: RunConfig) -> list[str]:
    """The decoder layer class FSDP wraps, from the model's architecture (known locally)."""
    from spark_tui.core.model.sources import architecture_for

    arch = architecture_for(cfg.model.id)
    if arch is None:
        raise SparkError(
            f"FSDP wraps the model by decoder layer, and the architecture of {cfg.model.id!r} "
            "is not known here yet: open it on the Model step (or `spark-tui model info`) "
            "once while online, or use the DDP strategy"
        )
    try:
        return decoder_layer_classes({"model_type": arch.model_type})
    except ValueError as exc:
        raise SparkError(f"{cfg.model.id}: {exc}") from exc


def write_launch_config(run: Run, cfg: RunConfig, *, cpu: bool | None = None) -> Path:
    """Write `<run>/accelerate.yaml` (machine 0's; the others pass their `--machine_rank`)."""
    plan = plan_for(cfg, cpu=cpu)
    layers = layer_classes(cfg) if plan.strategy == "fsdp" else None
    return write_config(run.path / CONFIG_FILE, accelerate_config(plan, 0, layers))


def launcher_command(run: Run, cfg: RunConfig, *, machine_rank: int | None = None,
                     resume: bool = False) -> list[str]:  # fmt: skip
    """What the supervisor starts on this machine: accelerate launch of the training entry."""
    rank = cfg.distributed.machine_rank if machine_rank is None else machine_rank
    if not 0 <= rank < cfg.distributed.machines:
        raise SparkError(
            f"machine rank {rank} is not one of the run's {cfg.distributed.machines} machines "
            f"(0 .. {cfg.distributed.machines - 1})"
        )
    return launch_command(run.path / CONFIG_FILE, run.path, rank, resume=resume,
                          launcher=LAUNCHER)  # fmt: skip


def machine_commands(run: Run, cfg: RunConfig) -> list[tuple[int, list[str]]]:
    """The command each machine runs, machine 0 first (what the wizard and the CLI show)."""
    return [
        (rank, ["spark-tui", "launch", str(run.path), "--machine-rank", str(rank)])
        for rank in range(cfg.distributed.machines)
    ]


# --------------------------------------------------------------------------- a rank that died

# torch's elastic agent ends a failed launch with a summary naming the first failure:
#   Root Cause (first observed failure):
#   [0]:
#     time      : ...
#     host      : spark-2
#     rank      : 1 (local_rank: 1)
#     exitcode  : -9 (pid: 1234)
#     error_file: <N/A>
#     traceback : Signal 9 (SIGKILL) received by PID 1234
_ROOT = re.compile(r"Root Cause \(first observed failure\):(?P<body>.*?)(?:\n=+|\Z)", re.S)
_FIELD = re.compile(r"^\s*(host|rank|exitcode|traceback)\s*:\s*(.*)$", re.M)


@dataclass
class RankFailure:
    rank: int
    local_rank: int | None
    host: str
    exitcode: int | None
    message: str

    def describe(self) -> str:
        import signal

        where = f" on {self.host}" if self.host else ""
        if self.exitcode is not None and self.exitcode < 0:
            try:
                how = f"was ended by {signal.Signals(-self.exitcode).name}"
            except ValueError:
                how = f"was ended by signal {-self.exitcode}"
            if self.exitcode == -signal.SIGKILL:
                how += " (killed: most likely out of memory)"
        elif self.exitcode is not None:
            how = f"exited with code {self.exitcode}"
        else:
            how = "failed"
        return f"rank {self.rank}{where} {how}"


def root_cause(text: str) -> RankFailure | None:
    """The first failed rank, from the launcher's output (None when it printed no summary)."""
    found = list(_ROOT.finditer(text))
    if not found:
        return None
    fields: dict[str, str] = {}
    for key, value in _FIELD.findall(found[-1].group("body")):
        fields.setdefault(key, value.strip())
    m = re.match(r"(\d+)(?:\s*\(local_rank:\s*(\d+)\))?", fields.get("rank", ""))
    if m is None:
        return None
    code = re.match(r"(-?\d+)", fields.get("exitcode", ""))
    return RankFailure(
        rank=int(m.group(1)),
        local_rank=int(m.group(2)) if m.group(2) else None,
        host=fields.get("host", ""),
        exitcode=int(code.group(1)) if code else None,
        message=fields.get("traceback", ""),
    )


def rank_failure_fields(run: Run, failure: RankFailure) -> dict[str, Any]:
    """status.json's `failed` fields for a launched run that one rank brought down."""
    log = run.path / f"train.rank{failure.rank}.log"
    advice = [f"see {log.name} (each rank writes its own log) and train.log"]
    if failure.exitcode is not None and failure.exitcode == -9:
        advice.insert(0, "the Memory step's per-process estimate says what fits each machine")
    advice.append("Resume continues from the last complete checkpoint")
    return {
        "state": "failed",
        "error": f"{failure.describe()}; the launcher then ended the other ranks",
        "failed_rank": failure.rank,
        "advice": advice,
    }
