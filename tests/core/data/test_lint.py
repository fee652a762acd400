"""Every lint category: count, example rows, and the keep/drop/fix choice."""

from __future__ import annotations

import pytest

from spark_tui.core.data import CATEGORIES, DataError, kto_balance, parse_drop, prepare_dataset

# Turns in the expected user/assistant order, and turns with two user turns in a row.
ALTERNATING = {
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
}
REPEATED_USER = {
    "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Yes"},
    ]
}


def _finding(report, category):
    return next(f for f in report["lint"] if f["category"] == category)


def _rows(n=12):
    return [
        {"instruction": f"Task {i} about topic {i * 13}", "output": f"Result {i} is {i * 17}."}
        for i in range(n)
    ]


def test_report_lists_every_category(tokenizer, write_jsonl, make_cfg):
    p = prepare_dataset(make_cfg(write_jsonl(_rows())), tokenizer)
    assert {f["category"] for f in p.report["lint"]} == set(CATEGORIES)
    for f in p.report["lint"]:
        assert {"count", "examples", "action", "actions", "title", "help"} <= set(f)


def test_empty_fields_are_always_dropped(tokenizer, write_jsonl, make_cfg):
    rows = _rows()
    rows[3] = {"instruction": "Q", "output": "  "}
    rows[7] = {"instruction": "", "output": "A"}
    p = prepare_dataset(make_cfg(write_jsonl(rows), val_fraction=0.0), tokenizer)
    f = _finding(p.report, "empty")
    assert f["count"] == 2 and f["examples"] == [4, 8] and f["where"] == ["line 4", "line 8"]
    assert f["action"] == "drop" and f["forced"]
    assert len(p.dataset["train"]) == 10
    assert p.report["stats"]["rows_before"] == 12 and p.report["stats"]["rows_after"] == 10


def test_keys_that_differ(tokenizer, write_jsonl, make_cfg):
    rows = _rows()
    rows[5] = {"instruction": "Q", "ouput": "typo", "output": "A"}
    path = write_jsonl(rows)
    p = prepare_dataset(make_cfg(path, val_fraction=0.0), tokenizer)
    f = _finding(p.report, "keys_differ")
    assert f["count"] == 1 and f["examples"] == [6] and f["action"] == "keep"
    assert "extra ouput" in next(iter(f["details"]))
    assert len(p.dataset["train"]) == 12
    p = prepare_dataset(make_cfg(path, val_fraction=0.0, drop=["keys_differ"]), tokenizer)
    assert len(p.dataset["train"]) == 11


def test_role_order(tokenizer, write_jsonl, make_cfg):
    ok, bad = ALTERNATING, REPEATED_USER
    path = write_jsonl(
        [ok, bad, dict(ok, messages=ok["messages"] + [{"role": "user", "content": "x"}])]
    )
    p = prepare_dataset(make_cfg(path, val_fraction=0.0), tokenizer)
    f = _finding(p.report, "role_order")
    assert f["count"] == 2 and f["examples"] == [2, 3]
    p = prepare_dataset(make_cfg(path, val_fraction=0.0, drop=["role_order"]), tokenizer)
    assert len(p.dataset["train"]) == 1


def test_exact_and_near_duplicates(tokenizer, write_jsonl, make_cfg):
    rows = _rows(6)
    rows.append(dict(rows[0]))  # exact
    rows.append(
        {"instruction": rows[1]["instruction"].upper() + "!!", "output": rows[1]["output"].lower()}
    )
    path = write_jsonl(rows)
    p = prepare_dataset(make_cfg(path, val_fraction=0.0), tokenizer)
    assert _finding(p.report, "exact_duplicate")["examples"] == [7]
    assert _finding(p.report, "near_duplicate")["examples"] == [8]
    assert len(p.dataset["train"]) == 8
    p = prepare_dataset(
        make_cfg(path, val_fraction=0.0, drop=["exact_duplicate", "near_duplicate"]), tokenizer
    )
    assert len(p.dataset["train"]) == 6
    assert p.report["stats"]["dropped_by_category"] == {"exact_duplicate": 1, "near_duplicate": 1}


