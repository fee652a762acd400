"""Peak-memory estimator: will this run fit, before anything is downloaded or loaded?

Units: bytes internally; shown in decimal GB (1 GB = 10^9 bytes), the unit of
"128 GB" on a DGX Spark.

The estimate is the peak of one training step, split into the parts a user can
act on.  Notation: P = all parameters of the model, P_lin = the weights of the
decoder layers' linear projections (what QLoRA quantizes), P_tr = trainable
parameters, T = tokens in one micro-batch = micro_batch x max_length x S (S = 2
for objectives that run chosen and rejected together: DPO, SimPO, ORPO,
reward; 1 for SFT and KTO), a = bytes per activation element (2 under bf16 /
fp16 autocast, 4 in fp32), w16 = bytes per "16-bit" weight (2, or 4 when the
run is fp32, as on a CPU), n = layers, h = hidden, i = intermediate, q = heads x
head_dim, kv = KV heads x head_dim, V = vocabulary.

weights
    full FT:  P x 4 with fp32 master weights (the HF Trainer's mixed precision:
              fp32 parameters, bf16 autocast), P x 2 for pure bf16 (`master_weights=False`).
    LoRA / DoRA / rsLoRA / other PEFT: P x w16 (frozen 16-bit base).
    QLoRA:    P_lin x (0.5 + 1/64 + 4/(64*256)) with double quantization
              (NF4 codes + one 8-bit absmax per 64 weights + one fp32 constant per
              256 absmax; 0.5 + 4/64 without it), plus (P - P_lin) x w16:
              embeddings, lm_head, norms and biases stay 16-bit.
adapters (PEFT only)
    P_tr x 4: PEFT keeps adapter weights in fp32 (`autocast_adapter_dtype`).
    LoRA on a linear (d_in -> d_out): r x (d_in + d_out).  "attention" targets
    q/k/v/o, "all-linear" adds gate/up/down (never lm_head).  DoRA adds a
    magnitude vector of d_out per adapted linear.  Prompt tuning: tokens x h;
    prefix tuning: tokens x n x 2 x kv; IA3: n x (2 kv + i).
gradients
    full FT: P x 4 (fp32 master) or P x 2 (pure bf16).  PEFT: P_tr x 4.
optimizer states (on the trainable parameters)
    AdamW: 8 bytes/param (two fp32 moments; 4 for pure-bf16 parameters);
    8-bit AdamW (bitsandbytes): 2 bytes + 2 x 4/256 block constants ~= 2.03;
    paged 8-bit: the same bytes, in pageable memory (on a discrete GPU they can
    spill to host RAM under pressure; on unified memory there is nowhere to spill).
activations (the part that grows with max length and micro-batch)
    Saved tensors per layer per token (derived from what autograd keeps in the
    Llama-style layers of transformers 5; calibrated on CPU by bench/memory_estimate.py):
      norms:  k x 4h (RMSNorm keeps its fp32 upcast), + k x 2ah when the base is trained
              (k = norms per layer: 2, Gemma 2: 4)
      attention: a x (2q + 2q) (SDPA keeps q, k, v, output; k/v counted at q width
              because repeat_kv expands them when a padding mask is present),
              + a x q when o_proj is trained (its input)
      MLP:    a x 3i (SiLU input, activation, up output), + a x i when down_proj is trained
      LoRA:   per adapted linear  (1 + a) x d_in  with dropout (mask + the cast copy
              lora_A keeps; fp32: 1 + 4), a x d_in without dropout
      DoRA:   + 8 x d_out per adapted linear (base and LoRA results kept for the magnitude)
    Gradient checkpointing keeps only each layer's input, n x T x a x h, and
    recomputes one layer at a time; its peak is R x (one layer) with R = 1.5
    (recomputed activations plus their gradients).  Without checkpointing all n
    layers are kept (plus 0.5 x one layer of gradients in flight).
    The LM head: TRL 1.16's SFT, DPO and KTO trainers use a fused, tiled LM head
    that never materialises [T, V] logits: one tile of min(T, 4096) x min(V, 32768)
    (in a, plus 8 fp32 temporaries of that size in the torch fallback used
    on CPUs; Triton works in place) and an
    fp32 gradient for the hidden states (T x h x 4); when the LM head itself is
    trained (full FT) its fp32 gradient accumulator V x h x 4 too.  ORPO and SimPO
    (TRL's experimental ORPO / CPO trainers) build the full logits: T x V x (a + 12)
    (logits, their fp32 log-softmax, the gradient and its input gradient; + 2a for
    Gemma 2's soft-capping).  Reward models have a 1-wide head: no vocabulary term.
    With checkpointing the peak is checkpoints + max(head, recomputed layer);
    without it, all layers + head.
    Full fine-tuning: activations are freed while the gradients fill up, so the
    step's peak is max(activations + the LM head's gradient, all gradients + one
    recomputed layer); the breakdown shows activations as the part above the
    gradients already counted.
    DoRA also materialises, for the layer being computed, an identity (d_in^2)
    and two d_in x d_out fp32 matrices to get the weight norm: counted for the
    largest adapted linear.
reference model (DPO, KTO)
    "copy": a second set of base weights (same storage as above); "adapter_disabled"
    (PEFT: the base with adapters switched off, TRL's default): 0; "precompute":
    log-probs computed once before training: 0; "auto": adapter_disabled for PEFT,
    copy for full fine-tuning.  SFT, SimPO, ORPO and reward have no reference.
runtime overhead
    fixed: CUDA context and cuBLAS workspaces ~0.75 GB on a GPU; on unified memory
    also the host process (Python, libraries, tokenizer, data ~1.5 GB) shares the
    pool; on a CPU the host process ~1.0 GB.  Plus allocator slack: 8 % of
    everything else on a GPU (PyTorch's caching allocator reserves more than it
    hands out), 15 % on a CPU (glibc heap fragmentation and MKL packing buffers:
    measured RSS exceeds live tensor bytes by 5-35 % in bench/memory_estimate.py).

Verdict: fits / tight (less than 15 % headroom) / won't fit, against
`hardware.memory_budget()` (unified memory: MemAvailable, warning when the run
only fits by reclaiming page cache).  Suggestions are ranked: changes that make
the run fit come first, and among them the ones that cost the least quality or
speed (gradient checkpointing, reference handling, paged 8-bit optimizer,
micro-batch with more accumulation, LoRA, QLoRA, shorter max length, several
of these combined, smaller model).  Each carries its new estimate and the config change as dotted keys.

The estimator is pure arithmetic: no torch, no network, no printing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from spark_tui.core import catalog
from spark_tui.core.catalog import Architecture
from spark_tui.core.errors import SparkError

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.config import RunConfig
    from spark_tui.core.hardware import Budget, HardwareProbe

GB = 1e9
TIGHT_HEADROOM = 0.15

# --- constants (see the module docstring) --------------------------------------------
NF4_BYTES_DQ = 0.5 + 1 / 64 + 4 / (64 * 256)  # NF4 + double quantization
NF4_BYTES = 0.5 + 4 / 64  # NF4, fp32 absmax per 64
OPT_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0 + 8 / 256, "paged_adamw_8bit": 2.0 + 8 / 256}
RECOMPUTE_FACTOR = 1.5  # one recomputed layer + its gradients in flight
NO_CKPT_GRAD_FACTOR = 0.5
HEAD_TILE_TOKENS = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
HEAD_TILE_VOCAB = 32768  # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE
CPU_HEAD_TEMPS = 8  # fp32 tile-sized temporaries of the torch (non-Triton) backward tile
FIXED_OVERHEAD = {"gpu": 0.75 * GB, "unified": 2.25 * GB, "cpu": 1.0 * GB}
SLACK = {"gpu": 0.08, "unified": 0.08, "cpu": 0.15}

OBJECTIVES = ("sft", "dpo", "simpo", "orpo", "kto", "reward")
PAIRED = {"dpo", "simpo", "orpo", "reward"}  # chosen + rejected in one forward
FUSED_HEAD = {"sft", "dpo", "kto"}  # TRL 1.16 trainers with the tiled LM head
WITH_REFERENCE = {"dpo", "kto"}
ADAPTERS = ("full", "lora", "qlora", "prompt_tuning", "prefix_tuning", "adalora", "ia3")
OPTIMIZERS = tuple(OPT_BYTES)
METHODS = ("full", "lora", "qlora", "dora", "rslora")

BREAKDOWN_KEYS = (
    "weights",
    "adapters",
    "gradients",
    "optimizer",
    "activations",
    "reference",
    "overhead",
)
BREAKDOWN_LABELS = {
    "weights": "Model weights",
    "adapters": "Adapters",
    "gradients": "Gradients",
    "optimizer": "Optimizer states",
    "activations": "Activations",
    "reference": "Reference model",
    "overhead": "Runtime overhead",
}

# Settings field -> RunConfig dotted key (for suggestions).
CONFIG_KEYS = {
    "adapter": "method.adapter",
    "use_dora": "method.use_dora",
    "use_rslora": "method.use_rslora",
    "objective": "method.objective",
    "max_length": "data.max_length",
    "micro_batch": "train.micro_batch_size",
    "grad_accum": "train.grad_accum",
    "gradient_checkpointing": "train.gradient_checkpointing",
    "lora_r": "lora.r",
    "lora_dropout": "lora.dropout",
    "target_modules": "lora.target_modules",
    "num_virtual_tokens": "lora.num_virtual_tokens",
    "optimizer": "train.optimizer",
    "precision": "train.precision",
    "reference": "preference.reference",
}


@dataclass(frozen=True)
class Settings:
    """Everything about a run that changes its memory, besides the architecture."""

    adapter: str = "lora"  # full | lora | qlora | prompt_tuning | prefix_tuning | adalora | ia3
    use_dora: bool = False
    use_rslora: bool = False
    objective: str = "sft"
    max_length: int = 2048
    micro_batch: int = 1
    grad_accum: int = 1
    gradient_checkpointing: bool = True
    lora_r: int = 16
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    num_virtual_tokens: int = 20
    optimizer: str = "adamw"
    precision: str = "bf16"  # bf16 | fp16 | fp32 | auto (bf16 on a GPU, fp32 on a CPU)
    master_weights: bool = True  # full FT in 16-bit: fp32 master weights (HF mixed precision)
    reference: str = "auto"  # auto | adapter_disabled | copy | precompute
    double_quant: bool = True
    target: str = "gpu"  # gpu | unified | cpu: decides runtime overhead and "auto" precision

    def __post_init__(self) -> None:
        checks = {
            "adapter": (self.adapter, ADAPTERS),
            "objective": (self.objective, OBJECTIVES),
            "optimizer": (self.optimizer, OPTIMIZERS),
            "precision": (self.precision, ("bf16", "fp16", "fp32", "auto")),
            "reference": (self.reference, ("auto", "adapter_disabled", "copy", "precompute")),
            "target": (self.target, ("gpu", "unified", "cpu")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise SparkError(f"{name} {value!r} is not known; use one of {', '.join(allowed)}")
        for name in ("max_length", "micro_batch", "grad_accum"):
            if getattr(self, name) < 1:
                raise SparkError(f"{name} must be at least 1")

    @property
    def peft(self) -> bool:
        return self.adapter != "full"

    @property
    def resolved_precision(self) -> str:
        if self.precision == "auto":
            return "fp32" if self.target == "cpu" else "bf16"
        return self.precision

    @property
    def act_bytes(self) -> int:
        return 4 if self.resolved_precision == "fp32" else 2

    @property
    def w16_bytes(self) -> int:
        return 4 if self.resolved_precision == "fp32" else 2

    @property
    def method(self) -> str:
        """The CLI's method name: full, lora, qlora, dora, rslora (or the PEFT type)."""
        if self.adapter in ("lora", "qlora") and self.use_dora:
            return "dora" if self.adapter == "lora" else "qlora+dora"
        if self.adapter == "lora" and self.use_rslora:
            return "rslora"
        return self.adapter

    @property
    def resolved_reference(self) -> str:
        if self.objective not in WITH_REFERENCE:
            return "none"
        if self.reference == "auto":
            return "adapter_disabled" if self.peft else "copy"
        if self.reference == "adapter_disabled" and not self.peft:
            return "copy"  # full fine-tuning has no adapters to switch off
        return self.reference

    @property
    def tokens(self) -> int:
        return self.micro_batch * self.max_length * (2 if self.objective in PAIRED else 1)


