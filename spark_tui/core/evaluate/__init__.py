"""Evaluate step: scores, generation, chat, compare, blind A/B review and sweeps."""
