"""The plugin's dock widgets (thin: they gather choices, run core work off the GUI thread, show layers)."""
