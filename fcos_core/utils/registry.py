"""``Registry``: a dict of named builders that user code can extend (the original public API).

    from fcos_core.modeling import registry

    @registry.BACKBONES.register("MY-FPN")
    def build_my_fpn(cfg):
        ...

    registry.BACKBONES.register("MY-FPN-2", build_my_fpn)   # the same, as a call

A name can be registered once; registering it again raises :class:`KeyError` naming the entry
already there. Look-ups are ordinary dict indexing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fcos_core.config.checks import one_of_message

_F = TypeVar("_F", bound=Callable[..., Any])


class Registry(dict):
    """A dict of name -> module/builder with a :meth:`register` method.

    Args:
        *args, **kwargs: initial entries, as for ``dict``.
    """

    def register(self, module_name: str, module: Any = None) -> Any:
        """Add ``module`` under ``module_name``; without ``module``, return a decorator that does.

        Raises:
            KeyError: ``module_name`` is already registered.
        """
        if module is not None:
            self._add(module_name, module)
            return module

        def decorator(fn: _F) -> _F:
            self._add(module_name, fn)
            return fn

        return decorator

    def _add(self, module_name: str, module: Any) -> None:
        if module_name in self:
            existing = self[module_name]
            module_of = getattr(existing, "__module__", None)
            label = getattr(existing, "__qualname__", repr(existing))
            where = f"{module_of}.{label}" if module_of else label
            raise KeyError(
                f"{module_name!r} is already registered (to {where}); choose another name"
            )
        self[module_name] = module


def unknown_name_message(registry: Registry, name: str, key: str) -> str:
    """``"<key> must be one of <names>, got <name>. Did you mean X?"`` (closest match named)."""
    return one_of_message(key, name, registry)
