"""Modelfile TEMPLATEs render exactly what the model's jinja chat template renders.

For each family a real-world jinja template is rendered by
`tokenizer.apply_chat_template`, and our Go TEMPLATE is rendered by a small Go
template renderer (gotemplate.py) the way Ollama's chat endpoint fills it.  The
BOS token is stripped from the jinja text: llama.cpp adds it when tokenizing.
"""

from __future__ import annotations

import pytest
from chat_templates import (
    CASES,
    LLAMA3_TEMPLATE,
    MISTRAL_V1_TEMPLATE,
    MISTRAL_V2_TEMPLATE,
    MISTRAL_V3_TEMPLATE,
    SMOLLM2_TEMPLATE,
)
from gotemplate import ollama_render, render

from spark_tui.core.base.errors import SparkError
from spark_tui.core.export.modelfile import (
    FAMILIES,
    build_modelfile,
    detect_family,
    supports_safetensors_import,
)

TWO_TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
]
SYSTEM = "You are a terse assistant."


def make_tokenizer(jinja: str, bos: str | None, eos: str):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, eos: 1}
    if bos:
        vocab[bos] = 2
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")),
        bos_token=bos,
        eos_token=eos,
        unk_token="[UNK]",
    )
    tok.chat_template = jinja
    return tok


def jinja_render(tok, messages) -> str:
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if tok.bos_token and "bos_token" in tok.chat_template and text.startswith(tok.bos_token):
        text = text[len(tok.bos_token) :]  # the template writes BOS; llama.cpp adds it itself
    return text


@pytest.mark.parametrize("case,jinja,bos,eos,family,system_ok", CASES, ids=[c[0] for c in CASES])
def test_template_renders_like_jinja(case, jinja, bos, eos, family, system_ok):
    tok = make_tokenizer(jinja, bos, eos)
    mf = build_modelfile("./model-q4_k_m.gguf", tok)
    assert mf.family == family
    conversations = [TWO_TURNS]
    if system_ok:
        conversations.append([{"role": "system", "content": SYSTEM}, *TWO_TURNS])
    for conv in conversations:
        want = jinja_render(tok, conv)
        got = ollama_render(mf.template, conv, system=mf.system)
        assert got == want, f"{case}: Go template differs from jinja\n{got!r}\n{want!r}"
    for stop in FAMILIES[family].stops:
        assert stop in mf.stops
    assert eos in mf.stops


THREE_TURNS = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
]


@pytest.mark.parametrize(
    "jinja,family,want",
    [
        (
            MISTRAL_V2_TEMPLATE,
            "mistral",
            f" [INST] {SYSTEM}\n\nHi there [/INST] Hello! How can I help?</s>"
            " [INST] What is 2+2? [/INST] 4</s> [INST] And 3+3? [/INST]",
        ),
        (
            MISTRAL_V3_TEMPLATE,
            "mistral-v3",
            "[INST] Hi there[/INST] Hello! How can I help?</s>[INST] What is 2+2?[/INST] 4</s>"
            f"[INST] {SYSTEM}\n\nAnd 3+3?[/INST]",
        ),
    ],
    ids=["v0.2", "v0.3"],
)
def test_mistral_multi_turn_with_system(jinja, family, want):
    """Spaces and the place of the system prompt, exactly as each Mistral jinja writes them."""
    tok = make_tokenizer(jinja, "<s>", "</s>")
    mf = build_modelfile("./m.gguf", tok)
    assert mf.family == family
    assert jinja_render(tok, THREE_TURNS) == want  # BOS excluded: Ollama's runner adds it
    assert ollama_render(mf.template, THREE_TURNS, system=mf.system) == want
    # the Modelfile's SYSTEM stands in when the chat has none
    mf_sys = build_modelfile("./m.gguf", tok, system=SYSTEM)
    assert ollama_render(mf_sys.template, THREE_TURNS[1:], system=mf_sys.system) == want


