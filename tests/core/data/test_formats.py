"""Format detection with evidence, manual override and column mapping; normalisation."""

from __future__ import annotations

import pytest

from spark_tui.core.data import DataError, detect_format, suggest_column_map
from spark_tui.core.data.normalize import to_layout, to_unit

ALPACA = {"instruction": "Summarise", "input": "Long text", "output": "Short", "system": "Be brief"}
SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "You are a tool user"},
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temp": 21}'},
        {"from": "gpt", "value": "It is 21 degrees."},
    ]
}
MESSAGES = {
    "messages": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}],
        },
        {"role": "assistant", "content": "Hi!"},
    ]
}
PC = {"prompt": "2+2=", "completion": "4"}
TEXT = {"text": "Plain text for pre-training."}
PREF_STR = {"prompt": "Q?", "chosen": "Good answer", "rejected": "Bad answer"}
PREF_MSGS = {
    "prompt": [{"role": "user", "content": "Q?"}],
    "chosen": [{"role": "assistant", "content": "Good"}],
    "rejected": [{"role": "assistant", "content": "Bad"}],
}
PREF_IMPLICIT = {
    "chosen": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Good"}],
    "rejected": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "Bad"}],
}
PREF_SHAREGPT = {
    "conversations": [{"from": "human", "value": "Q?"}],
    "chosen": {"from": "gpt", "value": "Good"},
    "rejected": {"from": "gpt", "value": "Bad"},
}
KTO = {"prompt": "Q?", "completion": "A.", "label": True}
KTO_MSGS = {
    "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}],
    "label": False,
}
KTO_TAG = {"prompt": "Q?", "completion": "A.", "kto_tag": "false"}


@pytest.mark.parametrize(
    ("row", "fmt", "evidence"),
    [
        (ALPACA, "alpaca", "'instruction' and 'output'"),
        (SHAREGPT, "sharegpt", "'from'/'value'"),
        (MESSAGES, "messages", "'role'/'content'"),
        (PC, "prompt_completion", "'prompt' and 'completion'"),
        (TEXT, "text", "'text'"),
        (PREF_STR, "preference", "'prompt', 'chosen' and 'rejected' (strings)"),
        (PREF_MSGS, "preference", "(message lists)"),
        (PREF_IMPLICIT, "preference", "without 'prompt'"),
        (PREF_SHAREGPT, "preference", "ShareGPT 'conversations' plus 'chosen'/'rejected'"),
        (KTO, "kto", "'prompt', 'completion' and 'label'"),
        (KTO_MSGS, "kto", "'messages' conversations plus a 'label'"),
        (KTO_TAG, "kto", "'kto_tag'"),
    ],
)
def test_detects_every_format_with_evidence(row, fmt, evidence):
    det = detect_format([row] * 3)
    assert det.format == fmt
    assert any(evidence in e for e in det.evidence), det.evidence
    assert not det.overridden


@pytest.mark.parametrize(
    ("columns", "expect"),
    [
        (["question", "answer"], {"question": "instruction", "answer": "output"}),
        (["query", "response"], {"query": "instruction", "response": "output"}),
        (["prompt", "response"], {"prompt": "instruction", "response": "output"}),
        (["input", "output"], {"input": "instruction"}),
        (
            ["Question", "Context", "Answer"],
            {"Question": "instruction", "Context": "input", "Answer": "output"},
        ),
        (["question", "good", "bad"], {"good": "chosen", "bad": "rejected", "question": "prompt"}),
        (["prompt", "response", "thumbs_up"], {"response": "completion", "thumbs_up": "label"}),
    ],
)
def test_suggested_column_maps(columns, expect):
    assert suggest_column_map(columns) == expect


def test_automatic_mapping_is_used_and_shown():
    det = detect_format([{"question": "Q", "answer": "A"}])
    assert det.format == "alpaca"
    assert det.auto_mapped
    assert det.column_map == {"question": "instruction", "answer": "output"}
    assert any("question -> instruction" in e for e in det.evidence)


def test_explicit_column_map_both_directions():
    rows = [{"q": "Q", "a": "A"}]
    assert detect_format(rows, column_map={"q": "instruction", "a": "output"}).format == "alpaca"
    det = detect_format(rows, column_map={"instruction": "q", "output": "a"})
    assert det.column_map == {"q": "instruction", "a": "output"}


def test_bad_column_map_names_the_columns():
    with pytest.raises(DataError, match="neither is a column of the data; the columns are q, a"):
        detect_format([{"q": "Q", "a": "A"}], column_map={"x": "y"})
    with pytest.raises(DataError, match="'zzz' is not a field"):
        detect_format([{"q": "Q", "a": "A"}], column_map={"q": "zzz"})


