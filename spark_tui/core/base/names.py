"""The names of the files and states a run folder holds: one home, read by every room.

A run folder is the contract between the wizard, the CLI and the detached
training process (docs/architecture.md); writers and readers take the names
from here so they cannot drift apart.
"""

from __future__ import annotations

# <home>/runs/<run-id>/...
RUN_CONFIG = "run.toml"  # the RunConfig the run was created with
STATUS_FILE = "status.json"  # state, pid, heartbeat, step/total, ETA, last error
METRICS_FILE = "metrics.jsonl"  # one JSON object per logging step
LOG_FILE = "train.log"  # everything the libraries print, tracebacks included
STOP_FILE = "stop.request"  # written by Stop; the trainer checkpoints and exits
KILL_FILE = "kill.request"  # written by Kill just before its SIGKILL, for the supervisor
CHECKPOINTS_DIR = "checkpoints"  # trainer checkpoints (resume points)
ADAPTER_DIR = "adapter"  # the trained adapter (PEFT runs)
MODEL_DIR = "model"  # the trained model (full fine-tuning)
DATA_DIR = "data"  # the prepared dataset and its report
DATA_REPORT = "data_report.json"  # what preparation kept, dropped and why
DATA_SOURCES = "sources.json"  # fingerprints of the data sources at first preparation
TENSORBOARD_DIR = "tensorboard"  # TensorBoard event files when that tracker is on
EVAL_FILE = "eval.json"  # the Evaluate step's scores
FIRST_LOOK_FILE = "first_look.json"  # what the Train screen shows when a run finishes
AB_REVIEW_FILE = "ab_review.json"  # blind A/B picks
MERGED_DIR = "merged"  # adapter merged into the base weights (Deploy)
GGUF_DIR = "gguf"  # exported GGUF files (Deploy)
DEPLOY_FILE = "deploy.json"  # the last merge / export / Ollama results (the Deploy report)

# Run states as status.json records them.
# "stalled" is never written: `Run.status()` derives it from a live process whose
# step (or heartbeat) has not moved for far longer than usual.  It is not final.
ACTIVE_STATES = ("preparing", "training", "stopping", "stalled")
FINAL_STATES = ("stopped", "finished", "failed", "died")
