"""The training engine on the real default model, in-process, a couple of steps each (CPU).

Kept fast on purpose: 16-row datasets cut from the bundled sets, max length
64-128, micro-batch 2, no gradient checkpointing, no validation unless the test
is about it.  The detached-process path is covered in test_process.py; the
pieces the engine is built from have their own files (test_status, test_metrics,
test_advice, test_runs).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from spark_tui.config import METHODS, RunConfig
from spark_tui.core.base import names
from spark_tui.core.data import bundled_dataset_path
from spark_tui.core.method.choices import apply_method
from spark_tui.core.train.metrics import PREFERENCE_KEYS
from spark_tui.core.train.orchestrate import run_training
from spark_tui.core.train.runs import Run, create_run


def tiny_data(tmp_path: Path, objective: str, rows: int = 16) -> Path:
    src = bundled_dataset_path(objective)
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()][:rows]
    if objective == "kto":  # both labels in a short file
        pos = [ln for ln in src.read_text().splitlines() if '"label": true' in ln][: rows // 2]
        neg = [ln for ln in src.read_text().splitlines() if '"label": false' in ln][: rows // 2]
        lines = [x for pair in zip(pos, neg, strict=False) for x in pair]
    out = tmp_path / f"{objective}-{rows}.jsonl"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def tiny_cfg(
    tmp_path: Path, objective: str = "sft", method: str = "lora", steps: int = 2, rows: int = 16
) -> RunConfig:
    cfg = RunConfig(name=f"t-{objective}-{method}")
    cfg.method.objective = objective  # type: ignore[assignment]
    if method in METHODS:
        apply_method(cfg, method)
    else:
        cfg.method.adapter = method  # type: ignore[assignment]
    cfg.data.path = str(tiny_data(tmp_path, objective, rows))
    cfg.data.val_fraction = 0.0
    # The reward trainer drops rows longer than max_length: keep the pairs whole.
    cfg.data.max_length = 128 if objective == "reward" else 64
    cfg.train.max_steps = steps
    cfg.train.micro_batch_size = 2
    cfg.train.gradient_checkpointing = "off"
    cfg.train.save_steps = 50
    cfg.lora.r = 8
    cfg.lora.alpha = 16
    return cfg


def train(cfg: RunConfig, **kw) -> tuple[Run, dict]:
    run = create_run(cfg)
    return run, run_training(run, **kw)


def train_lines(run: Run) -> list[dict]:
    return [m for m in run.metrics() if m.get("kind") == "train"]


MATRIX = [
    ("sft", "lora"),
    ("sft", "qlora"),
    ("sft", "dora"),
    ("sft", "rslora"),
    ("sft", "full"),
    ("dpo", "lora"),
    ("simpo", "lora"),
    ("orpo", "lora"),
    ("kto", "lora"),
    ("reward", "lora"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "method"), MATRIX, ids=[f"{o}-{m}" for o, m in MATRIX])
def test_objective_trains_and_saves(objective, method, spark_home, default_model_dir, tmp_path):
    cfg = tiny_cfg(tmp_path, objective, method)
    with_eval = (objective, method) == ("sft", "lora")
    if with_eval:
        cfg.data.val_fraction = 0.25
    run, st = train(cfg)
    assert st["state"] == "finished", st.get("error")
    assert st["step"] == 2 and st["total_steps"] == 2

    lines = train_lines(run)
    assert [m["step"] for m in lines] == [1, 2]
    for m in lines:
        assert math.isfinite(m["loss"]), m
        for key in ("epoch", "learning_rate", "grad_norm", "rss_bytes", "sys_mem_used_bytes"):
            assert key in m, (key, m)
    assert lines[1]["samples_per_s"] > 0 and lines[1]["tokens_per_s"] > 0
    if objective in ("dpo", "simpo", "orpo"):
        for key in PREFERENCE_KEYS:
            assert key in lines[0], (key, lines[0])
    if objective == "reward":
        assert "rewards/accuracies" in lines[0]
    if with_eval:
        evals = [m for m in run.metrics() if m["kind"] == "eval"]
        assert evals and math.isfinite(evals[-1]["eval_loss"]) and evals[-1]["step"] == 2

    out = run.model_dir if method == "full" else run.adapter_dir
    assert Path(st["output"]) == out
    assert (out / "tokenizer_config.json").exists()
    if method == "full":
        assert (out / "config.json").exists() and not run.adapter_dir.exists()
    else:
        adapter_cfg = json.loads((out / "adapter_config.json").read_text())
        assert adapter_cfg["task_type"] == ("SEQ_CLS" if objective == "reward" else "CAUSAL_LM")
        assert adapter_cfg.get("use_dora", False) == (method == "dora")
        assert adapter_cfg.get("use_rslora", False) == (method == "rslora")
        # The saved tokenizer carries the deployable chat template, not the training twin.
        tok_cfg = (
            (out / "chat_template.jinja").read_text()
            if (out / "chat_template.jinja").exists()
            else ""
        )
        assert "{% generation %}" not in tok_cfg
    log = run.log_path.read_text()
    assert "trainable parameters" in log and "finished at step 2" in log


@pytest.mark.slow
def test_run_created_with_relative_data_path_trains_from_the_run_folder(
    spark_home, default_model_dir, tmp_path, monkeypatch
):
    """`--data mydata.jsonl` from another folder trains, though the trainer runs in the run."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    data = tiny_data(work, "sft", rows=8)
    monkeypatch.chdir(work)
    cfg = tiny_cfg(tmp_path, "sft", "lora", steps=1, rows=8)
    cfg.data.path = data.name  # relative, as typed on the command line
    run = create_run(cfg)
    assert run.config().data.path == str(data)
    monkeypatch.chdir(run.path)  # where the detached trainer runs
    st = run_training(run)
    assert st["state"] == "finished", st.get("error")
    assert st["step"] == 1


