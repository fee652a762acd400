"""Feed every spark-tui hand-off kind to the real LLaMA-Factory and Axolotl, and report PASS/FAIL.

    .venv/bin/python scripts/check_handoff.py [--workdir DIR] [--kind NAME ...]

Not part of `make test`: it needs PyPI.  It installs LLaMA-Factory 0.9.5 and
Axolotl 0.19 with `--no-deps`, at library versions each supports, into two
throwaway venvs under DIR (a temporary folder by default; a given DIR keeps them
for the next run).  Each sees this project's venv read-only *after* its own
packages (a `.pth` line): torch is shared, never replaced; .venv is not touched.

Per kind (SFT LoRA/QLoRA/full, DPO, SimPO, ORPO, KTO, reward; with and without a
validation split) spark-tui prepares its sample data with the bundled default
model's tokenizer and writes the hand-off, pointed at that local model folder.
Each tool's own code reads it in a subprocess, Hub off: LLaMA-Factory's
`get_train_args`, `load_tokenizer`, `get_template_and_fix_tokenizer`,
`get_dataset` (and `configure_quantization` for 4-bit); Axolotl's `load_cfg`
(`validate_config` + `normalize_config`) and `load_datasets` /
`load_preference_datasets`, as `axolotl preprocess` does.  PASS: it loads, keeps
both splits, and every row renders (and, for SFT, is masked) as spark-tui trains.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]

# Versions each tool declares it supports (its wheel's Requires-Dist), pure-Python where it
# matters; everything else (torch, numpy, pyarrow, tokenizers' deps...) comes from the venv.
PINS = {
    "llamafactory": [
        "llamafactory==0.9.5",
        "transformers==5.6.0",  # <=5.6.0
        "trl==0.24.0",  # <=0.24.0
        "peft==0.18.1",  # >=0.18.0,<=0.18.1
        "datasets==4.0.0",  # <=4.0.0
        "accelerate==1.11.0",  # <=1.11.0
        "huggingface_hub==1.17.0",  # transformers 5.6: >=1.5,<2
        "tokenizers==0.22.2",  # transformers 5.6: <=0.23.0
        "dill==0.3.8",  # datasets 4.0: <0.3.9
        "multiprocess==0.70.16",  # datasets 4.0: <0.70.17
        "fsspec==2025.3.0",  # datasets 4.0: <=2025.3.0
        "omegaconf==2.3.0",  # reads the YAML in llamafactory-cli
        "antlr4-python3-runtime==4.9.3",
        "typer==0.25.1",
        "matplotlib==3.11.2",  # plot_loss: LLaMA-Factory checks that it is installed
    ],
    "axolotl": [
        "axolotl==0.19.0",
        "transformers==5.16.1",
        "trl==1.9.0",
        "peft==0.20.0",
        "datasets==4.8.4",
        "accelerate==1.13.0",
        "huggingface_hub==1.17.0",
        "tokenizers==0.23.1",
        "pydantic==2.12.5",
        "pydantic-core==2.41.5",
        "packaging==26.0",
        "fsspec==2026.2.0",
        "typer==0.25.1",
        "addict==2.4.0",
        "fire==0.7.1",
        "termcolor==3.3.0",
        "colorama==0.4.6",
        "art==6.5",
        "python-dotenv==1.0.1",
        "posthog==6.7.11",
        "backoff==2.2.1",
        "distro==1.9.0",
        "pillow==13.0.0",
        "numba==0.68.1",  # <1.0,>=0.63.1
        "llvmlite==0.50.0",
    ],
}
# Modules a tool imports at the top of its data path that have no wheel for this torch;
# a stub that fails on use (said in the output).
STUBS = {
    "llamafactory": {
        "torchaudio": "LLaMA-Factory's multimodal plugin imports it; no torchaudio wheel "
        "exists for this torch, and no audio is read here",
    },
}
STUB_SOURCE = '''"""Stub written by spark-tui's scripts/check_handoff.py: {why}."""


def __getattr__(name):
    raise ImportError("torchaudio is a stub in this check environment")
