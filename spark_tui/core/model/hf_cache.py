"""Models in the local Hugging Face cache (`$HF_HUB_CACHE`): list them, find a snapshot.

Nothing here downloads: `local_snapshot` finds a complete snapshot the way
huggingface_hub does (`refs/main` -> `snapshots/<commit>/`) or raises
`ModelSourceError` naming the command that downloads it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from spark_tui.core.base import paths
from spark_tui.core.model.folder import WEIGHT_GLOBS, ModelSourceError, check_folder, file_exists


@dataclass
class CachedModel:
    repo_id: str
    path: str  # the snapshot folder
    revision: str
    size_bytes: int
    has_config: bool
    has_weights: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _repo_dir(repo_id: str, cache: Path) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _snapshot(repo_dir: Path) -> Path | None:
    """The snapshot `refs/main` points to, else the most recently changed one."""
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return None
    ref = repo_dir / "refs" / "main"
    try:
        rev = ref.read_text().strip()
        if rev and (snaps / rev).is_dir():
            return snaps / rev
    except OSError:
        pass
    cands = [p for p in snaps.iterdir() if p.is_dir()]
    return max(cands, key=lambda p: p.stat().st_mtime) if cands else None


def blob_size(repo_dir: Path) -> int:
    total = 0
    blobs = repo_dir / "blobs"
    if blobs.is_dir():
        for p in blobs.iterdir():
            try:
                if p.is_file() and not p.name.endswith(".incomplete"):
                    total += p.stat().st_size
            except OSError:
                continue
    return total


def cached_snapshot(repo_id: str, cache_dir: Path | None = None) -> Path | None:
    """The local snapshot folder of a Hub model, if any of it is in the HF cache."""
    cache = cache_dir or paths.hf_cache_dir()
    repo_dir = _repo_dir(repo_id, cache)
    if not repo_dir.is_dir():
        # The cache folder name keeps the repo's case; look case-insensitively.
        want = repo_dir.name.lower()
        try:
            repo_dir = next((p for p in cache.iterdir() if p.name.lower() == want), repo_dir)
        except OSError:
            return None
    return _snapshot(repo_dir) if repo_dir.is_dir() else None


def _cache_repo_name(repo_id: str, cache: Path) -> str:
    """`repo_id` spelt as its cache folder is (the Hub is case-insensitive, the cache is not)."""
    want = _repo_dir(repo_id, cache).name
    if (cache / want).is_dir():
        return repo_id
    try:
        for p in cache.iterdir():
            if p.name.lower() == want.lower() and p.is_dir():
                return p.name[len("models--") :].replace("--", "/", 1)
    except OSError:
        pass
    return repo_id


def local_snapshot(
    repo_id: str, *, revision: str | None = None, cache_dir: Path | None = None
) -> Path:
    """The complete snapshot of a Hub model in the local HF cache; never downloads.

    huggingface_hub's own lookup (`snapshot_download(local_files_only=True)`) follows
    `refs/<revision>` (default main) to `snapshots/<commit>/`; the folder must then hold
    what loading needs (config.json, all weight shards, a tokenizer).  Raises
    ModelSourceError naming the id and the command that downloads it.
    """
    from huggingface_hub import snapshot_download

    cache = Path(cache_dir) if cache_dir else paths.hf_cache_dir()
    name = _cache_repo_name(repo_id, cache)
    get = f"download it in the Model step (Ctrl+D) or run `hf download {repo_id}`"
    try:
        snap = Path(
            snapshot_download(name, revision=revision, cache_dir=str(cache), local_files_only=True)
        )
    except Exception as exc:  # LocalEntryNotFoundError, IncompleteSnapshotError, bad ids
        kind = type(exc).__name__
        # huggingface_hub >= 2 calls a snapshot incomplete when any repo file is missing,
        # also those loading never reads (original/ checkpoints, GGUF copies) that our
        # download and `hf download --include` leave out: check_folder below judges.
        partial = _snapshot(_repo_dir(name, cache)) if "Incomplete" in kind else None
        if partial is not None and not check_folder(partial).problems:
            return partial
        what = (
            "is only partly downloaded"
            if "Incomplete" in kind
            else f"is not in the Hugging Face cache ({cache})"
        )
        rev = f" at revision {revision}" if revision else ""
        raise ModelSourceError(f"model {repo_id}{rev} {what}; {get}") from exc
    chk = check_folder(snap)
    if chk.problems:
        raise ModelSourceError(
            f"the cached copy of {repo_id} ({snap}) is incomplete: {chk.problems[0]} "
            f"Finish the download: {get}"
        )
    return snap


def list_cached_models(cache_dir: Path | None = None) -> list[CachedModel]:
    """Model repos in the Hugging Face cache (including partial downloads), by name."""
    cache = cache_dir or paths.hf_cache_dir()
    out: list[CachedModel] = []
    try:
        entries = sorted(cache.iterdir())
    except OSError:
        return out
    for repo_dir in entries:
        if not repo_dir.name.startswith("models--") or not repo_dir.is_dir():
            continue
        repo_id = repo_dir.name[len("models--") :].replace("--", "/", 1)
        snap = _snapshot(repo_dir)
        if snap is None:
            continue
        has_weights = any(file_exists(p) for pattern in WEIGHT_GLOBS for p in snap.glob(pattern))
        out.append(
            CachedModel(
                repo_id=repo_id,
                path=str(snap),
                revision=snap.name,
                size_bytes=blob_size(repo_dir),
                has_config=file_exists(snap / "config.json"),
                has_weights=has_weights,
            )
        )
    return out
