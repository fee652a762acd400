from __future__ import annotations

from textual.widgets import Button, OptionList, Static

from spark_tui.app import SparkTuiApp
from spark_tui.screens.model import ModelScreen


async def _open_model_step(app, pilot):
    await pilot.pause()
    await pilot.press("n")
    await pilot.pause()
    assert isinstance(app.screen, ModelScreen)
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_default_model_card_and_next(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_model_step(app, pilot)
        screen = app.screen
        card = str(screen.query_one("#model-card", Static).render())
        assert "SmolLM2" in card and "135M" in card and "Chat template" in card
        assert not screen.query_one("#next", Button).disabled
        screen.action_next()
        await pilot.pause()
        assert app.config.model.id == "default"
        assert not isinstance(app.screen, ModelScreen)  # moved on


async def test_pick_catalogue_model_shows_gated_card(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_model_step(app, pilot)
        await pilot.click("#model-search")
        await pilot.press(*"70B")
        await pilot.pause()
        ol = app.screen.query_one("#model-list", OptionList)
        assert ol.option_count >= 1
        ids = [ol.get_option_at_index(i).id for i in range(ol.option_count)]
        assert any("70B" in i for i in ids)
        ol.highlighted = ids.index(next(i for i in ids if "Llama-3.1-70B" in i))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        card = str(app.screen.query_one("#model-card", Static).render())
        assert "gated" in card and "80 layers" in card


async def test_bad_folder_blocks_next_with_reason(spark_home, tmp_path):
    folder = tmp_path / "mymodel"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_model_step(app, pilot)
        inp = app.screen.query_one("#model-search")
        inp.value = str(folder)
        await pilot.click("#model-search")
        await pilot.press("enter")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one("#next", Button).disabled
        reason = str(app.screen.query_one("#next-reason", Static).render())
        assert reason  # names what is missing


async def test_download_key_on_a_hub_model_says_why_it_cannot_here(spark_home, monkeypatch):
    """Ctrl+D runs the core download in a worker; offline (as tests are) it names the
    setting in the line under the card instead of failing silently."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_model_step(app, pilot)
        ol = app.screen.query_one("#model-list", OptionList)
        ids = [ol.get_option_at_index(i).id for i in range(ol.option_count)]
        ol.highlighted = ids.index(next(i for i in ids if "Llama-3.1-8B" in i))
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Ctrl+D downloads it" in str(app.screen.query_one("#model-card", Static).render())
        await pilot.press("ctrl+d")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        line = str(app.screen.query_one("#model-download", Static).render())
        assert "HF_HUB_OFFLINE" in line and "hf download" in line
