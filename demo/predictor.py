"""Kept for code written against the demo: the predictor now lives in the package.

from fcos_core.engine.predictor import FCOSPredictor
"""

from fcos_core.engine.predictor import FCOSPredictor, default_class_names

__all__ = ["FCOSPredictor", "default_class_names"]
