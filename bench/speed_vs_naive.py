"""Does the wizard train faster than the script a user would write?  Ours vs TRL's defaults.

    .venv/bin/python bench/speed_vs_naive.py [--steps 6] [--rounds 1]

The same model (the bundled default), the same LoRA (the course's r=16,
alpha=32, dropout 0.05 on all linear layers) and the same chat data, with row
lengths from one short turn to several long ones (bundled conversations
chained into multi-turn rows, written by this script):

- ours:  the "Course defaults" preset through the real detached trainer
  (`python -m spark_tui.core.train.entry RUN_DIR`), with whatever speed
  features the engine picks for this hardware (length-grouped batches,
  gradient checkpointing only when memory needs it, fp32 on a CPU without
  fast bf16, ...);
- plain: `SFTTrainer` + `SFTConfig` with TRL's defaults — only `output_dir`,
  `max_steps` and, on a CPU, `use_cpu=True` (TRL refuses to start without it) —
  and the same `LoraConfig`, on the same rows as chat messages.

Throughput = non-padding tokens trained / the trainer's `train_runtime`
(model loading and data preparation excluded on both sides); each side in its
own subprocess, alternating.  Target: ours/plain >= 1.3x on a CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}


def write_data(path: Path, rows: int = 400, seed: int = 0) -> None:
    """Multi-turn rows of 1-3 chained bundled conversations: lengths vary ~8x (~40-400)."""
    src = ROOT / "spark_tui" / "data" / "instructions.jsonl"
    convs = [json.loads(line)["messages"] for line in src.read_text().splitlines() if line.strip()]
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(rows):
            msgs: list[dict[str, str]] = []
            for conv in rng.sample(convs, rng.choice([1, 1, 1, 2, 3])):
                msgs.extend(m for m in conv if m["role"] in ("user", "assistant"))
            f.write(json.dumps({"messages": msgs}) + "\n")


def our_config(data: Path, steps: int):
    from spark_tui.config import RunConfig
    from spark_tui.core.method.presets import apply_preset

    cfg = RunConfig(name="bench-naive")
    cfg.data.path = str(data)
    cfg.data.val_fraction = 0.0
    cfg = apply_preset(cfg, "course")
    cfg.train.max_steps = steps
    cfg.train.save_steps = 100_000  # neither side checkpoints mid-run
    return cfg


def run_ours(data: Path, steps: int, env: dict[str, str]) -> dict:
    from spark_tui.core.train.runs import create_run

    run = create_run(our_config(data, steps))
    subprocess.run(
        [sys.executable, "-m", "spark_tui.core.train.entry", str(run.path)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    st = run.status()
    if st.get("state") != "finished":
        raise SystemExit(f"our run failed: {st.get('error')} (see {run.log_path})")
    tokens = max((m.get("tokens_seen", 0) for m in run.metrics()), default=0)
    cfg = run.config()
    return {
        "tokens": tokens,
        "runtime": st["summary"]["train_runtime"],
        "settings": f"micro-batch {cfg.train.micro_batch_size}, gradient checkpointing "
        f"{st.get('gradient_checkpointing', cfg.train.gradient_checkpointing)} "
        f"({cfg.train.gradient_checkpointing}), group_by_length "
        f"{'on' if cfg.train.group_by_length else 'off'}, precision {cfg.train.precision}",
    }


def plain_side(data: str, steps: int, out: str, fp32: bool = False) -> None:
    """TRL's defaults (runs in its own subprocess); `fp32`: bf16 off, as a careful CPU user sets."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from spark_tui.core.model.resolve import ensure_default_model

    path = ensure_default_model()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ds = datasets.load_dataset("json", data_files=data, split="train")
    extra: dict = {} if torch.cuda.is_available() else {"use_cpu": True}
    if fp32:
        extra["bf16"] = False
    args = SFTConfig(output_dir=out + ".trainer", max_steps=steps, report_to=[], **extra)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
    )  # fmt: skip
    result = trainer.train()
    Path(out).write_text(json.dumps({
        "tokens": int(getattr(trainer, "_total_train_tokens", 0) or max(
            (h.get("num_tokens", 0) for h in trainer.state.log_history), default=0)),
        "runtime": result.metrics["train_runtime"],
        "settings": f"micro-batch {args.per_device_train_batch_size}, gradient checkpointing "
        f"{'on' if args.gradient_checkpointing else 'off'}, bf16 {args.bf16}, "
        f"sampling {args.train_sampling_strategy}",
    }))  # fmt: skip


def run_plain(data: Path, steps: int, env: dict[str, str], fp32: bool = False) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    flag = ["--plain-fp32"] if fp32 else []
    subprocess.run(
        [sys.executable, __file__, "--plain", str(data), "--steps", str(steps), "--out", str(out),
         *flag],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    r = json.loads(out.read_text())
    out.unlink()
    shutil.rmtree(str(out) + ".trainer", ignore_errors=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--plain", metavar="DATA", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument(
        "--plain-fp32", action="store_true",
        help="plain side with bf16 off (TRL's default bf16 autocast is slow on most CPUs)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.plain:
        plain_side(args.plain, args.steps, args.out, args.plain_fp32)
        return 0
    home = Path(tempfile.mkdtemp(prefix="spark-bench-naive-"))
    env = dict(os.environ, SPARK_TUI_HOME=str(home), PYTHONPATH=str(ROOT))
    os.environ["SPARK_TUI_HOME"] = str(home)
    data = home / "varied.jsonl"
    write_data(data)
    ours: list[float] = []
    plain: list[float] = []
    try:
        for i in range(args.rounds):
            for side in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
                if side == "ours":
                    r = run_ours(data, args.steps, env)
                else:
                    r = run_plain(data, args.steps, env, args.plain_fp32)
                tps = r["tokens"] / r["runtime"]
                (ours if side == "ours" else plain).append(tps)
                print(f"round {i + 1} {side:5}: {r['tokens']} tokens in {r['runtime']:.1f} s = "
                      f"{tps:.1f} tokens/s ({r['settings']})", flush=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    ratio = statistics.median(ours) / statistics.median(plain)
    print(f"ours/plain tokens/s = {ratio:.2f}x (target >= 1.3x): "
          f"{'MET' if ratio >= 1.3 else 'MISSED'}")
    print("RESULT " + json.dumps({"speed_vs_naive": round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
