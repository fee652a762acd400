"""Model download: what is fetched, progress in bytes, a stop that leaves a resumable cache.

The download runs through the real huggingface_hub against `fakehub.py` (a local HTTP
server answering as the Hub does), in a child process: the test session is offline
(HF_HUB_OFFLINE, read by huggingface_hub when it is imported) and must stay so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from spark_tui.core.model.download import choose_files
from spark_tui.screens.train import status_line

HERE = Path(__file__).resolve().parent

LLAMA_31 = {  # the top of meta-llama/Llama-3.1-8B-Instruct's listing, sizes rounded
    "config.json": 855, "generation_config.json": 184, "LICENSE": 7627, "README.md": 44000,
    "USE_POLICY.md": 4691, "model-00001-of-00004.safetensors": 4976698672,
    "model-00002-of-00004.safetensors": 4999802720, "model-00003-of-00004.safetensors": 4915916176,
    "model-00004-of-00004.safetensors": 1168138808, "model.safetensors.index.json": 23950,
    "original/consolidated.00.pth": 16060617592, "original/params.json": 199,
    "original/tokenizer.model": 2183982, "special_tokens_map.json": 296,
    "tokenizer.json": 9085657, "tokenizer_config.json": 55351,
}  # fmt: skip


def test_choose_files_takes_what_loading_needs_and_nothing_else():
    got = choose_files(LLAMA_31)
    assert set(got) == {
        "config.json", "generation_config.json", "model.safetensors.index.json",
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
        *(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)),
    }  # fmt: skip
    assert sum(got.values()) < 16.2e9  # the 16 GB original/ checkpoint is not fetched twice


def test_bin_weights_only_when_no_safetensors_and_code_only_when_trusted():
    repo = {"config.json": 1, "pytorch_model.bin": 10, "modeling_x.py": 2, "tokenizer.model": 3,
            "flax_model.msgpack": 10, "model.safetensors.bak": 1}  # fmt: skip
    assert set(choose_files(repo)) == {"config.json", "pytorch_model.bin", "tokenizer.model"}
    assert "modeling_x.py" in choose_files(repo, trust_remote_code=True)
    both = {"config.json": 1, "model.safetensors": 5, "pytorch_model.bin": 5}
    assert set(choose_files(both)) == {"config.json", "model.safetensors"}


CHILD = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import fakehub
hub = fakehub.Hub("org/llama-like", fakehub.llama_like_files(), pause_s=0.25).start()
os.environ["HF_ENDPOINT"] = hub.endpoint
from spark_tui.core.model.download import needs_download, plan_download, download_model
from spark_tui.core.train.trainer import fetch_model
from spark_tui.config import RunConfig

out = {"before": needs_download("org/llama-like")}
plan = plan_download("org/llama-like")
out["plan"] = sorted(plan.files)
out["total"] = plan.total_bytes
polls = []
try:  # Stop pressed during the download: the wait ends at once
    download_model(plan, progress=lambda *a: polls.append(a), should_stop=lambda: len(polls) >= 1)
except InterruptedError as exc:
    out["stopped"] = str(exc)
out["after_stop"] = needs_download("org/llama-like")

class Status:  # what StatusWriter.update receives, in order
    def __init__(self): self.updates = []
    def update(self, **kw): self.updates.append(kw)

status = Status()
cfg = RunConfig(name="t")
cfg.model.id = "org/llama-like"
fetch_model(cfg, "org/llama-like", status, lambda: False)
out["details"] = [u.get("phase_detail") for u in status.updates if u.get("phase_detail")]
out["phases"] = sorted({u["phase"] for u in status.updates if "phase" in u})
out["after"] = needs_download("org/llama-like")
out["fetched"] = hub.fetched
print("RESULT " + json.dumps(out))
"""


def test_download_through_huggingface_hub_with_progress_and_stop(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", CHILD, str(HERE)], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stderr[-3000:]
    out = json.loads(line[len("RESULT ") :])
    assert out["before"] is True
    assert "original/consolidated.00.pth" not in out["plan"] and "README.md" not in out["plan"]
    assert "stopped" in out and out["after_stop"] is True  # not complete: fetched again later
    assert out["phases"] == ["downloading model"]
    assert out["after"] is False  # the cache now holds a loadable snapshot
    assert not any(name.startswith("original/") for name in out["fetched"])
    details = out["details"]
    assert details[-1].startswith("download · 3.0 / 3.0 MB · 100 %"), details
    assert any(" %" in d and "100 %" not in d for d in details), details  # seen moving


def test_the_train_screen_says_what_preparing_is_doing():
    st = {"state": "preparing", "phase": "downloading model", "elapsed_s": 40,
          "phase_detail": "download · 3.2 / 16.0 GB · 20 % · 4:10 left"}  # fmt: skip
    line = status_line(st, {})
    assert "download · 3.2 / 16.0 GB · 20 % · 4:10 left" in line and "elapsed 0:40" in line
    assert "loading model" in status_line({"state": "preparing", "phase": "loading model"}, {})