def test_mistral_first_jinja_takes_system_on_first_turn():
    """The first v0.1 jinja refuses a system role; Ollama's SYSTEM goes on the first turn."""
    tok = make_tokenizer(MISTRAL_V1_TEMPLATE, "<s>", "</s>")
    mf = build_modelfile("./m.gguf", tok, system=SYSTEM)
    assert mf.family == "mistral-legacy"
    no_system = THREE_TURNS[1:]
    assert ollama_render(mf.template, no_system, system=None) == jinja_render(tok, no_system)
    assert ollama_render(mf.template, no_system, system=SYSTEM) == (
        f"[INST] {SYSTEM}\n\nHi there [/INST]Hello! How can I help?</s>"
        "[INST] What is 2+2? [/INST]4</s>[INST] And 3+3? [/INST]"
    )


def test_default_system_prompt_is_carried():
    tok = make_tokenizer(SMOLLM2_TEMPLATE, "<|im_start|>", "<|im_end|>")
    mf = build_modelfile("./m.gguf", tok)
    assert mf.system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    mf2 = build_modelfile("./m.gguf", tok, system="Answer in French.")
    assert mf2.system == "Answer in French."
    # Ollama puts the Modelfile SYSTEM in front when the chat has none
    got = ollama_render(mf2.template, TWO_TURNS, system=mf2.system)
    want = jinja_render(tok, [{"role": "system", "content": "Answer in French."}, *TWO_TURNS])
    assert got == want


def test_default_model_template(default_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(default_model_dir)
    mf = build_modelfile("./m.gguf", tok, num_ctx=2048)
    assert mf.family == "chatml" and "<|im_end|>" in mf.stops
    assert ollama_render(mf.template, TWO_TURNS, system=mf.system) == jinja_render(tok, TWO_TURNS)


def test_modelfile_text():
    tok = make_tokenizer(LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>")
    mf = build_modelfile("./gguf/run-q4_k_m.gguf", tok, system='Say "hi".', num_ctx=2048)
    text = mf.text()
    assert text.startswith("FROM ./gguf/run-q4_k_m.gguf\n")
    assert 'TEMPLATE """' + mf.template + '"""' in text
    assert 'SYSTEM """Say "hi"."""' in text
    assert 'PARAMETER stop "<|eot_id|>"' in text
    assert 'PARAMETER stop "<|start_header_id|>"' in text
    assert "PARAMETER num_ctx 2048" in text
    assert mf.api_parameters()["stop"] == mf.stops and mf.api_parameters()["num_ctx"] == 2048


def test_unknown_or_missing_template_is_explained():
    with pytest.raises(SparkError, match="no chat template"):
        detect_family(None)
    with pytest.raises(SparkError, match="chatml"):
        detect_family("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def test_safetensors_import_support():
    assert supports_safetensors_import({"architectures": ["LlamaForCausalLM"]})
    assert supports_safetensors_import({"architectures": ["Qwen2ForCausalLM"]})
    assert not supports_safetensors_import({"architectures": ["MistralForCausalLM"]})


def test_go_renderer_subset():
    tpl = '{{- $n := 0 }}{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" }}U{{ $i }}{{ else }}A{{ end }}{{- end }} {{ len .Messages }}'
    assert render(tpl, {"Messages": [{"Role": "user"}, {"Role": "assistant"}]}) == "U0A 2"


@pytest.mark.parametrize(
    "name",
    ["CHATML_TEMPLATE", "LLAMA3_TEMPLATE", "CHATML_TRAINING_TEMPLATE", "LLAMA3_TRAINING_TEMPLATE"],
)
def test_project_templates_translate(name):
    """The templates the data step puts on tokenizers (model.chat_template) map exactly."""
    data = pytest.importorskip("spark_tui.core.data")
    jinja = getattr(data, name, None)
    if jinja is None:
        pytest.skip(f"spark_tui.core.data has no {name}")
    bos, eos = ("<|begin_of_text|>", "<|eot_id|>") if "LLAMA3" in name else (None, "<|im_end|>")
    tok = make_tokenizer(jinja, bos, eos)
    mf = build_modelfile("./m.gguf", tok)
    for conv in (TWO_TURNS, [{"role": "system", "content": SYSTEM}, *TWO_TURNS]):
        assert ollama_render(mf.template, conv, system=mf.system) == jinja_render(tok, conv)
