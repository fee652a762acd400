"""Register an exported model with Ollama and ask it a test question.

Two ways in, tried in this order:

1. the ``ollama`` CLI when it is on PATH (or given): ``ollama create NAME -f
   Modelfile [--quantize Q]`` (an argument list, never a shell string;
   ``OLLAMA_HOST`` passed through);
2. the REST API at ``--host`` / ``$OLLAMA_HOST``: each file is uploaded as a blob
   (``HEAD /api/blobs/sha256:<hex>``, then ``POST`` only when the server does not
   have it yet, streamed with progress), then the official ``ollama`` client's
   ``create(model=..., files=..., template=..., system=..., parameters=...,
   quantize=...)`` (``POST /api/create``).  The client's own ``create_blob``
   always re-uploads the whole file and reports no progress, which matters for a
   40 GB model, so the upload is done here.

``/api/show`` is read back to check that Ollama kept our TEMPLATE and stops;
then a test prompt goes through ``/api/chat``: ``done_reason == "length"``
means the model did not stop by itself (a template or stop-token problem).  If
Ollama is not installed or not reachable, nothing is lost: the Modelfile and
the GGUF stay on disk and the result carries the exact command to run later.

Requests to a loopback host never go through ``HTTP(S)_PROXY`` (httpx would
otherwise send ``127.0.0.1`` to a corporate proxy when ``NO_PROXY`` is unset).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from spark_tui.core.export.common import TEST_QUESTION, ExportError, Progress, report
from spark_tui.core.export.modelfile import Modelfile

DEFAULT_HOST = "http://127.0.0.1:11434"
TEST_PROMPT = TEST_QUESTION
TEST_NUM_PREDICT = 128
# A server that is down refuses at once, but a black-holed host or a hung server would
# hold each request for the whole `timeout` (minutes, sized for uploads and quantizing):
# connecting and the quick questions (HEAD blob, /api/show) get these instead.
CONNECT_TIMEOUT_S = 10.0
QUICK_TIMEOUT_S = 30.0
_CHUNK = 1 << 20
_NAME_RE = re.compile(
    r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*(/[a-zA-Z0-9][a-zA-Z0-9_.\-]*)?(:[a-zA-Z0-9_][a-zA-Z0-9_.\-]{0,127})?$"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class OllamaResult:
    name: str
    host: str
    registered: bool = False
    method: str | None = None  # "cli" or "api"
    answer: str | None = None
    done_reason: str | None = None  # "stop" = the answer ended by itself
    command: list[str] = field(default_factory=list)  # what to run later by hand
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 digest (API path)

    @property
    def command_line(self) -> str:
        import shlex

        return shlex.join(self.command)

    def summary_lines(self) -> list[str]:
        lines = [self.message] if self.message else []
        if self.registered and self.answer is not None:
            lines.append(f"Ollama ({self.name}) answers: {self.answer!r}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if not self.registered and self.command:
            lines.append(f"run later: {self.command_line}")
        return lines


@dataclass
class ChatAnswer:
    text: str
    done_reason: str | None
    seconds: float
    eval_count: int | None = None


def check_name(name: str) -> str:
    if not name or not _NAME_RE.match(name):
        raise ExportError(
            f"{name!r} is not a valid Ollama model name; use letters, digits, '-', '_', '.', "
            "optionally 'namespace/name' and ':tag' (e.g. my-model:latest)"
        )
    return name


def resolve_host(host: str | None) -> str:
    """`host`, else $OLLAMA_HOST, else the default, as a full URL (scheme and port)."""
    raw = (host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST).strip()
    had_scheme = "://" in raw
    parts = urlsplit(raw if had_scheme else "http://" + raw)
    name = parts.hostname or "127.0.0.1"
    if name in ("0.0.0.0", "::"):  # a bind-all address: the server is on this machine
        name = "127.0.0.1"
    try:
        port = parts.port
    except ValueError as exc:
        raise ExportError(f"{raw!r} is not a valid Ollama host (bad port)") from exc
    if port is None:
        port = {"http": 80, "https": 443}.get(parts.scheme, 11434) if had_scheme else 11434
    shown = f"[{name}]" if ":" in name else name
    return f"{parts.scheme}://{shown}:{port}{parts.path.rstrip('/')}"


def is_loopback(url: str) -> bool:
    name = urlsplit(url).hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def create_command(name: str, modelfile_path: str | Path, quantize: str | None = None) -> list[str]:
    cmd = ["ollama", "create", name, "-f", str(modelfile_path)]
    if quantize:
        cmd += ["--quantize", quantize]
    return cmd


def _client(host: str, timeout: float | None) -> Any:
    try:
        import ollama
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ExportError("the `ollama` Python package is not installed") from exc
    return ollama.Client(host=host, timeout=_timeouts(timeout), trust_env=not is_loopback(host))


def _http(host: str, timeout: float | None) -> Any:
    import httpx

    return httpx.Client(base_url=host, timeout=_timeouts(timeout), trust_env=not is_loopback(host))


def _timeouts(timeout: float | None) -> Any:
    """`timeout` for answers (None: wait as long as it takes), a short one for connecting."""
    import httpx

    connect = CONNECT_TIMEOUT_S if timeout is None else min(timeout, CONNECT_TIMEOUT_S)
    return httpx.Timeout(timeout, connect=connect)


def _is_unreachable(exc: BaseException) -> bool:
    """Ollama not there (refused, no route) or not answering in time: not a refusal of ours."""
    import httpx

    return isinstance(
        exc, (ConnectionError, httpx.ConnectError, httpx.TimeoutException, TimeoutError)
    )


def _why(exc: BaseException) -> str:
    """The reason Ollama could not be reached, in words."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return "no connection within the time limit"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "it accepted the connection but did not answer in time; is it stuck? restart it"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _files_for(modelfile: Modelfile, base_dir: Path) -> dict[str, Path]:
    """The files a `FROM` refers to: one GGUF, or every file of a safetensors folder."""
    src = Path(modelfile.from_)
    if not src.is_absolute():
        src = (base_dir / src).resolve()
    if src.is_file():
        return {src.name: src}
    if src.is_dir():
        keep = {}
        for p in sorted(src.iterdir()):
            if p.is_file() and (
                p.suffix in (".safetensors", ".json", ".model", ".jinja", ".txt")
                and not p.name.startswith(".")
                and p.name != "merge_report.json"
            ):
                keep[p.name] = p
        if not any(n.endswith(".safetensors") for n in keep):
            raise ExportError(f"{src}: no *.safetensors files to import")
        return keep
    raise ExportError(f"{src}: the Modelfile's FROM does not exist; export the model first")


