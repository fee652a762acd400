"""How answers are decoded: the end-of-turn stop tokens of a chat template and a fresh
`GenerationConfig`.

Shared by the evaluation's greedy answers and by chat, so both stop at the same
tokens (``<|im_end|>``, ``<|eot_id|>``, ... as well as EOS).
"""

from __future__ import annotations

from typing import Any

# End-of-turn markers of the common chat templates.  One is a stop token when
# the tokenizer knows it and the template uses it (or it is the EOS token).
END_OF_TURN = (
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|endoftext|>",
    "<end_of_turn>",
    "<|end|>",
    "</s>",
)


def stop_token_ids(tokenizer: Any, template: str | None = None) -> list[int]:
    """EOS plus the end-of-turn tokens the template uses, as ids the tokenizer knows."""
    ids: list[int] = []
    eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(eos, int):
        ids.append(eos)
    elif isinstance(eos, list):
        ids.extend(int(x) for x in eos)
    try:
        vocab = tokenizer.get_vocab()
    except Exception:  # noqa: BLE001
        vocab = {}
    for tok in END_OF_TURN:
        if tok in vocab and (template is None or tok in template):
            tid = int(vocab[tok])
            if tid not in ids:
                ids.append(tid)
    return ids


def stop_strings(tokenizer: Any, template: str | None) -> list[str]:
    """The end-of-turn strings of `template` (for backends that stop on text)."""
    out = [t for t in END_OF_TURN if template and t in template]
    eos = getattr(tokenizer, "eos_token", None) if tokenizer is not None else None
    if isinstance(eos, str) and eos and eos not in out:
        out.append(eos)
    return out


def generation_config(
    tokenizer: Any,
    stop_ids: list[int],
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
) -> Any:
    """A fresh GenerationConfig (the model's own sampling defaults are not inherited)."""
    from transformers import GenerationConfig

    pad = tokenizer.pad_token_id
    if pad is None:
        pad = stop_ids[0] if stop_ids else 0
    kw: dict[str, Any] = {
        "max_new_tokens": int(max_new_tokens),
        "eos_token_id": list(stop_ids) if stop_ids else tokenizer.eos_token_id,
        "pad_token_id": pad,
    }
    if temperature <= 0:
        kw["do_sample"] = False
    else:
        kw.update(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0)
    return GenerationConfig(**kw)
