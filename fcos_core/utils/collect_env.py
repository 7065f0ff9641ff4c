"""Environment report logged at the start of training and testing."""

from __future__ import annotations

import PIL
from torch.utils.collect_env import get_pretty_env_info


def collect_env_info() -> str:
    """Return torch's environment summary plus the Pillow version."""
    return f"{get_pretty_env_info()}\n        Pillow ({PIL.__version__})"
