"""Drill: a full disk while a checkpoint or a GGUF is written.

Where this machine allows it (root, mount permitted) the disk is a real small tmpfs
that the test fills up; elsewhere ENOSPC is injected at the write calls.  Each test
says which it used: printed, and recorded as the `full_disk_method` property
(`--junitxml` shows it).  SPARK_TUI_DRILL_DISK=inject forces the injection.

Expected: the run ends `failed` with "disk full at <run>: free N GB or lower
save_total_limit", the previous checkpoint intact and complete, nothing partial
under a final name; a GGUF export ends in "disk full at <folder>: the GGUF needs
~N GB, M GB free" with no file left in the folder.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spark_tui.core.base.atomic import read_json
from spark_tui.core.export.common import DiskFullError, atomic_output
from spark_tui.core.train.checkpoints import checkpoint_problem, list_checkpoints
from spark_tui.core.train.runs import create_run
from tests.core.train.test_disk import small_filesystem
from tests.reliability.drill import short_run

MB = 1024**2
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _method(mnt: Path | None, record_property) -> str:
    method = "tmpfs" if mnt is not None else "injected ENOSPC"
    record_property("full_disk_method", method)
    print(f"full-disk drill: {method}")
    return method


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _fill(folder: Path, leave: int) -> None:
    """Take all but `leave` bytes of the disk at `folder` (another process filling it)."""
    import shutil

    size = shutil.disk_usage(folder).free - leave
    fd = os.open(folder / "filler", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _nothing_partial(run) -> None:
    """Every checkpoint left is complete; no output, staging folder or torn run file."""
    for _, path in list_checkpoints(run.checkpoints_dir):
        assert checkpoint_problem(path) is None, path
    assert not list(run.path.glob(".*.tmp")), list(run.path.glob(".*.tmp"))
    assert not run.adapter_dir.exists() and not run.model_dir.exists()
    assert read_json(run.status_path) is not None  # status.json whole
    for line in run.metrics_path.read_text(encoding="utf-8").splitlines():
        json.loads(line)


@pytest.mark.slow
def test_full_disk_while_saving_a_checkpoint(
    spark_home, default_model_dir, tmp_path, monkeypatch, record_property
):
    """Checkpoint 1 saved; the disk fills; checkpoint 2 fails halfway through its files."""
    from transformers import Trainer, TrainerCallback

    from spark_tui.core.train.orchestrate import run_training

    cfg = short_run(tmp_path, steps=2, save_steps=1, rows=16)
    cfg.train.save_total_limit = 2
    saved: dict[str, dict[str, str]] = {}
    with small_filesystem(tmp_path / "disk", 224) as mnt:
        _method(mnt, record_property)

        class AfterSave(TrainerCallback):
            def on_save(self, args, state, control, **kw):
                path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                saved[path.name] = _digest(path)
                if mnt is not None and state.global_step == 1:
                    # Room for checkpoint 2's adapter and tokenizer (13 MB), not its
                    # optimizer state (20 MB): it fails halfway, as on a real disk.
                    _fill(mnt, leave=16 * MB)

        if mnt is None:
            real = Trainer._save_optimizer_and_scheduler

            def failing(self, output_dir):
                if self.state.global_step == 2:
                    (Path(output_dir) / "optimizer.pt").write_bytes(b"PK\x03\x04" + bytes(4096))
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), output_dir)
                return real(self, output_dir)

            monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", failing)

        run = create_run(cfg, root=(mnt or tmp_path / "disk") / "runs")
        st = run_training(run, extra_callbacks=[AfterSave()])

        print(f"full-disk drill: {st.get('error')}; advice: {st.get('advice')}")
        assert st["state"] == "failed", st
        assert re.fullmatch(
            rf"disk full at {re.escape(str(run.path))}: free [\d.]+ GB or lower save_total_limit",
            st["error"],
        ), st["error"]
        assert run.status()["state"] == "failed"  # the final status write reached the disk
        assert any("checkpoint-1" in a for a in st.get("advice") or []), st.get("advice")
        # The previous checkpoint intact and complete; the partial one gone.
        assert [p.name for _, p in list_checkpoints(run.checkpoints_dir)] == ["checkpoint-1"]
        assert _digest(run.checkpoints_dir / "checkpoint-1") == saved["checkpoint-1"]
        _nothing_partial(run)
        assert "disk full" in run.log_path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- GGUF export


def test_full_disk_while_writing_a_gguf(default_model_dir, tmp_path, monkeypatch, record_property):
    """The default model's f16 GGUF (270 MB) into a 40 MB disk: no file is left behind."""
    from spark_tui.core.export.gguf_writer import export_gguf

    with small_filesystem(tmp_path / "disk", 40) as mnt:
        _method(mnt, record_property)
        if mnt is None:
            import gguf

            calls = {"n": 0}
            real = gguf.GGUFWriter.write_tensor_data

            def failing(self, tensor, *a, **kw):
                calls["n"] += 1
                if calls["n"] > 3:
                    raise OSError(f"{tensor.size} requested and 0 written") from ENOSPC
                return real(self, tensor, *a, **kw)

            monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", failing)
        folder = (mnt or tmp_path / "disk") / "gguf"
        final = folder / "drill-f16.gguf"
        with pytest.raises(DiskFullError) as info:
            export_gguf(default_model_dir, final, "f16")
        msg = str(info.value)
        assert re.match(
            rf"disk full at {re.escape(str(folder))}: the GGUF needs ~0\.2\d GB, [\d.]+ GB free",
            msg,
        ), msg
        assert list(folder.iterdir()) == []  # neither the .gguf nor its temp file