def register(
    name: str,
    modelfile: Modelfile,
    modelfile_path: str | Path,
    *,
    host: str | None = None,
    use_cli: bool | None = None,
    ollama_bin: str | Path | None = None,
    test_prompt: str | None = TEST_PROMPT,
    timeout: float | None = 600.0,
    progress: Progress | None = None,
) -> OllamaResult:
    """Create model `name` in Ollama from `modelfile` (already written at `modelfile_path`).

    `ollama_bin`: the CLI to use instead of `ollama` on PATH.
    """
    check_name(name)
    modelfile_path = Path(modelfile_path)
    host_url = resolve_host(host)
    cmd = create_command(name, modelfile_path, modelfile.quantize)
    res = OllamaResult(name=name, host=host_url, command=cmd)
    cli = str(ollama_bin) if ollama_bin else shutil.which("ollama")
    if use_cli is None:
        use_cli = cli is not None
    _files_for(modelfile, modelfile_path.parent)  # a clear error before Ollama says less
    try:
        if use_cli:
            if cli is None:
                raise ExportError("the `ollama` command is not on PATH")
            _create_with_cli(cli, cmd, host_url if host else None, timeout)
            res.method = "cli"
        else:
            res.files = _create_with_api(
                name, modelfile, modelfile_path, host_url, timeout, progress
            )
            res.method = "api"
        res.registered = True
    except _Unreachable as exc:
        where = "not installed (no `ollama` on PATH) and " if cli is None else ""
        res.message = (
            f"Ollama is {where}not reachable at {host_url} ({exc}). The Modelfile and model files "
            f"are kept; start Ollama (`ollama serve`) and run: {res.command_line}"
        )
        return res
    how = "CLI" if res.method == "cli" else "REST API at " + host_url
    res.message = f"registered {name} with Ollama ({how})"
    res.warnings.extend(_check_stored(name, modelfile, host_url))
    if test_prompt:
        report(progress, "ollama-test", 0, 1)
        try:
            ans = chat(name, test_prompt, host=host_url, timeout=timeout)
            res.answer, res.done_reason = ans.text, ans.done_reason
            if ans.done_reason == "length":
                res.warnings.append(
                    f"the test answer did not end by itself within {TEST_NUM_PREDICT} tokens: "
                    "the TEMPLATE or stop tokens may not match the model's training format"
                )
        except ExportError as exc:
            res.message += f"; the test prompt failed: {exc}"
        report(progress, "ollama-test", 1, 1)
    return res


