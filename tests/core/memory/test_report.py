"""The Memory step as text: report_lines, and `spark-tui memory` (text, --json, flags, probe)."""

from __future__ import annotations

import argparse
import json

from spark_tui.config import RunConfig
from spark_tui.core.memory.breakdown import BREAKDOWN_KEYS, GB, fmt_gb
from spark_tui.core.memory.estimator import estimate
from spark_tui.core.memory.fit import verdict
from spark_tui.core.memory.report import report_lines
from spark_tui.core.memory.settings import settings_for_method

L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"


def test_report_lines_show_the_same_numbers(est, spark_probe) -> None:
    v = verdict(est(L8, "full"), spark_probe())
    text = "\n".join(report_lines(v))
    assert fmt_gb(v.estimate.total) in text
    assert "Won't fit" in text and "Suggestions" in text and "method.adapter" in text


def _run_memory(capsys, *argv: str) -> str:
    from spark_tui.commands import memory as cmd

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cmd.register(sub)
    args = parser.parse_args(["memory", *argv])
    assert args.func(args) == 0
    return capsys.readouterr().out


def test_cli_json_matches_the_estimator(capsys, est) -> None:
    out = _run_memory(
        capsys,
        "--model",
        L70,
        "--method",
        "qlora",
        "--max-length",
        "2048",
        "--target",
        "gpu",
        "--budget-gb",
        "128",
        "--json",
    )
    data = json.loads(out)
    e = est(L70, "qlora")
    assert data["total_peak_gb"] == round(e.total / GB, 2)
    assert set(data["breakdown_gb"]) == set(BREAKDOWN_KEYS)
    assert data["verdict"]["status"] == "fits"
    assert 40 <= data["total_peak_gb"] <= 60


def test_cli_text_and_flags(capsys, monkeypatch) -> None:
    out = _run_memory(
        capsys,
        "--model",
        L8,
        "--method",
        "full",
        "--no-gradient-checkpointing",
        "--batch",
        "2",
        "--target",
        "unified",
        "--budget-gb",
        "120",
    )
    assert "Won't fit" in out and "Total peak" in out
    assert "gradient checkpointing off" in out
    e = estimate(
        L8,
        settings_for_method(
            "full", max_length=2048, micro_batch=2, gradient_checkpointing=False, target="unified"
        ),
    )
    assert fmt_gb(e.total) in out


def test_cli_probes_this_machine(capsys, monkeypatch) -> None:
    from spark_tui.core.model import gpus

    monkeypatch.setattr(gpus, "_import_pynvml", lambda: (_ for _ in ()).throw(ImportError()))
    gpus.reset_nvml()
    out = _run_memory(capsys, "--model", "default", "--method", "lora", "--json")
    data = json.loads(out)
    assert data["hardware"]["target"] == "cpu"
    assert data["settings"]["target"] == "cpu" and data["precision"] == "fp32"
    gpus.reset_nvml()


def test_cli_config_file(capsys, tmp_path) -> None:
    cfg = RunConfig().with_value("model.id", L8).with_value("method.adapter", "qlora")
    path = tmp_path / "run.toml"
    cfg.save(path)
    out = _run_memory(
        capsys, "--config", str(path), "--target", "gpu", "--budget-gb", "80", "--json"
    )
    data = json.loads(out)
    assert data["method"] == "qlora" and data["settings"]["max_length"] == cfg.data.max_length


def test_cli_per_process_estimate_for_two_sparks(capsys) -> None:
    """`spark-tui memory --processes 2 --machines 2`: 70B LoRA bf16 fits two 128 GB Sparks
    with FSDP, and the same run on one does not."""
    argv = ["--model", L70, "--method", "lora", "--target", "unified", "--budget-gb", "128",
            "--json"]  # fmt: skip
    two = json.loads(_run_memory(capsys, *argv, "--processes", "2", "--machines", "2"))
    assert two["distributed"]["status"] in ("fits", "tight")
    assert two["distributed"]["per_process"]["breakdown_gb"]["weights"] < 75
    assert two["verdict"]["status"] == "wont_fit"  # the same run in one process
    text = _run_memory(capsys, *argv[:-1], "--processes", "2", "--machines", "2")
    assert "FSDP over 2 processes (2 machines)" in text and "Per machine:" in text
