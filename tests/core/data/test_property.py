"""Random and broken rows either load or raise DataError with a message — never anything else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_tui.config import RunConfig
from spark_tui.core.data import DataError, load_source, prepare_dataset

KEYS = ["instruction", "input", "output", "prompt", "completion", "chosen", "rejected", "label",
        "messages", "conversations", "text", "system", "role", "content", "from", "value", "kto_tag"]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    ),
    max_leaves=8,
)
rows = st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), values, max_size=5)
lines = st.one_of(
    rows.map(json.dumps),
    st.text(max_size=30),  # garbage
    st.builds(lambda r: json.dumps(r)[:-1], rows),  # truncated JSON
    st.sampled_from(["[]", "1", "null", '"x"', "", "{}"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.lists(lines, max_size=6),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".txt"]),
    objective=st.sampled_from(["sft", "dpo", "kto"]),
)
def test_random_rows_load_or_raise_data_error(tmp_path_factory, content, suffix, objective):
    path = tmp_path_factory.mktemp("prop") / f"data{suffix}"
    path.write_text("\n".join(content), encoding="utf-8", errors="surrogatepass")
    cfg = RunConfig()
    cfg.data.path = str(path)
    cfg.method.objective = objective
    try:
        src = load_source(path)
        assert src.rows
        prepared = prepare_dataset(cfg, None, source=src)
        assert len(prepared.dataset["train"]) >= 1
    except DataError as exc:
        assert str(exc)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(rows, min_size=1, max_size=6),
    objective=st.sampled_from(["sft", "dpo", "kto", "orpo"]),
    fmt=st.sampled_from(
        ["auto", "alpaca", "messages", "preference", "kto", "text", "sharegpt", "prompt_completion"]
    ),
)
def test_random_structured_rows(data, objective, fmt):
    from spark_tui.core.data.source import Source

    cfg = RunConfig()
    cfg.method.objective = objective
    cfg.data.format = fmt
    try:
        prepare_dataset(cfg, None, source=Source(data, "rows.jsonl", "jsonl"))
    except DataError as exc:
        assert str(exc)