def test_export_preflight_refuses_before_writing(
    default_model_dir, tmp_path, monkeypatch, record_property
):
    from spark_tui.core.export import preflight
    from spark_tui.core.export.pipeline import export_model

    with small_filesystem(tmp_path / "disk", 40) as mnt:
        _method(mnt, record_property)
        if mnt is None:
            usage = preflight.shutil.disk_usage(tmp_path)
            monkeypatch.setattr(
                preflight.shutil, "disk_usage", lambda p: usage._replace(free=40 * MB)
            )
        out = (mnt or tmp_path / "disk") / "out"
        with pytest.raises(preflight.DiskSpaceError, match=f"not enough free disk at {out}"):
            export_model(default_model_dir, out, ["f16"], verify=False)
        assert not list(out.glob("*.gguf*"))


def test_quantizer_filling_the_disk(tmp_path, monkeypatch, record_property):
    """llama.cpp's quantizer (a child process) dies as the disk fills: said as a full disk."""
    from spark_tui.core.export import quantize
    from spark_tui.core.train import disk

    with small_filesystem(tmp_path / "disk", 8) as mnt:
        _method(mnt, record_property)
        folder = mnt or tmp_path / "disk"
        src = tmp_path / "src-f16.gguf"
        src.write_bytes(bytes(32 * MB))
        monkeypatch.setattr(quantize, "_llama_cpp", lambda: None)
        # The child writes its output until the disk is full (or, injected, a little).
        body = "open(sys.argv[1], 'wb').write(bytes(64 << 20))" if mnt else "sys.exit(1)"
        child = f"import sys\ntry:\n    {body}\nexcept OSError:\n    sys.exit(1)\n"
        real_popen = subprocess.Popen

        def fake_popen(cmd, **kw):
            return real_popen([sys.executable, "-c", child, cmd[4]], **kw)

        dst = folder / "m-q4_k_m.gguf"
        with monkeypatch.context() as mp:  # undone before the fixture's umount runs
            mp.setattr(quantize.subprocess, "Popen", fake_popen)
            if mnt is None:
                mp.setattr(disk, "nearly_full", lambda path, low=0: True)
            with pytest.raises(DiskFullError, match=rf"disk full at {re.escape(str(folder))}: "):
                quantize.quantize_gguf(src, dst, "q4_k_m")
        assert not dst.exists() and not [p for p in folder.iterdir() if p.suffix == ".tmp"]


def test_merged_folder_is_never_left_half_written(tmp_path):
    final = tmp_path / "run" / "merged"
    with pytest.raises(DiskFullError, match="the merged model needs ~0.50 GB"):
        with atomic_output(final, is_dir=True, need=512 * MB, what="the merged model") as tmp:
            (tmp / "model-00001-of-00002.safetensors").write_bytes(bytes(1024))
            raise ENOSPC
    assert not final.exists() and list(final.parent.iterdir()) == []
