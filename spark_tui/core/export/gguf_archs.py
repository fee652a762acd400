"""What differs between the architectures the GGUF writer handles, in one place.

llama.cpp does not read a Hugging Face config: each GGUF arch has its own
tensor layout and metadata keys, and a key it lacks falls back to a default
that may be wrong for the model (Gemma 2 soft-caps with 50/30 whether or not the
model does).  So for every architecture this module says which layout
transforms the tensors need, which tensors llama.cpp wants generated from the
config, which extra keys to write, and which configs llama.cpp would run
differently from transformers (refused with the routes that do work).

* ``llama`` (Llama 2/3.x, TinyLlama, SmolLM2, Mistral): Q/K permuted from HF's
  rotate-half layout; Llama 3.1+ ``llama3`` RoPE becomes a ``rope_freqs`` tensor.
* ``qwen2``: NeoX RoPE (no permutation), Q/K/V biases.
* ``gemma2``: HF stores each RMSNorm weight as ``w`` and scales by ``1 + w``;
  llama.cpp multiplies by the stored value, so ``+1`` is applied to every norm.
  Soft-capping, the sliding window and head_dim go in as keys; llama.cpp scales
  the embeddings by sqrt(hidden) and reuses them as the output (tied) itself.
* ``phi3``: fused ``qkv_proj`` / ``gate_up_proj`` stay fused (llama.cpp splits
  them); longrope's per-pair factors become ``rope_factors_long`` /
  ``rope_factors_short`` and its attention factor a key, as llama.cpp's converter
  computes it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spark_tui.core.export.common import UnsupportedModelError

# HF architecture -> GGUF architecture name.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Gemma2ForCausalLM": "gemma2",
    "Phi3ForCausalLM": "phi3",
}
FAMILIES = "Llama 2/3.x, TinyLlama, SmolLM2, Mistral, Qwen2/2.5, Gemma 2, Phi-3/3.5"
# RoPE scaling each GGUF arch can carry (as keys or generated tensors) in llama.cpp.
ROPE_TYPES: dict[str, tuple[str, ...]] = {
    "llama": ("default", "linear", "llama3", "yarn"),
    "qwen2": ("default", "linear", "yarn"),
    "gemma2": ("default",),
    "phi3": ("default", "longrope", "su"),
}


def other_routes(hf_arch: str | None) -> str:
    """The deploy routes that remain when our writer cannot do a model."""
    from spark_tui.core.export.modelfile import OLLAMA_SAFETENSORS_ARCHS

    routes = "export with a llama.cpp checkout (`--llama-cpp DIR`)"
    if hf_arch in OLLAMA_SAFETENSORS_ARCHS:
        routes += (
            ", or let Ollama import the merged safetensors folder itself "
            "(Modelfile.safetensors, `ollama create -f Modelfile.safetensors`)"
        )
    return routes


# ---------------------------------------------------------------------------
# config readers (transformers 4 and 5 spell RoPE settings differently)


def rope_settings(config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """(rope theta, scaling dict) across the transformers 4 and 5 config spellings."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    merged = {**params, **scaling}
    theta = config.get("rope_theta") or merged.get("rope_theta") or 10000.0
    return float(theta), merged


def rope_type_of(scaling: dict[str, Any]) -> str:
    return str(scaling.get("rope_type") or scaling.get("type") or "default").lower()


def head_dim_of(config: dict[str, Any]) -> int:
    hd = config.get("head_dim")
    if hd:
        return int(hd)
    return int(config["hidden_size"]) // int(config["num_attention_heads"])


def rope_dims_of(config: dict[str, Any]) -> int:
    """Rotary dimensions per head (Phi-4-mini style partial rotary rotates a fraction)."""
    _, sc = rope_settings(config)
    frac = config.get("partial_rotary_factor") or sc.get("partial_rotary_factor") or 1.0
    return int(head_dim_of(config) * float(frac))


def _orig_ctx(config: dict[str, Any], scaling: dict[str, Any]) -> int | None:
    v = scaling.get("original_max_position_embeddings") or config.get(
        "original_max_position_embeddings"
    )
    return int(v) if v else None


