"""Streaming merge of LoRA / rsLoRA / DoRA adapters: one base tensor at a time.

Why: PEFT's `merge_and_unload` needs the whole base model in memory (about
140 GB for a 70B model in bf16), which does not fit on a 128 GB machine.  Here
every base tensor is read lazily from the checkpoint's own safetensors shards
(16/32-bit as stored, never 4-bit), merged in float32 and written into an output
shard that is flushed as soon as it is full; so peak memory is about one output
shard + one tensor + the adapter, whatever the model's size.

Merge rules (the same as PEFT 0.21's `LoraLayer.merge` for `nn.Linear`):
    W' = W + s·B·A             s = lora_alpha / r   (rsLoRA: lora_alpha / sqrt(r))
    DoRA: W' = m / ||W + s·B·A||_row · (W + s·B·A)     (norm per output row)
with `rank_pattern` / `alpha_pattern` matched by PEFT's own `get_pattern_key`
and `fan_in_fan_out` (Conv1D-style storage) transposing the update.  Saved full
tensors (`modules_to_save`, resized `embed_tokens` / `lm_head`) replace the base's;
`trainable_token_indices` overwrite their rows.  Anything else is reported by
`plan_merge` as a reason, and merge.py then takes the PEFT path.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import ExportError, Progress, report
from spark_tui.core.export.tensor_source import TensorSource

PREFIX = "base_model.model."
INDEX_NAME = "model.safetensors.index.json"
DEFAULT_SHARD_BYTES = 5_000_000_000  # transformers' max_shard_size="5GB"
MIN_SHARD_BYTES = 64 * 1024**2


def output_shard_bytes(largest_input_shard: int, in_bpw: float = 2, out_bpw: float = 2) -> int:
    """The output shard limit when none is given: the base's own largest shard (scaled by
    the dtype change), capped at transformers' 5 GB.  The merge buffers one output
    shard, so matching the input keeps its peak at about two input shards whatever the
    model's size, where a fixed 5 GB would hold a whole small model in memory."""
    scaled = int(largest_input_shard * out_bpw / max(in_bpw, 1))
    return max(MIN_SHARD_BYTES, min(DEFAULT_SHARD_BYTES, scaled))


ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
ITEMSIZE |= {"U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
FLOATS = ("F64", "F32", "F16", "BF16")
# adapter_config.json options that change what merging means; any true value -> PEFT path.
UNSUPPORTED_OPTIONS = (
    "lora_bias",
    "target_parameters",
    "layer_replication",
    "use_qalora",
    "use_bdlora",
    "alora_invocation_tokens",
    "arrow_config",
    "velora_config",
    "monteclora_config",
    "kasa_config",
    "mica",
    "megatron_config",
    "lora_ga_config",
    "corda_config",
    "ensure_weight_tying",
)
# Initialisations that also rewrite the base weights (the adapter is relative to them).
BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")

_LORA = re.compile(r"^(?P<m>.+)\.lora_(?P<ab>[AB])\.weight$")
_MAGNITUDE = re.compile(r"^(?P<m>.+)\.lora_magnitude_vector(?:\.weight)?$")
_TOKENS = re.compile(r"^(?P<m>.+)\.token_adapter\.trainable_tokens_delta$")
_EXOTIC = ("lora_", ".token_adapter.")  # any other LoRA piece: Embedding/Conv LoRA, lora_bias


@dataclass
class LoraModule:
    """One adapted Linear: where its pieces are and the scale PEFT gives it."""

    a_key: str = ""
    b_key: str = ""
    magnitude_key: str | None = None
    scale: float = 1.0
    transposed: bool = False  # the base stores this weight (in, out): Conv1D, fan_in_fan_out


@dataclass
class MergePlan:
    """What the streaming merge will do to each base tensor (names are base tensor names)."""

    lora: dict[str, LoraModule] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)  # base name -> adapter key
    tokens: dict[str, tuple[str, list[int]]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # replaced shapes
    vocab_rows: int | None = None  # new vocabulary size when the embeddings grew
    fan_in_fan_out: bool = False
    reason: str | None = None  # set: the streaming merge cannot do this adapter
    notes: list[str] = field(default_factory=list)


class AdapterTensors:
    """Lazy access to adapter_model.safetensors (or a legacy adapter_model.bin)."""

    def __init__(self, adapter_dir: Path):
        st = adapter_dir / "adapter_model.safetensors"
        self._bin: dict[str, Any] | None = None
        self._sf: Any = None
        if st.is_file():
            from safetensors import safe_open

            self._sf = safe_open(str(st), framework="pt")
            self._keys = list(self._sf.keys())
            return
        binf = adapter_dir / "adapter_model.bin"
        if not binf.is_file():
            raise ExportError(
                f"{st} is missing: {adapter_dir} has adapter_config.json but no adapter weights"
            )
        import torch

        self._bin = torch.load(str(binf), map_location="cpu", weights_only=True, mmap=True)
        self._keys = list(self._bin)

    def keys(self) -> list[str]:
        return self._keys

    def shape(self, key: str) -> tuple[int, ...]:
        if self._bin is not None:
            return tuple(self._bin[key].shape)
        return tuple(self._sf.get_slice(key).get_shape())

    def get(self, key: str) -> Any:
        return self._bin[key] if self._bin is not None else self._sf.get_tensor(key)

    def vocab_rows(self) -> int | None:
        """Rows of a saved (resized) input embedding, if the adapter has one."""
        rows = [self.shape(k)[0] for k in self._keys if _is_vocab(k) and "lm_head" not in k]
        return rows[0] if rows else None

    def close(self) -> None:
        self._sf = None
        self._bin = None


def lora_scale(acfg: dict[str, Any], module: str) -> tuple[int, float]:
    """(r, scale) for `module` as PEFT computes them, patterns included."""
    from peft.utils.other import get_pattern_key

    rank_pattern = acfg.get("rank_pattern") or {}
    alpha_pattern = acfg.get("alpha_pattern") or {}
    r = int(rank_pattern.get(get_pattern_key(rank_pattern.keys(), module), acfg.get("r", 8)))
    alpha = float(
        alpha_pattern.get(get_pattern_key(alpha_pattern.keys(), module), acfg.get("lora_alpha", 8))
    )
    return r, (alpha / math.sqrt(r) if acfg.get("use_rslora") else alpha / r)


def config_reason(acfg: dict[str, Any]) -> str | None:
    """Why this adapter_config.json needs the PEFT path, or None."""
    kind = str(acfg.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        return f"{kind} adapter"
    for opt in UNSUPPORTED_OPTIONS:
        if acfg.get(opt):
            return f"LoRA option {opt}={acfg[opt]!r}"
    if str(acfg.get("bias", "none")) != "none":
        return f"LoRA option bias={acfg['bias']!r} (trained base biases)"
    init = acfg.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(BASE_CHANGING_INITS):
        return f"init_lora_weights={init!r} (changes the base weights)"
    return None


def plan_merge(acfg: dict[str, Any], adapter: AdapterTensors, src: TensorSource) -> MergePlan:
    """Map every adapter tensor onto base tensors; `plan.reason` says why not, if not."""
    plan = MergePlan(fan_in_fan_out=bool(acfg.get("fan_in_fan_out")))
    plan.reason = config_reason(acfg)
    if plan.reason:
        return plan
    full: dict[str, str] = {}
    for key in adapter.keys():
        if not key.startswith(PREFIX):
            plan.reason = f"adapter tensor {key} has no {PREFIX!r} prefix"
            return plan
        k = key[len(PREFIX) :]
        if m := _LORA.match(k):
            mod = plan.lora.setdefault(m["m"] + ".weight", LoraModule())
            setattr(mod, "a_key" if m["ab"] == "A" else "b_key", key)
        elif m := _MAGNITUDE.match(k):
            plan.lora.setdefault(m["m"] + ".weight", LoraModule()).magnitude_key = key
        elif m := _TOKENS.match(k):
            plan.tokens[m["m"] + ".weight"] = (key, [])
        elif any(x in k for x in _EXOTIC):
            plan.reason = f"adapter tensor {k} (LoRA on an Embedding/Conv layer or lora_bias)"
            return plan
        else:
            full[k.replace(".base_layer.", ".")] = key
    plan.reason = (
        _check_lora(acfg, plan, adapter, src)
        or _check_full(acfg, plan, full, adapter, src)
        or _check_tokens(acfg, plan, adapter, src)
    )
    return plan


def _check_lora(
    acfg: dict[str, Any], plan: MergePlan, adapter: AdapterTensors, src: TensorSource
) -> str | None:
    dora = bool(acfg.get("use_dora"))
    for name, mod in plan.lora.items():
        if not (mod.a_key and mod.b_key):
            return f"{name}: lora_A or lora_B missing in the adapter"
        if name not in src:
            return f"adapted module {name[:-7]} has no tensor {name} in the base checkpoint"
        if dora != (mod.magnitude_key is not None):
            return f"{name}: use_dora={dora} but magnitude vector present={not dora}"
        a, b, w = adapter.shape(mod.a_key), adapter.shape(mod.b_key), src.shape(name)
        if len(a) != 2 or len(b) != 2 or len(w) != 2:
            return f"{name}: LoRA on a layer that is not a Linear (shape {w})"
        # PEFT decides fan_in_fan_out per layer type (it rewrites the config flag as it
        # goes): the shapes decide where they can, the flag only for square weights.
        if a[0] != b[1] or w not in ((b[0], a[1]), (a[1], b[0])):
            return f"{name}: adapter shapes {a}, {b} do not fit the base weight {w}"
        mod.transposed = w != (b[0], a[1]) or (w[0] == w[1] and plan.fan_in_fan_out)
        r, mod.scale = lora_scale(acfg, name[: -len(".weight")])
        if r != a[0]:
            return f"{name}: rank {a[0]} in the weights but r={r} in adapter_config.json"
        if src.dtype(name) not in FLOATS:
            return f"{name} is stored as {src.dtype(name)} (quantized), not 16/32-bit"
    return None


def _check_full(
    acfg: dict[str, Any],
    plan: MergePlan,
    full: dict[str, str],
    adapter: AdapterTensors,
    src: TensorSource,
) -> str | None:
    """Saved full tensors replace base ones; a grown vocabulary must grow consistently."""
    saved = [m.split(".")[-1] for m in acfg.get("modules_to_save") or []]
    tied_saved = [n for n in full if _is_vocab(n) and n.split(".")[-2] in saved]
    if "lm_head.weight" not in src and tied_saved:
        # PEFT trains a separate copy and unties input and output embeddings on merge
        return f"modules_to_save {tied_saved[0]} with tied embeddings (PEFT unties them)"
    for name, key in full.items():
        shape = adapter.shape(key)
        if name not in src:
            if name.endswith("lm_head.weight") and _same_as_embedding(full, key, adapter):
                plan.notes.append(f"{name}: tied to the embeddings in the base; not written")
                continue
            return f"adapter tensor {name} has no counterpart in the base checkpoint"
        base = src.shape(name)
        if shape != base:
            if len(shape) != 2 or shape[1:] != base[1:] or not _is_vocab(name):
                return f"adapter tensor {name} {shape} does not fit the base's {base}"
            if plan.vocab_rows not in (None, shape[0]):
                return f"{name}: vocabulary rows {shape[0]} differ from {plan.vocab_rows}"
            plan.vocab_rows = shape[0]
        plan.replace[name] = key
        plan.shapes[name] = shape
    if plan.vocab_rows is not None:
        old = [n for n in src.names() if _is_vocab(n) and n not in plan.replace]
        if old:
            return f"vocabulary grew to {plan.vocab_rows} but the adapter has no new {old[0]}"
    return None


def _check_tokens(
    acfg: dict[str, Any], plan: MergePlan, adapter: AdapterTensors, src: TensorSource
) -> str | None:
    """trainable_token_indices: a list means the input embedding, a dict names modules."""
    spec = acfg.get("trainable_token_indices")
    for name, (key, _) in list(plan.tokens.items()):
        module = name[: -len(".weight")]
        if isinstance(spec, dict):
            hits = [v for k, v in spec.items() if module == k or module.endswith("." + k)]
            indices = list(hits[0]) if hits else []
        else:
            indices = list(spec or []) if len(plan.tokens) == 1 else []
        if name not in src or not indices:
            return f"trainable tokens of {module}: no matching base tensor or token indices"
        rows = plan.shapes.get(name, src.shape(name))[0]
        if adapter.shape(key)[0] != len(indices) or max(indices) >= rows:
            return f"trainable tokens of {module}: indices do not fit {rows} rows"
        plan.tokens[name] = (key, indices)
    return None


def _is_vocab(name: str) -> bool:
    return name.endswith(("embed_tokens.weight", "lm_head.weight", "wte.weight"))


def _same_as_embedding(full: dict[str, str], head_key: str, adapter: AdapterTensors) -> bool:
    import torch

    emb = [k for n, k in full.items() if n.endswith(("embed_tokens.weight", "wte.weight"))]
    return bool(emb) and torch.equal(adapter.get(emb[0]), adapter.get(head_key))


def merge_weight(
    w: Any,
    a: Any,
    b: Any,
    scale: float,
    *,
    magnitude: Any = None,
    fan_in_fan_out: bool = False,
    out_dtype: Any = None,
    inplace: bool = False,
) -> Any:
    """W + s·B·A (DoRA: rescaled per output row to the magnitude m), in float32.

    `inplace`: `w` is a throw-away copy (fp32 bases are then updated without a second copy).
    """
    import torch

    merged = w.to(torch.float32)
    if merged is w and not inplace:
        merged = w.clone()
    rows = merged.T if fan_in_fan_out else merged  # (out_features, in_features) view
    rows.addmm_(b.to(torch.float32), a.to(torch.float32), alpha=scale)
    if magnitude is not None:
        norm = torch.linalg.norm(rows, dim=1)
        rows.mul_((magnitude.to(torch.float32) / norm).view(-1, 1))
    return merged.to(out_dtype or w.dtype)


def stored_dtype(src: TensorSource) -> str | None:
    """The floating dtype most of the checkpoint's bytes are stored in ("bfloat16", ...)."""
    sizes: dict[str, int] = {}
    for n in src.names():
        if (dt := src.dtype(n)) in FLOATS:
            sizes[dt] = sizes.get(dt, 0) + math.prod(src.shape(n))
    names = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}
    return names.get(max(sizes, key=sizes.__getitem__)) if sizes else None


def _out_dtype_name(stored: str, out_dtype: str) -> str:
    return (
        {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}[out_dtype]
        if (stored in FLOATS)
        else stored
    )


def plan_shards(
    plan: MergePlan, src: TensorSource, out_dtype: str, max_shard_bytes: int
) -> list[list[str]]:
    """Output tensor names grouped into shards, in base-file order (one pass, known upfront)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name in _ordered_names(src):
        shape = plan.shapes.get(name, src.shape(name))
        nbytes = math.prod(shape) * ITEMSIZE.get(_out_dtype_name(src.dtype(name), out_dtype), 4)
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def _ordered_names(src: TensorSource) -> list[str]:
    names = src.names()
    order = {f: i for i, f in enumerate(src.files)}
    return sorted(names, key=lambda n: order.get(src.file_of(n), 0))  # stable within a file


def stream_merge(
    plan: MergePlan,
    src: TensorSource,
    adapter: AdapterTensors,
    out_dir: Path,
    *,
    out_dtype: str,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    progress: Progress | None = None,
) -> int:
    """Write the merged tensors into `out_dir` as safetensors shards (+ index); returns count."""
    import torch
    from safetensors.torch import save_file

    dtype = getattr(torch, out_dtype)
    shards = plan_shards(plan, src, out_dtype, max_shard_bytes)
    n = len(shards)
    files = (
        ["model.safetensors"]
        if n == 1
        else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    )
    total_tensors = sum(len(s) for s in shards)
    weight_map: dict[str, str] = {}
    total_size = done = 0
    for fname, names in zip(files, shards, strict=True):
        buf: dict[str, Any] = {}
        for name in names:
            t = _merged_tensor(name, plan, src, adapter, dtype)
            buf[name] = t.contiguous()
            total_size += t.numel() * t.element_size()
            weight_map[name] = fname
            done += 1
            report(progress, "merge", done, total_tensors)
            del t
        save_file(buf, str(out_dir / fname), metadata={"format": "pt"})
        buf.clear()
    if n > 1:
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return n


def _merged_tensor(name: str, plan: MergePlan, src: TensorSource, adapter: Any, dtype: Any) -> Any:
    """One output tensor: replaced, LoRA-merged, token rows overwritten, or copied (cast)."""
    if name in plan.replace:
        t = adapter.get(plan.replace[name])
    else:
        t = src.load_torch(name)
    if name in plan.lora:
        mod = plan.lora[name]
        mag = adapter.get(mod.magnitude_key) if mod.magnitude_key else None
        t = merge_weight(
            t,
            adapter.get(mod.a_key),
            adapter.get(mod.b_key),
            mod.scale,
            magnitude=mag,
            fan_in_fan_out=mod.transposed,
            out_dtype=dtype,
            inplace=src.file_of(name) is not None,  # a fresh copy read from safetensors
        )
    elif t.is_floating_point():
        t = t.to(dtype)
    if name in plan.tokens:
        import torch

        key, indices = plan.tokens[name]
        t = t.index_copy(0, torch.tensor(indices), adapter.get(key).to(t.dtype))
    return t


def write_config(base_dir: Path, tmp: Path, dtype: str, vocab_rows: int | None) -> None:
    """The base's config.json with the output dtype, no quantization_config, grown vocab."""
    cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    cfg.pop("quantization_config", None)
    cfg["dtype"] = dtype
    if "torch_dtype" in cfg:
        cfg["torch_dtype"] = dtype
    if vocab_rows is not None:
        text = cfg.get("text_config")
        if isinstance(text, dict) and "vocab_size" in text:
            text["vocab_size"] = vocab_rows
        if "vocab_size" in cfg or not isinstance(text, dict):
            cfg["vocab_size"] = vocab_rows
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
