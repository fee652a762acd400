"""Trainer checkpoints: which are whole, which to keep, and pruning them when a run ends.

A process killed while saving leaves a checkpoint folder with a torn file in it;
resuming from it fails every time.  So a checkpoint counts only when
`checkpoint_problem` finds nothing wrong: its `trainer_state.json` parses and
names the folder's step, and every weight file is as long as its own header
says.  The trainer's own `save_total_limit` is off (`trainer_args`): our
rotation (`rotate`, from the callbacks' `on_save`) keeps the newest *verified*
checkpoints, so a run that diverges never ends with only bad ones left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from spark_tui.config import RunConfig


class Run(Protocol):
    """What this module needs of a run folder (`runs.Run`, which imports this module)."""

    @property
    def checkpoints_dir(self) -> Path: ...

log = logging.getLogger("spark_tui.training")

FSDP_WEIGHTS = "pytorch_model_fsdp"  # accelerate's FSDP_MODEL_NAME
TRAINER_STATE = "trainer_state.json"  # written last by the trainer: its presence marks the end
_NAME = re.compile(r"checkpoint-(\d+)")
# Files that hold a model's (or an adapter's) weights; optimizer/scheduler/RNG are extras.
_MODEL_WEIGHTS = re.compile(r"(adapter_model|model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)")
_PICKLES = (".bin", ".pt", ".pth")  # torch.save files: zip archives since torch 1.6
_MAX_HEADER = 100 * 1024 * 1024  # safetensors caps its JSON header at 100 MB


def checkpoint_step(path: Path) -> int | None:
    """The step in a `checkpoint-N` folder name, or None for any other name."""
    m = _NAME.fullmatch(Path(path).name)
    return int(m.group(1)) if m else None


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every `checkpoint-N` folder, oldest first."""
    try:
        entries = list(Path(ckpt_dir).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(checkpoint_step(p), p) for p in entries if p.is_dir()]
    return sorted((s, p) for s, p in found if s is not None)


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is not whole (None when its size is what its header says)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{path.name} is cut short ({size} bytes, no header)"
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                return f"{path.name} is cut short ({size} bytes, header says more)"
            header = json.loads(fh.read(n))
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError):
        return f"{path.name} has a damaged header"
    if not isinstance(header, dict):
        return f"{path.name} has a damaged header"
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not isinstance(offsets, list) or len(offsets) != 2:
            return f"{path.name} has a damaged header (tensor {key})"
        end = max(end, int(offsets[1]))
    expected = 8 + n + end
    if size < expected:
        return f"{path.name} is cut short ({size} of {expected} bytes)"
    if size > expected:
        return f"{path.name} is longer than its header says ({size} of {expected} bytes)"
    return None


def _index_problem(path: Path) -> tuple[str | None, set[str]]:
    """Why a sharded index is not whole, and the shard file names it lists."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        shards = set(index["weight_map"].values())
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})", set()
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{path.name} is cut short or damaged", set()
    for name in sorted(shards):
        if not (path.parent / name).is_file():
            return f"{path.name} lists {name}, which is missing", shards
    return None, shards


def _pickle_problem(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return f"{path.name} is empty"
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror or exc})"
    if not zipfile.is_zipfile(path):
        return f"{path.name} is cut short (not a whole torch archive)"
    return None


def _fsdp_weights(path: Path, files: list[Path]) -> bool:
    """FSDP's own checkpoint of the weights (accelerate's `save_fsdp_model`): a sharded
    `pytorch_model_fsdp_N/` folder whose `.metadata` torch's distributed checkpoint writes
    once every rank's shard is in, or the gathered `pytorch_model_fsdp*.bin`."""
    if any(p.name.startswith(FSDP_WEIGHTS) and p.name.endswith(".bin") for p in files):
        return True
    return any((d / ".metadata").is_file() for d in path.glob(f"{FSDP_WEIGHTS}_*") if d.is_dir())


def checkpoint_problem(path: Path) -> str | None:
    """What makes a checkpoint unusable for a resume, or None when it is complete."""
    path = Path(path)
    step = checkpoint_step(path)
    if step is None or not path.is_dir():
        return "not a checkpoint-N folder"
    state_path = path / TRAINER_STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{TRAINER_STATE} is missing (the save did not finish)"
    except OSError as exc:
        return f"{TRAINER_STATE} cannot be read ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError):
        return f"{TRAINER_STATE} is cut short"
    saved = state.get("global_step") if isinstance(state, dict) else None
    if saved != step:
        return f"{TRAINER_STATE} says step {saved}, not {step}"
    files = sorted(p for p in path.iterdir() if p.is_file())
    if not any(_MODEL_WEIGHTS.fullmatch(p.name) or p.name.endswith(".index.json") for p in files):
        if not _fsdp_weights(path, files):
            return "it holds no model or adapter weights"
    for p in files:
        problem: str | None = None
        if p.name.endswith(".safetensors"):
            problem = safetensors_problem(p)
        elif p.name.endswith(".index.json"):
            problem, _ = _index_problem(p)
        elif p.name.endswith(_PICKLES):
            problem = _pickle_problem(p)
        if problem:
            return problem
    return None


