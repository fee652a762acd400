"""How fast is the Evaluate step?  Ours against a plain per-row loop, same rows and settings.

    .venv/bin/python bench/eval_speed.py [--steps 5] [--rounds 1]

Trains a short LoRA SFT run of the bundled model on the bundled data (the
Quick-test shape: its held-out split is what the Evaluate step scores), then,
in fresh subprocesses:

- ours:  `spark_tui.core.evaluate.run.evaluate_run` with the defaults the CLI
  and the Evaluate screen use (`EvalOptions()`): held-out loss base and tuned
  in length-sorted batches, greedy answers to the held-out prompts in batched
  `generate` calls, ROUGE/BLEU, the adapter merged while the tuned side answers;
- plain: what a script would do with the same model: load the base, attach the
  adapter with PEFT, and for every row one forward pass for its loss and one
  `generate` call per prompt, tuned then base (adapter disabled) — the same
  rows, the same prompts rendered the same way, the same token bound.

Prints the wall time of each side (model loading included) and the ratio;
targets: plain/ours >= 3x, and our whole Evaluate step <= 25 s on a quiet
2-core machine.  Both sides' greedy answers are compared as a sanity check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def side_ours(run_dir: str, out: str) -> None:
    from spark_tui.core.base.lazy import warm_imports
    from spark_tui.core.evaluate.run import EvalOptions, evaluate_run

    warm_imports()  # the TUI has these preloaded; the plain side imports them up front too
    t0 = time.time()
    result = evaluate_run(run_dir, EvalOptions(), save=False)
    wall = time.time() - t0
    answers = [s.get("tuned", "") for s in result["samples"]]
    Path(out).write_text(json.dumps({"wall": wall, "answers": answers, "result": {
        k: result.get(k) for k in ("rows", "rows_total", "tuned", "base")
    }}, default=str))


def side_plain(run_dir: str, out: str) -> None:
    """A per-row loop over the same rows and prompts (the encodings come from our Encoder,
    so both sides score exactly the same tokens)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spark_tui.core.evaluate.decoding import generation_config, stop_token_ids
    from spark_tui.core.evaluate.heldout import Encoder, load_split
    from spark_tui.core.evaluate.models import RunModels, resolve_template
    from spark_tui.core.evaluate.run import EvalOptions
    from spark_tui.core.model.resolve import resolve_model_path
    from spark_tui.core.train.runs import resolve_run

    t0 = time.time()
    run = resolve_run(run_dir)
    cfg = run.config()
    opts = EvalOptions()
    base_path = resolve_model_path(cfg.model.id)
    tok = AutoTokenizer.from_pretrained(str(run.adapter_dir))
    template, _ = resolve_template(tok, cfg.model.chat_template)
    tok.chat_template = template
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(run.adapter_dir)).eval()
    stops = stop_token_ids(tok, template)
    shim = RunModels(None, tok, template, None, model, "cpu", "peft", "causal", base_path, stops)
    enc = Encoder(shim, max_length=cfg.data.max_length)
    ds = load_split(run)
    rows = [ds[i] for i in range(min(len(ds), opts.max_rows))]
    convs = [list(r["messages"]) for r in rows]
    encoded = [enc.conversation(c) for c in convs]
    prompts = []
    for c in convs:
        last = max((i for i, m in enumerate(c) if m["role"] == "assistant"), default=-1)
        if last > 0:
            prompts.append(c[:last])
    prompts = prompts[: opts.max_prompts]
    gen_cfg = generation_config(
        tok, stops, temperature=0.0, top_p=1.0, max_new_tokens=opts.max_new_tokens
    )

    def loss(m) -> float:
        total, count = 0.0, 0
        for ids, labels in encoded:
            with torch.inference_mode():
                out = m(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]))
            n = sum(1 for x in labels[1:] if x != -100)
            total += float(out.loss) * n
            count += n
        return total / count

    def answers(m) -> list[str]:
        got = []
        for p in prompts:
            ids = tok(enc.prompt_text(p), add_special_tokens=False, return_tensors="pt")
            with torch.inference_mode():
                o = m.generate(**ids, generation_config=gen_cfg)
            got.append(tok.decode(o[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
        return [a.strip() for a in got]

    tuned_loss, tuned_answers = loss(model), answers(model)
    with model.disable_adapter():
        base_loss, _ = loss(model), answers(model)
    wall = time.time() - t0
    Path(out).write_text(json.dumps({
        "wall": wall, "answers": tuned_answers, "tuned_loss": tuned_loss, "base_loss": base_loss,
    }))


def run_side(side: str, run_dir: Path, env: dict[str, str]) -> dict:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    t0 = time.time()
    subprocess.run(
        [sys.executable, __file__, "--side", side, str(run_dir), "--out", str(out)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    r = json.loads(out.read_text())
    out.unlink()
    r["process_wall"] = time.time() - t0
    return r


def train_run(env: dict[str, str], steps: int) -> Path:
    cmd = [
        str(Path(sys.executable).with_name("spark-tui")), "train", "--model", "default",
        "--data", "default", "--max-steps", str(steps), "--set", "train.save_steps=1000",
        "--json",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"training failed: {proc.stderr[-2000:]}")
    home = Path(env["SPARK_TUI_HOME"])
    runs = sorted((home / "runs").glob("*/run.toml"))
    if not runs:
        raise SystemExit(f"no run folder under {home}")
    return runs[-1].parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5, help="training steps of the evaluated run")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--side", choices=["ours", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("run_dir", nargs="?", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        (side_ours if args.side == "ours" else side_plain)(args.run_dir, args.out)
        return 0

    home = Path(tempfile.mkdtemp(prefix="spark-bench-eval-"))
    env = dict(os.environ, SPARK_TUI_HOME=str(home), PYTHONPATH=str(ROOT))
    try:
        run_dir = train_run(env, args.steps)
        print(f"evaluated run: {run_dir.name} ({args.steps} training steps)", flush=True)
        ours: list[float] = []
        plain: list[float] = []
        same = None
        for i in range(args.rounds):
            for side in ("ours", "plain") if i % 2 == 0 else ("plain", "ours"):
                r = run_side(side, run_dir, env)
                (ours if side == "ours" else plain).append(r["wall"])
                print(f"round {i + 1} {side:5}: {r['wall']:.1f} s "
                      f"(process {r['process_wall']:.1f} s)", flush=True)
                if side == "ours":
                    info = r["result"]
                    print(f"  rows {info['rows']} of {info['rows_total']}; tuned loss "
                          f"{info['tuned'].get('loss'):.4f}, base loss {info['base'].get('loss'):.4f}")
                    same_o = r["answers"]
                else:
                    print(f"  tuned loss {r['tuned_loss']:.4f}, base loss {r['base_loss']:.4f}")
                    same_p = r["answers"]
            same = sum(a == b for a, b in zip(same_o, same_p, strict=False)), len(same_p)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    mo, mp = statistics.median(ours), statistics.median(plain)
    ratio = mp / mo
    print(f"identical greedy tuned answers: {same[0]}/{same[1]} (batching pads; a few may differ)")
    print(f"ours  {mo:.1f} s (the whole Evaluate step, model loading included)")
    print(f"plain {mp:.1f} s (per-row loop)")
    print(f"speed-up plain/ours = {ratio:.2f}x (target >= 3x): "
          f"{'MET' if ratio >= 3 else 'MISSED'}")
    print(f"our Evaluate step {mo:.1f} s (target <= 25 s): {'MET' if mo <= 25 else 'MISSED'}")
    print("RESULT " + json.dumps({"eval_speedup": round(ratio, 3), "eval_step_s": round(mo, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
