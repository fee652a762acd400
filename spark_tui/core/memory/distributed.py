"""Peak memory per process when one run is spread over several: DDP or FSDP (full shard).

DDP: each process holds the whole model, its gradients and optimizer states, the
activations of its own micro-batch, and DDP's gradient buckets (all-reduced while the
backward pass runs: torch's 25 MB buckets, about two in flight).

FSDP full shard (what accelerate's FULL_SHARD / fsdp2 reshard-after-forward does):
parameters, gradients and optimizer states are divided by the number of processes;
under LoRA the frozen base weights are sharded too, and a reference copy (full-FT DPO) is
an FSDP model of its own, sharded the same way.  Not divided: the activations of the
process's micro-batch, and the unsharded parameters of the decoder layer being computed
plus the one prefetched (two layers, gathered in the weights' own storage: 4-bit for
QLoRA), and each process's runtime overhead (its CUDA context, the allocator's slack).

The result is an ordinary `Estimate` (the breakdown the Memory step shows) for one
process, with the unsharded layers under "activations" details and notes saying what
was divided; `per_machine` multiplies by the processes on one machine (what a DGX Spark's
one unified pool must hold when several processes share it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from spark_tui.core.memory.breakdown import Estimate, fmt_gb
from spark_tui.core.memory.estimator import FIXED_OVERHEAD, SLACK

STRATEGIES = ("ddp", "fsdp")
DDP_BUCKET_BYTES = 25 * 1024**2  # torch.nn.parallel.DistributedDataParallel bucket_cap_mb
DDP_BUCKETS_IN_FLIGHT = 2
FSDP_GATHERED_LAYERS = 2  # the layer computed + the one prefetched (forward_prefetch)


@dataclass
class PerProcess:
    strategy: str
    processes: int  # in the whole run (world size)
    machines: int
    estimate: Estimate  # one process's peak
    single: Estimate  # the same run in one process

    @property
    def per_machine(self) -> int:
        return self.estimate.total * max(1, self.processes // max(1, self.machines))

    def summary(self) -> str:
        each = max(1, self.processes // max(1, self.machines))
        return (
            f"{self.strategy.upper()} over {self.processes} process"
            f"{'es' if self.processes > 1 else ''} ({self.machines} machine"
            f"{'s' if self.machines > 1 else ''}): peak ≈ {fmt_gb(self.estimate.total)} per "
            f"process, {fmt_gb(self.per_machine)} per machine ({each} there); "
            f"{fmt_gb(self.single.total)} in one process"
        )


def _layer_bytes(est: Estimate) -> int:
    """One decoder layer's parameters in the weights' storage (bytes per weight as loaded)."""
    arch = est.arch
    per_param = est.weights / max(1, est.params_total)
    return int((arch.layer_linear_params() + arch.layer_other_params()) * per_param)


def per_process(est: Estimate, strategy: str, processes: int, machines: int = 1) -> PerProcess:
    """The peak of one process when `est`'s run is spread over `processes` with `strategy`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if processes < 1 or machines < 1 or processes % machines:
        raise ValueError(
            f"{processes} processes cannot be spread evenly over {machines} machines"
        )
    n = processes
    details = dict(est.details)
    notes = list(est.notes)
    if strategy == "fsdp" and n > 1:
        weights, adapters = -(-est.weights // n), -(-est.adapters // n)
        gradients, optimizer = -(-est.gradients // n), -(-est.optimizer // n)
        reference = -(-est.reference // n)
        gathered = FSDP_GATHERED_LAYERS * _layer_bytes(est)
        details["fsdp_unsharded_layers"] = gathered
        activations = est.activations + gathered
        notes.append(
            f"FSDP full shard over {n} processes: weights, gradients and optimizer states are "
            f"divided by {n}; activations and two unsharded decoder layers "
            f"({fmt_gb(gathered)}) are not."
        )
    else:
        weights, adapters, gradients = est.weights, est.adapters, est.gradients
        optimizer, reference = est.optimizer, est.reference
        buckets = DDP_BUCKETS_IN_FLIGHT * DDP_BUCKET_BYTES if n > 1 else 0
        if buckets:
            details["ddp_buckets"] = buckets
        activations = est.activations + buckets
        notes.append(
            f"DDP over {n} processes: each holds the whole model, its gradients and "
            "optimizer states; only the data is divided (per-process micro-batch as set)."
        )
    subtotal = weights + adapters + gradients + optimizer + activations + reference
    target = est.settings.target
    overhead = int(FIXED_OVERHEAD[target]) + int(SLACK[target] * subtotal)
    one = replace(
        est, weights=weights, adapters=adapters, gradients=gradients, optimizer=optimizer,
        activations=activations, reference=reference, overhead=overhead, details=details,
        notes=notes,
    )  # fmt: skip
    return PerProcess(strategy, n, machines, one, est)


def verdict(pp: PerProcess, budget: int, *, unified: bool) -> tuple[str, float]:
    """(status, headroom) on one machine: a GPU's memory holds one process; a unified
    pool (DGX Spark) holds every process on that machine."""
    from spark_tui.core.memory.headroom import classify

    return classify(pp.per_machine if unified else pp.estimate.total, budget)


def machine_verdict(v: Any, strategy: str, processes: int, machines: int = 1
                    ) -> tuple[PerProcess, str, float, str]:  # fmt: skip
    """A one-process `Verdict` spread over `processes`: (per-process peak, status, headroom,
    the "Per machine: …" line the CLI and the Review step print)."""
    from spark_tui.core.memory.headroom import STATUS_LABELS

    pp = per_process(v.estimate, strategy, processes, machines)
    unified = v.target == "unified"
    status, headroom = verdict(pp, v.budget, unified=unified)
    held = "the processes on one machine" if unified else "one process (one GPU)"
    line = (
        f"Per machine: {STATUS_LABELS[status]}: {held} against "
        f"{fmt_gb(v.budget)} ({v.budget_source}); headroom {headroom * 100:.0f} %"
    )
    return pp, status, headroom, line
