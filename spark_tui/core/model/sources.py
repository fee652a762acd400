"""Where a model can come from, and what we can know about it before loading it.

Sources, in the order the Model step lists them:

* the bundled default model (SmolLM2-135M-Instruct, see `resolve.py`);
* the curated catalogue (`catalog.py`): numbers known offline;
* models already in the local Hugging Face cache (`hf_cache.py`);
* any local folder (checked by `folder.py`: config.json, weights, tokenizer,
  chat template);
* a Hub id typed by the user (`hub.py`): when online, only `config.json` is
  read so the memory estimate works before any download; offline, the
  catalogue's numbers are used when the id is in it, and the result says so.

This module puts them together: `resolve` (what the Model step's card and
`spark-tui model info` show) and `architecture_for` / `hub_architecture` (the
shapes the memory estimator needs).  Nothing here prints; errors are
`SparkError`s with complete messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.model import catalog
from spark_tui.core.model.architecture import Architecture
from spark_tui.core.model.catalog import CatalogEntry
from spark_tui.core.model.folder import (
    TRUST_REMOTE_CODE_WARNING,
    FolderCheck,
    ModelSourceError,
    check_folder,
    file_exists,
    read_json,
)
from spark_tui.core.model.hf_cache import blob_size, cached_snapshot
from spark_tui.core.model.hub import HUB_ID_RE, HUB_TIMEOUT_S, fetch_hub_config, gated_help


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
    info.size_on_disk = blob_size(snap.parent.parent)
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
        from spark_tui.core.model import resolve as models

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
        if snap is not None and file_exists(snap / "config.json"):
            try:
                return Architecture.from_config(read_json(snap / "config.json"))
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
