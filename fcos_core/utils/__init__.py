"""Utilities: the checkpointer and Detectron weight converters, download cache, logging,
distributed helpers (`comm`), the precision vocabulary (`precision`), signals, environment and
visualisation."""
