"""Method step: presets and their explanations, and RunConfig → PEFT / bitsandbytes / TRL objects."""
