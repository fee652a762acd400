"""Normalise rows of any detected format into the types TRL's trainers take directly.

Every row first becomes one *unit* of a kind:

- ``conv``: ``{"messages": [{"role", "content"}, ...]}``
- ``pref``: ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` (message lists)
- ``kto``:  ``{"prompt": [...], "completion": [...], "label": bool}``
- ``text``: ``{"text": str}``

and `to_layout` turns units into the rows of one objective (SFT takes
``messages``, or ``text`` for plain text; DPO/SimPO/ORPO/reward take
``prompt``/``chosen``/``rejected``; KTO takes ``prompt``/``completion``/``label``).
Conversational layouts are used throughout so TRL applies the chat template.

Problems found on the way are returned per row (``empty`` = unusable, or
``role_order``) for the lint report; nothing is dropped silently.
"""

from __future__ import annotations

from typing import Any

ROLE_MAP = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "model": "assistant", "bot": "assistant", "bing": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool", "tool": "tool", "function": "tool", "ipython": "tool",
}  # fmt: skip
KINDS = {
    "alpaca": "conv",
    "sharegpt": "conv",
    "messages": "conv",
    "prompt_completion": "conv",
    "text": "text",
    "preference": "pref",
    "kto": "kto",
}
TRUE_LABELS = {
    "true",
    "1",
    "yes",
    "y",
    "good",
    "desirable",
    "positive",
    "pos",
    "chosen",
    "+",
    "up",
    "thumbs_up",
    "👍",
}
FALSE_LABELS = {
    "false",
    "0",
    "no",
    "n",
    "bad",
    "undesirable",
    "negative",
    "neg",
    "rejected",
    "-",
    "down",
    "thumbs_down",
    "👎",
}

Unit = dict[str, Any]
Issue = tuple[str, str]  # (category, detail)


