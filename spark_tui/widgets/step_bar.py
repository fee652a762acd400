"""The wizard's step bar: Model › Memory › Dataset › … with the current step highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

STEP_TITLES: dict[str, str] = {
    "model": "Model",
    "memory": "Memory",
    "dataset": "Dataset",
    "method": "Method",
    "review": "Review",
    "train": "Train",
    "evaluate": "Evaluate",
    "deploy": "Deploy",
}


class StepBar(Static):
    """Shows every step; done steps dim, the current one reversed."""

    DEFAULT_CSS = """
    StepBar { height: 1; width: 1fr; padding: 0 1; background: $panel; }
    """

    def __init__(self, current: str, steps: list[str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = current
        self.steps = steps or list(STEP_TITLES)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        idx = self.steps.index(self.current) if self.current in self.steps else -1
        for i, step in enumerate(self.steps):
            if i:
                text.append(" › ", style="dim")
            title = STEP_TITLES.get(step, step.title())
            if i == idx:
                text.append(f" {title} ", style="reverse bold")
            elif i < idx:
                text.append(title, style="dim")
            else:
                text.append(title)
        return text
