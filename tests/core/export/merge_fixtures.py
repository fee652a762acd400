"""Helpers and extra tiny models for the merge tests (used with ``import merge_fixtures``).

* `make_adapter(base_dir, out, **lora)` - a PEFT adapter whose every trained piece is
  random and non-zero: A and B (init_lora_weights=False), DoRA magnitudes moved off
  their initial norms, modules_to_save copies and trainable-token rows perturbed.
* `reference_merge(base_dir, adapter, dtype)` - PEFT's merge_and_unload state dict.
* `derived_model(src_dir, out, ...)` - a copy of a fixture model with another dtype or
  tied embeddings (same tokenizer).
* `gpt2_model(out, tokenizer_dir)` - a GPT-2 (Conv1D, fan_in_fan_out) sharing a tokenizer.
* `write_big_model(out, ...)` - a random Llama written straight as safetensors shards,
  without building it in torch, for the memory test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_adapter(
    base_dir: Path,
    out: Path,
    *,
    dtype: torch.dtype = torch.float32,
    grow_tokens: int = 0,
    config_cls: Any = None,
    seed: int = 7,
    **lora: Any,
) -> Path:
    """Save an adapter for `base_dir` whose pieces are random (so the merge matters)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(base_dir)
    if grow_tokens:  # a tokenizer longer than the embeddings by `grow_tokens`
        rows = base.get_input_embeddings().weight.shape[0]
        tok.add_tokens([f"<extra_{i}>" for i in range(rows + grow_tokens - len(tok))])
        base.resize_token_embeddings(len(tok))
    if config_cls is None:
        lora.setdefault("target_modules", TARGETS)
        lora.setdefault("r", 8)
        lora.setdefault("lora_alpha", 16)
        lora.setdefault("init_lora_weights", False)
        cfg = LoraConfig(task_type="CAUSAL_LM", **lora)
    else:
        cfg = config_cls(task_type="CAUSAL_LM", **lora)
    model = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.5)
            elif "lora_magnitude_vector" in name:
                p.mul_(1 + 0.2 * torch.randn(p.shape, generator=g).to(p.dtype))
            elif "modules_to_save" in name or "trainable_tokens_delta" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g).to(p.dtype))
            elif p.requires_grad and "ia3" in name:
                p.mul_(1 + 0.3 * torch.randn(p.shape, generator=g).to(p.dtype))
    model.save_pretrained(out)
    if grow_tokens:
        tok.save_pretrained(out)
    cfg_path = out / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    data["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(data, indent=2))
    return out


def reference_merge(
    base_dir: Path, adapter: Path, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """PEFT's own merge: base + PeftModel + merge_and_unload, as a state dict."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    emb = [k for k in _keys(adapter) if k.endswith("embed_tokens.weight")]
    if emb:
        from safetensors import safe_open

        with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
            base.resize_token_embeddings(f.get_slice(emb[0]).get_shape()[0])
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def _keys(adapter: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        return list(f.keys())


def read_folder(folder: Path) -> dict[str, torch.Tensor]:
    from spark_tui.core.export.tensor_source import TensorSource

    src = TensorSource(folder)
    return {n: src.load_torch(n) for n in src.names()}


def derived_model(
    src_dir: Path, out: Path, *, dtype: torch.dtype = torch.float32, tie: bool | None = None
) -> Path:
    """A fixture model re-saved in `dtype` and/or with tied embeddings."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(src_dir)
    if tie is not None:
        cfg.tie_word_embeddings = tie
    model = AutoModelForCausalLM.from_pretrained(src_dir, config=cfg, dtype=torch.float32)
    if tie:
        model.tie_weights()
    model.to(dtype).save_pretrained(out)
    copy_tokenizer(src_dir, out)
    return out


def copy_tokenizer(src_dir: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src_dir / name).is_file():
            shutil.copy2(src_dir / name, out / name)


def gpt2_model(out: Path, tokenizer_dir: Path, vocab: int) -> Path:
    """A tiny GPT-2: its Conv1D weights are stored (in, out), so LoRA uses fan_in_fan_out."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    cfg = GPT2Config(vocab_size=vocab, n_positions=128, n_embd=64, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(out)
    copy_tokenizer(tokenizer_dir, out)
    return out


def write_big_model(
    out: Path,
    tokenizer_dir: Path,
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    vocab: int,
    shard_bytes: int,
) -> Path:
    """A random fp32 Llama written shard by shard (never whole in memory), HF layout."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    out.mkdir(parents=True)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        tie_word_embeddings=False,
    )
    cfg.save_pretrained(out)
    copy_tokenizer(tokenizer_dir, out)
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes.append((p + f"self_attn.{n}.weight", (hidden, hidden)))
        shapes.append((p + "mlp.gate_proj.weight", (intermediate, hidden)))
        shapes.append((p + "mlp.up_proj.weight", (intermediate, hidden)))
        shapes.append((p + "mlp.down_proj.weight", (hidden, intermediate)))
        shapes.append((p + "input_layernorm.weight", (hidden,)))
        shapes.append((p + "post_attention_layernorm.weight", (hidden,)))
    shapes += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    g = torch.Generator().manual_seed(0)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nbytes = 4 * torch.Size(shape).numel()
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    weight_map = {}
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        tensors = {n: 0.05 * torch.randn(s, generator=g) for n, s in group}
        save_file(tensors, str(out / fname), metadata={"format": "pt"})
        weight_map |= {n: fname for n in tensors}
        del tensors
    index = {"metadata": {"total_size": sum(4 * torch.Size(s).numel() for _, s in shapes)}}
    index["weight_map"] = weight_map
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return out


def write_random_adapter(
    out: Path, base_dir: Path, *, layers: int, hidden: int, inter: int, r: int
):
    """A LoRA adapter for `write_big_model`'s shapes written directly (no model needed)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    tensors = {}
    dims = {"q_proj": (hidden, hidden), "o_proj": (hidden, hidden)}
    dims |= {"gate_proj": (inter, hidden), "down_proj": (hidden, inter)}
    for i in range(layers):
        for mod, (o, n) in dims.items():
            part = "self_attn" if mod.endswith(("q_proj", "o_proj")) else "mlp"
            key = f"base_model.model.model.layers.{i}.{part}.{mod}"
            tensors[key + ".lora_A.weight"] = 0.1 * torch.randn(r, n, generator=g)
            tensors[key + ".lora_B.weight"] = 0.1 * torch.randn(o, r, generator=g)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": 2 * r,
        "target_modules": list(dims),
        "base_model_name_or_path": str(base_dir),
        "bias": "none",
        "fan_in_fan_out": False,
    }
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out
