"""Lazy package exports: a package's public names, imported from their module on first use.

Why: `import pipeline.storage` (or any subpackage) must stay as cheap as importing one
module (the CLI starts in a fraction of a second and most commands touch few stages), yet
each subpackage's `__init__` names its public API once, in one `_EXPORTS` table.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module-level `__getattr__` for `package`: `exports` maps a public name to the
    submodule (relative to `package`) that defines it."""

    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
