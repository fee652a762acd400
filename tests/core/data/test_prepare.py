"""prepare_dataset end to end: layouts TRL accepts, the written folder, the report."""

from __future__ import annotations

import json

import pytest
from datasets import load_from_disk

from spark_tui.config import RunConfig
from spark_tui.core.base.names import DATA_REPORT
from spark_tui.core.data import DataError, prepare_dataset


@pytest.mark.parametrize(
    ("objective", "columns"),
    [
        ("sft", ["messages"]),
        ("dpo", ["prompt", "chosen", "rejected"]),
        ("simpo", ["prompt", "chosen", "rejected"]),
        ("orpo", ["prompt", "chosen", "rejected"]),
        ("reward", ["prompt", "chosen", "rejected"]),
        ("kto", ["prompt", "completion", "label"]),
    ],
)
def test_default_data_for_every_objective(tokenizer, tmp_path, objective, columns):
    from trl.data_utils import is_conversational

    cfg = RunConfig()
    cfg.method.objective = objective
    out = tmp_path / "prepared"
    p = prepare_dataset(cfg, tokenizer, out_dir=out)
    assert set(p.dataset) == {"train", "validation"}
    assert p.dataset["train"].column_names == columns
    assert len(p.dataset["validation"]) > 0
    assert is_conversational(p.dataset["train"][0])
    back = load_from_disk(str(out))
    assert back["train"].column_names == columns
    assert len(back["train"]) == len(p.dataset["train"])
    report = json.loads((out / DATA_REPORT).read_text())
    assert report["objective"] == objective
    assert report["stats"]["rows_after"] == len(p.dataset["train"]) + len(p.dataset["validation"])
    assert 0 < report["stats"]["trained_share"] < 1
    assert report["method_fit"][objective]["ok"]
    if objective == "kto":
        assert report["kto_balance"]["desirable"] > 0 and report["kto_balance"]["undesirable"] > 0


def test_alpaca_jsonl_normalised_for_sft(tokenizer, write_jsonl, make_cfg, alpaca_rows):
    path = write_jsonl(alpaca_rows(20))
    p = prepare_dataset(make_cfg(path, system_prompt="You are terse."), tokenizer)
    row = p.dataset["train"][0]
    assert row["messages"][0] == {"role": "system", "content": "You are terse."}
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert p.report["format"]["name"] == "alpaca"
    assert p.report["split"] == {
        "method": "fraction", "val_fraction": 0.1, "val_count": None, "stratified_on": None,
        "train": 18, "validation": 2, "seed": 42,
    }  # fmt: skip


