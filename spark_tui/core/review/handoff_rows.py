"""The hand-off data files: prepared rows in the layout each tool's dataset loader reads.

LLaMA-Factory reads ShareGPT-style rows through `dataset_info.json` for every
stage.  Axolotl's layout depends on the objective's prompt strategy:
`chat_template` (SFT) and `chat_template.default` (DPO/SimPO) read `messages` /
`conversations` with chosen/rejected messages; ORPO's `chat_template.argilla`
reads whole chosen/rejected conversations plus a `system` string; KTO's
`<family>.argilla_chat` (under axolotl.prompt_strategies.kto) reads one `completion` conversation and a `label`;
the reward model's `bradley_terry.chat_template` reads single-turn
`system`/`input`/`chosen`/`rejected` strings.

Where the run's chat template inserts a built-in system prompt into chats that
have none (SmolLM2, Qwen2.5), the rows carry it explicitly: a tool that renders
with its own copy of the template (LLaMA-Factory's named templates, Axolotl's
KTO strategies) then trains on the same text as spark-tui did.
"""

from __future__ import annotations

from typing import Any

from spark_tui.config import PAIRED_OBJECTIVES, RunConfig

Message = dict[str, str]
_PROBE_USER = "\x00spark-user\x00"
_PROBE_SYSTEM = "\x00spark-system\x00"


def default_system_prompt(tokenizer: Any) -> str | None:
    """The system prompt `tokenizer`'s chat template inserts into a chat without one ("" = none).

    None when it cannot be told (no template, or rendering failed).  Found by rendering a
    one-turn chat with and without a system message: what the template writes in the
    system slot when it is given none is its default.
    """
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    user = {"role": "user", "content": _PROBE_USER}
    try:
        bare = tokenizer.apply_chat_template([user], tokenize=False)
        given = tokenizer.apply_chat_template(
            [{"role": "system", "content": _PROBE_SYSTEM}, user], tokenize=False
        )
    except Exception:  # noqa: BLE001 - e.g. a template that refuses system messages
        return ""
    pre, found, post = str(given).partition(_PROBE_SYSTEM)
    bare = str(bare)
    if not found or not (bare.startswith(pre) and bare.endswith(post)):
        return ""  # no system block at all without a system message
    text = bare[len(pre) : len(bare) - len(post)]
    return "" if _PROBE_USER in text else text


def template_family(template: str | None) -> str | None:
    """ "chatml", "llama3", ... for a chat template's text; None when it is none of the known ones."""
    if not template:
        return None
    if "<|im_start|>" in template:
        return "chatml"
    if "<|start_header_id|>" in template:
        return "llama3"
    if "<start_of_turn>" in template:
        return "gemma"
    if "<|user|>" in template and "<|end|>" in template:
        return "phi"
    if "<|user|>" in template:
        return "zephyr"
    if "[INST]" in template:
        return "llama2" if "<<SYS>>" in template else "mistral"
    return None


def _to_messages(value: Any) -> list[Message]:
    if isinstance(value, list):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    return [{"role": "user", "content": str(value)}]


def _answer(value: Any) -> Message:
    if isinstance(value, list):
        value = value[-1]["content"] if value else ""
    return {"role": "assistant", "content": str(value)}


def with_system(messages: list[Message], default_system: str | None) -> list[Message]:
    """`messages` with the template's built-in system prompt made explicit (when it has one)."""
    if default_system and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": default_system}, *messages]
    return messages


def _split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], messages[1:]
    return "", messages


def layout_of(rows: list[dict[str, Any]]) -> str:
    """The prepared layout of `rows`: "messages", "text", "preference" or "kto"."""
    keys = set(rows[0]) if rows else set()
    if "label" in keys:
        return "kto"
    if "chosen" in keys:
        return "preference"
    if "text" in keys and "messages" not in keys:
        return "text"
    return "messages"


def llamafactory_rows(
    cfg: RunConfig, rows: list[dict[str, Any]], default_system: str | None = None
) -> list[dict[str, Any]]:
    """Prepared (TRL-layout) rows as LLaMA-Factory's ShareGPT reader takes them."""
    obj = cfg.method.objective
    out: list[dict[str, Any]] = []
    for r in rows:
        if obj in PAIRED_OBJECTIVES:
            out.append(
                {
                    "conversations": with_system(_to_messages(r["prompt"]), default_system),
                    "chosen": _answer(r["chosen"]),
                    "rejected": _answer(r["rejected"]),
                }
            )
        elif obj == "kto":
            msgs = _to_messages(r["prompt"]) + [_answer(r["completion"])]
            out.append({"messages": with_system(msgs, default_system), "label": bool(r["label"])})
        elif "text" in r and "messages" not in r:
            out.append({"text": str(r["text"])})
        else:
            out.append({"messages": with_system(_to_messages(r["messages"]), default_system)})
    return out


def axolotl_rows(
    cfg: RunConfig,
    rows: list[dict[str, Any]],
    default_system: str | None = None,
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Prepared rows in the layout of the Axolotl prompt strategy the hand-off names."""
    obj = cfg.method.objective
    if obj in ("dpo", "simpo") or (obj == "sft"):
        return llamafactory_rows(cfg, rows, default_system)
    out: list[dict[str, Any]] = []
    skipped = 0
    for r in rows:
        if obj == "kto":
            msgs = _to_messages(r["prompt"]) + [_answer(r["completion"])]
            out.append({"completion": with_system(msgs, default_system), "label": bool(r["label"])})
            continue
        system, turns = _split_system(with_system(_to_messages(r["prompt"]), default_system))
        chosen, rejected = _answer(r["chosen"]), _answer(r["rejected"])
        if obj == "orpo":
            out.append(
                {"system": system, "chosen": turns + [chosen], "rejected": turns + [rejected]}
            )
        elif len(turns) == 1 and turns[0]["role"] == "user":  # reward model
            out.append(
                {
                    "system": system,
                    "input": turns[0]["content"],
                    "chosen": chosen["content"],
                    "rejected": rejected["content"],
                }
            )
        else:
            skipped += 1
    if skipped and notes is not None:
        notes.append(
            f"{skipped} of {len(rows)} reward-model rows have a multi-turn prompt, which "
            "Axolotl's bradley_terry.chat_template cannot read (one user turn only); "
            "they are left out of its data file"
        )
    return out
