"""Download cache for weights given as http(s) URLs (rank 0 downloads, the others wait)."""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

from torch.hub import download_url_to_file, get_dir

from fcos_core.utils.comm import is_main_process, synchronize

logger = logging.getLogger(__name__)

CACHE_ENV = "FCOS_CACHE"


def cache_dir() -> str:
    """Folder for downloaded weights: ``$FCOS_CACHE`` or ``<torch hub dir>/fcos``."""
    return os.environ.get(CACHE_ENV) or os.path.join(get_dir(), "fcos")


def url_to_filename(url: str) -> str:
    """File name for ``url``: the fragment if any (``...download#model.pth``), else the path's
    last component."""
    parts = urlparse(url)
    name = parts.fragment or os.path.basename(parts.path)
    if not name:
        raise ValueError(f"cannot derive a file name from URL {url!r}")
    return name


def cache_url(url: str, model_dir: str | None = None, progress: bool = True) -> str:
    """Return the local path of ``url``, downloading it once into the cache.

    In a distributed job only rank 0 downloads; every rank then waits at a barrier, so all of
    them read the same complete file.

    Args:
        url: http(s) address of a weights file.
        model_dir: cache folder (default :func:`cache_dir`).
        progress: show a download progress bar.

    Returns:
        path of the cached file.
    """
    model_dir = model_dir or cache_dir()
    os.makedirs(model_dir, exist_ok=True)
    cached_file = os.path.join(model_dir, url_to_filename(url))
    if is_main_process() and not os.path.exists(cached_file):
        logger.info("Downloading %s to %s", url, cached_file)
        download_url_to_file(url, cached_file, hash_prefix=None, progress=progress)
    synchronize()
    return cached_file
