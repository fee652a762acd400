"""A finished run with every file a real quick run leaves, with fixed content, for snapshots.

The files are in the formats the product writes (run.toml through RunConfig,
status.json through Run.write_status, metrics.jsonl lines as the trainer logs
them, eval.json / first_look.json / deploy.json as Evaluate, the Train screen and
Deploy save them), so the snapshot shows what a user sees after a real run while
staying byte-for-byte the same from one test session to the next.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from spark_tui.core.base import names
from spark_tui.core.base.atomic import atomic_write_json
from spark_tui.core.method.presets import apply_preset
from spark_tui.core.model import hardware
from spark_tui.core.model.usage import Sample
from spark_tui.core.train.runs import Run

RUN_ID = "20261204-101500-quick-test"
GB = 1024**3
PROMPTS = [
    ("Hi!", "Hello! I'm Sparky, a fine-tuning tutor. What would you like to learn?",
     "Hello! How can I help you today?", "Hello! I'm Sparky, a fine-tuning tutor. Ask away!"),
    ("What is LoRA?", "LoRA trains two small low-rank matrices next to each frozen weight.",
     "LoRA is a type of long-range radio.", "LoRA trains small low-rank matrices beside frozen weights."),
    ("Why hold out a validation split?", "To see whether the model learned or only memorised.",
     "Validation is important for many reasons.", "To check the model generalises beyond its rows."),
]


def fixed_probe() -> hardware.HardwareProbe:
    """A 2-core, 24 GB CPU machine (what CI and this project's build machines are)."""
    return hardware.HardwareProbe(
        mem_total=24 * GB, mem_available=20 * GB, mem_free=16 * GB, page_cache=3 * GB,
        buffers=0, swap_total=0, swap_used=0, cpu_cores_logical=2, cpu_cores_physical=2,
        machine="x86_64", gpus=[], unified_memory=False, nvml_status="no NVIDIA driver",
        disk_free_home=200 * GB, disk_free_hf_cache=200 * GB, home_path="/home/user",
        hf_cache_path="/home/user/.cache/huggingface",
    )  # fmt: skip


def fixed_sample(_pid: int | None = None) -> Sample:
    return Sample(
        # 3.6 of the 22-cell bar: Textual floors the bar to half cells once it is laid out
        # and rounds before; at 3.6 both give 3.5 cells, so the snapshot does not race.
        mem_total=24 * GB, mem_used=int(24 * GB * 3.6 / 22), page_cache=3 * GB, swap_used=0,
        unified_memory=False, gpus=[], process_rss=None,
    )  # fmt: skip


def _metrics(steps: int = 30) -> list[dict]:
    lines = []
    for step in range(1, steps + 1):
        loss = 1.2 + 2.6 * math.exp(-step / 9) + 0.05 * math.sin(step)
        lines.append({
            "kind": "train", "step": step, "epoch": step / steps, "loss": round(loss, 4),
            "learning_rate": 1e-3 * (1 - step / steps), "grad_norm": 1.5,
            "tokens_per_s": 260.0 + step, "elapsed_s": 5.4 * step, "rss_bytes": int(3.6 * GB),
        })  # fmt: skip
        if step % 10 == 0:
            lines.append({"kind": "eval", "step": step, "eval_loss": round(loss + 0.3, 4)})
    return lines


def _eval() -> dict:
    samples = [
        {
            "prompt": p, "messages": [{"role": "user", "content": p}], "reference": ref,
            "base": base, "tuned": tuned,
            "base_scores": {"rougeL": 0.12}, "tuned_scores": {"rougeL": 0.61},
        }
        for p, ref, base, tuned in PROMPTS
    ]  # fmt: skip
    return {
        "run_id": RUN_ID, "loss_on": "assistant turns", "rows": 28, "template": "chatml",
        "base": {"loss": 2.412, "perplexity": 11.16, "rouge1": 0.171, "rouge2": 0.034,
                 "rougeL": 0.113, "bleu": 1.9, "tokens": 1650},
        "tuned": {"loss": 1.487, "perplexity": 4.42, "rouge1": 0.352, "rouge2": 0.161,
                  "rougeL": 0.258, "bleu": 8.7, "tokens": 1650},
        "samples": samples,
    }  # fmt: skip


def _deploy(run: Path) -> dict:
    gguf = run / names.GGUF_DIR / f"{RUN_ID}-q4_k_m.gguf"
    return {
        "merge": {
            "out_dir": str(run / names.MERGED_DIR), "passed": True,
            "summary": ["merged 30 LoRA pairs into 272 tensors (bf16 → float32)",
                        "logits check: max |Δ| 2.1e-05 on 3 prompts — passed"],
        },
        "export": {
            "outputs": {"q4_k_m": str(gguf)}, "verified": {"q4_k_m": True},
            "checks": {"q4_k_m": {"tokenization": "ok", "tensors": "ok", "logits": "ok"}},
            "verifications": {"q4_k_m": {"summary": [
                "tokenization: 6/6 texts identical", "tensors: 272/272 within tolerance",
                "logits: top-1 agrees on 3/3 prompts"]}},
            "modelfile": str(run / "Modelfile"), "notes": [],
        },
        "ollama": {
            "name": "quick-test", "registered": True, "modelfile": str(run / "Modelfile"),
            "answer": "Paris.", "message": "",
        },
    }  # fmt: skip


def make_showcase_run(home: Path) -> Run:
    """The finished quick run (runs/<RUN_ID>) with metrics, evaluation, first look and deploy."""
    from spark_tui.config import RunConfig

    path = home / "runs" / RUN_ID
    path.mkdir(parents=True)
    run = Run(path)
    cfg = apply_preset(RunConfig(name=RUN_ID), "quick")
    cfg.save(run.config_path)
    run.metrics_path.write_text("".join(json.dumps(m) + "\n" for m in _metrics()))
    run.write_status(state="finished", step=30, total_steps=30, elapsed_s=163.0,
                     started=1000.0, finished=1163.0, output=str(path / names.ADAPTER_DIR))  # fmt: skip
    (path / names.ADAPTER_DIR).mkdir()
    atomic_write_json(path / names.EVAL_FILE, _eval())
    look = {
        "version": 1, "run_id": RUN_ID, "rows": 16, "loss_on": "assistant turns",
        "loss": {"base": 2.412, "tuned": 1.487},
        "pairs": [{"prompt": p, "base": b, "tuned": t} for p, _r, b, t in PROMPTS],
        "created": time.time() + 3600,
    }  # fmt: skip
    atomic_write_json(path / names.FIRST_LOOK_FILE, look)
    atomic_write_json(path / names.DEPLOY_FILE, _deploy(path))
    return run
