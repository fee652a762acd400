"""Disk for a run: what it will write, a refusal before it starts, and a full disk during it.

A full disk used to end a run as a bare "died": the checkpoint save raised, the
half-written checkpoint stayed (and every resume then tried it), and the final
status write failed too.  So:

- `disk_need` / `check_disk` (through `run_preflight`): before the first step, one
  checkpoint's size (trainable weights, optimizer state, tokenizer) x the checkpoints
  on disk at the peak + the final output + a margin, against the free space; a clear
  refusal when it does not fit.
- `is_disk_full`: whether an exception is a full disk, whatever shape the library
  gave it (an OSError's errno, safetensors' message, torch's failed archive write).
- `disk_full_result`: the partial checkpoint and the output's staging folder are
  deleted (which also makes room for the status write) and the run's final status
  says how much to free.

Only the standard library at import time: the GGUF export uses this too.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_tui.core.base import names
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train import checkpoints

if TYPE_CHECKING:
    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import Run

log = logging.getLogger("spark_tui.training")

GB = 1024**3
MB = 1024**2
# Saved bytes per parameter.  PEFT keeps adapters in fp32 and full fine-tuning keeps
# fp32 master weights (`method.precision.load_dtype`): checkpoints hold fp32 weights.
WEIGHT_BYTES = 4
ADAMW_BYTES = 8  # AdamW: two fp32 moments per trainable parameter
ADAMW_8BIT_BYTES = 2  # bitsandbytes 8-bit AdamW: two 1-byte moments (+ small block scales)
# scheduler.pt, rng_state.pth, trainer_state.json, training_args.bin, configs, README.
SMALL_FILES_BYTES = 64 * 1024
# Tokenizer files saved into every checkpoint and the output, when the model folder is
# not at hand to measure them (SmolLM2's are 3.5 MB, Llama 3's 9 MB).
DEFAULT_TOKENIZER_BYTES = 8 * MB
# metrics.jsonl, train.log, status.json, TensorBoard events: a margin on top.
MARGIN_BYTES = 64 * MB
MARGIN_FRACTION = 0.05
# After a failed write whose message does not name the cause (torch's archive writer,
# numpy's short write), less than this free at the folder means the disk was full.
LOW_FREE_BYTES = 128 * MB
_TOKENIZER_FILE = re.compile(
    r"(tokenizer.*|vocab.*|merges\.txt|special_tokens_map\.json|added_tokens\.json"
    r"|chat_template.*|.*\.model|.*\.tiktoken)"
)


def gb(n: float) -> str:
    """Bytes as GB for messages: "12", "1.6", "0.03" (small sizes keep two decimals)."""
    v = max(0.0, float(n)) / GB
    if v >= 10:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.1f}"
    return f"{max(v, 0.01):.2f}" if n > 0 else "0"


@dataclass(frozen=True)
class DiskNeed:
    """What a run writes at its peak, in bytes.

    `kept` checkpoints are on disk at once: the trainer writes a new one before the
    oldest is rotated out.  `held` bytes of it are already on disk (a resumed run's
    checkpoints), so only `to_write` must still be free.
    """

    checkpoint: int
    kept: int
    output: int
    margin: int
    held: int = 0

    @property
    def total(self) -> int:
        return self.checkpoint * self.kept + self.output + self.margin

    @property
    def to_write(self) -> int:
        return max(0, self.total - self.held)

    def breakdown(self) -> str:
        """ "checkpoint Y GB x K kept + output Z GB" as the refusal shows it."""
        text = (
            f"checkpoint {gb(self.checkpoint)} GB × {self.kept} kept + output {gb(self.output)} GB"
        )
        if self.held:
            text += f"; {gb(self.held)} GB of it already on disk"
        return text


class NotEnoughDiskError(SparkError):
    """The run does not fit on the disk it writes to; the message says what to change."""


def tokenizer_bytes(model_path: str | Path | None) -> int:
    """Bytes of the tokenizer files a save copies (measured in the model folder when given)."""
    if model_path is None or not Path(model_path).is_dir():
        return DEFAULT_TOKENIZER_BYTES
    total = 0
    for p in Path(model_path).iterdir():
        if p.is_file() and _TOKENIZER_FILE.fullmatch(p.name):
            total += p.stat().st_size
    return total or DEFAULT_TOKENIZER_BYTES


def optimizer_bytes_per_param(cfg: RunConfig, optim: Any = None) -> int:
    """Optimizer state per trainable parameter; `optim` is the trainer's own name
    (`trainer.args.optim`: it says when an 8-bit optimizer fell back to AdamW on CPU)."""
    name = str(getattr(optim, "value", optim) if optim is not None else cfg.train.optimizer)
    return ADAMW_8BIT_BYTES if "8bit" in name.lower() else ADAMW_BYTES


def checkpoints_at_peak(cfg: RunConfig, total_steps: int | None) -> int:
    """How many checkpoints are on disk at once: the kept ones + the one being written.

    Capped by the number of saves the run makes (a save every `save_steps` and one at
    the end); with no limit (save_total_limit <= 0) every save stays.
    """
    limit = int(cfg.train.save_total_limit)
    saves = None
    if total_steps and total_steps > 0:
        saves = max(1, math.ceil(total_steps / max(1, int(cfg.train.save_steps))))
    if limit <= 0:
        return saves if saves is not None else 1
    return min(limit + 1, saves) if saves is not None else limit + 1


def disk_need(
    cfg: RunConfig,
    trainable_params: int,
    total_params: int,
    precision: str,
    *,
    optim: Any = None,
    total_steps: int | None = None,
    tokenizer: int | None = None,
    held: int = 0,
) -> DiskNeed:
    """The bytes a run writes at its peak (see `DiskNeed`).

    One checkpoint: the trainable weights in fp32 (the whole model for full
    fine-tuning) + the optimizer state + the tokenizer + small files.  The output:
    the adapter, or the full model in its training precision (`trainer.save_output`
    casts a full fine-tune to bf16/fp16).  `tokenizer`: bytes of the tokenizer
    files (`tokenizer_bytes`); `held`: bytes already on disk that count in the need.
    """
    full = cfg.method.adapter == "full"
    tok = DEFAULT_TOKENIZER_BYTES if tokenizer is None else int(tokenizer)
    weights = int(total_params if full else trainable_params) * WEIGHT_BYTES
    optimizer = int(trainable_params) * optimizer_bytes_per_param(cfg, optim)
    checkpoint = weights + optimizer + tok + SMALL_FILES_BYTES
    if full:
        per_param = 2 if precision in ("bf16", "fp16") else WEIGHT_BYTES
        output = int(total_params) * per_param + tok + SMALL_FILES_BYTES
    else:
        output = weights + tok + SMALL_FILES_BYTES
    kept = checkpoints_at_peak(cfg, total_steps)
    margin = MARGIN_BYTES + int(MARGIN_FRACTION * (checkpoint * kept + output))
    held = min(int(held), checkpoint * kept)
    return DiskNeed(checkpoint=checkpoint, kept=kept, output=output, margin=margin, held=held)


def existing_folder(path: str | Path) -> Path:
    """`path`, or its nearest parent that exists (where a folder to be made will live)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Free bytes for this user at `path` (its nearest existing parent)."""
    return int(shutil.disk_usage(existing_folder(path)).free)


def nearly_full(path: str | Path, low: int = LOW_FREE_BYTES) -> bool:
    """Whether the disk at `path` is (nearly) full: less than `low` bytes free, or than
    5 % of a small file system (or it cannot be asked: then no)."""
    try:
        usage = shutil.disk_usage(existing_folder(path))
    except OSError:
        return False
    return usage.free < min(low, usage.total // 20)


def check_disk(path: str | Path, need: DiskNeed, *, cfg: RunConfig | None = None) -> None:
    """Refuse (`NotEnoughDiskError`) when `need` does not fit in the free space at `path`."""
    free = free_bytes(path)
    if free >= need.to_write:
        return
    if cfg is not None and int(cfg.train.save_total_limit) <= 0:
        change = (
            "set train.save_total_limit (every checkpoint is kept now) "
            f"or save less often (a higher train.save_steps than {cfg.train.save_steps})"
        )
    elif cfg is not None:
        change = f"lower train.save_total_limit (now {cfg.train.save_total_limit})"
    else:
        change = "lower train.save_total_limit or save less often (train.save_steps)"
    raise NotEnoughDiskError(
        f"not enough disk at {path}: this run needs ~{gb(need.total)} GB "
        f"({need.breakdown()}), {gb(free)} GB free: free space, or {change}"
    )


def run_preflight(
    run: Run,
    cfg: RunConfig,
    trainable_params: int,
    total_params: int,
    precision: str,
    *,
    optim: Any = None,
    total_steps: int | None = None,
    model_path: str | Path | None = None,
) -> DiskNeed:
    """The run's need (its own checkpoints already on disk counted as held), checked
    against the free space at the run folder; returns it for `disk_full_result`."""
    held = sum(
        checkpoints.folder_size(p) for _, p in checkpoints.list_checkpoints(run.checkpoints_dir)
    )
    need = disk_need(
        cfg,
        trainable_params,
        total_params,
        precision,
        optim=optim,
        total_steps=total_steps,
        tokenizer=tokenizer_bytes(model_path),
        held=held,
    )
    log.info(
        "disk: this run needs ~%s GB (%s), %s GB free at %s",
        gb(need.total),
        need.breakdown(),
        gb(free_bytes(run.path)),
        run.path,
    )
    check_disk(run.path, need, cfg=cfg)
    return need


# --------------------------------------------------------------------------- a full disk

_FULL_ERRNOS = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
# Messages that name the cause: the OS's strerror, Rust's io::Error (safetensors:
# "Error while serializing: I/O error: No space left on device (os error 28)", kind
# StorageFull / QuotaExceeded), numpy's own check ("Not enough free space to write
# 56623104 bytes after offset 1785664", which the gguf writer's tofile raises).
_FULL_TEXT = (
    "no space left on device",
    "storagefull",
    "storage full",
    "disk quota exceeded",
    "quotaexceeded",
    "quota exceeded",
    "(os error 28)",
    "(os error 122)",
    "not enough free space to write",  # numpy's tofile checks before it writes
)
# Writes that failed without saying why: torch.save's archive writer ("[enforce fail at
# inline_container.cc] . unexpected pos 640 vs 598" over "basic_ios::clear: iostream
# error", or "PytorchStreamWriter failed writing file data/0: file write failed") and
# numpy's tofile, which the gguf writer uses ("1000000 requested and 524288 written").
_SHORT_WRITE = re.compile(
    r"pytorchstreamwriter failed writing file|file write failed|unexpected pos \d+ vs \d+"
    r"|basic_ios::clear|\d+ requested and \d+ written"
)


def _chain(exc: BaseException, limit: int = 32) -> list[BaseException]:
    """`exc` and every exception behind it (`__cause__`, `__context__`), each once."""
    out: list[BaseException] = []
    todo: list[BaseException] = [exc]
    seen: set[int] = set()
    while todo and len(out) < limit:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(getattr(e, "exceptions", None) or ())  # an ExceptionGroup
    return out


def is_disk_full(exc: BaseException, path: str | Path | None = None) -> bool:
    """Whether `exc` (or one behind it) is a full disk or an exceeded quota.

    A write error that does not name its cause (torch's archive writer, numpy's
    short write) counts only when `path` is given and its disk is nearly full now.
    """
    unexplained = False
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(t in text for t in _FULL_TEXT):
            return True
        if _SHORT_WRITE.search(text):
            unexplained = True
    return unexplained and path is not None and nearly_full(path)


def remove_partial(run: Run) -> list[str]:
    """Delete what a failed save left: incomplete checkpoints newer than the newest complete
    one, and the output's staging folder (`trainer.save_output`).  Returns what went."""
    removed: list[str] = []
    ckpt_dir = run.checkpoints_dir
    for _, path in reversed(checkpoints.list_checkpoints(ckpt_dir)):
        problem = checkpoints.checkpoint_problem(path)
        if problem is None:
            break
        size = checkpoints.remove_checkpoint(path)
        removed.append(f"{path.name} ({gb(size)} GB: {problem})")
    if ckpt_dir.is_dir():
        checkpoints.clear_leftovers(ckpt_dir)
    for name in (names.ADAPTER_DIR, names.MODEL_DIR):
        dest = run.path / name
        tmp = run.path / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(f".{name}.tmp (the unfinished {name}/)")
        old = run.path / f".{name}.old"
        if old.is_dir():
            if dest.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:  # the previous output, moved aside just before the failure: put it back
                os.replace(old, dest)
    return removed


