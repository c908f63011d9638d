"""The machine-local side of a home: where this machine keeps the files of a home that
cannot live on an object store (the warehouse, reports, the Dagster instance).

Why in the storage layer: what a home is (a folder, or `s3://bucket/prefix` and its
bucket) is the storage layer's to interpret (`objectstore.parse_home`); the settings keep
the home as the text the user gave.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from pipeline.storage.objectstore import is_remote, parse_home


def local_dir(home: str, env: Mapping[str, str] | None = None) -> Path:
    """Where this machine keeps the files of `home` that cannot live on an object store
    (the warehouse, reports, the Dagster instance): the home itself when it is local."""
    env = os.environ if env is None else env
    if not is_remote(home):
        return Path(home.removeprefix("file://")).expanduser().resolve()
    if env.get("VAST_PIPELINE_CACHE"):
        return Path(env["VAST_PIPELINE_CACHE"]).expanduser().resolve()
    config = parse_home(home, env)
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vast-pipeline"
    digest = hashlib.sha1(config.uri.encode()).hexdigest()[:8]
    return (base / f"{config.bucket}-{digest}").resolve()


def warehouse_file(home: str, env: Mapping[str, str] | None = None) -> Path:
    """The DuckDB warehouse of `home`: $VAST_PIPELINE_WAREHOUSE, else in `local_dir`."""
    env = os.environ if env is None else env
    explicit = env.get("VAST_PIPELINE_WAREHOUSE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return local_dir(home, env) / "warehouse.duckdb"
