#!/usr/bin/env bash
# Drives the real `spark-tui` binary in tmux at 80x24, like a person over SSH:
# send keys, wait for the expected text, fail with the captured screen if it
# never shows up.  Run by `make test` when tmux is installed.
set -euo pipefail

SOCK="spark-tui-e2e-$$"
HOME_DIR="$(mktemp -d)"
KEYS=0
cleanup() { tmux -L "$SOCK" kill-server >/dev/null 2>&1 || true; rm -rf "$HOME_DIR"; }
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

key() { tmux -L "$SOCK" send-keys -t e2e "$@"; KEYS=$((KEYS + $#)); }

tmux -L "$SOCK" new-session -d -s e2e -x 80 -y 24 \
    "env SPARK_TUI_HOME='$HOME_DIR' TERM=xterm-256color HF_HUB_OFFLINE=1 spark-tui; sleep 5"

wait_for "New fine-tune" 60
wait_for "Memory" 30
wait_for "GB free" 30

# Help opens and closes.
key F1
wait_for "A guided path" 20
key Escape
wait_for "New fine-tune (n)" 20

# Quit.
key C-q
sleep 1
if screen | grep -qF "New fine-tune (n)"; then
    echo "tmux walkthrough: the app did not quit on Ctrl+Q" >&2
    screen >&2
    exit 1
fi
echo "tmux walkthrough passed: $KEYS keys sent"
