"""Where a model can come from, and what we can know about it before loading it.

Sources, in the order the Model step lists them:

* the bundled default model (SmolLM2-135M-Instruct, see `models.py`);
* the curated catalogue (`catalog.py`): numbers known offline;
* models already in the local Hugging Face cache (`$HF_HUB_CACHE`);
* any local folder (checked: config.json, weights, tokenizer, chat template);
* a Hub id typed by the user: when online, only `config.json` is read (a few
  kilobytes, short timeout) so the memory estimate works before any download;
  offline, the catalogue's numbers are used when the id is in it, and the
  result says so.

Gated models (Llama, Gemma, Mistral): the user must request access on the
model page and give a token through `HF_TOKEN` or `hf auth login`.  The token
is read from the environment or the Hugging Face cache when a request needs
it; it is never stored, logged or returned.

`trust_remote_code` stays off unless the user turns it on for that model;
`TRUST_REMOTE_CODE_WARNING` is the text shown next to the switch.

Nothing here prints; errors are `SparkError`s with complete messages.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core import catalog, paths
from spark_tui.core.catalog import Architecture, CatalogEntry
from spark_tui.core.errors import SparkError

HUB_TIMEOUT_S = 5.0
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

TRUST_REMOTE_CODE_WARNING = (
    "This model ships its own Python code (config.json has an 'auto_map'). "
    "trust_remote_code=True runs that code on this machine, with your user's rights, "
    "every time the model is loaded. Turn it on only for a repository you trust, "
    "and pin a revision so the code cannot change under you."
)

WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model*.bin", "*.pt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model")


class ModelSourceError(SparkError):
    """A model source that cannot be used; the message says what to do."""


# --------------------------------------------------------------------------- tokens


def token_source() -> str:
    """Where a Hugging Face token would come from: 'HF_TOKEN', 'HF cache', or '' (none).

    Only the source is returned, never the token.
    """
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var, "").strip():
            return var
    try:
        from huggingface_hub import constants

        token_path = Path(constants.HF_TOKEN_PATH)
    except Exception:
        token_path = (
            Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "token"
        )
    try:
        if token_path.is_file() and token_path.read_text().strip():
            return "HF cache"
    except OSError:
        pass
    return ""


def _token() -> str | None:
    """The token for one request (env first, then the HF cache).  Never stored."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return None


def gated_help(repo_id: str) -> str:
    """What to do for a gated model: request access, then provide a token."""
    src = token_source()
    have = (
        f"A token was found ({src}); if access is still refused, the request may not be "
        "approved yet or the token lacks read access."
        if src
        else "No token was found."
    )
    return (
        f"{repo_id} is gated: open https://huggingface.co/{repo_id} while logged in and "
        "accept the licence / request access (approval can take from seconds to days). "
        "Then give spark-tui a read token: `export HF_TOKEN=hf_...` or run `hf auth login` "
        "once. The token is read from the environment or the Hugging Face cache when needed "
        f"and never written to run files. {have}"
    )


def remote_code_warning(model_id: str) -> str:
    return f"{model_id}: {TRUST_REMOTE_CODE_WARNING}"


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


# --------------------------------------------------------------------------- local folders


@dataclass
class FolderCheck:
    """What a local model folder holds, and what stops it from being trained."""

    path: str
    has_config: bool = False
    has_weights: bool = False
    has_tokenizer: bool = False
    has_chat_template: bool = False
    weight_format: str = ""  # safetensors | bin | gguf | ""
    weight_files: list[str] = field(default_factory=list)
    weights_bytes: int = 0
    needs_remote_code: bool = False
    config: dict[str, Any] | None = None
    arch: Architecture | None = None
    problems: list[str] = field(default_factory=list)  # blocking
    warnings: list[str] = field(default_factory=list)  # shown, not blocking

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["arch"] = self.arch.to_dict() if self.arch else None
        d.pop("config", None)
        return d


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    if (folder / "additional_chat_templates").is_dir():
        return True
    tc = folder / "tokenizer_config.json"
    if tc.is_file():
        try:
            return bool(_read_json(tc).get("chat_template"))
        except (OSError, ValueError):
            return False
    return False


def _existing(p: Path) -> bool:
    """True for a file that really exists (a dangling HF-cache symlink does not)."""
    try:
        return p.is_file()
    except OSError:
        return False


