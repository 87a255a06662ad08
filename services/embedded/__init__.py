"""The embedded default: the tiny reasoner (built and warm-started locally) and `simko demo`."""
