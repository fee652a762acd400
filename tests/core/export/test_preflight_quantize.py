"""Disk and memory preflight, progress callbacks, quantizer paths and the export CLI."""

from __future__ import annotations

import json
import os
import shutil
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


# --------------------------------------------------------------------------- memory preflight


def test_available_memory_can_be_injected(monkeypatch):
    assert preflight.parse_size("2GB") == 2 * 1024**3
    assert preflight.parse_size("512M") == 512 * 1024**2
    assert preflight.parse_size("1.5 GiB") == int(1.5 * 1024**3)
    assert preflight.parse_size("12345") == 12345
    with pytest.raises(ExportError, match="not a size"):
        preflight.parse_size("lots")
    monkeypatch.setenv(preflight.ENV_AVAILABLE, "3GB")
    mem = preflight.available_memory()
    assert mem.bytes == 3 * 1024**3 and preflight.ENV_AVAILABLE in mem.source
    assert preflight.available_memory(1000).bytes == 1000  # the parameter wins
    monkeypatch.delenv(preflight.ENV_AVAILABLE)
    assert preflight.available_memory().bytes > 0  # the hardware probe's MemAvailable


def test_export_stages_follow_the_largest_tensor(qwen2_dir, tmp_path):
    fp = preflight.model_footprint(qwen2_dir)
    assert fp.n_params == preflight.count_parameters(qwen2_dir)
    assert fp.largest_tensor_name == "model.embed_tokens.weight"  # 640 x 256, tied
    assert fp.largest_tensor == 640 * 256
    pf = preflight.plan_export(qwen2_dir, tmp_path, ["q4_k_m", "f16"], available_bytes=10**12)
    names = [s.stage for s in pf.stages]
    assert names == [
        "GGUF write (f16)",
        "quantize (q4_k_m)",
        "verify: tokenization + tensors",
        "verify: logits (q4_k_m)",
        "verify: logits (f16)",
        "verify: transformers re-read (f16)",
    ]
    write = pf.get("GGUF write")
    assert write.ram == preflight.with_margin(fp.largest_tensor * 4 * preflight.WRITE_COPIES)
    assert pf.get("verify: logits (f16)").dtype == "float32"  # fp32 reference when it fits
    text = "\n".join(pf.lines())
    assert "RAM need" in text and "disk" in text and "GGUF write (f16)" in text


def test_export_refused_when_memory_is_short(qwen2_dir, tmp_path):
    from spark_tui.core.export.pipeline import export_model

    out = tmp_path / "out"
    with pytest.raises(preflight.MemoryShortError) as exc:
        export_model(qwen2_dir, out, ["q8_0"], available_bytes=100 * 1024**2)
    msg = str(exc.value)
    assert "GGUF write (q8_0) stage" in msg and "needs about" in msg
    assert "100.0 MB is available now" in msg
    assert "drop_caches" in msg and "close other programs" in msg
    assert "q4_k_m" in msg and "--no-logits" in msg
    assert list(out.iterdir()) == []


def _fake_run(tmp_path, monkeypatch, base_dir):
    """A run folder whose adapter points at `base_dir` (never merged in these tests)."""
    from spark_tui.config import RunConfig
    from spark_tui.core.train.runs import create_run

    monkeypatch.setenv("SPARK_TUI_HOME", str(tmp_path / "home"))
    cfg = RunConfig()
    cfg.model.id = str(base_dir)
    cfg.name = "tiny"
    run = create_run(cfg)
    adapter = run.adapter_dir
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "base_model_name_or_path": str(base_dir)})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 4096)
    return run


