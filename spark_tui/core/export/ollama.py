"""Register an exported model with Ollama and ask it a test question.

Two ways in, tried in this order:

1. the ``ollama`` CLI when it is on PATH: ``ollama create NAME -f Modelfile``
   (an argument list, never a shell string; ``OLLAMA_HOST`` passed through);
2. the REST API at ``--host`` / ``$OLLAMA_HOST`` through the official ``ollama``
   Python client: each file is uploaded as a blob (``create_blob`` ->
   ``POST /api/blobs/sha256:<hex>``), then ``create(model=..., files=...,
   template=..., system=..., parameters=...)`` (``POST /api/create``).

Then a test prompt goes through ``/api/chat`` and its answer is returned.  If
Ollama is not installed or not reachable, nothing is lost: the Modelfile and the
GGUF stay on disk and the result carries the exact command to run later.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.export.common import ExportError, Progress, report
from spark_tui.core.export.modelfile import Modelfile

DEFAULT_HOST = "http://127.0.0.1:11434"
TEST_PROMPT = "What is the capital of France?"
_NAME_RE = re.compile(
    r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*(/[a-zA-Z0-9][a-zA-Z0-9_.\-]*)?(:[a-zA-Z0-9_][a-zA-Z0-9_.\-]{0,127})?$"
)


@dataclass
class OllamaResult:
    name: str
    host: str
    registered: bool = False
    method: str | None = None  # "cli" or "api"
    answer: str | None = None
    command: list[str] = field(default_factory=list)  # what to run later by hand
    message: str = ""
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256 digest (API path)

    @property
    def command_line(self) -> str:
        import shlex

        return shlex.join(self.command)

    def summary_lines(self) -> list[str]:
        lines = [self.message] if self.message else []
        if self.registered and self.answer is not None:
            lines.append(f"Ollama ({self.name}) answers: {self.answer!r}")
        if not self.registered and self.command:
            lines.append(f"run later: {self.command_line}")
        return lines


def check_name(name: str) -> str:
    if not name or not _NAME_RE.match(name):
        raise ExportError(
            f"{name!r} is not a valid Ollama model name; use letters, digits, '-', '_', '.', "
            "optionally 'namespace/name' and ':tag' (e.g. my-model:latest)"
        )
    return name


def resolve_host(host: str | None) -> str:
    return host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


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
    return ollama.Client(host=host, timeout=timeout)


def _is_unreachable(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout))


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
    test_prompt: str | None = TEST_PROMPT,
    timeout: float | None = 600.0,
    progress: Progress | None = None,
) -> OllamaResult:
    """Create model `name` in Ollama from `modelfile` (already written at `modelfile_path`)."""
    check_name(name)
    modelfile_path = Path(modelfile_path)
    host_url = resolve_host(host)
    cmd = create_command(name, modelfile_path, modelfile.quantize)
    res = OllamaResult(name=name, host=host_url, command=cmd)
    cli = shutil.which("ollama")
    if use_cli is None:
        use_cli = cli is not None
    try:
        if use_cli:
            if cli is None:
                raise ExportError("the `ollama` command is not on PATH")
            _create_with_cli(cli, cmd, host, timeout)
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
    res.message = f"registered {name} with Ollama ({'CLI' if res.method == 'cli' else 'REST API at ' + host_url})"
    if test_prompt:
        report(progress, "ollama-test", 0, 1)
        try:
            res.answer = ask(name, test_prompt, host=host_url, timeout=timeout)
        except ExportError as exc:
            res.message += f"; the test prompt failed: {exc}"
        report(progress, "ollama-test", 1, 1)
    return res


class _Unreachable(ExportError):
    pass


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
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        last = err[-1] if err else f"exit code {proc.returncode}"
        if re.search(r"could not connect|connection refused|is ollama running", last, re.I):
            raise _Unreachable(last)
        raise ExportError(f"`ollama create` failed: {last}")


def _create_with_api(
    name: str,
    modelfile: Modelfile,
    modelfile_path: Path,
    host: str,
    timeout: float | None,
    progress: Progress | None,
) -> dict[str, str]:
    from ollama import ResponseError

    client = _client(host, timeout)
    files = _files_for(modelfile, modelfile_path.parent)
    digests: dict[str, str] = {}
    total = sum(p.stat().st_size for p in files.values())
    done = 0
    try:
        report(progress, "upload", 0, total)
        for fname, path in files.items():
            digests[fname] = client.create_blob(path)
            done += path.stat().st_size
            report(progress, "upload", done, total)
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
            raise _Unreachable(
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            ) from exc
        raise
    finally:
        client.close()
    status = getattr(resp, "status", None)
    if status not in (None, "success"):
        raise ExportError(f"Ollama answered {status!r} when creating {name}")
    return digests


def ask(name: str, prompt: str, *, host: str | None = None, timeout: float | None = 300.0) -> str:
    """Send one chat message to model `name` in Ollama and return the answer text."""
    from ollama import ResponseError

    client = _client(resolve_host(host), timeout)
    try:
        resp = client.chat(
            model=name,
            messages=[{"role": "user", "content": prompt}],
            options={"temperature": 0, "num_predict": 64},
            stream=False,
        )
    except ResponseError as exc:
        raise ExportError(f"Ollama could not run {name}: {exc.error}") from exc
    except Exception as exc:
        if _is_unreachable(exc):
            raise ExportError(f"Ollama is not reachable at {resolve_host(host)}") from exc
        raise
    finally:
        client.close()
    return (resp.message.content or "").strip()
