"""Train step: run folders, launching and following the detached trainer, and the training process.

- `runs`: run folders (layout, status.json's one writer, lock, listing, died/stalled);
- `supervise`: the trainer's parent, which records how it ended;
- `process`: start / stop / kill / resume the detached trainer, follow its files;
- `entry`: `python -m spark_tui.core.train.entry RUN_DIR`, the trainer process;
- `orchestrate`: `run_training`, the engine, from `run.toml` to a saved adapter;
  built from `status` (status.json + heartbeat), `stop` (stop file, signals),
  `context` (what the engine shares with its callbacks), `callbacks`,
  `metrics` (metrics.jsonl), `logs` (train.log), `advice` (OOM, divergence),
  `loading` (tokenizer, model) and `trainer` (data, TRL trainer, saving).
"""
