"""One prepared GPU check of the real training engine: smoke matrix, throughput/MFU, naive TRL.

CI has no GPU, so the engine's CUDA paths (QLoRA, bf16, packing, full-FT DPO with a reference
copy, merge + GGUF of a GPU-trained adapter) and the estimator's GPU numbers are only checked
when a GPU is lent: this runs them in one go, in under 8 minutes on an H200.  Nothing else
depends on it.  Sections by importance, each skipped (and recorded so) when the budget left
is too small; the results files are rewritten after every section:

1. smoke: the default model through `orchestrate.run_training` (what the detached trainer
   runs): SFT QLoRA, LoRA + train.packing (on only with FlashAttention; the trainer's notes
   say), full-FT DPO on the bundled pairs, `pipeline.merge_run` + `export_model` (q4_k_m);
2. 1b, 3. 8b: random-weight bf16 Llama shapes, "course" preset, LoRA and QLoRA: tokens/s =
   non-padding tokens / train_runtime ("steady": from step 2 on); MFU = 4·N·tokens/s / the
   H200 bf16 peak (LoRA: forward 2N + backward to the activations 2N, no weight gradients;
   N without the input embedding unless tied; attention scores and checkpointing recompute
   not counted), and a plain TRL script (SFTConfig(output_dir, max_steps), TRL's defaults)
   on the same data and LoRA config: tokens/s ratio (>= 2x) and max_memory_reserved (<= 0.6x);
4. estimates: `estimator.estimate_config` of each training case next to max reserved /
   allocated, NVML device memory used (peak above the child's start) and host RSS.

    .venv/bin/python bench/gpu_suite.py [--budget 450] [--out DIR]   # DIR: $OUT or ./gpu_suite_out
    .venv/bin/python bench/gpu_suite.py --dry-run      # CPU, tiny shapes: checks the script
    python3 bench/gpu_suite.py --shape-of DIR          # a lent machine: bench/gpu_carry.sh

`--shape-of DIR`: a folder with the default model's config and tokenizer but no weights (the
bundled GGUF is too big to carry to a lent machine); a random-weight copy of that shape stands
in for the default model, so the smoke checks the CUDA paths, not what the model learns.

Each run is a subprocess of this script (hidden `--side`), so peaks never mix; its output is
in DIR/logs/.  Writes DIR/gpu_suite.json and DIR/gpu_suite.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# NVIDIA H200 SXM: 989 TFLOPS dense BF16 tensor-core peak (1979 is the 2:4-sparsity figure).
H200_BF16_PEAK_FLOPS = 989e12
GB = 1e9  # decimal, as the product shows memory
_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
         "num_key_value_heads", "vocab_size", "tie_word_embeddings")  # fmt: skip
SHAPES = {  # Llama 3.2 1B-like (tied head), Llama 3.1 8B; --dry-run: 2-layer ones
    "1b": (2048, 16, 8192, 32, 8, 128256, True),
    "8b": (4096, 32, 14336, 32, 8, 128256, False),
}
TINY = {"1b": (64, 2, 128, 4, 2, 0, True), "8b": (96, 2, 192, 4, 2, 0, False)}
# Seconds a piece needs at least to be started (GPU); one child may take up to 3x that.
NEED = {"train": 45, "export": 60, "build1b": 30, "run1b": 45, "build8b": 90, "run8b": 90}


def first_line(x: Any) -> str:
    lines = [ln for ln in str(x or "").strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def failure(exc: BaseException) -> dict[str, Any]:
    return {"state": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}"}


class NvmlPeak:
    """Device memory used (NVML, sampled every 0.1 s): the peak above the value at start."""

    def __init__(self) -> None:
        self.stopped, self.nv = threading.Event(), None
        try:  # no NVML (CPU, no driver): nothing measured
            from spark_tui.core.model.gpus import nvml

            self.nv = nvml()[0]
            idx = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
            self.handle = self.nv.nvmlDeviceGetHandleByIndex(int(idx) if idx.isdigit() else 0)
            self.base = self.peak = self.used()
            threading.Thread(target=self.loop, daemon=True).start()
        except Exception:
            self.nv = None

    def used(self) -> int:
        return int(self.nv.nvmlDeviceGetMemoryInfo(self.handle).used)

    def loop(self) -> None:
        while not self.stopped.wait(0.1):
            self.peak = max(self.peak, self.used())

    def stop(self) -> dict[str, Any]:
        self.stopped.set()
        if self.nv is None:
            return {"nvml_peak_bytes": None}
        return {"nvml_peak_bytes": max(self.peak, self.used()) - self.base, "nvml_base": self.base}


def steady(points: list[tuple[float, float]], skip: int = 2) -> float | None:
    """Tokens/s from the end of step `skip` to the last step, from (time, tokens so far)."""
    if len(points) <= skip:
        return None
    (t0, n0), (t1, n1) = points[skip - 1], points[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def side_ours(a: argparse.Namespace) -> dict[str, Any]:
    """One run folder through the engine the detached trainer runs."""
    from spark_tui.core.method.precision import choose_attention, choose_precision, detect_hardware
    from spark_tui.core.train.orchestrate import run_training
    from spark_tui.core.train.runs import Run

    run = Run(Path(a.run))
    final = run_training(run)
    train = [m for m in run.metrics() if m.get("kind") == "train"]
    losses = [m["loss"] for m in train if isinstance(m.get("loss"), (int, float))]
    pts = [(m["time"], m["tokens_seen"]) for m in train if "tokens_seen" in m]
    hw = detect_hardware()
    attention = choose_attention(hw, choose_precision(run.config().train.precision, hw))
    return {"state": final.get("state"), "error": first_line(final.get("error")),
            "notes": final.get("notes") or [], "final_loss": losses[-1] if losses else None,
            "tokens": max((n for _, n in pts), default=0), "steady_tps": steady(pts),
            "runtime": (final.get("summary") or {}).get("train_runtime"),
            "attention": attention}  # fmt: skip


def side_plain(a: argparse.Namespace) -> dict[str, Any]:
    """A plain TRL script: SFTConfig(output_dir, max_steps), TRL's defaults for the rest."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    r, alpha, dropout = (float(x) for x in a.lora.split(","))
    times: list[float] = []

    class Stamp(TrainerCallback):  # one clock read per step: the only addition
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            times.append(time.time())

    out = tempfile.mkdtemp(prefix="plain-trl-")
    # TRL's bf16 default is refused without a GPU: only the dry run says use_cpu.
    cpu = {} if torch.cuda.is_available() else {"use_cpu": True, "bf16": False}
    trainer = SFTTrainer(
        model=a.model,  # loaded by TRL, with its defaults
        args=SFTConfig(output_dir=out, max_steps=a.steps, **cpu),
        train_dataset=datasets.load_from_disk(str(Path(a.data) / "train")),
        peft_config=LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=dropout,
                               target_modules="all-linear", task_type="CAUSAL_LM"),
        callbacks=[Stamp()],
    )  # fmt: skip
    res = trainer.train()
    tokens = int(getattr(trainer, "_total_train_tokens", 0))  # TRL's own num_tokens counter
    per_step = tokens / max(1, len(times))  # the steady figure assumes equal steps here
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    ta, dtype = trainer.args, next(trainer.model.parameters()).dtype
    shutil.rmtree(out, ignore_errors=True)
    note = f"TRL defaults: bf16 {ta.bf16}, checkpointing {ta.gradient_checkpointing}, {dtype}"
    return {"state": "finished", "tokens": tokens, "runtime": res.metrics.get("train_runtime"),
            "steady_tps": steady([(t, per_step * (i + 1)) for i, t in enumerate(times)]),
            "final_loss": losses[-1] if losses else res.training_loss,
            "mb": ta.per_device_train_batch_size, "seq": ta.max_length,
            "notes": [note, f"optim {ta.optim} {cpu or ''}"]}  # fmt: skip


