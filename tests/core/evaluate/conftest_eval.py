"""Fabricated "trained runs" for the evaluate / chat / A-B / compare tests.

A run folder is built by hand: `create_run`, the prepared DatasetDict saved
into ``run.data_dir`` (the layout the training engine writes), and a real LoRA
adapter (r=4 on q_proj/v_proj) on the bundled default model, trained for a few
plain-torch optimizer steps so it differs from the base, saved with the
tokenizer into ``run.adapter_dir``.  No dependency on the training engine.

Use them in a test module with ``import conftest_eval`` and
``sft_run = conftest_eval.sft_run`` (tests/core is on sys.path under pytest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_tui.config import RunConfig

ROOT = Path(__file__).resolve().parents[3]
INSTRUCTIONS = ROOT / "spark_tui" / "data" / "instructions.jsonl"
PREFERENCES = ROOT / "spark_tui" / "data" / "preferences.jsonl"


def _jsonl(path: Path, n: int) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= n:
                break
    return rows


def sft_rows(n: int = 12) -> list[dict]:
    """Single-turn conversations from the bundled instruction set."""
    rows = [r for r in _jsonl(INSTRUCTIONS, 60) if len(r["messages"]) == 2]
    return rows[:n]


def preference_rows(n: int = 6) -> list[dict]:
    out = []
    for r in _jsonl(PREFERENCES, n):
        out.append(
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
        )
    return out


def write_data(run, layout: str, train: list[dict], validation: list[dict]) -> None:
    import datasets

    from spark_tui.core.data import build_dataset_dict

    datasets.disable_progress_bars()
    dd = build_dataset_dict(train, validation, layout)
    dd.save_to_disk(str(run.data_dir))


def train_adapter(
    model_dir: Path,
    texts_or_convs: list,
    out: Path,
    *,
    steps: int = 6,
    lr: float = 3e-3,
    seed: int = 0,
) -> None:
    """A LoRA adapter trained with plain torch on `convs` (message lists), saved with the tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    texts = [tok.apply_chat_template(c, tokenize=False) for c in texts_or_convs]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for step in range(steps):
        batch = [texts[(step * 4 + i) % len(texts)] for i in range(4)]
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def make_sft_run(
    root: Path, model_dir: Path, *, name: str = "sft-fixture", train_adapter_too: bool = True
):
    from spark_tui.core.train.runs import create_run

    rows = sft_rows(12)
    train, val = rows[:8], rows[8:]
    cfg = RunConfig.from_dict(
        {
            "name": name,
            "method": {"objective": "sft", "adapter": "lora"},
            "lora": {"r": 4, "alpha": 8, "target_modules": "q_proj,v_proj"},
            "data": {"max_length": 128},
            "train": {"max_steps": 6},
        }
    )
    run = create_run(cfg, root=root)
    write_data(run, "messages", train, val)
    if train_adapter_too:
        # Trained on the validation rows too, so the tuned model is clearly closer
        # to the references than the base (what the ROUGE comparison checks).
        train_adapter(model_dir, [r["messages"] for r in rows], run.adapter_dir, steps=8)
    return run


# The fixtures below are imported into several test modules, and pytest then
# registers one fixture per module; this cache makes each run get built once
# per session all the same.
_CACHE: dict[str, object] = {}


@pytest.fixture(scope="session")
def eval_root(tmp_path_factory) -> Path:
    if "root" not in _CACHE:
        _CACHE["root"] = tmp_path_factory.mktemp("eval-runs")
    return _CACHE["root"]


@pytest.fixture(scope="session")
def sft_run(eval_root, default_model_dir):
    """A fabricated finished SFT LoRA run (8 train / 4 validation conversations)."""
    if "sft" not in _CACHE:
        _CACHE["sft"] = make_sft_run(eval_root, default_model_dir)
    return _CACHE["sft"]


@pytest.fixture(scope="session")
def dpo_run(eval_root, default_model_dir):
    """A fabricated DPO LoRA run whose adapter was trained towards the chosen answers."""
    if "dpo" not in _CACHE:
        _CACHE["dpo"] = make_dpo_run(eval_root, default_model_dir)
    return _CACHE["dpo"]


def make_dpo_run(root: Path, model_dir: Path):
    from spark_tui.core.train.runs import create_run

    rows = preference_rows(6)
    cfg = RunConfig.from_dict(
        {
            "name": "dpo-fixture",
            "method": {"objective": "dpo", "adapter": "lora"},
            "lora": {"r": 4, "alpha": 8, "target_modules": "q_proj,v_proj"},
            "data": {"max_length": 128},
            "preference": {"beta": 0.1},
        }
    )
    run = create_run(cfg, root=root)
    write_data(run, "preference", rows[:2], rows[2:])
    convs = [r["prompt"] + r["chosen"] for r in rows]
    train_adapter(model_dir, convs, run.adapter_dir, steps=8)
    return run


@pytest.fixture(scope="session")
def sft_models(sft_run):
    """The sft_run's models loaded once on the CPU, shared by the scoring tests."""
    from spark_tui.core.evaluate.models import load_run_models

    if "sft_models" not in _CACHE:
        _CACHE["sft_models"] = load_run_models(sft_run, device="cpu")
    yield _CACHE["sft_models"]
    models = _CACHE.pop("sft_models", None)
    if models is not None:
        models.close()
