"""Fixtures for the deploy/export tests: tiny models built offline, once per session.

* `llama3_dir`  - a random-weight Llama-3-style model (byte-level BPE trained here
  with the Llama 3 pre-tokenizer, llama3 RoPE scaling, untied output, hidden 256 /
  intermediate 512 so K-quants take their real 256-wide path).
* `spm_dir`     - a Llama-2-style model whose tokenizer is a SentencePiece BPE
  model trained here (tokenizer.model + tokenizer.json, as Llama 2 repos ship).
* `qwen2_dir`   - a random-weight Qwen2 model (attention biases, tied embeddings)
  reusing a byte-level BPE with the Qwen2 pre-tokenizer.
* `gemma2_dir`  - a Gemma-2-style model: SentencePiece without a dummy prefix (Gemma's
  ids: pad 0, eos 1, bos 2, unk 3), head_dim != hidden / heads, four norms per layer
  stored as w for a (1 + w) scale, soft-capping, a sliding window short enough that
  the test prompts cross it, tied embeddings.
* `phi3_dir`    - a Phi-3.5-mini-style model: fused qkv_proj / gate_up_proj, longrope
  scaling (long/short factors, original_max_position_embeddings), a padded vocabulary
  above the tokenizer's size, Phi chat tokens.
* `mistral_dir` - a MistralForCausalLM with a sliding window and a SentencePiece
  tokenizer whose [INST] / [/INST] are control pieces of the model (as Mistral v0.3).
* `llama32_dir` - a Llama-3.2-style model: byte-level BPE, llama3 RoPE (factor 32),
  tied embeddings.
* `default_model_dir` - the bundled SmolLM2-135M-Instruct, when
  spark_tui.core.model.resolve.ensure_default_model exists (skipped otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chat_templates import CHATML_TEMPLATE, LLAMA2_TEMPLATE, LLAMA3_TEMPLATE
from tokenizer_files import set_tokenizer_config

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
)

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello world! How are you today? I'm fine, thanks.",
    "Fine-tuning small language models is fun and cheap.",
    "Numbers like 12345 and 2026 appear in text; symbols #@! too.",
    "What is the capital of France? Paris is the capital of France.",
    "Write a haiku about autumn leaves falling slowly.",
    "DGX Spark has 128 GB of unified memory for big models.",
    "LoRA adds low-rank matrices to frozen weights.\nQLoRA quantizes the base to 4-bit.",
    "def add(a, b):\n    return a + b\n",
    "Ollama serves GGUF models; llama.cpp runs them on the CPU.",
]


def _corpus(n: int = 40) -> list[str]:
    return CORPUS * n


def _byte_level_tokenizer(split: str, specials: list[str], vocab_size: int = 600):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(specials)
    return tok


def _random_init(model, std: float = 0.08, head_std: float = 0.6) -> None:
    import torch

    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "norm" in name:
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.startswith("lm_head"):
                p.copy_(head_std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def _llama3_family(vocab_size: int, rope_factor: float, tied: bool):
    """A Llama-3-style tokenizer (byte-level BPE, Llama 3 split, BOS added) and a random
    model with llama3 RoPE scaling: (model, hf_tokenizer)."""
    import torch
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    tok = _byte_level_tokenizer(LLAMA3_SPLIT, specials)
    bos_id = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", bos_id)],
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>"
    )
    hf_tok.chat_template = LLAMA3_TEMPLATE
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "rope_type": "llama3",
            "factor": rope_factor,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        tie_word_embeddings=tied,
        bos_token_id=bos_id,
        eos_token_id=tok.token_to_id("<|eot_id|>"),
    )
    model = LlamaForCausalLM(cfg)
    _random_init(model)
    return model, hf_tok


@pytest.fixture(scope="session")
def llama3_dir(tmp_path_factory) -> Path:
    """Llama 3.1-style: untied head, llama3 RoPE (factor 8)."""
    model, hf_tok = _llama3_family(vocab_size=768, rope_factor=8.0, tied=False)
    return _save(model, hf_tok, tmp_path_factory.mktemp("llama3") / "model")


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("qwen2") / "model"
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = _byte_level_tokenizer(QWEN2_SPLIT, specials)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=640,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        eos_token_id=tok.token_to_id("<|im_end|>"),
    )
    model = Qwen2ForCausalLM(cfg)
    _random_init(model, head_std=0.6)
    with torch.no_grad():  # tied: make the (shared) embedding peaky enough for top-1 checks
        model.model.embed_tokens.weight.mul_(6.0)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    return out


def train_sentencepiece(prefix: Path, vocab_size: int = 400, **options) -> Path:
    """A SentencePiece BPE model (Llama 2 layout by default; `options` override the
    trainer's settings, e.g. Gemma's ids and no dummy prefix)."""
    import sentencepiece as spm

    settings = dict(
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        minloglevel=2,
    )
    settings.update(options)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        **settings,
    )
    return prefix.with_suffix(".model")


@pytest.fixture(scope="session")
def spm_dir(tmp_path_factory) -> Path:
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    work = tmp_path_factory.mktemp("spm")
    sp_model = train_sentencepiece(work / "sp")
    tokdir = work / "tok"
    tokdir.mkdir()
    shutil.copy(sp_model, tokdir / "tokenizer.model")
    # legacy=True: a space prefix after special tokens too, as Llama 2's tokenizer (and
    # llama.cpp's SentencePiece tokenizer) do.
    hf_tok = LlamaTokenizer.from_pretrained(str(tokdir), legacy=True)
    hf_tok.chat_template = LLAMA2_TEMPLATE
    out = work / "model"
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = LlamaForCausalLM(cfg)
    _random_init(model)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    set_tokenizer_config(out, legacy=True)  # transformers 5 does not save the flag
    # Llama 2 repos ship the SentencePiece model next to tokenizer.json.
    shutil.copy(sp_model, out / "tokenizer.model")
    return out


def _llama2_style_tokenizer(work: Path, legacy: bool = True, add_bos: bool = True, **sp_options):
    """A LlamaTokenizer over a SentencePiece model trained here (and that model's path)."""
    import shutil

    from transformers import LlamaTokenizer

    sp_model = train_sentencepiece(work / "sp", **sp_options)
    tokdir = work / "tok"
    tokdir.mkdir()
    shutil.copy(sp_model, tokdir / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(tokdir), legacy=legacy, add_bos_token=add_bos)
    return tok, sp_model


def _peaky_head(model, embed_scale: float = 16.0, head_scale: float = 1.0) -> None:
    """Stronger embeddings, and an untied head = random + head_scale * embeddings: each
    position's top token then wins by a wide margin, so f16 rounding (~0.1 logit) cannot
    flip a near-tie and top-1 checks can demand 100 %, while max |delta logit| still
    sees every layer."""
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(embed_scale)
        model.lm_head.weight.add_(head_scale * model.model.embed_tokens.weight)


def _save(model, hf_tok, out: Path, sp_model: Path | None = None, **tok_config) -> Path:
    import shutil

    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    if tok_config:
        set_tokenizer_config(out, **tok_config)  # transformers 5 drops e.g. `legacy`
    if sp_model is not None:  # SentencePiece repos ship the model next to tokenizer.json
        shutil.copy(sp_model, out / "tokenizer.model")
    return out


@pytest.fixture(scope="session")
def gemma2_dir(tmp_path_factory) -> Path:
    import shutil

    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, GemmaTokenizer

    work = tmp_path_factory.mktemp("gemma2")
    sp_model = train_sentencepiece(
        work / "sp",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        add_dummy_prefix=False,  # Gemma's SentencePiece adds no leading space
    )
    tokdir = work / "tok"
    tokdir.mkdir()
    shutil.copy(sp_model, tokdir / "tokenizer.model")
    hf_tok = GemmaTokenizer.from_pretrained(str(tokdir), add_bos_token=True)
    # Gemma's tokenizer_config marks its turn markers special (ids 106/107 there).
    hf_tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    hf_tok.chat_template = GEMMA_TEMPLATE
    torch.manual_seed(0)
    cfg = Gemma2Config(
        vocab_size=len(hf_tok),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=128,  # != hidden / heads, as in every Gemma 2 (2304 / 8 = 288 vs 256)
        query_pre_attn_scalar=128,
        max_position_embeddings=8192,
        sliding_window=16,  # shorter than the test prompts: the local layers really slide
        attn_logit_softcapping=50.0,
        final_logit_softcapping=30.0,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma2ForCausalLM(cfg)
    _random_init(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.sub_(1.0)  # Gemma stores w and scales by (1 + w): keep the scale near 1
        model.model.embed_tokens.weight.mul_(3.0)  # tied: peaky enough for top-1 checks
    return _save(model, hf_tok, work / "model", sp_model)


@pytest.fixture(scope="session")
def phi3_dir(tmp_path_factory) -> Path:
    import numpy as np
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    work = tmp_path_factory.mktemp("phi3")
    hf_tok, sp_model = _llama2_style_tokenizer(work, add_bos=False)  # as Phi-3.5's config
    specials = ["<|endoftext|>", "<|assistant|>", "<|end|>", "<|user|>", "<|system|>"]
    hf_tok.add_special_tokens({"additional_special_tokens": specials})
    hf_tok.eos_token = "<|endoftext|>"
    hf_tok.pad_token = "<|endoftext|>"
    hf_tok.chat_template = PHI3_TEMPLATE
    eos = hf_tok.convert_tokens_to_ids("<|endoftext|>")
    head_dim = 64
    rng = np.random.default_rng(7)
    # Phi-3.5-mini: short factors near 1-3, long factors up to ~60, one per rotary pair.
    short = sorted(float(x) for x in 1.0 + 1.5 * rng.random(head_dim // 2))
    long = sorted(float(x) for x in 1.0 + 40.0 * rng.random(head_dim // 2))
    torch.manual_seed(0)
    cfg = Phi3Config(
        vocab_size=(len(hf_tok) + 63) // 64 * 64,  # padded, as Phi-3's 32064 for 32011 tokens
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_theta=10000.0,
        rope_scaling={"type": "longrope", "long_factor": long, "short_factor": short},
        sliding_window=262144,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    model = Phi3ForCausalLM(cfg)
    _random_init(model)
    _peaky_head(model)
    return _save(model, hf_tok, work / "model", sp_model, legacy=True)


@pytest.fixture(scope="session")
def mistral_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    work = tmp_path_factory.mktemp("mistral")
    hf_tok, sp_model = _llama2_style_tokenizer(work, control_symbols=["[INST]", "[/INST]"])
    hf_tok.add_special_tokens({"additional_special_tokens": ["[INST]", "[/INST]"]})
    hf_tok.chat_template = MISTRAL_TEMPLATE
    torch.manual_seed(0)
    cfg = MistralConfig(
        vocab_size=len(hf_tok),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        sliding_window=4096,
        rope_theta=1000000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    model = MistralForCausalLM(cfg)
    _random_init(model)
    _peaky_head(model)
    return _save(model, hf_tok, work / "model", sp_model, legacy=True)


@pytest.fixture(scope="session")
def llama32_dir(tmp_path_factory) -> Path:
    """Llama 3.2-style: tied embeddings, llama3 RoPE (factor 32)."""
    import torch

    model, hf_tok = _llama3_family(vocab_size=704, rope_factor=32.0, tied=True)
    with torch.no_grad():  # tied: make the (shared) embedding peaky enough for top-1 checks
        model.model.embed_tokens.weight.mul_(16.0)
    return _save(model, hf_tok, tmp_path_factory.mktemp("llama32") / "model")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    try:
        from spark_tui.core.model.resolve import ensure_default_model
    except ImportError:
        pytest.skip("spark_tui.core.model.resolve.ensure_default_model does not exist yet")
    return Path(ensure_default_model())


@pytest.fixture(scope="session")
def llama_cpp():
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


def _export(model_dir: Path, out: Path, types: list[str], logit_prompts: int | None = None):
    from spark_tui.core.export.pipeline import export_model

    return export_model(
        model_dir, out, types, hf_answer=False, max_new_tokens=8, logit_prompts=logit_prompts
    )


@pytest.fixture(scope="session")
def llama3_export(llama3_dir, llama_cpp, tmp_path_factory):
    """The tiny Llama 3 model exported to f16, q8_0 and q4_k_m, each verified."""
    return _export(llama3_dir, tmp_path_factory.mktemp("llama3-gguf"), ["f16", "q8_0", "q4_k_m"])


@pytest.fixture(scope="session")
def default_export(default_model_dir, llama_cpp, tmp_path_factory):
    """The bundled default model (SmolLM2-135M-Instruct) exported to f16, q8_0 and q4_k_m."""
    # One prompt for the logit comparisons: this llama.cpp build is portable (no AVX), and a
    # 135M model's 49k-wide output layer is slow there; tokenization still checks every prompt.
    return _export(
        default_model_dir,
        tmp_path_factory.mktemp("default-gguf"),
        ["f16", "q8_0", "q4_k_m"],
        logit_prompts=1,
    )
