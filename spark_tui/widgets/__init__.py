"""Reusable Textual widgets (thin: they draw data that the core computed)."""