@pytest.mark.slow
def test_neftune_noise_only_in_training(spark_home, default_model_dir, tmp_path):
    """NEFTune adds noise to the embedding output in train mode only, and only when on."""
    import torch
    from transformers import TrainerCallback

    class Probe(TrainerCallback):
        def __init__(self):
            self.train_noise = self.eval_noise = None

        def on_step_begin(self, args, state, control, model=None, **kw):
            base = model.base_model.model if hasattr(model, "peft_config") else model
            emb = base.get_input_embeddings()
            ids = torch.arange(100, 108).unsqueeze(0)
            raw = emb.weight[ids].detach()
            with torch.no_grad():
                was = emb.training
                emb.train()
                noisy = emb(ids)
                emb.eval()
                clean = emb(ids)
                emb.train(was)
            self.train_noise = (noisy - raw).abs().max().item()
            self.eval_noise = (clean - raw).abs().max().item()
            self.emb = emb

    results = {}
    for alpha in (5.0, 0.0):
        cfg = tiny_cfg(tmp_path, steps=1)
        cfg.train.neftune_alpha = alpha
        probe = Probe()
        run, st = train(cfg, extra_callbacks=[probe])
        assert st["state"] == "finished", st.get("error")
        results[alpha] = probe
    on, off = results[5.0], results[0.0]
    bound = 5.0 / math.sqrt(8 * 576)  # alpha / sqrt(L * d), uniform noise
    assert 0 < on.train_noise <= bound + 1e-6
    assert on.eval_noise == 0.0
    assert off.train_noise == 0.0 and off.eval_noise == 0.0
    # The hook is gone after training: a trained model is not noisy at inference.
    assert not on.emb._forward_hooks


@pytest.mark.slow
def test_huge_learning_rate_trips_the_divergence_guard(spark_home, default_model_dir, tmp_path):
    cfg = tiny_cfg(tmp_path, method="full", steps=8)
    cfg.train.learning_rate = 10.0
    cfg.train.warmup_ratio = 0.0
    cfg.train.scheduler = "constant"
    run, st = train(cfg)
    assert st["state"] == "failed"
    assert "diverged" in st["error"] and "step" in st["error"]
    assert any("learning_rate" in a for a in st["advice"])
    assert st["step"] < 8
    # Nothing diverged is kept as a result or a resume point.
    assert not run.model_dir.exists() and run.latest_checkpoint() is None
    assert "diverged" in run.log_path.read_text()


@pytest.mark.slow
def test_stop_then_resume_continues_the_curve(spark_home, default_model_dir, tmp_path):
    """In-process: a stop request at step 2 checkpoints; resume runs 3..4, no gap, no repeat."""
    from transformers import TrainerCallback

    class StopAt2(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:
                (run.path / names.STOP_FILE).write_text("stop")

    cfg = tiny_cfg(tmp_path, steps=4)
    run = create_run(cfg)
    st = run_training(run, extra_callbacks=[StopAt2()])
    assert st["state"] == "stopped", st.get("error")
    assert st["step"] == 2
    assert run.latest_checkpoint().name == "checkpoint-2"
    assert run.adapter_dir.exists()  # the stopped run's adapter is usable
    assert not (run.path / names.STOP_FILE).exists()
    # A torn line and a line beyond the checkpoint (as a killed process would leave).
    with open(run.metrics_path, "a") as fh:
        fh.write(json.dumps({"kind": "train", "step": 3, "loss": 9.9}) + "\n" + '{"kind": "tr')

    # The source changes between the stop and the resume: the resume trains on the copy
    # prepared at the start, and says so.
    prepared_before = (run.data_dir / names.DATA_REPORT).read_text()
    source = Path(cfg.data.path)
    source.write_text("\n".join(source.read_text().splitlines()[:9]) + "\n")

    st = run_training(run, resume=True)
    assert st["state"] == "finished", st.get("error")
    assert st["resumed_from"] == 2
    assert any("changed since the run started" in n for n in st["notes"]), st["notes"]
    assert (run.data_dir / names.DATA_REPORT).read_text() == prepared_before
    steps = [m["step"] for m in train_lines(run)]
    assert steps == [1, 2, 3, 4]
    assert all(m["loss"] != 9.9 for m in train_lines(run))
    elapsed = [m["elapsed_s"] for m in train_lines(run)]
    assert elapsed == sorted(elapsed)  # time continues across the resume
    assert "resuming from checkpoint-2" in run.log_path.read_text()


def test_failures_end_in_the_status_not_a_crash(spark_home, tmp_path):
    """A bad model id fails cleanly: short message in status.json, traceback in train.log."""
    cfg = RunConfig(name="bad-model")
    cfg.model.id = str(tmp_path / "no-such-model")
    run, st = train(cfg)
    assert st["state"] == "failed"
    assert "no-such-model" in st["error"] and "\n" not in st["error"]
    assert "Traceback" in run.log_path.read_text()
    assert run.status()["state"] == "failed"
