"""A Hub model id is resolved to its cached snapshot before anything reads its files.

The test lays out a Hugging Face cache the way huggingface_hub does
(``models--org--name/blobs/<hash>``, ``refs/main``, ``snapshots/<rev>/`` of
relative symlinks into ``blobs/``) holding the tiny SentencePiece Llama model,
resolves ``org/name`` and exports the snapshot to GGUF.  The snapshot's
``tokenizer.model`` has its scores rescaled (order kept, so tokenization is
unchanged): scores equal to those prove the exporter read that file through the
snapshot's symlink, not values derived from tokenizer.json.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from spark_tui.core.base.errors import SparkError
from spark_tui.core.model.resolve import ModelError, resolve_local_model, resolve_model_path

REPO = "tiny-org/tiny-spm-llama"
REV = "0123456789abcdef0123456789abcdef01234567"
STALE_REV = "fedcba9876543210fedcba9876543210fedcba98"


def _rescored(src: Path, dst: Path) -> None:
    """`src` with every normal piece's score mapped to 1.5 * s - 0.25 (same order)."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    m = pb.ModelProto()
    m.ParseFromString(src.read_bytes())
    for piece in m.pieces:
        if piece.type == pb.ModelProto.SentencePiece.NORMAL:
            piece.score = 1.5 * piece.score - 0.25
    dst.write_bytes(m.SerializeToString())


def _add_snapshot(repo: Path, rev: str, files: dict[str, Path]) -> Path:
    blobs = repo / "blobs"
    snap = repo / "snapshots" / rev
    blobs.mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True)
    for name, src in files.items():
        data = src.read_bytes()
        blob = blobs / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            blob.write_bytes(data)
        link = snap / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snap


@pytest.fixture
def hub_cache(spm_dir, tmp_path, monkeypatch):
    """(cache dir, the refs/main snapshot) of REPO, plus a newer stale partial snapshot."""
    cache = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "files"
    work.mkdir()
    _rescored(spm_dir / "tokenizer.model", work / "tokenizer.model")
    files = {p.name: p for p in spm_dir.iterdir() if p.is_file()}
    files["tokenizer.model"] = work / "tokenizer.model"
    repo = cache / ("models--" + REPO.replace("/", "--"))
    snap = _add_snapshot(repo, REV, files)
    stale = _add_snapshot(repo, STALE_REV, {"config.json": spm_dir / "config.json"})
    os.utime(stale, (snap.stat().st_mtime + 100,) * 2)  # newer: only refs/main tells them apart
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV)
    return cache, snap


def test_hub_id_resolves_to_the_refs_main_snapshot(hub_cache):
    cache, snap = hub_cache
    assert (snap / "tokenizer.model").is_symlink()
    assert resolve_local_model(REPO) == snap
    assert resolve_local_model(REPO.upper()) == snap  # the Hub is case-insensitive
    assert resolve_local_model(REPO, revision=REV) == snap
    assert resolve_model_path(REPO) == REPO  # training still hands the id to transformers


def test_gguf_export_reads_tokenizer_model_from_the_snapshot(hub_cache, tmp_path):
    import sentencepiece as spm
    from gguf import GGUFReader

    from spark_tui.core.export.gguf_writer import export_gguf

    _cache, _snap = hub_cache
    snap = resolve_local_model(REPO)
    out = tmp_path / "out" / "tiny-f16.gguf"
    out.parent.mkdir()
    res = export_gguf(snap, out, "f16")
    assert res.tokenizer_model == "llama"

    sp = spm.SentencePieceProcessor(model_file=str(snap / "tokenizer.model"))
    want = [sp.GetScore(i) for i in range(sp.GetPieceSize())]
    assert any(s != int(s) for s in want)  # the rescaled scores: not tokenizer.json ranks
    reader = GGUFReader(str(out))
    got = [float(x) for x in reader.fields["tokenizer.ggml.scores"].contents()]
    assert len(got) >= len(want)
    # <unk>/<s>/</s> are the tokenizer's special tokens: llama.cpp gives them -1000
    pieces = [i for i in range(len(want)) if not (sp.IsControl(i) or sp.IsUnknown(i))]
    assert len(pieces) == len(want) - 3
    assert [got[i] for i in pieces] == [want[i] for i in pieces]
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert tokens[: len(want)] == [sp.IdToPiece(i) for i in range(len(want))]


def test_a_model_that_is_not_cached_is_explained(hub_cache, tmp_path):
    # a folder of the same name in the working directory is not taken for the model
    (tmp_path / "tiny-org" / "absent").mkdir(parents=True)
    with pytest.raises(ModelError) as err:
        resolve_local_model("tiny-org/absent")
    msg = str(err.value)
    assert "tiny-org/absent" in msg and "hf download tiny-org/absent" in msg
    assert "not in the Hugging Face cache" in msg
    assert isinstance(err.value, SparkError)


def test_a_partial_download_is_refused(hub_cache):
    cache, _snap = hub_cache
    repo = cache / ("models--" + REPO.replace("/", "--"))
    (repo / "refs" / "main").write_text(STALE_REV)  # config.json only: no weights, no tokenizer
    with pytest.raises(ModelError, match=r"incomplete.*no weights") as err:
        resolve_local_model(REPO)
    assert f"hf download {REPO}" in str(err.value)
    shutil.rmtree(repo / "snapshots" / STALE_REV)
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        resolve_local_model(REPO)  # refs/main points at nothing: never the other snapshot


def test_local_folders_and_the_default_model_still_resolve(spm_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(spm_dir.parent)
    assert resolve_local_model(str(spm_dir)) == spm_dir.resolve()
    assert resolve_local_model(f"./{spm_dir.name}") == spm_dir.resolve()
    assert resolve_local_model(spm_dir.name) == spm_dir.resolve()  # a folder with config.json
    with pytest.raises(ModelError, match="does not exist"):
        resolve_local_model(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="not a model folder"):
        resolve_local_model("not a model id")
