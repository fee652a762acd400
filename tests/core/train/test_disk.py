"""The disk a run needs, the refusal before it starts, and a full disk recognised and cleaned up.

The full-disk exceptions are made for real: on a small tmpfs where this machine lets
us mount one (root), else on /dev/full through file objects we open ourselves (never
by path: safetensors writes a temp file and renames it over its target, which would
replace the device node).  The size estimate is checked against the checkpoints of
real short runs (the bundled default model with LoRA; a tiny model of its family
fully fine-tuned).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train import disk
from spark_tui.core.train.checkpoints import checkpoint_problem, folder_size
from spark_tui.core.train.runs import create_run

MB = 1024**2


@contextlib.contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path | None]:
    """A tmpfs of `size_mb` MB mounted at `path`, or None where mounting is refused
    (not root, no mount(8), a container without CAP_SYS_ADMIN, or
    SPARK_TUI_DRILL_DISK=inject to force the fallback)."""
    path.mkdir(parents=True, exist_ok=True)
    if (
        os.environ.get("SPARK_TUI_DRILL_DISK") == "inject"
        or not hasattr(os, "geteuid")
        or os.geteuid() != 0
        or not shutil.which("mount")
    ):
        yield None
        return
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)]
    try:
        mounted = subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        mounted = False
    if not mounted:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def _dev_full() -> bool:
    try:
        return stat.S_ISCHR(os.stat("/dev/full").st_mode)
    except OSError:
        return False


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the exception is what the test examines
        return exc
    raise AssertionError("the write did not fail")


# --------------------------------------------------------------------------- the estimate


def _cfg(adapter: str = "lora", limit: int = 2, save_steps: int = 50) -> RunConfig:
    cfg = RunConfig()
    cfg.method.adapter = adapter  # type: ignore[assignment]
    cfg.train.save_total_limit = limit
    cfg.train.save_steps = save_steps
    return cfg


def test_need_counts_weights_optimizer_and_rotation():
    need = disk.disk_need(_cfg(), 1_000_000, 100_000_000, "bf16", tokenizer=0)
    small = disk.SMALL_FILES_BYTES
    assert need.checkpoint == 1_000_000 * (4 + 8) + small  # fp32 adapter + 2 fp32 moments
    assert need.kept == 3  # save_total_limit 2 + the one written before the rotation
    assert need.output == 4_000_000 + small
    assert need.total == need.checkpoint * 3 + need.output + need.margin
    assert "× 3 kept" in need.breakdown()

    eight = disk.disk_need(_cfg(), 1_000_000, 100_000_000, "bf16", optim="adamw_8bit", tokenizer=0)
    assert eight.checkpoint == 1_000_000 * (4 + 2) + small
    # On CPU an 8-bit optimizer falls back to AdamW: the trainer's own name decides.
    cpu = _cfg()
    cpu.train.optimizer = "adamw_8bit"  # type: ignore[assignment]
    fallback = disk.disk_need(cpu, 1_000_000, 100_000_000, "bf16", optim="adamw_torch", tokenizer=0)
    assert fallback.checkpoint == need.checkpoint

    full = disk.disk_need(_cfg("full"), 100_000_000, 100_000_000, "bf16", tokenizer=0)
    assert full.checkpoint == 100_000_000 * 12 + small
    assert full.output == 100_000_000 * 2 + small  # saved in its training precision
    fp32 = disk.disk_need(_cfg("full"), 100_000_000, 100_000_000, "fp32", tokenizer=0)
    assert fp32.output == 100_000_000 * 4 + small


def test_checkpoints_at_peak():
    assert disk.checkpoints_at_peak(_cfg(limit=2), None) == 3
    assert disk.checkpoints_at_peak(_cfg(limit=2, save_steps=50), 60) == 2  # saves at 50 and 60
    assert disk.checkpoints_at_peak(_cfg(limit=0, save_steps=10), 95) == 10  # no limit
    assert disk.checkpoints_at_peak(_cfg(limit=0), None) == 1


def test_held_checkpoints_count_in_the_need():
    need = disk.disk_need(_cfg(), 1_000_000, 1, "bf16", held=20_000_000, tokenizer=0)
    assert need.to_write == need.total - 20_000_000
    huge = disk.disk_need(_cfg(), 1_000_000, 1, "bf16", held=10**12, tokenizer=0)
    assert huge.held == huge.checkpoint * huge.kept  # never more than the checkpoints


def test_check_disk_refuses_with_the_breakdown(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        disk.shutil, "disk_usage", lambda p: usage._replace(free=int(0.5 * disk.GB))
    )
    need = disk.disk_need(_cfg(), 100_000_000, 1_000_000_000, "bf16", tokenizer=0)
    with pytest.raises(disk.NotEnoughDiskError) as info:
        disk.check_disk(tmp_path, need, cfg=_cfg())
    msg = str(info.value)
    assert isinstance(info.value, SparkError)
    assert msg.startswith(
        f"not enough disk at {tmp_path}: this run needs ~{disk.gb(need.total)} GB"
    )
    assert f"(checkpoint {disk.gb(need.checkpoint)} GB × 3 kept + output " in msg
    assert "0.50 GB free: free space, or lower train.save_total_limit (now 2)" in msg
    unlimited = _cfg(limit=0)
    with pytest.raises(disk.NotEnoughDiskError, match="set train.save_total_limit"):
        disk.check_disk(tmp_path, need, cfg=unlimited)
    disk.check_disk(tmp_path, disk.DiskNeed(1, 1, 1, 1))  # fits: no error


def test_run_preflight_refuses_and_counts_existing_checkpoints(spark_home, monkeypatch):
    run = create_run(_cfg())
    ck = run.checkpoints_dir / "checkpoint-5"
    ck.mkdir(parents=True)
    (ck / "optimizer.pt").write_bytes(b"\0" * 4096)
    need = disk.run_preflight(run, run.config(), 1000, 10_000, "fp32")
    assert need.held == 4096
    usage = shutil.disk_usage(run.path)
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(disk.NotEnoughDiskError, match=f"not enough disk at {run.path}"):
        disk.run_preflight(run, run.config(), 1000, 10_000, "fp32")


def test_gb_formatting():
    assert disk.gb(0) == "0"
    assert disk.gb(1) == "0.01"
    assert disk.gb(0.25 * disk.GB) == "0.25"
    assert disk.gb(1.55 * disk.GB) == "1.6"
    assert disk.gb(123 * disk.GB) == "123"


# --------------------------------------------------------------------------- real shapes


@pytest.fixture
def full_dir(tmp_path) -> Iterator[Path | None]:
    """A 4 MB tmpfs (None where it cannot be mounted)."""
    with small_filesystem(tmp_path / "small", 4) as mnt:
        yield mnt


def _shapes_on_tmpfs(mnt: Path) -> dict[str, BaseException]:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    big = {"w": torch.zeros(2 * MB)}  # 8 MB: more than the whole file system

    def flush() -> None:
        with open(mnt / "a.bin", "wb") as fh:
            fh.write(b"\0" * 8 * MB)

    def tofile() -> None:
        with open(mnt / "b.bin", "wb") as fh:
            np.zeros(2 * MB, np.float32).tofile(fh)

    out = {}
    for name, fn in (
        ("python write", flush),
        ("numpy tofile", tofile),
        ("safetensors", lambda: save_file(big, str(mnt / "c.safetensors"))),
        ("torch.save path", lambda: torch.save(big, str(mnt / "d.pt"))),
    ):
        out[name] = _raised(fn)
    return out


def test_real_full_disk_shapes_are_recognised(full_dir, tmp_path, record_property):
    import torch

    if full_dir is None and not _dev_full():
        pytest.skip("neither a tmpfs nor /dev/full to fill here")
    record_property("full_disk_method", "tmpfs" if full_dir else "/dev/full")
    named: dict[str, BaseException] = {}  # shapes that say "no space" themselves
    if full_dir is not None:
        shapes = _shapes_on_tmpfs(full_dir)
        # torch's archive writer and numpy's short write do not say why: the full disk
        # at the folder (partial files still there) is what decides.
        for name in ("numpy tofile", "torch.save path"):
            assert not disk.is_disk_full(shapes[name]), name
            assert disk.is_disk_full(shapes[name], full_dir), name
            assert not disk.is_disk_full(shapes[name], tmp_path), name  # a roomy disk
        assert "No space left on device" in str(shapes["safetensors"])
        assert not list(full_dir.glob("*.safetensors*"))  # safetensors removed its temp file
        named.update({k: shapes[k] for k in ("python write", "safetensors")})
    # /dev/full: ENOSPC on every write, through file objects opened here.
    with contextlib.suppress(OSError), open("/dev/full", "wb") as fh:
        fh.write(b"x")
        named["dev/full flush"] = _raised(fh.flush)
    with contextlib.suppress(OSError), open("/dev/full", "wb") as fh:
        named["torch.save file"] = _raised(lambda: torch.save({"w": torch.zeros(100_000)}, fh))
    for name, exc in named.items():
        assert disk.is_disk_full(exc), f"{name}: {exc!r}"


def test_recorded_and_wrapped_shapes():
    # safetensors 0.8 on a full tmpfs (where one cannot be mounted, its message as seen).
    st = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert disk.is_disk_full(st)
    assert disk.is_disk_full(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    try:
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as inner:
            raise SparkError("saving failed") from inner
    except SparkError as outer:
        assert disk.is_disk_full(outer)
    try:
        try:
            raise OSError(errno.ENOSPC, "no room")
        except OSError:
            raise RuntimeError("while handling it") from None  # noqa: B904 - context kept
    except RuntimeError as hidden:
        hidden.__context__ = OSError(errno.ENOSPC, "no room")
        assert disk.is_disk_full(hidden)
    for other in (
        OSError(errno.EACCES, "Permission denied"),
        RuntimeError("CUDA out of memory"),
        ValueError("bad value"),
        OSError("disk full"),  # a test's own words, no errno: not a real full disk
    ):
        assert not disk.is_disk_full(other), other


# --------------------------------------------------------------------------- cleanup


def _complete_checkpoint(path: Path, step: int) -> None:
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"w": torch.ones(8)}, str(path / "adapter_model.safetensors"))
    torch.save({"state": {}}, str(path / "optimizer.pt"))
    (path / "trainer_state.json").write_text(f'{{"global_step": {step}}}', encoding="utf-8")


def test_disk_full_result_removes_the_partial_save(spark_home):
    run = create_run(_cfg())
    good = run.checkpoints_dir / "checkpoint-2"
    _complete_checkpoint(good, 2)
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    partial = run.checkpoints_dir / "checkpoint-4"
    partial.mkdir()
    whole = (good / "adapter_model.safetensors").read_bytes()
    (partial / "adapter_model.safetensors").write_bytes(whole[: len(whole) // 2])
    staging = run.path / ".adapter.tmp"
    staging.mkdir()
    (staging / "adapter_model.safetensors").write_bytes(b"\0" * 100)

    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    res = disk.disk_full_result(run, exc)
    assert res["state"] == "failed" and res["disk_full"] is True
    assert res["error"].startswith(f"disk full at {run.path}: free ")
    assert res["error"].endswith(" GB or lower save_total_limit")
    assert any("checkpoint-2" in a and "spark-tui resume" in a for a in res["advice"])
    assert any("removed the partial checkpoint-4" in a for a in res["advice"])
    assert any("save_total_limit (now 2)" in a for a in res["advice"])
    assert not partial.exists() and not staging.exists()
    assert checkpoint_problem(good) is None
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before


def test_disk_full_result_with_need_and_moved_aside_output(spark_home):
    run = create_run(_cfg())
    old = run.path / ".adapter.old"
    old.mkdir()
    (old / "adapter_config.json").write_text("{}", encoding="utf-8")
    need = disk.DiskNeed(checkpoint=10 * MB, kept=3, output=5 * MB, margin=disk.MARGIN_BYTES)
    res = disk.disk_full_result(run, OSError(errno.ENOSPC, "full"), need=need)
    assert (run.adapter_dir / "adapter_config.json").exists()  # the previous output is back
    assert any("no complete checkpoint" in a for a in res["advice"])
    assert folder_size(run.checkpoints_dir) == 0


def test_disk_full_result_never_raises(spark_home, monkeypatch):
    run = create_run(_cfg())

    def broken(_run):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(disk, "remove_partial", broken)
    res = disk.disk_full_result(run, OSError(errno.ENOSPC, "full"))
    assert res == {
        "state": "failed",
        "error": f"disk full at {run.path}: free space or lower save_total_limit",
        "disk_full": True,
    }


# --------------------------------------------------------------------------- real sizes


def _measure_run(cfg: RunConfig) -> tuple[dict, dict[str, int], int]:
    """Train `cfg` in-process; the size of each checkpoint as saved, and of the output."""
    from transformers import TrainerCallback

    from spark_tui.core.train.orchestrate import run_training

    sizes: dict[str, int] = {}

    class Measure(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            sizes[path.name] = folder_size(path)

    run = create_run(cfg)
    st = run_training(run, extra_callbacks=[Measure()])
    assert st["state"] == "finished", st.get("error")
    return st, sizes, folder_size(run.output_dir)


def _within(estimate: int, real: int, tolerance: float = 0.3) -> bool:
    return abs(estimate - real) <= tolerance * real


@pytest.mark.slow
def test_estimate_matches_a_real_lora_checkpoint(spark_home, default_model_dir, tmp_path):
    from tests.core.train.test_orchestrate import tiny_cfg

    cfg = tiny_cfg(tmp_path, steps=1)
    cfg.train.save_steps = 1
    _assert_estimate_matches(cfg, default_model_dir)


def _assert_estimate_matches(cfg, tokenizer_dir: Path) -> None:
    """Train `cfg` (one checkpoint) and compare the real sizes with `disk_need`'s."""
    st, sizes, output = _measure_run(cfg)
    need = disk.disk_need(
        cfg,
        st["trainable_params"],
        st["total_params"],
        st["precision"],
        tokenizer=disk.tokenizer_bytes(tokenizer_dir),
    )
    real = sizes["checkpoint-1"]
    assert _within(need.checkpoint, real), (need.checkpoint, real)
    assert _within(need.output, output), (need.output, output)


def _tiny_model(default_model_dir: Path, out: Path) -> Path:
    """The default model's family and tokenizer, 2 narrow layers (random weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    conf = AutoConfig.from_pretrained(default_model_dir)
    conf.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        }
    )
    AutoModelForCausalLM.from_config(conf).save_pretrained(out)
    AutoTokenizer.from_pretrained(default_model_dir).save_pretrained(out)
    return out


@pytest.mark.slow
def test_estimate_matches_a_real_full_checkpoint(spark_home, default_model_dir, tmp_path):
    from tests.core.train.test_orchestrate import tiny_cfg

    model = _tiny_model(default_model_dir, tmp_path / "tiny-model")
    cfg = tiny_cfg(tmp_path, method="full", steps=1)
    cfg.model.id = str(model)
    cfg.train.save_steps = 1
    _assert_estimate_matches(cfg, model)
