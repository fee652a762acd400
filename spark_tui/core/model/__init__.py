"""Model step: the catalogue, local and Hub model sources, the bundled default, the hardware probe."""
