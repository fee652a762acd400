"""Memory step: what a run will need (weights, adapters, optimizer, activations), the verdict, the fixes."""
