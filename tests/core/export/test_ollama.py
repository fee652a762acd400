"""Ollama registration: API contract against a local fake server, CLI fallback.

The real server is exercised in test_ollama_real.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spark_tui.core.export.modelfile import build_modelfile
from spark_tui.core.export.ollama import (
    create_command,
    is_loopback,
    parse_parameters,
    register,
    resolve_host,
)


class FakeOllama:
    """The documented blob / create / chat endpoints, recording what they were sent."""

    def __init__(self):
        self.blobs: dict[str, bytes] = {}
        self.creates: list[dict] = []
        self.chats: list[dict] = []
        self.bad_digests: list[str] = []
        self.blob_posts = 0
        self.stored_template: str | None = None  # set to mimic a server that changed it
        self.done_reason = "stop"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return data
                        data += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reply(self, code: int, obj=None):
                body = b"" if obj is None else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body and self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                if self.path.startswith("/api/blobs/"):
                    digest = self.path.rsplit("/", 1)[1]
                    return self._reply(200 if digest in outer.blobs else 404)
                self._reply(404)

            def do_GET(self):
                if self.path == "/api/tags":
                    return self._reply(200, {"models": []})
                self._reply(404, {"error": "not found"})

            def do_POST(self):
                body = self._body()
                if self.path.startswith("/api/blobs/sha256:"):
                    digest = self.path.rsplit("/", 1)[1]
                    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
                        outer.bad_digests.append(digest)
                        return self._reply(400, {"error": "digest mismatch"})
                    outer.blobs[digest] = body
                    outer.blob_posts += 1
                    return self._reply(201)
                req = json.loads(body or b"{}")
                if self.path == "/api/create":
                    outer.creates.append(req)
                    missing = [d for d in req.get("files", {}).values() if d not in outer.blobs]
                    if missing:
                        return self._reply(400, {"error": f"missing blobs {missing}"})
                    return self._reply(200, {"status": "success"})
                if self.path == "/api/chat":
                    outer.chats.append(req)
                    return self._reply(
                        200,
                        {
                            "model": req["model"],
                            "created_at": "2026-11-26T00:00:00Z",
                            "message": {"role": "assistant", "content": " Paris. "},
                            "done": True,
                            "done_reason": outer.done_reason,
                        },
                    )
                if self.path == "/api/show":
                    made = [c for c in outer.creates if c["model"] == req.get("model")]
                    if not made:
                        return self._reply(404, {"error": "model not found"})
                    params = made[-1].get("parameters", {})
                    lines = [f"stop {json.dumps(s)}" for s in params.get("stop", [])]
                    lines += [f"{k} {v}" for k, v in params.items() if k != "stop"]
                    return self._reply(
                        200,
                        {
                            "template": outer.stored_template or made[-1].get("template"),
                            "system": made[-1].get("system"),
                            "parameters": "\n".join(lines),
                            "details": {"format": "gguf", "quantization_level": "Q4_K_M"},
                        },
                    )
                if self.path == "/api/generate":
                    return self._reply(
                        200,
                        {
                            "model": req["model"],
                            "created_at": "2026-11-26T00:00:00Z",
                            "response": "Paris.",
                            "done": True,
                        },
                    )
                self._reply(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chatml_tokenizer():
    from test_modelfile import SMOLLM2_TEMPLATE, make_tokenizer

    return make_tokenizer(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>")


def _sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_api_contract_gguf(tmp_path, chatml_tokenizer):
    gguf = tmp_path / "gguf" / "run-q4_k_m.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 300)
    mf = build_modelfile(
        "./gguf/run-q4_k_m.gguf", chatml_tokenizer, system="Be brief.", num_ctx=2048
    )
    mf_path = mf.write(tmp_path / "Modelfile")
    with FakeOllama() as srv:
        res = register("tiny-test:latest", mf, mf_path, host=srv.url, use_cli=False)
    assert res.registered and res.method == "api", res.message
    assert res.answer == "Paris."
    assert not srv.bad_digests
    assert len(srv.creates) == 1
    req = srv.creates[0]
    assert req["model"] == "tiny-test:latest"
    assert req["files"] == {"run-q4_k_m.gguf": _sha(gguf)}  # digest matches the file
    assert srv.blobs[_sha(gguf)] == gguf.read_bytes()
    assert req["template"] == mf.template and "<|im_start|>" in req["template"]
    assert "<|im_end|>" in req["parameters"]["stop"]
    assert req["parameters"]["num_ctx"] == 2048
    assert req["system"] == "Be brief."
    assert "modelfile" not in req  # the old field is gone since Ollama 0.5.6
    assert srv.chats and srv.chats[0]["messages"][0]["role"] == "user"


def test_api_contract_safetensors_folder(tmp_path, chatml_tokenizer):
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (merged / "model.safetensors").write_bytes(b"\x00" * 4096)
    (merged / "tokenizer.json").write_text("{}")
    (merged / "merge_report.json").write_text("{}")
    mf = build_modelfile("./merged", chatml_tokenizer, quantize="q4_K_M")
    mf_path = mf.write(tmp_path / "Modelfile.safetensors")
    assert mf.text().startswith("FROM ./merged\n")
    with FakeOllama() as srv:
        res = register("tiny-st", mf, mf_path, host=srv.url, use_cli=False, test_prompt=None)
    assert res.registered
    req = srv.creates[0]
    assert set(req["files"]) == {"config.json", "model.safetensors", "tokenizer.json"}
    assert req["files"]["model.safetensors"] == _sha(merged / "model.safetensors")
    assert req["quantize"] == "q4_K_M"
    assert res.command[-2:] == ["--quantize", "q4_K_M"]


def test_unreachable_keeps_files_and_says_what_to_run(tmp_path, chatml_tokenizer):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    mf = build_modelfile("./m.gguf", chatml_tokenizer)
    mf_path = mf.write(tmp_path / "Modelfile")
    res = register("tiny", mf, mf_path, host="http://127.0.0.1:9", use_cli=False)
    assert not res.registered
    assert "not reachable" in res.message and "ollama create tiny -f" in res.message
    assert (
        res.command
        == create_command("tiny", mf_path)
        == ["ollama", "create", "tiny", "-f", str(mf_path)]
    )
    assert gguf.exists() and mf_path.exists()


def test_bad_name_is_refused(tmp_path, chatml_tokenizer):
    from spark_tui.core.base.errors import SparkError

    mf = build_modelfile("./m.gguf", chatml_tokenizer)
    with pytest.raises(SparkError, match="not a valid Ollama model name"):
        register("bad name!", mf, tmp_path / "Modelfile", use_cli=False)


def test_cli_ollama_via_api(llama3_export, llama3_dir, tmp_path, capsys):
    from spark_tui.cli import main

    out = tmp_path / "deploy"
    out.mkdir()
    shutil.copy(llama3_export.outputs["f16"], out / f"{llama3_dir.name}-f16.gguf")
    with FakeOllama() as srv:
        rc = main(
            [
                "ollama",
                "--model-dir",
                str(llama3_dir),
                "--out",
                str(out),
                "--type",
                "f16",
                "--name",
                "tiny-llama3",
                "--host",
                srv.url,
                "--api",
                "--json",
            ]
        )
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and info["registered"] and info["answer"] == "Paris."
    text = (out / "Modelfile").read_text()
    assert text.startswith(f"FROM ./{llama3_dir.name}-f16.gguf")
    assert "<|start_header_id|>" in text and 'PARAMETER stop "<|eot_id|>"' in text
    assert (out / "Modelfile.safetensors").exists()  # Llama: Ollama can import the folder too
    assert srv.creates[0]["files"] == {
        f"{llama3_dir.name}-f16.gguf": _sha(out / f"{llama3_dir.name}-f16.gguf")
    }


def test_blobs_the_server_has_are_not_uploaded_again(tmp_path, chatml_tokenizer):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 50)
    mf = build_modelfile("./m.gguf", chatml_tokenizer)
    mf_path = mf.write(tmp_path / "Modelfile")
    seen: list[tuple[str, int, int]] = []
    with FakeOllama() as srv:
        for name in ("first", "second"):
            res = register(
                name,
                mf,
                mf_path,
                host=srv.url,
                use_cli=False,
                test_prompt=None,
                progress=lambda *a: seen.append(a),
            )
            assert res.registered and res.warnings == [], res.summary_lines()
    assert srv.blob_posts == 1  # HEAD said the second time that the blob is there
    size = gguf.stat().st_size
    assert seen[-1] == ("upload", size, size)


def test_loopback_requests_ignore_proxy_settings(tmp_path, chatml_tokenizer, monkeypatch):
    """A corporate HTTP(S)_PROXY must not swallow requests to a local Ollama."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    mf = build_modelfile("./m.gguf", chatml_tokenizer)
    mf_path = mf.write(tmp_path / "Modelfile")
    with FakeOllama() as srv:
        res = register("proxied", mf, mf_path, host=srv.url, use_cli=False)
    assert res.registered and res.answer == "Paris.", res.message