def test_merge_refused_when_memory_is_short(qwen2_dir, tmp_path, monkeypatch, capsys):
    from spark_tui.cli import main
    from spark_tui.core.export import merge
    from spark_tui.core.export.pipeline import merge_run

    def no_merge(*a, **k):
        raise AssertionError("the merge must not start")

    monkeypatch.setattr(merge, "merge_adapter", no_merge)
    run = _fake_run(tmp_path, monkeypatch, qwen2_dir)
    with pytest.raises(preflight.MemoryShortError) as exc:
        merge_run(run, available_bytes=64 * 1024**2)
    msg = str(exc.value)
    assert msg.startswith("not enough memory for the merge stage: it needs about")
    assert "largest input shard" in msg and "64.0 MB is available now" in msg
    assert "sudo sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'" in msg
    # the CLI: preflight table, then a plain one-line error, no traceback
    monkeypatch.setenv(preflight.ENV_AVAILABLE, "64MB")
    assert main(["merge", run.id]) == 2
    err = capsys.readouterr().err
    assert "preflight:" in err and "NOT ENOUGH MEMORY" in err
    assert "error: not enough memory for the merge stage" in err and "Traceback" not in err


def test_merge_check_only_when_both_models_fit(qwen2_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from spark_tui.core.export import merge
    from spark_tui.core.export.pipeline import merge_preflight, merge_run

    base = tmp_path / "sharded"  # several shards: the merge holds one, the check the model
    AutoModelForCausalLM.from_pretrained(qwen2_dir).save_pretrained(base, max_shard_size="400KB")
    for f in qwen2_dir.glob("tokenizer*"):
        shutil.copy(f, base / f.name)
    run = _fake_run(tmp_path, monkeypatch, base)
    calls: list[dict] = []

    class Result:
        notes: list[str] = []
        passed = True

    def fake_merge(adapter_dir, out_dir, **kwargs):
        calls.append(kwargs)
        return Result()

    monkeypatch.setattr(merge, "merge_adapter", fake_merge)
    # as for a model above the 5 GB output shard: the merge holds less than the whole model
    monkeypatch.setattr(preflight, "_merge_shard_bytes", lambda *_: 400_000)
    big = merge_preflight(run, available_bytes=10**12)
    need_merge, need_check = big.get("merge").ram, big.get("merge check").ram
    assert need_merge < need_check
    merge_run(run, available_bytes=10**12)
    res = merge_run(run, available_bytes=need_merge + 1)
    assert [c["check"] for c in calls] == [True, False]
    assert any(n.startswith("merge logits check skipped: needs ~") for n in res.notes)


@pytest.mark.slow
def test_export_skips_logits_that_do_not_fit(qwen2_dir, llama_cpp, tmp_path, capsys):
    from spark_tui.core.export.pipeline import export_model

    pf = preflight.plan_export(qwen2_dir, tmp_path, ["q8_0"], available_bytes=10**12)
    required = max(s.ram for s in pf.stages if s.required)
    logits = pf.get("verify: logits").ram
    assert required < logits
    out = export_model(qwen2_dir, tmp_path / "out", ["q8_0"], available_bytes=required)
    rep = out.verifications["q8_0"]
    assert rep.passed, rep.summary_lines()
    assert rep.tensors_ok and rep.tokenization_ok and rep.llama_logits is None
    assert rep.logits_skipped.startswith("skipped: needs ~") and "available" in rep.logits_skipped
    assert f"logits: {rep.logits_skipped}" in rep.summary_lines()
    assert out.preflight.get("verify: logits").status().startswith("skipped: needs ~")
    # the CLI's --no-logits: the report says so, the three checks are listed separately
    from spark_tui.cli import main

    cli_out = tmp_path / "cli"
    args = ["export", "--model-dir", str(qwen2_dir), "--type", "q8_0", "--out", str(cli_out)]
    assert main([*args, "--no-logits", "--json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["checks"]["q8_0"] == {
        "tokenization": "ok",
        "tensors": "ok",
        "logits": "skipped: turned off (--no-logits)",
    }
    assert "preflight:" in captured.err and "verify: tokenization + tensors" in captured.err
    summary = info["verifications"]["q8_0"]["summary"]
    assert [
        s.split(":")[0] for s in summary if s.split(":")[0] in ("tokenization", "tensors", "logits")
    ] == ["tokenization", "tensors", "logits"]
