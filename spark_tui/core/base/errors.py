"""The project's own error type.

Anything raised as `SparkError` carries a message written for the user: it names
the file, row or setting at fault and says what to do.  The CLI prints it
without a traceback and the TUI shows it in a notification or error panel.
"""

from __future__ import annotations


class SparkError(Exception):
    """A user-facing error whose message is complete on its own."""