def settings_for_method(method: str, **kwargs: Any) -> Settings:
    """Settings for a CLI method name (full, lora, qlora, dora, rslora) plus overrides."""
    m = method.lower()
    base: dict[str, Any] = {
        "full": {"adapter": "full"},
        "lora": {"adapter": "lora"},
        "qlora": {"adapter": "qlora"},
        "dora": {"adapter": "lora", "use_dora": True},
        "rslora": {"adapter": "lora", "use_rslora": True},
    }.get(m) or ({"adapter": m} if m in ADAPTERS else None)
    if base is None:
        raise SparkError(f"method {method!r} is not known; use one of {', '.join(METHODS)}")
    return Settings(**{**base, **kwargs})


def settings_from_config(cfg: RunConfig, target: str = "gpu") -> Settings:
    """The estimator's view of a RunConfig (`target` from the hardware probe)."""
    return Settings(
        adapter=cfg.method.adapter,
        use_dora=cfg.method.use_dora,
        use_rslora=cfg.method.use_rslora,
        objective=cfg.method.objective,
        max_length=cfg.data.max_length,
        micro_batch=cfg.train.micro_batch_size,
        grad_accum=cfg.train.grad_accum,
        gradient_checkpointing=cfg.train.gradient_checkpointing,
        lora_r=cfg.lora.r,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        num_virtual_tokens=cfg.lora.num_virtual_tokens,
        optimizer=cfg.train.optimizer,
        precision=cfg.train.precision,
        reference=cfg.preference.reference,
        target=target,
    )