def disk_full_result(run: Run, exc: BaseException, need: DiskNeed | None = None) -> dict[str, Any]:
    """The final status of a run stopped by a full disk, after deleting its partial files.

    "Free N GB" is what a resume needs beyond what is free now: `need` from
    `run_preflight` when given, else the last complete checkpoint's size again, plus
    an output of its weights' size.  Never raises: the status write comes next.
    """
    first = next((e for e in _chain(exc) if isinstance(e, OSError) and e.errno), exc)
    log.error("disk full at %s: %s", run.path, first)
    try:
        return _explain(run, need)
    except Exception:  # noqa: BLE001 - the run's final status matters more than the details
        log.exception("full disk: cleaning up or measuring failed")
        return {
            "state": "failed",
            "error": f"disk full at {run.path}: free space or lower save_total_limit",
            "disk_full": True,
        }


def _explain(run: Run, need: DiskNeed | None) -> dict[str, Any]:
    removed = remove_partial(run)
    for item in removed:
        log.warning("full disk: removed %s", item)
    free = free_bytes(run.path)
    last, _ = checkpoints.latest_complete_checkpoint(run)
    if need is not None:
        held = sum(
            checkpoints.folder_size(p) for _, p in checkpoints.list_checkpoints(run.checkpoints_dir)
        )
        one = need.checkpoint
        wanted = max(0, need.total - min(held, need.checkpoint * need.kept))
    else:
        one = checkpoints.folder_size(last) if last is not None else 0
        weights = sum(
            p.stat().st_size
            for p in (last.iterdir() if last is not None else ())
            if p.is_file() and p.suffix == ".safetensors"
        )
        wanted = one + weights + MARGIN_BYTES
    short = max(wanted - free, one, MARGIN_BYTES)
    try:
        limit: Any = run.config().train.save_total_limit
    except Exception:  # noqa: BLE001 - a damaged run.toml only loses this detail
        limit = "?"
    advice = []
    if last is not None:
        advice.append(
            f"the last complete checkpoint, {last.name}, is kept: `spark-tui resume {run.id}` "
            "continues from it once there is room"
        )
    else:
        advice.append("no complete checkpoint was saved yet: a resume starts from step 0")
    advice += [f"removed the partial {item}" for item in removed]
    advice += [
        f"{gb(free)} GB is free at {run.path} now; free {gb(short)} GB "
        "(old runs' checkpoints/ folders are the largest files)",
        f"or lower train.save_total_limit (now {limit}): each checkpoint takes ~{gb(one)} GB",
    ]
    return {
        "state": "failed",
        "error": f"disk full at {run.path}: free {gb(short)} GB or lower save_total_limit",
        "advice": advice,
        "disk_full": True,
    }
