"""Reward functions for online RL (GRPO, RLOO): built-in checks and the user's own file.

TRL's `GRPOTrainer` and `RLOOTrainer` call every reward function the same way —
`f(prompts=…, completions=…, completion_ids=…, **columns)`, with the dataset's other
columns (the reference `answer` here) as lists, one value per completion — and log each
one under its `__name__` (`rewards/<name>/mean`).  The built-in ones are the checks every
RL recipe offers (Unsloth, Axolotl, LLaMA-Factory): the answer matches the reference
(exactly, or as a number), the completion has the asked format, it has a target length.

A user's own function comes from a Python file: that is running the user's code, so it is
loaded only when the user switched `trust_user_code` on (like `trust_remote_code`).
No torch here: the functions see text.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spark_tui.core.base.errors import SparkError

REFERENCE_COLUMN = "answer"  # the prepared prompt set's reference answer column
DEFAULT_FORMAT = r"<answer>\s*\S.*?</answer>"  # "answer in <answer> tags"
BUILTIN = ("exact_match", "numeric_match", "format", "length")

_TAGS = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

RewardFunc = Callable[..., list[float]]


class RewardError(SparkError):
    """A reward function that cannot be built or that misbehaves, said in one sentence."""


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or a conversational turn list (last content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content") or "")
    return str(completion or "")


def extract_answer(text: str) -> str:
    """The answer a completion gives: inside its last <answer> tags, else its last line."""
    tagged = _TAGS.findall(text)
    if tagged:
        return tagged[-1].strip()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?\"'")


def _references(answer: Any, n: int, name: str) -> list[str]:
    if answer is None:
        raise RewardError(
            f"the {name} reward compares with a reference answer: the data needs an "
            f"'{REFERENCE_COLUMN}' column (prompt + reference rows)"
        )
    refs = [str(a) for a in answer]
    if len(refs) != n:
        raise RewardError(f"the {name} reward got {n} completions but {len(refs)} answers")
    return refs


def exact_match(completions: Sequence[Any], answer: Any = None, **_: Any) -> list[float]:
    """1 when the answer given equals the reference (case, spaces, end punctuation aside)."""
    refs = _references(answer, len(completions), "exact_match")
    return [
        1.0 if _normal(extract_answer(completion_text(c))) == _normal(r) else 0.0
        for c, r in zip(completions, refs, strict=True)
    ]


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric_match(completions: Sequence[Any], answer: Any = None, **_: Any) -> list[float]:
    """1 when the answer's number equals the reference's (1e-6 relative tolerance)."""
    refs = _references(answer, len(completions), "numeric_match")
    out = []
    for c, r in zip(completions, refs, strict=True):
        got, want = _number(extract_answer(completion_text(c))), _number(r)
        same = got is not None and want is not None and math.isclose(got, want, rel_tol=1e-6)
        out.append(1.0 if same else 0.0)
    return out


def format_check(pattern: str = DEFAULT_FORMAT) -> RewardFunc:
    """1 when the completion contains `pattern` (a regex), e.g. an answer in <answer> tags."""
    try:
        rx = re.compile(pattern, re.S)
    except re.error as exc:
        raise RewardError(f"the format reward's pattern {pattern!r} is not a regex: {exc}") from exc

    def format(completions: Sequence[Any], **_: Any) -> list[float]:  # noqa: A001 - its log name
        return [1.0 if rx.search(completion_text(c)) else 0.0 for c in completions]

    return format


def length_target(chars: int) -> RewardFunc:
    """1 at `chars` characters, falling linearly to 0 at twice (or none) as many."""
    if chars < 1:
        raise RewardError(f"the length reward's target must be at least 1 character, not {chars}")

    def length(completions: Sequence[Any], **_: Any) -> list[float]:
        return [
            max(0.0, 1.0 - abs(len(completion_text(c)) - chars) / chars) for c in completions
        ]

    return length


def user_reward(path: str | Path, function: str = "reward", *, trust: bool) -> RewardFunc:
    """The user's reward function `function` from the Python file `path`.

    Refused unless `trust` (running the file runs its code); checked to return one finite
    number per completion, and its failures name the file and the function.
    """
    path = Path(path).expanduser()
    if not trust:
        raise RewardError(
            f"{path} is Python code: loading it runs it. Switch on trust_user_code "
            "(Method step, or --trust-user-code) if you wrote it or trust who did"
        )
    if not path.is_file():
        raise RewardError(f"reward function file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"spark_tui_user_reward_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise RewardError(f"{path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's code: any error, said plainly
        raise RewardError(f"{path} failed to load: {type(exc).__name__}: {exc}") from exc
    func = getattr(module, function, None)
    if not callable(func):
        raise RewardError(f"{path} has no function {function}(prompts, completions, **kwargs)")

    def checked(prompts: Any = None, completions: Sequence[Any] = (), **kwargs: Any) -> list[float]:
        where = f"{path.name}:{function}"
        try:
            values = list(func(prompts=prompts, completions=completions, **kwargs))
        except Exception as exc:  # noqa: BLE001 - named, not a bare traceback
            raise RewardError(f"{where} raised {type(exc).__name__}: {exc}") from exc
        if len(values) != len(completions):
            raise RewardError(
                f"{where} returned {len(values)} values for {len(completions)} completions"
            )
        for v in values:
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise RewardError(f"{where} returned {v!r}: rewards must be finite numbers")
        return [None if v is None else float(v) for v in values]  # type: ignore[misc]

    checked.__name__ = function
    return checked


def reward_functions(
    names: Sequence[str],
    *,
    format_pattern: str = DEFAULT_FORMAT,
    length_chars: int = 200,
    user_file: str = "",
    user_function: str = "reward",
    trust_user_code: bool = False,
) -> list[RewardFunc]:
    """The reward functions named (built-in names, and "user" for the user's file)."""
    out: list[RewardFunc] = []
    for name in names:
        if name == "exact_match":
            out.append(exact_match)
        elif name == "numeric_match":
            out.append(numeric_match)
        elif name == "format":
            out.append(format_check(format_pattern))
        elif name == "length":
            out.append(length_target(length_chars))
        elif name == "user":
            if not user_file:
                raise RewardError("the user reward needs the Python file that defines it")
            out.append(user_reward(user_file, user_function, trust=trust_user_code))
        else:
            raise RewardError(
                f"unknown reward {name!r}; use {', '.join(BUILTIN)} or user (your own file)"
            )
    if not out:
        raise RewardError("choose at least one reward function")
    return out
