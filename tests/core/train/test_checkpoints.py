"""Checkpoints count only when whole; our rotation keeps verified ones; finished runs are pruned.

Unit tests on hand-made checkpoint folders (real safetensors and torch.save files,
a few bytes each), the callbacks driven with the trainer's own state objects,
and one short real run for the final log line of a stop (marked slow).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base import names
from spark_tui.core.train import checkpoints as ck
from spark_tui.core.train.runs import Run, create_run


def make_checkpoint(root: Path, step: int, *, sharded: bool = False) -> Path:
    """A checkpoint folder as the trainer writes it, with tiny real files."""
    import torch
    from safetensors.torch import save_file

    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    tensors = {"a.weight": torch.ones(4, 4), "b.weight": torch.zeros(8)}
    if sharded:
        save_file({"a.weight": tensors["a.weight"]}, str(path / "model-00001-of-00002.safetensors"))
        save_file({"b.weight": tensors["b.weight"]}, str(path / "model-00002-of-00002.safetensors"))
        index = {
            "metadata": {"total_size": 96},
            "weight_map": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.weight": "model-00002-of-00002.safetensors",
            },
        }
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        save_file(tensors, str(path / "adapter_model.safetensors"), metadata={"format": "pt"})
    torch.save({"state": {0: torch.ones(16)}}, path / "optimizer.pt")
    torch.save({"seed": 1}, path / "rng_state.pth")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
    return path


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_whole_checkpoint_is_complete(tmp_path):
    assert ck.checkpoint_problem(make_checkpoint(tmp_path, 4)) is None
    assert ck.checkpoint_problem(make_checkpoint(tmp_path, 6, sharded=True)) is None


def test_torn_or_missing_trainer_state(tmp_path):
    path = make_checkpoint(tmp_path, 4)
    cut(path / "trainer_state.json")
    assert ck.checkpoint_problem(path) == "trainer_state.json is cut short"
    (path / "trainer_state.json").unlink()
    assert "trainer_state.json is missing" in ck.checkpoint_problem(path)


def test_global_step_must_match_the_folder(tmp_path):
    path = make_checkpoint(tmp_path, 4)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    assert ck.checkpoint_problem(path) == "trainer_state.json says step 3, not 4"


@pytest.mark.parametrize("keep", [0.0, 0.05, 0.5, 0.99])
def test_short_safetensors(tmp_path, keep):
    path = make_checkpoint(tmp_path, 4)
    cut(path / "adapter_model.safetensors", keep)
    problem = ck.checkpoint_problem(path)
    assert problem and problem.startswith("adapter_model.safetensors "), problem
    assert "cut short" in problem or "damaged" in problem


def test_safetensors_longer_than_its_header(tmp_path):
    path = make_checkpoint(tmp_path, 4)
    with open(path / "adapter_model.safetensors", "ab") as fh:
        fh.write(b"\0" * 7)
    assert "longer than its header" in ck.checkpoint_problem(path)


def test_sharded_index_with_a_missing_or_short_shard(tmp_path):
    path = make_checkpoint(tmp_path, 4, sharded=True)
    cut(path / "model-00002-of-00002.safetensors")
    assert ck.checkpoint_problem(path).startswith("model-00002-of-00002.safetensors is cut short")
    (path / "model-00002-of-00002.safetensors").unlink()
    assert ck.checkpoint_problem(path) == (
        "model.safetensors.index.json lists model-00002-of-00002.safetensors, which is missing"
    )
    cut(path / "model.safetensors.index.json")
    assert "index.json is cut short" in ck.checkpoint_problem(path)


def test_torch_save_files_must_be_whole_archives(tmp_path):
    path = make_checkpoint(tmp_path, 4)
    cut(path / "optimizer.pt", 0.9)
    assert ck.checkpoint_problem(path) == "optimizer.pt is cut short (not a whole torch archive)"
    (path / "optimizer.pt").write_bytes(b"")
    assert ck.checkpoint_problem(path) == "optimizer.pt is empty"


def test_no_weights_is_not_a_checkpoint(tmp_path):
    path = make_checkpoint(tmp_path, 4)
    (path / "adapter_model.safetensors").unlink()
    assert ck.checkpoint_problem(path) == "it holds no model or adapter weights"


def test_an_fsdp_sharded_checkpoint_counts_once_its_metadata_is_written(tmp_path):
    """accelerate's save_fsdp_model (SHARDED_STATE_DICT): a folder of per-rank shards whose
    `.metadata` torch's distributed checkpoint writes last."""
    path = make_checkpoint(tmp_path, 4)
    (path / "adapter_model.safetensors").unlink()
    shards = path / "pytorch_model_fsdp_0"
    shards.mkdir()
    (shards / "__0_0.distcp").write_bytes(b"shard")
    assert ck.checkpoint_problem(path) == "it holds no model or adapter weights"
    (shards / ".metadata").write_bytes(b"meta")
    assert ck.checkpoint_problem(path) is None


