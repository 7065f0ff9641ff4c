"""Utilities: checkpointing and weight converters, logging, distributed helpers, environment."""