def test_a_rambling_answer_and_a_changed_template_are_reported(tmp_path, chatml_tokenizer):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    mf = build_modelfile("./m.gguf", chatml_tokenizer)
    mf_path = mf.write(tmp_path / "Modelfile")
    with FakeOllama() as srv:
        srv.done_reason = "length"
        srv.stored_template = "{{ .Prompt }}"
        res = register("rambler", mf, mf_path, host=srv.url, use_cli=False)
    assert res.registered and res.done_reason == "length"
    text = "\n".join(res.summary_lines())
    assert "did not end by itself" in text and "different TEMPLATE" in text


def test_missing_from_file_is_refused_before_ollama_is_asked(tmp_path, chatml_tokenizer):
    from spark_tui.core.base.errors import SparkError

    mf = build_modelfile("./absent.gguf", chatml_tokenizer)
    mf_path = mf.write(tmp_path / "Modelfile")
    with pytest.raises(SparkError, match="FROM does not exist"):
        register("x", mf, mf_path, host="http://127.0.0.1:9", use_cli=False)


@pytest.mark.parametrize(
    "given,want",
    [
        (None, "http://127.0.0.1:11434"),
        ("127.0.0.1:18434", "http://127.0.0.1:18434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("http://localhost", "http://localhost:80"),
        ("https://ollama.example.org/", "https://ollama.example.org:443"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_host_resolution(given, want, monkeypatch):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    assert resolve_host(given) == want


def test_host_from_environment_and_loopback(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:12345")
    assert resolve_host(None) == "http://127.0.0.1:12345"
    assert is_loopback("http://127.0.0.1:1") and is_loopback("http://[::1]:1")
    assert is_loopback("http://localhost:1") and not is_loopback("http://10.0.0.2:11434")


def test_show_parameters_are_parsed():
    text = (
        'num_ctx                        4096\nstop                           "<|im_start|>"\n'
        'stop                           "say \\"hi\\""\ntemperature                    0.2'
    )
    assert parse_parameters(text) == {
        "num_ctx": 4096,
        "stop": ["<|im_start|>", 'say "hi"'],
        "temperature": 0.2,
    }