'''
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    "CUDA_VISIBLE_DEVICES": "",
}
# kind -> run.toml settings
KINDS: dict[str, dict[str, Any]] = {
    "sft-lora": {"method.objective": "sft", "method.adapter": "lora"},
    "sft-qlora": {"method.objective": "sft", "method.adapter": "qlora"},
    "sft-full": {"method.objective": "sft", "method.adapter": "full"},
    "dpo": {"method.objective": "dpo"},
    "simpo": {"method.objective": "simpo"},
    "orpo": {"method.objective": "orpo"},
    "kto": {"method.objective": "kto"},
    "reward": {"method.objective": "reward"},
}

# The runners execute inside the tools' venvs (written next to the cases, run as scripts).
RUNNER_COMMON = """
import json, sys, traceback, warnings

warnings.filterwarnings("ignore")


def decode(tok, ids, labels=None):
    text = tok.decode(ids, skip_special_tokens=False)
    if labels is None:
        return text, None
    return text, tok.decode([t for t, l in zip(ids, labels) if l != -100], skip_special_tokens=False)


def run(check):
    for case in json.load(open(sys.argv[1])):
        res = {"id": case["id"]}
        try:
            res.update(check(case["yaml"]))
            res["ok"] = True
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a tool's refusal is the result
            traceback.print_exc()
            res.update(ok=False, error=(type(exc).__name__ + ": " + str(exc)).strip()[:1500])
        print("@@RESULT " + json.dumps(res, default=str), flush=True)
"""
RUNNER = {
    "llamafactory": """
from omegaconf import OmegaConf
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.hparams import get_train_args
from llamafactory.model import load_tokenizer


def texts(tok, ds):
    out, trained = [], []
    for ex in ds:
        key = "chosen_input_ids" if "chosen_input_ids" in ex else "input_ids"
        t, m = decode(tok, ex[key], ex.get(key.replace("input_ids", "labels")))
        out.append(t)
        trained.append(m)
    return out, trained


def check(path):
    args = OmegaConf.to_container(OmegaConf.load(path))  # as llamafactory-cli reads it
    model_args, data_args, training_args, ft_args, _ = get_train_args(args)
    tm = load_tokenizer(model_args)
    tok = tm["tokenizer"]
    template = get_template_and_fix_tokenizer(tok, data_args)
    stage = "rm" if ft_args.stage == "dpo" else ft_args.stage  # as its dpo workflow loads
    dm = get_dataset(template, model_args, data_args, training_args, stage=stage, **tm)
    train, evald = dm["train_dataset"], dm.get("eval_dataset")
    train_texts, trained = texts(tok, train)
    facts = {
        "stage": ft_args.stage, "pref_loss": ft_args.pref_loss, "pref_beta": ft_args.pref_beta,
        "simpo_gamma": ft_args.simpo_gamma, "kto_weights": [ft_args.kto_chosen_weight,
        ft_args.kto_rejected_weight], "bf16": training_args.bf16, "fp16": training_args.fp16,
        "compute_dtype": model_args.compute_dtype, "warmup_steps": training_args.warmup_steps,
        "val_size": data_args.val_size, "eval_dataset": data_args.eval_dataset,
        "do_eval": training_args.do_eval, "default_system": template.default_system,
        "packing": data_args.packing, "neat_packing": data_args.neat_packing,
        "batch": training_args.per_device_train_batch_size, "cutoff_len": data_args.cutoff_len,
    }
    problems = []
    if model_args.quantization_bit:
        from transformers import AutoConfig
        from llamafactory.model.model_utils.quantization import configure_quantization

        kw = {}
        config = AutoConfig.from_pretrained(model_args.model_name_or_path)
        configure_quantization(config, tok, model_args, True, kw)
        qc = kw.get("quantization_config")
        if qc is None:
            problems.append("quantization_bit is set but no quantization config was built")
        else:
            facts["quantization"] = [qc.load_in_4bit, qc.bnb_4bit_quant_type,
                                     qc.bnb_4bit_use_double_quant, str(qc.bnb_4bit_compute_dtype)]
    return {"train": len(train), "eval": len(evald) if evald is not None else 0,
            "texts": train_texts, "trained": trained, "facts": facts, "problems": problems}


if __name__ == "__main__":  # tools start worker processes by spawn
    run(check)
""",
    "axolotl": """
from axolotl.cli.config import load_cfg
from axolotl.common.datasets import load_datasets, load_preference_datasets
from axolotl.loaders import load_tokenizer


def text_of(tok, ex):
    for key in ("input_ids_chosen", "chosen_ids", "chosen_input_ids", "input_ids"):
        if key in ex and not isinstance(ex[key], str):
            return decode(tok, ex[key], ex.get("labels") if key == "input_ids" else None)
    answer = ex.get("chosen", ex.get("completion"))
    return ex["prompt"] + answer, None


def check(path):
    cfg = load_cfg(path)  # validate_config + normalize_config, as the CLI
    meta = load_preference_datasets(cfg=cfg) if cfg.rl else load_datasets(cfg=cfg)
    tok = load_tokenizer(cfg)
    pairs = [text_of(tok, ex) for ex in meta.train_dataset]
    keys = ["rl", "rl_beta", "orpo_alpha", "simpo_gamma", "cpo_alpha", "bf16", "fp16",
            "torch_dtype", "warmup_steps", "warmup_ratio", "remove_unused_columns",
            "sample_packing", "val_set_size", "chat_template", "micro_batch_size",
            "kto_desirable_weight", "kto_undesirable_weight", "excess_length_strategy",
            "eval_steps", "sequence_len"]
    facts = {k: cfg.get(k) for k in keys}
    facts["types"] = [d.get("type") for d in (cfg.datasets or []) + (cfg.test_datasets or [])]
    facts["total_num_steps"] = meta.total_num_steps
    evald = meta.eval_dataset
    return {"train": len(meta.train_dataset), "eval": len(evald) if evald is not None else 0,
            "texts": [p[0] for p in pairs], "trained": [p[1] for p in pairs], "facts": facts}


if __name__ == "__main__":  # tools start worker processes by spawn
    run(check)
""",
}


def _say(msg: str) -> None:
    print(msg, flush=True)


def make_venv(root: Path, tool: str) -> Path:
    """A venv for `tool` with its pins (reused when its marker matches), seeing ours after its own."""
    venv = root / f"venv-{tool}"
    marker = venv / ".check-handoff-pins"
    want = "\n".join(PINS[tool])
    if marker.exists() and marker.read_text() == want:
        return venv
    _say(f"[setup] {tool}: creating {venv} and installing {len(PINS[tool])} pinned packages")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    ours = sysconfig.get_paths()["purelib"]
    # .pth lines are appended to sys.path after this venv's own site-packages: its pins win.
    (site / "zz_spark_tui_venv.pth").write_text(ours + "\n")
    cmd = [str(py), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check"]
    with (root / f"pip-{tool}.log").open("w") as log:
        subprocess.run([*cmd, *PINS[tool]], check=True, stdout=log, stderr=subprocess.STDOUT)
    for module, why in STUBS.get(tool, {}).items():
        (site / module).mkdir(exist_ok=True)
        (site / module / "__init__.py").write_text(STUB_SOURCE.format(why=why))
    marker.write_text(want)
    return venv


def _prepare(root: Path) -> tuple[Any, Path, dict[tuple[str, bool], Any]]:
    """The default model's tokenizer, its local folder, and prepared data per layout."""
    from transformers import AutoTokenizer

    from spark_tui.config import RunConfig
    from spark_tui.core.data.prepare import prepare_dataset
    from spark_tui.core.model.resolve import ensure_default_model

    model_dir = ensure_default_model()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    prepared: dict[tuple[str, bool], Any] = {}
    for objective in ("sft", "dpo", "kto"):
        for with_val in (True, False):
            cfg = RunConfig(name="check").with_value("method.objective", objective)
            cfg = cfg.with_value("data.val_fraction", 0.1 if with_val else 0.0)
            prepared[(objective, with_val)] = prepare_dataset(cfg, tok)
    return tok, model_dir, prepared


def _expected(tok: Any, objective: str, rows: list[dict[str, Any]], system: str | None) -> dict:
    """The texts spark-tui's trainer renders for prepared rows (chosen side for pairs), and
    for SFT the text its labels train on."""
    from spark_tui.core.data.labels import sft_labels
    from spark_tui.core.review.handoff_rows import with_system

    def msgs(value: Any) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in value]

    texts, trained = [], []
    for row in rows:
        if objective == "sft":
            texts.append(tok.apply_chat_template(msgs(row["messages"]), tokenize=False))
            lab = sft_labels(row, tok)
            ids = (
                [t for t, lb in zip(lab["input_ids"], lab["labels"], strict=True) if lb != -100]
                if lab
                else []
            )
            trained.append(tok.decode(ids))
            continue
        answer = row["completion"] if objective == "kto" else row["chosen"]
        conv = with_system(msgs(row["prompt"]), system) + msgs(answer)
        texts.append(tok.apply_chat_template(conv, tokenize=False))
    return {"texts": texts, "trained": trained}


def build_cases(root: Path, kinds: list[str]) -> list[dict[str, Any]]:
    """Write every hand-off, point it at the local model, and note the expected first text."""
    from spark_tui.config import RunConfig
    from spark_tui.core.review.handoff import write_handoff
    from spark_tui.core.review.handoff_facts import run_facts, system_prompt_for

    tok, model_dir, prepared = _prepare(root)
    cases = []
    variants = [(kind, v) for kind in kinds for v in ("val", "noval")]
    if "sft-lora" in kinds:
        variants.append(("sft-lora", "auto"))
    for kind, variant in variants:
        with_val = variant != "noval"
        cfg = RunConfig(name=kind)
        for key, value in KINDS[kind].items():
            cfg = cfg.with_value(key, value)
        obj = cfg.method.objective
        data = prepared[("dpo" if obj in ("simpo", "orpo", "reward") else obj, with_val)]
        train, val = data.train.to_list(), data.validation.to_list()
        case_id = f"{kind}/{variant}"
        out = root / "cases" / case_id.replace("/", "-")
        shutil.rmtree(out, ignore_errors=True)  # no cached tokenization from an earlier run
        # As for a run trained on this CPU machine ("auto" -> fp32); the "auto" variant is
        # a run not trained yet, whose target machine is unknown.
        precision = None if variant == "auto" else "fp32"
        files = write_handoff(cfg, out, train, eval_rows=val, tokenizer=tok, precision=precision)
        system = system_prompt_for(cfg, run_facts(cfg, train, val, tok))
        lf = yaml.safe_load(files.llamafactory_yaml.read_text())
        lf.update(model_name_or_path=str(model_dir), output_dir=str(out / "lf-out"))
        ax = yaml.safe_load(files.axolotl_yaml.read_text())
        ax.update(
            base_model=str(model_dir),
            output_dir=str(out / "ax-out"),
            dataset_prepared_path=str(out / "ax-prepared"),
            dataset_num_proc=1,  # check only: no spawned worker pools on 2 cores (same rows)
        )
        (out / "check-llamafactory.yaml").write_text(yaml.safe_dump(lf, sort_keys=False))
        (out / "check-axolotl.yaml").write_text(yaml.safe_dump(ax, sort_keys=False))
        cases.append(
            {
                "id": case_id,
                "objective": obj,
                "llamafactory": str(out / "check-llamafactory.yaml"),
                "axolotl": str(out / "check-axolotl.yaml"),
                "train_rows": len(train),
                "eval_rows": len(val),
                "expected": _expected(tok, obj, train, system),
            }
        )
    return cases


def run_tool(root: Path, tool: str, cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run `tool`'s runner over all cases in its venv; one result per case id."""
    venv = make_venv(root, tool)
    listing = root / f"cases-{tool}.json"
    listing.write_text(json.dumps([{"id": c["id"], "yaml": c[tool]} for c in cases]))
    env = {**os.environ, **ENV, "HF_HOME": str(root / "hf-home")}
    env.pop("PYTHONPATH", None)
    log = root / f"{tool}.log"
    runner = root / f"runner_{tool}.py"
    runner.write_text(RUNNER_COMMON + RUNNER[tool])
    _say(f"[run] {tool}: {len(cases)} cases (log: {log})")
    with log.open("w") as fh:
        proc = subprocess.run(
            [str(venv / "bin" / "python"), str(runner), str(listing)],
            stdout=subprocess.PIPE,
            stderr=fh,
            text=True,
            env=env,
            cwd=root,
            timeout=3600,
        )
    tag = "@@RESULT "
    marked = [ln[len(tag) :] for ln in proc.stdout.splitlines() if ln.startswith(tag)]
    results = {r["id"]: r for r in map(json.loads, marked)}
    for c in cases:
        results.setdefault(
            c["id"], {"ok": False, "error": f"runner exited {proc.returncode}; see {log}"}
        )
    return results


def _norm(text: str | None) -> str:
    return (text or "").rstrip()  # tools differ only in the trailing newline of a render


def _diff(got: list[Any], want: list[Any], what: str) -> str:
    """'' when both hold the same texts (any order: tools may shuffle), else the first difference."""
    g, w = sorted(map(_norm, got)), sorted(map(_norm, want))
    if g == w:
        return ""
    extra = [t for t in g if t not in set(w)]
    missing = [t for t in w if t not in set(g)]
    a, b = (extra or g)[0], (missing or w)[0]
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lo = max(0, i - 60)
    return (
        f"{len(extra)} of {len(g)} {what} differ from spark-tui's; first at char {i}:\n"
        f"      tool:      {a[lo : i + 60]!r}\n      spark-tui: {b[lo : i + 60]!r}"
    )


# An error only a GPU machine avoids: the "auto" hand-off is for one (bf16 on Ampere or newer).
CPU_LIMITS = ("doesn't support bf16/gpu",)


def judge(case: dict[str, Any], res: dict[str, Any]) -> tuple[str, str]:
    """PASS when the tool loaded the case, kept the splits, and renders what spark-tui trains."""
    if not res.get("ok"):
        error = res.get("error", "failed")
        if case["id"].endswith("/auto") and any(m in error for m in CPU_LIMITS):
            return "CPU-LIMIT", "needs a GPU with bf16 (as written for one): " + error
        return "FAIL", error
    problems = list(res.get("problems", []))
    if res.get("train") != case["train_rows"]:
        problems.append(f"train rows {res.get('train')} != {case['train_rows']}")
    if res.get("eval", 0) != case["eval_rows"]:
        problems.append(f"eval rows {res.get('eval')} != {case['eval_rows']}")
    problems.append(_diff(res["texts"], case["expected"]["texts"], "rendered rows"))
    note = ""
    if case["expected"]["trained"]:
        trained = res.get("trained") or []
        mask = _diff(trained, case["expected"]["trained"], "trained spans")
        # LLaMA-Factory's ChatML assistant slot is "{{content}}<|im_end|>\n": it also trains
        # the newline after each turn's end token (every ChatML template of it does).
        loose = [(t or "").replace("<|im_end|>\n", "<|im_end|>") for t in trained]
        if mask and not _diff(loose, case["expected"]["trained"], ""):
            mask, note = "", "; note: it also trains the newline after each <|im_end|>"
        problems.append(mask)
    problems = [p for p in problems if p]
    if problems:
        return "FAIL", "; ".join(problems)
    how = "rendered and masked" if case["expected"]["trained"] else "rendered"
    return "PASS", f"{res['train']}+{res['eval']} rows {how} as spark-tui trains{note}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, help="keep venvs and files here (reused next time)")
    ap.add_argument("--kind", action="append", choices=sorted(KINDS), help="only these kinds")
    args = ap.parse_args(argv)
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="spark-handoff-check-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.update({k: v for k, v in ENV.items() if k.startswith(("HF_", "TRANSFORMERS"))})
    kinds = args.kind or list(KINDS)
    _say(f"[setup] work folder: {root}")
    for tool, stubs in STUBS.items():
        for module, why in stubs.items():
            _say(f"[setup] {tool}: stubbed module '{module}' ({why})")
    cases = build_cases(root, kinds)
    results = {tool: run_tool(root, tool, cases) for tool in ("llamafactory", "axolotl")}
    _say("")
    _say(f"{'kind':<20} {'tool':<13} result")
    counts = {"PASS": 0, "FAIL": 0, "CPU-LIMIT": 0}
    for c in cases:
        for tool in ("llamafactory", "axolotl"):
            status, detail = judge(c, results[tool][c["id"]])
            counts[status] += 1
            _say(f"{c['id']:<20} {tool:<13} {status:<9} {detail}")
    facts = {t: {c["id"]: results[t][c["id"]].get("facts") for c in cases} for t in results}
    (root / "facts.json").write_text(json.dumps(facts, indent=1, default=str))
    _say(f"\nwhat each tool parsed, per case: {root / 'facts.json'}")
    limits = f", {counts['CPU-LIMIT']} skipped (CPU limit)" if counts["CPU-LIMIT"] else ""
    _say(f"{counts['PASS']} passed, {counts['FAIL']} failed{limits}")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