# --------------------------------------------------------------------------- adapters


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


# --------------------------------------------------------------------------- estimate


@dataclass
class Estimate:
    """Peak memory of one training step, broken down (bytes)."""

    model: str
    arch: Architecture
    settings: Settings
    weights: int
    adapters: int
    gradients: int
    optimizer: int
    activations: int
    reference: int
    overhead: int
    overhead_fixed: int
    params_total: int
    params_trainable: int
    details: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.breakdown().values())

    @property
    def total_gb(self) -> float:
        return self.total / GB

    def breakdown(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in BREAKDOWN_KEYS}

    def rows(self) -> list[tuple[str, str]]:
        """(label, "12.3 GB") for each part and the total: what screens and the CLI show."""
        rows = [(BREAKDOWN_LABELS[k], fmt_gb(v)) for k, v in self.breakdown().items()]
        rows.append(("Total peak", fmt_gb(self.total)))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.settings.method,
            "settings": dataclasses.asdict(self.settings),
            "precision": self.settings.resolved_precision,
            "reference": self.settings.resolved_reference,
            "params_total": self.params_total,
            "params_trainable": self.params_trainable,
            "breakdown_gb": {k: round(v / GB, 3) for k, v in self.breakdown().items()},
            "breakdown_bytes": self.breakdown(),
            "details_gb": {k: round(v / GB, 3) for k, v in self.details.items()},
            "total_bytes": self.total,
            "total_gb": round(self.total / GB, 2),
            "notes": list(self.notes),
        }