def llama3_rope_factors(config: dict[str, Any]) -> np.ndarray:
    """Per-frequency divisors for Llama 3.1+ RoPE scaling (llama.cpp's `rope_freqs`).

    Computed in float32 torch arithmetic, as transformers and llama.cpp's converter do,
    so the tensor is bit-identical to theirs.
    """
    import torch

    theta, sc = rope_settings(config)
    head_dim = head_dim_of(config)
    factor = float(sc.get("factor", 8.0))
    low = float(sc.get("low_freq_factor", 1.0))
    high = float(sc.get("high_freq_factor", 4.0))
    old_ctx = float(sc.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    wavelen = 2 * math.pi / freqs
    smooth = (old_ctx / wavelen - low) / (high - low)
    out = 1 / ((1 - smooth) / factor + smooth)
    out = torch.where(wavelen > old_ctx / low, torch.full_like(out, factor), out)
    out = torch.where(wavelen < old_ctx / high, torch.ones_like(out), out)
    return out.to(torch.float32).numpy()


def longrope_attn_factor(config: dict[str, Any]) -> float:
    """The cos/sin scale longrope applies (transformers' rule, which llama.cpp's
    converter also uses): the config's own value, else sqrt(1 + ln s / ln n_orig)."""
    _, sc = rope_settings(config)
    if sc.get("attention_factor") is not None:
        return float(sc["attention_factor"])
    orig = _orig_ctx(config, sc) or int(config["max_position_embeddings"])
    factor = sc.get("factor")
    scale = float(factor) if factor else int(config["max_position_embeddings"]) / orig
    return math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0


# ---------------------------------------------------------------------------
# checks: configs llama.cpp would run differently from transformers


def check_config(hf_arch: str, arch: str, config: dict[str, Any], source: str) -> list[str]:
    """Refuse what llama.cpp cannot reproduce; return notes on what it runs differently."""

    def refuse(why: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"{source}: {why}, so the GGUF would not answer like the model; {other_routes(hf_arch)}"
        )

    notes: list[str] = []
    _, scaling = rope_settings(config)
    rtype = rope_type_of(scaling)
    if rtype not in ROPE_TYPES[arch]:
        allowed = ", ".join("none" if t == "default" else t for t in ROPE_TYPES[arch])
        raise refuse(
            f"RoPE scaling {rtype!r} is not one llama.cpp's {arch} arch carries ({allowed})"
        )
    n_ctx = int(config.get("max_position_embeddings") or 0)
    window = config.get("sliding_window")
    if arch == "gemma2":
        _check_gemma2(config, refuse)
    elif arch == "phi3":
        if rtype != "default":
            n = rope_dims_of(config) // 2
            for key in ("long_factor", "short_factor"):
                if len(scaling.get(key) or []) != n:
                    raise refuse(f"longrope {key} must have {n} values (rotary dims / 2)")
        if window and n_ctx and int(window) < n_ctx:
            notes.append(
                f"llama.cpp runs Phi-3 with full attention (its sliding window is disabled): "
                f"answers match up to {window} tokens of context"
            )
    elif window and n_ctx and int(window) < n_ctx and config.get("use_sliding_window", True):
        notes.append(
            f"llama.cpp's {arch} arch has no sliding window: answers match the model up to "
            f"{window} tokens of context"
        )
    return notes


def _check_gemma2(config: dict[str, Any], refuse: Any) -> None:
    act = config.get("hidden_activation") or config.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise refuse(f"activation {act!r}: llama.cpp's gemma2 uses tanh-approximated GELU")
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key) is None:
            raise refuse(f"{key} is unset: llama.cpp's gemma2 always soft-caps")
    if config.get("attention_bias"):
        raise refuse("attention biases: llama.cpp's gemma2 has none")
    n_layer = int(config["num_hidden_layers"])
    # llama.cpp hard-codes the query scale: 1/sqrt(hidden/heads) for the 46-layer 27B,
    # 1/sqrt(head_dim) otherwise.
    expected = (
        int(config["hidden_size"]) // int(config["num_attention_heads"])
        if n_layer == 46
        else head_dim_of(config)
    )
    scalar = config.get("query_pre_attn_scalar")
    if scalar is not None and float(scalar) != float(expected):
        raise refuse(
            f"query_pre_attn_scalar {scalar}: llama.cpp scales queries by 1/sqrt({expected})"
        )
    types = config.get("layer_types")
    if types:
        default = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layer)]
        if list(types) != default:
            raise refuse("layer_types differ from Gemma 2's alternating local/global layers")


# ---------------------------------------------------------------------------
# tensors


