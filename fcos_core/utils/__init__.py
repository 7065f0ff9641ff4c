"""Utilities: the checkpointer and Detectron weight converters, download cache, logging,
distributed helpers (`comm`), signals, environment and visualisation."""
