"""Peak memory of the deploy step (merge, GGUF export + verification) for two model sizes.

    .venv/bin/python bench/deploy_memory.py            # ~0.8 GB and ~3.1 GB models
    .venv/bin/python bench/deploy_memory.py --quick    # ~0.8 GB and ~1.4 GB

The claim under test: merge, export and its tensor verification cost memory
in proportion to one shard / one tensor, not to the model.  Two random-weight
Llama-shaped bf16 models are generated with the *same* layer shapes and shard
size (hidden 2048, the bundled model's 49152-token vocabulary, 256 MB
shards) and a different number of layers, so everything that should not grow
stays equal and only the model's total size changes.  Each gets a random LoRA
adapter (r=16 on every linear layer, non-zero B).

Each stage runs in a fresh child process that imports its libraries first,
records its resident set (VmRSS) as the baseline, runs the stage and reports
VmHWM (the high-water mark) minus that baseline:

1. merge       - streaming merge of the adapter into the bf16 base
2. export      - GGUF f16 written + tokenization and tensor verification
3. logits      - the logits check (loads the model when it fits; own line)

Printed: peak above baseline and seconds per stage, peak / model size, the
large/small ratio per stage (target <= 1.3 for merge and export) and a 70B
extrapolation: the large model's peak scaled by the ratio of Llama 3.1 70B's
largest shard (~5 GB) to this model's largest shard.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HIDDEN = 2048
INTERMEDIATE = 5632
HEADS = 16
KV_HEADS = 4
SHARD_BYTES = 256 * 1024**2
RANK = 16
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# Llama 3.1 70B Instruct on the Hub: 30 shards of at most ~5 GB (bf16).
SHARD_70B = 5.0e9


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------------
# model generation (one shard in memory at a time)


def _shapes(n_layers: int, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    hd = HIDDEN // HEADS
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, HIDDEN))]
    for i in range(n_layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (HIDDEN,)),
            (p + "self_attn.q_proj.weight", (HEADS * hd, HIDDEN)),
            (p + "self_attn.k_proj.weight", (KV_HEADS * hd, HIDDEN)),
            (p + "self_attn.v_proj.weight", (KV_HEADS * hd, HIDDEN)),
            (p + "self_attn.o_proj.weight", (HIDDEN, HEADS * hd)),
            (p + "post_attention_layernorm.weight", (HIDDEN,)),
            (p + "mlp.gate_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.up_proj.weight", (INTERMEDIATE, HIDDEN)),
            (p + "mlp.down_proj.weight", (HIDDEN, INTERMEDIATE)),
        ]
    out += [("model.norm.weight", (HIDDEN,)), ("lm_head.weight", (vocab, HIDDEN))]
    return out


def generate(folder: Path, n_layers: int) -> dict:
    """A random-weight bf16 Llama folder + a random LoRA adapter beside it."""
    import torch
    from safetensors.torch import save_file

    from spark_tui.core.model.resolve import ensure_default_model

    tok_dir = ensure_default_model()
    vocab = json.loads((tok_dir / "config.json").read_text())["vocab_size"]
    base = folder / "base"
    base.mkdir(parents=True)
    for f in tok_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy2(f, base / f.name)
    g = torch.Generator().manual_seed(0)
    shapes = _shapes(n_layers, vocab)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    weight_map: dict[str, str] = {}
    total = 0
    names: list[str] = []

    def flush() -> None:
        idx = len(names) + 1
        name = f"model-{idx:05d}.safetensors"
        names.append(name)
        save_file(shards[0], str(base / name), metadata={"format": "pt"})
        for k in shards[0]:
            weight_map[k] = name
        shards[0] = {}

    for key, shape in shapes:
        if len(shape) == 1:
            t = (1.0 + 0.05 * torch.randn(shape, generator=g)).to(torch.bfloat16)
        else:
            t = (0.02 * torch.randn(shape, generator=g)).to(torch.bfloat16)
        nbytes = t.numel() * 2
        if size and size + nbytes > SHARD_BYTES:
            flush()
            size = 0
        shards[0][key] = t
        size += nbytes
        total += nbytes
    if shards[0]:
        flush()
    n = len(names)
    for old in names:  # HF names: model-00001-of-0000N.safetensors
        new = old.replace(".safetensors", f"-of-{n:05d}.safetensors")
        (base / old).rename(base / new)
        for k, v in list(weight_map.items()):
            if v == old:
                weight_map[k] = new
    (base / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=1)
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": n_layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "bos_token_id": 1,
        "eos_token_id": 2,
        "dtype": "bfloat16",
    }
    (base / "config.json").write_text(json.dumps(config, indent=1))

    adapter = folder / "adapter"
    adapter.mkdir()
    lora: dict[str, torch.Tensor] = {}
    for key, shape in shapes:
        mod = key.rsplit(".", 2)[-2] if key.endswith(".weight") else ""
        if mod not in TARGETS:
            continue
        stem = "base_model.model." + key[: -len(".weight")]
        lora[stem + ".lora_A.weight"] = 0.02 * torch.randn((RANK, shape[1]), generator=g)
        lora[stem + ".lora_B.weight"] = 0.02 * torch.randn((shape[0], RANK), generator=g)
    save_file(lora, str(adapter / "adapter_model.safetensors"), metadata={"format": "pt"})
    (adapter / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "task_type": "CAUSAL_LM",
                "r": RANK,
                "lora_alpha": 2 * RANK,
                "lora_dropout": 0.0,
                "target_modules": list(TARGETS),
                "base_model_name_or_path": str(base),
                "bias": "none",
                "fan_in_fan_out": False,
                "use_rslora": False,
                "use_dora": False,
            },
            indent=1,
        )
    )
    return {
        "model_bytes": total,
        "largest_shard": max(p.stat().st_size for p in base.glob("*.safetensors")),
        "n_shards": n,
        "adapter_bytes": (adapter / "adapter_model.safetensors").stat().st_size,
    }


# ---------------------------------------------------------------------------
# stages (each in its own child process)


def _stage(stage: str, folder: Path) -> dict:
    import torch  # noqa: F401 - imported before the baseline, as every stage needs it
    import transformers  # noqa: F401

    from spark_tui.core.export import merge, pipeline, verify  # noqa: F401

    base_rss = _status_kb("VmRSS")
    t0 = time.monotonic()
    info: dict = {}
    if stage == "merge":
        res = merge.merge_adapter(
            folder / "adapter", folder / "merged", base_model=str(folder / "base"), check=False
        )
        info["path"] = getattr(res, "path", None)
    elif stage == "export":
        out = pipeline.export_model(
            folder / "merged", folder / "gguf", ["f16"], verify=True, logits=False
        )
        rep = out.verifications["f16"]
        info["passed"] = rep.passed
        info["summary"] = rep.summary_lines()
    elif stage == "logits":
        gguf = next((folder / "gguf").glob("*-f16.gguf"))
        rep = verify.verify_gguf(gguf, folder / "merged", gguf_type="f16", tensors=False)
        info["passed"] = rep.passed
        info["summary"] = rep.summary_lines()
    else:
        raise SystemExit(f"unknown stage {stage}")
    info["seconds"] = time.monotonic() - t0
    info["peak_kb"] = _status_kb("VmHWM") - base_rss
    info["baseline_kb"] = base_rss
    return info


def run_stage(stage: str, folder: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller second model (~1.4 GB)")
    ap.add_argument("--keep", action="store_true", help="keep the generated models")
    ap.add_argument("--child", nargs=2, metavar=("STAGE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        print(json.dumps(_stage(args.child[0], Path(args.child[1])), default=str))
        return

    sizes = {"small": 4, "large": 14 if args.quick else 30}
    work = Path(tempfile.mkdtemp(prefix="deploy-memory-", dir=os.environ.get("BENCH_TMP")))
    results: dict[str, dict] = {}
    try:
        for label, layers in sizes.items():
            folder = work / label
            gen = generate(folder, layers)
            print(
                f"{label}: {layers} layers, {gen['model_bytes'] / 1e9:.2f} GB bf16 in "
                f"{gen['n_shards']} shards (largest {gen['largest_shard'] / 1e6:.0f} MB), "
                f"adapter {gen['adapter_bytes'] / 1e6:.0f} MB",
                flush=True,
            )
            row = dict(gen)
            for stage in ("merge", "export", "logits"):
                r = run_stage(stage, folder)
                row[stage] = r
                print(
                    f"  {stage:7s} peak {r['peak_kb'] / 1024:7.0f} MB above baseline "
                    f"({r['peak_kb'] * 1024 / gen['model_bytes']:.2f} x model)  "
                    f"{r['seconds']:6.1f} s" + ("" if r.get("passed", True) else "  NOT PASSED"),
                    flush=True,
                )
                if stage == "logits":
                    for line in r.get("summary", []):
                        if "logits" in line or "skipped" in line:
                            print(f"          {line}")
            results[label] = row
            shutil.rmtree(folder / "gguf", ignore_errors=True)
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    s, big = results["small"], results["large"]
    print(f"\nmodel size ratio large/small: {big['model_bytes'] / s['model_bytes']:.2f}")
    for stage in ("merge", "export", "logits"):
        ratio = big[stage]["peak_kb"] / max(1, s[stage]["peak_kb"])
        target = "  (target <= 1.3)" if stage != "logits" else "  (loads the model: grows)"
        print(f"peak ratio large/small, {stage:7s}: {ratio:.2f}{target}")
    scale = SHARD_70B / big["largest_shard"]
    for stage in ("merge", "export"):
        gb = big[stage]["peak_kb"] * 1024 * scale / 1e9
        print(f"70B extrapolation, {stage:7s}: {gb:.1f} GB (target < 40 GB)")


if __name__ == "__main__":
    main()
