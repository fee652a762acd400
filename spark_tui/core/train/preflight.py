"""Preflight: refuse a run whose model or data cannot be used, before any process starts.

`RunConfig.load` already refuses unknown keys, wrong types and values out of
range.  What it cannot see is the world the config points at: a data file
moved since the run stored its absolute path, a model folder without weights,
a Hub model that is neither cached nor downloadable (offline, gated without a
token, not found).  Without this check each of those surfaces minutes later,
inside the detached trainer, as a library traceback in train.log.

`preflight(cfg)` is fast and quiet: no torch, no reading of whole files, and
no network when the model is local or already in the Hugging Face cache (a
Hub id that is not cached costs one short `config.json` request, the same the
Model step makes).  It raises `PreflightError` naming the setting, the path or
id, and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from spark_tui.config import ConfigError, RunConfig
from spark_tui.core.base import names, paths
from spark_tui.core.base.errors import SparkError
from spark_tui.core.data.loaders import SUPPORTED, bundled_dataset_path
from spark_tui.core.method.choices import check_combination
from spark_tui.core.model import catalog
from spark_tui.core.model.folder import ModelSourceError, check_folder
from spark_tui.core.model.hf_cache import local_snapshot
from spark_tui.core.model.hub import HUB_ID_RE, fetch_hub_config, is_offline
from spark_tui.core.model.resolve import (
    DEFAULT_MODEL_ID,
    bundled_gguf_path,
    default_model_ready,
)

DATA_SUFFIXES = frozenset({".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".parquet", ".txt"})
_MOVED = (
    "The run stores the absolute path it was created with, so a file moved, renamed or "
    "deleted since is not found there; put it back, or set {key} in {source} to where it is now."
)


class PreflightError(ConfigError):
    """A run whose model or data cannot be used; names the setting and what to do."""

    def __init__(self, message: str, *, setting: str, path: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.path = path


def preflight(
    cfg: RunConfig, *, source: str | Path = "run.toml", prepared: Path | None = None
) -> None:
    """Raise a SparkError if `cfg` cannot train here; `source` names the config in messages.

    `prepared`: a resume's `<run>/data`.  When it holds the copy prepared at the
    start, the resume trains on that copy, so the sources need not exist any more.
    """
    src = str(source)
    try:
        check_combination(cfg)
    except SparkError as exc:
        raise PreflightError(f"{src}: {exc}", setting="method") from exc
    _check_model(cfg, src)
    if prepared is not None and _has_prepared_copy(Path(prepared)):
        return
    _check_data(cfg.data.path, "data.path", cfg.method.objective, src)
    if cfg.data.validation_path.strip():
        _check_data(cfg.data.validation_path, "data.validation_path", cfg.method.objective, src)


# ---------------------------------------------------------------- the model


def _check_model(cfg: RunConfig, src: str) -> None:
    model_id = (cfg.model.id or "").strip()
    entry = catalog.get(model_id) if model_id else None
    if model_id in ("", DEFAULT_MODEL_ID) or (entry is not None and entry.id == DEFAULT_MODEL_ID):
        if not default_model_ready():
            try:
                bundled_gguf_path()  # converted on first use; only its source must be there
            except SparkError as exc:
                msg = f"{src}: model.id = 'default': {exc}"
                raise PreflightError(msg, setting="model.id") from exc
        return
    p = Path(model_id).expanduser()
    hub_like = HUB_ID_RE.match(model_id) is not None
    if (
        model_id.startswith((".", "/", "~"))
        or model_id.count("/") > 1
        or (p.exists() and not hub_like)
    ):
        _check_folder(p, src)
        return
    if p.is_dir() and (p / "config.json").is_file():  # a relative folder that looks like an id
        _check_folder(p, src)
        return
    repo_id = entry.hub_id if entry is not None else model_id
    if not HUB_ID_RE.match(repo_id):
        raise PreflightError(
            f"{src}: model.id = {model_id!r} is not a model folder, a catalogue model or a "
            "Hub id like 'org/name'; see `spark-tui model list`",
            setting="model.id",
        )
    _check_hub_model(repo_id, cfg.model.revision.strip() or None, src)


def _check_folder(folder: Path, src: str) -> None:
    if not folder.exists():
        raise PreflightError(
            f"{src}: model.id: the model folder {folder} does not exist. "
            + _MOVED.format(key="model.id", source=src),
            setting="model.id",
            path=str(folder),
        )
    chk = check_folder(folder)
    if chk.problems:
        raise PreflightError(
            f"{src}: model.id: {folder} cannot be trained: " + " ".join(chk.problems),
            setting="model.id",
            path=str(folder),
        )


def _check_hub_model(repo_id: str, revision: str | None, src: str) -> None:
    """Cached: nothing to ask.  Not cached: the Hub must be reachable and let us in."""
    try:
        local_snapshot(repo_id, revision=revision)
        return
    except ModelSourceError as exc:
        cached_problem = str(exc)
    if is_offline():
        raise PreflightError(
            f"{src}: model.id = {repo_id!r}: {cached_problem}. HF_HUB_OFFLINE is set, so the "
            "trainer cannot download it either: unset HF_HUB_OFFLINE on a connected machine, "
            "or pick a local model folder.",
            setting="model.id",
        )
    hub = fetch_hub_config(repo_id, revision=revision)
    if hub.status == "ok":
        return  # the trainer downloads it
    if hub.status == "offline":
        raise PreflightError(
            f"{src}: model.id = {repo_id!r} is not in the Hugging Face cache and the Hub cannot "
            f"be reached ({hub.message}); connect to the internet, or run `hf download "
            f"{repo_id}` on a connected machine, or pick a local model folder.",
            setting="model.id",
        )
    raise PreflightError(f"{src}: model.id = {repo_id!r}: {hub.message}", setting="model.id")


# ---------------------------------------------------------------- the data


def _check_data(value: str, key: str, objective: str, src: str) -> None:
    text = (value or "").strip()
    if not text:
        raise PreflightError(
            f"{src}: {key} is empty; set it to a data file, a folder or a Hub dataset id",
            setting=key,
        )
    p = bundled_dataset_path(objective) if text == "default" else Path(text).expanduser()
    if p.exists():
        problem = _data_problem(p)
        if problem:
            raise PreflightError(f"{src}: {key}: {p}: {problem}", setting=key, path=str(p))
        return
    if text == "default":
        raise PreflightError(
            f"{src}: {key} = 'default': the bundled sample set {p.name} is missing from this "
            "installation; reinstall spark-tui or pick a data file",
            setting=key,
        )
    if text.startswith((".", "/", "~")) or p.suffix.lower() in DATA_SUFFIXES or text.count("/") > 1:
        raise PreflightError(
            f"{src}: {key}: the data file {p} does not exist. "
            + _MOVED.format(key=key, source=src),
            setting=key,
            path=str(p),
        )
    if HUB_ID_RE.match(text) and is_offline() and not _hub_dataset_cached(text):
        raise PreflightError(
            f"{src}: {key} = {text!r} is a Hub dataset id, but it is not in the local cache and "
            "HF_HUB_OFFLINE is set; unset it on a connected machine, or download the data and "
            f"set {key} to the file",
            setting=key,
        )


def _has_prepared_copy(data_dir: Path) -> bool:
    """What `trainer.resume_data` needs to resume on the data prepared at the start."""
    return all(
        (data_dir / name).is_file()
        for name in (names.DATA_SOURCES, names.DATA_REPORT, "dataset_dict.json")
    )


def _data_problem(p: Path) -> str:
    """What stops the loaders from reading `p` at all ('' when nothing obvious does)."""
    if p.is_dir():
        if (p / "dataset_dict.json").exists() or (p / "state.json").exists():
            return ""
        return (
            "a folder that is not a `datasets` save_to_disk folder (no dataset_dict.json or "
            "state.json); set the path to a data file inside it"
        )
    if not os.access(p, os.R_OK):
        return "cannot be read (permission denied); check its permissions"
    try:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if size == 0 or not head.strip():
        return "the file is empty; add rows to it or pick another file"
    if p.suffix.lower() in DATA_SUFFIXES:
        return ""
    if head.lstrip().startswith((b"{", b"[", b"PAR1")):
        return ""
    return f"unknown file type {p.suffix or '(no extension)'}; supported: {SUPPORTED}"


def _hub_dataset_cached(repo_id: str) -> bool:
    """Whether some copy of a Hub dataset is on disk (the Hub cache or the `datasets` cache)."""
    hub = paths.hf_cache_dir() / ("datasets--" + repo_id.replace("/", "--"))
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    ds_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(home) / "datasets")
    return hub.is_dir() or (ds_cache / repo_id.replace("/", "___")).is_dir()
