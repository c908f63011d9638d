"""`python -m bench history|warehouse|collect [options]`: one benchmark, its ratios beside
issue 11's targets. Run from the checkout after `make install` (the `dev` extra brings
pandas and psutil, which the benchmarks need and the product does not)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.util import find_spec

BENCHMARKS = {
    "history": "flatten and Parquet of a raw zone, beside the pandas baseline",
    "warehouse": "a generated year built full and incrementally",
    "collect": "`vast-pipeline collect` start to finish, day one and with a year of history",
    "market-landing": "one market snapshot of ~5,000 offers landed from its raw file",
    "market": "a year of hourly market snapshots: the incremental build and the market models",
}
# What the benchmarks need beyond the pipeline (in the `dev` extra of pyproject.toml).
NEEDS = ("pandas", "psutil")


def _usage() -> str:
    lines = ["usage: python -m bench {" + ",".join(BENCHMARKS) + "} [options]", ""]
    lines += [f"  {name:<10} {what}" for name, what in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(_usage(), file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    which, rest = args[0], args[1:]
    if which not in BENCHMARKS:
        print(f"error: No benchmark named {which!r}; pick one of "
              f"{', '.join(BENCHMARKS)}.", file=sys.stderr)
        return 2
    missing = [name for name in NEEDS if find_spec(name) is None]
    if missing:
        print(f"error: The benchmarks need {' and '.join(missing)}, which "
              f"{'is' if len(missing) == 1 else 'are'} not installed; run "
              "make install (pip install -e '.[dev]').", file=sys.stderr)
        return 2
    module = import_module(f"bench.{which.replace('-', '_')}")
    bench_main: Callable[[list[str]], int | None] = module.main
    return int(bench_main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
