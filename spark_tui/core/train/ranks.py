"""Which process of a distributed run this is, and the few collectives the run needs itself.

Under `accelerate launch` every rank runs the same training process (`entry.py`); the
environment says which one it is (RANK, LOCAL_RANK, WORLD_SIZE, set by torch's elastic
launcher).  Only rank 0 writes the run folder (status, metrics, checkpoints rotation,
outputs); every rank writes its own `train.rank<N>.log`.  Decisions that end the loop (a
Stop, the NaN guard) must be taken by every rank at the same step, or the others wait
forever in their next collective: `any_rank` makes one flag global.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    local_rank: int = 0
    world: int = 1

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """The one process that writes the run folder."""
        return self.rank == 0

    @property
    def local_main(self) -> bool:
        """The first process on its machine (it prepares what the machine's ranks read)."""
        return self.local_rank == 0

    @property
    def log_name(self) -> str:
        return f"train.rank{self.rank}.log"


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default


def current() -> Rank:
    """This process's rank, from the launcher's environment (one process: rank 0 of 1)."""
    world = max(1, _int("WORLD_SIZE", 1))
    rank = _int("RANK", 0)
    return Rank(rank=rank, local_rank=_int("LOCAL_RANK", rank), world=world)


def _group_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device():
    """Where a collective's tensor must live: the rank's GPU under NCCL, else the CPU."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_group() -> None:
    """Join the launcher's process group now (accelerate's PartialState: NCCL on GPUs, gloo
    on CPUs), so the data can be prepared once per machine before the trainer exists."""
    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any (one all-reduce of one number)."""
    if not _group_ready():
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def leaders_first(rank: Rank, *, leads: bool) -> Iterator[None]:
    """The ranks that lead run the block, then the others (who find their result).

    Every rank passes one barrier: the others before the block, the leaders after it (also
    when it raised, so the others go on and meet the same error themselves).
    """
    if not rank.distributed:
        yield
        return
    if not leads:
        barrier()
    try:
        yield
    finally:
        if leads:
            barrier()


def main_first(rank: Rank) -> contextlib.AbstractContextManager[None]:
    """Rank 0 first: what it writes into the run folder, the others may read."""
    return leaders_first(rank, leads=rank.main)


def local_main_first(rank: Rank) -> contextlib.AbstractContextManager[None]:
    """Each machine's first rank first: per machine, as two machines need not share a
    filesystem (the model cache, a copied run folder)."""
    return leaders_first(rank, leads=rank.local_main)


def sum_ranks(value: int) -> int:
    """The sum over ranks of a count each rank keeps for itself (tokens it saw)."""
    if not _group_ready():
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor([int(value)], dtype=torch.int64, device=_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return int(total.item())
