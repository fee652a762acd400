"""Streaming verification: the tensor check, the three-section report, one model at a time."""

from __future__ import annotations

import gc
import shutil
import weakref
from pathlib import Path

import numpy as np
import pytest

from spark_tui.core.export import verify
from spark_tui.core.export.gguf_writer import export_gguf, plan_tensors
from spark_tui.core.export.verify_report import TokenizationCheck, VerifyReport
from spark_tui.core.export.verify_tensors import (
    ERROR_BOUNDS,
    TensorCheck,
    TensorReport,
    bf16_bits,
    verify_tensors,
)


@pytest.fixture(scope="module")
def llama3_files(llama3_dir, llama_cpp, tmp_path_factory) -> dict[str, Path]:
    """The tiny Llama 3 model as f16, bf16, q8_0 (our writer) and q4_k_m (llama.cpp)."""
    from spark_tui.core.export.quantize import quantize_gguf

    out = tmp_path_factory.mktemp("stream-gguf")
    files = {t: export_gguf(llama3_dir, out / f"m-{t}.gguf", t).path for t in ("f16", "bf16")}
    files["q8_0"] = export_gguf(llama3_dir, out / "m-q8_0.gguf", "q8_0").path
    files["q4_k_m"] = quantize_gguf(files["f16"], out / "m-q4_k_m.gguf", "q4_k_m").path
    return files


# --------------------------------------------------------------------------- tensor check


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["f16", "bf16", "q8_0", "q4_k_m"])
def test_tensor_check_passes_on_every_export(llama3_files, llama3_dir, qtype):
    rep = verify_tensors(llama3_files[qtype], llama3_dir, qtype)
    assert rep.ok, rep.lines()
    n_plan = len(plan_tensors(llama3_dir, "f16").tensors)
    assert rep.n_expected == n_plan == len(rep.checks) == rep.n_in_file
    types = rep.type_counts()
    if qtype in ("f16", "bf16"):
        assert set(types) == {"F32", qtype.upper()}
        assert all(c.max_abs_err == 0.0 for c in rep.checks if c.qtype == "F32")
        assert all(c.mismatches == 0 and c.bound is None for c in rep.checks)
    if qtype == "q8_0":
        assert "Q8_0" in types
    if qtype == "q4_k_m":  # llama.cpp mixes types; each is judged by its own bound
        assert "Q4_K" in types and set(types) - {"F32"} <= set(ERROR_BOUNDS) | {"F16"}
        worst = rep.worst
        assert worst is not None and worst.bound is not None and 0 < worst.worst_fraction <= 1
    assert (
        rep.lines()[0].startswith(f"tensors: {n_plan}/{n_plan} checked") and "ok" in rep.lines()[0]
    )


def _flip_bytes(src: Path, dst: Path, tensor: str, n: int = 64) -> None:
    import gguf

    shutil.copy(src, dst)
    t = next(t for t in gguf.GGUFReader(str(src)).tensors if t.name == tensor)
    start = int(t.data_offset) + int(t.n_bytes) // 2
    with open(dst, "r+b") as fh:
        fh.seek(start)
        data = bytearray(fh.read(n))
        fh.seek(start)
        fh.write(bytes(b ^ 0x5A for b in data))


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["f16", "q4_k_m"])
def test_tensor_check_names_a_corrupted_tensor(llama3_files, llama3_dir, tmp_path, qtype):
    bad = tmp_path / f"bad-{qtype}.gguf"
    _flip_bytes(llama3_files[qtype], bad, "blk.1.ffn_up.weight")
    rep = verify_tensors(bad, llama3_dir, qtype)
    assert not rep.ok
    assert [c.name for c in rep.failed] == ["blk.1.ffn_up.weight"]
    assert rep.worst is not None and rep.worst.name == "blk.1.ffn_up.weight"
    text = "\n".join(rep.lines())
    assert "FAILED" in text and "blk.1.ffn_up.weight" in text


@pytest.mark.slow
def test_tensor_check_fails_on_missing_and_renamed_tensors(llama3_dir, tmp_path, monkeypatch):
    from spark_tui.core.export import gguf_writer

    real = gguf_writer.plan_tensors

    def broken(model_dir, out_type="f16"):
        tp = real(model_dir, out_type)
        tp.tensors = [p for p in tp.tensors if p.gguf_name != "blk.0.ffn_down.weight"]
        for p in tp.tensors:
            if p.gguf_name == "blk.1.attn_v.weight":
                p.gguf_name = "blk.1.attn_v.weight_extra"
        return tp

    with monkeypatch.context() as m:  # only the writer sees the broken plan
        m.setattr(gguf_writer, "plan_tensors", broken)
        path = export_gguf(llama3_dir, tmp_path / "m-f16.gguf", "f16").path
    rep = verify_tensors(path, llama3_dir, "f16")
    assert not rep.ok
    assert set(rep.missing) == {"blk.0.ffn_down.weight", "blk.1.attn_v.weight"}
    assert rep.extra == ["blk.1.attn_v.weight_extra"]
    text = "\n".join(rep.lines())
    assert "missing from the file: " in text and "blk.0.ffn_down.weight" in text


