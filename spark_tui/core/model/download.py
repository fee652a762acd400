"""Download a Hub model into the Hugging Face cache, with bytes, a percentage and time left.

`transformers.from_pretrained` downloads silently in the training process (its bars are
off there: they would fill train.log), so an 8B model's 16 GB went by as minutes of
"loading model".  Here huggingface_hub's own `snapshot_download` fetches what loading
needs (config, tokenizer, one weight format: safetensors, else the .bin shards; remote
code only when the user trusts it; never `original/` checkpoints, GGUF or ONNX copies),
and a watcher thread reports the bytes written into the repo's cache folder against the
sizes the Hub listed.  Reading the cache folder rather than a tqdm hook keeps the figure
right across huggingface_hub versions and for both HTTP and Xet transfers.

A stop asked for (the Train screen's Stop, Ctrl+C in the CLI) ends the wait at once; the
partial files stay in the cache and huggingface_hub resumes them next time.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spark_tui.core.base import paths
from spark_tui.core.model.folder import ModelSourceError
from spark_tui.core.model.hub import hub_error

# (stage, bytes done, bytes total): the same events as the other long steps.
ByteProgress = Callable[[str, float, float | None], None]
STAGE = "download"
POLL_S = 0.5

_CONFIG = ("config.json", "generation_config.json", "*.safetensors.index.json",
           "pytorch_model*.bin.index.json", "preprocessor_config.json")  # fmt: skip
_TOKENIZER = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*",
              "merges.txt", "*.tiktoken", "spiece.model", "chat_template*")  # fmt: skip
_BIN_WEIGHTS = ("pytorch_model*.bin", "model*.bin")


@dataclass
class DownloadPlan:
    repo_id: str
    revision: str | None  # as the user gave it (None: main), so refs/<it> is written
    commit: str = ""  # what the Hub resolved it to when asked
    files: dict[str, int] = field(default_factory=dict)  # name -> size in bytes
    skipped: list[str] = field(default_factory=list)  # repo files not needed to load it

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def choose_files(sizes: dict[str, int], *, trust_remote_code: bool = False) -> dict[str, int]:
    """The files `from_pretrained` needs from a repo listing (top-level files only)."""
    top = {n: s for n, s in sizes.items() if "/" not in n}
    patterns = [*_CONFIG, *_TOKENIZER]
    if any(fnmatch.fnmatch(n, "*.safetensors") for n in top):
        patterns.append("*.safetensors")
    else:
        patterns.extend(_BIN_WEIGHTS)
    if trust_remote_code:
        patterns.append("*.py")
    return {n: s for n, s in top.items() if any(fnmatch.fnmatch(n, p) for p in patterns)}


def plan_download(
    repo_id: str, *, revision: str | None = None, trust_remote_code: bool = False
) -> DownloadPlan:
    """Ask the Hub for the repo's files and sizes; raises ModelSourceError saying what to do."""
    from huggingface_hub import HfApi

    from spark_tui.core.model.hub import is_offline

    if is_offline():
        raise ModelSourceError(
            f"{repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"unset it, or download the model on a machine online (`hf download {repo_id}`)"
        )
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:  # gated, not found, no network: one clear sentence each
        raise ModelSourceError(hub_error(repo_id, exc)[1]) from exc
    sizes = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    files = choose_files(sizes, trust_remote_code=trust_remote_code)
    if not any(fnmatch.fnmatch(n, g) for n in files for g in ("*.safetensors", "*.bin")):
        raise ModelSourceError(
            f"{repo_id} has no safetensors or PyTorch weights at its top level; "
            "pick a transformers model (GGUF-only and adapter-only repos cannot be trained)"
        )
    skipped = sorted(set(sizes) - set(files))
    return DownloadPlan(repo_id, revision, info.sha or "", files, skipped)


def _bytes_in(folder: Path) -> int:
    total = 0
    try:
        for p in folder.iterdir():
            try:
                total += p.stat().st_size
            except OSError:
                continue
    except OSError:
        pass
    return total


def download_model(
    plan: DownloadPlan,
    *,
    progress: ByteProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache_dir: Path | None = None,
) -> Path:
    """Fetch `plan.files` into the cache; returns the snapshot folder.

    Raises ModelSourceError (with what to do) on a Hub error, InterruptedError when
    `should_stop()` turns true (the download thread is left to the process's exit).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import tqdm as hf_tqdm

    class Silent(hf_tqdm):  # its bars would write over the TUI: the watcher reports instead
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    cache = Path(cache_dir) if cache_dir else paths.hf_cache_dir()
    blobs = cache / ("models--" + plan.repo_id.replace("/", "--")) / "blobs"
    # Bytes in the repo's blobs (partial files included) count as done; a folder already
    # bigger than this download holds other revisions: then only what is added counts.
    start = _bytes_in(blobs)
    total = float(plan.total_bytes) or None
    offset = start if total is not None and start > total else 0
    result: dict[str, object] = {}

    def fetch() -> None:
        try:
            result["path"] = snapshot_download(
                plan.repo_id, revision=plan.revision, cache_dir=str(cache),
                allow_patterns=sorted(plan.files), tqdm_class=Silent,
            )  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            result["error"] = exc

    worker = threading.Thread(target=fetch, name="hf-download", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(POLL_S)
        if should_stop is not None and should_stop():
            raise InterruptedError(f"download of {plan.repo_id} stopped; it resumes next time")
        if progress is not None:
            done = float(_bytes_in(blobs) - offset)
            progress(STAGE, min(done, total) if total else done, total)
    if "error" in result:
        exc = result["error"]
        raise ModelSourceError(hub_error(plan.repo_id, exc)[1]) from exc  # type: ignore[arg-type]
    if progress is not None:
        progress(STAGE, total or 0.0, total)
    return Path(str(result["path"]))


def needs_download(model_path: str, *, revision: str | None = None) -> bool:
    """True for a Hub id whose complete snapshot is not in the cache (and the Hub is allowed)."""
    from spark_tui.core.model.hf_cache import local_snapshot
    from spark_tui.core.model.hub import HUB_ID_RE, is_offline

    if is_offline() or Path(model_path).expanduser().exists() or not HUB_ID_RE.match(model_path):
        return False
    try:
        local_snapshot(model_path, revision=revision)
    except ModelSourceError:
        return True
    return False
