"""One module per tab: the handler functions and the `build(config)` that lays the tab out."""
