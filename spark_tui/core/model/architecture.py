"""The shapes of a decoder-only transformer, read from a Hugging Face `config.json`.

`Architecture` is what the memory estimator computes with: layer count, widths,
heads, vocabulary, and the few quirks that change memory (Qwen2's q/k/v biases,
Gemma 2's four norms and soft-capped logits, Phi-3's fused projections).  The
catalogue's entries carry one each; local folders and Hub configs are read with
`Architecture.from_config`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


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
