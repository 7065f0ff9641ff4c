"""Download cache for weights given as URLs (rank 0 downloads, the others wait).

A download goes to ``<cache>/<file>.part`` and is moved over ``<cache>/<file>`` only when complete
and verified, so a cached file is never half a file. It shows a progress bar; when the transfer
breaks, it is resumed once from where it stopped (HTTP Range; from the start where the server
ignores ranges), and a ``.part`` left by an earlier run is resumed too. The size is checked
against the server's Content-Length / Content-Range, and the SHA-256 against the prefix that
torchvision-style file names carry (``resnet50-0676ba61.pth``) on hosts known to use that
convention. A failure names the URL and the ``wget`` command that fetches the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.parse import urldefrag, urlparse
from urllib.request import Request, urlopen

from torch.hub import get_dir
from tqdm import tqdm

from fcos_core.utils.comm import is_main_process, synchronize
from fcos_core.utils.safe_io import CheckpointLoadError

logger = logging.getLogger(__name__)

CACHE_ENV = "FCOS_CACHE"
# Tries per download: the first transfer plus one resume (or retry).
DOWNLOAD_ATTEMPTS = 2
READ_CHUNK_BYTES = 1 << 20
SOCKET_TIMEOUT_S = 60
PARTIAL_SUFFIX = ".part"
# Hosts whose file names end in "-<first hex digits of the SHA-256>.<ext>" (torch.hub convention).
HASHED_HOSTS = ("download.pytorch.org",)
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^./]+$")
# HTTP status codes worth a second try; other 4xx answers are final.
_RETRYABLE_HTTP = (408, 429)


class DownloadError(CheckpointLoadError):
    """A weights file could not be downloaded (or failed verification)."""


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


def expected_sha256_prefix(url: str) -> str | None:
    """The SHA-256 prefix in the file name of a URL on a host in ``HASHED_HOSTS``, else None."""
    parts = urlparse(url)
    if parts.hostname not in HASHED_HOSTS:
        return None
    match = _HASH_IN_NAME.search(os.path.basename(parts.path))
    return match.group(1) if match else None


def cache_url(url: str, model_dir: str | None = None, progress: bool = True) -> str:
    """Return the local path of ``url``, downloading it once into the cache.

    In a distributed job only rank 0 downloads; every rank then waits at a barrier, so all of
    them read the same complete file.

    Args:
        url: http(s) (or file://) address of a weights file.
        model_dir: cache folder (default :func:`cache_dir`).
        progress: show a download progress bar.

    Returns:
        path of the cached file.

    Raises:
        DownloadError: the download failed twice or the file failed verification.
    """
    model_dir = model_dir or cache_dir()
    os.makedirs(model_dir, exist_ok=True)
    cached_file = os.path.join(model_dir, url_to_filename(url))
    failure: DownloadError | None = None
    if is_main_process() and not os.path.exists(cached_file):
        logger.info("Downloading %s to %s", url, cached_file)
        try:
            download(url, cached_file, sha256_prefix=expected_sha256_prefix(url), progress=progress)
        except DownloadError as e:
            failure = e  # raised after the barrier, so the other ranks are not left waiting
    synchronize()
    if failure is not None:
        raise failure
    if not os.path.exists(cached_file):
        raise DownloadError(
            f"{cached_file} is missing after the main process tried to download {url} (see its log)"
        )
    return cached_file


def download(
    url: str, dst: str, *, sha256_prefix: str | None = None, progress: bool = True
) -> None:
    """Download ``url`` to ``dst`` through ``dst + ".part"``, resuming once if interrupted.

    Raises:
        DownloadError: both attempts failed, or the size or SHA-256 is wrong.
    """
    partial = dst + PARTIAL_SUFFIX
    error: Exception | None = None
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            _transfer(url, partial, progress)
            error = None
            break
        except HTTPError as e:
            error = e
            if e.code not in _RETRYABLE_HTTP and e.code < 500:
                break
        except (URLError, OSError, http.client.HTTPException, _Incomplete) as e:
            error = e
        if attempt + 1 < DOWNLOAD_ATTEMPTS:
            logger.warning("Download of %s interrupted (%s); resuming", url, _reason(error))
    if error is not None:
        raise DownloadError(_failure_message(url, dst, _reason(error)))
    if sha256_prefix:
        _verify_sha256(url, dst, partial, sha256_prefix)
    os.replace(partial, dst)


class _Incomplete(Exception):
    """The transfer ended before the announced size."""


def _transfer(url: str, partial: str, progress: bool) -> None:
    """One request: continue ``partial`` (Range) or start it anew; check the final size."""
    have = os.path.getsize(partial) if os.path.exists(partial) else 0
    headers = {"User-Agent": "fcos"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=SOCKET_TIMEOUT_S)
    except HTTPError as e:
        if e.code == 416 and have:  # the range starts past the end: start over
            os.remove(partial)
        raise
    with response:
        resumed = bool(have) and getattr(response, "status", None) == 206
        if not resumed:
            have = 0
        total = _total_size(response, have, resumed)
        with open(partial, "ab" if resumed else "wb") as f:
            _copy(response, f, have, total, progress, os.path.basename(partial))
    size = os.path.getsize(partial)
    if total is not None and size != total:
        raise _Incomplete(f"received {size} of {total} bytes")


def _total_size(response: http.client.HTTPResponse, have: int, resumed: bool) -> int | None:
    """The complete file's size from Content-Range (resumed) or Content-Length, if given."""
    content_range = response.headers.get("Content-Range", "")
    if resumed and "/" in content_range and content_range.rsplit("/", 1)[1].isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return have + int(length) if length and length.isdigit() else None


def _copy(
    response: IO[bytes], f: IO[bytes], have: int, total: int | None, progress: bool, name: str
) -> None:
    with tqdm(
        total=total,
        initial=have,
        disable=not progress,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name.removesuffix(PARTIAL_SUFFIX),
    ) as bar:
        while chunk := response.read(READ_CHUNK_BYTES):
            f.write(chunk)
            bar.update(len(chunk))
        f.flush()
        os.fsync(f.fileno())


def _verify_sha256(url: str, dst: str, partial: str, prefix: str) -> None:
    digest = hashlib.sha256()
    with open(partial, "rb") as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            digest.update(chunk)
    if not digest.hexdigest().startswith(prefix):
        os.remove(partial)
        raise DownloadError(
            _failure_message(
                url,
                dst,
                f"SHA-256 mismatch: the file name says {prefix}..., the download is "
                f"{digest.hexdigest()} (removed)",
            )
        )


def _reason(error: Exception | None) -> str:
    if isinstance(error, HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return str(error.reason)
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


def _failure_message(url: str, dst: str, reason: str) -> str:
    plain_url = urldefrag(url).url
    return (
        f"could not download {url}: {reason}. Fetch it by hand and run again: "
        f"wget -O '{dst}' '{plain_url}'"
    )