def fmt_gb(n: float) -> str:
    gb = n / GB
    if gb >= 10:
        return f"{gb:.1f} GB"
    if gb >= 0.995:
        return f"{gb:.2f} GB"
    return f"{gb * 1000:.0f} MB"


def _weights(arch: Architecture, s: Settings) -> int:
    p = arch.param_count()
    if not s.peft:
        per = 4 if (s.master_weights or s.resolved_precision == "fp32") else 2
        return p * per
    if s.adapter == "qlora":
        q = NF4_BYTES_DQ if s.double_quant else NF4_BYTES
        return int(arch.linear_params * q + (p - arch.linear_params) * s.w16_bytes)
    return p * s.w16_bytes


def _layer_activation_bytes(arch: Architecture, s: Settings) -> tuple[float, float]:
    """(bytes per token of one layer's saved activations, DoRA transient bytes)."""
    a = s.act_bytes
    h, i, q = arch.hidden_size, arch.intermediate_size, arch.q_dim
    k = arch.norms_per_layer
    trained_base = not s.peft
    per = k * 4 * h + (k * 2 * a * h if trained_base else 0)
    per += a * (2 * q + 2 * q)  # SDPA: q, k, v (repeat_kv width), output
    if trained_base:
        per += a * q  # o_proj input
    per += a * 3 * i + (a * i if trained_base else 0)
    dora_transient = 0.0
    if s.adapter in ("lora", "qlora", "adalora") and s.peft:
        for name, d_in, d_out in adapted_linears(arch, s.target_modules):
            if name.startswith("*"):
                continue
            # dropout mask (1 byte) + the copy lora_A keeps (a bytes: bf16 under autocast)
            per += (1 + a) * d_in if s.lora_dropout > 0 else a * d_in
            per += a * s.lora_r
            if s.use_dora:
                per += 8 * d_out
                dora_transient = max(dora_transient, 4.0 * (d_in * d_in + 2 * d_in * d_out))
    elif s.adapter == "ia3":
        per += a * (2 * arch.kv_dim + i)
    return per, dora_transient


def _head_bytes(arch: Architecture, s: Settings) -> int:
    a, T, V, h = s.act_bytes, s.tokens, arch.vocab_size, arch.hidden_size
    if s.objective == "reward":
        return T * h * a
    if s.objective in FUSED_HEAD:
        tile = min(T, HEAD_TILE_TOKENS) * min(V, HEAD_TILE_VOCAB)
        temps = 0 if s.target in ("gpu", "unified") else CPU_HEAD_TEMPS * 4
        head = tile * (a + temps) + T * h * (4 + a) + T * 7 * 4
        if not s.peft and not (s.master_weights or s.resolved_precision == "fp32"):
            # 16-bit LM head: an fp32 gradient accumulator beside the 16-bit gradient.
            # (With fp32 weights the accumulator *is* the gradient, counted there.)
            head += V * h * 4
        return int(head)
    per = a + 12 + (2 * a if arch.logit_softcap else 0)
    return int(T * V * per)


