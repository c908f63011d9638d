"""The benchmarks: tools for the checkout, not part of the installed product.

Run from the checkout as `python -m bench history|warehouse|collect` (or `make bench`);
they need the `dev` extra (pandas for the history baseline, psutil for memory probes), which
`make install` provides. Nothing under `pipeline/` or `assets/` imports this package, and
the wheel does not ship it (tests/app/test_packaging.py checks both).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ROOT", "with_root_on_path"]

# The checkout: the benchmarks' own worker processes import `bench` from here, whatever
# their working directory.
ROOT = Path(__file__).resolve().parents[1]


def with_root_on_path(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's) with the checkout first on PYTHONPATH, so a child
    `python -m bench.history` or `-c 'from bench.collect import ...'` finds this package."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env
