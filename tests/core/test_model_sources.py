"""Model sources: local folder checks, the HF cache, Hub config.json, gated models, tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spark_tui.core import catalog, model_sources
from spark_tui.core.model_sources import check_folder

LLAMA_CFG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


def make_folder(
    root: Path,
    *,
    config: bool = True,
    weights: bool = True,
    tokenizer: bool = True,
    template: bool = True,
    extra_cfg: dict | None = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if config:
        (root / "config.json").write_text(json.dumps({**LLAMA_CFG, **(extra_cfg or {})}))
    if weights:
        (root / "model.safetensors").write_bytes(b"\0" * 128)
    if tokenizer:
        (root / "tokenizer.json").write_text("{}")
    tc: dict = {"model_max_length": 4096}
    if template:
        tc["chat_template"] = "{% for m in messages %}{{ m.content }}{% endfor %}"
    (root / "tokenizer_config.json").write_text(json.dumps(tc))
    return root


def test_complete_folder(tmp_path) -> None:
    chk = check_folder(make_folder(tmp_path / "m"))
    assert chk.ok and chk.problems == [] and chk.warnings == []
    assert chk.has_config and chk.has_weights and chk.has_tokenizer and chk.has_chat_template
    assert chk.weight_format == "safetensors" and chk.weights_bytes == 128
    assert chk.arch is not None and chk.arch.num_layers == 2
    json.dumps(chk.to_dict())


def test_missing_weights(tmp_path) -> None:
    chk = check_folder(make_folder(tmp_path / "m", weights=False))
    assert not chk.ok
    assert any("no weights" in p and "safetensors" in p for p in chk.problems)


def test_missing_tokenizer(tmp_path) -> None:
    chk = check_folder(make_folder(tmp_path / "m", tokenizer=False))
    assert not chk.ok
    (msg,) = chk.problems
    assert "no tokenizer" in msg and "tokenizer.json" in msg


def test_no_chat_template_is_a_warning(tmp_path) -> None:
    chk = check_folder(make_folder(tmp_path / "m", template=False))
    assert chk.ok and not chk.has_chat_template
    assert any("no chat template" in w and "chatml" in w for w in chk.warnings)


def test_chat_template_jinja_file_counts(tmp_path) -> None:
    folder = make_folder(tmp_path / "m", template=False)
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    assert check_folder(folder).has_chat_template


def test_missing_config(tmp_path) -> None:
    chk = check_folder(make_folder(tmp_path / "m", config=False))
    assert any("no config.json" in p for p in chk.problems)
    assert chk.arch is None


def test_not_a_folder(tmp_path) -> None:
    assert "does not exist" in check_folder(tmp_path / "nope").problems[0]
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert "not a model folder" in check_folder(f).problems[0]


def test_gguf_only(tmp_path) -> None:
    folder = make_folder(tmp_path / "m", weights=False)
    (folder / "model.Q4_K_M.gguf").write_bytes(b"GGUF")
    chk = check_folder(folder)
    assert chk.weight_format == "gguf"
    assert any("GGUF" in p for p in chk.problems)


def test_incomplete_sharded_download(tmp_path) -> None:
    folder = make_folder(tmp_path / "m", weights=False)
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"\0")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    chk = check_folder(folder)
    assert not chk.has_weights
    assert any("missing" in p and "00002" in p for p in chk.problems)


def test_remote_code_warning(tmp_path) -> None:
    folder = make_folder(tmp_path / "m", extra_cfg={"auto_map": {"AutoModelForCausalLM": "x.Y"}})
    chk = check_folder(folder)
    assert chk.needs_remote_code
    assert model_sources.TRUST_REMOTE_CODE_WARNING in chk.warnings
    info = model_sources.resolve(str(folder))
    assert info.needs_remote_code and "trust_remote_code" in model_sources.remote_code_warning("x")


def test_bad_config_json(tmp_path) -> None:
    folder = make_folder(tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    assert any("not valid JSON" in p for p in check_folder(folder).problems)


def _fake_cache(cache: Path, repo: str, *, weights: bool) -> Path:
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / "abc123"
    blobs = repo_dir / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("abc123")
    files = {"config.json": json.dumps(LLAMA_CFG).encode(), "tokenizer.json": b"{}"}
    if weights:
        files["model.safetensors"] = b"\0" * 1000
    for i, (name, data) in enumerate(files.items()):
        blob = blobs / f"blob{i}"
        blob.write_bytes(data)
        (snap / name).symlink_to(blob)
    return snap


def test_hf_cache_listing(tmp_path) -> None:
    cache = tmp_path / "hf-cache"
    _fake_cache(cache, "someorg/tiny-model", weights=True)
    _fake_cache(cache, "other/config-only", weights=False)
    found = {c.repo_id: c for c in model_sources.list_cached_models()}
    assert set(found) == {"someorg/tiny-model", "other/config-only"}
    assert found["someorg/tiny-model"].has_weights and found["someorg/tiny-model"].size_bytes > 1000
    assert not found["other/config-only"].has_weights
    assert model_sources.cached_snapshot("SomeOrg/Tiny-Model") is not None  # case-insensitive


def test_resolve_cached_hub_model_offline(tmp_path) -> None:
    _fake_cache(tmp_path / "hf-cache", "someorg/tiny-model", weights=True)
    info = model_sources.resolve("someorg/tiny-model")
    assert info.source == "cache" and info.present_locally
    assert info.arch is not None and info.arch.hidden_size == 64
    assert model_sources.architecture_for("someorg/tiny-model") == info.arch


def test_resolve_catalogue_offline_gated(monkeypatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SECRET_value_123")
    info = model_sources.resolve("llama-3.1-8b")
    assert info.source == "catalogue" and info.gated and not info.present_locally
    text = " ".join(info.messages)
    assert "HF_TOKEN" in text and "hf auth login" in text and "request access" in text
    assert "not downloaded" in text
    dumped = json.dumps(info.to_dict())
    assert "hf_SECRET_value_123" not in dumped  # the token is never returned


def test_resolve_default_model() -> None:
    info = model_sources.resolve("default")
    assert info.source == "bundled"
    assert info.arch == catalog.get("default").arch
    assert info.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_resolve_local_folder_reports_problems(tmp_path) -> None:
    folder = make_folder(tmp_path / "m", tokenizer=False)
    info = model_sources.resolve(str(folder))
    assert info.source == "local" and not info.present_locally
    assert any("no tokenizer" in w for w in info.warnings)


def test_resolve_rejects_nonsense() -> None:
    with pytest.raises(model_sources.ModelSourceError, match="not a local folder"):
        model_sources.resolve("not a model id")


def test_unknown_hub_id_offline_says_so() -> None:
    info = model_sources.resolve("someone/unknown-model")
    assert info.arch is None
    assert any("Offline" in m or "offline" in m for m in info.messages)


def test_online_reads_only_config_json(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_get(repo_id, revision, timeout):
        calls.append((repo_id, timeout))
        return dict(LLAMA_CFG, hidden_size=128)

    monkeypatch.setattr(model_sources, "_http_get_config", fake_get)
    info = model_sources.resolve("someone/new-model", timeout=2.0)
    assert calls == [("someone/new-model", 2.0)]
    assert info.source == "hub" and info.arch.hidden_size == 128
    assert any("config.json" in m for m in info.messages)
    assert any("not downloaded" in m for m in info.messages)


def _http_error(cls, status: int):
    import httpx2

    req = httpx2.Request("GET", "https://huggingface.co/x/y/resolve/main/config.json")
    return cls("refused", response=httpx2.Response(status, request=req))


def test_gated_hub_model_explains_access(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    from huggingface_hub.errors import GatedRepoError

    def gated(repo_id, revision, timeout):
        raise _http_error(GatedRepoError, 403)

    monkeypatch.setattr(model_sources, "_http_get_config", gated)
    hub = model_sources.fetch_hub_config("org/gated-model")
    assert hub.status == "gated"
    assert "https://huggingface.co/org/gated-model" in hub.message and "HF_TOKEN" in hub.message
    info = model_sources.resolve("org/gated-model")
    assert info.gated and info.arch is None


def test_not_found_hub_model(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(repo_id, revision, timeout):
        raise _http_error(RepositoryNotFoundError, 404)

    monkeypatch.setattr(model_sources, "_http_get_config", missing)
    with pytest.raises(model_sources.ModelSourceError, match="no model org/none"):
        model_sources.resolve("org/none")


def test_network_failure_falls_back_to_catalogue(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def down(repo_id, revision, timeout):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(model_sources, "_http_get_config", down)
    info = model_sources.resolve("Qwen/Qwen2.5-7B-Instruct", online=True)
    assert info.arch == catalog.get("qwen2.5-7b").arch
    assert any("catalogue's numbers" in m for m in info.messages)
    arch, msg = model_sources.hub_architecture("org/not-in-catalogue")
    assert arch is None and "could not be reached" in msg


def test_token_source_never_exposes_the_token(monkeypatch, tmp_path) -> None:
    assert model_sources.token_source() == ""
    assert "No token was found" in model_sources.gated_help("a/b")
    token_file = tmp_path / "token"
    token_file.write_text("hf_from_cache")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    assert model_sources.token_source() == "HF cache"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert model_sources.token_source() == "HF_TOKEN"
    assert "hf_env" not in model_sources.gated_help("a/b")


def test_local_snapshot_follows_refs_main(tmp_path) -> None:
    snap = _fake_cache(tmp_path / "hf-cache", "someorg/tiny-model", weights=True)
    newer = snap.parent / ("f" * 40)  # a newer partial snapshot that refs/main does not name
    newer.mkdir()
    (newer / "config.json").write_text(json.dumps(LLAMA_CFG))
    os.utime(newer, (snap.stat().st_mtime + 100,) * 2)
    assert model_sources.local_snapshot("someorg/tiny-model") == snap
    assert model_sources.local_snapshot("SomeOrg/Tiny-Model") == snap  # case-insensitive


def test_local_snapshot_missing_or_partial(tmp_path) -> None:
    with pytest.raises(model_sources.ModelSourceError) as err:
        model_sources.local_snapshot("someorg/absent")
    assert "not in the Hugging Face cache" in str(err.value)
    assert "hf download someorg/absent" in str(err.value)
    _fake_cache(tmp_path / "hf-cache", "other/config-only", weights=False)
    with pytest.raises(model_sources.ModelSourceError, match="incomplete: .* no weights"):
        model_sources.local_snapshot("other/config-only")
