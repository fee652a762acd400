"""One module per wizard step.  Screens read widgets and call `spark_tui.core`; no domain logic."""