def latest_complete_checkpoint(run: Run | Path) -> tuple[Path | None, list[str]]:
    """The newest complete checkpoint of `run` (or of a checkpoints folder), and why newer
    ones were skipped, e.g. "checkpoint-8 skipped: trainer_state.json is cut short; resuming
    from checkpoint-6".  No notes when the newest one is complete."""
    ckpt_dir = run if isinstance(run, Path) else run.checkpoints_dir
    notes: list[str] = []
    chosen: Path | None = None
    for _, path in reversed(list_checkpoints(ckpt_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            chosen = path
            break
        notes.append(f"{path.name} skipped: {problem}")
    if notes:
        tail = f"resuming from {chosen.name}" if chosen else "no complete checkpoint: from step 0"
        notes[-1] += "; " + tail
    return chosen, notes


def folder_size(path: Path) -> int:
    """Bytes in the files under `path` (0 when it is gone)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def remove_checkpoint(path: Path) -> int:
    """Delete one checkpoint folder; returns the bytes freed.

    Renamed out of the `checkpoint-N` namespace first, so a kill halfway through
    the delete never leaves a half-deleted folder that looks like a resume point.
    """
    size = folder_size(path)
    doomed = path.with_name(f".{path.name}.deleting")
    try:
        os.replace(path, doomed)
    except FileNotFoundError:
        return 0
    shutil.rmtree(doomed, ignore_errors=True)
    return size


def clear_leftovers(ckpt_dir: Path) -> None:
    """Finish deletions a killed process left half done."""
    for p in Path(ckpt_dir).glob(".checkpoint-*.deleting"):
        shutil.rmtree(p, ignore_errors=True)


def discard_after(ckpt_dir: Path, step: int, why: str) -> list[str]:
    """Remove every checkpoint saved after `step`; returns their names (logged with `why`)."""
    removed = []
    for s, path in list_checkpoints(ckpt_dir):
        if s > step:
            remove_checkpoint(path)
            removed.append(path.name)
    if removed:
        log.warning("removed %s: %s", ", ".join(removed), why)
    return removed


def rotate(ckpt_dir: Path, *, keep: int, verified_up_to: int, current: int) -> list[str]:
    """Our `save_total_limit`: keep the `keep` newest verified checkpoints and every newer one.

    Verified: complete and saved at or before `verified_up_to`, the last step whose
    logged loss was finite.  Newer ones are kept until a log line vouches for them
    (or the NaN guard removes them).  Checkpoints after `current` are left from an
    earlier session's discarded future and go; so do incomplete older ones.
    `keep <= 0` keeps every verified checkpoint (as the trainer's own limit does).
    Returns the names removed.
    """
    clear_leftovers(ckpt_dir)
    removed: list[str] = []
    verified: list[Path] = []
    for step, path in list_checkpoints(ckpt_dir):
        if step > current or (step <= verified_up_to and checkpoint_problem(path)):
            removed.append(path.name)
            remove_checkpoint(path)
        elif step <= verified_up_to:
            verified.append(path)
    if keep > 0:
        for path in verified[:-keep]:
            removed.append(path.name)
            remove_checkpoint(path)
    if removed:
        log.info("checkpoints removed by rotation: %s", ", ".join(removed))
    return removed


def prune_finished(run: Run, cfg: RunConfig) -> int:
    """Remove a finished run's checkpoints (optimizer state and all) unless the user keeps them.

    The saved output holds the final weights; the checkpoints are only resume
    points, and a finished run is not resumed.  Returns the bytes freed.
    """
    if cfg.train.keep_checkpoints:
        return 0
    ckpt_dir = run.checkpoints_dir
    freed = sum(remove_checkpoint(path) for _, path in list_checkpoints(ckpt_dir))
    if ckpt_dir.is_dir():
        clear_leftovers(ckpt_dir)
    if freed:
        log.info(
            "finished: checkpoints removed (%.1f MB freed; train.keep_checkpoints = true keeps them)",
            freed / 1e6,
        )
    return freed