def test_too_long_keep_drop_truncate(tokenizer, write_jsonl, make_cfg):
    rows = _rows(5)
    rows.append({"instruction": "Write a lot", "output": "word " * 400})
    rows.append({"instruction": "prompt " * 400, "output": "short"})
    path = write_jsonl(rows)
    p = prepare_dataset(make_cfg(path, val_fraction=0.0, max_length=64), tokenizer)
    f = _finding(p.report, "too_long")
    assert f["count"] == 2 and f["examples"] == [6, 7] and f["action"] == "keep"
    assert f["max_length"] == 64 and f["exact_tokens"]
    assert p.report["stats"]["tokens"]["over_max_length"] == 2
    p = prepare_dataset(
        make_cfg(path, val_fraction=0.0, max_length=64, drop=["too_long"]), tokenizer
    )
    assert len(p.dataset["train"]) == 5
    p = prepare_dataset(
        make_cfg(path, val_fraction=0.0, max_length=64, drop=["too_long:truncate"]), tokenizer
    )
    f = _finding(p.report, "too_long")
    assert f["truncated"] == 1
    assert "the prompt alone is too long: dropped" in f["details"]
    assert len(p.dataset["train"]) == 6
    assert max(p.lengths["train"]) <= 64
    cut = [r for r in p.dataset["train"]["messages"] if r[-1]["content"].startswith("word")]
    assert cut and len(cut[0][-1]["content"]) < 2000


def test_control_characters_and_invalid_utf8(tokenizer, tmp_path, make_cfg):
    import json

    rows = _rows(4)
    rows[1]["output"] = "bell\x07 and null\x00 here"
    rows[2]["output"] = "lone surrogate \ud800 here"
    data = (
        "".join(json.dumps(r) + "\n" for r in rows).encode()
        + b'{"instruction": "caf\xe9", "output": "ok"}\n'
    )
    path = tmp_path / "ctrl.jsonl"
    path.write_bytes(data)
    p = prepare_dataset(make_cfg(path, val_fraction=0.0), tokenizer)
    f = _finding(p.report, "control_chars")
    assert f["count"] == 3 and f["examples"] == [2, 3, 5]
    assert len(p.dataset["train"]) == 5  # kept (surrogates made storable)
    p = prepare_dataset(make_cfg(path, val_fraction=0.0, drop=["control_chars:strip"]), tokenizer)
    outs = [m[-1]["content"] for m in p.dataset["train"]["messages"]]
    assert "bell and null here" in outs and "lone surrogate  here" in outs
    p = prepare_dataset(make_cfg(path, val_fraction=0.0, drop=["control_chars"]), tokenizer)
    assert len(p.dataset["train"]) == 2


def test_chosen_equals_rejected(tokenizer, write_jsonl, make_cfg):
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    rows[2]["rejected"] = rows[2]["chosen"] + "  "
    path = write_jsonl(rows)
    p = prepare_dataset(make_cfg(path, "dpo", val_fraction=0.0), tokenizer)
    f = _finding(p.report, "chosen_equals_rejected")
    assert f["count"] == 1 and f["examples"] == [3] and f["recommended"] == "drop"
    p = prepare_dataset(make_cfg(path, "dpo", val_fraction=0.0, drop=["recommended"]), tokenizer)
    assert len(p.dataset["train"]) == 4


def test_kto_balance_weights():
    assert kto_balance([True] * 10 + [False] * 10)["desirable_weight"] == 1.0
    b = kto_balance([True] * 10 + [False] * 40)
    assert b["desirable_weight"] == 4.0 and b["undesirable_weight"] == 1.0
    w = b["desirable_weight"] * 10 / (b["undesirable_weight"] * 40)
    assert 1.0 <= w <= 4 / 3
    b = kto_balance([True] * 50 + [False] * 10)
    assert b["undesirable_weight"] == 5.0
    assert kto_balance([True] * 5)["ok"] is False
    assert kto_balance([True] * 12 + [False] * 10)["note"].startswith("balanced")


def test_parse_drop():
    a = parse_drop(["recommended"])
    assert a["exact_duplicate"] == "drop" and a["too_long"] == "truncate"
    assert a["control_chars"] == "strip" and a["near_duplicate"] == "keep"
    with pytest.raises(DataError, match="unknown lint category 'dupes'"):
        parse_drop(["dupes"])
    with pytest.raises(DataError, match="cannot be 'truncate'"):
        parse_drop(["exact_duplicate:truncate"])


def test_rows_the_chat_template_rejects(fresh_tokenizer, write_jsonl, make_cfg):
    fresh_tokenizer.chat_template = (
        "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    )
    ok, bad = ALTERNATING, REPEATED_USER
    p = prepare_dataset(
        make_cfg(write_jsonl([ok, bad, ok | {"x": 1}]), val_fraction=0.0), fresh_tokenizer
    )
    f = _finding(p.report, "template_error")
    assert f["count"] == 1 and f["examples"] == [2] and f["forced"]
    assert "roles must alternate" in next(iter(f["details"]))
    assert len(p.dataset["train"]) == 2