def tensor_transform(arch: str, hf_name: str, n_head: int, n_kv: int) -> tuple[int, float]:
    """(heads to permute Q/K by, offset to add) for one checkpoint tensor."""
    if arch == "llama":
        if ".self_attn.q_proj." in hf_name:
            return n_head, 0.0
        if ".self_attn.k_proj." in hf_name:
            return n_kv, 0.0
    if arch == "gemma2" and hf_name.endswith("norm.weight"):
        return 0, 1.0  # HF scales by (1 + w); llama.cpp by the stored value
    return 0, 0.0


def generated_tensors(arch: str, config: dict[str, Any], gguf: Any) -> list[tuple[str, np.ndarray]]:
    """Tensors llama.cpp wants that the checkpoint does not hold (RoPE factors)."""
    _, scaling = rope_settings(config)
    rtype = rope_type_of(scaling)
    T, names = gguf.MODEL_TENSOR, gguf.TENSOR_NAMES
    if arch == "llama" and rtype == "llama3":
        return [(names[T.ROPE_FREQS] + ".weight", llama3_rope_factors(config))]
    if arch == "phi3" and rtype in ("longrope", "su"):
        return [
            (
                names[T.ROPE_FACTORS_LONG] + ".weight",
                np.asarray(scaling["long_factor"], dtype=np.float32),
            ),
            (
                names[T.ROPE_FACTORS_SHORT] + ".weight",
                np.asarray(scaling["short_factor"], dtype=np.float32),
            ),
        ]
    return []


def generated_note(arch: str, config: dict[str, Any]) -> str | None:
    rtype = rope_type_of(rope_settings(config)[1])
    if arch == "llama" and rtype == "llama3":
        return "llama3 RoPE scaling written as rope_freqs tensor"
    if arch == "phi3" and rtype in ("longrope", "su"):
        return (
            "longrope written as rope_factors_long/short tensors; llama.cpp picks the long "
            "factors when the context (n_ctx) exceeds the original context"
        )
    return None


# ---------------------------------------------------------------------------
# metadata


def write_hparams(gw: Any, gguf: Any, arch: str, config: dict[str, Any], n_layer: int) -> None:
    """The hyper-parameter keys llama.cpp reads for `arch` (beyond the shared ones)."""
    theta, scaling = rope_settings(config)
    rtype = rope_type_of(scaling)
    head_dim = head_dim_of(config)
    gw.add_context_length(int(config.get("max_position_embeddings") or 4096))
    gw.add_embedding_length(int(config["hidden_size"]))
    gw.add_block_count(n_layer)
    gw.add_feed_forward_length(int(config["intermediate_size"]))
    gw.add_head_count(int(config["num_attention_heads"]))
    gw.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    gw.add_layer_norm_rms_eps(float(config.get("rms_norm_eps") or 1e-6))
    gw.add_rope_freq_base(theta)
    gw.add_rope_dimension_count(rope_dims_of(config))
    gw.add_key_length(head_dim)
    gw.add_value_length(head_dim)
    if rtype == "linear":
        gw.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        gw.add_rope_scaling_factor(float(scaling.get("factor", 1.0)))
    elif rtype == "yarn":
        gw.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        gw.add_rope_scaling_factor(float(scaling.get("factor", 1.0)))
        gw.add_rope_scaling_orig_ctx_len(int(_orig_ctx(config, scaling) or 0))
    if arch == "gemma2":
        gw.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
        gw.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
        gw.add_sliding_window(int(config.get("sliding_window") or 4096))
    elif arch == "phi3":
        orig = _orig_ctx(config, scaling)
        if orig:
            gw.add_rope_scaling_orig_ctx_len(orig)
        # 0 tells llama.cpp "no window" (how its converter marks Phi-4).
        gw.add_sliding_window(int(config.get("sliding_window") or 0))
        if rtype in ("longrope", "su"):
            gw.add_rope_scaling_attn_factors(longrope_attn_factor(config))


def write_tokenizer_extras(gw: Any, arch: str) -> None:
    """Tokenizer keys that depend on the architecture, as llama.cpp's converter writes them.

    Gemma's SentencePiece adds no leading space; llama.cpp's default for "llama"
    vocabularies is to add one.  Written only if the vocabulary writer has not.
    """
    if arch == "gemma2":
        key = "tokenizer.ggml.add_space_prefix"
        if not any(key in kv for kv in gw.kv_data):
            gw.add_add_space_prefix(False)