def side_build(a: argparse.Namespace) -> dict[str, Any]:
    """A random-weight bf16 Llama (built on the GPU if there is one), saved with a tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tok = AutoTokenizer.from_pretrained(a.tok)
    shape = dict(zip(_KEYS, json.loads(a.shape), strict=True))
    # Every token id of the data gets an embedding row (no clipping needed then).
    shape["vocab_size"] = max(shape["vocab_size"], len(tok))
    ids = {k: getattr(tok, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    config = LlamaConfig(**shape, **ids, max_position_embeddings=8192, rope_theta=5e5)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    total = sum(p.numel() for p in model.parameters())  # tied weights counted once
    embed = model.get_input_embeddings().weight.numel()
    model.save_pretrained(a.dest)
    tok.save_pretrained(a.dest)
    flop_params = total if shape["tie_word_embeddings"] else total - embed
    return {"state": "finished", "params": total, "flop_params": flop_params}


def side_clone(a: argparse.Namespace) -> dict[str, Any]:
    """A random-weight model of the shape in `--tok` (config + tokenizer, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(a.tok)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(a.dest)
    AutoTokenizer.from_pretrained(a.tok).save_pretrained(a.dest)
    for name in ("chat_template.jinja", "generation_config.json"):
        if (Path(a.tok) / name).exists():
            shutil.copy(Path(a.tok) / name, Path(a.dest) / name)
    return {"state": "finished", "params": sum(p.numel() for p in model.parameters())}


def side_export(a: argparse.Namespace) -> dict[str, Any]:
    """merge + GGUF the way `spark-tui export RUN` does (commands/deploy.py)."""
    from spark_tui.core.export.pipeline import export_model, merge_run, run_model_dir
    from spark_tui.core.train.runs import Run

    run = Run(Path(a.run))
    merged = merge_run(run, check=True)
    out: dict[str, Any] = {"state": "finished"}
    if merged is not None:
        diff = merged.max_abs_diff
        out["merge"] = f"{merged.path}, max dlogit {diff:.2g}" if diff is not None else merged.path
        if not merged.passed:
            return {**out, "state": "failed", "error": "merged logits differ from the adapter's"}
    types, pre = ["q4_k_m"], []
    try:  # K-quants need llama-cpp-python; without it the plain types are still exported
        import llama_cpp  # noqa: F401
    except ImportError:
        types, pre = ["q8_0"], ["llama-cpp-python missing: q8_0 instead of q4_k_m"]
    res = export_model(run_model_dir(run), Path(run.path) / "gguf", types, stem=run.id)
    out["notes"] = (
        pre + res.notes + [ln for v in res.verifications.values() for ln in v.summary_lines()]
    )
    out["gguf_bytes"] = sum(p.stat().st_size for p in res.outputs.values())
    if not res.passed:
        out.update(state="failed", error="GGUF verification failed (see notes)")
    return out


def run_side(a: argparse.Namespace) -> int:
    import resource

    sampler = NvmlPeak()  # before torch touches the GPU
    sides = {
        "ours": side_ours,
        "plain": side_plain,
        "build": side_build,
        "export": side_export,
        "clone": side_clone,
    }
    try:
        out = sides[a.side](a)
    except BaseException as exc:  # noqa: BLE001 - recorded; the parent goes on
        traceback.print_exc()
        out = failure(exc)
    out.update(sampler.stop())
    out["rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        out["reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        out["allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["device"] = torch.cuda.get_device_name(0)
    Path(a.result).write_text(json.dumps(out, default=str), encoding="utf-8")
    return 0


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        import torch  # never initialises CUDA here: every CUDA user is a child

        from spark_tui.core.base.env import child_env

        self.dry, self.budget, self.t0 = args.dry_run, args.budget, time.time()
        self.cuda = torch.cuda.is_available() and not self.dry
        self.out, self.home = Path(args.out), Path(tempfile.mkdtemp(prefix="spark-gpu-suite-"))
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        os.environ["SPARK_TUI_HOME"] = str(self.home / "home")  # run folders go here
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
            os.environ.setdefault(k, "1")
        # Keep a PYTHONPATH already set (packages carried to a lent machine), ours first.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = child_env({"PYTHONPATH": path})
        self.base: Path | None = None  # the default model's folder (or its random copy)
        self.base_id = "default"
        if self.dry:
            self.env["CUDA_VISIBLE_DEVICES"] = ""
        self.results: dict[str, Any] = {"meta": self.meta(), "sections": {}}

    def left(self) -> float:
        return self.budget - (time.time() - self.t0)

    def meta(self) -> dict[str, Any]:
        from importlib.metadata import distributions

        have = {d.metadata["Name"].lower().replace("-", "_"): d.version for d in distributions()}
        m = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "dry_run": self.dry,
             "budget_s": self.budget, "python": sys.version.split()[0], "driver": None,
             "device": "CPU (dry run)" if self.dry else None}  # fmt: skip
        for pkg in ("torch transformers trl peft bitsandbytes accelerate flash_attn "
                    "llama_cpp_python").split():  # fmt: skip
            m[pkg] = have.get(pkg)
        with contextlib.suppress(Exception):
            from spark_tui.core.model.gpus import nvml

            drv = nvml()[0].nvmlSystemGetDriverVersion()
            m["driver"] = drv.decode() if isinstance(drv, bytes) else drv
        return m  # "device" is filled in by the first child that used CUDA

    def child(self, name: str, argv: list[str], need: float) -> tuple[dict[str, Any], float]:
        """`--side ...` in a subprocess with a timeout: (its result or the failure, seconds)."""
        result, log = self.home / f"{name}.json", self.out / "logs" / f"{name}.log"
        timeout, t = max(10.0, min(self.left() - 5, max(3 * need, 240))), time.time()
        with open(log, "ab") as f:
            p = subprocess.Popen([sys.executable, __file__, *argv, "--result", str(result)],
                                 stdout=f, stderr=subprocess.STDOUT, env=self.env,
                                 start_new_session=True)  # fmt: skip
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # the child's own process group
                p.wait()
                return {"state": "failed", "error": f"timed out after {timeout:.0f} s"}, timeout
        if not result.exists():
            tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
            return {"state": "failed", "error": f"exit {rc}: {tail[-1] if tail else ''}"}, 0.0
        r = json.loads(result.read_text())
        if r.get("device") and not self.results["meta"].get("device"):
            self.results["meta"]["device"] = r["device"]
        return r, round(time.time() - t, 1)

    def train_case(self, case: str, cfg: Any, need: float) -> dict[str, Any]:
        """Estimate -> preflight -> run folder -> the engine in a child: one table row."""
        from spark_tui.core.memory.estimator import estimate_config
        from spark_tui.core.memory.shapes import architecture_of
        from spark_tui.core.train.preflight import preflight
        from spark_tui.core.train.runs import create_run

        row = {"case": case, "steps": cfg.train.max_steps, "adapter": cfg.method.adapter,
               "seq": cfg.data.max_length, "mb": cfg.train.micro_batch_size}  # fmt: skip
        if self.left() < need:
            return {**row, "status": "skipped", "error": f"budget: {self.left():.0f} s left"}
        try:
            target = "gpu" if self.cuda else "cpu"
            est = estimate_config(cfg, arch=architecture_of(cfg.model.id), target=target)
            row.update(estimate_bytes=est.total, estimate_parts=est.breakdown())
            preflight(cfg, source="gpu_suite")
            run = create_run(cfg)
        except Exception as exc:  # noqa: BLE001 - recorded, the next case runs
            return {**row, **failure(exc), "status": "failed"}
        r, secs = self.child(case, ["--side", "ours", "--run", str(run.path)], need)
        row.update(r, run=str(run.path), data_dir=str(run.data_dir), seconds=secs)
        row["status"] = "ok" if r.get("state") == "finished" else "failed"
        if row["status"] == "failed" and run.log_path.exists():
            shutil.copy(run.log_path, self.out / "logs" / f"{case}.train.log")
        return row

    def section(self, name: str, fn: Any, need: float) -> None:
        """Run one section (or record it skipped), then write the results files."""
        t = time.time()
        if self.left() < need:
            why = f"budget: {self.left():.0f} s left of {self.budget:.0f}, needs ~{need:.0f} s"
            sec: dict[str, Any] = {"status": "skipped", "reason": why}
        else:
            try:
                sec = {"status": "done", **fn()}
            except Exception as exc:  # noqa: BLE001 - one section never stops the others
                traceback.print_exc()
                sec = {"status": "failed", "reason": failure(exc)["error"]}
        sec["seconds"] = round(time.time() - t, 1)
        self.results["sections"][name] = sec
        text = json.dumps(self.results, indent=2, default=str)
        (self.out / "gpu_suite.json").write_text(text, encoding="utf-8")
        (self.out / "gpu_suite.md").write_text(markdown(self.results), encoding="utf-8")
        print(section_md(name, sec), flush=True)

    def smoke(self) -> dict[str, Any]:
        from spark_tui.config import RunConfig
        from spark_tui.core.method.choices import apply_method
        from spark_tui.core.method.presets import recommended_learning_rate

        steps, seq = (2, 128) if self.dry else (5, 512)
        rows: dict[str, dict[str, Any]] = {}
        for case, objective, method, packing in (("sft-qlora", "sft", "qlora", False),
                                                 ("sft-lora-packing", "sft", "lora", True),
                                                 ("dpo-full", "dpo", "full", False)):  # fmt: skip
            if method == "qlora" and not self.cuda:
                rows[case] = {"case": case, "status": "skipped", "error": "needs CUDA"}
                continue
            cfg = RunConfig(name=f"gs-{case}")  # data: "default" (bundled)
            cfg.model.id = self.base_id
            cfg.method.objective = objective  # type: ignore[assignment]
            apply_method(cfg, method)
            cfg.data.val_fraction, cfg.data.max_length = 0.0, seq
            cfg.train.max_steps, cfg.train.packing = steps, packing
            cfg.train.learning_rate = recommended_learning_rate(cfg)  # as the CLI picks it
            rows[case] = row = self.train_case(case, cfg, NEED["train"])
            if packing and row["status"] == "ok":  # the trainer's notes say when it is off
                off = any(n.startswith("packing is off") for n in row.get("notes", []))
                row["packing"] = "off" if off else "on"
        src = next((c for c in ("sft-qlora", "sft-lora-packing") if rows[c]["status"] == "ok"), "")
        case = f"merge+gguf({src or 'none'})"
        if not src or self.left() < NEED["export"]:
            why = "no trained adapter" if not src else f"budget: {self.left():.0f} s left"
            rows[case] = {"case": case, "status": "skipped", "error": why}
        else:
            r, secs = self.child("export", ["--side", "export", "--run", rows[src]["run"]], 60)
            status = "ok" if r.get("state") == "finished" else "failed"
            rows[case] = {"case": case, **r, "seconds": secs, "status": status}
        return {"rows": list(rows.values())}

    def long_data(self, seq: int, n: int) -> Path:
        """n distinct chat rows of 40-90 % of `seq` tokens, made of the bundled answers."""
        from transformers import AutoTokenizer

        from spark_tui.core.data import bundled_dataset_path
        from spark_tui.core.model.resolve import ensure_default_model

        tok = AutoTokenizer.from_pretrained(self.base or ensure_default_model())
        rows = [json.loads(ln) for ln in bundled_dataset_path("sft").read_text().splitlines()]
        answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
        sized = [(a, len(tok(a).input_ids) + 1) for a in answers]
        rng, path = random.Random(0), self.home / f"long-{seq}-{n}.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for i in range(n):
                goal, parts, have = rng.uniform(0.4, 0.9) * seq - 30, [], 0
                while have < goal:
                    text, k = rng.choice(sized)
                    parts.append(text)
                    have += k
                user = {"role": "user", "content": f"Tell me everything, part {i}."}
                reply = {"role": "assistant", "content": " ".join(parts[:-1] or parts)}
                f.write(json.dumps({"messages": [user, reply]}) + "\n")
        return path

    def model_section(self, key: str) -> dict[str, Any]:
        from spark_tui.config import RunConfig
        from spark_tui.core.method.choices import apply_method
        from spark_tui.core.method.presets import apply_preset
        from spark_tui.core.model.resolve import ensure_default_model

        steps, seq = (2, 128) if self.dry else ((20, 1024) if key == "1b" else (10, 1024))
        dest, need = self.home / f"llama-{key}", NEED[f"run{key}"]
        argv = ["--side", "build", "--shape", json.dumps((TINY if self.dry else SHAPES)[key]),
                "--dest", str(dest), "--tok", str(self.base or ensure_default_model())]  # fmt: skip
        info, _ = self.child(f"build-{key}", argv, NEED[f"build{key}"])
        if info.get("state") != "finished":
            return {"reason": f"building the model failed: {info.get('error')}", "rows": []}
        data = self.long_data(seq, steps * 8 + 8)  # enough for TRL's default micro-batch of 8
        rows = []
        for method in ("lora", "qlora"):
            case = f"{key}-{method}"
            if method == "qlora" and not self.cuda:
                rows.append({"case": case, "status": "skipped", "error": "needs CUDA"})
                continue
            cfg = RunConfig(name=f"gs-{case}")
            cfg.model.id, cfg.data.path = str(dest), str(data)
            apply_method(cfg, method)
            cfg = apply_preset(cfg, "course")  # 3 epochs: max_steps below wins
            cfg.data.val_fraction, cfg.data.max_length = 0.0, seq  # = TRL's max_length default
            cfg.train.max_steps = steps
            rows.append(self.train_case(case, cfg, need))
        ours = rows[0]
        plain: dict[str, Any] = {"case": f"{key}-plain-trl", "adapter": "lora", "steps": steps}
        if ours["status"] != "ok" or self.left() < need * 1.3:
            why = "budget" if ours["status"] == "ok" else "our LoRA run (its data) is missing"
            plain.update(status="skipped", error=f"{why}: {self.left():.0f} s left")
        else:
            lc = RunConfig.load(Path(ours["run"]) / "run.toml").lora
            argv = ["--side", "plain", "--model", str(dest), "--data", ours["data_dir"],
                    "--steps", str(steps), "--lora", f"{lc.r},{lc.alpha},{lc.dropout}"]  # fmt: skip
            r, secs = self.child(plain["case"], argv, need * 1.3)
            status = "ok" if r.get("state") == "finished" else "failed"
            plain.update(r, seconds=secs, status=status)
        rows.append(plain)
        flops = 4 * info["flop_params"] / H200_BF16_PEAK_FLOPS  # LoRA / QLoRA: 4·N per token
        for row in rows:
            if row.get("status") == "ok" and row.get("runtime"):
                row["tps"] = row["tokens"] / row["runtime"]
                for k, tps in (("mfu", row["tps"]), ("mfu_steady", row.get("steady_tps"))):
                    row[k] = tps * flops if self.cuda and tps else None
        vs: dict[str, Any] = {"ours": ours["case"], "plain": plain["case"], "verdict": "n/a"}
        if ours.get("tps") and plain.get("tps"):
            vs["tps_ratio"] = ours["tps"] / plain["tps"]
        if ours.get("reserved_bytes") and plain.get("reserved_bytes"):  # CUDA only
            vs["mem_ratio"] = ours["reserved_bytes"] / plain["reserved_bytes"]
            good = vs.get("tps_ratio", 0) >= 2.0 and vs["mem_ratio"] <= 0.6
            vs["verdict"] = "OK" if good else "BELOW TARGET"
        shutil.rmtree(dest, ignore_errors=True)  # 16 GB for the 8B: keep the disk free
        return {"flop_params": info["flop_params"], "rows": rows, "versus": vs}

    def estimates(self) -> dict[str, Any]:
        keys = ("reserved_bytes", "allocated_bytes", "nvml_peak_bytes", "rss_peak_bytes")
        rows = []
        for sec in self.results["sections"].values():
            for r in sec.get("rows", []):
                if r.get("estimate_bytes") and r.get("status") == "ok":
                    est, got = r["estimate_bytes"], {k: r.get(k) for k in keys}
                    ratios = {f"{k}_ratio": est / v for k, v in got.items() if v}
                    rows.append({"case": r["case"], "estimate_bytes": est, **got, **ratios})
        return {"rows": rows}


def _fmt(v: Any, kind: str = "") -> str:
    if v is None or v == "":
        return "-"
    if kind:
        return {"gb": f"{v / GB:.2f}", "pct": f"{100 * v:.1f} %", "x": f"{v:.2f}x"}[kind]
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v).replace("|", "/").replace("\n", " ")


def _cols(spec: str) -> list[tuple[str, str, str]]:
    """'key=Title_words:kind ...' -> [(key, title, kind)] (the title defaults to the key)."""
    out = []
    for item in spec.split():
        key, _, rest = item.partition("=")
        title, _, kind = (rest or key).partition(":")
        out.append((key, title.replace("_", " "), kind))
    return out


_SMOKE = _cols("case status seconds=s final_loss=loss reserved_bytes=max_reserved_GB:gb "
               "packing attention merge gguf_bytes=GGUF_GB:gb error=error_/_reason")  # fmt: skip
_TPUT = _cols("case status steps seq mb tokens runtime=train_s tps=tok/s "
              "steady_tps=steady_tok/s mfu=MFU:pct mfu_steady=steady_MFU:pct "
              "reserved_bytes=max_reserved_GB:gb final_loss=loss error=error_/_reason")  # fmt: skip
_VS = _cols("ours=ours_(course_preset) plain=plain_TRL tps_ratio=tok/s_ratio_(>=2):x "
            "mem_ratio=peak_memory_ratio_(<=0.6):x verdict")  # fmt: skip
_EST = _cols("case estimate_bytes=estimate_GB:gb reserved_bytes=reserved_GB:gb "
             "reserved_bytes_ratio=est/reserved:x allocated_bytes=allocated_GB:gb "
             "nvml_peak_bytes=NVML_used_GB:gb nvml_peak_bytes_ratio=est/NVML:x "
             "rss_peak_bytes=host_RSS_GB:gb rss_peak_bytes_ratio=est/RSS:x")  # fmt: skip


def table(rows: list[dict[str, Any]], cols: list[tuple[str, str, str]]) -> str:
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(k), kind) for k, _, kind in cols) + " |" for r in rows]
    return "\n".join(lines)


