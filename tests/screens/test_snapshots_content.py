"""Every wizard screen at 80×24 with real content: a fixed machine, the bundled model and
data, and a finished quick run with its evaluation, first look and deploy report.

What these guard is readability (no clipped label or value, the footer keys in view, no
text that a 256- or 16-colour terminal would lose into its background: `colours.py`) as
much as layout.  Regenerate after an intended change with
`pytest tests/screens/test_snapshots_content.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import colours  # noqa: E402
import showcase  # noqa: E402
from waiting import workers_done  # noqa: E402

from spark_tui.app import SparkTuiApp  # noqa: E402
from spark_tui.core.model import hardware, usage  # noqa: E402
from spark_tui.core.train import runs  # noqa: E402
from spark_tui.widgets.gauges import MemoryGauges  # noqa: E402

SIZE = (80, 24)
# A fixed home: the screens print run folders and data paths, so a tmp_path would
# change every snapshot from one session to the next.
HOME = Path("/tmp/spark-tui-snapshot-home")


class _FixedClock:
    class datetime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 12, 4, 10, 30, 0)


@pytest.fixture
def showcase_home(monkeypatch, default_model_dir):
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir(parents=True)
    monkeypatch.setenv("SPARK_TUI_HOME", str(HOME))
    monkeypatch.setattr(hardware, "probe", lambda **_kw: showcase.fixed_probe())
    monkeypatch.setattr(usage, "sample", showcase.fixed_sample)
    monkeypatch.setattr(MemoryGauges, "on_mount", lambda self: self._tick())  # one reading
    monkeypatch.setattr("spark_tui.screens.model.list_cached_models", lambda: [])
    monkeypatch.setattr(runs, "_dt", _FixedClock)  # the run id a new run gets
    run = showcase.make_showcase_run(HOME)
    yield run
    shutil.rmtree(HOME, ignore_errors=True)


async def _settle(pilot, cond=lambda: True, timeout: float = 120) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        await pilot.pause()
        await workers_done(pilot.app)
        if cond():
            break
        await asyncio.sleep(0.1)
    await pilot.pause()


def _shot(snap_compare, run_before) -> None:
    """The 80x24 snapshot of one screen, and no text lost at 256 or 16 colours there."""
    check = colours.Check(run_before)
    assert snap_compare(SparkTuiApp(preload=False), terminal_size=SIZE, run_before=check)
    check.assert_none_lost()


def _wizard_step(step: str, ready):
    """run_before for one wizard step, opened on the bundled model and data."""

    async def run_before(pilot):
        app = pilot.app
        app.start_wizard()
        await _settle(pilot)
        if step != "model":
            app.show_step(step)
        await _settle(pilot, lambda: ready(app.screen))

    return run_before


def _run_step(step: str, ready):
    """run_before that opens the finished showcase run and shows `step`."""

    async def run_before(pilot):
        app = pilot.app
        await _settle(pilot)
        app.open_run(str(HOME / "runs" / showcase.RUN_ID))
        await _settle(pilot)
        if app.screen.STEP != step:
            app.show_step(step)
        await _settle(pilot, lambda: ready(app.screen))

    return run_before


def test_welcome_with_a_finished_run(snap_compare, showcase_home):
    async def run_before(pilot):
        await _settle(
            pilot, lambda: "GB" in str(pilot.app.screen.query_one("#system-summary").render())
        )

    _shot(snap_compare, run_before)


def test_model_card(snap_compare, showcase_home):
    ready = _wizard_step("model", lambda s: getattr(s, "info", None) is not None)
    _shot(snap_compare, ready)


def test_memory_verdict(snap_compare, showcase_home):
    ready = _wizard_step("memory", lambda s: getattr(s, "verdict", None) is not None)
    _shot(snap_compare, ready)


def test_dataset_prepared(snap_compare, showcase_home):
    ready = _wizard_step("dataset", lambda s: getattr(s, "prepared", None) is not None)
    _shot(snap_compare, ready)


def test_review_verdict(snap_compare, showcase_home):
    ready = _wizard_step("review", lambda s: "peak" in str(s.query_one("#review-verdict").render()))
    _shot(snap_compare, ready)


def test_train_finished_run(snap_compare, showcase_home):
    def ready(s):
        panel = s.query_one("#first-look")
        return getattr(s, "state", "") == "finished" and panel.done

    _shot(snap_compare, _run_step("train", ready))


def test_evaluate_filled_table(snap_compare, showcase_home):
    ready = _run_step("evaluate", lambda s: getattr(s, "result", None) is not None)
    _shot(snap_compare, ready)


def test_deploy_report(snap_compare, showcase_home):
    ready = _run_step("deploy", lambda s: bool(getattr(s, "shown_report", False)))
    _shot(snap_compare, ready)
