"""The Hugging Face Hub, asked as little as possible: a model's config.json, tokens, gated models.

A Hub id typed by the user: when online, only `config.json` is read (a few
kilobytes, short timeout) so the memory estimate works before any download.

Gated models (Llama, Gemma, Mistral): the user must request access on the
model page and give a token through `HF_TOKEN` or `hf auth login`.  The token
is read from the environment or the Hugging Face cache when a request needs
it; it is never stored, logged or returned.  `fetch_hub_config` never raises:
its status says what happened (ok, gated, not_found, offline, error).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HUB_TIMEOUT_S = 5.0
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def token_source() -> str:
    """Where a Hugging Face token would come from: 'HF_TOKEN', 'HF cache', or '' (none).

    Only the source is returned, never the token.
    """
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var, "").strip():
            return var
    try:
        from huggingface_hub import constants

        token_path = Path(constants.HF_TOKEN_PATH)
    except Exception:
        token_path = (
            Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "token"
        )
    try:
        if token_path.is_file() and token_path.read_text().strip():
            return "HF cache"
    except OSError:
        pass
    return ""


def _token() -> str | None:
    """The token for one request (env first, then the HF cache).  Never stored."""
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return None


def gated_help(repo_id: str) -> str:
    """What to do for a gated model: request access, then provide a token."""
    src = token_source()
    have = (
        f"A token was found ({src}); if access is still refused, the request may not be "
        "approved yet or the token lacks read access."
        if src
        else "No token was found."
    )
    return (
        f"{repo_id} is gated: open https://huggingface.co/{repo_id} while logged in and "
        "accept the licence / request access (approval can take from seconds to days). "
        "Then give spark-tui a read token: `export HF_TOKEN=hf_...` or run `hf auth login` "
        "once. The token is read from the environment or the Hugging Face cache when needed "
        f"and never written to run files. {have}"
    )


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class HubConfig:
    repo_id: str
    status: str  # ok | gated | not_found | offline | error
    message: str = ""
    config: dict[str, Any] | None = None


def _http_get_config(repo_id: str, revision: str | None, timeout: float) -> dict[str, Any]:
    """GET config.json from the Hub (raises huggingface_hub errors / httpx errors)."""
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

    url = hf_hub_url(repo_id, "config.json", revision=revision or None)
    headers = build_hf_headers(token=_token() or False)
    response = get_session().get(url, headers=headers, timeout=timeout, follow_redirects=True)
    hf_raise_for_status(response)
    data = json.loads(response.content)
    if not isinstance(data, dict):
        raise ValueError("config.json is not a JSON object")
    return data


def fetch_hub_config(
    repo_id: str, *, revision: str | None = None, timeout: float = HUB_TIMEOUT_S
) -> HubConfig:
    """Read only config.json of a Hub model.  Never raises: the status says what happened."""
    if is_offline():
        return HubConfig(repo_id, "offline", "HF_HUB_OFFLINE is set: the Hub was not asked")
    try:
        cfg = _http_get_config(repo_id, revision, timeout)
    except Exception as exc:  # httpx connection errors, timeouts, DNS failures included
        status, message = hub_error(repo_id, exc, reading=f"config.json of {repo_id}")
        return HubConfig(repo_id, status, message)
    return HubConfig(repo_id, "ok", "", cfg)


def hub_error(repo_id: str, exc: BaseException, *, reading: str = "") -> tuple[str, str]:
    """(status, one sentence saying what to do) for an exception from a Hub call.

    status: "gated", "not_found", "offline" (not reached) or "error".  `reading`
    names what was being read, for a local read/write failure (a bad JSON, a full disk).
    The one mapping for config reads (`fetch_hub_config`) and downloads (`download.py`).
    """
    from huggingface_hub import errors as hf_errors

    first = _first_line(exc)
    # Subclasses before their bases: Gated < RepositoryNotFound < HfHubHTTPError, and a
    # LocalEntryNotFoundError (no network while locating the files) < EntryNotFound.
    if isinstance(exc, hf_errors.GatedRepoError):
        return "gated", gated_help(repo_id)
    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        hint = "" if token_source() else " (if it is private, log in with `hf auth login`)"
        return "not_found", f"no model {repo_id} on the Hugging Face Hub{hint}"
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        return "error", f"{repo_id} has no such revision ({first}): check model.revision"
    if isinstance(exc, hf_errors.OfflineModeIsEnabled):
        return "offline", "HF_HUB_OFFLINE is set: the Hub was not asked"
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        return "offline", f"the Hub could not be reached for {repo_id} ({first}); check the network"
    if isinstance(exc, hf_errors.EntryNotFoundError):
        return "error", f"{repo_id}: {first}"
    if isinstance(exc, hf_errors.HfHubHTTPError):
        code = getattr(getattr(exc, "response", None), "status_code", None)
        if code in (401, 403):
            return "gated", gated_help(repo_id)
        return "error", f"the Hub answered an error for {repo_id}: {first}"
    if isinstance(exc, (OSError, ValueError)) and not isinstance(
        exc, (ConnectionError, TimeoutError)
    ):
        if reading and not getattr(exc, "errno", None):
            return "error", f"{reading} is unreadable: {first}"
        if getattr(exc, "errno", None):  # the disk, not the network (ENOSPC, EACCES, …)
            return "error", f"{reading or repo_id}: {first}"
    return "offline", f"the Hub could not be reached for {repo_id} ({first}); check the network"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