def test_latest_complete_falls_back_and_says_why(tmp_path):
    for step in (2, 4, 6):
        make_checkpoint(tmp_path, step)
    assert ck.latest_complete_checkpoint(tmp_path) == (tmp_path / "checkpoint-6", [])
    cut(tmp_path / "checkpoint-6" / "trainer_state.json")
    cut(tmp_path / "checkpoint-4" / "adapter_model.safetensors")
    path, notes = ck.latest_complete_checkpoint(tmp_path)
    assert path == tmp_path / "checkpoint-2"
    assert notes[0] == "checkpoint-6 skipped: trainer_state.json is cut short"
    assert notes[1].startswith("checkpoint-4 skipped: adapter_model.safetensors is cut short")
    assert notes[1].endswith("; resuming from checkpoint-2")
    cut(tmp_path / "checkpoint-2" / "optimizer.pt")
    path, notes = ck.latest_complete_checkpoint(tmp_path)
    assert path is None and notes[-1].endswith("no complete checkpoint: from step 0")
    assert ck.latest_complete_checkpoint(tmp_path / "nothing-here") == (None, [])


def test_rotation_keeps_the_newest_verified_and_every_unverified(tmp_path):
    for step in (2, 4, 6, 8, 10):
        make_checkpoint(tmp_path, step)
    # Loss last logged finite at step 5: 6, 8 and 10 are not vouched for yet.
    removed = ck.rotate(tmp_path, keep=1, verified_up_to=5, current=10)
    assert removed == ["checkpoint-2"]
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [4, 6, 8, 10]
    ck.rotate(tmp_path, keep=2, verified_up_to=10, current=10)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [8, 10]


def test_rotation_drops_torn_and_stale_future_checkpoints(tmp_path):
    for step in (2, 4, 6, 12):
        make_checkpoint(tmp_path, step)
    cut(tmp_path / "checkpoint-4" / "trainer_state.json")
    (tmp_path / ".checkpoint-1.deleting").mkdir()  # a delete a kill interrupted
    removed = ck.rotate(tmp_path, keep=0, verified_up_to=6, current=6)
    assert sorted(removed) == ["checkpoint-12", "checkpoint-4"]
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [2, 6]
    assert not (tmp_path / ".checkpoint-1.deleting").exists()


@pytest.fixture
def run(spark_home, tmp_path) -> Run:
    cfg = RunConfig(name="ckpt")
    cfg.train.save_total_limit = 2
    return create_run(cfg)


def _callbacks(run: Run):
    from spark_tui.core.train.callbacks import make_callbacks
    from spark_tui.core.train.context import TrainContext
    from spark_tui.core.train.status import StatusWriter
    from spark_tui.core.train.stop import StopControl

    ctx = TrainContext(precision="fp32")
    status_cb, metrics_cb, _ = make_callbacks(run, StatusWriter(run), StopControl(run), ctx)
    return ctx, status_cb, metrics_cb


def _args():
    from types import SimpleNamespace

    return SimpleNamespace(per_device_train_batch_size=1, gradient_accumulation_steps=1)


def _log(cb, state, control, step: int, loss: float) -> None:
    state.global_step = step
    cb.on_log(_args(), state, control, logs={"loss": loss, "grad_norm": 1.0})


