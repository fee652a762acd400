"""Retake the README's screenshots (SVG, 80×24) from a real quick run, driving the app with Pilot.

    .venv/bin/python scripts/screenshots.py            # train, evaluate, deploy, then shoot
    .venv/bin/python scripts/screenshots.py RUN        # shoot an existing finished run

Without RUN it trains the Quick test preset on the bundled data (about 3 minutes on
a 2-core CPU), evaluates it and deploys it (merge, GGUF export with verification,
Modelfile; Ollama when `ollama` is on PATH) through the CLI — the same commands a
user runs — in a throwaway spark-tui home, so the Train, Evaluate and Deploy
screenshots show a real run.  `docs/screenshots/run.json` names that run and its
scores; the Train screenshot's title carries the same run id.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SIZE = (80, 24)
RUN_NAME = "quick-test"


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "spark_tui", *args]
    print("$ spark-tui " + " ".join(args), flush=True)
    return subprocess.run(cmd, text=True, capture_output=True, env=os.environ.copy())


def make_run() -> Path:
    """A real quick run: train, evaluate, merge + export + Modelfile (+ Ollama if present)."""
    res = _cli("train", "--model", "default", "--data", "default", "--preset", "quick",
               "--name", RUN_NAME, "--json")  # fmt: skip
    if res.returncode != 0:
        sys.exit(f"training failed:\n{res.stderr[-2000:]}")
    out = res.stdout
    run_dir = Path(json.loads(out[out.find("{\n"):])["path"])  # the final status, as JSON
    for args in (["eval", str(run_dir), "--json"], ["export", str(run_dir), "--json"]):
        res = _cli(*args)
        if res.returncode != 0:
            sys.exit(f"{args[0]} failed:\n{res.stderr[-2000:]}")
    res = _cli("ollama", str(run_dir), "--name", RUN_NAME, "--json")
    if res.returncode not in (0, 3):  # 3: no Ollama server; the files and the command are kept
        sys.exit(f"ollama failed:\n{res.stderr[-2000:]}")
    return run_dir


async def _settle(app, pilot, cond=lambda: True, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        await pilot.pause()
        if cond():
            break
        await asyncio.sleep(0.2)
    await pilot.pause(0.5)


async def shoot(run_folder: str | None) -> None:
    from spark_tui.app import SparkTuiApp

    OUT.mkdir(parents=True, exist_ok=True)
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=SIZE) as pilot:
        await _settle(app, pilot, lambda: "GB" in str(app.screen.query_one("#system-summary").render()))
        app.save_screenshot("01-welcome.svg", str(OUT))
        await pilot.press("n")
        await _settle(app, pilot, lambda: getattr(app.screen, "info", None) is not None)
        app.save_screenshot("02-model.svg", str(OUT))
        app.screen.action_next()
        await _settle(app, pilot, lambda: getattr(app.screen, "verdict", None) is not None)
        app.save_screenshot("03-memory.svg", str(OUT))
        app.screen.action_next()
        await _settle(app, pilot, lambda: getattr(app.screen, "prepared", None) is not None, 300)
        app.save_screenshot("04-dataset.svg", str(OUT))
        app.screen.query_one("#data-tabs").active = "tab-preview"
        await _settle(app, pilot)
        app.save_screenshot("05-dataset-preview.svg", str(OUT))
        app.screen.action_next()
        await _settle(app, pilot, lambda: "estimate" in str(app.screen.query_one("#estimate").render()))
        app.save_screenshot("06-method.svg", str(OUT))
        app.screen.action_next()
        await _settle(app, pilot, lambda: "peak" in str(app.screen.query_one("#review-verdict").render()))
        app.save_screenshot("07-review.svg", str(OUT))
        await pilot.press("f1")
        await _settle(app, pilot)
        app.save_screenshot("08-help.svg", str(OUT))
    if not run_folder:
        return
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_run(run_folder)  # a finished run opens on Evaluate
        await _settle(app, pilot, lambda: getattr(app.screen, "result", None) is not None, 5)
        app.save_screenshot("10-evaluate.svg", str(OUT))
        app.pop_screen()
        app.show_step("train")

        def looked() -> bool:
            panels = app.screen.query("#first-look")
            return getattr(app.screen, "state", "") == "finished" and bool(panels) and panels.first().done

        await _settle(app, pilot, looked, 300)  # the before/after answers beside the curve
        await pilot.pause(1.5)
        app.save_screenshot("09-train.svg", str(OUT))
        app.show_step("deploy")
        await _settle(app, pilot, lambda: getattr(app.screen, "shown_report", False))
        app.save_screenshot("11-deploy.svg", str(OUT))


def main(argv: list[str]) -> None:
    if argv:
        run_dir = Path(argv[0])
        asyncio.run(shoot(str(run_dir)))
    else:
        home = Path(tempfile.mkdtemp(prefix="spark-tui-screens-"))
        os.environ["SPARK_TUI_HOME"] = str(home)
        try:
            run_dir = make_run()
            asyncio.run(shoot(str(run_dir)))
            _record(run_dir)
        finally:
            shutil.rmtree(home, ignore_errors=True)
    print(f"screenshots in {OUT}")


def _record(run_dir: Path) -> None:
    """docs/screenshots/run.json: which run the pictures show, and its headline scores."""
    ev = json.loads((run_dir / "eval.json").read_text())
    look = json.loads((run_dir / "first_look.json").read_text())
    st = json.loads((run_dir / "status.json").read_text())
    rec = {
        "run_id": run_dir.name,
        "preset": "quick",
        "steps": st.get("step"),
        "train_seconds": st.get("elapsed_s"),
        "rougeL": {"base": ev["base"].get("rougeL"), "tuned": ev["tuned"].get("rougeL")},
        "heldout_loss": {"base": ev["base"].get("loss"), "tuned": ev["tuned"].get("loss")},
        "first_look": look.get("pairs", [])[:2],
    }
    (OUT / "run.json").write_text(json.dumps(rec, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
