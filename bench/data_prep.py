"""Benchmark: prepare a generated 100,000-row Alpaca file with the default model's tokenizer.

Lint (duplicates, control characters, too-long rows in model tokens), split and
the Arrow build are included; writing to disk is not.  Prints rows/s.
Target (issue 3): under 60 s on a 2-core machine.

    python bench/data_prep.py [--rows 100000] [--write]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "the model learns from examples and each example has an instruction an optional input and "
    "an answer fine tuning adapts a pretrained network to a task with a small learning rate "
    "adapters keep the base weights frozen while low rank matrices carry the update memory "
    "stays low because only the adapter weights need gradients and optimizer state data quality "
    "matters more than quantity duplicates and overly long rows waste compute"
).split()


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        inst = " ".join(rng.choices(WORDS, k=rng.randint(12, 30)))
        inp = " ".join(rng.choices(WORDS, k=rng.randint(0, 25))) if i % 3 == 0 else ""
        out = " ".join(rng.choices(WORDS, k=rng.randint(90, 170)))
        rows.append({"instruction": f"{inst} ({i})?", "input": inp, "output": out + "."})
    return rows


def _load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--write", action="store_true", help="also save_to_disk the result")
    args = ap.parse_args(argv)

    from transformers import AutoTokenizer

    from spark_tui.config import RunConfig
    from spark_tui.core.data import prepare_dataset
    from spark_tui.core.model.resolve import ensure_default_model

    tok = AutoTokenizer.from_pretrained(ensure_default_model())
    with tempfile.TemporaryDirectory(prefix="spark-tui-bench-") as tmp:
        path = Path(tmp) / "alpaca.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for row in make_rows(args.rows):
                fh.write(json.dumps(row) + "\n")
        size_mb = path.stat().st_size / 1e6
        cfg = RunConfig()
        cfg.data.path = str(path)
        cfg.data.max_length = 512
        cfg.data.drop = ["recommended"]
        t = time.perf_counter()
        cpu = time.process_time()
        p = prepare_dataset(cfg, tok, out_dir=Path(tmp) / "out" if args.write else None)
        elapsed = time.perf_counter() - t
        cpu = time.process_time() - cpu
    st = p.report["stats"]
    print(f"file        {args.rows} Alpaca rows, {size_mb:.1f} MB")
    print(
        f"tokens      mean {st['tokens']['mean']} per row (default model tokenizer, chat template)"
    )
    print(f"kept        {st['rows_train']} train + {st['rows_validation']} validation")
    print(f"timings     {p.report['timings']}")
    print(f"elapsed     {elapsed:.1f} s wall, {cpu:.1f} s CPU (all threads), load {_load()}")
    print(f"rate        {args.rows / elapsed:,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