class _Unreachable(ExportError):
    pass


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", _ANSI.sub("", text)) if ln.strip()]
    return lines[-1] if lines else ""


def _create_with_cli(cli: str, cmd: list[str], host: str | None, timeout: float | None) -> None:
    env = dict(os.environ)
    if host:
        env["OLLAMA_HOST"] = host
    try:
        proc = subprocess.run(
            [cli, *cmd[1:]], capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"`ollama create` did not finish in {timeout:.0f} s") from exc
    except OSError as exc:
        raise ExportError(f"cannot run {cli}: {exc}") from exc
    if proc.returncode != 0:
        last = _last_line(proc.stderr) or _last_line(proc.stdout) or f"exit {proc.returncode}"
        if re.search(r"could not connect|connection refused|is ollama running", last, re.I):
            raise _Unreachable(last)
        raise ExportError(f"`ollama create` failed: {last}")


def _read_chunks(path: Path, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            yield block
            on_bytes(len(block))


def _quick(http: Any) -> Any:
    """The client's own timeouts, with answers capped at QUICK_TIMEOUT_S."""
    import httpx

    t = http.timeout
    read = QUICK_TIMEOUT_S if t.read is None else min(t.read, QUICK_TIMEOUT_S)
    return httpx.Timeout(read, connect=t.connect)


def upload_blob(http: Any, path: Path, on_bytes: Callable[[int], None] = lambda _n: None) -> str:
    """Upload `path` as a blob unless the server already has it; returns its digest."""
    size = path.stat().st_size
    h = hashlib.sha256()
    for block in _read_chunks(path, lambda _n: None):
        h.update(block)
    digest = "sha256:" + h.hexdigest()
    if http.head(f"/api/blobs/{digest}", timeout=_quick(http)).status_code == 200:
        on_bytes(size)
        return digest
    r = http.post(
        f"/api/blobs/{digest}",
        content=_read_chunks(path, on_bytes),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
    )
    if r.status_code not in (200, 201):
        raise ExportError(
            f"Ollama refused the upload of {path.name}: HTTP {r.status_code} {r.text.strip()}"
        )
    return digest


def _create_with_api(
    name: str,
    modelfile: Modelfile,
    modelfile_path: Path,
    host: str,
    timeout: float | None,
    progress: Progress | None,
) -> dict[str, str]:
    from ollama import ResponseError

    files = _files_for(modelfile, modelfile_path.parent)
    total = sum(p.stat().st_size for p in files.values())
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        report(progress, "upload", done, total)

    digests: dict[str, str] = {}
    http = _http(host, timeout)
    client = _client(host, timeout)
    try:
        report(progress, "upload", 0, total)
        for fname, path in files.items():
            digests[fname] = upload_blob(http, path, step)
        resp = client.create(
            model=name,
            files=digests,
            template=modelfile.template,
            system=modelfile.system,
            parameters=modelfile.api_parameters(),
            quantize=modelfile.quantize,
            stream=False,
        )
    except ResponseError as exc:
        raise ExportError(f"Ollama refused to create {name}: {exc.error}") from exc
    except Exception as exc:
        if _is_unreachable(exc):
            raise _Unreachable(_why(exc)) from exc
        raise
    finally:
        client.close()
        http.close()
    status = getattr(resp, "status", None)
    if status not in (None, "success"):
        raise ExportError(f"Ollama answered {status!r} when creating {name}")
    return digests


def chat(
    name: str,
    prompt: str,
    *,
    host: str | None = None,
    timeout: float | None = 300.0,
    num_predict: int = TEST_NUM_PREDICT,
) -> ChatAnswer:
    """One greedy chat turn with model `name`: the answer and why generation ended."""
    from ollama import ResponseError

    host_url = resolve_host(host)
    client = _client(host_url, timeout)
    start = time.monotonic()
    try:
        resp = client.chat(
            model=name,
            messages=[{"role": "user", "content": prompt}],
            options={"temperature": 0, "num_predict": int(num_predict)},
            stream=False,
        )
    except ResponseError as exc:
        raise ExportError(f"Ollama could not run {name}: {exc.error}") from exc
    except Exception as exc:
        if _is_unreachable(exc):
            raise ExportError(
                f"Ollama is not reachable at {host_url} ({_why(exc)}); start it (`ollama serve`) "
                "or pass --host"
            ) from exc
        raise
    finally:
        client.close()
    return ChatAnswer(
        text=(resp.message.content or "").strip(),
        done_reason=getattr(resp, "done_reason", None),
        seconds=time.monotonic() - start,
        eval_count=getattr(resp, "eval_count", None),
    )


def ask(name: str, prompt: str, *, host: str | None = None, timeout: float | None = 300.0) -> str:
    """Send one chat message to model `name` in Ollama and return the answer text."""
    return chat(name, prompt, host=host, timeout=timeout).text


def _param_value(raw: str) -> Any:
    if raw.startswith('"'):
        try:
            return json.loads(raw)  # Go's %q quoting, as /api/show writes strings
        except ValueError:
            return raw.strip('"')
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def parse_parameters(text: str) -> dict[str, Any]:
    """The `parameters` text of /api/show (``key  value`` lines) as a dict; stop is a list."""
    out: dict[str, Any] = {}
    for line in (text or "").splitlines():
        key, _, raw = line.strip().partition(" ")
        if not key or not raw.strip():
            continue
        value = _param_value(raw.strip())
        if key == "stop" or key in out:
            prev = out.get(key, [])
            out[key] = [*(prev if isinstance(prev, list) else [prev]), value]
        else:
            out[key] = value
    return out


def stored_settings(name: str, *, host: str | None = None, timeout: float | None = 60.0) -> dict:
    """What Ollama keeps for `name` (/api/show): template, system, parameters, quantization."""
    host_url = resolve_host(host)
    with _http(host_url, timeout) as http:
        r = http.post("/api/show", json={"model": name}, timeout=_quick(http))
    if r.status_code != 200:
        raise ExportError(f"Ollama has no model {name}: HTTP {r.status_code} {r.text.strip()}")
    data = r.json()
    details = data.get("details") or {}
    return {
        "template": data.get("template") or "",
        "system": data.get("system"),
        "parameters": parse_parameters(data.get("parameters") or ""),
        "quantization": details.get("quantization_level"),
        "format": details.get("format"),
    }


def _check_stored(name: str, modelfile: Modelfile, host: str) -> list[str]:
    """Warnings when Ollama did not keep the TEMPLATE / stop tokens we sent."""
    try:
        got = stored_settings(name, host=host)
    except Exception:  # a check only: never fail a registration that worked
        return []
    out = []
    if got["template"] != modelfile.template:
        out.append(f"Ollama stored a different TEMPLATE for {name} than the Modelfile's")
    missing = [s for s in modelfile.stops if s not in got["parameters"].get("stop", [])]
    if missing:
        out.append(f"Ollama did not keep the stop parameters {missing} for {name}")
    return out
