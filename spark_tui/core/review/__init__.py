"""Review step: the equivalent CLI command and hand-off configs for LLaMA-Factory and Axolotl."""
