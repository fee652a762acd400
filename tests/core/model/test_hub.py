"""The Hub: only config.json is read; gated, missing and unreachable models; tokens never exposed."""

from __future__ import annotations

import pytest

from spark_tui.core.model import catalog
from spark_tui.core.model import sources as model_sources
from spark_tui.core.model.folder import ModelSourceError
from spark_tui.core.model.hub import fetch_hub_config, gated_help, token_source

pytestmark = pytest.mark.usefixtures("hf_offline")


def test_online_reads_only_config_json(monkeypatch, llama_cfg) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    calls = []

    def fake_get(repo_id, revision, timeout):
        calls.append((repo_id, timeout))
        return dict(llama_cfg, hidden_size=128)

    monkeypatch.setattr("spark_tui.core.model.hub._http_get_config", fake_get)
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

    monkeypatch.setattr("spark_tui.core.model.hub._http_get_config", gated)
    hub = fetch_hub_config("org/gated-model")
    assert hub.status == "gated"
    assert "https://huggingface.co/org/gated-model" in hub.message and "HF_TOKEN" in hub.message
    info = model_sources.resolve("org/gated-model")
    assert info.gated and info.arch is None


def test_not_found_hub_model(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    from huggingface_hub.errors import RepositoryNotFoundError

    def missing(repo_id, revision, timeout):
        raise _http_error(RepositoryNotFoundError, 404)

    monkeypatch.setattr("spark_tui.core.model.hub._http_get_config", missing)
    with pytest.raises(ModelSourceError, match="no model org/none"):
        model_sources.resolve("org/none")


def test_network_failure_falls_back_to_catalogue(monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def down(repo_id, revision, timeout):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr("spark_tui.core.model.hub._http_get_config", down)
    info = model_sources.resolve("Qwen/Qwen2.5-7B-Instruct", online=True)
    assert info.arch == catalog.get("qwen2.5-7b").arch
    assert any("catalogue's numbers" in m for m in info.messages)
    arch, msg = model_sources.hub_architecture("org/not-in-catalogue")
    assert arch is None and "could not be reached" in msg


def test_token_source_never_exposes_the_token(monkeypatch, tmp_path) -> None:
    assert token_source() == ""
    assert "No token was found" in gated_help("a/b")
    token_file = tmp_path / "token"
    token_file.write_text("hf_from_cache")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    assert token_source() == "HF cache"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert token_source() == "HF_TOKEN"
    assert "hf_env" not in gated_help("a/b")


def test_one_mapping_of_hub_errors_for_config_reads_and_downloads():
    import errno

    from huggingface_hub import errors as hf_errors

    from spark_tui.core.model.hub import hub_error

    status, msg = hub_error("org/m", hf_errors.LocalEntryNotFoundError("no connection"))
    assert status == "offline" and "check the network" in msg  # not "no such file"
    status, msg = hub_error("org/m", OSError(errno.ENOSPC, "No space left on device"))
    assert status == "error" and "No space left" in msg and "reached" not in msg
    status, msg = hub_error("org/m", ValueError("not JSON"), reading="config.json of org/m")
    assert (status, msg) == ("error", "config.json of org/m is unreadable: not JSON")
    assert hub_error("org/m", TimeoutError("timed out"))[0] == "offline"
