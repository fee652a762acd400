"""With a Hugging Face token in the environment, no file a run leaves behind contains it.

The token is needed at run time (gated downloads) and so is in the trainer's
environment; it must never reach run.toml, status.json, metrics, train.log, a
checkpoint (trainer_state.json, the pickled training arguments), the saved
adapter, the hand-off YAML, the equivalent CLI command or the Deploy step's
Modelfile and deploy.json.  One short real run (3 steps on the default model,
one checkpoint) writes all of those; then every byte under the spark-tui home
is searched for the token.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from spark_tui.config import ConfigError, RunConfig
from spark_tui.core.export.pipeline import save_summary, write_modelfiles
from spark_tui.core.review.cli_equiv import train_command_text
from spark_tui.core.review.handoff import write_run_handoff
from spark_tui.core.train.orchestrate import run_training
from spark_tui.core.train.runs import create_run

WORDS = ["hello", "thanks", "yes", "no", "maybe", "goodbye", "welcome", "sorry"]


def _tiny_cfg(tmp_path: Path) -> RunConfig:
    """Eight short rows, one per step: the smallest real training run."""
    data = tmp_path / "tiny.jsonl"
    rows = [{"instruction": f"Say {w}.", "output": f"{w.title()}!"} for w in WORDS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RunConfig(name="secrets")
    cfg.data.path = str(data)
    cfg.data.val_fraction = 0.0
    cfg.data.max_length = 64
    cfg.train.max_steps = 3
    cfg.train.save_steps = 2  # one checkpoint: trainer_state.json, training_args.bin, rng state
    cfg.train.micro_batch_size = 1
    cfg.train.gradient_checkpointing = "off"
    cfg.lora.r = 8
    cfg.lora.alpha = 16
    return cfg


def _files_holding(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits += [f"{p} holds {n!r}" for n in needles if n in data]
    return hits


@pytest.mark.slow
def test_no_file_of_a_trained_and_exported_run_holds_the_token(
    default_model_dir, spark_home, tmp_path, monkeypatch
):
    token = "hf_sparkTuiLeakCheck" + secrets.token_hex(12)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", token)

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a busy 2-core box, two spinning threads cost more than they give
    try:
        run = create_run(_tiny_cfg(tmp_path))
        final = run_training(run)
    finally:
        torch.set_num_threads(threads)
    assert final["state"] == "finished", final.get("error")
    assert any(run.checkpoints_dir.glob("checkpoint-*")) or run.adapter_dir.is_dir()

    # What the Review and Deploy steps write for this run.
    handoff = write_run_handoff(run.path)
    (run.path / "command.txt").write_text(train_command_text(run.config()), encoding="utf-8")
    gguf = run.path / "gguf" / f"{run.id}-q4_k_m.gguf"
    _, mf_path, _, _ = write_modelfiles(default_model_dir, run.path, gguf)
    save_summary(run.path, {"export": {"modelfile": str(mf_path), "gguf": str(gguf)}})

    written = sorted(p.relative_to(run.path).as_posix() for p in run.path.rglob("*") if p.is_file())
    for expected in ("run.toml", "status.json", "metrics.jsonl", "train.log", "Modelfile"):
        assert expected in written, written
    assert any(w.startswith("handoff/") and w.endswith((".yaml", ".yml")) for w in written), written
    assert any(w.startswith("checkpoints/") for w in written) or any(
        w.startswith("adapter/") for w in written
    ), written
    assert handoff is not None

    needles = [token.encode(), token.encode("utf-16-le"), json.dumps(token).encode()]
    # The whole home: the run folder and anything else a run writes beside it.
    assert _files_holding(spark_home, needles) == []
    assert _files_holding(tmp_path, needles) == []


def test_a_token_in_a_run_config_is_never_written(tmp_path):
    cfg = RunConfig()
    cfg.data.column_map = {"token": "text"}  # a user's column name is not a secret
    cfg.save(tmp_path / "ok.toml")
    with pytest.raises(ConfigError, match="unknown key 'model.token'"):
        RunConfig.from_toml("[model]\ntoken = 'hf_abc'\n")
    data = RunConfig().to_dict()
    data["model"]["hf_token"] = "hf_abc"
    with pytest.raises(ConfigError, match="unknown key 'model.hf_token'"):
        RunConfig.from_dict(data)