def check_folder(path: str | Path) -> FolderCheck:
    """Check a local model folder; messages name the missing file and what to do."""
    folder = Path(path).expanduser()
    chk = FolderCheck(path=str(folder))
    if not folder.exists():
        chk.problems.append(f"{folder} does not exist")
        return chk
    if not folder.is_dir():
        chk.problems.append(
            f"{folder} is a file, not a model folder; pick the folder that holds config.json"
        )
        return chk

    # config.json
    cfg_path = folder / "config.json"
    if _existing(cfg_path):
        chk.has_config = True
        try:
            chk.config = _read_json(cfg_path)
        except (OSError, ValueError) as exc:
            chk.problems.append(f"{cfg_path} is not valid JSON ({exc}); re-download or re-save it")
        if chk.config is not None:
            chk.needs_remote_code = bool(chk.config.get("auto_map"))
            if chk.needs_remote_code:
                chk.warnings.append(TRUST_REMOTE_CODE_WARNING)
            try:
                chk.arch = Architecture.from_config(chk.config)
            except (ValueError, TypeError) as exc:
                chk.warnings.append(
                    f"could not read the architecture from config.json ({exc}); "
                    "the memory estimate is not available for this model"
                )
    else:
        chk.problems.append(
            f"{folder} has no config.json: it is not a Hugging Face model folder. Pick the "
            "folder written by save_pretrained or `hf download` (config.json, *.safetensors, "
            "tokenizer files)."
        )

    # weights
    files: list[Path] = []
    for pattern in WEIGHT_GLOBS:
        files.extend(p for p in folder.glob(pattern) if _existing(p))
    ggufs = [p for p in folder.glob("*.gguf") if _existing(p)]
    index_problem = ""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if _existing(index):
            try:
                shards = set(_read_json(index).get("weight_map", {}).values())
            except (OSError, ValueError):
                shards = set()
            missing = sorted(s for s in shards if not _existing(folder / s))
            if missing:
                index_problem = (
                    f"{folder}: {index_name} lists {len(shards)} shard(s) but "
                    f"{len(missing)} are missing ({', '.join(missing[:3])}"
                    f"{', ...' if len(missing) > 3 else ''}); the download is incomplete: "
                    "run `hf download` again"
                )
    if files and not index_problem:
        chk.has_weights = True
        chk.weight_format = (
            "safetensors" if any(p.suffix == ".safetensors" for p in files) else "bin"
        )
        chk.weight_files = sorted(p.name for p in files)
        chk.weights_bytes = sum(p.stat().st_size for p in files)
    elif index_problem:
        chk.problems.append(index_problem)
    elif ggufs:
        chk.weight_format = "gguf"
        chk.weight_files = sorted(p.name for p in ggufs)
        chk.problems.append(
            f"{folder} holds only GGUF weights ({ggufs[0].name}); training needs the "
            "original safetensors model. Download the Hugging Face version of this model."
        )
    else:
        chk.problems.append(
            f"{folder} has no weights: no *.safetensors or pytorch_model*.bin file. Copy the "
            "weight files in, or download the model again (`hf download ID --local-dir DIR`)."
        )

    # tokenizer
    if any(_existing(folder / f) for f in TOKENIZER_FILES) or (
        _existing(folder / "vocab.json") and _existing(folder / "merges.txt")
    ):
        chk.has_tokenizer = True
    else:
        chk.problems.append(
            f"{folder} has no tokenizer (tokenizer.json, tokenizer.model, or vocab.json + "
            "merges.txt). Copy the tokenizer files from the base model into this folder."
        )

    # chat template
    chk.has_chat_template = _has_chat_template(folder)
    if not chk.has_chat_template:
        chk.warnings.append(
            f"{folder} has no chat template (no 'chat_template' in tokenizer_config.json, no "
            "chat_template.jinja). Conversations need one: pick chatml or llama3 as the chat "
            "template in the Model step, or train on plain text."
        )
    return chk


# --------------------------------------------------------------------------- HF cache


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


