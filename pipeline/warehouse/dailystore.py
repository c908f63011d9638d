"""The daily models' Parquet: a manifest of exact files per (account, day) partition.

Why its own module: the daily models are written as Parquet under
`$HOME/parquet/models/<model>/account=<a>/day=<d>/`, and the warehouse's views list their
exact files (no glob), so what is live is what the build state's manifest says. Files a
build replaces stay on disk for `RETAIN_SUPERSEDED_SECONDS` for older sessions; files no
state lists (what a killed build published) are swept by the next build.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.storage.store import sql_file_list
from pipeline.warehouse.paths import Paths
from pipeline.warehouse.state import RETAIN_SUPERSEDED_SECONDS

_MODEL_FILE_RE = re.compile(r"^[A-Za-z0-9][\w]*/account=[^/]+/day=[^/]+/[^/]+\.parquet$")


class DailyStore:
    """The Parquet partitions of daily models, as a manifest of exact files per partition."""

    def __init__(self, paths: Paths, state: dict[str, Any], full: bool) -> None:
        self.paths = paths
        self.manifest: dict[str, dict[str, list[str]]] = (
            {} if full else json.loads(json.dumps(state.get("manifest", {})))
        )
        self.superseded: dict[str, float] = dict(state.get("superseded", {}))
        self.published: list[str] = []  # files this build added, until it commits
        if full:
            for files in state.get("manifest", {}).values():
                for rels in files.values():
                    for rel in rels:
                        self.superseded.setdefault(rel, time.time())

    def replace_days(self, model: str, staging: Path, days: list[date], build_id: str) -> int:
        """Swap in the staged partitions of `days` (any account); returns files moved."""
        parts = self.manifest.setdefault(model, {})
        day_set = {d.isoformat() for d in days}
        now = time.time()
        for key in [k for k in parts if k.split("|", 1)[1] in day_set]:
            for rel in parts.pop(key):
                self.superseded[rel] = now
        moved = 0
        for file in sorted(staging.glob("account=*/day=*/*.parquet")):
            account = file.parent.parent.name.split("=", 1)[1]
            day = file.parent.name.split("=", 1)[1]
            rel = (f"{model}/{file.parent.parent.name}/{file.parent.name}/"
                   f"part-{build_id}-{moved}.parquet")
            self.paths.store.publish_file(file, f"{self.paths.models}/{rel}")
            self.published.append(rel)
            parts.setdefault(f"{account}|{day}", []).append(rel)
            moved += 1
        return moved

    @property
    def _markers(self) -> str:
        return f"{self.paths.models}/_building"

    def begin(self, build_id: str, walk: bool) -> None:
        """Sweep what earlier builds left, then mark this build as running until `end`.

        Why a marker: walking every model folder for orphans costs about 30 ms at a year
        (3,000 files), and only a build that died after publishing files and before
        committing its state leaves any; such a build leaves its marker. `walk`: look for
        orphans anyway (a state written before builds left markers).
        """
        dead = self.paths.store.list_files(self._markers)
        self.sweep(RETAIN_SUPERSEDED_SECONDS, orphans=walk or bool(dead))
        for marker in dead:  # the build lock is ours: their builds are not running
            self.paths.store.delete(marker)
        self.paths.store.write_bytes_atomic(f"{self._markers}/build-{build_id}", b"")

    def end(self, build_id: str) -> None:
        """This build left no orphans: it committed, or deleted what it published."""
        self.paths.store.delete(f"{self._markers}/build-{build_id}")

    def discard_published(self) -> None:
        """Delete what this build published: a failed build leaves `parquet/models` as the
        last good build left it, so an engine globbing it (Spark, Trino) never counts a day
        twice. (A killed build's files are orphans that the next build's `sweep` removes.)"""
        for rel in self.published:
            self.paths.store.delete(f"{self.paths.models}/{rel}")
        self.published.clear()

    def files(self, model: str) -> list[str]:
        return [uri for _day, uri in self.day_files(model)]

    def day_files(self, model: str) -> list[tuple[str, str]]:
        """(ISO day, uri) of each of the model's files, by partition."""
        parts = self.manifest.get(model, {})
        return [(key.split("|", 1)[1], self.paths.model_uri(rel))
                for key in sorted(parts) for rel in parts[key]]

    def sweep(self, retain_seconds: float, orphans: bool = True) -> None:
        """Delete superseded files past retention, and (walking every model folder)
        orphans no state knows about: what a killed build left.

        On an object store superseded files go at once (`_retention`): Spark or Trino read
        `parquet/models/...` by globbing, and a retained old file would count twice.
        """
        now = time.time()
        retain_seconds = _retention(self.paths, retain_seconds)
        store, models = self.paths.store, self.paths.models
        for rel, when in list(self.superseded.items()):
            if now - when >= retain_seconds:
                store.delete(f"{models}/{rel}")
                del self.superseded[rel]
        if not orphans:
            return
        known = {rel for parts in self.manifest.values() for rels in parts.values() for rel in rels}
        known |= set(self.superseded)
        for path in store.walk_files(models):
            rel = path[len(models) + 1:]
            if _MODEL_FILE_RE.match(rel) and rel not in known:
                store.delete(path)
        for folder in self.paths.db.parent.glob(f".{self.paths.db.stem}.staging-*"):
            shutil.rmtree(folder, ignore_errors=True)


def _retention(paths: Paths, retain_seconds: float) -> float:
    """How long superseded model files stay: none on an object store (see `sweep`)."""
    return retain_seconds if paths.store.remote is None else 0.0


def staging_dir(paths: Paths, build_id: str) -> Path:
    """The local folder a build writes model Parquet into before publishing it."""
    return paths.db.parent / f".{paths.db.stem}.staging-{build_id}"


def daily_select_sql(files: list[str]) -> str:
    """The rows of a daily model's files, with its partition columns first."""
    return (
        f"SELECT account, day, * EXCLUDE (account, day) FROM read_parquet({sql_file_list(files)}, "
        "hive_partitioning = true, hive_types = {'account': VARCHAR, 'day': DATE})"
    )
