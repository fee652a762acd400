"""The exported default model in a real Ollama server, registered both ways.

A private ``ollama serve`` is started on a free loopback port with its own
OLLAMA_MODELS and HOME (the user's Ollama is never touched).  Nothing may leave
the machine: the server binds 127.0.0.1, Ollama's cloud features are off
(OLLAMA_NO_CLOUD) and every proxy variable points at a closed loopback port, so
an outbound request would fail at 127.0.0.1 instead of reaching the network;
the server log is checked for outbound dials at the end.

The binary: ``ollama`` on PATH, else the project's CPU build in
``../shared/bin`` (with ``../shared/lib/ollama`` beside it).  Without one the
tests skip.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
QUESTION = "What is the capital of France? Answer in one word."
NUM_PREDICT = 128
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: closed, and on loopback


def _binary() -> str | None:
    found = shutil.which("ollama")
    if found:
        return found
    shared = ROOT.parent / "shared" / "bin" / "ollama"
    return str(shared) if shared.is_file() and os.access(shared, os.X_OK) else None


OLLAMA = _binary()
if OLLAMA is None:
    pytest.skip(
        "no `ollama` binary (not on PATH, no ../shared/bin/ollama)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, timeout: float = 300.0):
    import httpx

    return httpx.Client(base_url=url, timeout=timeout, trust_env=False)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server by its pid: terminate, wait, then kill its process group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group we created: runners too
            proc.wait(timeout=20)


class Server:
    def __init__(self, url: str, log: Path):
        self.url = url
        self.log = log

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture(scope="module")
def ollama_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("ollama")
    (work / "models").mkdir()
    (work / "home").mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env.update(
        OLLAMA_HOST=f"127.0.0.1:{port}",
        OLLAMA_MODELS=str(work / "models"),
        HOME=str(work / "home"),
        OLLAMA_NO_CLOUD="1",
        OLLAMA_KEEP_ALIVE="10m",
        OLLAMA_DEBUG="1",  # logs the length of each rendered prompt (prompt_len=N)
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        ALL_PROXY=DEAD_PROXY,
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = work / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [OLLAMA, "serve"],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    server = Server(url, log)
    try:
        deadline = time.monotonic() + 60
        with _http(url, timeout=2) as http:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"ollama serve exited with {proc.returncode}:\n{server.log_tail()}")
                with contextlib.suppress(Exception):
                    if http.get("/api/version").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"ollama serve did not answer in 60 s:\n{server.log_tail()}")
                time.sleep(0.3)
        yield server
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert f"127.0.0.1:{port}" in text  # "Listening on 127.0.0.1:PORT": loopback only
    outbound = [
        ln
        for ln in text.splitlines()
        if re.search(r"dial tcp:? (?!127\.0\.0\.1:)|lookup \S+ on ", ln)
    ]
    assert not outbound, "the Ollama server tried to reach the network:\n" + "\n".join(outbound)


@pytest.fixture(scope="module")
def exported(default_export, default_model_dir, tmp_path_factory):
    """(gguf path, Modelfile, its path, safetensors Modelfile, its path) for the default model."""
    from spark_tui.core.export.pipeline import write_modelfiles

    qtype = next(t for t in ("q4_k_m", "q8_0", "f16") if t in default_export.outputs)
    gguf = Path(default_export.outputs[qtype])
    folder = tmp_path_factory.mktemp("ollama-deploy")
    mf, mf_path, st, st_path = write_modelfiles(default_model_dir, folder, gguf, num_ctx=2048)
    return gguf, mf, mf_path, st, st_path


def _chat(server: Server, name: str) -> tuple[dict, float]:
    body = {
        "model": name,
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": False,
        "options": {"temperature": 0, "num_predict": NUM_PREDICT},
    }
    start = time.monotonic()
    with _http(server.url) as http:
        r = http.post("/api/chat", json=body)
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{server.log_tail()}"
    return r.json(), time.monotonic() - start


def _show(server: Server, name: str) -> dict:
    with _http(server.url) as http:
        r = http.post("/api/show", json={"model": name})
    assert r.status_code == 200, r.text
    return r.json()


def _check_model(server: Server, name: str, mf) -> str:
    """The chat answer ends by itself; /api/show holds what we sent."""
    from spark_tui.core.export.ollama import parse_parameters

    reply, secs = _chat(server, name)
    answer = reply["message"]["content"].strip()
    print(
        f"{name}: {answer!r} done_reason={reply.get('done_reason')} eval_count="
        f"{reply.get('eval_count')} in {secs:.1f} s"
    )
    assert reply.get("done_reason") == "stop", f"{name} did not stop by itself: {reply}"
    assert answer, f"{name} gave an empty answer: {reply}"
    assert "paris" in answer.lower(), answer

    shown = _show(server, name)
    assert shown["template"] == mf.template
    assert shown.get("system") == mf.system
    params = parse_parameters(shown["parameters"])
    assert params["stop"] == mf.stops
    assert params["num_ctx"] == mf.num_ctx
    return answer


def test_register_gguf_with_cli_and_api(ollama_server, exported):
    from spark_tui.core.export.ollama import register

    gguf, mf, mf_path, _st, _st_path = exported
    digest = "sha256:" + hashlib.sha256(gguf.read_bytes()).hexdigest()
    for name, use_cli in (("spark-tui-test-cli", True), ("spark-tui-test-api:v1", False)):
        start = time.monotonic()
        res = register(
            name,
            mf,
            mf_path,
            host=ollama_server.url,
            use_cli=use_cli,
            ollama_bin=OLLAMA,
            test_prompt=QUESTION,
        )
        print(f"{name}: registered by {res.method} in {time.monotonic() - start:.1f} s")
        assert res.registered, f"{res.message}\n{ollama_server.log_tail()}"
        assert res.method == ("cli" if use_cli else "api")
        assert res.warnings == []  # /api/show kept our TEMPLATE and stops
        assert res.done_reason == "stop" and res.answer
        if not use_cli:
            assert res.files == {gguf.name: digest}
        _check_model(ollama_server, name, mf)
        assert _show(ollama_server, name)["details"]["format"] == "gguf"


def test_register_safetensors_folder_with_quantize(ollama_server, exported):
    """FROM the HF folder through the API: every file uploaded, `quantize` honoured."""
    from spark_tui.core.export.ollama import register

    _gguf, _mf, _mf_path, st, st_path = exported
    assert st is not None, "Ollama imports Llama safetensors folders itself"
    assert st.quantize == "q4_K_M"
    res = register(
        "spark-tui-test-st", st, st_path, host=ollama_server.url, use_cli=False, test_prompt=None
    )
    assert res.registered, f"{res.message}\n{ollama_server.log_tail()}"
    assert "model.safetensors" in res.files and "config.json" in res.files
    assert _show(ollama_server, "spark-tui-test-st")["details"]["quantization_level"] == "Q4_K_M"
    _check_model(ollama_server, "spark-tui-test-st", st)


def test_every_template_family_renders_like_jinja_in_ollama(ollama_server, exported):
    """Ollama's own Go template engine renders each family's TEMPLATE to the jinja's text.

    Ollama does not return the rendered prompt, but with OLLAMA_DEBUG it logs its
    length; that must equal the length of transformers' rendering for a multi-turn
    chat with a system prompt (gotemplate.py checks the text itself, offline).
    """
    from test_modelfile import CASES, THREE_TURNS, jinja_render, make_tokenizer

    from spark_tui.core.export.modelfile import build_modelfile
    from spark_tui.core.export.ollama import upload_blob

    gguf = exported[0]
    chat = THREE_TURNS
    with _http(ollama_server.url) as http:
        for case, jinja, bos, eos, family, system_ok in CASES:
            # again each time: deleting the last model that uses a blob prunes it
            digest = upload_blob(http, gguf)
            tok = make_tokenizer(jinja, bos, eos)
            mf = build_modelfile(f"./{gguf.name}", tok)
            assert mf.family == family
            conv = chat if system_ok else chat[1:]
            want = jinja_render(tok, conv)
            name = "spark-tui-tpl-" + case.replace(".", "-")
            body = {
                "model": name,
                "files": {gguf.name: digest},
                "template": mf.template,
                "system": mf.system,
                "parameters": mf.api_parameters(),
                "stream": False,
            }
            r = http.post("/api/create", json=body)
            assert r.status_code == 200 and r.json().get("status") == "success", r.text
            seen = len(_prompt_lengths(ollama_server))
            opts = {"temperature": 0, "num_predict": 1}
            r = http.post(
                "/api/chat",
                json={"model": name, "messages": conv, "stream": False, "options": opts},
            )
            assert r.status_code == 200, f"{case}: {r.text}\n{ollama_server.log_tail()}"
            http.request("DELETE", "/api/delete", json={"model": name})
            lengths = _prompt_lengths(ollama_server)[seen:]
            if not lengths:
                pytest.skip("this Ollama build does not log prompt_len with OLLAMA_DEBUG=1")
            assert lengths[-1] == len(want), f"{case}: Ollama rendered {lengths[-1]} chars"


def _prompt_lengths(server: Server) -> list[int]:
    text = server.log.read_text(errors="replace")
    return [int(n) for n in re.findall(r"completion request.*?prompt_len=(\d+)", text)]
