"""Unreachable services: Ollama down or hung, the Hub unreachable, a gated model without a token.

Each ends in a message that names the host or model and says what to do, within
a bounded time, and leaves the run's files as they were.  "Down" is a free
local port (nothing listening: refused at once); "hung" is a local server that
accepts connections and never answers (it stops by itself after a minute at
the latest).  The gated model is the real huggingface_hub error: the one HTTP
call `core/model/hub.py` makes is answered with the 403 the Hub sends, and
huggingface_hub's own `hf_raise_for_status` turns it into `GatedRepoError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from spark_tui.config import RunConfig
from spark_tui.core.base.errors import SparkError
from spark_tui.core.export import ollama
from spark_tui.core.export.modelfile import Modelfile
from spark_tui.core.model.folder import ModelSourceError
from spark_tui.core.model.sources import resolve
from spark_tui.core.train.preflight import PreflightError, preflight
from spark_tui.core.train.runs import Run, create_run

NOT_CACHED = "spark-tui-tests/not-a-cached-model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HungServer:
    """Accepts TCP connections on 127.0.0.1 and never answers; stops by itself."""

    def __init__(self, lifetime_s: float = 60.0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime_s
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)  # held open, never read, never answered
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.close()
        self.sock.close()

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def exported_run(spark_home, tmp_path) -> tuple[Run, Modelfile, Path]:
    """A run folder holding what the Deploy step leaves: a GGUF and its Modelfile."""
    run = create_run(RunConfig(name="deploy"))
    gguf = run.path / "gguf" / "deploy-q4_k_m.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 16)
    mf = Modelfile(
        from_="./gguf/deploy-q4_k_m.gguf",
        template="{{ .Prompt }}",
        stops=["<|im_end|>"],
        family="chatml",
    )
    return run, mf, mf.write(run.path / "Modelfile")


# ---------------------------------------------------------------- Ollama


def test_ollama_down_register_says_where_and_what_to_run(exported_run):
    run, mf, mf_path = exported_run
    before = _digests(run.path)
    host = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    res = ollama.register("deploy-test", mf, mf_path, host=host, use_cli=False, timeout=5)
    assert time.monotonic() - start < 10
    assert not res.registered
    assert host in res.message and "not reachable" in res.message
    assert (
        "ollama serve" in res.message and f"ollama create deploy-test -f {mf_path}" in res.message
    )
    assert _digests(run.path) == before


def test_ollama_down_chat_is_an_export_error_naming_the_host():
    host = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SparkError, match=f"not reachable at {host}.*ollama serve"):
        ollama.chat("deploy-test", "hi", host=host, timeout=5)


def test_ollama_hung_register_gives_up_in_bounded_time(exported_run):
    run, mf, mf_path = exported_run
    before = _digests(run.path)
    with HungServer() as srv:
        start = time.monotonic()
        res = ollama.register("deploy-test", mf, mf_path, host=srv.url, use_cli=False, timeout=2)
        took = time.monotonic() - start
    assert srv.accepted >= 1, "the request never reached the hung server"
    assert took < 10, took
    assert not res.registered
    assert srv.url in res.message and "did not answer in time" in res.message, res.message
    assert "ollama create deploy-test" in res.message
    assert _digests(run.path) == before


def test_ollama_hung_chat_is_an_export_error_in_bounded_time():
    with HungServer() as srv:
        start = time.monotonic()
        with pytest.raises(SparkError, match=f"not reachable at {srv.url}.*did not answer"):
            ollama.chat("deploy-test", "hi", host=srv.url, timeout=2)
        assert time.monotonic() - start < 10


def test_quick_questions_do_not_wait_the_upload_timeout(exported_run, monkeypatch):
    """With the default (upload-sized) timeout, a hung server is given up on quickly."""
    run, mf, mf_path = exported_run
    monkeypatch.setattr(ollama, "QUICK_TIMEOUT_S", 1.0)
    with HungServer() as srv:
        start = time.monotonic()
        res = ollama.register("deploy-test", mf, mf_path, host=srv.url, use_cli=False)
        assert time.monotonic() - start < 10
    assert not res.registered and "did not answer in time" in res.message


def test_every_ollama_request_has_a_connect_timeout():
    t = ollama._timeouts(None)
    assert t.connect == ollama.CONNECT_TIMEOUT_S and t.read is None
    t = ollama._timeouts(600.0)
    assert t.connect == ollama.CONNECT_TIMEOUT_S and t.read == 600.0
    assert ollama._timeouts(2.0).connect == 2.0


# ---------------------------------------------------------------- the Hub


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The Hub allowed (HF_HUB_OFFLINE unset), no token anywhere, an empty HF cache."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return constants


def _hub_at(monkeypatch, constants, url: str) -> None:
    """Point huggingface_hub's file URLs at `url`."""
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )


