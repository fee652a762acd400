"""The accelerate config file (`accelerate.yaml`) and launch commands for a run on several
processes or machines: DDP, or FSDP full shard wrapped by decoder layer.

Several processes are Hugging Face accelerate's job (`accelerate launch`, NCCL on GPUs, gloo
on CPUs); this module only writes the file its own `accelerate config` would write, in
the keys of accelerate's `ClusterConfig`, so accelerate's loader reads it back unchanged
(tests load it with `load_config_from_file`).  FSDP settings follow what PEFT documents
for LoRA/QLoRA with FSDP: FSDP 1, full shard, TRANSFORMER_BASED_WRAP on the model's
decoder layer class (its `_no_split_modules`; the Trainer adds PEFT's wrap policy for
the adapters), CPU-efficient loading (rank 0 reads the weights, the others receive their
shards), sharded checkpoints, `use_orig_params` off.  QLoRA under FSDP also needs the
4-bit weights stored in the compute dtype (`bnb_4bit_quant_storage`), which the loader
sets from the same plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("ddp", "fsdp")
DEFAULT_PORT = 29500
CONFIG_FILE = "accelerate.yaml"


@dataclass
class LaunchPlan:
    strategy: str  # ddp | fsdp
    processes_per_machine: int = 1
    machines: int = 1
    main_address: str = "127.0.0.1"  # machine 0's address on the link between the machines
    main_port: int = DEFAULT_PORT
    cpu: bool = False  # gloo on CPUs (tests, machines without a GPU)
    mixed_precision: str = "bf16"  # bf16 | fp16 | no

    @property
    def processes(self) -> int:
        return self.processes_per_machine * self.machines

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be ddp or fsdp, not {self.strategy!r}")
        if self.processes_per_machine < 1 or self.machines < 1:
            raise ValueError("processes per machine and machines must be at least 1")
        if self.machines > 1 and self.main_address in ("", "127.0.0.1", "localhost"):
            raise ValueError(
                "several machines need machine 0's address on the link between them "
                "(for two DGX Sparks: the 200 GbE interface's address), not localhost"
            )
        if not 1 <= self.main_port <= 65535:
            raise ValueError(f"main port {self.main_port} is not a TCP port")


def decoder_layer_classes(model_config: dict[str, Any]) -> list[str]:
    """The classes FSDP wraps one by one: the causal-LM class's `_no_split_modules`."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    model_type = model_config.get("model_type")
    if not model_type:
        raise ValueError("config.json has no model_type: cannot tell the decoder layer class")
    conf = AutoConfig.for_model(model_type)
    cls = MODEL_FOR_CAUSAL_LM_MAPPING.get(type(conf), None)
    names = list(getattr(cls, "_no_split_modules", None) or [])
    if not names:
        raise ValueError(
            f"transformers names no decoder layer for {model_type!r} models; FSDP cannot wrap "
            "it by layer (use DDP)"
        )
    return names


def accelerate_config(plan: LaunchPlan, machine_rank: int = 0,
                      layer_classes: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The config dict for one machine (only `machine_rank` differs between machines)."""
    plan.check()
    if not 0 <= machine_rank < plan.machines:
        raise ValueError(f"machine rank {machine_rank} is outside 0..{plan.machines - 1}")
    # On CPUs too the type is MULTI_GPU / FSDP with use_cpu off: only that starts the
    # processes through torch's elastic launcher (accelerate's use_cpu/MULTI_CPU path runs
    # one process, or mpirun); each process then finds no GPU and joins over gloo
    # (`ranks.init_group`).
    kind = "FSDP" if plan.strategy == "fsdp" else "MULTI_GPU"
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": kind,
        "mixed_precision": "no" if plan.cpu else plan.mixed_precision,
        "use_cpu": False,
        "debug": False,
        "num_machines": plan.machines,
        "num_processes": plan.processes,
        "machine_rank": machine_rank,
        "main_process_ip": plan.main_address,
        "main_process_port": plan.main_port,
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
        "downcast_bf16": "no",
    }
    if not plan.cpu:
        cfg["gpu_ids"] = "all"
    if plan.strategy == "fsdp":
        if not layer_classes:
            raise ValueError("FSDP needs the model's decoder layer class (decoder_layer_classes)")
        cfg["fsdp_config"] = {
            "fsdp_version": 1,
            "fsdp_reshard_after_forward": "FULL_SHARD",
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": ",".join(layer_classes),
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_forward_prefetch": False,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_offload_params": False,
            "fsdp_use_orig_params": False,
            # Rank 0 reads the weights and sends them to the others; torch's FSDP does
            # not sync module states on CPUs, where every rank reads them (small models).
            "fsdp_cpu_ram_efficient_loading": not plan.cpu,
            "fsdp_sync_module_states": not plan.cpu,
            "fsdp_activation_checkpointing": False,  # the Trainer's own checkpointing
        }
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    """Write `cfg` as YAML, atomically (a half-written file would launch wrong ranks)."""
    import yaml

    from spark_tui.core.base.atomic import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(cfg, sort_keys=False))
    return Path(path)


def launch_command(config_file: Path, run_dir: Path, machine_rank: int, *, resume: bool = False,
                   launcher: Sequence[str] = ("accelerate",)) -> list[str]:  # fmt: skip
    """The argument list one machine runs (never a shell string)."""
    cmd = [*launcher, "launch", "--config_file", str(config_file),
           "--machine_rank", str(machine_rank),
           "-m", "spark_tui.core.train.entry", str(run_dir)]  # fmt: skip
    return [*cmd, "--resume"] if resume else cmd
