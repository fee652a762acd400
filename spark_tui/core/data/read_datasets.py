"""`datasets` sources: a ``save_to_disk`` folder or a Hugging Face Hub dataset id.

`datasets` is imported only when one of these is read (the app opens without
it).  Offline, the Hub is not waited on: `hub_offline` probes the endpoint
with a short timeout and the error says what to do instead.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

from spark_tui.core.data.errors import DataError
from spark_tui.core.data.source import Progress, Source


def load_saved_folder(p: Path, *, split: str = "train", progress: Progress | None = None) -> Source:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    is_dict = (p / "dataset_dict.json").exists()
    if not is_dict and not (p / "state.json").exists():
        files = sorted(f.name for f in p.iterdir())[:8] if p.is_dir() else []
        raise DataError(
            "this folder is not a `datasets` save_to_disk folder (no dataset_dict.json or "
            f"state.json; it holds {', '.join(files) or 'nothing'}); pick a data file inside it",
            path=str(p),
        )
    try:
        from datasets import load_from_disk

        ds = load_from_disk(str(p))
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot open this datasets folder ({exc})", path=str(p)) from exc
    notes = []
    if is_dict:
        splits = list(ds.keys())
        name = split if split in ds else None
        if name is None:
            if len(splits) == 1 or "train" in ds:
                name = "train" if "train" in ds else splits[0]
            else:
                raise DataError(
                    f"no split {split!r} in this folder; it has {', '.join(splits)}", path=str(p)
                )
        notes.append(f"split '{name}' of {', '.join(splits)}")
        ds = ds[name]
    return Source(_dataset_rows(ds, progress), str(p), "datasets folder", None, notes)


def _dataset_rows(ds: Any, progress: Progress | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    total = len(ds)
    step = 10_000
    for start in range(0, total, step):
        rows.extend(ds.select(range(start, min(total, start + step))).to_list())
        if progress:
            progress("reading rows", len(rows), total)
    return rows


def _env_offline() -> bool:
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes", "on")
        for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_offline(timeout: float = 3.0) -> bool:
    """True when the Hub cannot be reached (HF_HUB_OFFLINE set, or no connection in `timeout` s)."""
    if _env_offline():
        return True
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^https?://", "", endpoint).split("/")[0]
    port = 443 if endpoint.startswith("https") else 80
    if ":" in host:
        host, port_s = host.rsplit(":", 1)
        port = int(port_s)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except OSError:
        return True


def load_hub(
    repo_id: str, *, subset: str = "", split: str = "train", progress: Progress | None = None
) -> Source:
    """A Hub dataset.  Offline, says so (after trying the local cache) instead of hanging."""
    env_offline = _env_offline()
    if not env_offline and hub_offline():
        raise DataError(
            f"'{repo_id}' looks like a Hugging Face Hub dataset id, but this machine is offline "
            "(huggingface.co cannot be reached). Connect to the internet, or set HF_HUB_OFFLINE=1 "
            "to use a copy already in the Hugging Face cache, or pick a downloaded file or folder."
        )
    if progress:
        progress("downloading", 0, None)
    what = f"'{repo_id}'" + (f" (subset '{subset}')" if subset else "") + f" split '{split}'"
    try:
        from datasets import load_dataset

        ds = load_dataset(repo_id, subset or None, split=split or "train")
    except Exception as exc:  # noqa: BLE001 - the hub raises many types
        if env_offline:
            raise DataError(
                f"the Hub dataset {what} is not in the local Hugging Face cache and this machine "
                "is offline (HF_HUB_OFFLINE is set); connect and unset it, or pick a downloaded "
                "file or folder"
            ) from exc
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"could not load the Hub dataset {what}: {msg}") from exc
    note = f"Hub dataset, split '{split}'" + (f", subset '{subset}'" if subset else "")
    return Source(_dataset_rows(ds, progress), repo_id, "hub", None, [note])
