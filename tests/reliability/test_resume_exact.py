"""Resume is exact: killed with kill -9 three times and resumed, a run ends where it would have.

The same short run (default model, CPU, fixed seed) is trained straight through
and, separately, killed at three different points and resumed each time from
its newest checkpoint.  The final adapters must be equal within float
tolerance and the loss curves must match step for step: the trainer's
checkpoints restore the RNG, the data order (the sampler is re-seeded and the
seen batches skipped) and the optimizer and scheduler state.
"""

from __future__ import annotations

import os
import signal

import pytest

from spark_tui.core.train import process
from spark_tui.core.train.runs import create_run
from tests.reliability.drill import short_run, wait_for

pytestmark = pytest.mark.slow

TOTAL = 8
KILL_AFTER = (2, 4, 6)  # kill once the checkpoint of this step exists


def _losses(run) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in run.metrics() if m.get("kind") == "train"}


def _adapter(run) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run.adapter_dir / "adapter_model.safetensors"))


def _killed_and_resumed(run) -> list[int]:
    killed_at: list[int] = []
    for n, ckpt in enumerate(KILL_AFTER):
        (process.resume_training if n else process.start_training)(run)
        wait_for(
            lambda c=ckpt: (
                run.checkpoints_dir / f"checkpoint-{c}" / "trainer_state.json"
            ).exists(),
            600,
            f"checkpoint-{ckpt}",
        )
        pid = int(run.status()["pid"])
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        st = wait_for(
            lambda: run.status().get("exit_signal") and run.status(), 30, "the exit record"
        )
        assert st["state"] == "died"
        killed_at.append(int(st.get("step", 0)))
    process.resume_training(run)
    st = process.wait(run, timeout=600)
    assert st["state"] == "finished", st
    return killed_at


def test_three_kills_and_resumes_end_where_a_straight_run_ends(
    spark_home, default_model_dir, tmp_path
):
    import torch

    cfg = short_run(tmp_path, steps=TOTAL, save_steps=2)
    straight, killed = create_run(cfg), create_run(cfg)
    try:
        process.start_training(straight)
        killed_at = _killed_and_resumed(killed)
        assert process.wait(straight, timeout=600)["state"] == "finished"
    finally:
        for run in (straight, killed):
            process.kill_training(run)

    a, b = _losses(straight), _losses(killed)
    assert sorted(a) == sorted(b) == list(range(1, TOTAL + 1)), (a, b, killed_at)
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4, abs=1e-5), (step, a[step], b[step])
    wa, wb = _adapter(straight), _adapter(killed)
    assert wa.keys() == wb.keys() and wa
    for name in wa:
        assert torch.allclose(wa[name], wb[name], rtol=1e-4, atol=1e-6), name
