"""Help texts for every screen, distilled from the course material (../shared/seeds)."""

from __future__ import annotations

_COMMON_KEYS = """
---
**Keys:** `Tab`/`Shift+Tab` move between fields · `Enter` activates ·
`Ctrl+N` / `Ctrl+B` next / back · `F1` or `?` this help · `Ctrl+Q` quit.
"""

HELP: dict[str, str] = {
    "welcome": """
# spark-tui

A guided path from *"I have a GPU box and a pile of examples"* to
*"my fine-tuned model answers in Ollama"*.

1. **Model** – pick the bundled default (works offline), a catalogue model or a local folder.
2. **Memory** – know before loading whether the run fits this machine.
3. **Dataset** – load, check, clean and preview your examples.
4. **Method** – LoRA / QLoRA / DoRA / full fine-tuning; SFT, DPO, SimPO, ORPO, KTO.
5. **Review & Train** – training runs in its own process: close the terminal, come back, re-attach.
6. **Evaluate** – held-out loss, base vs tuned side by side, chat.
7. **Deploy** – merge, export GGUF, write an Ollama Modelfile, register it.

Every run is a folder with a `run.toml`; `spark-tui train run.toml` reruns it headless.

**Rule of thumb (course):** start with prompting, add RAG for knowledge,
fine-tune for behaviour (style, format, persona). Under ~100 examples, fine-tuning rarely pays.
""",
    "model": """
# Choosing a model

* **Bundled default** – SmolLM2-135M-Instruct: tiny, offline, trains on a CPU in minutes. Use it to learn the flow.
* **Catalogue** – Llama 3.1 8B/70B, Mistral 7B, Qwen2.5, TinyLlama, Gemma 2, Phi-3.5.
  *Gated* models (Llama, Gemma) need you to accept the licence on the Hub and a token:
  run `hf auth login` or set `HF_TOKEN`. spark-tui never stores the token.
* **Local folder** – anything saved with `save_pretrained` (config.json, weights, tokenizer).

**Instruct vs base:** fine-tune an *Instruct* model for chat-style tasks – it already follows instructions
and has a chat template.

`trust_remote_code` runs Python code shipped with the model. It stays **off** unless you turn it on
for a model you trust.
""",
    "memory": """
# Will it fit?

Peak memory ≈ weights + adapters + gradients + optimizer states + activations (+ a reference model for DPO).

| Method | Bytes per parameter (base) | DGX Spark (128 GB) |
|---|---|---|
| Full fine-tuning, AdamW | ~16 (bf16 weights, fp32 master, 2 Adam states) | up to ~8B |
| LoRA (16-bit base) | ~2 | 8B easily |
| QLoRA (4-bit NF4) | ~0.55 | **70B** |

* **Gradient checkpointing** recomputes activations in the backward pass: ~20–30 % slower, far
  less memory. On *auto* (the default) it is used only when the run would not fit without it.
* **Paged 8-bit optimizers** move optimizer state out of the way when memory spikes.
* **DGX Spark has unified memory**: the GPU and the CPU share 128 GB. `nvidia-smi` shows no GPU
  memory there, so budget against system memory. The **page cache** (files read recently) holds
  part of it; before loading a big model the course runs
  `sync; echo 3 | sudo tee /proc/sys/vm/drop_caches` to free it.
""",
    "dataset": """
# Your data

Formats recognised automatically:

* **Alpaca** – `instruction`, `input`, `output`
* **ShareGPT** – `conversations` with `from` / `value`
* **OpenAI messages** – `messages` with `role` / `content`
* **prompt / completion**, plain **text**
* **Preference pairs** – `prompt`, `chosen`, `rejected` (DPO, SimPO, ORPO)
* **Thumbs up/down** – `prompt`, `completion`, `label` (KTO)

The **chat template** turns a conversation into the exact text the model sees; training and deployment
must use the same one. Only the assistant's tokens are trained on; the preview highlights them.

Quality beats quantity: a few hundred clean, consistent examples teach a style; duplicates and
contradictions teach noise. Always keep a held-out validation split.
""",
    "method": """
# Method

**LoRA** freezes the weights W₀ and learns a low-rank update: W = W₀ + (α/r)·B·A.

| Rank r | When |
|---|---|
| 8 | quick experiments, simple tasks |
| 16 | default – start here |
| 32 | complex tasks, domain knowledge |
| 64 | maximum quality, approaching full fine-tuning |

α is usually r or 2r. Targets: *attention* (q,k,v,o) or *all linear* layers (better, a bit more memory).

* **QLoRA** – base in 4-bit NF4 with double quantization, adapters in 16-bit: 70B on one Spark.
* **DoRA** – splits weights into magnitude and direction; a drop-in LoRA upgrade (+~3.7 pts reported).
* **rsLoRA** – scales by α/√r: stabler at high ranks.
* **NEFTune** – noise on embeddings during training only (α≈5); often better chat quality.

| Objective | Data | Best for |
|---|---|---|
| SFT | instructions | teaching a task, style or persona |
| DPO | pairs | proven baseline |
| SimPO | pairs | no reference model, strong quality |
| ORPO | pairs | least memory, SFT + preference in one stage |
| KTO | thumbs up/down | when you only have single ratings |
| Reward model | pairs | scoring answers for RLHF |
""",
    "review": """
# Review

This is the whole run: the config that will be saved as `run.toml`, the memory verdict, and the
equivalent command line. Training starts in **its own process**: you can close the terminal and
re-attach later from the welcome screen or with `spark-tui attach RUN`.
""",
    "train": """
# Training

* **Loss** should fall, then flatten. A loss that explodes or turns NaN means the learning rate is too
  high or the data is broken; spark-tui stops such a run and says so.
* **Eval loss** rising while train loss falls = overfitting: fewer epochs, more data, lower rank.
* **Stop** saves a checkpoint and ends cleanly; **Resume** continues from it. **Detach** leaves the
  run going and returns to the welcome screen.
""",
    "evaluate": """
# Evaluate

Always evaluate on held-out data. **Perplexity** = exp(loss): lower is better.
ROUGE / BLEU compare generated answers with references. The side-by-side view shows the base model
and your tuned model answering the same prompts; the blind A/B review hides which is which.
""",
    "deploy": """
# Deploy

1. **Merge** the adapter into the base weights (QLoRA: into the 16-bit base, never the 4-bit one).
2. **Export GGUF** – f16 (exact), q8_0 (near exact), q4_k_m (small, the usual choice).
3. **Modelfile** – `FROM` the GGUF, the chat `TEMPLATE` and `stop` tokens. Without them the model
   rambles forever in Ollama.
4. **Register** with `ollama create NAME -f Modelfile`, then `ollama run NAME`.
""",
    "runs": """
# Runs

Every run lives in its own folder with `run.toml`, `status.json`, `metrics.jsonl` and `train.log`.
Open a running run to watch it; a finished one to evaluate or deploy it. A run marked **died**
stopped without a word (killed, machine rebooted): open it and press Resume.
""",
}


def help_for(topic: str) -> str:
    return HELP.get(topic, HELP["welcome"]).strip() + "\n" + _COMMON_KEYS
