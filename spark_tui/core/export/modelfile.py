"""Ollama Modelfiles whose TEMPLATE matches the model's own (jinja) chat template.

Ollama does not run jinja: without a TEMPLATE in its Go-template syntax it falls
back to ``{{ .Prompt }}`` and the model rambles on without end.  We recognise
the template family from the jinja string and write the equivalent Go template,
the family's end/turn markers as ``PARAMETER stop``, a ``SYSTEM`` line (the
user's, or the template's built-in default system prompt so that Ollama says
the same thing the model was trained to see) and ``num_ctx``.

How Ollama fills the template (server/prompt + template.Execute): ``.Messages``
holds every message including system ones; when a chat has no system message,
the Modelfile's SYSTEM is prepended as one; ``.System`` is all system messages
joined.  The BOS token is added by the runner, so templates never start with it.

Families: ChatML (SmolLM2, Qwen2/2.5, ...), Llama 3, Llama 2 (``[INST]`` +
``<<SYS>>``), Mistral (``[INST]``: v0.1/v0.2 as shipped now, their first jinja,
and v0.3, which differ in spaces and where the system prompt goes), Gemma,
Phi-3, Zephyr (TinyLlama chat).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_tui.core.base.atomic import atomic_write_text
from spark_tui.core.export.common import ExportError

# Architectures `ollama create` converts from a safetensors folder itself
# (DESIGN.md §4: Llama and Qwen2 yes, Mistral no).
OLLAMA_SAFETENSORS_ARCHS = ("LlamaForCausalLM", "Qwen2ForCausalLM")
# What `ollama create --quantize` accepts.
OLLAMA_QUANTIZE = ("f32", "f16", "bf16", "q8_0", "q4_K_S", "q4_K_M")

CHATML = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

LLAMA3 = """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""

# Llama 3.1 / 3.2 / 3.3: the jinja always writes a system header with the
# knowledge cut-off and a date; the user's system prompt follows it.
LLAMA31 = """<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023
Today Date: @DATE@

{{ if .System }}{{ .System }}{{ end }}<|eot_id|>
{{- range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""

LLAMA2 = """{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }}
{{- if not $first }}<s>{{ end }}[INST] {{ if and $first $.System }}<<SYS>>
{{ $.System }}
<</SYS>>

{{ end }}{{ .Content }} [/INST]
{{- $first = false }}
{{- else if eq .Role "assistant" }} {{ .Content }} </s>
{{- end }}
{{- end }}"""

# Mistral v0.1/v0.2 as their repos ship the jinja today:
#   "<s> [INST] {system}\n\n{q1} [/INST] {a1}</s> [INST] {q2} [/INST]"
# a space before every [INST] and before each answer; the system prompt goes on the
# *first* user turn.
MISTRAL = """{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }} [INST] {{ if and $first $.System }}{{ $.System }}

{{ end }}{{ .Content }} [/INST]
{{- $first = false }}
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""

# The first Mistral v0.1/v0.2 jinja (still in older snapshots and many fine-tunes):
#   "<s>[INST] {q1} [/INST]{a1}</s>[INST] {q2} [/INST]"
# It refuses system messages; a system prompt goes on the first user turn, as the
# newer template writes it.
MISTRAL_LEGACY = """{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }}[INST] {{ if and $first $.System }}{{ $.System }}

{{ end }}{{ .Content }} [/INST]
{{- $first = false }}
{{- else if eq .Role "assistant" }}{{ .Content }}</s>
{{- end }}
{{- end }}"""