def _blob_size(repo_dir: Path) -> int:
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
    get = f"download it in the Model step or run `hf download {repo_id}`"
    try:
        snap = Path(
            snapshot_download(name, revision=revision, cache_dir=str(cache), local_files_only=True)
        )
    except Exception as exc:  # LocalEntryNotFoundError, IncompleteSnapshotError, bad ids
        kind = type(exc).__name__
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
        has_weights = any(_existing(p) for pattern in WEIGHT_GLOBS for p in snap.glob(pattern))
        out.append(
            CachedModel(
                repo_id=repo_id,
                path=str(snap),
                revision=snap.name,
                size_bytes=_blob_size(repo_dir),
                has_config=_existing(snap / "config.json"),
                has_weights=has_weights,
            )
        )
    return out


# --------------------------------------------------------------------------- Hub


@dataclass
class HubConfig:
    repo_id: str
    status: str  # ok | gated | not_found | offline | error
    message: str = ""
    config: dict[str, Any] | None = None


def _http_get_config(repo_id: str, revision: str | None, timeout: float) -> dict[str, Any]:
    """GET config.json from the Hub (raises huggingface_hub errors / httpx errors)."""
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    url = hf_hub_url(repo_id, "config.json", revision=revision or None)
    headers = build_hf_headers(token=_token() or False)
    response = get_session().get(url, headers=headers, timeout=timeout, follow_redirects=True)
    hf_raise_for_status(response)
    data = json.loads(response.content)
    if not isinstance(data, dict):
        raise ValueError("config.json is not a JSON object")
    return data


def fetch_hub_config(
    repo_id: str, *, revision: str | None = None, timeout: float = HUB_TIMEOUT_S
) -> HubConfig:
    """Read only config.json of a Hub model.  Never raises: the status says what happened."""
    if is_offline():
        return HubConfig(repo_id, "offline", "HF_HUB_OFFLINE is set: the Hub was not asked")
    try:
        from huggingface_hub import errors as hf_errors
    except Exception:  # pragma: no cover - huggingface_hub is a dependency
        return HubConfig(repo_id, "error", "huggingface_hub is not installed")
    try:
        cfg = _http_get_config(repo_id, revision, timeout)
    except hf_errors.GatedRepoError:
        return HubConfig(repo_id, "gated", gated_help(repo_id))
    except hf_errors.RepositoryNotFoundError:
        hint = "" if token_source() else " (if it is private, log in with `hf auth login`)"
        return HubConfig(repo_id, "not_found", f"no model {repo_id} on the Hugging Face Hub{hint}")
    except (hf_errors.EntryNotFoundError, hf_errors.RevisionNotFoundError) as exc:
        return HubConfig(repo_id, "error", f"{repo_id}: {_first_line(exc)}")
    except hf_errors.HfHubHTTPError as exc:
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code in (401, 403):
            return HubConfig(repo_id, "gated", gated_help(repo_id))
        return HubConfig(
            repo_id, "error", f"the Hub answered an error for {repo_id}: {_first_line(exc)}"
        )
    except hf_errors.OfflineModeIsEnabled:
        return HubConfig(repo_id, "offline", "HF_HUB_OFFLINE is set: the Hub was not asked")
    except (ConnectionError, TimeoutError) as exc:
        return HubConfig(repo_id, "offline", f"the Hub could not be reached ({_first_line(exc)})")
    except (OSError, ValueError) as exc:
        return HubConfig(
            repo_id, "error", f"config.json of {repo_id} is unreadable: {_first_line(exc)}"
        )
    except Exception as exc:  # httpx connection errors, timeouts, DNS failures
        return HubConfig(repo_id, "offline", f"the Hub could not be reached ({_first_line(exc)})")
    return HubConfig(repo_id, "ok", "", cfg)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


# --------------------------------------------------------------------------- resolve


