"""Weights in from other frameworks: torchvision's FCOS checkpoints converted to our module names
(new code; the original's checkpointer and Detectron converters stay in `fcos_core.utils`)."""