def estimate(
    arch: Architecture | catalog.CatalogEntry | str,
    settings: Settings | None = None,
    *,
    model: str = "",
    **changes: Any,
) -> Estimate:
    """Estimate the peak memory of one training step.

    `arch` is an `Architecture`, a catalogue entry, or a catalogue / local model
    id (resolved offline).  `settings` defaults to LoRA SFT at 2048 tokens;
    keyword `changes` override single fields (`estimate(a, adapter="qlora")`).
    """
    if isinstance(arch, str):
        model = model or arch
        arch = architecture_of(arch)
    elif isinstance(arch, catalog.CatalogEntry):
        model = model or arch.id
        arch = arch.arch
    s = replace(settings or Settings(), **changes) if changes else (settings or Settings())
    notes: list[str] = []
    a = s.act_bytes
    n, h = arch.num_layers, arch.hidden_size
    p_total = arch.param_count()
    p_tr = trainable_params(arch, s)

    weights = _weights(arch, s)
    if s.peft:
        adapters = p_tr * 4
        gradients = p_tr * 4
        opt_per = OPT_BYTES[s.optimizer]
    else:
        adapters = 0
        pure16 = not s.master_weights and s.resolved_precision != "fp32"
        gradients = p_tr * (2 if pure16 else 4)
        opt_per = OPT_BYTES[s.optimizer] / (2 if pure16 and s.optimizer == "adamw" else 1)
    optimizer = int(p_tr * opt_per)

    T = s.tokens
    layer_per_token, dora_transient = _layer_activation_bytes(arch, s)
    layer = T * layer_per_token
    head = _head_bytes(arch, s)
    embed_out = T * h * a
    if s.gradient_checkpointing:
        ckpt = n * T * h * a
        acts = ckpt + embed_out + max(head, RECOMPUTE_FACTOR * layer + dora_transient)
        details = {"checkpoints": ckpt, "layer_recompute": int(RECOMPUTE_FACTOR * layer)}
    else:
        kept = n * layer
        acts = kept + embed_out + head + NO_CKPT_GRAD_FACTOR * layer + dora_transient
        details = {"layers": int(kept)}
    details["lm_head"] = head
    if dora_transient:
        details["dora_weight_norm"] = int(dora_transient)
    if s.adapter == "qlora":
        # bitsandbytes dequantizes one weight at a time for the matmul
        acts += max(d_in * d_out for d_in, d_out in arch.linear_shapes().values()) * a
    if not s.peft:
        # Full fine-tuning: activations are freed while gradients fill up.  Peak =
        # max(activations + the LM head's gradient (the first one computed),
        #     all gradients + one recomputed layer) -- shown as the part of the
        # activations that does not overlap the gradients already counted.
        g_bytes = gradients / max(1, p_tr)
        early = int(arch.vocab_size * h * g_bytes)
        late = RECOMPUTE_FACTOR * layer + embed_out
        acts = max(acts + early - gradients, late)
    activations = int(acts)

    ref_mode = s.resolved_reference
    reference = weights if ref_mode == "copy" else 0

    subtotal = weights + adapters + gradients + optimizer + activations + reference
    fixed = int(FIXED_OVERHEAD[s.target])
    overhead = fixed + int(SLACK[s.target] * subtotal)

    # ---- notes the screens show under the breakdown -----------------------
    if s.objective in PAIRED:
        notes.append(
            f"{s.objective.upper()} runs chosen and rejected together: activations "
            f"for {T:,} tokens per micro-batch."
        )
    if ref_mode == "copy":
        notes.append("The reference model is a second copy of the base weights.")
    elif ref_mode == "adapter_disabled":
        notes.append("Reference = the base model with adapters switched off (no second copy).")
    elif ref_mode == "precompute":
        notes.append("Reference log-probs are computed once before training (no copy in memory).")
    if s.objective == "kto" and s.micro_batch < 2:
        notes.append("KTO needs a micro-batch of at least 2.")
    if s.max_length > arch.max_context:
        notes.append(
            f"Max length {s.max_length} is beyond the model's context of {arch.max_context}."
        )
    if s.objective in ("orpo", "simpo"):
        notes.append(
            "ORPO/SimPO trainers build the full [tokens x vocabulary] logits "
            f"({fmt_gb(head)} at this length)."
        )
    if s.optimizer == "paged_adamw_8bit" and s.target == "unified":
        notes.append("Paged optimizer states cannot spill anywhere on unified memory.")
    if not s.peft:
        notes.append(
            "Full fine-tuning frees activations while gradients fill up: only the part "
            "that overlaps the gradients is added."
        )
    if s.use_dora:
        notes.append("DoRA recomputes each adapted weight's norm: slower and a little more memory.")

    return Estimate(
        model=model or arch.model_type,
        arch=arch,
        settings=s,
        weights=int(weights),
        adapters=int(adapters),
        gradients=int(gradients),
        optimizer=optimizer,
        activations=activations,
        reference=int(reference),
        overhead=overhead,
        overhead_fixed=fixed,
        params_total=p_total,
        params_trainable=p_tr,
        details={k: int(v) for k, v in details.items()},
        notes=notes,
    )


