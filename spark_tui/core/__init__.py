"""Everything that is not UI: the engine shared by the CLI, the trainer process and the TUI.

Nothing under this package may import Textual (a test and import-linter enforce it).
"""
