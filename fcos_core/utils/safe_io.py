"""Crash-safe writing and untrusted-file-aware reading of checkpoints.

Writing: :func:`atomic_save` / :func:`atomic_write_text` write to a temporary file in the same
folder, ``fsync`` it, then ``os.replace`` it over the destination, so a kill at any moment leaves
either the old file or the new one, never half a file.

Reading: ``.pth`` files go through ``torch.load(weights_only=True)``, which refuses pickles that
reference arbitrary code; NumPy arrays, scalars and dtypes (which older training checkpoints hold
in solver states) are allowed too. Caffe2/Detectron ``.pkl`` files are read with an allow-list
unpickler that only rebuilds NumPy arrays and plain containers: no code in the file runs, so any
``.pkl`` loads without a flag, and one that references anything else is refused, naming the global.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import IO, Any

import numpy as np
import torch


class CheckpointLoadError(RuntimeError):
    """A checkpoint file is missing, truncated or corrupt."""


class UnsafeCheckpointError(CheckpointLoadError):
    """A checkpoint file asks to run code (or build objects) that loading must not allow."""


def _fsync_dir(folder: str) -> None:
    """Flush the folder entry of a rename to disk (best effort; not supported everywhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: str, write_fn: Any) -> None:
    """Call ``write_fn(file)`` on a temp file next to ``path`` and move it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_dir(folder)


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + rename)."""
    _atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def load_pth(path: str) -> Any:
    """Load a ``.pth`` file with ``torch.load(weights_only=True)`` on CPU.

    Raises:
        CheckpointLoadError: the file is missing, truncated or corrupt (the message names it).
        UnsafeCheckpointError: the file holds objects beyond tensors and plain containers, e.g.
            a pickle crafted to run code when loaded.
    """
    if not os.path.isfile(path):
        raise CheckpointLoadError(f"checkpoint file not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights only load failed" in str(e).lower():
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it contains objects other than tensors, NumPy arrays "
                f"and plain containers, which could run code when unpickled "
                f"({_unsupported_global(e)}). If you trust its source, keep only its weights in "
                "a separate Python session: torch.save({'model': torch.load(PATH, "
                "weights_only=False)['model']}, 'weights.pth'), and load weights.pth."
            ) from None
        raise CheckpointLoadError(f"cannot read checkpoint {path}: {first_line}") from None
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointLoadError(
            f"cannot read checkpoint {path}: the file is truncated or corrupt ({first_line})"
        ) from None


def _unsupported_global(error: Exception) -> str:
    """Pull the 'Unsupported global: ...' phrase out of torch's weights-only error."""
    for line in str(error).splitlines():
        if "unsupported global" in line.lower() or "unsupported operand" in line.lower():
            return line.strip().removeprefix("WeightsUnpickler error:").strip().rstrip(".")
    return "weights-only unpickling refused it"


# Globals a Caffe2/Detectron .pkl legitimately needs: NumPy array reconstruction only. Files
# pickled by NumPy < 2 name ``numpy.core``, newer ones ``numpy._core``; ``_codecs.encode`` turns
# the array bytes of a protocol-2 pickle back into bytes.
_MULTIARRAY = np._core.multiarray
_PKL_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
    ("_codecs", "encode"): __import__("codecs").encode,
}


def _numpy_dtype_classes() -> list[type]:
    """``numpy.dtypes.Float32DType`` etc. (a pickled dtype is rebuilt through its class), without
    the object dtype."""
    return [
        cls
        for name in dir(np.dtypes)
        if name.endswith("DType") and name != "ObjectDType"
        for cls in [getattr(np.dtypes, name)]
        if isinstance(cls, type)
    ]


def _numpy_safe_globals() -> list[Any]:
    """The NumPy part of the allow-list, in ``torch.serialization.safe_globals`` form."""
    entries: list[Any] = [
        (obj, f"{module}.{name}")
        for (module, name), obj in _PKL_ALLOWED_GLOBALS.items()
        if module.startswith("numpy")
    ]
    return entries + _numpy_dtype_classes()


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_PKL_ALLOWED_GLOBALS``."""

    def __init__(self, file: IO[bytes], path: str) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in _PKL_ALLOWED_GLOBALS:
            raise UnsafeCheckpointError(
                f"refusing to load {self.path}: it references {module}.{name}, which a weights "
                "file never needs (only NumPy arrays and plain containers are allowed)"
            )
        return _PKL_ALLOWED_GLOBALS[key]


def load_pkl(path: str) -> Any:
    """Load a pickled (Caffe2 / Detectron) weights file with the allow-list unpickler.

    Only NumPy arrays, scalars and dtypes and plain containers (dict, list, tuple, str, numbers)
    are rebuilt, so nothing in the file can run code; Python 2 pickles are read with the latin1
    encoding NumPy needs.

    Raises:
        UnsafeCheckpointError: the file references another global (the message names it).
        CheckpointLoadError: missing, truncated or corrupt file.
    """
    if not os.path.isfile(path):
        raise CheckpointLoadError(f"checkpoint file not found: {path}")
    try:
        with open(path, "rb") as f:
            return _AllowListUnpickler(f, path).load()
    except UnsafeCheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointLoadError(
            f"cannot read pickled weights {path}: the file is truncated or corrupt ({e})"
        ) from None