def section_md(name: str, sec: dict[str, Any]) -> str:
    parts = [f"## {name}: {sec['status']} ({sec.get('seconds', 0):.0f} s)"]
    if sec.get("reason"):
        parts.append(sec["reason"])
    if sec["status"] == "done":
        cols = {"smoke": _SMOKE, "estimates": _EST}.get(name, _TPUT)
        parts.append(table(sec.get("rows", []), cols))
    if sec.get("versus"):
        parts.append(table([sec["versus"]], _VS))
    if sec.get("flop_params"):
        parts.append(f"MFU = 4·N·tok/s / {H200_BF16_PEAK_FLOPS / 1e12:.0f} TFLOPS (H200 dense "
                     f"bf16), N = {sec['flop_params']:,}; '-' without CUDA")  # fmt: skip
    return "\n\n".join(parts) + "\n"


def markdown(results: dict[str, Any]) -> str:
    lines = ["# GPU suite", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in results["meta"].items()]
    body = "\n".join(section_md(n, s) for n, s in results["sections"].items())
    return "\n".join(lines) + "\n\n" + body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, help="seconds for everything (450; dry run 1200)")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu_suite_out")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, 2 steps")
    ap.add_argument(
        "--shape-of",
        metavar="DIR",
        help="config + tokenizer of the default model: a random-weight copy stands in",
    )
    for hidden in ("--side", "--run", "--result", "--model", "--data", "--lora", "--shape",
                   "--dest", "--tok"):  # fmt: skip
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return run_side(args)
    args.budget = args.budget or (1200.0 if args.dry_run else 450.0)
    suite = Suite(args)
    if not suite.cuda and not args.dry_run:
        print("no CUDA GPU here: use --dry-run to check the script on CPU", file=sys.stderr)
        shutil.rmtree(suite.home, ignore_errors=True)
        return 2
    if args.shape_of:
        dest = suite.home / "default-shape"
        info, _ = suite.child("build-default", ["--side", "clone", "--tok", args.shape_of,
                                                "--dest", str(dest)], NEED["build1b"])  # fmt: skip
        if info.get("state") != "finished":
            print(f"building the stand-in model failed: {info.get('error')}", file=sys.stderr)
            return 1
        suite.base, suite.base_id = dest, str(dest)
        suite.results["meta"]["smoke_model"] = f"random weights, shape of {args.shape_of}"
    else:
        from spark_tui.core.model.resolve import ensure_default_model

        suite.base = ensure_default_model()  # converted once (cached); counted in the budget
        suite.results["meta"]["smoke_model"] = "the bundled default model"
    print(f"runs under {suite.home}; results in {suite.out}", flush=True)
    try:
        suite.section("smoke", suite.smoke, NEED["train"])
        suite.section("1b", lambda: suite.model_section("1b"), NEED["build1b"] + NEED["run1b"])
        suite.section("8b", lambda: suite.model_section("8b"), NEED["build8b"] + NEED["run8b"])
        suite.section("estimates", suite.estimates, 0)
    finally:
        shutil.rmtree(suite.home, ignore_errors=True)
    print(f"total {time.time() - suite.t0:.0f} s; wrote {suite.out}/gpu_suite.{{json,md}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
