"""Measure the memory estimator against real training steps.

    .venv/bin/python bench/memory_estimate.py            # all cases, CPU
    .venv/bin/python bench/memory_estimate.py --quick    # default model only
    .venv/bin/python bench/memory_estimate.py --cases default-lora,llama-full
    .venv/bin/python bench/memory_estimate.py --gpu --shapes real   # on a GPU: 1B and 8B shapes

Each case runs in a fresh subprocess so one case's allocations cannot hide
another's.  The child process:

1. imports torch / transformers / peft / bitsandbytes / trl and records its
   baseline (on CPU: resident set size, VmRSS; on a GPU: allocated bytes);
2. builds the model — the bundled default model, or a random-weight model of
   another architecture built from a shrunk catalogue config (Llama 3.1,
   Qwen2.5, Mistral shapes with fewer layers and a smaller hidden size, the
   real vocabulary) — QLoRA models are saved by the parent and loaded with a
   4-bit BitsAndBytesConfig, as training loads them;
3. resets the high-water mark after loading (`/proc/self/clear_refs` = 5 on
   CPU, `torch.cuda.reset_peak_memory_stats` on a GPU) so load-time transients
   (the fp32 copy that is quantized) do not count;
4. runs real optimisation steps the way TRL 1.16's SFTTrainer does: LoRA
   r=16 / alpha 32 / dropout 0.05 on all linear layers, gradient checkpointing
   (non-reentrant), TRL's fused LM head (`add_fused_lm_head`, no [T, V]
   logits), fused AdamW, labels = inputs;
5. reports the peak above the baseline (CPU: VmHWM - baseline RSS; GPU:
   torch.cuda.max_memory_allocated - baseline).

On CPU the prediction compared is the estimator's total minus its fixed runtime
overhead (the process baseline is not in the measurement), allocator slack
included; a second column compares the estimate without any overhead with the
peak of live tensor bytes seen by a dispatcher hook (no allocator noise).  On a
GPU, max_memory_allocated is compared with the estimate without overhead.
Targets: within ±25 % on CPU, ±15 % on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spark_tui.core.memory.estimator import estimate  # noqa: E402
from spark_tui.core.memory.settings import Settings  # noqa: E402
from spark_tui.core.model import catalog  # noqa: E402
from spark_tui.core.model.architecture import Architecture  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    model: str  # "default" or a catalogue id whose shapes are shrunk
    method: str  # full | lora | qlora
    max_length: int = 256
    batch: int = 2
    checkpointing: bool = True
    shrink: tuple[tuple[str, int], ...] = ()  # Architecture field changes

    def arch(self) -> Architecture:
        entry = catalog.get(self.model)
        assert entry is not None, self.model
        return entry.arch.shrunk(**dict(self.shrink)) if self.shrink else entry.arch


_LLAMA_SMALL = (
    ("num_layers", 6),
    ("hidden_size", 512),
    ("intermediate_size", 1792),
    ("num_heads", 8),
    ("num_kv_heads", 2),
    ("head_dim", 0),
)
_QWEN_SMALL = (
    ("num_layers", 6),
    ("hidden_size", 448),
    ("intermediate_size", 2432),
    ("num_heads", 7),
    ("num_kv_heads", 1),
)
_MISTRAL_SMALL = (
    ("num_layers", 8),
    ("hidden_size", 512),
    ("intermediate_size", 1792),
    ("num_heads", 8),
    ("num_kv_heads", 2),
)

CPU_CASES = [
    Case("default-full", "default", "full", 256, 1),
    Case("default-lora", "default", "lora", 256, 1),
    Case("default-qlora", "default", "qlora", 256, 1),
    Case("default-lora-nockpt", "default", "lora", 256, 1, checkpointing=False),
    Case("llama-full", "meta-llama/Llama-3.1-8B-Instruct", "full", shrink=_LLAMA_SMALL),
    Case("llama-lora", "meta-llama/Llama-3.1-8B-Instruct", "lora", shrink=_LLAMA_SMALL),
    Case("llama-qlora", "meta-llama/Llama-3.1-8B-Instruct", "qlora", shrink=_LLAMA_SMALL),
    Case("qwen2-full", "Qwen/Qwen2.5-0.5B-Instruct", "full", shrink=_QWEN_SMALL),
    Case("qwen2-lora", "Qwen/Qwen2.5-0.5B-Instruct", "lora", shrink=_QWEN_SMALL),
    Case("qwen2-qlora", "Qwen/Qwen2.5-0.5B-Instruct", "qlora", shrink=_QWEN_SMALL),
    Case("mistral-full", "mistralai/Mistral-7B-Instruct-v0.3", "full", shrink=_MISTRAL_SMALL),
    Case("mistral-lora", "mistralai/Mistral-7B-Instruct-v0.3", "lora", shrink=_MISTRAL_SMALL),
    Case("mistral-qlora", "mistralai/Mistral-7B-Instruct-v0.3", "qlora", shrink=_MISTRAL_SMALL),
]

# Real shapes for a GPU machine (random weights; 8B full FT needs > 128 GB, so LoRA/QLoRA).
GPU_CASES = [
    Case("llama1b-full", "meta-llama/Llama-3.2-1B-Instruct", "full", 2048, 1),
    Case("llama1b-lora", "meta-llama/Llama-3.2-1B-Instruct", "lora", 2048, 1),
    Case("llama1b-qlora", "meta-llama/Llama-3.2-1B-Instruct", "qlora", 2048, 1),
    Case("llama8b-lora", "meta-llama/Llama-3.1-8B-Instruct", "lora", 2048, 1),
    Case("llama8b-qlora", "meta-llama/Llama-3.1-8B-Instruct", "qlora", 2048, 1),
]


def settings_for(case: Case, device: str) -> Settings:
    base = Settings(
        adapter="full" if case.method == "full" else case.method,
        max_length=case.max_length,
        micro_batch=case.batch,
        gradient_checkpointing=case.checkpointing,
        precision="fp32" if device == "cpu" else "bf16",
        target="cpu" if device == "cpu" else "gpu",
    )
    return base


def predicted_bytes(case: Case, device: str) -> tuple[int, int]:
    e = estimate(case.arch(), settings_for(case, device), model=case.model)
    return e.total - e.overhead_fixed, e.total


def predicted_tensor_bytes(case: Case, device: str) -> int:
    """The estimate without any runtime overhead: comparable with live tensor bytes."""
    e = estimate(case.arch(), settings_for(case, device), model=case.model)
    return e.total - e.overhead


# --------------------------------------------------------------------------- child


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _trim() -> None:
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


class _LiveTensors:
    """Counts bytes of live CPU tensor storages seen by the dispatcher (inputs and outputs).

    A second, allocator-free view of the peak: parameters are counted from the first
    op that touches them, every intermediate until it is freed.
    """

    def __init__(self) -> None:
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.live = 0
        self.peak = 0
        self.seen: dict[int, int] = {}

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                from torch.utils._pytree import tree_flatten

                for t in tree_flatten((args, kwargs, out))[0]:
                    if isinstance(t, torch.Tensor):
                        tracker._add(t)
                return out

        self.mode = Mode()

    def _add(self, t) -> None:
        import weakref

        if t.device.type != "cpu":
            return
        try:
            st = t.untyped_storage()
        except Exception:
            return
        ptr = st.data_ptr()
        if ptr == 0 or ptr in self.seen:
            return
        n = st.nbytes()
        self.seen[ptr] = n
        self.live += n
        self.peak = max(self.peak, self.live)

        def fin(ptr: int = ptr) -> None:
            n = self.seen.pop(ptr, None)
            if n is not None:
                self.live -= n

        weakref.finalize(st, fin)


def _warmup(arch: Architecture, method: str, checkpointing: bool) -> None:
    """One step of a tiny model of the same type, so lazy imports and kernel set-up
    happen before the baseline is taken."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    tiny = arch.shrunk(
        num_layers=1,
        hidden_size=64,
        intermediate_size=128,
        num_heads=4,
        num_kv_heads=2,
        vocab_size=512,
        head_dim=0,
    )
    with tempfile.TemporaryDirectory() as d:  # exercise the from_pretrained code path too
        AutoModelForCausalLM.from_config(_hf_config(tiny)).save_pretrained(d)
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    m.config.use_cache = False
    if checkpointing:
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    add_fused_lm_head(m)
    if method != "full":
        from peft import LoraConfig, get_peft_model

        m = get_peft_model(
            m,
            LoraConfig(r=4, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        if checkpointing:
            m.enable_input_require_grads()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-5, fused=True)
    ids = torch.randint(0, 512, (2, 16))
    m(input_ids=ids, labels=ids, fused_lm_head=True).loss.backward()
    opt.step()
    del m, opt


def _detach_from_checkpoint(model) -> None:
    """Copy parameters out of the mmap'd safetensors file.

    transformers keeps the checkpoint mapped after loading (zero-copy CPU tensors;
    after a 4-bit load the whole fp32 file stays mapped because the 16-bit
    embeddings are views into it).  Those are clean file pages the kernel can
    reclaim like page cache, so the estimator does not count them; copying the
    parameters into ordinary memory and dropping the mapping makes RSS measure
    only what cannot be reclaimed.
    """
    for module in model.modules():
        for _name, p in list(module.named_parameters(recurse=False)):
            if type(p).__name__ != "Params4bit":
                p.data = p.data.clone()
        for name, b in list(module.named_buffers(recurse=False)):
            if b is not None:
                setattr(module, name, b.clone())


def _hf_config(arch: Architecture):
    from transformers import AutoConfig

    kw = dict(
        num_hidden_layers=arch.num_layers,
        hidden_size=arch.hidden_size,
        intermediate_size=arch.intermediate_size,
        num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_kv_heads,
        vocab_size=arch.vocab_size,
        tie_word_embeddings=arch.tie_embeddings,
        max_position_embeddings=min(arch.max_context, 8192),
    )
    if arch.head_dim:
        kw["head_dim"] = arch.head_dim
    return AutoConfig.for_model(arch.model_type, **kw)


def child(case: Case, device: str, model_dir: str | None, steps: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    import peft  # noqa: F401
    import transformers
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging
    from trl.trainer.utils import add_fused_lm_head

    hf_logging.set_verbosity_error()
    if case.method == "qlora":
        import bitsandbytes  # noqa: F401
    torch.manual_seed(0)
    cuda = device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    _warmup(case.arch(), case.method, case.checkpointing)
    _trim()
    base_rss = _status_kb("VmRSS")
    base_gpu = torch.cuda.memory_allocated() if cuda else 0

    t0 = time.time()
    if case.method == "qlora":
        qcfg = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            quantization_config=qcfg,
            dtype=dtype,
            device_map={"": 0} if cuda else {"": "cpu"},
        )
    elif model_dir:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    else:
        with torch.device("cuda" if cuda else "cpu"):
            model = AutoModelForCausalLM.from_config(_hf_config(case.arch()), dtype=torch.float32)
    if cuda and case.method != "qlora":
        model.to("cuda")
        if case.method == "lora":
            model.to(torch.bfloat16)
    model.config.use_cache = False
    if not cuda:
        _detach_from_checkpoint(model)
    if case.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    add_fused_lm_head(model)
    if case.method in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lcfg = LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lcfg)
        if case.checkpointing:
            model.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    load_s = time.time() - t0
    _trim()
    after_load_rss = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    vocab = model.config.vocab_size
    dev = "cuda" if cuda else "cpu"
    step_s = []
    tracker = _LiveTensors() if not cuda else None
    if tracker is not None:
        tracker.mode.__enter__()
    for _ in range(steps):
        t = time.time()
        ids = torch.randint(0, vocab, (case.batch, case.max_length), device=dev)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=cuda):
            out = model(input_ids=ids, labels=ids, fused_lm_head=True)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del out, ids
        step_s.append(time.time() - t)
    if tracker is not None:
        tracker.mode.__exit__(None, None, None)
    if cuda:
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated() - base_gpu
    else:
        measured = _status_kb("VmHWM") - base_rss
    return {
        "case": case.name,
        "measured": int(measured),
        "tensor_peak": int(tracker.peak) if tracker is not None else None,
        "after_load": int(after_load_rss - base_rss),
        "load_s": round(load_s, 1),
        "step_s": round(sum(step_s[1:]) / max(1, len(step_s) - 1), 2),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


# --------------------------------------------------------------------------- parent


def _save_random(case: Case, out: Path) -> None:
    """Save a random-weight bf16 model of the case's shape (QLoRA loads it quantized)."""
    code = (
        "import sys, torch; sys.path.insert(0, {!r})\n"
        "from memory_estimate import CPU_CASES, GPU_CASES, _hf_config\n"
        "from transformers import AutoModelForCausalLM\n"
        "case = {{c.name: c for c in CPU_CASES + GPU_CASES}}[{!r}]\n"
        "m = AutoModelForCausalLM.from_config(_hf_config(case.arch()), dtype=torch.bfloat16)\n"
        "m.save_pretrained({!r})\n"
    ).format(str(ROOT / "bench"), case.name, str(out))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def run_case(case: Case, device: str, steps: int, tmp: Path) -> dict:
    model_dir = None
    if case.model == "default" and not case.shrink:
        from spark_tui.core.model.resolve import ensure_default_model

        model_dir = str(ensure_default_model())
    elif case.method == "qlora":
        model_dir = str(tmp / case.name)
        _save_random(case, Path(model_dir))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        case.name,
        "--device",
        device,
        "--steps",
        str(steps),
    ]
    if model_dir:
        cmd += ["--model-dir", model_dir]
    env = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"case": case.name, "error": (proc.stderr or proc.stdout).strip()[-600:]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--device", default=None, choices=["cpu", "cuda"])
    ap.add_argument("--gpu", action="store_true", help="run on CUDA (same as --device cuda)")
    ap.add_argument(
        "--shapes",
        choices=["small", "real"],
        default=None,
        help="small: shrunk CPU cases; real: 1B/8B shapes (GPU)",
    )
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="only the default model")
    ap.add_argument("--cases", default="", help="comma-separated case names")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    device = args.device or ("cuda" if args.gpu else "cpu")
    all_cases = {c.name: c for c in CPU_CASES + GPU_CASES}

    if args.child:
        res = child(all_cases[args.child], device, args.model_dir, args.steps)
        print(json.dumps(res))
        return 0

    shapes = args.shapes or ("real" if device == "cuda" else "small")
    cases = GPU_CASES if shapes == "real" else CPU_CASES
    if args.quick:
        cases = [c for c in cases if c.model == "default"]
    if args.cases:
        wanted = args.cases.split(",")
        cases = [all_cases[n] for n in wanted]
    results = []
    header = (
        f"{'case':22s} {'tokens':>6s} {'predicted':>9s} {'RSS peak':>9s} {'ratio':>6s}  ok   "
        f"{'tensors':>8s} {'ratio':>6s}"
    )
    if not args.json:
        print(
            f"memory estimator vs measured peak above baseline ({device}, {time.strftime('%Y-%m-%d')})"
        )
        print(header)
    target = 0.25 if device == "cpu" else 0.15
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as tmpd:
        for case in cases:
            res = run_case(case, device, args.steps, Path(tmpd))
            pred, total = predicted_bytes(case, device)
            tensor_pred = predicted_tensor_bytes(case, device)
            if device == "cuda":
                # max_memory_allocated excludes the CUDA context and the caching
                # allocator's slack: compare it with the tensor part of the estimate.
                pred = tensor_pred
            res.update(
                predicted=pred,
                predicted_total=total,
                tokens=case.batch * case.max_length,
                method=case.method,
            )
            if "error" not in res:
                res["ratio"] = round(pred / res["measured"], 3) if res["measured"] > 0 else None
                res["ok"] = res["ratio"] is not None and abs(res["ratio"] - 1) <= target
                if res.get("tensor_peak"):
                    res["tensor_ratio"] = round(tensor_pred / res["tensor_peak"], 3)
            results.append(res)
            if not args.json:
                if "error" in res:
                    print(f"{case.name:22s} ERROR {res['error'][-300:]}")
                else:
                    tp = res.get("tensor_peak")
                    tail = f"{tp / 1e6:6.0f}MB {res['tensor_ratio']:6.2f}" if tp else ""
                    print(
                        f"{case.name:22s} {res['tokens']:6d} {pred / 1e6:7.0f}MB "
                        f"{res['measured'] / 1e6:7.0f}MB {res['ratio']:6.2f}  "
                        f"{'yes' if res['ok'] else 'NO ':3s}  {tail}  (step {res['step_s']}s)",
                        flush=True,
                    )
    if args.json:
        print(json.dumps(results, indent=2))
    bad = [r for r in results if "error" in r or not r.get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