def test_nan_removes_the_checkpoints_saved_after_the_last_finite_loss(run, caplog):
    from transformers import TrainerControl, TrainerState

    ctx, status_cb, metrics_cb = _callbacks(run)
    state, control = TrainerState(max_steps=20), TrainerControl()
    status_cb.on_train_begin(_args(), state, control)
    metrics_cb.on_train_begin(_args(), state, control)
    for step in range(1, 13):
        state.global_step = step
        if step in (2, 4, 6, 8, 10, 12):
            _log(metrics_cb, state, control, step, 1.0)
        if step in (3, 6, 9, 12):  # save_steps 3, logging_steps 2: 3 and 9 wait for a log
            make_checkpoint(run.checkpoints_dir, step)
            status_cb.on_save(_args(), state, control)
    # Limit 2: the two newest verified (9, 12) stay; 3 and 6 went as they aged.
    assert [s for s, _ in ck.list_checkpoints(run.checkpoints_dir)] == [9, 12]
    make_checkpoint(run.checkpoints_dir, 15)
    state.global_step = 15
    status_cb.on_save(_args(), state, control)  # 15: not yet vouched for by a log line
    _log(metrics_cb, state, control, 16, math.nan)
    assert ctx.diverged is not None and ctx.diverged.step == 16
    assert control.should_training_stop and not control.should_save
    # Saved after the last finite loss (step 12): gone; the verified ones are intact.
    assert [s for s, _ in ck.list_checkpoints(run.checkpoints_dir)] == [9, 12]
    assert ctx.last_finite_step == 12
    assert "removed checkpoint-15: saved after step 12" in caplog.text


def test_a_nan_run_never_ends_with_only_bad_checkpoints(run):
    """save_total_limit=1, saves after every step, logs every 4: the trainer's own rotation
    would have deleted every checkpoint saved before the NaN."""
    from transformers import TrainerControl, TrainerState

    cfg = run.config()
    cfg.train.save_total_limit = 1
    cfg.save(run.config_path)
    _ctx, status_cb, metrics_cb = _callbacks(run)
    state, control = TrainerState(max_steps=20), TrainerControl()
    metrics_cb.on_train_begin(_args(), state, control)
    for step in range(1, 8):
        state.global_step = step
        if step == 4:
            _log(metrics_cb, state, control, step, 1.0)
        make_checkpoint(run.checkpoints_dir, step)
        status_cb.on_save(_args(), state, control)
    _log(metrics_cb, state, control, 8, math.inf)
    assert [s for s, _ in ck.list_checkpoints(run.checkpoints_dir)] == [4]
    assert ck.latest_complete_checkpoint(run)[0] == run.checkpoints_dir / "checkpoint-4"


def test_resume_drops_checkpoints_after_the_resume_point(run):
    from transformers import TrainerControl, TrainerState

    for step in (2, 4):
        make_checkpoint(run.checkpoints_dir, step)
    cut(run.checkpoints_dir / "checkpoint-4" / "trainer_state.json")
    run.metrics_path.write_text(
        "".join(json.dumps({"kind": "train", "step": s, "loss": 1.0}) + "\n" for s in (1, 2))
    )
    ctx, status_cb, metrics_cb = _callbacks(run)
    state, control = TrainerState(global_step=2, max_steps=8), TrainerControl()
    status_cb.on_train_begin(_args(), state, control)
    metrics_cb.on_train_begin(_args(), state, control)
    assert [s for s, _ in ck.list_checkpoints(run.checkpoints_dir)] == [2]
    assert ctx.last_finite_step == 2


def test_stop_and_checkpoints_force_the_log_of_the_current_window(run):
    from transformers import TrainerControl, TrainerState

    _ctx, status_cb, _ = _callbacks(run)
    state, control = TrainerState(global_step=5, max_steps=10), TrainerControl()
    status_cb.on_train_begin(_args(), state, control)
    status_cb.on_step_end(_args(), state, control)
    assert not control.should_log and not control.should_save
    # A checkpoint off the logging grid (the trainer's flow set should_save): logged first,
    # so a resume from it leaves no window out.
    control.should_save = True
    status_cb.on_step_end(_args(), state, control)
    assert control.should_log
    control.should_log = control.should_save = False
    (run.path / names.STOP_FILE).write_text("stop")
    status_cb.on_step_end(_args(), state, control)
    assert control.should_log and control.should_save and control.should_training_stop


