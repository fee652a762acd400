"""A tiny local stand-in for the Hugging Face Hub's HTTP API, so huggingface_hub runs for real.

It answers the requests a `snapshot_download` of a model makes: the repo listing
(`/api/models/<repo>[/revision/<rev>]` and its `/tree/<rev>`, with file sizes) and HEAD / GET of
`/<repo>/resolve/<rev>/<file>` with the headers huggingface_hub reads (commit, ETag,
size).  Big files are sent in slices with a pause between them, so a download lasts
long enough for progress to be seen moving.  Run as a script it serves until killed and
prints its port:  python fakehub.py REPO_ID
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SHA = "0123456789abcdef0123456789abcdef01234567"
SLICE = 256 * 1024


def llama_like_files(weight_bytes: int = 3 * 1024 * 1024) -> dict[str, bytes]:
    """A Llama 3.1-style repo: config, tokenizer, two safetensors shards, the originals."""
    half = weight_bytes // 2
    return {
        "config.json": json.dumps({"model_type": "llama"}).encode(),
        "generation_config.json": b"{}",
        "model.safetensors.index.json": b'{"weight_map": {}}',
        "model-00001-of-00002.safetensors": b"\1" * half,
        "model-00002-of-00002.safetensors": b"\2" * (weight_bytes - half),
        "tokenizer.json": b"{}",
        "tokenizer_config.json": b"{}",
        "special_tokens_map.json": b"{}",
        "README.md": b"# model",
        "LICENSE": b"licence",
        "original/consolidated.00.pth": b"\3" * 4096,
        "original/params.json": b"{}",
    }


class Hub:
    def __init__(self, repo_id: str, files: dict[str, bytes], pause_s: float = 0.12) -> None:
        self.repo_id, self.files, self.pause_s = repo_id, files, pause_s
        self.fetched: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Hub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _handler(self) -> Any:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _file(self) -> str | None:
                prefix = f"/{hub.repo_id}/resolve/"
                path = self.path.split("?", 1)[0]
                if not path.startswith(prefix):
                    return None
                name = path[len(prefix) :].split("/", 1)[-1]
                return name if name in hub.files else None

            def _headers(self, name: str) -> None:
                data = hub.files[name]
                self.send_response(200)
                self.send_header("X-Repo-Commit", SHA)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()

            def do_HEAD(self) -> None:
                name = self._file()
                if name is None:
                    self.send_error(404)
                    return
                self._headers(name)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.startswith(f"/api/models/{hub.repo_id}"):
                    if "/tree/" in path:  # list_repo_tree (recursive), one page
                        listing: Any = [
                            {"type": "file", "path": n, "size": len(d),
                             "oid": hashlib.sha1(d).hexdigest()}
                            for n, d in hub.files.items()
                        ]  # fmt: skip
                    else:  # model_info / repo_info
                        listing = {
                            "id": hub.repo_id, "sha": SHA, "private": False,
                            "siblings": [{"rfilename": n, "size": len(d)}
                                         for n, d in hub.files.items()],
                        }  # fmt: skip
                    body = json.dumps(listing).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                name = self._file()
                if name is None:
                    self.send_error(404)
                    return
                hub.fetched.append(name)
                self._headers(name)
                data = hub.files[name]
                for i in range(0, len(data), SLICE):
                    self.wfile.write(data[i : i + SLICE])
                    self.wfile.flush()
                    if len(data) > SLICE:
                        time.sleep(hub.pause_s)

        return Handler


if __name__ == "__main__":
    hub = Hub(sys.argv[1], llama_like_files()).start()
    print(hub.port, flush=True)
    threading.Event().wait()
