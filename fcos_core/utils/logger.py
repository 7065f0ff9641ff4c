"""Logging setup: rank 0 logs to stdout and ``save_dir/filename``; other ranks stay quiet."""

from __future__ import annotations

import logging
import os
import sys

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


def setup_logger(
    name: str, save_dir: str | None, distributed_rank: int, filename: str = "log.txt"
) -> logging.Logger:
    """Configure and return the logger ``name``.

    Calling it again replaces the handlers it installed before (no duplicated lines in tests or
    when a tool is run twice in one process).

    Args:
        name: logger name; "fcos_core" configures every module logger of the package.
        save_dir: folder for the log file; empty or None logs to stdout only.
        distributed_rank: global rank; ranks other than 0 get no handlers.
        filename: log file name inside ``save_dir``.

    Returns:
        the configured logger.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if distributed_rank > 0:
        logger.addHandler(logging.NullHandler())
        return logger
    formatter = logging.Formatter(LOG_FORMAT)
    stream = logging.StreamHandler(stream=sys.stdout)
    stream.setLevel(logging.DEBUG)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(save_dir, filename))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger
