"""Small filesystem helpers."""

from __future__ import annotations

import os


def mkdir(path: str) -> None:
    """Create ``path`` and its parents; an existing folder is fine."""
    if path:
        os.makedirs(path, exist_ok=True)
