"""The built-in demo: the sample dataset, the tiny model the studio builds offline, and the demo project."""
