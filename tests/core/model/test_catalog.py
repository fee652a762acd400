"""The curated catalogue: required models, real shapes, lookups."""

from __future__ import annotations

import json

import pytest

from spark_tui.core.model import catalog

REQUIRED = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.2",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-14B-Instruct",
    "Qwen/Qwen2.5-32B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "google/gemma-2-2b-it",
    "google/gemma-2-9b-it",
    "microsoft/Phi-3.5-mini-instruct",
    "default",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_required_entries_exist(model_id: str) -> None:
    e = catalog.get(model_id)
    assert e is not None
    assert e.license and e.chat_template


@pytest.mark.parametrize("entry", catalog.all_entries(), ids=lambda e: e.id)
def test_shapes_reproduce_the_published_parameter_count(entry: catalog.CatalogEntry) -> None:
    computed = entry.arch.param_count()
    assert abs(computed / entry.params - 1) < 0.02, (computed, entry.params)
    assert entry.arch.max_context >= 2048
    assert entry.arch.num_heads % entry.arch.num_kv_heads == 0


def test_default_matches_smollm2_135m() -> None:
    d = catalog.get("default")
    smol = catalog.get("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert d is not None and smol is not None
    assert d.arch == smol.arch
    a = d.arch
    assert (a.num_layers, a.hidden_size, a.intermediate_size) == (30, 576, 1536)
    assert (a.num_heads, a.num_kv_heads, a.vocab_size) == (9, 3, 49152)
    assert a.tie_embeddings and d.chat_template == "chatml"
    assert d.hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_known_facts() -> None:
    l8 = catalog.get("llama-3.1-8b")
    assert l8 is not None and l8.gated and l8.id == "meta-llama/Llama-3.1-8B-Instruct"
    assert l8.arch.num_kv_heads == 8 and l8.arch.vocab_size == 128256
    assert not l8.arch.tie_embeddings
    g = catalog.get("google/gemma-2-2b-it")
    assert g is not None and g.arch.dim_head == 256 and g.gated
    qwen = catalog.get("qwen/qwen2.5-7b-instruct")  # case-insensitive
    assert qwen is not None and not qwen.gated and qwen.license == "apache-2.0"
    assert catalog.get("TinyLlama/TinyLlama-1.1B-Chat-v1.0").arch.max_context == 2048


def test_lookup_search_and_smaller() -> None:
    assert catalog.get("") is None
    assert catalog.get("no/such-model") is None
    assert catalog.by_hub_id("meta-llama/llama-3.1-70b-instruct").params > 70e9
    assert {e.family for e in catalog.search("qwen 72b")} == {"Qwen2.5"}
    smaller = catalog.smaller_than(8e9, family="Llama 3.1")
    assert smaller and all(e.params < 8e9 for e in smaller)
    assert all("default" != e.id for e in smaller)


def test_entries_serialise_to_json() -> None:
    text = json.dumps([e.to_dict() for e in catalog.all_entries()])
    assert "Llama 3.1 70B" in text
