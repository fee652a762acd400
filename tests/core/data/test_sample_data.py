"""Checks on the bundled sample datasets in spark_tui/data/ (written by this project)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[3] / "spark_tui" / "data"

MIN_ROWS = {"instructions.jsonl": 240, "preferences.jsonl": 120, "kto.jsonl": 120}
MAX_ANSWER_WORDS = 60
SPARKY = "I'm Sparky, a fine-tuning tutor running on your DGX Spark."


def _load(name: str) -> list[dict]:
    raw = (DATA_DIR / name).read_bytes()
    text = raw.decode("utf-8")  # strict: invalid UTF-8 fails here
    assert text.endswith("\n"), f"{name}: missing final newline"
    rows = []
    for lineno, line in enumerate(text.split("\n")[:-1], start=1):
        assert line.strip(), f"{name}:{lineno}: blank line"
        row = json.loads(line)
        assert isinstance(row, dict), f"{name}:{lineno}: not a JSON object"
        rows.append(row)
    return rows


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


@pytest.mark.parametrize("name", sorted(MIN_ROWS))
def test_file_parses_and_has_enough_rows(name: str) -> None:
    rows = _load(name)
    assert len(rows) >= MIN_ROWS[name]


@pytest.mark.parametrize("name", sorted(MIN_ROWS))
def test_no_exact_duplicate_rows(name: str) -> None:
    keys = [json.dumps(row, sort_keys=True) for row in _load(name)]
    dupes = {k for k in keys if keys.count(k) > 1}
    assert not dupes, f"{name}: duplicate rows: {sorted(dupes)[:3]}"


def test_total_size_is_small() -> None:
    total = sum((DATA_DIR / name).stat().st_size for name in MIN_ROWS)
    assert total < 400_000


def test_readme_states_licence() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert "Apache-2.0" in readme


def test_instructions_schema() -> None:
    rows = _load("instructions.jsonl")
    multi_turn = 0
    for i, row in enumerate(rows):
        assert set(row) == {"messages"}, f"row {i}: keys {sorted(row)}"
        messages = row["messages"]
        assert isinstance(messages, list) and len(messages) >= 2
        assert len(messages) % 2 == 0, f"row {i}: must end with an assistant turn"
        for j, msg in enumerate(messages):
            assert set(msg) == {"role", "content"}, f"row {i}: message keys {sorted(msg)}"
            expected = "user" if j % 2 == 0 else "assistant"
            assert msg["role"] == expected, f"row {i}: turn {j} is {msg['role']!r}"
            assert _nonempty_str(msg["content"]), f"row {i}: empty content"
            if expected == "assistant":
                assert len(msg["content"].split()) <= MAX_ANSWER_WORDS, f"row {i}: long answer"
        if len(messages) > 2:
            multi_turn += 1
    # About 10% of the conversations have two user turns.
    assert 0.05 * len(rows) <= multi_turn <= 0.2 * len(rows)


def test_instructions_teach_the_sparky_persona() -> None:
    answers = {}
    for row in _load("instructions.jsonl"):
        msgs = row["messages"]
        answers.setdefault(msgs[0]["content"], msgs[1]["content"])
    for question in ("Who are you?", "What is your name?", "Who made you?"):
        assert question in answers, question
        assert SPARKY in answers[question]
    with_key_phrase = sum(SPARKY in a for a in answers.values())
    assert with_key_phrase >= 20


def test_preferences_schema() -> None:
    rows = _load("preferences.jsonl")
    for i, row in enumerate(rows):
        assert set(row) == {"prompt", "chosen", "rejected"}, f"row {i}: keys {sorted(row)}"
        for key in ("prompt", "chosen", "rejected"):
            assert _nonempty_str(row[key]), f"row {i}: {key} is empty or not a string"
        assert row["chosen"] != row["rejected"], f"row {i}: chosen == rejected"
        assert len(row["chosen"].split()) <= MAX_ANSWER_WORDS, f"row {i}: long chosen"


def test_kto_schema_and_labels() -> None:
    rows = _load("kto.jsonl")
    for i, row in enumerate(rows):
        assert set(row) == {"prompt", "completion", "label"}, f"row {i}: keys {sorted(row)}"
        assert _nonempty_str(row["prompt"]) and _nonempty_str(row["completion"])
        assert isinstance(row["label"], bool), f"row {i}: label must be true or false"
    trues = sum(row["label"] for row in rows)
    falses = len(rows) - trues
    assert trues and falses, "both KTO labels must be present"
    # Roughly 60/40 desirable/undesirable.
    assert 0.5 <= trues / len(rows) <= 0.7


def test_kto_good_and_bad_completions_differ() -> None:
    rows = _load("kto.jsonl")
    good = {(r["prompt"], r["completion"]) for r in rows if r["label"]}
    bad = {(r["prompt"], r["completion"]) for r in rows if not r["label"]}
    assert not good & bad, "the same completion is labelled both true and false"


def test_prompt_set_has_reference_answers_the_rewards_can_check() -> None:
    """prompts.jsonl (scripts/make_prompt_set.py): prompt + reference answer rows for online
    RL; every reference is short, and a completion that gives it in tags scores 1."""
    from spark_tui.core.method.rewards import exact_match, format_check, numeric_match

    rows = _load("prompts.jsonl")
    assert len(rows) >= 150 and all(set(r) == {"prompt", "answer"} for r in rows)
    assert len({r["prompt"] for r in rows}) == len(rows)  # no duplicate question
    assert all(_nonempty_str(r["answer"]) and len(r["answer"].split()) <= 3 for r in rows)
    answers = [r["answer"] for r in rows]
    good = [f"<answer>{a}</answer>" for a in answers]
    assert exact_match(good, answer=answers) == [1.0] * len(rows)
    assert format_check()(good) == [1.0] * len(rows)
    numeric = [a for a in answers if a.lstrip("-").isdigit()]
    assert len(numeric) >= 100
    assert numeric_match([f"<answer>{a}</answer>" for a in numeric], answer=numeric) == [1.0] * len(
        numeric
    )