def test_manual_override():
    det = detect_format([PC], override="alpaca")
    assert det.format == "alpaca" and det.overridden
    assert "by hand" in det.evidence[0]
    det = detect_format([TEXT | {"instruction": "x", "output": "y"}], override="text")
    assert det.format == "text"


def test_override_with_missing_column_says_what_to_do():
    with pytest.raises(
        DataError, match=r"format preference needs the column 'chosen'.*map a column"
    ):
        detect_format([ALPACA], override="preference")


def test_unknown_format_names_columns():
    with pytest.raises(DataError, match=r"cannot tell the format.*'foo', 'bar'.*--map"):
        detect_format([{"foo": 1, "bar": 2}])


# ---------------------------------------------------------------------------
# normalisation


def test_alpaca_with_input_system_and_history():
    row = dict(ALPACA, history=[["Earlier?", "Yes."]])
    unit, issues = to_unit(row, "alpaca")
    assert issues == []
    assert unit["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Earlier?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "Summarise\n\nLong text"},
        {"role": "assistant", "content": "Short"},
    ]


def test_default_system_prompt_only_where_missing():
    unit, _ = to_unit({"instruction": "Q", "output": "A"}, "alpaca", "Default sys")
    assert unit["messages"][0] == {"role": "system", "content": "Default sys"}
    unit, _ = to_unit(ALPACA, "alpaca", "Default sys")
    assert unit["messages"][0]["content"] == "Be brief"


def test_sharegpt_tool_turns():
    unit, issues = to_unit(SHAREGPT, "sharegpt")
    assert issues == []
    assert [m["role"] for m in unit["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_messages_content_parts_joined():
    unit, _ = to_unit(MESSAGES, "messages")
    assert unit["messages"][0]["content"] == "Hello\nthere"


def test_prompt_completion_becomes_conversation():
    unit, _ = to_unit(PC, "prompt_completion")
    assert unit == {
        "messages": [{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}]
    }


@pytest.mark.parametrize("row", [PREF_STR, PREF_MSGS, PREF_IMPLICIT, PREF_SHAREGPT])
def test_preference_variants_normalise_alike(row):
    unit, issues = to_unit(row, "preference")
    assert issues == []
    assert unit["prompt"] == [{"role": "user", "content": "Q?"}]
    assert unit["chosen"][0]["role"] == "assistant"
    assert unit["chosen"][0]["content"].startswith("Good")
    assert unit["rejected"][0]["content"].startswith("Bad")


@pytest.mark.parametrize("row", [KTO, KTO_MSGS, KTO_TAG])
def test_kto_variants(row):
    unit, issues = to_unit(row, "kto")
    assert issues == []
    assert unit["prompt"] == [{"role": "user", "content": "Q?"}]
    assert unit["completion"] == [{"role": "assistant", "content": "A."}]
    assert isinstance(unit["label"], bool)


def test_layouts_per_objective():
    pref, _ = to_unit(PREF_STR, "preference")
    assert to_layout(pref, "dpo") == [pref]
    assert to_layout(pref, "sft") == [{"messages": pref["prompt"] + pref["chosen"]}]
    kto_rows = to_layout(pref, "kto")
    assert [r["label"] for r in kto_rows] == [True, False]
    good, _ = to_unit(KTO, "kto")
    bad, _ = to_unit(KTO_MSGS, "kto")
    assert to_layout(good, "sft") == [{"messages": good["prompt"] + good["completion"]}]
    assert to_layout(bad, "sft") == []
    conv, _ = to_unit(ALPACA, "alpaca")
    assert to_layout(conv, "dpo") == []


@pytest.mark.parametrize(
    ("row", "fmt", "category", "detail"),
    [
        ({"instruction": "Q", "output": ""}, "alpaca", "empty", "'output' is missing or empty"),
        ({"instruction": "", "output": "A"}, "alpaca", "empty", "'instruction' is missing or empty"),
        ({"messages": [{"role": "user", "content": "Q"}]}, "messages", "empty", "no assistant answer"),
        (
            {"messages": [{"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}]},
            "messages", "role_order", "starts with 'assistant'",
        ),
        (
            {"messages": [{"role": "user", "content": "Q"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A"}]},
            "messages", "role_order", "two 'user' turns in a row",
        ),
        (
            {"conversations": [{"from": "human", "value": "Q"}, {"from": "alien", "value": "A"}, {"from": "gpt", "value": "B"}]},
            "sharegpt", "role_order", "unknown role 'alien'",
        ),
        ({"prompt": "Q", "completion": "A", "label": "maybe"}, "kto", "empty", "is not true/false"),
    ],
)  # fmt: skip
def test_row_problems_are_reported(row, fmt, category, detail):
    _, issues = to_unit(row, fmt)
    assert any(c == category and detail in d for c, d in issues), issues
