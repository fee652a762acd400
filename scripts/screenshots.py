"""Save an SVG of every wizard step (for the README) by driving the app with Pilot.

    .venv/bin/python scripts/screenshots.py [RUN_FOLDER]

RUN_FOLDER: a finished run to show on the Train and Evaluate screens (optional).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from spark_tui.app import SparkTuiApp

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SIZE = (80, 24)


async def _settle(app, pilot, cond=lambda: True, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        await pilot.pause()
        if cond():
            break
        await asyncio.sleep(0.2)
    await pilot.pause(0.5)


async def main(run_folder: str | None) -> None:
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
    if run_folder:
        app = SparkTuiApp(preload=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.open_run(run_folder)  # a finished run opens on Evaluate
            await _settle(app, pilot, lambda: getattr(app.screen, "result", None) is not None, 5)
            app.save_screenshot("10-evaluate.svg", str(OUT))
            app.pop_screen()
            app.show_step("train")
            await _settle(app, pilot, lambda: getattr(app.screen, "state", "") == "finished")
            await pilot.pause(1.5)
            app.save_screenshot("09-train.svg", str(OUT))
            app.show_step("deploy")
            await _settle(app, pilot)
            app.save_screenshot("11-deploy.svg", str(OUT))
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