def _run_for(model_id: str, tmp_path: Path) -> Run:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n", encoding="utf-8")
    cfg = RunConfig(name="hub")
    cfg.model.id = model_id
    cfg.data.path = str(data)
    return create_run(cfg)


def _refused(run: Run, *words: str) -> str:
    before = _digests(run.path)
    with pytest.raises(PreflightError) as ei:
        preflight(run.config(), source=run.config_path)
    for w in words:
        assert w in str(ei.value), str(ei.value)
    assert ei.value.setting == "model.id"
    assert _digests(run.path) == before
    return str(ei.value)


def test_hub_offline_model_step_and_preflight_say_so(spark_home, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    info = resolve(NOT_CACHED)
    text = " ".join(info.messages)
    assert info.arch is None and "offline" in text.lower() and "not downloaded" in text, text
    _refused(
        _run_for(NOT_CACHED, tmp_path),
        NOT_CACHED,
        "not in the Hugging Face cache",
        "HF_HUB_OFFLINE",
    )


def test_hub_down_model_step_and_preflight_say_so(spark_home, online, monkeypatch, tmp_path):
    host = f"http://127.0.0.1:{_free_port()}"
    _hub_at(monkeypatch, online, host)
    start = time.monotonic()
    info = resolve(NOT_CACHED, timeout=2)
    assert time.monotonic() - start < 5
    text = " ".join(info.messages)
    assert "could not be reached" in text and "no memory estimate" in text, text
    _refused(_run_for(NOT_CACHED, tmp_path), NOT_CACHED, "the Hub cannot be reached", "hf download")


def test_hub_hung_model_step_gives_up_in_bounded_time(spark_home, online, monkeypatch):
    with HungServer() as srv:
        _hub_at(monkeypatch, online, srv.url)
        start = time.monotonic()
        info = resolve(NOT_CACHED, timeout=1.5)
        took = time.monotonic() - start
    assert took < 8, took
    assert srv.accepted >= 1
    assert "could not be reached" in " ".join(info.messages)


def _hub_answers(monkeypatch, status: int, headers: dict[str, str]) -> list[str]:
    """The one request `hub._http_get_config` sends gets this answer; returns the URLs asked."""
    import httpx2
    import huggingface_hub

    asked: list[str] = []

    class Session:
        def get(self, url, **kwargs):
            asked.append(url)
            return httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))

    monkeypatch.setattr(huggingface_hub, "get_session", lambda: Session())
    return asked


GATED = {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model x is restricted."}


def test_the_simulated_answer_is_what_huggingface_hub_raises_for_a_gated_repo():
    import httpx2
    from huggingface_hub import errors
    from huggingface_hub.utils import hf_raise_for_status

    url = "https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json"
    resp = httpx2.Response(403, headers=GATED, request=httpx2.Request("GET", url))
    with pytest.raises(errors.GatedRepoError) as ei:
        hf_raise_for_status(resp)
    assert isinstance(ei.value, errors.RepositoryNotFoundError)  # the order of excepts matters
    assert isinstance(ei.value, errors.HfHubHTTPError)


# The Hub answers 401 to a gated repo asked without a token, 403 with a token not (yet) let in.
@pytest.mark.parametrize("status", [401, 403])
def test_a_gated_model_without_a_token_says_how_to_get_access(
    spark_home, online, monkeypatch, tmp_path, status
):
    repo = "spark-tui-tests/gated-model"
    asked = _hub_answers(monkeypatch, status, GATED)
    info = resolve(repo)
    assert asked and asked[0].endswith("/config.json")
    assert info.gated is True
    text = " ".join(info.messages)
    assert f"{repo} is gated" in text and "HF_TOKEN" in text and "No token was found" in text
    msg = _refused(_run_for(repo, tmp_path), f"{repo} is gated", "hf auth login")
    assert f"https://huggingface.co/{repo}" in msg


def test_a_model_the_hub_does_not_have_is_named(spark_home, online, monkeypatch, tmp_path):
    repo = "spark-tui-tests/no-such-model"
    _hub_answers(monkeypatch, 404, {"X-Error-Code": "RepoNotFound"})
    with pytest.raises(ModelSourceError, match=f"no model {repo} on the Hugging Face Hub"):
        resolve(repo)
    _refused(_run_for(repo, tmp_path), f"no model {repo}", "hf auth login")


def test_a_hub_dataset_offline_is_a_data_error(monkeypatch, tmp_path):
    from spark_tui.core.data import DataError, load_source

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds-cache"))
    cfg = RunConfig()
    cfg.data.path = "spark-tui-tests/not-a-cached-dataset"
    with pytest.raises(PreflightError, match="not in the local cache and HF_HUB_OFFLINE is set"):
        preflight(cfg)
    with pytest.raises(DataError, match="not in the local Hugging Face cache"):
        load_source(cfg.data.path)
