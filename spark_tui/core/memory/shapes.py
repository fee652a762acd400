"""Model shapes for the estimator: the linears an adapter touches, the trainable parameters,
and the architecture of a model id (looked up offline: catalogue, local folder, HF cache).
"""

from __future__ import annotations

from spark_tui.core.base.errors import SparkError
from spark_tui.core.memory.settings import Settings
from spark_tui.core.model.architecture import Architecture


def adapted_linears(arch: Architecture, target_modules: str) -> list[tuple[str, int, int]]:
    """(name, d_in, d_out) of each linear LoRA adapts in ONE layer (plus lm_head/embeddings,
    which are not per layer: they are returned with a name starting with '*')."""
    h, i, q, kv = arch.hidden_size, arch.intermediate_size, arch.q_dim, arch.kv_dim
    shapes = arch.linear_shapes()
    spec = target_modules.strip().lower()
    if spec in ("all-linear", "all_linear", "all"):
        names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    elif spec in ("attention", "attn"):
        names = ["q_proj", "k_proj", "v_proj", "o_proj"]
    elif spec == "mlp":
        names = ["gate_proj", "up_proj", "down_proj"]
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    out: list[tuple[str, int, int]] = []
    fused_done: set[str] = set()
    for n in names:
        if arch.fused_projections and n in ("q_proj", "k_proj", "v_proj", "qkv_proj"):
            if "qkv" not in fused_done:
                fused_done.add("qkv")
                out.append(("qkv_proj", h, q + 2 * kv))
        elif arch.fused_projections and n in ("gate_proj", "up_proj", "gate_up_proj"):
            if "gate_up" not in fused_done:
                fused_done.add("gate_up")
                out.append(("gate_up_proj", h, 2 * i))
        elif n == "qkv_proj":
            out.extend((m, *shapes[m]) for m in ("q_proj", "k_proj", "v_proj"))
        elif n == "gate_up_proj":
            out.extend((m, *shapes[m]) for m in ("gate_proj", "up_proj"))
        elif n in shapes:
            out.append((n, *shapes[n]))
        elif n == "lm_head":
            out.append(("*lm_head", h, arch.vocab_size))
        elif n in ("embed_tokens", "wte"):
            out.append(("*embed_tokens", arch.vocab_size, h))
        else:
            raise SparkError(
                f"target module {n!r} is not a projection of this architecture; use "
                "'attention', 'all-linear' or names like q_proj,v_proj"
            )
    return out


def trainable_params(arch: Architecture, s: Settings) -> int:
    if not s.peft:
        return arch.param_count()
    n, h = arch.num_layers, arch.hidden_size
    if s.adapter == "prompt_tuning":
        return s.num_virtual_tokens * h
    if s.adapter == "prefix_tuning":
        return s.num_virtual_tokens * n * 2 * arch.kv_dim
    if s.adapter == "ia3":
        return n * (2 * arch.kv_dim + arch.intermediate_size)
    total = 0
    for name, d_in, d_out in adapted_linears(arch, s.target_modules):
        per = s.lora_r * (d_in + d_out) + (d_out if s.use_dora else 0)
        if s.adapter == "adalora":
            per += s.lora_r  # the singular values
        total += per if name.startswith("*") else n * per
    return total


def architecture_of(model_id: str) -> Architecture:
    """The architecture of a catalogue id, alias, local folder or cached Hub model (offline)."""
    from spark_tui.core.model.sources import architecture_for

    arch = architecture_for(model_id)
    if arch is None:
        raise SparkError(
            f"don't know the architecture of {model_id!r}: it is not in the catalogue, not a "
            "local folder with a config.json, and not in the Hugging Face cache. "
            "Run `spark-tui model info ID` while online to read its config.json."
        )
    return arch
