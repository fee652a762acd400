"""Peak-memory estimator: will this run fit, before anything is downloaded or loaded?

Bytes internally, decimal GB on screen (see `breakdown.py`).
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

The verdict against this machine is `fit.py`; the changes that make a run fit
are `suggestions.py`.  The estimator is pure arithmetic: no torch, no network,
no printing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from spark_tui.config import PAIRED_OBJECTIVES
from spark_tui.core.memory.breakdown import GB, Estimate, fmt_gb
from spark_tui.core.memory.headroom import STATUS_LABELS, as_budget, classify
from spark_tui.core.memory.settings import Settings, settings_from_config
from spark_tui.core.memory.shapes import adapted_linears, architecture_of, trainable_params
from spark_tui.core.model.architecture import Architecture
from spark_tui.core.model.catalog import CatalogEntry

if TYPE_CHECKING:  # pragma: no cover
    from spark_tui.config import RunConfig
    from spark_tui.core.model.hardware import Budget, HardwareProbe

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
CHECKPOINTING_NOTE = "Gradient checkpointing"  # how its notes start (checkpointing_note)
FUSED_HEAD = {"sft", "dpo", "kto"}  # TRL 1.16 trainers with the tiled LM head


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
    arch: Architecture | CatalogEntry | str,
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
    elif isinstance(arch, CatalogEntry):
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
    if s.objective in PAIRED_OBJECTIVES:
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


def estimate_config(
    cfg: RunConfig,
    *,
    arch: Architecture | None = None,
    target: str | None = None,
    hardware: HardwareProbe | Budget | None = None,
) -> Estimate:
    """Estimate for a RunConfig; the target (gpu/unified/cpu) comes from `hardware` if given.

    With train.gradient_checkpointing = "auto" and a machine to check against
    (`hardware`: a probe or a Budget), this is the estimate the run trains with:
    checkpointing off when the peak without it fits with room, on otherwise
    (the training process makes the same decision, `checkpointing_decision`).
    """
    if target is None:
        target = hardware.target if hardware is not None else "gpu"
    s = settings_from_config(cfg, target=target)
    arch = arch or architecture_of(cfg.model.id)
    auto = cfg.train.gradient_checkpointing == "auto"
    if not auto or hardware is None:
        est = estimate(arch, s, model=cfg.model.id)
        if auto:
            est.notes.append(
                f"{CHECKPOINTING_NOTE}: auto, counted as on; it is turned off when the "
                "run fits without it on the machine that trains."
            )
        return est
    budget = as_budget(hardware)
    off = estimate(arch, replace(s, gradient_checkpointing=False), model=cfg.model.id)
    status, _ = classify(off.total, budget.bytes)
    if status == "fits":
        off.notes.append(
            f"{CHECKPOINTING_NOTE}: auto → off. Without it the peak is {fmt_gb(off.total)} "
            f"of {fmt_gb(budget.bytes)}, which fits with room, so no layer is recomputed "
            "(steps ~20–30 % faster)."
        )
        return off
    on = estimate(arch, replace(s, gradient_checkpointing=True), model=cfg.model.id)
    on.notes.append(
        f"{CHECKPOINTING_NOTE}: auto → on. Without it the peak would be {fmt_gb(off.total)} "
        f"of {fmt_gb(budget.bytes)} ({STATUS_LABELS[status].lower()})."
    )
    return on


def checkpointing_decision(cfg: RunConfig) -> tuple[bool | None, str]:
    """(gradient checkpointing on?, why) for the training process, probing this machine now.

    Only "auto" is decided here (None for "on"/"off": the config says).  Called
    before the model is loaded, so the budget is the memory the run can have.
    A failed probe or an unknown architecture keeps checkpointing on.
    """
    if cfg.train.gradient_checkpointing != "auto":
        return None, ""
    try:
        from spark_tui.core.model import hardware

        est = estimate_config(cfg, hardware=hardware.probe(with_disk=False, with_processes=False))
    except Exception as exc:  # no estimate: the safe side
        return True, f"gradient checkpointing: auto → on (no memory estimate: {exc})"
    return est.settings.gradient_checkpointing, checkpointing_note(est)


def checkpointing_note(est: Estimate) -> str:
    """The estimate's note on how "auto" gradient checkpointing was decided ("" if none)."""
    return next((n for n in est.notes if n.startswith(CHECKPOINTING_NOTE)), "")
