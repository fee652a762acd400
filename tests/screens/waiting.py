"""Waiting for a screen's background work in Pilot tests."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.worker import WorkerCancelled, WorkerState


async def workers_done(app: Any) -> None:
    """Wait for the app's workers.  A worker cancelled because a newer one of its exclusive
    group replaced it (the Dataset step restarts preparation when the source changes) is
    not a failure: the newer one is waited for instead."""
    for _ in range(200):
        live = [w for w in app.workers if w.state != WorkerState.CANCELLED]
        try:
            await app.workers.wait_for_complete(live)
            return
        except WorkerCancelled:
            await asyncio.sleep(0.05)
    raise AssertionError("workers kept being cancelled")