def architecture_of(model_id: str) -> Architecture:
    """The architecture of a catalogue id, alias, local folder or cached Hub model (offline)."""
    from spark_tui.core import model_sources

    arch = model_sources.architecture_for(model_id)
    if arch is None:
        raise SparkError(
            f"don't know the architecture of {model_id!r}: it is not in the catalogue, not a "
            "local folder with a config.json, and not in the Hugging Face cache. "
            "Run `spark-tui model info ID` while online to read its config.json."
        )
    return arch


def estimate_config(
    cfg: RunConfig,
    *,
    arch: Architecture | None = None,
    target: str | None = None,
    hardware: HardwareProbe | None = None,
) -> Estimate:
    """Estimate for a RunConfig; the target (gpu/unified/cpu) comes from `hardware` if given."""
    if target is None:
        target = hardware.target if hardware is not None else "gpu"
    s = settings_from_config(cfg, target=target)
    return estimate(arch or architecture_of(cfg.model.id), s, model=cfg.model.id)


# --------------------------------------------------------------------------- verdict


@dataclass
class Suggestion:
    """One change that lowers the peak, with its new estimate."""

    key: str  # stable id: gradient_checkpointing, qlora, max_length, ...
    title: str
    changes: dict[str, Any]  # RunConfig dotted key -> value
    estimate: Estimate
    status: str  # verdict status with this change applied
    saves: int  # bytes saved against the current estimate
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "changes": dict(self.changes),
            "total_gb": round(self.estimate.total / GB, 2),
            "saves_gb": round(self.saves / GB, 2),
            "status": self.status,
            "detail": self.detail,
        }


