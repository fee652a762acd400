"""Loading the tokenizer and the model for a run (4-bit for QLoRA, a 1-label classifier for reward).

Used by the training process (`orchestrate._train`); transformers is imported
inside the functions.
"""

from __future__ import annotations

import os
from typing import Any

from spark_tui.config import RunConfig
from spark_tui.core.train.ranks import current


def _model_load_kwargs(cfg: RunConfig, hw: Any, precision: str) -> dict[str, Any]:
    from spark_tui.core.method.peft_config import bnb_config
    from spark_tui.core.method.precision import choose_attention, load_dtype

    kw: dict[str, Any] = {
        "dtype": load_dtype(cfg, precision),
        "trust_remote_code": bool(cfg.model.trust_remote_code),
        # Chosen, not left to the library's default: packing depends on it (trainer_args).
        "attn_implementation": choose_attention(hw, precision),
    }
    if cfg.model.revision:
        kw["revision"] = cfg.model.revision
    q = bnb_config(cfg, hw, precision)
    if q is not None:
        kw["quantization_config"] = q
        kw["dtype"] = q.bnb_4bit_compute_dtype
        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
            # FSDP shards the 4-bit weights as flat tensors of one dtype with the rest:
            # stored in the compute dtype (PEFT's QLoRA + FSDP recipe); FSDP places them.
            q.bnb_4bit_quant_storage = q.bnb_4bit_compute_dtype
        elif hw.device == "cuda":
            # Each rank's whole model on its own GPU (DDP); rank 0 of 1 on GPU 0.
            kw["device_map"] = {"": current().local_rank}
    return kw


def load_tokenizer(cfg: RunConfig, model_path: str) -> Any:
    from transformers import AutoTokenizer

    kw: dict[str, Any] = {"trust_remote_code": bool(cfg.model.trust_remote_code)}
    if cfg.model.revision:
        kw["revision"] = cfg.model.revision
    tok = AutoTokenizer.from_pretrained(model_path, **kw)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_model(cfg: RunConfig, model_path: str, tok: Any, hw: Any, precision: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kw = _model_load_kwargs(cfg, hw, precision)
    if cfg.method.objective == "reward":
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, **kw)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kw)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    return model
