from __future__ import annotations

from textual.widgets import Input, Select, Static

from spark_tui.app import SparkTuiApp
from spark_tui.screens.method import MethodScreen


async def _method(app, pilot):
    await pilot.pause()
    app.show_step("method")
    await pilot.pause()
    assert isinstance(app.screen, MethodScreen)
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


async def test_preset_applies_and_estimate_shows(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _method(app, pilot)
        assert "Memory estimate" in str(screen.query_one("#estimate", Static).render())
        screen.query_one("#preset", Select).value = "quick"
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert app.config.train.max_steps == 30 and app.config.lora.r == 16
        assert screen.query_one("#f-lora-r", Input).value == "16"


async def test_bad_value_blocks_next_and_names_field(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _method(app, pilot)
        screen.query_one("#method-tabs").active = "tab-lora"
        await pilot.pause()
        inp = screen.query_one("#f-lora-dropout", Input)
        inp.value = "0.95"
        await pilot.pause()
        ok, reason = screen.validate_step()
        assert not ok and "lora.dropout" in reason
        assert app.config.lora.dropout == 0.05  # the bad value was not taken
        inp.value = "0.1"
        await pilot.pause()
        assert screen.validate_step()[0]
        assert app.config.lora.dropout == 0.1


async def test_only_supported_objectives_offered(spark_home):
    app = SparkTuiApp(preload=False)
    app.data_report = {"format": "kto"}
    app.config.method.objective = "dpo"  # not possible with thumbs-up/down data
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _method(app, pilot)
        sel = screen.query_one("#f-method-objective", Select)
        values = [v for _, v in sel._options if v is not Select.BLANK]
        assert "kto" in values and "sft" in values  # SFT on the desirable rows
        assert "dpo" not in values and "simpo" not in values
        assert app.config.method.objective in ("sft", "kto")
        sel.value = "kto"
        await pilot.pause()
        assert app.config.method.objective == "kto"
        assert screen.query_one("#method-tabs").get_tab("tab-pref").display


async def test_distributed_tab_sets_the_launch_and_review_shows_each_machine(spark_home):
    from spark_tui.screens.review import ReviewScreen

    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _method(app, pilot)
        screen.query_one("#method-tabs").active = "tab-dist"
        await pilot.pause()
        screen.query_one("#f-distributed-strategy", Select).value = "ddp"
        screen.query_one("#f-distributed-machines", Input).value = "2"
        screen.query_one("#f-distributed-main_address", Input).value = "192.168.100.10"
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        d = app.config.distributed
        assert (d.strategy, d.machines, d.main_address) == ("ddp", 2, "192.168.100.10")
        assert "DDP:" in str(screen.query_one("#estimate", Static).render())  # per process
        # A machine rank outside the machines is refused where it is typed.
        screen.query_one("#f-distributed-machine_rank", Input).value = "2"
        await pilot.pause()
        ok, reason = screen.validate_step()
        assert not ok and "machine_rank" in reason
        screen.query_one("#f-distributed-machine_rank", Input).value = "0"
        await pilot.pause()
        assert screen.validate_step()[0]
        if app.probe is not None and not app.probe.gpus:  # FSDP: refused here, not at Start
            screen.query_one("#f-distributed-strategy", Select).value = "fsdp"
            await pilot.pause()
            ok, reason = screen.validate_step()
            assert not ok and "FSDP needs GPUs" in reason
            screen.query_one("#f-distributed-strategy", Select).value = "ddp"
            await pilot.pause()
        app.show_step("review")
        await pilot.pause()
        assert isinstance(app.screen, ReviewScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = str(app.screen.query_one("#review-command", Static).render())
        run = app.current_run
        assert "machine 0:" in text and "machine 1:" in text and "--machine-rank 1" in text
        assert f"spark-tui launch {run.path} --machine-rank 1" in app.screen.command
        verdict = str(app.screen.query_one("#review-verdict", Static).render())
        assert "DDP over 2 processes" in verdict and "Per machine" in verdict


async def test_editing_a_field_after_a_preset_turns_it_custom_without_an_error(spark_home):
    app = SparkTuiApp(preload=False)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _method(app, pilot)
        screen.query_one("#preset", Select).value = "quick"
        await pilot.pause()
        screen.query_one("#method-tabs").active = "tab-lora"
        await pilot.pause()
        screen.query_one("#f-lora-r", Input).value = "8"
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.config.lora.r == 8 and app.config.train.max_steps == 30  # the preset stays
        assert screen.query_one("#preset", Select).is_blank()  # shown as "custom"
        said = [n.message for n in app._notifications]
        assert not any("unknown preset" in m for m in said), said