@dataclass
class Verdict:
    status: str  # fits | tight | wont_fit
    estimate: Estimate
    budget: int
    budget_source: str
    target: str
    headroom: float  # (budget - total) / budget; negative when it does not fit
    suggestions: list[Suggestion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    drop_cache_hint: bool = False  # unified memory: dropping the page cache would help

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def summary(self) -> str:
        e = self.estimate
        return (
            f"{self.label}: peak ≈ {fmt_gb(e.total)} of {fmt_gb(self.budget)} "
            f"({self.budget_source}); headroom {self.headroom * 100:.0f} %"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "label": self.label,
            "summary": self.summary,
            "budget_bytes": self.budget,
            "budget_gb": round(self.budget / GB, 2),
            "budget_source": self.budget_source,
            "target": self.target,
            "headroom": round(self.headroom, 4),
            "warnings": list(self.warnings),
            "drop_cache_hint": self.drop_cache_hint,
            "suggestions": [sg.to_dict() for sg in self.suggestions],
        }


STATUS_LABELS = {"fits": "Fits", "tight": "Tight", "wont_fit": "Won't fit"}
_STATUS_RANK = {"fits": 0, "tight": 1, "wont_fit": 2}


def classify(total: int, budget: int) -> tuple[str, float]:
    """(status, headroom) of a peak against a budget."""
    if budget <= 0:
        return "wont_fit", -1.0
    headroom = (budget - total) / budget
    if headroom < 0:
        return "wont_fit", headroom
    if headroom < TIGHT_HEADROOM:
        return "tight", headroom
    return "fits", headroom


def _as_budget(hw: HardwareProbe | Budget | int) -> Budget:
    from spark_tui.core.hardware import Budget, memory_budget

    if isinstance(hw, Budget):
        return hw
    if isinstance(hw, (int, float)):
        return Budget(int(hw), "given budget", "gpu", int(hw), 0)
    return memory_budget(hw)


def verdict(
    est: Estimate,
    hardware: HardwareProbe | Budget | int,
    *,
    with_suggestions: bool = True,
) -> Verdict:
    """Fits / tight / won't fit against a probe (or a Budget, or a byte count)."""
    budget = _as_budget(hardware)
    total = est.total
    status, headroom = classify(total, budget.bytes)
    warnings: list[str] = []
    drop_hint = False
    if budget.target == "unified" and budget.page_cache > 0:
        cache = fmt_gb(budget.page_cache)
        if total > budget.free_without_cache:
            drop_hint = True
            warnings.append(
                f"Page cache holds {cache} of unified memory and this run only fits if the "
                "kernel gives it back; the GPU cannot always reclaim it in time. Drop it "
                "before loading: sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'"
            )
        else:
            warnings.append(f"Page cache holds {cache} (reclaimable, counted as available).")
    if est.settings.max_length > est.arch.max_context:
        warnings.append(
            f"Max length {est.settings.max_length} exceeds the model's context "
            f"({est.arch.max_context})."
        )
    v = Verdict(
        status=status,
        estimate=est,
        budget=budget.bytes,
        budget_source=budget.source,
        target=budget.target,
        headroom=headroom,
        warnings=warnings,
        drop_cache_hint=drop_hint,
    )
    if with_suggestions and status != "fits":
        v.suggestions = suggest(est, budget)
    return v


# --------------------------------------------------------------------------- suggestions

# Lower = preferred when several changes make the run fit (less quality or speed lost).
_PREFERENCE = {
    "gradient_checkpointing": 0,
    "reference": 1,
    "paged_optimizer": 2,
    "micro_batch": 3,
    "lora": 4,
    "qlora": 5,
    "max_length": 6,
    "combined": 7,
    "smaller_model": 8,
}


def _changes_for(old: Settings, new: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if getattr(old, f.name) != getattr(new, f.name) and f.name in CONFIG_KEYS:
            out[CONFIG_KEYS[f.name]] = getattr(new, f.name)
    return out


def _candidates(est: Estimate, budget: Budget) -> list[tuple[str, str, Settings, str]]:
    """(key, title, new settings, detail) for each single change worth trying."""
    s = est.settings
    out: list[tuple[str, str, Settings, str]] = []
    if not s.gradient_checkpointing:
        out.append(
            (
                "gradient_checkpointing",
                "Turn on gradient checkpointing",
                replace(s, gradient_checkpointing=True),
                "Keeps one tensor per layer and recomputes the rest: ~30 % slower steps.",
            )
        )
    if s.resolved_reference == "copy":
        ref = "adapter_disabled" if s.peft else "precompute"
        out.append(
            (
                "reference",
                f"Reference model: {ref.replace('_', ' ')}",
                replace(s, reference=ref),
                "No second copy of the weights in memory.",
            )
        )
    if s.optimizer != "paged_adamw_8bit" and est.params_trainable > 0:
        out.append(
            (
                "paged_optimizer",
                "Use the paged 8-bit AdamW optimizer",
                replace(s, optimizer="paged_adamw_8bit"),
                "Optimizer states in 8 bits (2 bytes/param instead of 8), paged on spikes.",
            )
        )
    min_mb = 2 if s.objective == "kto" else 1
    if s.micro_batch > min_mb:
        effective = s.micro_batch * s.grad_accum
        best = None
        mb = s.micro_batch // 2
        while mb >= min_mb:
            cand = replace(s, micro_batch=mb, grad_accum=max(1, effective // mb))
            best = cand
            if classify(estimate(est.arch, cand).total, budget.bytes)[0] == "fits":
                break
            mb //= 2
        if best is not None:
            out.append(
                (
                    "micro_batch",
                    f"Micro-batch {best.micro_batch} with {best.grad_accum} accumulation steps",
                    best,
                    f"Same effective batch ({effective}); fewer tokens in memory at once.",
                )
            )
    if s.adapter == "full":
        out.append(
            (
                "lora",
                "Train LoRA adapters instead of all weights",
                replace(s, adapter="lora"),
                "Frozen 16-bit base: no gradients or optimizer states for the base weights.",
            )
        )
    if s.adapter in ("full", "lora"):
        out.append(
            (
                "qlora",
                "Switch to QLoRA (4-bit NF4 base)",
                replace(s, adapter="qlora"),
                "Base weights in 4 bits (~0.52 bytes/param); slightly slower, small quality cost.",
            )
        )
    if s.max_length > 256:
        best = None
        length = s.max_length // 2
        while length >= 256:
            cand = replace(s, max_length=length)
            best = cand
            if classify(estimate(est.arch, cand).total, budget.bytes)[0] == "fits":
                break
            length //= 2
        if best is not None:
            out.append(
                (
                    "max_length",
                    f"Shorter max length: {best.max_length} tokens",
                    best,
                    "Longer examples are truncated: check the Data step's length statistics.",
                )
            )
    return out


def suggest(est: Estimate, budget: Budget | HardwareProbe | int) -> list[Suggestion]:
    """Ranked changes that lower the peak, each with its new estimate."""
    budget = _as_budget(budget)
    s = est.settings
    found: list[Suggestion] = []
    for key, title, new, detail in _candidates(est, budget):
        e = estimate(est.arch, new, model=est.model)
        if e.total >= est.total * 0.99:
            continue
        status = classify(e.total, budget.bytes)[0]
        found.append(
            Suggestion(key, title, _changes_for(s, new), e, status, est.total - e.total, detail)
        )
    # A smaller model from the catalogue, same family first.
    entry = catalog.by_hub_id(est.model) or catalog.get(est.model)
    family = entry.family if entry else None
    for cand in catalog.smaller_than(est.params_total, family=family):
        e = estimate(cand.arch, s, model=cand.id)
        status = classify(e.total, budget.bytes)[0]
        if status == "fits":
            found.append(
                Suggestion(
                    "smaller_model",
                    f"Smaller model: {cand.name}",
                    {"model.id": cand.id},
                    e,
                    status,
                    est.total - e.total,
                    f"{cand.size_label()} parameters instead of "
                    f"{est.params_total / 1e9:.1f}B; fits with the current settings.",
                )
            )
            break
    # No single change of the settings fits: combine them greedily in order of preference.
    if not any(sg.status == "fits" for sg in found if sg.key != "smaller_model"):
        singles = sorted(
            (sg for sg in found if sg.key != "smaller_model"),
            key=lambda sg: _PREFERENCE.get(sg.key, 99),
        )
        cur = s
        titles: list[str] = []
        for sg in singles:
            nxt = _apply_to_settings(cur, sg.changes)
            if estimate(est.arch, nxt).total < estimate(est.arch, cur).total:
                cur = nxt
                titles.append(sg.title)
            if classify(estimate(est.arch, cur).total, budget.bytes)[0] == "fits":
                break
        if len(titles) > 1:
            e = estimate(est.arch, cur, model=est.model)
            found.append(
                Suggestion(
                    "combined",
                    "Combine: " + "; ".join(t[0].lower() + t[1:] for t in titles),
                    _changes_for(s, cur),
                    e,
                    classify(e.total, budget.bytes)[0],
                    est.total - e.total,
                    "No single change is enough.",
                )
            )
    found.sort(
        key=lambda sg: (_STATUS_RANK[sg.status], _PREFERENCE.get(sg.key, 99), sg.estimate.total)
    )
    return found


def _apply_to_settings(s: Settings, changes: dict[str, Any]) -> Settings:
    back = {v: k for k, v in CONFIG_KEYS.items()}
    return replace(s, **{back[k]: v for k, v in changes.items() if k in back})


def apply_suggestion(cfg: RunConfig, suggestion: Suggestion | dict[str, Any]) -> RunConfig:
    """A copy of `cfg` with a suggestion's dotted-key changes applied (validated)."""
    changes = suggestion.changes if isinstance(suggestion, Suggestion) else suggestion
    for key, value in changes.items():
        cfg = cfg.with_value(key, value)
    return cfg


# --------------------------------------------------------------------------- text


def describe_settings(est: Estimate) -> str:
    """One line: method, objective, length, batch, checkpointing, precision, optimizer."""
    s = est.settings
    parts = [
        s.method,
        s.objective.upper(),
        f"max length {s.max_length}",
        f"micro-batch {s.micro_batch} x {s.grad_accum} accumulation",
        f"gradient checkpointing {'on' if s.gradient_checkpointing else 'off'}",
        s.resolved_precision,
        s.optimizer,
    ]
    if s.peft and s.adapter not in ("prompt_tuning", "prefix_tuning", "ia3"):
        parts.insert(1, f"r={s.lora_r} on {s.target_modules}")
    if s.resolved_reference != "none":
        parts.append(f"reference: {s.resolved_reference.replace('_', ' ')}")
    return " · ".join(parts)


def report_lines(v: Verdict) -> list[str]:
    """The Memory step as text: the CLI prints it; the screen shows the same numbers."""
    e = v.estimate
    a = e.arch
    lines = [
        f"Model:     {e.model} ({e.params_total / 1e9:.2f}B params, {a.num_layers} layers, "
        f"hidden {a.hidden_size}, vocab {a.vocab_size:,})",
        f"Run:       {describe_settings(e)}",
        f"Trainable: {e.params_trainable / 1e6:,.1f}M params "
        f"({100 * e.params_trainable / max(1, e.params_total):.2f} %)",
        "",
    ]
    for label, value in e.rows():
        if label == "Total peak":
            lines.append(f"  {'-' * 30}")
        lines.append(f"  {label:20s} {value:>10s}")
    lines.append("")
    lines.append(v.summary)
    lines.extend(f"  ! {w}" for w in v.warnings)
    lines.extend(f"  - {n}" for n in e.notes)
    if v.suggestions:
        lines.append("")
        lines.append("Suggestions (best first):")
        for n, sg in enumerate(v.suggestions, 1):
            change = ", ".join(f"{k} = {_toml_value(val)}" for k, val in sg.changes.items())
            lines.append(
                f"  {n}. {sg.title}: {fmt_gb(sg.estimate.total)} "
                f"({STATUS_LABELS[sg.status].lower()})  [{change}]"
            )
    return lines


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)
