"""The ``general.*`` metadata of an exported GGUF: name, basename, size label, licence.

Hubs, Ollama and llama.cpp's own tools show these keys (and llama.cpp's file
naming convention is built from them), so a fine-tune should say what it is,
what it was built on, how big it is and under which licence.  The `gguf`
package's `Metadata` already reads what a model folder tells (the model card's
YAML front matter - ``license``, ``base_model``, ``tags`` ... -, config.json's
``_name_or_path``, the folder name, generation_config.json's sampling
defaults) the way llama.cpp's converter does; on top of that, values the caller
knows (the run name as ``finetune``, the catalogue's base model and licence)
win over guesses.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def size_label(n_params: int) -> str:
    """llama.cpp's size label for a dense model ("135M", "1.2B", "8.0B")."""
    import gguf

    return gguf.size_label(n_params, n_params, 0, 0)


def base_model_entry(model_id: str) -> dict[str, str]:
    """A ``general.base_model.N.*`` entry for a Hub id ("org/name") or a local folder."""
    import gguf

    path = Path(model_id).expanduser()
    if model_id.startswith((".", "/", "~")) or path.is_dir():
        return {"name": path.name or model_id}
    if model_id.startswith(("http://", "https://")):
        return {"name": model_id.rstrip("/").rsplit("/", 1)[-1], "repo_url": model_id}
    full, org, _basename, _ft, version, _size = gguf.Metadata.get_model_id_components(model_id)
    entry: dict[str, str] = {"name": gguf.Metadata.id_to_title(full or model_id)}
    if org:
        entry["organization"] = gguf.Metadata.id_to_title(org)
        entry["repo_url"] = f"https://huggingface.co/{org}/{full}"
    if version:
        entry["version"] = version
    return entry


def _basename_from(model_id: str | None) -> str | None:
    """ "SmolLM2" from "HuggingFaceTB/SmolLM2-135M-Instruct" (the library's own parsing)."""
    import gguf

    if not model_id:
        return None
    if model_id.count("/") > 1 or model_id.startswith((".", "/", "~")):
        model_id = Path(model_id).name  # a local path, not "org/name"
    full, _org, basename, *_ = gguf.Metadata.get_model_id_components(model_id)
    return basename or full


def build_metadata(
    model_dir: str | Path,
    n_params: int,
    *,
    name: str | None = None,
    basename: str | None = None,
    finetune: str | None = None,
    license: str | None = None,  # noqa: A002 - the GGUF key's own name
    base_model: str | Sequence[str] | None = None,
    label: str | None = None,
) -> Any:
    """A `gguf.Metadata` from the folder (as llama.cpp's converter reads it) plus what the
    caller knows; general.name, basename and size_label are always set."""
    import gguf

    model_dir = Path(model_dir)
    try:
        meta = gguf.Metadata.load(None, model_dir, None, n_params)
    except Exception as exc:  # a model card with broken YAML must not stop the export
        log.warning("model card metadata unreadable in %s: %s", model_dir, exc)
        meta = gguf.Metadata()
    if base_model:
        ids = [base_model] if isinstance(base_model, str) else list(base_model)
        meta.base_models = [base_model_entry(m) for m in ids]
    meta.name = name or meta.name or model_dir.name
    meta.finetune = finetune or meta.finetune
    if license:
        meta.license = license
    first_base = None
    if meta.base_models:
        first = meta.base_models[0]
        first_base = first.get("repo_url", "").removeprefix("https://huggingface.co/") or first.get(
            "name"
        )
    meta.basename = (
        basename
        or meta.basename
        or _basename_from(first_base)
        or _basename_from(meta.name)
        or meta.name
    )
    meta.size_label = label or meta.size_label or size_label(n_params)
    return meta


def general_keys(meta: Any) -> dict[str, Any]:
    """The headline general.* values, for reports and tests."""
    keys = {
        "general.name": meta.name,
        "general.basename": meta.basename,
        "general.size_label": meta.size_label,
        "general.finetune": meta.finetune,
        "general.license": (
            ",".join(meta.license) if isinstance(meta.license, list) else meta.license
        ),
    }
    for i, bm in enumerate(meta.base_models or []):
        for k, v in bm.items():
            keys[f"general.base_model.{i}.{k}"] = v
    return {k: v for k, v in keys.items() if v is not None}


def write_general(gw: Any, meta: Any) -> None:
    """All general.* keys the metadata holds (name first, as llama.cpp's converter does)."""
    meta.set_gguf_meta_model(gw)