def test_prune_finished(run):
    cfg = run.config()
    for step in (2, 4):
        make_checkpoint(run.checkpoints_dir, step)
    cfg.train.keep_checkpoints = True
    assert ck.prune_finished(run, cfg) == 0
    assert len(ck.list_checkpoints(run.checkpoints_dir)) == 2
    size = sum(ck.folder_size(p) for _, p in ck.list_checkpoints(run.checkpoints_dir))
    cfg.train.keep_checkpoints = False
    assert ck.prune_finished(run, cfg) == size > 0
    assert ck.list_checkpoints(run.checkpoints_dir) == []
    assert list(run.checkpoints_dir.iterdir()) == []


def test_keep_checkpoints_setting():
    from spark_tui.core.method.choices import help_for

    cfg = RunConfig()
    assert cfg.train.keep_checkpoints is False
    assert cfg.with_value("train.keep_checkpoints", True).train.keep_checkpoints is True
    assert RunConfig.from_toml(cfg.to_toml()).train.keep_checkpoints is False
    assert "finish" in help_for("train.keep_checkpoints")


def test_trainer_rotation_is_off():
    from spark_tui.core.method.precision import Hardware
    from spark_tui.core.method.trainer_args import trainer_kwargs

    cpu = Hardware(device="cpu", name="CPU", bf16=False, fp16=False)

    cfg = RunConfig()
    cfg.train.save_total_limit = 3
    kw = trainer_kwargs(cfg, output_dir="/tmp/x", hw=cpu, precision="fp32", has_eval=False)
    assert kw.get("save_total_limit") is None


def _tiny_trainer(tmp_path: Path, bf16: bool, peft: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(cfg)  # fp32 master weights, as full fine-tuning keeps them
    if peft:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    args = TrainingArguments(
        output_dir=str(tmp_path / "ckpt"), bf16=bf16, use_cpu=True, report_to=[]
    )
    return Trainer(model=model, args=args)


class _Tok:
    def save_pretrained(self, path: str) -> None:
        (Path(path) / "tokenizer_config.json").write_text("{}")


def _dtypes(path: Path) -> set[str]:
    import struct

    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "fp32"])
def test_full_fine_tune_is_saved_in_its_training_precision(tmp_path, bf16):
    from spark_tui.core.train.trainer import save_output

    trainer = _tiny_trainer(tmp_path, bf16)
    dest = tmp_path / "model"
    save_output(trainer, _Tok(), dest)
    assert _dtypes(dest / "model.safetensors") == ({"BF16"} if bf16 else {"F32"})
    config = json.loads((dest / "config.json").read_text())
    assert config["dtype"] == ("bfloat16" if bf16 else "float32")


def test_adapters_are_saved_as_peft_keeps_them(tmp_path):
    from spark_tui.core.train.trainer import save_output

    trainer = _tiny_trainer(tmp_path, bf16=True, peft=True)
    save_output(trainer, _Tok(), tmp_path / "adapter")
    assert _dtypes(tmp_path / "adapter" / "adapter_model.safetensors") == {"F32"}


@pytest.mark.slow
def test_stop_mid_window_logs_it_and_resume_continues_the_windows(
    spark_home, default_model_dir, tmp_path
):
    """Logging every 2 steps, a stop at step 3: line 3 is written; resume logs 4 and the
    last step 5 (off the grid too); no step twice, no window left out."""
    from transformers import TrainerCallback

    from spark_tui.core.train.orchestrate import run_training
    from tests.core.train.test_orchestrate import tiny_cfg

    class StopAt3(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 2:
                (run.path / names.STOP_FILE).write_text("stop")

    cfg = tiny_cfg(tmp_path, steps=5, rows=10)
    cfg.train.logging_steps = 2
    run = create_run(cfg)
    st = run_training(run, extra_callbacks=[StopAt3()])
    assert st["state"] == "stopped", st.get("error")
    steps = [m["step"] for m in run.metrics() if m["kind"] == "train"]
    assert steps == [1, 2, 3]  # the trainer alone logs 1 and 2 only
    assert ck.latest_complete_checkpoint(run)[0].name == "checkpoint-3"

    st = run_training(run, resume=True)
    assert st["state"] == "finished", st.get("error")
    lines = [m for m in run.metrics() if m["kind"] == "train"]
    assert [m["step"] for m in lines] == [1, 2, 3, 4, 5]  # the trainer alone: 1, 2, 4
    assert all(math.isfinite(m["loss"]) for m in lines)
