"""Disk preflight, progress callbacks, quantizer paths and the export CLI."""

from __future__ import annotations

import json
import os
import sys
from collections import namedtuple

import pytest

from spark_tui.core.export import preflight
from spark_tui.core.export.common import ExportError
from spark_tui.core.export.gguf_writer import export_gguf
from spark_tui.core.export.quantize import (
    LlamaCppCheckout,
    checkout_commands,
    export_with_checkout,
    quantize_gguf,
)


def test_count_parameters_matches_model(qwen2_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(qwen2_dir)
    # tied embeddings are stored once on disk and counted once by num_parameters
    assert preflight.count_parameters(qwen2_dir) == model.num_parameters()
    cfg = json.loads((qwen2_dir / "config.json").read_text())
    est = preflight.estimate_parameters(cfg)
    assert abs(est - model.num_parameters()) / model.num_parameters() < 0.05


def test_plan_counts_f16_for_k_quants_and_refuses_when_full(tmp_path, monkeypatch):
    plan = preflight.plan_outputs(1_000_000_000, tmp_path, ["q4_k_m"], merged_bytes_per_weight=2)
    labels = [label for label, _ in plan.items]
    assert labels == ["merged model", "GGUF f16", "GGUF q4_k_m"]
    assert plan.needed > 2e9 + 2e9 + 0.6e9
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: Usage(10**12, 0, 10**9))
    plan = preflight.plan_outputs(1_000_000_000, tmp_path / "not-yet", ["f16"])
    assert not plan.ok
    with pytest.raises(preflight.DiskSpaceError, match="not enough free disk"):
        preflight.check_disk(plan)


def test_export_refuses_before_writing_when_disk_is_short(qwen2_dir, tmp_path, monkeypatch):
    from spark_tui.core.export.pipeline import export_model

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 1000))
    with pytest.raises(preflight.DiskSpaceError):
        export_model(qwen2_dir, tmp_path / "out", ["f16", "q4_k_m"], verify=False)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.slow
def test_progress_callbacks_and_k_quant(llama3_dir, llama_cpp, tmp_path):
    events: list[tuple[str, int, int]] = []
    f16 = export_gguf(
        llama3_dir, tmp_path / "m-f16.gguf", "f16", progress=lambda *e: events.append(e)
    )
    writes = [e for e in events if e[0] == "write"]
    assert writes[0][1] == 0 and writes[-1][1] == writes[-1][2] == f16.n_tensors
    events.clear()
    res = quantize_gguf(
        f16.path, tmp_path / "m-q6_k.gguf", "q6_k", progress=lambda *e: events.append(e)
    )
    assert res.path.exists() and res.n_bytes < f16.path.stat().st_size
    q = [e for e in events if e[0] == "quantize"]
    assert q and q[-1][1] == q[-1][2]
    assert not list(tmp_path.glob(".*"))  # no temp file or log left behind


def test_quantize_failure_is_explained(tmp_path, llama_cpp):
    bad = tmp_path / "bad-f16.gguf"
    bad.write_bytes(b"not a gguf")
    with pytest.raises(ExportError, match="could not quantize"):
        quantize_gguf(bad, tmp_path / "bad-q4_k_m.gguf", "q4_k_m")
    assert not (tmp_path / "bad-q4_k_m.gguf").exists()


def _fake_checkout(root):
    (root / "build" / "bin").mkdir(parents=True)
    conv = root / "convert_hf_to_gguf.py"
    conv.write_text(
        "import sys\n"
        "a = sys.argv\n"
        "open(a[a.index('--outfile') + 1], 'wb').write(b'GGUF-' + a[a.index('--outtype') + 1].encode())\n"
    )
    q = root / "build" / "bin" / "llama-quantize"
    q.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "open(sys.argv[2], 'wb').write(data + b'->' + sys.argv[3].encode())\n"
    )
    q.chmod(0o755)
    return root


def test_llama_cpp_checkout_commands_are_argument_lists(tmp_path):
    with pytest.raises(ExportError, match="not a llama.cpp checkout"):
        LlamaCppCheckout.find(tmp_path)
    co = LlamaCppCheckout.find(_fake_checkout(tmp_path / "llama.cpp"))
    cmds = checkout_commands(co, "/m", tmp_path / "o-q4_k_m.gguf", "q4_k_m", python="py")
    assert cmds == [
        [
            "py",
            str(co.converter),
            "/m",
            "--outfile",
            str(tmp_path / "o-q4_k_m-f16.gguf"),
            "--outtype",
            "f16",
        ],
        [
            str(co.quantize_bin),
            str(tmp_path / "o-q4_k_m-f16.gguf"),
            str(tmp_path / "o-q4_k_m.gguf"),
            "Q4_K_M",
        ],
    ]
    assert checkout_commands(co, "/m", tmp_path / "o.gguf", "q8_0", python="py") == [
        ["py", str(co.converter), "/m", "--outfile", str(tmp_path / "o.gguf"), "--outtype", "q8_0"]
    ]


def test_export_with_checkout_runs_both_tools(tmp_path):
    co = _fake_checkout(tmp_path / "llama.cpp")
    out = tmp_path / "out" / "m-q5_k_m.gguf"
    res = export_with_checkout(co, tmp_path, out, "q5_k_m")
    assert out.read_bytes() == b"GGUF-f16->Q5_K_M"
    assert res.method == "llama.cpp checkout"
    assert sorted(p.name for p in out.parent.iterdir() if not p.name.endswith(".log")) == [
        "m-q5_k_m.gguf"
    ]


def test_cli_export_model_dir(qwen2_dir, tmp_path, capsys):
    from spark_tui.cli import main

    out = tmp_path / "out"
    rc = main(
        [
            "export",
            "--model-dir",
            str(qwen2_dir),
            "--type",
            "q8_0",
            "--no-verify",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert os.path.exists(info["outputs"]["q8_0"])
    assert main(["export", "--type", "f16"]) == 2  # neither RUN nor --model-dir
    assert "--model-dir" in capsys.readouterr().err
