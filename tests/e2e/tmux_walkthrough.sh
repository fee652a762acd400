#!/usr/bin/env bash
# Drives the real `spark-tui` binary in tmux at 80x24, like a newcomer over SSH who
# takes every default: only Enter is pressed (plus F1/Escape to look at the help).
# Waits for the expected text at each step and fails with the captured screen
# when something is missing.  Run by `make test` when tmux is installed.
set -euo pipefail

SOCK="spark-tui-e2e-$$"
HOME_DIR="$(mktemp -d)"
KEYS=0
cleanup() {
    tmux -L "$SOCK" kill-server >/dev/null 2>&1 || true
    pkill -f "spark_tui.core.train.entry $HOME_DIR" >/dev/null 2>&1 || true
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT

screen() { tmux -L "$SOCK" capture-pane -p -t e2e; }

wait_for() {  # wait_for TEXT [TIMEOUT_S]
    local text="$1" timeout="${2:-60}" waited=0
    while ! screen | grep -qF -- "$text"; do
        sleep 0.5
        waited=$((waited + 1))
        if [ "$waited" -ge $((timeout * 2)) ]; then
            echo "tmux walkthrough: '$text' did not appear within ${timeout}s; screen was:" >&2
            screen >&2
            exit 1
        fi
    done
}

HERE="$(cd "$(dirname "$0")" && pwd)"
checked() {  # checked STEP: no line of the captured screen ends in a clipped number
    if ! screen | python "$HERE/clipped.py" 80 "$1"; then
        screen >&2
        exit 1
    fi
}

key() { tmux -L "$SOCK" send-keys -t e2e "$@"; KEYS=$((KEYS + $#)); sleep 0.3; }

tmux -L "$SOCK" new-session -d -s e2e -x 80 -y 24 \
    "env SPARK_TUI_HOME='$HOME_DIR' TERM=xterm-256color HF_HUB_OFFLINE=1 OLLAMA_HOST=http://127.0.0.1:9 spark-tui; sleep 5"

# Welcome: system summary, help opens and closes.
wait_for "New fine-tune" 60
wait_for "GB free" 60
checked welcome
key F1
wait_for "A guided path" 20
key Escape
wait_for "New fine-tune (n)" 20
HELP_KEYS=2

key Enter                      # New fine-tune
wait_for "Default: SmolLM2" 60
checked model
key Enter                      # the bundled default model
wait_for "Total peak" 120
wait_for "Fits" 60
checked memory
key Enter                      # memory: fits
wait_for "train /" 300         # dataset: "... N train / M validation rows"
checked dataset
key Enter
wait_for "Memory estimate" 60  # method: quick preset on a CPU-only machine
checked method
key Enter
wait_for "Same run, headless" 60
checked review
key Enter                      # start training
wait_for "finished" 900
wait_for "held-out loss" 300     # the first look: before/after loss and answers
checked train
key Enter                      # evaluate
wait_for "Evaluate (e)" 60
key Enter
wait_for "saved to eval.json" 900
checked evaluate
key Enter                      # deploy
wait_for "Do all" 60
key Enter
wait_for "Run later:" 1500     # no Ollama here: the files are kept and the command shown
checked deploy
RUN_DIR="$(ls -d "$HOME_DIR"/runs/*/ | head -1)"
for f in Modelfile eval.json metrics.jsonl adapter/adapter_config.json merged/config.json; do
    if [ ! -e "$RUN_DIR/$f" ]; then
        echo "tmux walkthrough: $f is missing from $RUN_DIR" >&2
        screen >&2
        exit 1
    fi
done
ls "$RUN_DIR"/gguf/*.gguf >/dev/null
key Enter                      # finish: back to the welcome screen
wait_for "finished" 30
key C-q
sleep 1
if screen | grep -qF "New fine-tune (n)"; then
    echo "tmux walkthrough: the app did not quit on Ctrl+Q" >&2
    screen >&2
    exit 1
fi
echo "tmux walkthrough passed: $((KEYS - HELP_KEYS - 2)) Enter presses from the welcome screen to a verified GGUF and Modelfile ($KEYS keys in all, help and quit included)"
