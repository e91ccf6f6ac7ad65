"""The built-in demo: the sample dataset and the tiny model the studio builds offline (the demo project that uses
them is set up by engine.data.demo_project)."""
