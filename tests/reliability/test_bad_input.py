"""Bad config and bad data: a clear error before any process starts, the run's files kept.

A `run.toml` with a typo, a wrong type, a value out of range; a data file moved
since the run stored its absolute path; a model folder without weights or with
missing shards.  `RunConfig.load` refuses the first kind, `preflight` the rest;
`start_training` calls both before it launches anything.  The launcher is
replaced by a tripwire here, so a test fails loudly if a process would start.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_tui.config import ConfigError, RunConfig, known_keys
from spark_tui.core.base import names
from spark_tui.core.base.errors import SparkError
from spark_tui.core.train import process
from spark_tui.core.train.preflight import PreflightError, preflight
from spark_tui.core.train.runs import Run, create_run


def _data_file(folder: Path, rows: int = 6) -> Path:
    path = folder / "data.jsonl"
    lines = [json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _model_folder(folder: Path, *, weights: bool = True) -> Path:
    """A folder with what `check_folder` looks for (tiny stand-in files, no real model)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    if weights:
        (folder / "model.safetensors").write_bytes(b"\0" * 16)
    return folder


def _files(run: Run) -> dict[str, str]:
    """Every file of the run folder with its SHA-256: what 'the run's files are kept' means."""
    return {
        str(p.relative_to(run.path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.path.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def no_launch(monkeypatch):
    """Fail the test if anything would start a process."""

    def tripwire(*args, **kwargs):
        raise AssertionError(f"a process was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", tripwire)
    monkeypatch.setattr(subprocess, "Popen", tripwire)


def _refused_before_launch(run: Run, *words: str) -> str:
    """start_training refuses `run` with a SparkError holding `words`; nothing else changes."""
    before = _files(run)
    state = run.status().get("state")
    with pytest.raises(SparkError) as ei:
        process.start_training(run)
    msg = str(ei.value)
    for w in words:
        assert w in msg, msg
    assert run.status().get("state") == state and not run.status().get("pid")
    assert _files(run) == before, "the refusal changed the run's files"
    return msg


# ---------------------------------------------------------------- run.toml


BAD_TOML = [
    (
        "[train]\nlearning_rat = 1e-4\n",
        ["train.learning_rat", "did you mean 'train.learning_rate'"],
    ),
    ("[trian]\nmax_steps = 3\n", ["'trian'", "did you mean 'train'"]),
    ("[train]\nr = 8\n", ["'train.r'", "'lora.r'"]),
    ("[model]\ntoken = 'hf_x'\n", ["unknown key 'model.token'"]),
    ("[train]\nmicro_batch_size = '4'\n", ["train.micro_batch_size", "'4'", "integer"]),
    ("[train]\ngradient_checkpointing = 1\n", ["train.gradient_checkpointing", "'auto', 'on', 'off'"]),
    ("[train]\npacking = 1\n", ["train.packing", "true or false"]),
    ("[data]\ndrop = 'too_long'\n", ["data.drop", "a list of a string"]),
    ("[data]\ncolumn_map = { q = 1 }\n", ["data.column_map", "a table of strings"]),
    ("train = 3\n", ["'train' must be a table"]),
    ("[method]\nobjective = 'ppo'\n", ["method.objective", "'ppo'", "'sft'"]),
    ("[train]\nlearning_rate = 0.0\n", ["train.learning_rate", "out of range", "1e-09 .. 10.0"]),
    ("[lora]\ndropout = 2\n", ["lora.dropout", "2.0", "0.0 .. 0.9"]),
    ("[train]\nlearning_rate = nan\n", ["train.learning_rate", "nan", "finite"]),
    ("[data]\nval_fraction = inf\n", ["data.val_fraction", "inf"]),
    ("[train]\nseed = -1\n", ["train.seed", "-1", "0 .. 4294967295"]),
    ("[train]\nmax_steps = 0\n", ["train.max_steps", "trains nothing"]),
    ("[train]\nmax_steps = -5\n", ["train.max_steps", "-1 .. inf"]),
    ("[train]\nepochs = 0\n", ["train.epochs", "trains nothing"]),
    ("[preference]\nsimpo_beta = -2.0\n", ["preference.simpo_beta", "out of range"]),
    ("[train\nmax_steps = 3\n", ["not valid TOML"]),
]


@pytest.mark.parametrize(("text", "words"), BAD_TOML, ids=[t for t, _ in BAD_TOML])
def test_a_bad_run_toml_is_refused_naming_the_key(spark_home, no_launch, tmp_path, text, words):
    run = create_run(RunConfig(name="bad-toml"))
    run.config_path.write_text(text, encoding="utf-8")
    msg = _refused_before_launch(run, str(run.config_path), *words)
    assert "Traceback" not in msg


KEYS = known_keys()
_value = st.one_of(
    st.none().map(lambda _: "x"),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.text(max_size=4), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)
_key = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS).map(lambda k: k[:-1] or "x"))


@settings(max_examples=200, deadline=None, database=None)
@given(st.dictionaries(_key, _value, max_size=6))
def test_any_toml_document_loads_or_raises_config_error(settings_):
    doc: dict = {}
    for dotted, value in settings_.items():
        *tables, leaf = dotted.split(".")
        node = doc
        for t in tables:
            node = node.setdefault(t, {}) if isinstance(node.get(t, {}), dict) else {}
        node[leaf] = value
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return
    try:
        RunConfig.from_toml(text)
    except ConfigError as exc:
        assert str(exc).startswith("run.toml: ")


# ---------------------------------------------------------------- data and model paths


def test_a_moved_data_file_is_named_with_the_absolute_path_note(spark_home, no_launch, tmp_path):
    data = _data_file(tmp_path)
    cfg = RunConfig(name="moved-data")
    cfg.data.path = str(data)
    run = create_run(cfg)
    assert run.config().data.path == str(data.resolve())  # stored absolute
    data.rename(tmp_path / "elsewhere.jsonl")
    msg = _refused_before_launch(run, str(data), "data.path", "absolute path")
    assert str(run.config_path) in msg


def test_a_missing_validation_file_is_named(spark_home, no_launch, tmp_path):
    cfg = RunConfig(name="moved-val")
    cfg.data.path = str(_data_file(tmp_path))
    cfg.data.validation_path = str(tmp_path / "val.jsonl")
    run = create_run(cfg)
    _refused_before_launch(run, "data.validation_path", str(tmp_path / "val.jsonl"))


@pytest.mark.parametrize(
    ("content", "name", "words"),
    [
        (b"", "empty.jsonl", "empty"),
        (b"  \n\n", "blank.csv", "empty"),
        (b"\x00\x01", "blob.bin", "unknown file type .bin"),
    ],
)
def test_an_unreadable_data_file_is_refused(spark_home, no_launch, tmp_path, content, name, words):
    path = tmp_path / name
    path.write_bytes(content)
    cfg = RunConfig(name="bad-data")
    cfg.data.path = str(path)
    run = create_run(cfg)
    _refused_before_launch(run, str(path), words)
    assert path.read_bytes() == content


def test_a_folder_that_is_not_a_dataset_is_refused(spark_home, no_launch, tmp_path):
    folder = tmp_path / "just-a-folder"
    folder.mkdir()
    cfg = RunConfig(name="folder")
    cfg.data.path = str(folder)
    run = create_run(cfg)
    _refused_before_launch(run, str(folder), "save_to_disk")


def test_a_model_folder_without_weights_names_what_is_missing(spark_home, no_launch, tmp_path):
    model = _model_folder(tmp_path / "my-model", weights=False)
    cfg = RunConfig(name="no-weights")
    cfg.model.id = str(model)
    cfg.data.path = str(_data_file(tmp_path))
    run = create_run(cfg)
    _refused_before_launch(run, "model.id", str(model), "no weights", "*.safetensors")


def test_a_model_folder_with_missing_shards_names_them(spark_home, no_launch, tmp_path):
    model = _model_folder(tmp_path / "sharded", weights=False)
    (model / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 16)
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    cfg = RunConfig(name="shards")
    cfg.model.id = str(model)
    cfg.data.path = str(_data_file(tmp_path))
    run = create_run(cfg)
    _refused_before_launch(run, "model-00002-of-00002.safetensors", "incomplete")


def test_a_moved_model_folder_is_named(spark_home, no_launch, tmp_path):
    model = _model_folder(tmp_path / "model-a")
    cfg = RunConfig(name="moved-model")
    cfg.model.id = str(model)
    cfg.data.path = str(_data_file(tmp_path))
    run = create_run(cfg)
    model.rename(tmp_path / "model-b")
    _refused_before_launch(run, "model.id", str(model), "does not exist", "absolute path")


def test_a_method_that_cannot_train_the_objective_is_refused(spark_home, no_launch):
    cfg = RunConfig(name="combo")
    cfg.method.objective = "dpo"
    cfg.method.adapter = "prompt_tuning"
    run = create_run(cfg)
    _refused_before_launch(run, "method.adapter", "SFT only")


def test_a_good_local_run_passes_without_the_network(monkeypatch, tmp_path):
    import socket

    def no_network(*a, **k):
        raise AssertionError("preflight used the network for a local model")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    cfg = RunConfig()
    cfg.model.id = str(_model_folder(tmp_path / "m"))
    cfg.data.path = str(_data_file(tmp_path))
    preflight(cfg)
    cfg.model.id = "default"
    cfg.data.path = "default"
    preflight(cfg)


def test_resume_needs_only_the_prepared_copy(tmp_path):
    """A resume trains on `<run>/data`: a source deleted since is no reason to refuse it."""
    cfg = RunConfig()
    cfg.data.path = str(tmp_path / "gone.jsonl")
    data_dir = tmp_path / "run" / "data"
    with pytest.raises(PreflightError, match="gone.jsonl"):
        preflight(cfg, prepared=data_dir)
    data_dir.mkdir(parents=True)
    for name in (names.DATA_SOURCES, names.DATA_REPORT, "dataset_dict.json"):
        (data_dir / name).write_text("{}")
    preflight(cfg, prepared=data_dir)


def test_preflight_is_fast_and_imports_no_heavy_library(tmp_path):
    model = _model_folder(tmp_path / "m")
    data = _data_file(tmp_path)
    code = (
        "import sys, time\n"
        "from spark_tui.config import RunConfig\n"
        "from spark_tui.core.train.preflight import preflight\n"
        f"cfg = RunConfig(); cfg.model.id = {str(model)!r}; cfg.data.path = {str(data)!r}\n"
        "t = time.perf_counter(); preflight(cfg); dt = time.perf_counter() - t\n"
        "heavy = sorted({'torch', 'transformers', 'datasets', 'trl', 'peft'} & set(sys.modules))\n"
        "print(dt, heavy)\n"
    )
    out = subprocess.check_output([sys.executable, "-c", code], text=True, timeout=60)
    seconds, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]", heavy
    assert float(seconds) < 1.0, seconds