# Mistral v0.3: "<s>[INST] {q1}[/INST] {a1}</s>[INST] {system}\n\n{q2}[/INST]":
# no space before [INST], none before [/INST], and the system prompt on the *last*
# user turn.
MISTRAL_V3 = """{{- range $i, $_ := .Messages }}
{{- if eq .Role "user" }}[INST] {{ if and $.System (eq (len (slice $.Messages $i)) 1) }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""

GEMMA = """{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $first $.System }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $first = false }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
"""

PHI3 = """{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}<|assistant|>
"""

ZEPHYR = """{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}</s>
{{ end }}<|assistant|>
"""


@dataclass(frozen=True)
class TemplateFamily:
    name: str
    template: str
    stops: tuple[str, ...]
    description: str
    supports_system: bool = True
    # Regex that captures a default system prompt from a render with no system message.
    default_system_re: str | None = None


FAMILIES: dict[str, TemplateFamily] = {
    f.name: f
    for f in (
        TemplateFamily(
            "chatml",
            CHATML,
            ("<|im_start|>", "<|im_end|>"),
            "ChatML (<|im_start|>)",
            default_system_re=r"^<\|im_start\|>system\n(.*?)<\|im_end\|>\n",
        ),
        TemplateFamily(
            "llama3",
            LLAMA3,
            ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
            "Llama 3 (<|start_header_id|>)",
            default_system_re=r"^<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>",
        ),
        TemplateFamily(
            "llama3.1",
            LLAMA31,
            ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"),
            "Llama 3.1+ (knowledge cut-off header)",
        ),
        TemplateFamily(
            "llama2",
            LLAMA2,
            ("[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"),
            "Llama 2 ([INST] with <<SYS>>)",
        ),
        TemplateFamily("mistral", MISTRAL, ("[INST]", "[/INST]"), "Mistral v0.1/v0.2 ([INST])"),
        TemplateFamily(
            "mistral-legacy",
            MISTRAL_LEGACY,
            ("[INST]", "[/INST]"),
            "Mistral v0.1/v0.2, first jinja ([INST] without system)",
        ),
        TemplateFamily("mistral-v3", MISTRAL_V3, ("[INST]", "[/INST]"), "Mistral v0.3 ([INST])"),
        TemplateFamily(
            "gemma", GEMMA, ("<start_of_turn>", "<end_of_turn>"), "Gemma (<start_of_turn>)"
        ),
        TemplateFamily(
            "phi3",
            PHI3,
            ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>"),
            "Phi-3 (<|user|> ... <|end|>)",
        ),
        TemplateFamily(
            "zephyr",
            ZEPHYR,
            ("<|system|>", "<|user|>", "<|assistant|>", "</s>"),
            "Zephyr / TinyLlama chat (<|user|> ... </s>)",
        ),
    )
}


def detect_family(jinja: str | None, *, eos_token: str | None = None) -> TemplateFamily:
    """The Ollama template family equivalent to a jinja chat template."""
    if not jinja:
        raise ExportError(
            "the model has no chat template (tokenizer_config.json / chat_template.jinja); "
            "set model.chat_template to chatml or llama3 in run.toml and merge again"
        )
    j = jinja
    if "<|im_start|>" in j:
        return FAMILIES["chatml"]
    if "<|start_header_id|>" in j:
        return FAMILIES["llama3.1" if "Cutting Knowledge Date" in j else "llama3"]
    if "<start_of_turn>" in j:
        return FAMILIES["gemma"]
    if "<|user|>" in j and "<|end|>" in j:
        return FAMILIES["phi3"]
    if "<|user|>" in j and ("eos_token" in j or "</s>" in j):
        return FAMILIES["zephyr"]
    if "[INST]" in j and "<<SYS>>" in j:
        return FAMILIES["llama2"]
    if "[INST]" in j:
        # v0.1/v0.2 now write ' [INST] ' (a leading space); v0.3 writes '[INST] ' and puts
        # '[/INST]' right after the content; the first v0.1 jinja writes '[INST] ' ... ' [/INST]'.
        if re.search(r"['\"] \[INST\]", j):
            return FAMILIES["mistral"]
        tight = re.search(r"\+\s*['\"]\[/INST\]['\"]", j) is not None
        if tight and "' [/INST]'" not in j and '" [/INST]"' not in j:
            return FAMILIES["mistral-v3"]
        return FAMILIES["mistral-legacy"]
    raise ExportError(
        "the model's chat template is not one spark-tui can translate for Ollama "
        f"(known: {', '.join(f.description for f in FAMILIES.values())}); set "
        "model.chat_template to chatml or llama3 in run.toml, or pass --template FAMILY"
    )


def default_system_prompt(tokenizer: Any, family: TemplateFamily) -> str | None:
    """The system prompt the jinja template inserts when the chat has none (e.g. SmolLM2, Qwen2.5)."""
    if not family.default_system_re or not getattr(tokenizer, "chat_template", None):
        return None
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "\x00probe\x00"}],
            tokenize=False,
            add_generation_prompt=True,
        )
    except Exception:
        return None
    bos = getattr(tokenizer, "bos_token", None)
    if bos and "bos_token" in tokenizer.chat_template and text.startswith(bos):
        text = text[len(bos) :]
    m = re.match(family.default_system_re, text, re.S)
    if m and "\x00probe\x00" not in m.group(1):
        return m.group(1)
    return None


@dataclass
class Modelfile:
    """The pieces of a Modelfile, for the file itself and for the REST API."""

    from_: str
    template: str
    stops: list[str]
    family: str
    system: str | None = None
    num_ctx: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    quantize: str | None = None  # only for the safetensors-folder variant (`--quantize`)

    def api_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"stop": list(self.stops)}
        if self.num_ctx:
            params["num_ctx"] = int(self.num_ctx)
        params.update(self.parameters)
        return params

    def text(self) -> str:
        lines = [f"FROM {self.from_}", "", f'TEMPLATE """{self.template}"""', ""]
        if self.system:
            lines.append(f'SYSTEM """{_escape_triple(self.system)}"""')
            lines.append("")
        for s in self.stops:
            lines.append(f"PARAMETER stop {_quote(s)}")
        if self.num_ctx:
            lines.append(f"PARAMETER num_ctx {int(self.num_ctx)}")
        for k, v in self.parameters.items():
            lines.append(f"PARAMETER {k} {v}")
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.text())
        return path


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape_triple(s: str) -> str:
    if '"""' in s:
        raise ExportError(
            'the system prompt may not contain """ (it would end the Modelfile block)'
        )
    return s


