"""Seeded split by fraction or count, stratified on the KTO label."""

from __future__ import annotations

from collections import Counter

from spark_tui.core.data import prepare_dataset, split_indices


def test_fraction_is_seeded_and_disjoint():
    tr, va = split_indices(100, val_fraction=0.2, seed=1)
    assert len(va) == 20 and len(tr) == 80
    assert set(tr).isdisjoint(va) and set(tr) | set(va) == set(range(100))
    assert split_indices(100, val_fraction=0.2, seed=1) == (tr, va)
    assert split_indices(100, val_fraction=0.2, seed=2) != (tr, va)


def test_count_and_edges():
    assert len(split_indices(50, val_count=7)[1]) == 7
    assert split_indices(1, val_fraction=0.5) == ([0], [])
    assert len(split_indices(3, val_fraction=0.01)[1]) == 1  # never zero when asked for some
    assert split_indices(10, val_fraction=0.0) == (list(range(10)), [])
    assert len(split_indices(5, val_count=99)[0]) == 1  # training never empty


def test_stratified_keeps_label_shares():
    labels = [True] * 80 + [False] * 20
    tr, va = split_indices(100, val_fraction=0.25, labels=labels)
    assert Counter(labels[i] for i in va) == {True: 20, False: 5}
    assert Counter(labels[i] for i in tr) == {True: 60, False: 15}


def test_kto_prepare_is_stratified(tokenizer, write_jsonl, make_cfg):
    rows = [{"prompt": f"Q{i}", "completion": f"A{i}", "label": i < 30} for i in range(40)]
    p = prepare_dataset(make_cfg(write_jsonl(rows), "kto", val_fraction=0.2), tokenizer)
    assert Counter(p.dataset["validation"]["label"]) == {True: 6, False: 2}
    assert p.report["split"]["stratified_on"] == "label"
    bal = p.report["kto_balance"]
    assert bal["desirable"] == 30 and bal["undesirable"] == 10
    assert bal["undesirable_weight"] == 3.0 and bal["desirable_weight"] == 1.0