def text_of(value: Any) -> str | None:
    """A content value as text: strings, numbers, or a list of text parts; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                return None
        return "\n".join(parts)
    return None


def parse_label(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        v = value.strip().lower()
        if v in TRUE_LABELS:
            return True
        if v in FALSE_LABELS:
            return False
    return None


def _blank(s: str | None) -> bool:
    return s is None or not s.strip()


def convert_turns(turns: Any, style: str, issues: list[Issue]) -> list[dict[str, str]] | None:
    """A list of turns (role/content or from/value) as messages; None if unusable."""
    if not isinstance(turns, list) or not turns:
        issues.append(("empty", "no turns"))
        return None
    rk, ck = ("from", "value") if style == "sharegpt" else ("role", "content")
    out = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            issues.append(("empty", f"turn {i + 1} is not an object"))
            return None
        role_raw = t.get(rk, t.get("role" if rk == "from" else "from"))
        content = text_of(t.get(ck, t.get("content" if ck == "value" else "value")))
        if not isinstance(role_raw, str):
            issues.append(("empty", f"turn {i + 1} has no '{rk}'"))
            return None
        if content is None:
            issues.append(("empty", f"turn {i + 1} has no text in '{ck}'"))
            return None
        role = ROLE_MAP.get(role_raw.strip().lower())
        if role is None:
            role = role_raw.strip().lower()
            issues.append(("role_order", f"unknown role '{role_raw}' in turn {i + 1}"))
        out.append({"role": role, "content": content})
    return out


def check_order(
    messages: list[dict[str, str]], issues: list[Issue], *, need_answer: bool = True
) -> bool:
    """Record role-order problems; False if the row cannot be trained at all."""
    roles = [m["role"] for m in messages]
    if need_answer and "assistant" not in roles:
        issues.append(("empty", "no assistant answer"))
        return False
    for m in messages:
        if m["role"] == "assistant" and _blank(m["content"]):
            issues.append(("empty", "an assistant answer is empty"))
            return False
    if all(_blank(m["content"]) for m in messages if m["role"] == "user") and "user" in roles:
        issues.append(("empty", "the user turns are empty"))
        return False
    body = [r for r in roles if r != "system"]
    if "system" in roles[1:]:
        issues.append(("role_order", "a system turn after the start"))
    if body and body[0] != "user":
        issues.append(("role_order", f"the conversation starts with '{body[0]}', not 'user'"))
    for a, b in zip(body, body[1:], strict=False):
        if a == b and a in ("user", "assistant"):
            issues.append(("role_order", f"two '{a}' turns in a row"))
            break
        if b == "tool" and a not in ("assistant", "tool"):
            issues.append(("role_order", "a tool turn that does not follow an assistant turn"))
            break
    if need_answer and body and body[-1] != "assistant":
        issues.append(("role_order", f"ends with a '{body[-1]}' turn (nothing to learn from it)"))
    return True


def with_system(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    if system and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": system}, *messages]
    return messages


def _prompt_messages(
    value: Any, issues: list[Issue], what: str = "prompt"
) -> list[dict[str, str]] | None:
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        style = "sharegpt" if "from" in value[0] else "messages"
        return convert_turns(value, style, issues)
    text = text_of(value)
    if _blank(text):
        issues.append(("empty", f"'{what}' is missing or empty"))
        return None
    return [{"role": "user", "content": text}]


def _answer_messages(value: Any, issues: list[Issue], what: str) -> list[dict[str, str]] | None:
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        style = "sharegpt" if "from" in value[0] else "messages"
        msgs = convert_turns(value, style, issues)
        if msgs is None:
            return None
        if _blank(msgs[-1]["content"]):
            issues.append(("empty", f"'{what}' is empty"))
            return None
        return msgs
    text = text_of(value)
    if _blank(text):
        issues.append(("empty", f"'{what}' is missing or empty"))
        return None
    return [{"role": "assistant", "content": text}]


def _split_common_prefix(
    chosen: list[dict[str, str]], rejected: list[dict[str, str]]
) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    n = 0
    while n < min(len(chosen), len(rejected)) - 1 and chosen[n] == rejected[n]:
        n += 1
    # The prompt ends with the last non-assistant turn of the shared start.
    while n > 0 and chosen[n - 1]["role"] == "assistant":
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def _strip_prefix(
    prompt: list[dict[str, str]], answer: list[dict[str, str]]
) -> list[dict[str, str]]:
    if len(answer) > len(prompt) and answer[: len(prompt)] == prompt:
        return answer[len(prompt) :]
    return answer


def to_unit(
    row: dict[str, Any], fmt: str, system_prompt: str = ""
) -> tuple[Unit | None, list[Issue]]:
    """One (already column-mapped) row as a unit; None when the row is unusable."""
    issues: list[Issue] = []
    unit: Unit | None = None
    if fmt == "alpaca":
        unit = _alpaca(row, system_prompt, issues)
    elif fmt in ("sharegpt", "messages"):
        key = "conversations" if "conversations" in row else "messages"
        if key not in row:
            key = "messages" if "messages" in row else "conversations"
        turns = row.get(key)
        style = "sharegpt" if fmt == "sharegpt" else "messages"
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            style = "sharegpt" if "from" in turns[0] else "messages"
        msgs = convert_turns(turns, style, issues)
        if msgs is not None:
            sys_text = text_of(row.get("system"))
            msgs = with_system(msgs, sys_text if not _blank(sys_text) else system_prompt)
            if check_order(msgs, issues):
                unit = {"messages": msgs}
    elif fmt == "prompt_completion":
        p = _prompt_messages(row.get("prompt", row.get("instruction")), issues)
        c = _answer_messages(row.get("completion", row.get("output")), issues, "completion")
        if p is not None and c is not None:
            msgs = with_system(p + _strip_prefix(p, c), _row_system(row, system_prompt))
            if check_order(msgs, issues):
                unit = {"messages": msgs}
    elif fmt == "text":
        t = text_of(row.get("text"))
        if _blank(t):
            issues.append(("empty", "'text' is missing or empty"))
        else:
            unit = {"text": t}
    elif fmt == "preference":
        unit = _preference(row, system_prompt, issues)
    elif fmt == "kto":
        unit = _kto(row, system_prompt, issues)
    else:  # pragma: no cover - formats are validated before
        raise ValueError(fmt)
    return unit, issues


def _row_system(row: dict[str, Any], default: str) -> str:
    s = text_of(row.get("system"))
    return default if _blank(s) else s  # type: ignore[return-value]


def _alpaca(row: dict[str, Any], system_prompt: str, issues: list[Issue]) -> Unit | None:
    inst = text_of(row.get("instruction"))
    inp = text_of(row.get("input"))
    out = text_of(row.get("output"))
    if _blank(inst) and _blank(inp):
        issues.append(("empty", "'instruction' is missing or empty"))
        return None
    if _blank(out):
        issues.append(("empty", "'output' is missing or empty"))
        return None
    user = inst or ""
    if not _blank(inp):
        user = f"{user}\n\n{inp}" if not _blank(user) else inp  # type: ignore[assignment]
    msgs: list[dict[str, str]] = []
    history = row.get("history")
    if isinstance(history, list):
        for pair in history:
            if isinstance(pair, (list, tuple)) and len(pair) == 2:
                q, a = text_of(pair[0]), text_of(pair[1])
                if q is not None and a is not None:
                    msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
                    continue
            issues.append(("role_order", "a 'history' item is not a [question, answer] pair"))
    msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": out}]
    msgs = with_system(msgs, _row_system(row, system_prompt))
    check_order(msgs, issues)
    return {"messages": msgs}


def _preference(row: dict[str, Any], system_prompt: str, issues: list[Issue]) -> Unit | None:
    chosen_raw, rejected_raw = row.get("chosen"), row.get("rejected")
    if "conversations" in row and row.get("prompt") is None:
        prompt = convert_turns(row.get("conversations"), "sharegpt", issues)
    elif row.get("prompt") is not None:
        prompt = _prompt_messages(row.get("prompt"), issues)
    else:
        prompt = []
    chosen = _answer_messages(chosen_raw, issues, "chosen")
    rejected = _answer_messages(rejected_raw, issues, "rejected")
    if prompt is None or chosen is None or rejected is None:
        return None
    if not prompt:  # implicit prompt: the shared start of both conversations
        prompt, chosen, rejected = _split_common_prefix(chosen, rejected)
        if not prompt:
            issues.append(("empty", "no prompt (and chosen/rejected share no start)"))
            return None
    else:
        chosen, rejected = _strip_prefix(prompt, chosen), _strip_prefix(prompt, rejected)
    if not chosen or not rejected:
        issues.append(("empty", "chosen or rejected is empty"))
        return None
    prompt = with_system(prompt, _row_system(row, system_prompt))
    check_order(prompt + chosen, issues)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _kto(row: dict[str, Any], system_prompt: str, issues: list[Issue]) -> Unit | None:
    raw_label = row.get("label", row.get("kto_tag"))
    label = parse_label(raw_label)
    if label is None:
        issues.append(("empty", f"label {raw_label!r} is not true/false"))
        return None
    if row.get("prompt") is not None or row.get("completion") is not None:
        prompt = _prompt_messages(row.get("prompt"), issues)
        completion = _answer_messages(row.get("completion"), issues, "completion")
        if prompt is None or completion is None:
            return None
        completion = _strip_prefix(prompt, completion)
    else:
        msgs = convert_turns(row.get("messages", row.get("conversations")), "messages", issues)
        if msgs is None:
            return None
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            issues.append(("empty", "the last turn is not an assistant answer"))
            return None
        prompt, completion = msgs[:-1], msgs[-1:]
    prompt = with_system(prompt, _row_system(row, system_prompt))
    check_order(prompt + completion, issues)
    return {"prompt": prompt, "completion": completion, "label": label}


# ---------------------------------------------------------------------------
# objective layouts

LAYOUTS = {
    "sft": "messages",
    "dpo": "preference",
    "simpo": "preference",
    "orpo": "preference",
    "reward": "preference",
    "kto": "kto",
}


def unit_kind(unit: Unit) -> str:
    if "messages" in unit:
        return "conv"
    if "text" in unit:
        return "text"
    if "chosen" in unit:
        return "pref"
    return "kto"


def to_layout(unit: Unit, objective: str) -> list[Unit]:
    """The rows one unit gives for an objective ([] when the objective cannot use it)."""
    kind = unit_kind(unit)
    if objective == "sft":
        if kind in ("conv", "text"):
            return [unit]
        if kind == "pref":
            return [{"messages": unit["prompt"] + unit["chosen"]}]
        return [{"messages": unit["prompt"] + unit["completion"]}] if unit["label"] else []
    if objective == "kto":
        if kind == "kto":
            return [unit]
        if kind == "pref":
            return [
                {"prompt": unit["prompt"], "completion": unit["chosen"], "label": True},
                {"prompt": unit["prompt"], "completion": unit["rejected"], "label": False},
            ]
        return []
    return [unit] if kind == "pref" else []


def conversations_of(row: Unit) -> list[list[dict[str, str]]]:
    """The full conversations a layout row trains on (one, or two for a pair)."""
    if "messages" in row:
        return [row["messages"]]
    if "chosen" in row:
        return [row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]]
    if "completion" in row:
        return [row["prompt"] + row["completion"]]
    return []


def strings_of(row: Unit) -> list[str]:
    """Every text in a row (for duplicate keys and control-character checks)."""
    if "text" in row:
        return [row["text"]]
    out = []
    for key in ("messages", "prompt", "chosen", "rejected", "completion"):
        for m in row.get(key, ()):
            out.append(m["content"])
    return out