@dataclass
class ModelInfo:
    """Everything the Model step's card and `spark-tui model info` show."""

    id: str
    source: str  # bundled | catalogue | cache | local | hub
    name: str
    hub_id: str | None = None
    arch: Architecture | None = None
    params: int | None = None
    license: str | None = None
    gated: bool | None = None
    chat_template: str | None = None  # family name, "present", or None (unknown / missing)
    present_locally: bool = False
    local_path: str | None = None
    size_on_disk: int | None = None
    needs_remote_code: bool = False
    folder: FolderCheck | None = None
    messages: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def context(self) -> int | None:
        return self.arch.max_context if self.arch else None

    def size_label(self) -> str:
        if not self.params:
            return "unknown"
        return f"{self.params / 1e9:.1f}B" if self.params >= 1e9 else f"{self.params / 1e6:.0f}M"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "name": self.name,
            "hub_id": self.hub_id,
            "params": self.params,
            "size": self.size_label(),
            "license": self.license,
            "gated": self.gated,
            "chat_template": self.chat_template,
            "present_locally": self.present_locally,
            "local_path": self.local_path,
            "size_on_disk": self.size_on_disk,
            "needs_remote_code": self.needs_remote_code,
            "arch": self.arch.to_dict() if self.arch else None,
            "folder": self.folder.to_dict() if self.folder else None,
            "messages": list(self.messages),
            "warnings": list(self.warnings),
        }


def _looks_like_path(model_id: str) -> bool:
    return model_id.startswith((".", "/", "~")) or Path(model_id).expanduser().exists()


def _from_entry(entry: CatalogEntry, model_id: str) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        source="catalogue",
        name=entry.name,
        hub_id=entry.hub_id,
        arch=entry.arch,
        params=entry.params,
        license=entry.license,
        gated=entry.gated,
        chat_template=entry.chat_template,
    )


def _attach_cache(info: ModelInfo, repo_id: str) -> None:
    snap = cached_snapshot(repo_id)
    if snap is None:
        return
    chk = check_folder(snap)
    info.local_path = str(snap)
    info.folder = chk
    info.present_locally = chk.has_weights and chk.has_config
    info.size_on_disk = _blob_size(snap.parent.parent)
    if info.arch is None and chk.arch is not None:
        info.arch = chk.arch
        info.params = chk.arch.param_count()
    if chk.has_chat_template and not info.chat_template:
        info.chat_template = "present"
    info.needs_remote_code = info.needs_remote_code or chk.needs_remote_code


