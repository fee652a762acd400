"""Local model folders: config.json, weights, tokenizer, chat template, remote code."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.model import sources as model_sources
from spark_tui.core.model.folder import TRUST_REMOTE_CODE_WARNING, check_folder, remote_code_warning

pytestmark = pytest.mark.usefixtures("hf_offline")


def test_complete_folder(tmp_path, make_folder) -> None:
    chk = check_folder(make_folder(tmp_path / "m"))
    assert chk.ok and chk.problems == [] and chk.warnings == []
    assert chk.has_config and chk.has_weights and chk.has_tokenizer and chk.has_chat_template
    assert chk.weight_format == "safetensors" and chk.weights_bytes == 128
    assert chk.arch is not None and chk.arch.num_layers == 2
    json.dumps(chk.to_dict())


def test_missing_weights(tmp_path, make_folder) -> None:
    chk = check_folder(make_folder(tmp_path / "m", weights=False))
    assert not chk.ok
    assert any("no weights" in p and "safetensors" in p for p in chk.problems)


def test_missing_tokenizer(tmp_path, make_folder) -> None:
    chk = check_folder(make_folder(tmp_path / "m", tokenizer=False))
    assert not chk.ok
    (msg,) = chk.problems
    assert "no tokenizer" in msg and "tokenizer.json" in msg


def test_no_chat_template_is_a_warning(tmp_path, make_folder) -> None:
    chk = check_folder(make_folder(tmp_path / "m", template=False))
    assert chk.ok and not chk.has_chat_template
    assert any("no chat template" in w and "chatml" in w for w in chk.warnings)


def test_chat_template_jinja_file_counts(tmp_path, make_folder) -> None:
    folder = make_folder(tmp_path / "m", template=False)
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    assert check_folder(folder).has_chat_template


def test_missing_config(tmp_path, make_folder) -> None:
    chk = check_folder(make_folder(tmp_path / "m", config=False))
    assert any("no config.json" in p for p in chk.problems)
    assert chk.arch is None


def test_not_a_folder(tmp_path) -> None:
    assert "does not exist" in check_folder(tmp_path / "nope").problems[0]
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert "not a model folder" in check_folder(f).problems[0]


def test_gguf_only(tmp_path, make_folder) -> None:
    folder = make_folder(tmp_path / "m", weights=False)
    (folder / "model.Q4_K_M.gguf").write_bytes(b"GGUF")
    chk = check_folder(folder)
    assert chk.weight_format == "gguf"
    assert any("GGUF" in p for p in chk.problems)


def test_incomplete_sharded_download(tmp_path, make_folder) -> None:
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


def test_remote_code_warning(tmp_path, make_folder) -> None:
    folder = make_folder(tmp_path / "m", extra_cfg={"auto_map": {"AutoModelForCausalLM": "x.Y"}})
    chk = check_folder(folder)
    assert chk.needs_remote_code
    assert TRUST_REMOTE_CODE_WARNING in chk.warnings
    info = model_sources.resolve(str(folder))
    assert info.needs_remote_code and "trust_remote_code" in remote_code_warning("x")


def test_bad_config_json(tmp_path, make_folder) -> None:
    folder = make_folder(tmp_path / "m")
    (folder / "config.json").write_text("{not json")
    assert any("not valid JSON" in p for p in check_folder(folder).problems)
