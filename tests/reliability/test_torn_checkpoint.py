"""Drill: a checkpoint torn by a kill -> Resume picks the older one and says so.

One short real run on the default model (CPU) is stopped at step 4 with
checkpoints at steps 2 and 4; each case copies it, tears checkpoint-4 the way a
kill halfway through its save would (half a trainer_state.json, a short adapter
file) and resumes in-process.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spark_tui.core.base import names
from spark_tui.core.train.checkpoints import checkpoint_problem, list_checkpoints
from spark_tui.core.train.orchestrate import run_training
from spark_tui.core.train.runs import Run, create_run

pytestmark = pytest.mark.slow

TOTAL = 5


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, default_model_dir) -> Run:
    """Trained once per module: steps 1-4, checkpoints 2 and 4, state stopped."""
    from transformers import TrainerCallback

    from tests.core.train.test_orchestrate import tiny_cfg

    class StopAt4(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 3:
                (run.path / names.STOP_FILE).write_text("stop")

    cfg = tiny_cfg(tmp_path_factory.mktemp("torn-data"), steps=TOTAL)
    cfg.train.save_steps = 2
    cfg.train.save_total_limit = 3
    run = create_run(cfg, root=tmp_path_factory.mktemp("torn-runs"))
    st = run_training(run, extra_callbacks=[StopAt4()])
    assert st["state"] == "stopped", st.get("error")
    assert [s for s, _ in list_checkpoints(run.checkpoints_dir)] == [2, 4]
    return run


def _copy(run: Run, home: Path) -> Run:
    dest = home / "runs" / run.path.name
    shutil.copytree(run.path, dest)
    return Run(dest)


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("victim", "problem"),
    [
        ("trainer_state.json", "trainer_state.json is cut short"),
        ("adapter_model.safetensors", "adapter_model.safetensors is cut short"),
    ],
    ids=["half-trainer-state", "short-safetensors"],
)
def test_resume_skips_the_torn_checkpoint_and_says_so(stopped_run, spark_home, victim, problem):
    run = _copy(stopped_run, spark_home)
    _cut(run.checkpoints_dir / "checkpoint-4" / victim)
    assert run.latest_checkpoint() == run.checkpoints_dir / "checkpoint-2"

    st = run_training(run, resume=True)
    assert st["state"] == "finished", st.get("error")
    assert st["resumed_from"] == 2
    said = [n for n in st["notes"] if n.startswith("checkpoint-4 skipped: ")]
    assert said and problem in said[0] and said[0].endswith("; resuming from checkpoint-2"), st
    log = run.log_path.read_text()
    assert said[0] in log and "resuming from checkpoint-2" in log

    # The curve continues from step 2: every step once, none missing.
    steps = [m["step"] for m in run.metrics() if m["kind"] == "train"]
    assert steps == list(range(1, TOTAL + 1))
    # Nothing torn is left behind as a later resume point.
    assert all(checkpoint_problem(p) is None for _, p in list_checkpoints(run.checkpoints_dir))
    assert run.adapter_dir.exists()
