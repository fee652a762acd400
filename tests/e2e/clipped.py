"""Flag lines of a captured terminal screen that end in a clipped number.

    tmux capture-pane -p -t SESSION | python tests/e2e/clipped.py WIDTH STEP

A number (or an opening "(" / "+" of one) that touches the right edge of the
screen, or a box border with no space before it, is a value the layout cut
off: "3.7 GB / 25 (+3" in a gauge, "loss 3.9│" in a panel.  Prints each such
line with its step name and exits 1; exits 0 on a clean screen.
"""

from __future__ import annotations

import re
import sys

BORDERS = "│┃┆┊║▏▕▌▐▁▂▃▄▅▆▇█"  # box borders, and sparkline bars that follow a gauge value
# A digit, or the "(" / "+" that starts a figure, right against a border or the edge.
TOUCHING = re.compile(rf"[0-9(+][{BORDERS}]")


def clipped_lines(text: str, width: int) -> list[str]:
    bad = []
    for line in text.splitlines():
        core = line.rstrip()
        if not core:
            continue
        at_edge = len(core) >= width and re.search(r"[0-9(+]$", core)
        if at_edge or TOUCHING.search(core):
            bad.append(line)
    return bad


def main() -> int:
    width = int(sys.argv[1]) if len(sys.argv) > 1 else 80
    step = sys.argv[2] if len(sys.argv) > 2 else "screen"
    bad = clipped_lines(sys.stdin.read(), width)
    for line in bad:
        print(f"tmux walkthrough ({step}): a clipped number: {line!r}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
