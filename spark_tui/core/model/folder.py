"""A local model folder, checked before anything loads it: config.json, weights, tokenizer,
chat template, and whether it ships its own code.

`trust_remote_code` stays off unless the user turns it on for that model;
`TRUST_REMOTE_CODE_WARNING` is the text shown next to the switch.  The HF-cache
snapshots (`hf_cache.py`) and `sources.resolve` use the same check, and raise
`ModelSourceError` (defined here, the lowest of them) with complete messages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base.errors import SparkError
from spark_tui.core.model.architecture import Architecture

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


def remote_code_warning(model_id: str) -> str:
    return f"{model_id}: {TRUST_REMOTE_CODE_WARNING}"


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


def read_json(path: Path) -> dict[str, Any]:
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
            return bool(read_json(tc).get("chat_template"))
        except (OSError, ValueError):
            return False
    return False


def file_exists(p: Path) -> bool:
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
    if file_exists(cfg_path):
        chk.has_config = True
        try:
            chk.config = read_json(cfg_path)
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
        files.extend(p for p in folder.glob(pattern) if file_exists(p))
    ggufs = [p for p in folder.glob("*.gguf") if file_exists(p)]
    index_problem = ""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if file_exists(index):
            try:
                shards = set(read_json(index).get("weight_map", {}).values())
            except (OSError, ValueError):
                shards = set()
            missing = sorted(s for s in shards if not file_exists(folder / s))
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
    if any(file_exists(folder / f) for f in TOKENIZER_FILES) or (
        file_exists(folder / "vocab.json") and file_exists(folder / "merges.txt")
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