def resolve(
    model_id: str,
    *,
    online: bool | None = None,
    timeout: float = HUB_TIMEOUT_S,
) -> ModelInfo:
    """What is known about `model_id` (bundled "default", catalogue id/alias, folder, Hub id).

    `online=None` asks the Hub only for ids that are neither in the catalogue nor
    cached (and never when HF_HUB_OFFLINE is set); `online=False` never asks;
    `online=True` also refreshes catalogue entries from the Hub.
    """
    model_id = (model_id or "").strip() or "default"

    # 1. the bundled default model
    if model_id.lower() == "default":
        from spark_tui.core import models

        entry = catalog.get("default")
        assert entry is not None
        info = _from_entry(entry, "default")
        info.source = "bundled"
        info.hub_id = models.DEFAULT_HUB_ID
        if models.default_model_ready():
            info.present_locally = True
            info.local_path = str(models.default_model_dir())
            info.folder = check_folder(models.default_model_dir())
        else:
            info.messages.append(
                "Converted from the bundled GGUF on first use (about a minute on a laptop CPU)."
            )
        return info

    # 2. a local folder
    if _looks_like_path(model_id):
        chk = check_folder(model_id)
        folder = Path(model_id).expanduser()
        info = ModelInfo(
            id=model_id,
            source="local",
            name=folder.name or model_id,
            arch=chk.arch,
            params=chk.arch.param_count() if chk.arch else None,
            chat_template="present" if chk.has_chat_template else None,
            present_locally=chk.ok,
            local_path=str(folder.resolve()) if folder.exists() else str(folder),
            size_on_disk=chk.weights_bytes or None,
            needs_remote_code=chk.needs_remote_code,
            folder=chk,
        )
        base = (chk.config or {}).get("_name_or_path") if chk.config else None
        entry = catalog.by_hub_id(base) if isinstance(base, str) else None
        if entry is not None:
            info.license, info.gated = entry.license, entry.gated
            info.messages.append(f"Saved from {entry.hub_id} ({entry.license}).")
        info.warnings.extend(chk.problems)
        info.warnings.extend(chk.warnings)
        return info

    # 3. the catalogue
    entry = catalog.get(model_id)
    if entry is not None:
        info = _from_entry(entry, entry.id)
        _attach_cache(info, entry.hub_id)
        if online:
            hub = fetch_hub_config(entry.hub_id, timeout=timeout)
            if hub.status == "ok" and hub.config:
                try:
                    info.arch = Architecture.from_config(hub.config)
                    info.needs_remote_code = bool(hub.config.get("auto_map"))
                except ValueError:
                    pass
            elif hub.status == "offline":
                info.messages.append(f"Offline ({hub.message}): using the catalogue's numbers.")
            elif hub.status not in ("ok", "gated"):
                info.messages.append(
                    f"Could not read config.json from the Hub: using the catalogue's numbers. "
                    f"{hub.message}"
                )
        _weights_message(info)
        if entry.gated and not info.present_locally:
            info.messages.append(gated_help(entry.hub_id))
        if entry.notes:
            info.messages.append(entry.notes)
        if info.needs_remote_code:
            info.warnings.append(TRUST_REMOTE_CODE_WARNING)
        return info

    # 4. a Hub id
    if not HUB_ID_RE.match(model_id):
        raise ModelSourceError(
            f"{model_id!r} is not a local folder, a catalogue model or a Hub id like "
            "'org/name'; see `spark-tui model list`"
        )
    info = ModelInfo(id=model_id, source="hub", name=model_id.split("/", 1)[1], hub_id=model_id)
    _attach_cache(info, model_id)
    if info.local_path:
        info.source = "cache"
    if info.arch is None and online is not False:
        hub = fetch_hub_config(model_id, timeout=timeout)
        if hub.status == "ok" and hub.config:
            try:
                info.arch = Architecture.from_config(hub.config)
                info.params = info.arch.param_count()
            except ValueError as exc:
                info.warnings.append(
                    f"config.json of {model_id} is not a decoder-only language model this "
                    f"estimator understands ({exc})"
                )
            info.needs_remote_code = bool(hub.config.get("auto_map"))
            info.messages.append("Read config.json from the Hub (weights not downloaded).")
        elif hub.status == "gated":
            info.gated = True
            info.messages.append(hub.message)
        elif hub.status == "not_found":
            raise ModelSourceError(hub.message)
        else:
            info.messages.append(
                f"Offline ({hub.message}): no config.json for {model_id} and it is not in "
                "the catalogue, so no memory estimate is possible."
            )
    elif info.arch is None:
        info.messages.append("Not asked the Hub (offline): no architecture known.")
    _weights_message(info)
    if info.needs_remote_code:
        info.warnings.append(TRUST_REMOTE_CODE_WARNING)
    return info


def _weights_message(info: ModelInfo) -> None:
    if info.present_locally:
        info.messages.insert(0, f"Weights present locally: {info.local_path}")
    else:
        where = "partly downloaded" if info.local_path else "not downloaded"
        info.messages.insert(
            0,
            f"Weights {where}: loading will download them from the Hub "
            f"({info.hub_id}); offline, that will fail.",
        )


def architecture_for(model_id: str) -> Architecture | None:
    """The architecture of a model, from local knowledge only (catalogue, folder, HF cache)."""
    model_id = (model_id or "").strip() or "default"
    entry = catalog.get(model_id)
    if entry is not None:
        return entry.arch
    if _looks_like_path(model_id):
        return check_folder(model_id).arch
    if HUB_ID_RE.match(model_id):
        snap = cached_snapshot(model_id)
        if snap is not None and _existing(snap / "config.json"):
            try:
                return Architecture.from_config(_read_json(snap / "config.json"))
            except (OSError, ValueError):
                return None
    return None


def hub_architecture(
    model_id: str, *, timeout: float = HUB_TIMEOUT_S
) -> tuple[Architecture | None, str]:
    """Architecture from local knowledge, else from the Hub's config.json.

    Returns (arch or None, message): the message says where the numbers came
    from (or why there are none: offline, gated, not found).
    """
    arch = architecture_for(model_id)
    if arch is not None:
        return arch, ""
    if not HUB_ID_RE.match(model_id):
        return None, f"{model_id!r} is not a known model, folder or Hub id"
    hub = fetch_hub_config(model_id, timeout=timeout)
    if hub.status == "ok" and hub.config:
        try:
            return Architecture.from_config(hub.config), "read config.json from the Hub"
        except ValueError as exc:
            return None, f"config.json not understood: {exc}"
    return None, hub.message