def test_output_renders_with_trl_chat_template_application(tokenizer, write_jsonl, make_cfg):
    from trl.data_utils import maybe_apply_chat_template

    rows = [{"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(6)]
    p = prepare_dataset(make_cfg(write_jsonl(rows), "dpo"), tokenizer)
    out = maybe_apply_chat_template(p.dataset["train"][0], tokenizer)
    assert out["prompt"].endswith("<|im_start|>assistant\n")
    assert out["chosen"].startswith("good") and out["chosen"].endswith("<|im_end|>\n")


def test_text_data_stays_text(tokenizer, tmp_path, make_cfg):
    f = tmp_path / "book.txt"
    f.write_text("Chapter one.\n\nChapter two is longer.\n\nThe end.\n", encoding="utf-8")
    p = prepare_dataset(make_cfg(f, val_fraction=0.0), tokenizer)
    assert p.layout == "text"
    assert p.dataset["train"].column_names == ["text"]
    assert len(p.dataset["train"]) == 3 and len(p.dataset["validation"]) == 0
    assert p.report["chat_template"] is None
    assert p.report["stats"]["trained_share"] == 1.0


def test_objective_the_data_cannot_train_says_why(tokenizer, write_jsonl, make_cfg, alpaca_rows):
    with pytest.raises(
        DataError, match=r"cannot train dpo: DPO needs a chosen and a rejected answer"
    ):
        prepare_dataset(make_cfg(write_jsonl(alpaca_rows(4)), "dpo"), tokenizer)


def test_no_rows_left_explains(tokenizer, write_jsonl, make_cfg):
    rows = [{"instruction": "Q", "output": ""}] * 3
    with pytest.raises(DataError, match=r"no rows are left to train on.*3 missing or empty fields"):
        prepare_dataset(make_cfg(write_jsonl(rows)), tokenizer)


def test_sft_from_kto_uses_desirable_rows_only(tokenizer, write_jsonl, make_cfg):
    rows = [{"prompt": f"Q{i}", "completion": f"A{i}", "label": i % 2 == 0} for i in range(10)]
    p = prepare_dataset(make_cfg(write_jsonl(rows), "sft", val_fraction=0.0), tokenizer)
    assert len(p.dataset["train"]) == 5
    unused = next(f for f in p.report["lint"] if f["category"] == "unused")
    assert unused["count"] == 5 and unused["forced"]


def test_kto_from_pairs_unpairs(tokenizer, write_jsonl, make_cfg):
    rows = [{"prompt": f"Q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    p = prepare_dataset(make_cfg(write_jsonl(rows), "kto", val_fraction=0.0), tokenizer)
    assert sorted(p.dataset["train"]["label"]) == [False] * 5 + [True] * 5


def test_separate_validation_file(tokenizer, write_jsonl, make_cfg, alpaca_rows):
    train = write_jsonl(alpaca_rows(10), "train.jsonl")
    val = write_jsonl(alpaca_rows(13)[10:] + alpaca_rows(1), "val.jsonl")
    p = prepare_dataset(make_cfg(train, validation_path=str(val)), tokenizer)
    assert len(p.dataset["train"]) == 10 and len(p.dataset["validation"]) == 4
    assert p.report["split"]["method"] == "file"
    assert p.report["split"]["validation_rows_also_in_train"] == 1


def test_val_count(tokenizer, write_jsonl, make_cfg, alpaca_rows):
    p = prepare_dataset(make_cfg(write_jsonl(alpaca_rows(20))), tokenizer, val_count=5)
    assert len(p.dataset["validation"]) == 5 and p.report["split"]["method"] == "count"


def test_progress_is_reported(tokenizer, write_jsonl, make_cfg, alpaca_rows):
    stages = []
    prepare_dataset(
        make_cfg(write_jsonl(alpaca_rows(30))),
        tokenizer,
        progress=lambda stage, done, total: stages.append(stage),
    )
    assert {"reading", "checking", "tokenizing", "building"} <= set(stages)


def test_tokenizer_none_estimates(write_jsonl, make_cfg, alpaca_rows):
    p = prepare_dataset(make_cfg(write_jsonl(alpaca_rows(10))), None)
    assert p.report["stats"]["tokens"]["exact"] is False
    assert p.report["chat_template"]["name"] == "chatml"


def test_chat_template_fallback_and_choice(fresh_tokenizer, write_jsonl, make_cfg, alpaca_rows):
    from spark_tui.core.data import CHATML_TEMPLATE, LLAMA3_TEMPLATE

    path = write_jsonl(alpaca_rows(6))
    fresh_tokenizer.chat_template = None
    p = prepare_dataset(make_cfg(path), fresh_tokenizer)
    assert p.template.name == "chatml" and p.template.source == "fallback"
    assert "no chat template" in p.report["chat_template"]["note"]
    assert fresh_tokenizer.chat_template == CHATML_TEMPLATE  # TRL renders what the preview shows
    cfg = make_cfg(path)
    cfg.model.chat_template = "llama3"
    p = prepare_dataset(cfg, fresh_tokenizer)
    assert p.template.template == LLAMA3_TEMPLATE
    assert "no <|start_header_id|> token" in p.template.note
    assert p.report["chat_template"]["training_template"] is not None


def test_unmodified_source(tokenizer, write_jsonl, make_cfg, alpaca_rows, tmp_path):
    path = write_jsonl(alpaca_rows(10) + alpaca_rows(2))
    before = path.read_bytes()
    prepare_dataset(make_cfg(path, drop=["recommended"]), tokenizer, out_dir=tmp_path / "out")
    assert path.read_bytes() == before