def test_bf16_rounding_is_round_to_nearest_even():
    import torch

    x = np.array([1.0, 1.00390625, 1.01171875, -2.5e-3, 3.0e38, 1e-40, 0.0], dtype=np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(bf16_bits(x)[:5], want[:5])
    assert bf16_bits(np.array([1.00390625], np.float32))[0] == 0x3F80  # tie -> even


# --------------------------------------------------------------------------- report


def _tensor_report(ok: bool = True) -> TensorReport:
    rep = TensorReport(plan_type="f16", n_expected=1, n_in_file=1)
    rep.checks.append(TensorCheck("blk.0.attn_q.weight", "Q8_0", 64, 0.01, 0.006, 0.5, 0, ok))
    return rep


def test_report_lists_three_sections_and_explained_warning_passes(tmp_path):
    explained = TokenizationCheck("<s>[INST] hi", [1, 518, 25580], [1, 29871, 518, 25580], {1})
    assert explained.status == "warning" and explained.explain()
    lead = TokenizationCheck("  42", [288, 365], [288, 332, 365], pieces=["▁▁", "▁", "4"])
    assert lead.status == "warning" and "leading spaces" in str(lead.explain())
    other = TokenizationCheck("  42", [288, 365], [288, 400, 365], pieces=["▁▁", "x", "4"])
    assert other.status == "FAILED" and other.explain() is None
    # the legacy space merged into a '▁▁' piece (Mistral-style vocabularies)
    merged = TokenizationCheck(
        "<s>[INST] What", [1, 3, 314, 285], [1, 3, 290, 374, 285], frozenset({1, 3}),
        pieces=["<s>", "[INST]", "▁▁", "W", "hat"], hf_pieces=["<s>", "[INST]", "▁W", "hat"],
    )  # fmt: skip
    assert merged.status == "warning" and merged.explain()
    moved = TokenizationCheck(
        "<s>[INST] What", [1, 3, 314, 285], [1, 3, 290, 374, 285], frozenset({1, 3}),
        pieces=["<s>", "[INST]", "▁▁", "W", "at"], hf_pieces=["<s>", "[INST]", "▁W", "hat"],
    )  # fmt: skip
    assert moved.status == "FAILED"
    rep = VerifyReport(tmp_path / "m-q8_0.gguf", "q8_0")
    rep.tokenization = [TokenizationCheck("hi", [1, 2], [1, 2]), explained]
    rep.tensors = _tensor_report()
    rep.logits_skipped = "skipped: needs ~9.0 GB, 4.0 GB available"
    assert rep.tokenization_ok and not rep.tokenization_identical
    assert rep.passed, rep.summary_lines()
    lines = rep.summary_lines()
    heads = [line.split(":")[0] for line in lines if not line.startswith(" ")]
    assert heads[1:] == ["tokenization", "tensors", "logits"]
    assert any("warning" in line for line in lines)
    assert "logits: skipped: needs ~9.0 GB, 4.0 GB available" in lines
    d = rep.to_dict()
    assert {"tokenization", "tensors", "logits"} <= set(d)
    assert d["logits"]["skipped"].startswith("skipped: needs")
    assert d["tokenization"]["texts"][1]["status"] == "warning"

    rep.tokenization.append(TokenizationCheck("x", [5, 6], [7]))  # unexplained: fails
    assert not rep.passed
    rep.tokenization.pop()
    rep.tensors = _tensor_report(ok=False)
    assert not rep.passed
    rep.tensors, rep.logits_skipped = _tensor_report(), None
    assert not rep.passed  # logits neither run nor skipped with a reason


# --------------------------------------------------------------------------- one model at a time


@pytest.mark.slow
def test_reference_is_freed_before_llama_cpp_loads(llama3_dir, llama_cpp, tmp_path, monkeypatch):
    from spark_tui.core.export.pipeline import export_model

    models: list[weakref.ref] = []
    real_load = verify.Reference._load_model

    def load_model(self, dtype):
        model = real_load(self, dtype)
        models.append(weakref.ref(model))
        return model

    alive_at: list[tuple[str, list[bool]]] = []
    real_llama, real_reread = verify.load_llama, verify._transformers_check

    def load_llama(path, n_ctx=512):
        gc.collect()
        alive_at.append(("llama.cpp", [r() is not None for r in models]))
        return real_llama(path, n_ctx)

    def reread(*args, **kwargs):
        gc.collect()
        alive_at.append(("re-read", [r() is not None for r in models]))
        return real_reread(*args, **kwargs)

    monkeypatch.setattr(verify.Reference, "_load_model", load_model)
    monkeypatch.setattr(verify, "load_llama", load_llama)
    monkeypatch.setattr(verify, "_transformers_check", reread)
    out = export_model(
        llama3_dir, tmp_path / "out", ["f16", "q8_0"], max_new_tokens=4, logit_prompts=1
    )
    assert len(models) == 1  # the reference logits/answer are computed once for both types
    assert [w for w, _ in alive_at] == ["llama.cpp", "re-read", "llama.cpp"]
    assert all(not any(alive) for _, alive in alive_at), alive_at
    for t in ("f16", "q8_0"):
        rep = out.verifications[t]
        assert rep.passed, rep.summary_lines()
        assert rep.tensors_ok and rep.llama_logits is not None and rep.hf_answer is not None
    assert out.verifications["f16"].transformers_logits is not None
    assert out.verifications["f16"].reference_dtype == "float32"