def build_modelfile(
    from_: str,
    tokenizer: Any,
    *,
    system: str | None = None,
    num_ctx: int | None = 4096,
    family: str | None = None,
    quantize: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> Modelfile:
    """A Modelfile for `from_` (a GGUF path or a safetensors folder) using `tokenizer`'s template."""
    if family and family not in FAMILIES:
        raise ExportError(f"unknown template family {family!r}; use one of {', '.join(FAMILIES)}")
    fam = (
        FAMILIES[family]
        if family
        else detect_family(
            getattr(tokenizer, "chat_template", None),
            eos_token=getattr(tokenizer, "eos_token", None),
        )
    )
    stops = list(fam.stops)
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(eos)
    if not system:
        system = default_system_prompt(tokenizer, fam)
    if quantize is not None and quantize not in OLLAMA_QUANTIZE:
        raise ExportError(
            f"ollama create --quantize accepts {', '.join(OLLAMA_QUANTIZE)}; got {quantize!r}"
        )
    return Modelfile(
        from_=from_,
        template=_fill(fam.template, getattr(tokenizer, "chat_template", None) or ""),
        stops=stops,
        family=fam.name,
        system=system or None,
        num_ctx=num_ctx,
        parameters=dict(parameters or {}),
        quantize=quantize,
    )


def _fill(template: str, jinja: str) -> str:
    """Values a Go template cannot compute, taken from the jinja template (Llama 3.1 date)."""
    if "@DATE@" not in template:
        return template
    m = re.search(r"date_string\s*=\s*[\"']([^\"']+)[\"']", jinja)
    if m and "strftime_now" not in jinja:
        date = m.group(1)
    else:  # Llama 3.2 asks for today's date: use the day of export
        import datetime as _dt

        date = _dt.date.today().strftime("%d %b %Y")
    return template.replace("@DATE@", date)


def supports_safetensors_import(config: dict[str, Any]) -> bool:
    """Whether `ollama create` can convert this HF folder itself (FROM ./merged)."""
    return any(a in OLLAMA_SAFETENSORS_ARCHS for a in config.get("architectures") or [])
